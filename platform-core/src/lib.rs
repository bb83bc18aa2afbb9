//! # platform-core
//!
//! The spine of Platform: annotate your structs with `#[derive(Resource)]`
//! and each one is registered, at compile time, into a [`Registry`] that wires
//! audit trail, cache invalidation, permission checks and one write path
//! ([`repo::Repo`]) over SQLite, PostgreSQL or MySQL/MariaDB.
//!
//! | feature   | default | what it adds |
//! |-----------|---------|--------------|
//! | `macros`  | yes     | re-exports `#[derive(Resource)]` |
//! | `testing` | no      | conformance suites for adapter authors |

pub mod db;
pub mod error;
pub mod permission;
pub mod resource;
pub mod value;

#[doc(hidden)]
pub mod __private;

pub use error::{Error, Result};
#[cfg(feature = "macros")]
pub use platform_macros::Resource;
pub use resource::{Registry, Resource};
