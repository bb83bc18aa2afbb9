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
