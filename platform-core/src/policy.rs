//! Record-level policies: which records of a resource an actor may see and
//! act on, declared once and applied everywhere (lists, counts, finds,
//! updates, deletes, bulk operations; the API and the panel alike).
//!
//! A policy is a function from the [`Context`] to a [`Scope`]. The scope
//! becomes a SQL condition on lists and bulk operations, and a check on
//! single records; records outside it answer "not found", so a policy never
//! reveals that a hidden record exists.
//!
//! ```
//! use platform_core::context::Context;
//! use platform_core::policy::Scope;
//! use platform_core::prelude::*;
//!
//! /// Users see their own notes; whoever may `view_any_all_notes` sees all.
//! fn own_notes(ctx: &Context) -> Scope {
//!     match ctx.actor().user_id() {
//!         _ if ctx.can("manage_all_notes") => Scope::All,
//!         Some(id) => Scope::eq("owner_id", id),
//!         None => Scope::All, // the console, jobs, the system
//!     }
//! }
//!
//! #[derive(Resource, Debug, Clone)]
//! #[resource(policy = own_notes)]
//! pub struct Note {
//!     #[resource(primary_key)]
//!     pub id: i64,
//!     #[resource(filter)]
//!     pub owner_id: i64,
//!     pub body: String,
//! }
//! # assert!(<Note as platform_core::Resource>::META.policy_fn().is_some());
//! ```

use crate::context::Context;
use crate::value::Value;

/// Which records an actor may reach.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Every record.
    All,
    /// No record at all.
    None,
    /// Records whose fields equal these values (all of them).
    Where(Vec<(&'static str, Value)>),
}

impl Scope {
    /// Records whose `field` equals `value`.
    pub fn eq(field: &'static str, value: impl Into<Value>) -> Self {
        Self::Where(vec![(field, value.into())])
    }

    /// Also requires `field` to equal `value`.
    pub fn and(self, field: &'static str, value: impl Into<Value>) -> Self {
        match self {
            Self::All => Self::eq(field, value),
            Self::None => Self::None,
            Self::Where(mut v) => {
                v.push((field, value.into()));
                Self::Where(v)
            }
        }
    }

    /// Whether a record with `get(field)` values is inside.
    pub fn admits<'a>(&self, get: impl Fn(&str) -> Option<&'a Value>) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Where(conds) => conds.iter().all(|(f, v)| get(f) == Some(v)),
        }
    }
}

/// A record-level policy: the scope of records `ctx` may reach.
pub type PolicyFn = fn(&Context) -> Scope;
