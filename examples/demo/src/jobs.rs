//! The demo's background work: the Jobs capability (queues on the main
//! database, workers in `serve`, the queue dashboard at `/admin/jobs`) and
//! one small capability of its own, `invoice-notices`: when a user sets an
//! invoice's status to `sent`, an outbox subscriber queues the job
//! `invoice_sent` on that user's behalf, and the job puts "Invoice N sent"
//! in their notification bell.
//!
//! An invoice of 0.00 makes the job fail on every attempt (a poison job):
//! after [`InvoiceSent::MAX_ATTEMPTS`] it lands in the dashboard's failed
//! list with its error, where it can be retried or forgotten.

use std::time::Duration;

use platform_core::capability::{Capability, Setup};
use platform_core::notification::Notice;
use platform_core::outbox::Event;
use platform_core::prelude::*;
use platform_jobs::{Job, JobContext, JobError, Jobs, Options, job};
use serde::{Deserialize, Serialize};

use crate::domain::Invoice;

/// The Jobs capability as the demo configures it: on the main database
/// (SQLite or PostgreSQL), on `PLATFORM_QUEUE_URL` when set, and on MySQL
/// without one in the SQLite file `.platform/jobs.db` (apalis has no MySQL
/// back end).
pub(crate) fn capability(database_url: &str) -> Jobs {
    let jobs = Jobs::new();
    let queue_url = std::env::var("PLATFORM_QUEUE_URL").is_ok_and(|v| !v.trim().is_empty());
    if database_url.starts_with("mysql:") && !queue_url {
        // Standard error: some commands' standard output is their result.
        eprintln!(
            "Jobs: MySQL/MariaDB has no queue back end; jobs wait in .platform/jobs.db \
             (set PLATFORM_QUEUE_URL=redis://... to share them between nodes)"
        );
        return jobs.queue_url("sqlite://.platform/jobs.db?mode=rwc");
    }
    jobs
}

/// Tells the user who sent an invoice that it went out (a bell
/// notification). Fails, and is retried, while the invoice's amount is
/// zero: there is nothing to send.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InvoiceSent {
    /// The invoice's id.
    pub(crate) invoice_id: i64,
}

// Named `invoice_sent` after the type; registered for every worker.
#[job(max_attempts = 3, backoff = "1s", timeout = "30s")]
impl Job for InvoiceSent {
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let Some(actor) = cx.actor() else {
            return Err(JobError::fatal(
                "invoice_sent runs on behalf of a user, and this one has none",
            ));
        };
        // Read as the user, with the permissions they hold now: one who
        // lost `view_invoice` since gets no notice (the job fails for good).
        let invoice = cx
            .platform()
            .repo::<Invoice>(cx.context())
            .find(self.invoice_id)
            .await?;
        if invoice.amount_cents == 0 {
            return Err(JobError::new(format!(
                "invoice {} has an amount of 0.00: nothing to send",
                invoice.number
            )));
        }
        cx.platform()
            .notifications()
            .send(
                actor.user_id,
                Notice::new(
                    format!("Invoice {} sent", invoice.number),
                    format!(
                        "{} was marked as sent; amount {}.{:02}.",
                        invoice.number,
                        invoice.amount_cents / 100,
                        invoice.amount_cents % 100
                    ),
                )
                .with_url(format!("/admin/invoices/{}", invoice.id)),
            )
            .await?;
        Ok(())
    }
}

/// The events `invoice-notices` wants: an update that set the status to
/// `sent`, made by a user. Decided in the write's transaction, so other
/// changes (the seed's bulk load, creates, edits of other fields) write no
/// outbox row.
fn set_to_sent_by_a_user(event: &Event) -> bool {
    event.event == "updated"
        && event.actor.user_id.is_some()
        && event.new_value::<String>("status").as_deref() == Some("sent")
}

/// The demo's own capability: invoice notices (needs [`Jobs`]).
pub(crate) struct InvoiceNotices;

impl Capability for InvoiceNotices {
    fn name(&self) -> &'static str {
        "invoice-notices"
    }

    fn setup(&self, setup: &mut Setup) {
        setup.on_start(|platform| async move {
            let jobs = platform.get::<Jobs>().ok_or_else(|| {
                Error::Configuration("invoice-notices needs the jobs capability".into())
            })?;
            platform.outbox().subscribe_to_where::<Invoice>(
                "invoice-notices",
                set_to_sent_by_a_user,
                move |event: Event| {
                    let jobs = jobs.clone();
                    async move {
                        let Ok(invoice_id) = event.record_id.parse::<i64>() else {
                            return Ok(());
                        };
                        // One job per event, however often the outbox
                        // delivers it.
                        jobs.dispatch_with(
                            InvoiceSent { invoice_id },
                            Options::new()
                                .on_behalf_of_actor(&event)
                                .unique_key(format!("invoice_sent:{}", event.id))
                                .unique_for(Duration::from_secs(24 * 3600)),
                        )
                        .await?;
                        Ok(())
                    }
                },
            );
            Ok(())
        });
    }
}
