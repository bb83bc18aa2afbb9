//! The values of the media library: which record, what is uploaded, and
//! what is stored.

use bytes::Bytes;
use chrono::Utc;
use platform_core::Resource;
use platform_core::storage::{ByteStream, bytes_stream};
use serde::Serialize;
use uuid::Uuid;

/// Which record: its resource (plural or singular name) and its id as
/// text (as in URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// The resource's plural (`products`) or singular (`product`) name.
    pub resource: String,
    /// The record's id, as text (`7`).
    pub id: String,
}

impl RecordRef {
    /// The record `id` of `resource`.
    pub fn new(resource: impl Into<String>, id: impl ToString) -> Self {
        Self {
            resource: resource.into(),
            id: id.to_string(),
        }
    }
    /// The record `id` of the resource `R`.
    pub fn of<R: Resource>(id: impl ToString) -> Self {
        Self::new(R::meta().name(), id)
    }
}

/// A file to attach: the name the client gave (only shown, after
/// [`sanitize_file_name`](crate::sanitize_file_name)) and the content, streamed.
pub struct Upload {
    pub(crate) file_name: String,
    pub(crate) body: ByteStream,
    pub(crate) custom_properties: serde_json::Value,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("file_name", &self.file_name)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// A file held in memory.
    pub fn bytes(file_name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Self::stream(file_name, bytes_stream(bytes))
    }
    /// A file read as a stream (an upload being received): it is written
    /// as it arrives, and refused as soon as it is over the size limit.
    pub fn stream(file_name: impl Into<String>, body: ByteStream) -> Self {
        Self {
            file_name: file_name.into(),
            body,
            custom_properties: serde_json::json!({}),
        }
    }
    /// With custom properties (a JSON object kept with the file: alt text,
    /// a caption).
    #[must_use]
    pub fn with_properties(mut self, properties: serde_json::Value) -> Self {
        self.custom_properties = properties;
        self
    }
}

/// One attached file, as stored in `platform_media`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaItem {
    /// Its id (a UUID v7).
    pub id: Uuid,
    /// The resource's singular name.
    pub resource: String,
    /// The record's id, as text.
    pub record_id: String,
    /// The collection.
    pub collection: String,
    /// Its name (sanitised, with the extension of its type).
    pub file_name: String,
    /// Its type, sniffed from the content.
    pub mime: String,
    /// Its size in bytes.
    pub size: u64,
    /// The disk it is on.
    pub disk: String,
    /// Its path on the disk.
    pub path: String,
    /// Its position in the collection (1 first).
    pub position: i64,
    /// The conversions done: `{"thumb": {"path", "width", "height",
    /// "mime", "size"}}`, or `{"error": "..."}` when they failed.
    pub conversions: serde_json::Value,
    /// Custom properties.
    pub custom_properties: serde_json::Value,
    /// When it was attached.
    pub created_at: chrono::DateTime<Utc>,
}

impl MediaItem {
    /// The directory holding the file and its conversions.
    pub(crate) fn dir(&self) -> String {
        self.path
            .rsplit_once('/')
            .map_or_else(|| self.path.clone(), |(d, _)| d.to_owned())
    }
    /// The path of a finished conversion.
    pub fn conversion_path(&self, name: &str) -> Option<&str> {
        self.conversions.get(name)?.get("path")?.as_str()
    }
}

impl MediaItem {
    /// The record it belongs to.
    pub fn record(&self) -> RecordRef {
        RecordRef::new(self.resource.clone(), self.record_id.clone())
    }
}
