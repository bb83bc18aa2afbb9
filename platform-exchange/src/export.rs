//! Export: CSV and XLSX of a resource's rows, streamed.

use platform_core::capability::Setup;

/// How exports run (set through [`Exchange`](crate::Exchange)'s builder methods).
#[derive(Debug, Clone, Default)]
pub struct ExportConfig {}

pub(crate) fn setup(_config: &ExportConfig, _setup: &mut Setup) {}
