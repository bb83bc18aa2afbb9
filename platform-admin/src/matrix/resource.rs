//! Every route of one resource, as one subject: the sample each step
//! needs, the request, and the record read back afterwards.

use platform_core::context::Context;
use platform_core::permission::VIEW_AUDIT;
use platform_core::policy::Scope;
use platform_core::resource::{FieldMeta, ResourceEntry, ResourceMeta};
use platform_core::value::{FieldType, Value};
use platform_core::{Error, Result};

use super::fixtures::{Run, Sample, Subject, conds_of, scope_of};
use super::plan::{Effect, Rule, State, Step, expect, same_record};
use super::report::{Actual, MatrixRow, RowKind, Surface};

impl Run {
    /// Every route of one resource, as one subject.
    pub(super) async fn resource(
        &self,
        si: usize,
        subject: &Subject,
        ri: usize,
        entry: &ResourceEntry,
    ) -> Result<Vec<MatrixRow>> {
        let meta = entry.meta();
        let mut rows = Vec::new();
        let own_conds = conds_of(scope_of(meta, &subject.panel_ctx));
        let mut own = self.create_sample(meta, &own_conds).await?;
        for (k, step) in Step::ALL.iter().enumerate() {
            if let Some(row) = self.step(subject, entry, &mut own, *step, false).await? {
                rows.push(MatrixRow {
                    order: (ri, k, si),
                    ..row
                });
            }
        }
        let restricted = [Surface::Api, Surface::Panel]
            .iter()
            .any(|s| scope_of(meta, subject.ctx(*s)) != Scope::All);
        if meta.policy_fn().is_some() && subject.auth.is_some() && restricted {
            let mut other = self.create_sample(meta, &[]).await?;
            for (k, step) in Step::ALL.iter().enumerate() {
                if !step.on_other_record() {
                    continue;
                }
                if let Some(row) = self.step(subject, entry, &mut other, *step, true).await? {
                    rows.push(MatrixRow {
                        order: (ri, Step::ALL.len() + k, si),
                        ..row
                    });
                }
            }
        }
        Ok(rows)
    }

    /// Whether the sample is there (and not soft-deleted).
    async fn is_live(&self, meta: &ResourceMeta, sample: &Sample) -> Result<bool> {
        Ok(self.state(meta, sample).await? == State::Live)
    }

    /// Where the sample is. The record with its id must also have its
    /// values: SQLite hands the id of a deleted row to the next insert,
    /// which may be another role's record.
    async fn state(&self, meta: &ResourceMeta, sample: &Sample) -> Result<State> {
        let rec = match self
            .console(meta)?
            .find_with_trashed(sample.id.clone())
            .await
        {
            Ok(rec) => rec,
            Err(Error::NotFound { .. }) => return Ok(State::Gone),
            Err(e) => return Err(e),
        };
        if !same_record(meta, rec.values(), &sample.values) {
            return Ok(State::Gone);
        }
        let deleted = meta
            .deleted_at()
            .and_then(|d| rec.get(d.name()))
            .is_some_and(|v| !v.is_null());
        Ok(if deleted { State::Deleted } else { State::Live })
    }

    /// Brings the sample back (restores it, or makes a new one) when a
    /// request deleted it.
    async fn ensure_live(&self, meta: &'static ResourceMeta, sample: &mut Sample) -> Result<()> {
        match self.state(meta, sample).await? {
            State::Live => Ok(()),
            State::Deleted => {
                let rec = self.console(meta)?.restore(sample.id.clone()).await?;
                sample.values = rec.values().to_vec();
                Ok(())
            }
            State::Gone => {
                *sample = self.create_sample(meta, &sample.conds.clone()).await?;
                Ok(())
            }
        }
    }

    /// One request: prepare the sample, send, classify, compare.
    pub(super) async fn step(
        &self,
        subject: &Subject,
        entry: &ResourceEntry,
        sample: &mut Sample,
        step: Step,
        other: bool,
    ) -> Result<Option<MatrixRow>> {
        let meta = entry.meta();
        if !self.available(step, meta, sample) {
            return Ok(None);
        }
        self.ensure_live(meta, sample).await?;
        if step.effect() == Effect::Restore {
            self.console(meta)?.delete(sample.id.clone()).await?;
        }
        let surface = step.surface();
        let ctx = subject.ctx(surface);
        let Some(probe) = self.probe(step, meta, sample, ctx)? else {
            return Ok(None);
        };
        let rule = if probe.needle.is_none() && step.rule() == Rule::Listed {
            if other {
                // Without the sample's text there is nothing to look for.
                return Ok(None);
            }
            Rule::Permission
        } else {
            step.rule()
        };
        let expected = expect(entry, step.requires(), rule, ctx, &sample.values);
        let (status, location, body) = self.send(subject, surface, &probe).await?;
        let mut actual = self.classify(surface, status, location.as_deref());
        let mut note = None;
        if let Some(needle) = &probe.needle
            && actual == Actual::Allowed
            && !body.contains(needle.as_str())
        {
            actual = Actual::Denied;
            note = Some("answered without the record".to_owned());
        }
        // A denial must not have done anything.
        match step.effect() {
            Effect::Destroy => {
                if actual != Actual::Allowed && !self.is_live(meta, sample).await? {
                    note = Some(format!(
                        "deleted the record although it answered {}",
                        status.as_u16()
                    ));
                    actual = Actual::Allowed;
                }
            }
            Effect::Restore => {
                if actual != Actual::Allowed && self.is_live(meta, sample).await? {
                    note = Some(format!(
                        "restored the record although it answered {}",
                        status.as_u16()
                    ));
                    actual = Actual::Allowed;
                }
            }
            Effect::Update => {
                if let Ok(rec) = self.console(meta)?.find(sample.id.clone()).await {
                    if let Some((field, new)) = &probe.update
                        && actual != Actual::Allowed
                        && rec.get(field) == Some(new)
                    {
                        note = Some(format!(
                            "changed the record although it answered {}",
                            status.as_u16()
                        ));
                        actual = Actual::Allowed;
                    }
                    sample.values = rec.values().to_vec();
                }
            }
            Effect::None => {}
        }
        let mut requires: Vec<&str> = step
            .requires()
            .iter()
            .map(|a| entry.permission(*a))
            .collect();
        if meta.policy_fn().is_some() && rule != Rule::Permission {
            requires.push(if rule == Rule::Everything {
                "policy (all records)"
            } else {
                "policy"
            });
        }
        if rule == Rule::Everything {
            requires.push(VIEW_AUDIT);
        }
        Ok(Some(MatrixRow {
            kind: RowKind::Resource,
            resource: meta.plural(),
            surface,
            route: if other {
                format!("{} [other's record]", probe.label)
            } else {
                probe.label
            },
            role: subject.label.clone(),
            requires: requires.join(" + "),
            expected,
            actual,
            status: status.as_u16(),
            note,
            order: (0, 0, 0),
        }))
    }

    fn available(&self, step: Step, meta: &ResourceMeta, sample: &Sample) -> bool {
        let mounted = match step.surface() {
            Surface::Api => self.api.is_some() && meta.in_api(),
            Surface::Panel => self.panel.is_some() && meta.in_admin(),
        };
        mounted
            && match step {
                Step::ApiRestore
                | Step::PanelRestore
                | Step::PanelBulkRestore
                | Step::PanelBulkForceDelete => meta.is_soft_delete(),
                Step::PanelRestoreVersion => meta.is_audited() && sample.audit.is_some(),
                Step::PanelSearch => sample.token.is_some(),
                _ => true,
            }
    }

    /// The field an update changes, with its new value: a plain field
    /// (no relation, choice, secret, personal data or policy field), text
    /// first.
    pub(super) fn update_for(
        &self,
        meta: &ResourceMeta,
        ctx: &Context,
    ) -> Result<Option<(&'static FieldMeta, Value)>> {
        let conds = conds_of(scope_of(meta, ctx));
        let eligible = |f: &&'static FieldMeta| {
            !(f.is_primary_key()
                || f.is_managed()
                || f.is_hidden()
                || f.is_read_only()
                || f.is_encrypted()
                || f.is_pii()
                || f.belongs_to_meta().is_some()
                || !f.choice_list().is_empty()
                || conds.iter().any(|(n, _)| *n == f.name()))
        };
        let fields: Vec<&'static FieldMeta> = meta.field_list().iter().filter(eligible).collect();
        let pick = fields
            .iter()
            .find(|f| f.ty().is_string())
            .or_else(|| {
                fields.iter().find(|f| {
                    matches!(
                        f.ty(),
                        FieldType::I32 | FieldType::I64 | FieldType::F64 | FieldType::Date
                    )
                })
            })
            .copied();
        match pick {
            None => Ok(None),
            Some(f) => {
                let n = self.seq.next();
                Ok(Some((f, self.value_for(meta, f, n, &self.fixtures)?)))
            }
        }
    }
}
