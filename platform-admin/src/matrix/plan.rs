//! The plan of a run: every step in order, what it requires and does to
//! the sample, and what the declared permissions expect of it.

use platform_core::context::Context;
use platform_core::permission::{Ability, VIEW_AUDIT};
use platform_core::policy::Scope;
use platform_core::resource::{ResourceEntry, ResourceMeta};
use platform_core::value::{FieldType, Value};

use super::fixtures::{admits, scope_of};
use super::report::{Expected, Surface};

/// How the policy enters the expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// The permissions alone.
    Permission,
    /// The record must be in the policy's scope (else 404).
    Record,
    /// A listing: the record is listed when in scope.
    Listed,
    /// A create: the scope must not be empty.
    Create,
    /// The scope must be every record.
    Everything,
}

/// Where a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Live,
    /// Soft-deleted.
    Deleted,
    /// Deleted for good (or its id now belongs to another record).
    Gone,
}

/// Whether two rows are the same record: equal on the fields that round
/// trip exactly (text, integers, dates, UUIDs, booleans), managed
/// timestamps left out.
pub(super) fn same_record(meta: &ResourceMeta, a: &[Value], b: &[Value]) -> bool {
    meta.field_list()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            !f.is_managed()
                && matches!(
                    f.ty(),
                    FieldType::String
                        | FieldType::Text
                        | FieldType::I32
                        | FieldType::I64
                        | FieldType::Uuid
                        | FieldType::Date
                        | FieldType::Bool
                )
        })
        .all(|(i, _)| a.get(i) == b.get(i))
}

/// What a request does to the sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    None,
    /// Changes its values (read back afterwards).
    Update,
    /// Restores it (it is soft-deleted first).
    Restore,
    /// Deletes it.
    Destroy,
}

/// Every route, in the order they run: reads, updates, creates, restores,
/// deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    ApiList,
    ApiShow,
    ApiAudits,
    ApiRecordAudits,
    PanelList,
    PanelNew,
    PanelLookup,
    PanelSearch,
    PanelColumns,
    PanelShow,
    PanelEdit,
    PanelConfirmDelete,
    PanelConfirmForceDelete,
    PanelExport,
    ApiPatch,
    ApiPut,
    PanelUpdate,
    PanelRestoreVersion,
    ApiCreate,
    PanelCreate,
    ApiRestore,
    PanelRestore,
    PanelBulkRestore,
    ApiDelete,
    ApiForceDelete,
    PanelDelete,
    PanelForceDelete,
    PanelBulkDelete,
    PanelBulkForceDelete,
}

impl Step {
    pub(super) const ALL: [Step; 29] = [
        Self::ApiList,
        Self::ApiShow,
        Self::ApiAudits,
        Self::ApiRecordAudits,
        Self::PanelList,
        Self::PanelNew,
        Self::PanelLookup,
        Self::PanelSearch,
        Self::PanelColumns,
        Self::PanelShow,
        Self::PanelEdit,
        Self::PanelConfirmDelete,
        Self::PanelConfirmForceDelete,
        Self::PanelExport,
        Self::ApiPatch,
        Self::ApiPut,
        Self::PanelUpdate,
        Self::PanelRestoreVersion,
        Self::ApiCreate,
        Self::PanelCreate,
        Self::ApiRestore,
        Self::PanelRestore,
        Self::PanelBulkRestore,
        Self::ApiDelete,
        Self::ApiForceDelete,
        Self::PanelDelete,
        Self::PanelForceDelete,
        Self::PanelBulkDelete,
        Self::PanelBulkForceDelete,
    ];

    pub(super) fn surface(self) -> Surface {
        match self {
            Self::ApiList
            | Self::ApiShow
            | Self::ApiAudits
            | Self::ApiRecordAudits
            | Self::ApiPatch
            | Self::ApiPut
            | Self::ApiCreate
            | Self::ApiRestore
            | Self::ApiDelete
            | Self::ApiForceDelete => Surface::Api,
            _ => Surface::Panel,
        }
    }

    /// The abilities the route requires, all of them.
    pub(super) fn requires(self) -> &'static [Ability] {
        use Ability::{
            Create, Delete, DeleteAny, Export, ForceDelete, Restore, Update, View, ViewAny,
        };
        match self {
            Self::ApiList
            | Self::ApiAudits
            | Self::PanelList
            | Self::PanelLookup
            | Self::PanelSearch
            | Self::PanelColumns => &[ViewAny],
            Self::ApiShow | Self::ApiRecordAudits | Self::PanelShow => &[View],
            Self::ApiPatch | Self::ApiPut | Self::PanelUpdate | Self::PanelRestoreVersion => {
                &[Update]
            }
            Self::PanelEdit => &[Update, View],
            Self::ApiCreate | Self::PanelNew | Self::PanelCreate => &[Create],
            Self::ApiRestore | Self::PanelRestore => &[Restore],
            Self::ApiDelete | Self::PanelDelete => &[Delete],
            Self::PanelConfirmDelete => &[Delete, View],
            Self::ApiForceDelete | Self::PanelForceDelete => &[ForceDelete],
            Self::PanelConfirmForceDelete => &[ForceDelete, View],
            Self::PanelExport => &[ViewAny, Export],
            Self::PanelBulkRestore => &[ViewAny, Restore],
            Self::PanelBulkDelete => &[ViewAny, DeleteAny],
            Self::PanelBulkForceDelete => &[ViewAny, ForceDelete],
        }
    }

    pub(super) fn rule(self) -> Rule {
        match self {
            Self::ApiList | Self::PanelLookup | Self::PanelSearch => Rule::Listed,
            Self::ApiAudits => Rule::Everything,
            Self::ApiCreate | Self::PanelCreate => Rule::Create,
            Self::PanelList
            | Self::PanelNew
            | Self::PanelColumns
            | Self::PanelExport
            | Self::PanelBulkRestore
            | Self::PanelBulkDelete
            | Self::PanelBulkForceDelete => Rule::Permission,
            _ => Rule::Record,
        }
    }

    pub(super) fn effect(self) -> Effect {
        match self {
            Self::ApiPatch | Self::ApiPut | Self::PanelUpdate | Self::PanelRestoreVersion => {
                Effect::Update
            }
            Self::ApiRestore | Self::PanelRestore | Self::PanelBulkRestore => Effect::Restore,
            Self::ApiDelete
            | Self::ApiForceDelete
            | Self::PanelDelete
            | Self::PanelForceDelete
            | Self::PanelBulkDelete
            | Self::PanelBulkForceDelete => Effect::Destroy,
            _ => Effect::None,
        }
    }

    /// Whether the route is also requested on a record outside the role's
    /// policy scope.
    pub(super) fn on_other_record(self) -> bool {
        matches!(self.rule(), Rule::Record | Rule::Listed)
    }
}

/// What the declared permissions say about `requires` under `rule`, for
/// `ctx` on a record with `values`.
pub(super) fn expect(
    entry: &ResourceEntry,
    requires: &[Ability],
    rule: Rule,
    ctx: &Context,
    values: &[Value],
) -> Expected {
    if !requires.iter().all(|a| ctx.can(entry.permission(*a))) {
        return Expected::Denied;
    }
    let meta = entry.meta();
    let scope = scope_of(meta, ctx);
    match rule {
        Rule::Permission => Expected::Allowed,
        Rule::Record if admits(meta, &scope, values) => Expected::Allowed,
        Rule::Record => Expected::Hidden,
        Rule::Listed if admits(meta, &scope, values) => Expected::Allowed,
        Rule::Create if scope != Scope::None => Expected::Allowed,
        Rule::Everything if scope == Scope::All && ctx.can(VIEW_AUDIT) => Expected::Allowed,
        Rule::Listed | Rule::Create | Rule::Everything => Expected::Denied,
    }
}
