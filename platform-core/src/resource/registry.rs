//! The registry: every resource the process knows, validated once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{FieldMeta, Resource, ResourceMeta};
use crate::permission::{Ability, ResourcePermissions};
use crate::value::FieldType;

/// One registration, as collected by `inventory`: the metadata and the
/// type's name. Built by a `const fn` so `inventory::submit!` accepts it.
#[derive(Clone, Copy)]
pub struct Registration {
    meta: fn() -> &'static ResourceMeta,
    type_name: fn() -> &'static str,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("type", &(self.type_name)())
            .field("table", &(self.meta)().table())
            .finish()
    }
}

impl Registration {
    /// The registration of `R`.
    pub const fn of<R: Resource>() -> Self {
        Self {
            meta: R::meta,
            type_name: std::any::type_name::<R>,
        }
    }
    /// The metadata.
    pub fn meta(&self) -> &'static ResourceMeta {
        (self.meta)()
    }
    /// The Rust type name.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

inventory::collect!(Registration);

/// A registered resource with what the platform derives from its metadata.
#[derive(Debug)]
pub struct ResourceEntry {
    meta: &'static ResourceMeta,
    type_name: &'static str,
    permissions: ResourcePermissions,
}

impl ResourceEntry {
    /// The metadata.
    pub fn meta(&self) -> &'static ResourceMeta {
        self.meta
    }
    /// The Rust type name.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
    /// The generated permission names.
    pub fn permissions(&self) -> &ResourcePermissions {
        &self.permissions
    }
    /// The permission for `ability` on this resource.
    pub fn permission(&self, ability: Ability) -> &str {
        self.permissions.get(ability)
    }
}

/// Every resource of the application, looked up by name, plural or table.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<Arc<ResourceEntry>>,
    by_plural: HashMap<&'static str, usize>,
    by_name: HashMap<&'static str, usize>,
    by_table: HashMap<&'static str, usize>,
}

/// A registry that fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resource registry:\n{}", .problems.join("\n"))]
pub struct RegistryError {
    /// One line per problem, each naming the resource (and field).
    pub problems: Vec<String>,
}

impl Registry {
    /// Every resource registered with `#[derive(Resource)]` (through
    /// `inventory`), validated.
    pub fn from_inventory() -> Result<Self, RegistryError> {
        let mut b = Self::builder();
        for r in inventory::iter::<Registration> {
            b = b.registration(*r);
        }
        b.build()
    }

    /// An empty builder for an explicit (for example per-test) registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// All entries, sorted by navigation group, sort and label.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<ResourceEntry>> {
        self.entries.iter()
    }
    /// Number of resources.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether there are no resources.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The entry with this plural (URL) name.
    pub fn by_plural(&self, plural: &str) -> Option<&Arc<ResourceEntry>> {
        self.by_plural.get(plural).map(|&i| &self.entries[i])
    }
    /// The entry with this singular name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<ResourceEntry>> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }
    /// The entry over this table.
    pub fn by_table(&self, table: &str) -> Option<&Arc<ResourceEntry>> {
        self.by_table.get(table).map(|&i| &self.entries[i])
    }
    /// The entry of `R`.
    pub fn of<R: Resource>(&self) -> Option<&Arc<ResourceEntry>> {
        self.by_table(R::meta().table())
    }
    /// Every generated permission name of every resource.
    pub fn permission_names(&self) -> Vec<String> {
        self.entries
            .iter()
            .flat_map(|e| e.permissions.all().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

/// Builds a [`Registry`].
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    regs: Vec<Registration>,
}

impl RegistryBuilder {
    /// Adds `R`.
    pub fn register<R: Resource>(self) -> Self {
        self.registration(Registration::of::<R>())
    }
    /// Adds a registration.
    pub fn registration(mut self, r: Registration) -> Self {
        self.regs.push(r);
        self
    }
    /// Validates and builds. Every problem is reported at once, naming the
    /// resources (and fields) involved.
    pub fn build(self) -> Result<Registry, RegistryError> {
        let mut problems = Vec::new();
        let mut regs = self.regs;
        // The same type registered twice (inventory plus builder) is not a conflict.
        regs.sort_by_key(|r| r.type_name());
        regs.dedup_by(|a, b| std::ptr::eq(a.meta(), b.meta()) || a.type_name() == b.type_name());
        let metas: Vec<&'static ResourceMeta> = regs.iter().map(Registration::meta).collect();
        for (i, m) in metas.iter().enumerate() {
            for (j, other) in metas.iter().enumerate().skip(i + 1) {
                let who = format!("`{}` and `{}`", regs[i].type_name(), regs[j].type_name());
                if m.table() == other.table() {
                    problems.push(format!("{who} both use table `{}`", m.table()));
                }
                if m.plural() == other.plural() {
                    problems.push(format!("{who} both use the name `{}`", m.plural()));
                }
                if m.name() == other.name() {
                    problems.push(format!("{who} both use the name `{}`", m.name()));
                }
            }
            validate(regs[i].type_name(), m, &metas, &mut problems);
        }
        if !problems.is_empty() {
            return Err(RegistryError { problems });
        }
        let mut entries: Vec<Arc<ResourceEntry>> = regs
            .iter()
            .map(|r| {
                Arc::new(ResourceEntry {
                    meta: r.meta(),
                    type_name: r.type_name(),
                    permissions: ResourcePermissions::for_resource(r.meta().name()),
                })
            })
            .collect();
        entries.sort_by(|a, b| {
            let (na, nb) = (a.meta.navigation_entry(), b.meta.navigation_entry());
            (na.group, na.sort, a.meta.plural_label()).cmp(&(
                nb.group,
                nb.sort,
                b.meta.plural_label(),
            ))
        });
        let mut reg = Registry {
            entries,
            ..Registry::default()
        };
        for (i, e) in reg.entries.iter().enumerate() {
            reg.by_plural.insert(e.meta.plural(), i);
            reg.by_name.insert(e.meta.name(), i);
            reg.by_table.insert(e.meta.table(), i);
        }
        Ok(reg)
    }
}

/// Whether `s` is a plain SQL identifier (the only kind the platform emits).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

fn validate(
    type_name: &str,
    m: &ResourceMeta,
    all: &[&'static ResourceMeta],
    problems: &mut Vec<String>,
) {
    let mut err = |msg: String| problems.push(format!("resource `{type_name}`: {msg}"));
    for (what, id) in [
        ("table", m.table()),
        ("name", m.name()),
        ("plural", m.plural()),
    ] {
        if !is_identifier(id) {
            err(format!(
                "{what} `{id}` must be a lower-case identifier (a-z, 0-9, _)"
            ));
        }
    }
    if m.table().starts_with("platform_") {
        err(format!(
            "table `{}` uses the prefix `platform_`, which is reserved for the framework's tables",
            m.table()
        ));
    }
    let pks: Vec<&FieldMeta> = m
        .field_list()
        .iter()
        .filter(|f| f.is_primary_key())
        .collect();
    match pks.as_slice() {
        [] => err("has no primary key (mark one field `#[resource(primary_key)]`)".into()),
        [pk] => {
            if !matches!(pk.ty(), FieldType::I64 | FieldType::I32 | FieldType::Uuid) {
                err(format!(
                    "primary key `{}` must be an integer or a UUID",
                    pk.name()
                ));
            }
            if pk.is_nullable() {
                err(format!("primary key `{}` must not be an Option", pk.name()));
            }
        }
        _ => err(format!(
            "has {} primary keys; exactly one field may be `primary_key`",
            pks.len()
        )),
    }
    let mut seen = std::collections::HashSet::new();
    for f in m.field_list() {
        let name = f.name();
        if !seen.insert(f.column_name()) {
            err(format!("column `{}` is used twice", f.column_name()));
        }
        if !is_identifier(f.column_name()) {
            err(format!(
                "field `{name}`: column `{}` must be a lower-case identifier",
                f.column_name()
            ));
        }
        if f.is_encrypted() {
            if !f.ty().is_string() {
                err(format!(
                    "field `{name}`: only string fields can be `encrypted`"
                ));
            }
            if f.is_sortable()
                || f.is_filter()
                || f.is_unique()
                || m.search_fields().contains(&name)
            {
                err(format!(
                    "field `{name}`: an `encrypted` field cannot be sorted, filtered, searched or unique"
                ));
            }
        }
        if !f.choice_list().is_empty() && !f.ty().is_string() {
            err(format!("field `{name}`: `choices` needs a string field"));
        }
        if name.starts_with('_') {
            err(format!(
                "field `{name}`: names starting with `_` are reserved for the API's own keys (`_hidden`, `_embedded`)"
            ));
        }
        if let Some(target) = f.belongs_to_meta() {
            if !all
                .iter()
                .any(|t| std::ptr::eq(*t, target) || t.table() == target.table())
            {
                err(format!(
                    "field `{name}`: `belongs_to` names resource `{}` (table `{}`), which is not registered",
                    target.name(),
                    target.table()
                ));
            }
            let target_pk = target.field_list().iter().find(|f| f.is_primary_key());
            if let Some(pk) = target_pk
                && !(pk.ty() == f.ty()
                    || matches!(
                        (pk.ty(), f.ty()),
                        (
                            FieldType::I32 | FieldType::I64,
                            FieldType::I32 | FieldType::I64
                        )
                    ))
            {
                err(format!(
                    "field `{name}`: type {} does not match the primary key of `{}`",
                    f.ty().name(),
                    target.name()
                ));
            }
        }
        if f.is_managed() && !f.is_nullable() && f.name() == "deleted_at" {
            err("field `deleted_at` must be an Option".into());
        }
    }
    for s in m.search_fields() {
        match m.field(s) {
            None => err(format!("`search` names `{s}`, which is not a field")),
            Some(f) if !f.ty().is_string() => {
                err(format!("`search` field `{s}` must be a string"));
            }
            Some(_) => {}
        }
    }
    if let Some(key) = m.import_key() {
        match m.field(key) {
            None => err(format!("`import(key)` names `{key}`, which is not a field")),
            Some(f) if !f.is_unique() => {
                err(format!("`import(key)` field `{key}` must be `unique`"));
            }
            Some(f) if !f.importable() => {
                err(format!("`import(key)` field `{key}` must be importable"));
            }
            Some(_) => {}
        }
    }
    if m.is_soft_delete() {
        match m.field("deleted_at") {
            Some(f) if f.ty() == FieldType::DateTime && f.is_nullable() => {}
            _ => err("`soft_delete` needs a field `deleted_at: Option<DateTime<Utc>>`".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::FieldMeta;
    use crate::value::Value;

    struct A;
    impl Resource for A {
        const META: ResourceMeta = ResourceMeta::new("a", "as", "a_rows").fields(&[
            FieldMeta::of::<i64>("id").primary_key(),
            FieldMeta::of::<i64>("b_id").belongs_to(<B as Resource>::meta),
        ]);
        fn to_values(&self) -> Vec<Value> {
            vec![]
        }
        fn from_values(_: Vec<Value>) -> Result<Self, super::super::FromValuesError> {
            Ok(A)
        }
    }
    struct B;
    impl Resource for B {
        const META: ResourceMeta = ResourceMeta::new("b", "bs", "b_rows")
            .fields(&[
                FieldMeta::of::<String>("name"),
                FieldMeta::of::<String>("_hidden"),
            ])
            .search(&["nope"])
            .import_by("name");
        fn to_values(&self) -> Vec<Value> {
            vec![]
        }
        fn from_values(_: Vec<Value>) -> Result<Self, super::super::FromValuesError> {
            Ok(B)
        }
    }

    #[test]
    fn validation_names_every_problem() {
        let err = Registry::builder().register::<A>().build().unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0].contains("`belongs_to` names resource `b`"),
            "{err}"
        );
        let err = Registry::builder()
            .register::<A>()
            .register::<B>()
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("has no primary key"), "{text}");
        assert!(text.contains("`search` names `nope`"), "{text}");
        assert!(
            text.contains("`import(key)` field `name` must be `unique`"),
            "{text}"
        );
        assert!(
            text.contains("field `_hidden`: names starting with `_` are reserved"),
            "{text}"
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("invoices"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("Invoices"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a;drop"));
    }
}
