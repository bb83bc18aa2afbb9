//! One run's state: unique sample values, the records the requests act on
//! (with their parent fixtures) and the subjects they are made as.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use chrono::{NaiveDate, Utc};
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::policy::Scope;
use platform_core::repo::{Changes, Records};
use platform_core::resource::{FieldMeta, ResourceEntry, ResourceMeta};
use platform_core::value::{FieldType, Value};
use platform_core::{Error, Platform, Result};

use super::report::Surface;
use super::{CSRF, ROLE_PREFIX};
use crate::panel::PanelAuth;

/// Unique values for samples: a run id and a counter.
#[derive(Debug)]
pub(super) struct Gen {
    pub(super) run: String,
    pub(super) next: AtomicU64,
}

impl Gen {
    pub(super) fn new() -> Self {
        let mut b = [0u8; 4];
        platform_core::crypto::random_bytes(&mut b);
        let run: String = b
            .iter()
            .map(|x| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(*x) % 36]))
            .collect();
        Self {
            run,
            next: AtomicU64::new(1),
        }
    }
    pub(super) fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
    /// The searchable text of sample `n`: letters and digits only, and no
    /// sample's token contains another's.
    pub(super) fn token(&self, n: u64) -> String {
        format!("mx{}n{n}x", self.run)
    }
}

fn base36(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn sample_error(meta: &ResourceMeta, what: impl fmt::Display) -> Error {
    Error::Configuration(format!(
        "the permission matrix cannot make a sample `{}` from its metadata: {what}",
        meta.name()
    ))
}

/// Someone the requests are made as.
#[derive(Debug, Clone)]
pub(super) struct Subject {
    pub(super) label: String,
    pub(super) token: Option<String>,
    pub(super) auth: Option<PanelAuth>,
    pub(super) panel_ctx: Context,
    api_ctx: Context,
}

impl Subject {
    pub(super) fn ctx(&self, surface: Surface) -> &Context {
        match surface {
            Surface::Api => &self.api_ctx,
            Surface::Panel => &self.panel_ctx,
        }
    }
}

/// A record the requests act on.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub(super) id: Value,
    /// Its values in field order (plain text).
    pub(super) values: Vec<Value>,
    /// The policy conditions it was created under (its owner).
    pub(super) conds: Vec<(&'static str, Value)>,
    /// Its searchable token, when a search field holds it whole.
    pub(super) token: Option<String>,
    /// Its `created` audit entry.
    pub(super) audit: Option<i64>,
}

#[derive(Debug)]
pub(super) struct Run {
    pub(super) platform: Platform,
    pub(super) router: Router,
    pub(super) api: Option<String>,
    pub(super) panel: Option<String>,
    pub(super) seq: Gen,
    /// A parent record per table, for `belongs_to` fields.
    pub(super) fixtures: HashMap<&'static str, Value>,
}

pub(super) fn scope_of(meta: &ResourceMeta, ctx: &Context) -> Scope {
    meta.policy_fn().map_or(Scope::All, |p| p(ctx))
}

pub(super) fn conds_of(scope: Scope) -> Vec<(&'static str, Value)> {
    match scope {
        Scope::Where(c) => c,
        _ => Vec::new(),
    }
}

pub(super) fn admits(meta: &ResourceMeta, scope: &Scope, values: &[Value]) -> bool {
    scope.admits(|f| meta.field_index(f).and_then(|i| values.get(i)))
}

impl Run {
    pub(super) fn console(&self, meta: &ResourceMeta) -> Result<Records> {
        self.platform
            .records(meta.plural(), &Context::console())
            .ok_or_else(|| sample_error(meta, "it is not registered"))
    }

    /// A value for `f` from its metadata; `n` makes it unique.
    pub(super) fn value_for(
        &self,
        meta: &ResourceMeta,
        f: &FieldMeta,
        n: u64,
        fixtures: &HashMap<&'static str, Value>,
    ) -> Result<Value> {
        if let Some(target) = f.belongs_to_meta() {
            return match fixtures.get(target.table()) {
                Some(id) => Ok(id.clone()),
                None if f.is_nullable() => Ok(Value::Null),
                None => Err(sample_error(
                    meta,
                    format!(
                        "field `{}` needs a `{}` that cannot be created first",
                        f.name(),
                        target.name()
                    ),
                )),
            };
        }
        let choices = f.choice_list();
        if !choices.is_empty() {
            let i = if f.is_unique() {
                usize::try_from(n).unwrap_or(0) % choices.len()
            } else {
                0
            };
            return Ok(Value::Text(choices[i].to_owned()));
        }
        let int = i64::try_from(n).unwrap_or(i64::MAX / 2);
        Ok(match f.ty() {
            FieldType::Bool => Value::Bool(true),
            FieldType::I32 => Value::Int(1_000 + int % 1_000_000),
            FieldType::I64 => Value::Int(1_000_000 + int),
            FieldType::F64 => Value::Float(1.5 + int as f64),
            FieldType::String | FieldType::Text => {
                let token = self.seq.token(n);
                let text = if f.is_email() {
                    format!("{}@matrix.example", token.to_lowercase())
                } else if f.ty() == FieldType::Text {
                    format!("{token} permission matrix sample")
                } else {
                    token
                };
                let max = f.max_len().map_or(usize::MAX, |m| m as usize);
                if text.chars().count() <= max {
                    Value::Text(text)
                } else if f.is_unique() {
                    let short = base36(n);
                    if short.len() > max {
                        return Err(sample_error(
                            meta,
                            format!("unique field `{}` is too short for unique values", f.name()),
                        ));
                    }
                    Value::Text(short)
                } else {
                    Value::Text(text.chars().take(max).collect())
                }
            }
            FieldType::Date => Value::Date(
                NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
                    + chrono::Days::new(n % 365),
            ),
            FieldType::DateTime => Value::DateTime(
                chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default(),
            ),
            FieldType::Uuid => Value::Uuid(uuid::Uuid::new_v4()),
            FieldType::Json => Value::Json(serde_json::json!({ "matrix": n })),
            other => {
                return Err(sample_error(
                    meta,
                    format!(
                        "field `{}` has a type ({}) it cannot fill",
                        f.name(),
                        other.name()
                    ),
                ));
            }
        })
    }

    /// The writable values of a new record of `meta`, with `conds` (the
    /// policy's fields) applied; returns the sample number too.
    pub(super) fn values(
        &self,
        meta: &ResourceMeta,
        conds: &[(&'static str, Value)],
        fixtures: &HashMap<&'static str, Value>,
    ) -> Result<(u64, Vec<(&'static FieldMeta, Value)>)> {
        let n = self.seq.next();
        let mut out = Vec::new();
        for f in meta.field_list() {
            if f.is_primary_key() || f.is_managed() {
                continue;
            }
            if let Some((_, v)) = conds.iter().find(|(name, _)| *name == f.name()) {
                out.push((f, v.clone()));
                continue;
            }
            if f.is_hidden() || f.is_read_only() {
                if f.is_nullable() {
                    continue;
                }
                return Err(sample_error(
                    meta,
                    format!(
                        "field `{}` is required but cannot be written (hidden or read-only)",
                        f.name()
                    ),
                ));
            }
            if f.belongs_to_meta()
                .is_some_and(|t| t.table() == meta.table())
            {
                if f.is_nullable() {
                    continue;
                }
                return Err(sample_error(
                    meta,
                    format!("field `{}` requires a record of its own kind", f.name()),
                ));
            }
            out.push((f, self.value_for(meta, f, n, fixtures)?));
        }
        Ok((n, out))
    }

    /// Creates a record of `meta` as the console.
    pub(super) async fn create_sample(
        &self,
        meta: &'static ResourceMeta,
        conds: &[(&'static str, Value)],
    ) -> Result<Sample> {
        self.create_sample_with(meta, conds, &self.fixtures).await
    }

    /// Creates a record of `meta` as the console, its parents from
    /// `fixtures`.
    async fn create_sample_with(
        &self,
        meta: &'static ResourceMeta,
        conds: &[(&'static str, Value)],
        fixtures: &HashMap<&'static str, Value>,
    ) -> Result<Sample> {
        let (n, values) = self.values(meta, conds, fixtures)?;
        let mut changes = Changes::new();
        for (f, v) in values {
            changes.insert(f.name(), v);
        }
        let rec = match self.console(meta)?.create(changes).await {
            Ok(r) => r,
            Err(
                e @ (Error::Validation(_)
                | Error::Conflict { .. }
                | Error::PermissionDenied { .. }
                | Error::Unsupported(_)),
            ) => return Err(sample_error(meta, e)),
            Err(e) => return Err(e),
        };
        let token = self.seq.token(n);
        // Searched for only where every role may search: a field some
        // roles may not see (personal data) is never searched for them.
        let everyone = platform_core::visibility::Visibility::new(false, false);
        let searchable = meta.search_fields().iter().any(|s| {
            meta.field(s).is_some_and(|f| everyone.sees(f))
                && rec
                    .get(s)
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains(&token))
        });
        let audit = if meta.is_audited() {
            self.platform
                .audit()
                .for_record(meta.name(), &rec.id().display(), 1)
                .await?
                .first()
                .map(|e| e.id)
        } else {
            None
        };
        Ok(Sample {
            id: rec.id().clone(),
            values: rec.values().to_vec(),
            conds: conds.to_vec(),
            token: searchable.then_some(token),
            audit,
        })
    }

    /// One parent record per table that a `belongs_to` field refers to,
    /// parents of parents first.
    pub(super) async fn create_fixtures(
        &self,
        entries: &[(usize, &ResourceEntry)],
    ) -> Result<HashMap<&'static str, Value>> {
        let mut wanted: Vec<&'static ResourceMeta> = Vec::new();
        for (_, e) in entries {
            for f in e.meta().field_list() {
                if let Some(t) = f.belongs_to_meta()
                    && t.table() != e.meta().table()
                    && !wanted.iter().any(|w| w.table() == t.table())
                {
                    wanted.push(t);
                }
            }
        }
        // Parents of parents are wanted too.
        let mut i = 0;
        while i < wanted.len() {
            let m = wanted[i];
            for f in m.field_list() {
                if let Some(t) = f.belongs_to_meta()
                    && t.table() != m.table()
                    && !wanted.iter().any(|w| w.table() == t.table())
                {
                    wanted.push(t);
                }
            }
            i += 1;
        }
        let mut done: HashMap<&'static str, Value> = HashMap::new();
        while done.len() < wanted.len() {
            let before = done.len();
            for m in &wanted {
                if done.contains_key(m.table()) {
                    continue;
                }
                let ready = m.field_list().iter().all(|f| {
                    f.belongs_to_meta().is_none_or(|t| {
                        t.table() == m.table() || done.contains_key(t.table()) || f.is_nullable()
                    })
                });
                if ready {
                    let s = self.create_sample_with(m, &[], &done).await?;
                    done.insert(m.table(), s.id);
                }
            }
            if done.len() == before {
                let left: Vec<&str> = wanted
                    .iter()
                    .filter(|m| !done.contains_key(m.table()))
                    .map(|m| m.name())
                    .collect();
                return Err(Error::Configuration(format!(
                    "the permission matrix cannot order the parents {} (required belongs_to in a cycle)",
                    left.join(", ")
                )));
            }
        }
        Ok(done)
    }

    /// The roles and users requests are made as: one user per role in the
    /// database, one role and user per generated permission, a user with no
    /// role, and anonymous.
    pub(super) async fn subjects(
        &self,
        entries: &[(usize, &ResourceEntry)],
    ) -> Result<Vec<Subject>> {
        let access = self.platform.access();
        let console = Context::console();
        let existing = access.roles().await?;
        let mut roles: Vec<String> = existing
            .iter()
            .filter(|r| !r.starts_with(ROLE_PREFIX))
            .cloned()
            .collect();
        let mut perms: Vec<String> = entries
            .iter()
            .flat_map(|(_, e)| e.permissions().all().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        // The permissions capabilities declared, each alone too, when a
        // capability page or API route is exercised.
        if self.has_capability_targets() {
            perms.extend(
                self.platform
                    .capability_permissions()
                    .iter()
                    .map(|d| d.name.clone()),
            );
        }
        for perm in perms {
            let role = format!("{ROLE_PREFIX}{perm}");
            if roles.contains(&role) {
                continue;
            }
            if !existing.contains(&role) {
                access.create_role(&console, &role).await?;
            }
            access
                .set_role_permissions(&console, &role, std::slice::from_ref(&perm))
                .await?;
            roles.push(role);
        }
        let mut out = Vec::with_capacity(roles.len() + 2);
        for (i, role) in roles.iter().enumerate() {
            out.push(self.user(i, role, Some(role)).await?);
        }
        out.push(self.user(roles.len(), "(no role)", None).await?);
        out.push(Subject {
            label: "(anonymous)".to_owned(),
            token: None,
            auth: None,
            panel_ctx: Context::default(),
            api_ctx: Context::default(),
        });
        Ok(out)
    }

    pub(super) async fn user(&self, i: usize, label: &str, role: Option<&str>) -> Result<Subject> {
        let access = self.platform.access();
        let console = Context::console();
        let user = access
            .create_user(
                &console,
                NewUser {
                    email: format!("matrix-{}-{i}@matrix.invalid", self.seq.run),
                    name: format!("matrix {label}"),
                    password: platform_core::crypto::random_token(18),
                },
            )
            .await?;
        if let Some(role) = role {
            access.assign_role(&console, user.id, role).await?;
        }
        let token = access
            .create_token(
                &console,
                user.id,
                "permission matrix",
                &[],
                Some(Utc::now() + chrono::Duration::days(1)),
            )
            .await?
            .plain_text;
        let auth = PanelAuth::for_user(&self.platform, user.id, CSRF)
            .await?
            .ok_or_else(|| Error::Configuration("a matrix user is disabled".into()))?;
        let api_actor = access.authenticate_token(&token).await?;
        Ok(Subject {
            label: label.to_owned(),
            token: Some(token),
            panel_ctx: auth.ctx.clone(),
            api_ctx: Context::new(api_actor),
            auth: Some(auth),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_contain_each_other() {
        let g = Gen::new();
        let (a, b) = (g.token(1), g.token(12));
        assert!(!b.contains(&a) && !a.contains(&b));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn base36_encodes() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }
}
