//! This node's connections: who is subscribed to what, and the limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

use crate::backplane::{BackplaneSink, Envelope};
use crate::protocol::event_frame;

/// What the hub holds of one connection: its bounded queue and the signal
/// that disconnects it.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub(crate) tx: mpsc::Sender<Utf8Bytes>,
    pub(crate) kill: Arc<Notify>,
}

impl ConnHandle {
    /// Queues `frame`; a full queue (a slow consumer) disconnects it.
    fn send(&self, frame: &Utf8Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(frame.clone()) {
            self.kill.notify_one();
        }
    }
}

/// One connection's subscription to a channel.
#[derive(Debug, Clone)]
struct Sub {
    handle: ConnHandle,
    /// Authorised to see personal data: gets [`Envelope::pii_data`].
    pii: bool,
}

/// Limits the hub enforces when a connection is admitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) total: usize,
    pub(crate) per_ip: usize,
    pub(crate) per_user: usize,
}

#[derive(Debug)]
pub(crate) struct Hub {
    limits: Limits,
    channels: Mutex<HashMap<String, HashMap<String, Sub>>>,
    ips: Mutex<HashMap<IpAddr, usize>>,
    users: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

/// Why a connection or a user was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    Ip,
    User,
}

impl Refusal {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Total => "Over capacity: too many connections",
            Self::Ip => "Over capacity: too many connections from this address",
            Self::User => "Over capacity: too many connections of this user",
        }
    }
}

/// A connection's place in the counts, given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    hub: Arc<Hub>,
    ip: IpAddr,
    user: Option<String>,
}

impl Admission {
    /// Counts this connection as one of `user`'s (the first user only);
    /// refused when that user has too many.
    pub(crate) fn claim_user(&mut self, user: &str) -> Result<(), Refusal> {
        if self.user.is_some() {
            return Ok(());
        }
        let mut users = self.hub.users.lock().unwrap_or_else(|e| e.into_inner());
        let n = users.entry(user.to_owned()).or_default();
        if *n >= self.hub.limits.per_user {
            if *n == 0 {
                users.remove(user);
            }
            return Err(Refusal::User);
        }
        *n += 1;
        self.user = Some(user.to_owned());
        Ok(())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.hub.total.fetch_sub(1, Ordering::SeqCst);
        let mut ips = self.hub.ips.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = ips.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                ips.remove(&self.ip);
            }
        }
        drop(ips);
        if let Some(u) = &self.user {
            let mut users = self.hub.users.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = users.get_mut(u) {
                *n -= 1;
                if *n == 0 {
                    users.remove(u);
                }
            }
        }
    }
}

impl Hub {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            channels: Mutex::default(),
            ips: Mutex::default(),
            users: Mutex::default(),
            total: AtomicUsize::new(0),
        }
    }

    /// Admits a connection from `ip`, or says which limit it is over.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        let n = ips.get(&ip).copied().unwrap_or(0);
        if n >= self.limits.per_ip {
            return Err(Refusal::Ip);
        }
        if self
            .total
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t < self.limits.total).then_some(t + 1)
            })
            .is_err()
        {
            return Err(Refusal::Total);
        }
        ips.insert(ip, n + 1);
        Ok(Admission {
            hub: self.clone(),
            ip,
            user: None,
        })
    }

    /// Subscribes `socket_id` to `channel`; `pii`: its authorisation says
    /// it may see personal data.
    pub(crate) fn subscribe(&self, channel: &str, socket_id: &str, handle: &ConnHandle, pii: bool) {
        let mut c = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        c.entry(channel.to_owned()).or_default().insert(
            socket_id.to_owned(),
            Sub {
                handle: handle.clone(),
                pii,
            },
        );
    }

    pub(crate) fn unsubscribe(&self, channel: &str, socket_id: &str) {
        let mut c = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(subs) = c.get_mut(channel) {
            subs.remove(socket_id);
            if subs.is_empty() {
                c.remove(channel);
            }
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    pub(crate) fn channel_count(&self) -> usize {
        self.channels.lock().map_or(0, |c| c.len())
    }

    pub(crate) fn subscribers(&self, channel: &str) -> usize {
        self.channels
            .lock()
            .map_or(0, |c| c.get(channel).map_or(0, HashMap::len))
    }

    pub(crate) fn tracked_users(&self) -> usize {
        self.users.lock().map_or(0, |u| u.len())
    }
}

impl BackplaneSink for Hub {
    fn deliver(&self, envelope: &Envelope) {
        let frame_of = |data: &str| {
            Utf8Bytes::from(match &envelope.user_id {
                None => event_frame(&envelope.event, Some(&envelope.channel), data),
                Some(uid) => serde_json::json!({
                    "event": envelope.event,
                    "channel": envelope.channel,
                    "data": data,
                    "user_id": uid,
                })
                .to_string(),
            })
        };
        let c = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Some(subs) = c.get(&envelope.channel) else {
            return;
        };
        // Each frame is built once, and only when someone gets it.
        let mut plain = None;
        let mut pii = None;
        for (socket, sub) in subs {
            if envelope.except.as_deref() == Some(socket.as_str()) {
                continue;
            }
            let frame = match &envelope.pii_data {
                Some(data) if sub.pii => pii.get_or_insert_with(|| frame_of(data)),
                _ => plain.get_or_insert_with(|| frame_of(&envelope.data)),
            };
            sub.handle.send(frame);
        }
    }
}
