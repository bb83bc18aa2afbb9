//! Permission names: generated per resource from one function, so no
//! permission string is ever spelled by hand in two places.

use std::fmt;

/// An action on a resource that a permission grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ability {
    /// List records.
    ViewAny,
    /// Show one record.
    View,
    /// Create records.
    Create,
    /// Update records.
    Update,
    /// Delete a record.
    Delete,
    /// Delete many records at once (bulk delete).
    DeleteAny,
    /// Restore soft-deleted records.
    Restore,
    /// Delete records for good.
    ForceDelete,
    /// Export records.
    Export,
    /// Import records.
    Import,
}

impl Ability {
    /// Every ability, in the order the role editor shows them.
    pub const ALL: [Ability; 10] = [
        Self::ViewAny,
        Self::View,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::DeleteAny,
        Self::Restore,
        Self::ForceDelete,
        Self::Export,
        Self::Import,
    ];

    /// The prefix of the permission name (`view_any`).
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::ViewAny => "view_any",
            Self::View => "view",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::DeleteAny => "delete_any",
            Self::Restore => "restore",
            Self::ForceDelete => "force_delete",
            Self::Export => "export",
            Self::Import => "import",
        }
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// The permission name for `ability` on the resource called `resource`
/// (singular snake case): `view_any_invoice`.
pub fn permission_name(ability: Ability, resource: &str) -> String {
    format!("{}_{resource}", ability.prefix())
}

/// Lets a user see personal data (`pii` fields) unmasked.
pub const VIEW_PII: &str = "view_pii";
/// Lets a user see the plaintext of `encrypted` fields.
pub const VIEW_ENCRYPTED: &str = "view_encrypted";
/// Lets a user read the audit trail of a whole resource (every record's
/// history, including deleted records) and the client addresses and user
/// agents stored with audit entries.
pub const VIEW_AUDIT: &str = "view_audit";
/// The role that passes every check.
pub const SUPER_ADMIN: &str = "super_admin";

/// Permissions that are not tied to one resource.
pub const GLOBAL_PERMISSIONS: [&str; 3] = [VIEW_PII, VIEW_ENCRYPTED, VIEW_AUDIT];

/// The generated permission names of one resource.
#[derive(Debug, Clone)]
pub struct ResourcePermissions {
    names: [String; 10],
}

impl ResourcePermissions {
    /// The names for the resource called `resource`.
    pub fn for_resource(resource: &str) -> Self {
        Self {
            names: Ability::ALL.map(|a| permission_name(a, resource)),
        }
    }
    /// The name for `ability`.
    pub fn get(&self, ability: Ability) -> &str {
        let i = Ability::ALL.iter().position(|a| *a == ability).unwrap_or(0);
        &self.names[i]
    }
    /// All names.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = ResourcePermissions::for_resource("invoice");
        assert_eq!(p.get(Ability::ViewAny), "view_any_invoice");
        assert_eq!(p.get(Ability::ForceDelete), "force_delete_invoice");
        assert_eq!(p.all().count(), 10);
    }
}
