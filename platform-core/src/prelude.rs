//! What a host application imports: `use platform_core::prelude::*;`.

pub use crate::context::Context;
pub use crate::error::{Error, Result};
pub use crate::platform::Platform;
#[cfg(feature = "macros")]
pub use crate::resource::Resource;
#[cfg(not(feature = "macros"))]
pub use crate::resource::Resource;
#[cfg(feature = "macros")]
pub use platform_macros::Resource;
