//! Tower layers of the routers, each an `XxxLayer` + `Xxx` service pair.
//!
//! | layer | what it does |
//! |-------|--------------|
//! | [`SetRequestIdLayer`] | gives every request an id (`x-request-id`), echoed on the response |
//! | [`AccessLogLayer`] | writes every request to the access log (who, what, status, time) |
//! | [`SecurityHeadersLayer`] | CSP, nosniff, frame denial, referrer policy |
//! | [`IpAllowlistLayer`] | only clients from listed networks get through |

pub mod access_log;
pub mod ip_allowlist;
pub mod request_id;
pub mod security_headers;

pub use access_log::{AccessActor, AccessLogLayer};
pub use ip_allowlist::{IpAllowlistLayer, parse_networks};
pub use request_id::{RequestId, SetRequestId, SetRequestIdLayer};
pub use security_headers::SecurityHeadersLayer;
