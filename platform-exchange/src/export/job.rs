//! Large exports as a job: the file is written to a storage disk and the
//! user is sent a notification with a signed link that expires: through
//! the notifications capability when it is added ([`ExportReady`]: the
//! bell and mail, as the user's preferences allow), else to the bell.

use platform_core::Platform;
use platform_core::error::Result;
use platform_core::notification::Notice;
use platform_core::notify::{MailMessage, Notification, Recipient};
use platform_core::query::ListQuery;
use platform_core::repo::Records;
use platform_core::storage::{Disks, StorageExt, UrlOptions};
use platform_jobs::{Job, JobContext, JobError, Jobs, Options, job};
use platform_notify::Notifier;
use serde::{Deserialize, Serialize};

use super::http::ExportAnswer;
use super::{Export, ExportConfig, Format, parse_params};

/// Writes one export to a storage disk and notifies the user who asked
/// for it with a signed download link. Dispatched by the export entry
/// points when an export counts more rows than
/// [`ExportConfig::threshold`]; runs with that user's permissions as they
/// are when it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportJob {
    /// The resource's plural name.
    pub resource: String,
    /// The list parameters (`search`, `sort`, `filter[..]`, `trashed`).
    pub params: Vec<(String, String)>,
    /// The columns, if chosen.
    pub columns: Option<Vec<String>>,
    /// The format.
    pub format: Format,
}

#[job(
    name = "exchange_export",
    queue = "default",
    max_attempts = 2,
    timeout = "1h"
)]
impl Job for ExportJob {
    async fn handle(self, cx: &JobContext) -> std::result::Result<(), JobError> {
        let platform = cx.platform();
        let user = cx
            .actor()
            .map(|a| a.user_id)
            .ok_or_else(|| JobError::fatal("an export job acts for a user"))?;
        let records = platform
            .records(&self.resource, cx.context())
            .ok_or_else(|| JobError::fatal(format!("unknown resource `{}`", self.resource)))?;
        let config = platform
            .get::<ExportConfig>()
            .map(|c| (*c).clone())
            .unwrap_or_default();
        let pairs = self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let (query, _, _) = parse_params(pairs).map_err(|e| JobError::fatal(format!("{e:?}")))?;
        let (url, rows) = write_to_disk(
            platform,
            &records,
            query,
            self.format,
            self.columns.as_deref(),
            &config,
            cx.job_id(),
        )
        .await
        .map_err(|e| match e {
            platform_core::Error::PermissionDenied { .. }
            | platform_core::Error::Validation(_)
            | platform_core::Error::Unsupported(_) => JobError::fatal(e),
            other => JobError::new(other),
        })?;
        let ready = ExportReady {
            label: records.meta().plural_label().to_owned(),
            rows,
            hours: config.link_ttl.as_secs().div_ceil(3600),
            url,
        };
        match platform.get::<Notifier>() {
            Some(notifier) => {
                notifier.notify(user, &ready).await.map_err(JobError::new)?;
            }
            None => {
                platform
                    .notifications()
                    .send(user, ready.notice())
                    .await
                    .map_err(JobError::new)?;
            }
        }
        Ok(())
    }
}

/// "Your export is ready": sent to the user who asked for a queued export,
/// with its signed, expiring download link, to the panel's bell and by
/// mail (each user can turn either off on the notification settings page).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportReady {
    /// The resource's plural label (`Invoices`).
    pub label: String,
    /// The rows exported.
    pub rows: u64,
    /// How many hours the link works.
    pub hours: u64,
    /// The signed download link.
    pub url: String,
}

impl ExportReady {
    fn title(&self) -> String {
        format!("Export of {} ready", self.label)
    }
    fn body(&self) -> String {
        format!(
            "{} rows exported. The download link works for {} hours.",
            self.rows, self.hours
        )
    }
    fn notice(&self) -> Notice {
        Notice::new(self.title(), self.body()).with_url(self.url.clone())
    }
}

impl Notification for ExportReady {
    const NAME: &'static str = "export_ready";
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec!["database", "mail"]
    }
    fn to_database(&self, _to: &Recipient) -> Option<Notice> {
        Some(self.notice())
    }
    fn to_mail(&self, _to: &Recipient) -> Option<MailMessage> {
        Some(
            MailMessage::new(self.title())
                .line(self.body())
                .action("Download", self.url.clone()),
        )
    }
    // Not sent to webhooks or logs: the link is a credential.
    fn to_data(&self, _to: &Recipient) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "label": self.label, "rows": self.rows }))
    }
}

platform_notify::register_notification!(ExportReady);

/// Writes the export to the configured disk under
/// `exports/<id>/<plural>-<time>.<ext>`; returns its signed URL and the
/// rows written.
pub(crate) async fn write_to_disk(
    platform: &Platform,
    records: &Records,
    query: ListQuery,
    format: Format,
    columns: Option<&[String]>,
    config: &ExportConfig,
    id: &str,
) -> Result<(String, u64)> {
    let disks = platform.get::<Disks>().ok_or_else(|| {
        platform_core::Error::Configuration(
            "queued exports need storage disks: add FileStorage to the platform".into(),
        )
    })?;
    let disk_name = config
        .disk
        .clone()
        .unwrap_or_else(|| disks.default_name().to_owned());
    let disk = disks.disk(&disk_name)?;
    let export = Export::new(records.clone(), query, columns)?.batch_size(config.batch);
    let temp = tempfile::Builder::new()
        .prefix("platform-export-")
        .suffix(&format!(".{}", format.extension()))
        .tempfile()
        .map_err(super::pipeline::io_error)?
        .into_temp_path();
    let rows = export.write_file(format, &temp).await?;
    let name = format!(
        "{}-{}.{}",
        records.meta().plural(),
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        format.extension()
    );
    let safe_id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    let path = format!("exports/{safe_id}/{name}");
    let file = tokio::fs::File::open(&temp)
        .await
        .map_err(super::pipeline::io_error)?;
    disk.put_reader(&path, file).await?;
    let url = disks.temporary_url(
        &disk_name,
        &path,
        config.link_ttl,
        UrlOptions::download(name),
    )?;
    Ok((url, rows))
}

impl ExportJob {
    /// Queues the export when it counts more rows than the threshold and
    /// the platform has jobs and disks and the actor is a user (who is
    /// notified); `None` means "answer it directly".
    pub(crate) async fn maybe_queue(
        platform: &Platform,
        records: &Records,
        query: &ListQuery,
        format: Format,
        columns: Option<&[String]>,
        config: &ExportConfig,
    ) -> Result<Option<ExportAnswer>> {
        let (Some(jobs), Some(_)) = (platform.get::<Jobs>(), platform.get::<Disks>()) else {
            return Ok(None);
        };
        if records.context().actor().user_id().is_none() {
            return Ok(None);
        }
        let Some(params) = super::panel::query_params(query) else {
            return Ok(None);
        };
        let rows = records.count(query).await?.value();
        if rows <= config.threshold {
            return Ok(None);
        }
        let job = ExportJob {
            resource: records.meta().plural().to_owned(),
            params,
            columns: columns.map(<[String]>::to_vec),
            format,
        };
        let dispatched = jobs
            .dispatch_with(job, Options::new().on_behalf_of(records.context()))
            .await?;
        Ok(Some(ExportAnswer::Queued {
            job_id: dispatched.id().unwrap_or_default().to_owned(),
            rows,
        }))
    }
}
