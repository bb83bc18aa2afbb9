//! Import and export for Platform (Laravel Excel): CSV and XLSX of every
//! resource whose derive allows it, from the panel, the API and the command
//! line.
//!
//! A host adds the capability to the builder:
//!
//! ```no_run
//! # async fn run() -> platform_core::Result<()> {
//! let platform = platform_core::Platform::builder()
//!     .with(platform_jobs::Jobs::new())
//!     .with(platform_exchange::Exchange::default())
//!     .build()
//!     .await?;
//! # platform.shutdown().await;
//! # Ok(()) }
//! ```

use platform_core::capability::{Capability, Setup};

pub mod export;
pub mod import;

/// The import/export capability. See the [crate docs](crate).
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    export: export::ExportConfig,
    import: import::ImportConfig,
}

impl Exchange {
    /// How imports run (chunk size, file limits, date order, the job
    /// threshold, the storage disk).
    #[must_use]
    pub fn import_config(mut self, config: import::ImportConfig) -> Self {
        self.import = config;
        self
    }
    /// Exports of more than `rows` rows run as a job writing to a storage
    /// disk, and the user is notified with a download link (default
    /// 10,000; needs the jobs capability and `FileStorage`, else every
    /// export is answered directly).
    #[must_use]
    pub fn export_threshold(mut self, rows: u64) -> Self {
        self.export.threshold = rows;
        self
    }
    /// Rows read per batch by exports (1 to 10,000; default 2,000).
    #[must_use]
    pub fn export_batch(mut self, rows: u32) -> Self {
        self.export.batch = rows.clamp(1, platform_core::query::MAX_BATCH_SIZE);
        self
    }
    /// The storage disk queued exports are written to (default: the
    /// default disk).
    #[must_use]
    pub fn export_disk(mut self, disk: impl Into<String>) -> Self {
        self.export.disk = Some(disk.into());
        self
    }
    /// How long the download link of a queued export works (default 24 h).
    #[must_use]
    pub fn export_link_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.export.link_ttl = ttl;
        self
    }
}

impl Capability for Exchange {
    fn name(&self) -> &'static str {
        "exchange"
    }

    fn setup(&self, setup: &mut Setup) {
        export::setup(&self.export, setup);
        import::setup(&self.import, setup);
    }
}
