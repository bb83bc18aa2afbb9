//! The panel: a gallery with an upload form on the record's view page.

use platform_core::capability::Setup;

/// Adds the panel's contributions.
pub(crate) fn contribute(_setup: &mut Setup) {}
