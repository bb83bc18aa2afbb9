//! # platform-core
//!
//! The spine of Platform: annotate your structs with `#[derive(Resource)]`
//! and each one is registered, at compile time, into a [`Registry`] that wires
//! the audit trail, cache invalidation, permission checks and one write path
//! ([`repo::Records`], [`repo::Repo`]) over SQLite, PostgreSQL or
//! MySQL/MariaDB.
//!
//! | feature   | default | what it adds |
//! |-----------|---------|--------------|
//! | `macros`  | yes     | re-exports `#[derive(Resource)]` and `embed_migrations!` |
//! | `testing` | no      | conformance suites for adapter authors |

pub mod access;
pub mod access_log;
pub mod audit;
pub mod auth;
pub mod backplane;
pub mod cache;
pub mod capability;
pub mod config;
pub mod context;
pub mod crypto;
pub mod db;
pub mod error;
pub mod event;
pub mod mail;
pub mod money;
pub mod notification;
pub mod notify;
pub mod outbox;
pub mod permission;
pub mod platform;
pub mod policy;
pub mod prelude;
pub mod query;
pub mod repo;
pub mod resource;
pub mod schema;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validate;
pub mod value;
pub mod visibility;

#[doc(hidden)]
pub mod __private;

pub use context::{Actor, Context};
pub use error::{Error, Result};
pub use platform::Platform;
#[cfg(feature = "macros")]
pub use platform_macros::Resource;
/// Embeds a directory of per-back-end SQL migrations as a
/// [`db::MigrationSet`], at compile time.
#[cfg(feature = "macros")]
pub use platform_macros::embed_migrations;
pub use resource::{Registry, Resource};

/// The attribute for implementing the platform's async traits
/// ([`capability::HealthCheck`], [`cache::CacheStore`], ...) without a
/// dependency line of your own.
pub use async_trait::async_trait;
/// The byte buffer crate of [`storage`] streams (`Bytes`): no
/// dependency line of your own needed to write a storage back end.
pub use bytes;
/// The date and time crate the platform uses (`DateTime<Utc>`, `NaiveDate`
/// fields, token expiries): `use platform_core::chrono::Utc;`, no
/// dependency line of your own needed.
pub use chrono;
/// The serialisation crate the platform uses. Its derive macros need to be
/// told where it lives when you use it through this re-export:
///
/// ```
/// use platform_core::serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "platform_core::serde")]
/// struct Summary {
///     open: u64,
/// }
///
/// let text = platform_core::serde_json::to_string(&Summary { open: 3 }).unwrap();
/// assert_eq!(text, r#"{"open":3}"#);
/// ```
pub use serde;
/// The JSON crate the platform uses (`serde_json::json!`, `Value`).
pub use serde_json;
/// The UUID crate the platform uses (`Uuid` fields).
pub use uuid;
