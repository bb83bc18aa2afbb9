//! The access pages (the Shield UI): users with their roles and direct
//! permissions, roles with the permission grid, and API tokens.

pub(crate) mod roles;
pub(crate) mod tokens;
pub(crate) mod users;

use platform_core::error::FieldErrors;

/// Validation messages as one line.
pub(crate) fn errors_text(e: &FieldErrors) -> String {
    e.iter()
        .map(|f| format!("{} {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}
