//! Tower layers of the routers, each an `XxxLayer` + `Xxx` service pair.
//!
//! | layer | what it does |
//! |-------|--------------|
//! | [`SetRequestIdLayer`] | gives every request an id (`x-request-id`), echoed on the response |

pub mod request_id;

pub use request_id::{RequestId, SetRequestId, SetRequestIdLayer};
