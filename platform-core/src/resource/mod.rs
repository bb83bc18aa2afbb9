//! Resources: the host's annotated structs, their metadata and the registry.

mod meta;
mod registry;

pub use meta::{DEFAULT_MAX_LENGTH, FieldMeta, Navigation, ResourceMeta};
pub(crate) use registry::is_identifier as registry_is_identifier;
pub use registry::{Registration, Registry, RegistryBuilder, RegistryError, ResourceEntry};

use crate::value::{Value, ValueError};

/// A struct the platform manages: stored in a table, audited, guarded by
/// permissions, served by the API and the panel.
///
/// Write `#[derive(Resource)]` rather than implementing this by hand; the
/// derive also registers the resource. A hand-written implementation is
/// registered with [`Registry::builder`] or with
/// `inventory::submit!(Registration::of::<T>())`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a resource",
    note = "add #[derive(platform_core::Resource)] to the struct"
)]
pub trait Resource: Sized + Send + Sync + 'static {
    /// The metadata.
    const META: ResourceMeta;

    /// The metadata, as a `'static` reference.
    fn meta() -> &'static ResourceMeta {
        &Self::META
    }

    /// The field values, in field order.
    fn to_values(&self) -> Vec<Value>;

    /// Builds the struct from values in field order.
    fn from_values(values: Vec<Value>) -> Result<Self, FromValuesError>;
}

/// A value list that does not fit a resource struct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {error}")]
pub struct FromValuesError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub error: ValueError,
}

/// Reads the next value for `field` (used by the derive).
#[doc(hidden)]
pub fn take_value<T: crate::value::FieldValue>(
    values: &mut std::vec::IntoIter<Value>,
    field: &'static str,
) -> Result<T, FromValuesError> {
    T::from_value(values.next().unwrap_or(Value::Null))
        .map_err(|error| FromValuesError { field, error })
}
