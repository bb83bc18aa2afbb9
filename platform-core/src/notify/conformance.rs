use super::*;

/// A message of `format` with hostile and non-ASCII text.
pub fn sample(format: Format) -> RenderedMessage {
    let text = "Grüße <script>alert(1)</script> & \"quotes\" — 你好";
    let content = match format {
        Format::Database => Content::Database(Notice::new("Conformance", text)),
        Format::Mail => Content::Mail(
            MailMessage::new("Conformance")
                .line(text)
                .action("Open", "https://example.com/x?a=1&b=2"),
        ),
        Format::Broadcast => Content::Broadcast(BroadcastMessage {
            event: "conformance".into(),
            data: serde_json::json!({ "text": text }),
        }),
        Format::Slack => Content::Slack(SlackMessage::text(text)),
        Format::Sms => Content::Sms(SmsMessage::new(text)),
        Format::Data => Content::Data(serde_json::json!({ "text": text, "n": 1 })),
    };
    RenderedMessage::new("conformance", content)
}

/// Runs every check against `channel`, which must reach `to`.
pub async fn run_all(channel: &dyn NotificationChannel, to: &Recipient) {
    has_a_stable_name(channel);
    delivers_its_format(channel, to).await;
    refuses_other_formats(channel, to).await;
}

/// The name is 1 to 64 characters of `a-z`, `0-9`, `_`, `-`, and the
/// same on every call.
pub fn has_a_stable_name(channel: &dyn NotificationChannel) {
    let name = channel.name().to_owned();
    assert!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
        "channel name {name:?}"
    );
    assert_eq!(channel.name(), name, "the name is stable");
}

/// A message of its format to a recipient it reaches is delivered,
/// twice (a retry must not fail because the first went through).
pub async fn delivers_its_format(channel: &dyn NotificationChannel, to: &Recipient) {
    assert!(
        channel.can_reach(to),
        "the channel reaches the test recipient"
    );
    let message = sample(channel.format());
    for attempt in 1..=2 {
        channel
            .send(to, &message)
            .await
            .unwrap_or_else(|e| panic!("delivery {attempt} of {:?}: {e}", channel.format()));
    }
}

/// A message of another format is a validation error, not a panic.
pub async fn refuses_other_formats(channel: &dyn NotificationChannel, to: &Recipient) {
    let other = if channel.format() == Format::Data {
        Format::Sms
    } else {
        Format::Data
    };
    let err = channel
        .send(to, &sample(other))
        .await
        .expect_err("a message of another format is refused");
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
}

/// A recipient the channel says it cannot reach is refused with a
/// validation error (run it with such a recipient).
pub async fn refuses_unreachable(channel: &dyn NotificationChannel, nobody: &Recipient) {
    assert!(!channel.can_reach(nobody), "the channel cannot reach it");
    let err = channel
        .send(nobody, &sample(channel.format()))
        .await
        .expect_err("an unreachable recipient is refused");
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
}
