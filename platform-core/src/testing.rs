//! Conformance suites for adapter authors (feature `testing`): every back
//! end of a pluggable trait runs its trait's suite, the in-memory ones here
//! in core, the real ones against real servers in `platform-adapters`.
//!
//! | trait | suite |
//! |---|---|
//! | [`CacheStore`](crate::cache::CacheStore) | [`cache::run_all`] |
//! | [`Mailer`](crate::mail::Mailer) | [`mail::run_all`] |
//! | [`Backplane`](crate::backplane::Backplane) | [`backplane::run_all`] |
//! | [`SessionStore`](crate::auth::SessionStore) | [`sessions::run_all`] |
//! | [`NotificationChannel`](crate::notify::NotificationChannel) | [`notify::run_all`] |
//! | [`SmsProvider`](crate::notify::SmsProvider) | [`sms::run_all`] |
//! | [`Storage`](crate::storage::Storage) | [`storage::run_all`] |

pub use crate::auth::session_store::conformance as sessions;
pub use crate::cache::conformance as cache;
pub use crate::mail::conformance as mail;
pub use crate::notify::conformance as notify;
pub use crate::notify::sms_conformance as sms;
pub use crate::storage::conformance as storage;

/// Checks every [`Backplane`](crate::backplane::Backplane) must pass.
pub mod backplane {
    use std::time::Duration;

    use crate::backplane::{Backplane, BackplaneMessage};

    async fn next_on(
        rx: &mut tokio::sync::broadcast::Receiver<BackplaneMessage>,
        channel: &str,
    ) -> Vec<u8> {
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(BackplaneMessage::Message {
                        channel: c,
                        payload,
                    }) if c == channel => {
                        return payload;
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the subscription failed: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("a published message arrives within 5 s")
    }

    /// Runs every check. `a` and `b` are two instances over the same
    /// server (two nodes); for an in-process back end pass the same one
    /// twice.
    pub async fn run_all(a: &dyn Backplane, b: &dyn Backplane) {
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        // Give a real server a moment to register the subscriptions.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..20u8 {
            a.publish("conformance", &[i]).await.expect("publish");
        }
        for i in 0..20u8 {
            assert_eq!(
                next_on(&mut on_b, "conformance").await,
                vec![i],
                "in order, on the other node"
            );
            assert_eq!(
                next_on(&mut on_a, "conformance").await,
                vec![i],
                "on the sending node too"
            );
        }
        // Binary payloads travel unchanged.
        let payload: Vec<u8> = (0..=255u8).collect();
        b.publish("conformance-bin", &payload)
            .await
            .expect("publish");
        assert_eq!(next_on(&mut on_a, "conformance-bin").await, payload);
    }
}
