//! Resource events on channels: every committed change, taken from the
//! transactional outbox (so a rolled-back write broadcasts nothing and a
//! crash between commit and broadcast loses nothing), is sent as
//! `{singular}.{event}` (`invoice.created`) to `private-{plural}` (every
//! record's events) and `private-{plural}.{id}` (one record's).
//!
//! The data is the outbox event's: `id`, `event`, `resource`, `record_id`,
//! `changes` (`{field: {old, new}}`), `actor_id` and `occurred_at`. What a
//! subscriber may not see is never sent to it: hidden and encrypted fields
//! are left out for everyone; `pii` fields are masked (`a***@example.com`)
//! except for subscriptions that `/broadcasting/auth` signed for a user
//! holding `view_pii`.

use std::collections::BTreeMap;

use platform_core::outbox::{Event, FieldChange};
use platform_core::resource::ResourceMeta;
use platform_core::value::Value;
use platform_core::visibility::mask_pii;
use platform_core::{Error, Platform, Result};

use crate::Broadcaster;
use crate::backplane::Envelope;

/// The outbox subscriber's name.
pub(crate) const SUBSCRIBER: &str = "broadcasting";

/// A JSON value as a viewer without `view_pii` sees it.
fn mask(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => mask_pii(&Value::Text(s.clone())),
        serde_json::Value::Null => serde_json::Value::Null,
        other => mask_pii(&Value::Json(other.clone())),
    }
}

/// The event's data for viewers without `view_pii`, and (when a `pii`
/// field is in it) for viewers with it.
pub(crate) fn payloads(meta: &ResourceMeta, e: &Event) -> (String, Option<String>) {
    let mut masked = BTreeMap::new();
    let mut full = BTreeMap::new();
    let mut has_pii = false;
    for (name, change) in &e.changes {
        let Some(f) = meta.field(name) else { continue };
        if f.is_hidden() || f.is_encrypted() {
            continue;
        }
        if f.is_pii() {
            has_pii = true;
            masked.insert(
                name.as_str(),
                FieldChange {
                    old: mask(&change.old),
                    new: mask(&change.new),
                },
            );
        } else {
            masked.insert(name.as_str(), change.clone());
        }
        full.insert(name.as_str(), change.clone());
    }
    let data = |changes: &BTreeMap<&str, FieldChange>| {
        serde_json::json!({
            "id": e.id,
            "event": e.event,
            "resource": e.resource,
            "record_id": e.record_id,
            "changes": changes,
            "actor_id": e.actor.user_id,
            "occurred_at": e.occurred_at,
        })
        .to_string()
    };
    (data(&masked), has_pii.then(|| data(&full)))
}

/// Which events to store for broadcasting. On one node (the in-process
/// back plane) an event whose two channels have no subscriber reaches no
/// one, and channels do not replay what was sent before a subscription:
/// it is not stored (most writes, when no panel page or client listens,
/// cost no outbox row). With a shared back plane another node may have
/// subscribers: every event is stored.
pub(crate) fn wanted(
    platform: &Platform,
    b: &Broadcaster,
) -> impl Fn(&Event) -> bool + Send + Sync + 'static {
    let single_node = b.config().backplane.single_node();
    let (registry, hub) = (platform.registry().clone(), b.inner.hub.clone());
    move |e: &Event| {
        if !single_node {
            return true;
        }
        let Some(entry) = registry.by_name(&e.resource) else {
            return false;
        };
        let plural = entry.meta().plural();
        hub.subscribers(&format!("private-{plural}")) > 0
            || hub.subscribers(&format!("private-{plural}.{}", e.record_id)) > 0
    }
}

/// Broadcasts `e` on its resource's and its record's channels.
pub(crate) async fn broadcast(platform: &Platform, b: &Broadcaster, e: Event) -> Result<()> {
    let Some(entry) = platform.registry().by_name(&e.resource) else {
        // A resource no longer registered: nothing can subscribe to it.
        return Ok(());
    };
    let meta = entry.meta();
    let (data, pii_data) = payloads(meta, &e);
    let event = format!("{}.{}", meta.name(), e.event);
    let backplane = &b.config().backplane;
    for channel in [
        format!("private-{}", meta.plural()),
        format!("private-{}.{}", meta.plural(), e.record_id),
    ] {
        if !crate::protocol::valid_channel_name(&channel) {
            return Err(Error::Configuration(format!(
                "broadcasting: `{channel}` is not a valid channel name"
            )));
        }
        backplane
            .publish(Envelope {
                channel,
                event: event.clone(),
                data: data.clone(),
                except: None,
                user_id: None,
                pii_data: pii_data.clone(),
            })
            .await?;
    }
    Ok(())
}
