//! Removing files whose record is gone: at once when a record is
//! force-deleted (an outbox subscriber), and the orphan sweep (a task and
//! the `media:sweep` command) for whatever that missed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use platform_admin::capability::Command;
use platform_core::Platform;
use platform_core::capability::Stop;
use platform_core::context::Context;
use platform_core::error::{BoxError, Result};
use platform_core::outbox::Event;
use platform_core::resource::Resource;
use platform_core::storage::StoragePath;
use serde::Serialize;
use uuid::Uuid;

use crate::MediaItem;
use crate::library::MediaLibrary;
use crate::store;

/// The outbox filter: the record is gone for good (force-deleted, or
/// deleted where the resource has no soft deletes).
pub(crate) fn removes_record<R: Resource>(e: &Event) -> bool {
    e.event == "force_deleted" || (e.event == "deleted" && R::meta().deleted_at().is_none())
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Rows whose record no longer exists (their files removed too).
    pub rows_removed: u64,
    /// Files on the disks that no row names.
    pub files_removed: u64,
}

impl MediaLibrary {
    /// Removes every file of a record (rows and files), as the system: the
    /// outbox subscriber calls it when the record is gone for good.
    pub async fn remove_record(
        &self,
        resource: &str,
        record_id: &str,
    ) -> std::result::Result<(), BoxError> {
        let items = store::of_record(&self.db, resource, record_id, None).await?;
        self.remove_items(&items).await?;
        Ok(())
    }

    async fn remove_items(&self, items: &[MediaItem]) -> Result<()> {
        for item in items {
            let mut tx = self.db.begin().await?;
            let r = store::delete(&mut tx, item.id).await;
            tx.finish(r).await?;
            self.remove_files(item).await;
        }
        Ok(())
    }

    /// The orphan sweep: removes the rows (and files) of records that no
    /// longer exist (soft-deleted records keep theirs), then the files
    /// under `media/` of the library's disks that no row names (older than
    /// [`Media::sweep_grace`](crate::Media::sweep_grace), so an attach in
    /// progress is left alone).
    pub async fn sweep(&self, platform: &Platform) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let system = Context::system();
        let mut exists: HashMap<(String, String), bool> = HashMap::new();
        let mut known: HashSet<Uuid> = HashSet::new();
        let mut after = None;
        loop {
            let page = store::page(&self.db, after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let mut gone = Vec::new();
            for item in page {
                let key = (item.resource.clone(), item.record_id.clone());
                let alive = match exists.get(&key) {
                    Some(a) => *a,
                    None => {
                        let a = match platform.records(&item.resource, &system) {
                            // A resource no longer registered: its rows are orphans.
                            None => false,
                            Some(records) => match records.parse_id(&item.record_id) {
                                Ok(id) => match records.find_with_trashed(id).await {
                                    Ok(_) => true,
                                    Err(platform_core::Error::NotFound { .. }) => false,
                                    Err(e) => return Err(e),
                                },
                                Err(_) => false,
                            },
                        };
                        exists.insert(key, a);
                        a
                    }
                };
                if alive {
                    known.insert(item.id);
                } else {
                    gone.push(item);
                }
            }
            report.rows_removed += gone.len() as u64;
            self.remove_items(&gone).await?;
        }
        let mut disks: Vec<&str> = vec![self.disk.as_str()];
        disks.extend(
            self.collections
                .iter()
                .filter_map(|c| c.spec.disk.as_deref()),
        );
        disks.sort_unstable();
        disks.dedup();
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.sweep_grace).unwrap_or(chrono::Duration::hours(1));
        let prefix = StoragePath::parse("media")?;
        for name in disks {
            let disk = self.disks.disk(name)?;
            for file in disk.list(Some(&prefix)).await? {
                // media/{resource}/{record}/{media id}/...
                let id = file
                    .path
                    .segments()
                    .nth(3)
                    .and_then(|s| Uuid::parse_str(s).ok());
                if id.is_some_and(|id| known.contains(&id)) {
                    continue;
                }
                if file.last_modified.is_none_or(|t| t > cutoff) {
                    continue;
                }
                // Named by no row read above: check again (attached since).
                if let Some(id) = id
                    && store::one(&self.db, id).await?.is_some()
                {
                    continue;
                }
                disk.delete(&file.path).await?;
                report.files_removed += 1;
            }
        }
        Ok(report)
    }
}

/// The sweep, every `every` (first after one period), in `serve` and
/// `queue:work`.
pub(crate) async fn sweep_task(platform: Platform, mut stop: Stop, every: Duration) {
    loop {
        if stop.wait_for(every).await {
            return;
        }
        let Some(lib) = platform.get::<MediaLibrary>() else {
            return;
        };
        match lib.sweep(&platform).await {
            Ok(r) => tracing::info!(
                rows = r.rows_removed,
                files = r.files_removed,
                "media: orphan sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "media: orphan sweep failed"),
        }
    }
}

/// `media:sweep`.
pub(crate) fn sweep_command() -> Command {
    Command::new(
        platform_admin::clap::Command::new("media:sweep").about(
            "Removes media files whose record no longer exists, and stored files no row names",
        ),
        |builder, _args| async move {
            let p = builder.background_tasks(false).build().await?;
            let lib = p
                .get::<MediaLibrary>()
                .ok_or_else(|| anyhow::anyhow!("the media capability is not added"))?;
            let r = lib.sweep(&p).await;
            p.shutdown().await;
            let r = r?;
            println!(
                "Removed {} orphaned media rows and {} stray files.",
                r.rows_removed, r.files_removed
            );
            Ok(())
        },
    )
}
