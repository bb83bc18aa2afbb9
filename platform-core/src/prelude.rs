//! What a host application imports: `use platform_core::prelude::*;`.
//!
//! The platform's everyday types (the [`Platform`], a [`Context`] and its
//! [`Actor`], the [`Error`]/[`Result`] pair, `#[derive(Resource)]`, list
//! queries and change sets) and the date types resource fields use
//! ([`DateTime`], [`NaiveDate`], [`Utc`], from the re-exported
//! [`chrono`] crate).

pub use crate::context::{Actor, Context};
pub use crate::error::{Error, Result};
pub use crate::platform::Platform;
pub use crate::query::{Direction, ListQuery};
pub use crate::repo::Changes;
#[cfg(not(feature = "macros"))]
pub use crate::resource::Resource;
#[cfg(feature = "macros")]
pub use crate::resource::Resource;
pub use chrono::{DateTime, NaiveDate, Utc};
#[cfg(feature = "macros")]
pub use platform_macros::Resource;
