//! Live updates in the panel, as progressive enhancement: when a
//! capability serves a Pusher-protocol WebSocket in the same process (the
//! broadcasting capability contributes a [`LiveUpdates`]), every page
//! carries its public key, and `panel.js` subscribes to the open list's
//! resource channel (`private-{plural}`: the list refreshes when a record
//! changes) and to the user's own channel (`private-user.{id}`: the bell
//! counts up when a notification arrives), authorised at
//! `{base}/broadcasting/auth` (a [`PanelRoutes`](crate::capability::PanelRoutes)
//! of the capability, where the panel's session cookie reaches) with the
//! session and its CSRF token. Without JavaScript, or without the
//! capability, pages are as before.

/// The panel's live updates: the public key of the Pusher-protocol server
/// served at `/app/{key}` by the same process. A capability contributes
/// it through [`Setup::contribute`](platform_core::capability::Setup::contribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveUpdates {
    key: String,
}

impl LiveUpdates {
    /// Live updates through the server whose public key is `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }

    /// The public key.
    pub fn key(&self) -> &str {
        &self.key
    }
}
