//! Items the derive macro's expansion refers to. Not public API: may change
//! in any release.

pub use inventory;

pub use crate::resource::{
    FieldMeta, FromValuesError, Navigation, Registration, Resource, ResourceMeta, take_value,
};
pub use crate::value::{FieldValue, Value};
