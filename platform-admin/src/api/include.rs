//! `?include=customer,...` on the list and show routes: the records a
//! page's `belongs_to` fields refer to, embedded in each record's
//! `_embedded` object.
//!
//! - A relation is named after its `belongs_to` field without the `_id`
//!   suffix (`customer_id` -> `customer`; a field without the suffix keeps
//!   its name). Fields that are `pii` or `encrypted`, and targets the API
//!   does not serve, cannot be included.
//! - The related records are read through the platform's read path as the
//!   caller: one `IN (...)` read per relation per page (one `find` on
//!   show), so the target's permissions, record policy, soft deletion and
//!   masking apply. Including a relation needs what reading it directly
//!   needs: `view_any_<target>` on a list, `view_<target>` on show;
//!   without it the request answers `403` naming the permission.
//! - `_embedded.<relation>` is the related record, `null` when the field
//!   is `null`, and left out when the record is not visible to the caller
//!   (outside its record policy, soft-deleted).
//! - Unknown names answer `422` naming them and listing the relations
//!   there are (an empty name too: `include=` names nothing to include);
//!   nested names (`customer.customer`) are not supported. Repeated names
//!   are included once.

use std::collections::HashMap;

use platform_core::error::FieldErrors;
use platform_core::permission::Ability;
use platform_core::query::{FilterOp, ListQuery};
use platform_core::repo::{Record, Records};
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::Value;

use super::context::ApiContext;
use super::extract::Params;
use crate::error::{Error, Result};

/// The key of a record's JSON that holds the included records.
pub const EMBEDDED_KEY: &str = "_embedded";
/// The longest `include` value taken (all occurrences together).
pub const MAX_INCLUDE_LEN: usize = 512;
/// How many unknown names one error message repeats.
const MAX_NAMED: usize = 5;

/// One relation a client may include.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relation {
    /// Its name in `include` and `_embedded`.
    pub(crate) name: &'static str,
    /// The `belongs_to` field.
    pub(crate) field: &'static FieldMeta,
    /// The resource it refers to.
    pub(crate) target: &'static ResourceMeta,
}

/// The relations of `meta` that may be included, in field order.
pub(crate) fn relations(meta: &'static ResourceMeta) -> Vec<Relation> {
    meta.field_list()
        .iter()
        .filter(|f| !f.is_hidden() && !f.is_pii() && !f.is_encrypted())
        .filter_map(|f| {
            let target = f.belongs_to_meta().filter(|t| t.in_api())?;
            let name = f
                .name()
                .strip_suffix("_id")
                .filter(|n| !n.is_empty())
                .unwrap_or(f.name());
            Some(Relation {
                name,
                field: f,
                target,
            })
        })
        .collect()
}

/// The relations named by the request's `include` parameters (every
/// occurrence, comma-separated, exact names; repeats are ignored, an empty
/// name is an error). Problems are added to `errors` under `include`.
pub(crate) fn parse(
    meta: &'static ResourceMeta,
    params: &Params,
    errors: &mut FieldErrors,
) -> Vec<Relation> {
    let values: Vec<&str> = params
        .pairs()
        .filter(|(k, _)| *k == "include")
        .map(|(_, v)| v)
        .collect();
    if values.is_empty() {
        return Vec::new();
    }
    if values.iter().map(|v| v.len() + 1).sum::<usize>() > MAX_INCLUDE_LEN + 1 {
        errors.add(
            "include",
            "too_long",
            format!("must be at most {MAX_INCLUDE_LEN} characters"),
        );
        return Vec::new();
    }
    let known = relations(meta);
    let mut out: Vec<Relation> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for name in values.iter().flat_map(|v| v.split(',')) {
        match known.iter().find(|r| r.name == name) {
            Some(r) => {
                if !out.iter().any(|o| o.name == r.name) {
                    out.push(*r);
                }
            }
            None => {
                if !unknown.contains(&name) {
                    unknown.push(name);
                }
            }
        }
    }
    if !unknown.is_empty() {
        let mut named: Vec<String> = unknown
            .iter()
            .take(MAX_NAMED)
            .map(|n| {
                if n.is_empty() {
                    "an empty name".to_owned()
                } else {
                    format!("`{}`", n.chars().take(64).collect::<String>())
                }
            })
            .collect();
        if unknown.len() > MAX_NAMED {
            named.push(format!("and {} more", unknown.len() - MAX_NAMED));
        }
        let allowed = if known.is_empty() {
            format!("{} have no relations to include", meta.plural())
        } else {
            let names: Vec<&str> = known.iter().map(|r| r.name).collect();
            format!("allowed: {}", names.join(", "))
        };
        let nested = if unknown.iter().any(|n| n.contains('.')) {
            "; nested relations are not supported"
        } else {
            ""
        };
        errors.add(
            "include",
            "unknown_relation",
            format!(
                "names no relation of {}: {} ({allowed}{nested})",
                meta.plural(),
                named.join(", ")
            ),
        );
    }
    out
}

/// The records of each relation's target, for the caller, checked for the
/// permission reading them needs (`view_any_` for a list, `view_` for one
/// record) before anything is read.
pub(crate) fn targets(
    api: &ApiContext,
    rels: &[Relation],
    single: bool,
) -> Result<Vec<(Relation, Records)>> {
    rels.iter()
        .map(|r| {
            let records = api.records(r.target.plural())?;
            let ability = if single {
                Ability::View
            } else {
                Ability::ViewAny
            };
            records
                .context()
                .authorize(records.entry().permission(ability))?;
            Ok((*r, records))
        })
        .collect()
}

/// Reads the related records of `items` and adds `_embedded` to each
/// record's JSON (`out`, in the same order).
pub(crate) async fn embed(
    targets: &[(Relation, Records)],
    items: &[Record],
    out: &mut [serde_json::Value],
    single: bool,
) -> Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    let mut embedded: Vec<serde_json::Map<String, serde_json::Value>> =
        vec![serde_json::Map::new(); items.len()];
    for (rel, records) in targets {
        let ctx = records.context();
        let found = read(rel, records, items, single).await?;
        for (item, emb) in items.iter().zip(embedded.iter_mut()) {
            let v = item.get(rel.field.name()).unwrap_or(&Value::Null);
            if v.is_null() {
                emb.insert(rel.name.to_owned(), serde_json::Value::Null);
            } else if let Some(r) = found.get(&v.display()) {
                emb.insert(rel.name.to_owned(), r.to_json(ctx));
            }
        }
    }
    for (o, emb) in out.iter_mut().zip(embedded) {
        if let Some(map) = o.as_object_mut() {
            map.insert(EMBEDDED_KEY.to_owned(), serde_json::Value::Object(emb));
        }
    }
    Ok(())
}

/// The records `rel` refers to from `items`, by id text: one read.
async fn read(
    rel: &Relation,
    records: &Records,
    items: &[Record],
    single: bool,
) -> Result<HashMap<String, Record>> {
    let mut ids: Vec<&Value> = items
        .iter()
        .filter_map(|i| i.get(rel.field.name()))
        .filter(|v| !v.is_null())
        .collect();
    ids.sort_by_key(|v| v.display());
    ids.dedup();
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    if single {
        match records.find(ids[0].clone()).await {
            Ok(r) => {
                out.insert(ids[0].display(), r);
            }
            Err(platform_core::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::from(e)),
        }
        return Ok(out);
    }
    let wanted: Vec<String> = ids.iter().map(|v| v.display()).collect();
    let size = u32::try_from(wanted.len()).unwrap_or(u32::MAX);
    let query = ListQuery::new()
        .filter(rel.target.primary_key().name(), FilterOp::In(wanted))
        .page_size(size);
    let page = records.list(&query).await?;
    for r in page.items {
        out.insert(r.id().display(), r);
    }
    Ok(out)
}
