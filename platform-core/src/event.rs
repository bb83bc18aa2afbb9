//! The event bus: what the write path announces after a commit.
//!
//! Listeners run after the transaction commits, in registration order, on
//! the writer's task; nothing is announced for a rolled-back transaction. A
//! failing listener is logged and does not undo the committed write.

use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::value::Value;

/// What happened to records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A record was created.
    Created,
    /// A record was updated.
    Updated,
    /// A record was deleted (soft or not).
    Deleted,
    /// A soft-deleted record was restored.
    Restored,
    /// A record was removed for good.
    ForceDeleted,
}

impl EventKind {
    /// The name used in the audit trail (`created`, `updated`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Restored => "restored",
            Self::ForceDeleted => "force_deleted",
        }
    }
    /// The kind called `name` (see [`EventKind::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "created" => Self::Created,
            "updated" => Self::Updated,
            "deleted" => Self::Deleted,
            "restored" => Self::Restored,
            "force_deleted" => Self::ForceDeleted,
            _ => return None,
        })
    }
}

/// One committed change to one or more records of a resource.
#[derive(Debug, Clone)]
pub struct ModelEvent {
    /// What happened.
    pub kind: EventKind,
    /// The resource's singular name.
    pub resource: &'static str,
    /// The resource's table.
    pub table: &'static str,
    /// The records' ids.
    pub ids: Vec<Value>,
    /// Whether a bulk operation (`update_where`, `delete_where`) made it.
    pub bulk: bool,
    /// The actor type (`user`, `token`, ...).
    pub actor: &'static str,
    /// The acting user, if any.
    pub user_id: Option<i64>,
    /// The request id, if any.
    pub request_id: Option<String>,
}

/// Receives events after commit.
#[async_trait]
pub trait Listener: Send + Sync {
    /// Handles one event.
    async fn handle(&self, event: &ModelEvent);
}

#[async_trait]
impl<F> Listener for F
where
    F: Fn(&ModelEvent) + Send + Sync,
{
    async fn handle(&self, event: &ModelEvent) {
        self(event);
    }
}

struct Subscription {
    resource: Option<&'static str>,
    listener: Arc<dyn Listener>,
}

/// Where listeners subscribe.
#[derive(Clone, Default)]
pub struct EventBus {
    subs: Arc<RwLock<Vec<Subscription>>>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.subs.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("EventBus").field("listeners", &n).finish()
    }
}

impl EventBus {
    /// Subscribes to every resource's events.
    pub fn listen(&self, listener: impl Listener + 'static) {
        self.push(None, Arc::new(listener));
    }
    /// Subscribes to the events of the resource called `resource` (singular
    /// name).
    pub fn listen_to(&self, resource: &'static str, listener: impl Listener + 'static) {
        self.push(Some(resource), Arc::new(listener));
    }
    fn push(&self, resource: Option<&'static str>, listener: Arc<dyn Listener>) {
        if let Ok(mut s) = self.subs.write() {
            s.push(Subscription { resource, listener });
        }
    }
    /// Delivers `event` to its listeners.
    pub async fn emit(&self, event: &ModelEvent) {
        let targets: Vec<Arc<dyn Listener>> = match self.subs.read() {
            Ok(s) => s
                .iter()
                .filter(|s| s.resource.is_none_or(|r| r == event.resource))
                .map(|s| s.listener.clone())
                .collect(),
            Err(_) => return,
        };
        for l in targets {
            l.handle(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn filters_by_resource() {
        let bus = EventBus::default();
        let all = Arc::new(AtomicUsize::new(0));
        let inv = Arc::new(AtomicUsize::new(0));
        let a = all.clone();
        bus.listen(move |_: &ModelEvent| {
            a.fetch_add(1, Ordering::SeqCst);
        });
        let i = inv.clone();
        bus.listen_to("invoice", move |_: &ModelEvent| {
            i.fetch_add(1, Ordering::SeqCst);
        });
        let ev = |resource| ModelEvent {
            kind: EventKind::Created,
            resource,
            table: "x",
            ids: vec![Value::Int(1)],
            bulk: false,
            actor: "system",
            user_id: None,
            request_id: None,
        };
        bus.emit(&ev("invoice")).await;
        bus.emit(&ev("customer")).await;
        assert_eq!(all.load(Ordering::SeqCst), 2);
        assert_eq!(inv.load(Ordering::SeqCst), 1);
    }
}
