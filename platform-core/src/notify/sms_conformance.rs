use super::*;

/// Runs every check; `to` is a number the provider accepts.
pub async fn run_all(provider: &dyn SmsProvider, to: &str) {
    assert!(!provider.name().is_empty(), "a provider has a name");
    sends_plain_text(provider, to).await;
    sends_unicode_and_long_text(provider, to).await;
    refuses_bad_numbers(provider).await;
    refuses_bad_text(provider, to).await;
}

/// A short ASCII message is accepted.
pub async fn sends_plain_text(provider: &dyn SmsProvider, to: &str) {
    provider
        .send(&Sms::new(to, "Your code is 123456"))
        .await
        .expect("a plain message is accepted");
}

/// Non-ASCII text and a message of [`MAX_SMS_CHARS`] characters are
/// accepted.
pub async fn sends_unicode_and_long_text(provider: &dyn SmsProvider, to: &str) {
    provider
        .send(&Sms::new(to, "Grüße — 你好 ✓ & <b>"))
        .await
        .expect("a unicode message is accepted");
    provider
        .send(&Sms::new(to, "x".repeat(MAX_SMS_CHARS)))
        .await
        .expect("a message of the longest length is accepted");
}

/// A number that is not E.164 is a validation error on `to`.
pub async fn refuses_bad_numbers(provider: &dyn SmsProvider) {
    for to in [
        "",
        "12345",
        "0049301234567",
        "+49 30 1234",
        "+4930abc123",
        "+1234567890123456",
    ] {
        let err = provider
            .send(&Sms::new(to, "hi"))
            .await
            .expect_err("a bad number is refused");
        assert!(
            matches!(&err, Error::Validation(e) if e.has("to")),
            "number {to:?}: {err:?}"
        );
    }
}

/// An empty or too long text is a validation error on `text`.
pub async fn refuses_bad_text(provider: &dyn SmsProvider, to: &str) {
    for text in [String::new(), "  ".into(), "x".repeat(MAX_SMS_CHARS + 1)] {
        let err = provider
            .send(&Sms::new(to, text.clone()))
            .await
            .expect_err("a bad text is refused");
        assert!(
            matches!(&err, Error::Validation(e) if e.has("text")),
            "text of {} chars: {err:?}",
            text.len()
        );
    }
}
