//! Import: CSV and XLSX rows validated through the write path, in batches
//! that can be rolled back.

use platform_core::capability::Setup;

/// How imports run (set through [`Exchange`](crate::Exchange)'s builder methods).
#[derive(Debug, Clone, Default)]
pub struct ImportConfig {}

pub(crate) fn setup(_config: &ImportConfig, _setup: &mut Setup) {}
