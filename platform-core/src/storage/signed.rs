//! Signed, expiring URLs for private files, and what the file route needs
//! to answer them (content types, `Content-Disposition`).

use std::fmt::Write as _;
use std::sync::Arc;

use super::{Storage, StoragePath};

/// How a browser should show a file served through a signed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// In the page (`Content-Disposition: inline`).
    Inline,
    /// As a download saved under this name (`attachment; filename=...`).
    Attachment(String),
}

impl Disposition {
    /// The `Content-Disposition` header value: an ASCII `filename` for
    /// old clients and an RFC 5987 `filename*` carrying the exact name.
    /// Quotes, backslashes and control characters never reach the header.
    pub fn header_value(&self) -> String {
        match self {
            Self::Inline => "inline".to_owned(),
            Self::Attachment(name) => {
                let ascii: String = name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric()
                            || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')')
                        {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let ascii = if ascii.trim().is_empty() {
                    "download".to_owned()
                } else {
                    ascii
                };
                format!(
                    "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                    percent_encode(name)
                )
            }
        }
    }
}

/// What a signed URL carries besides its disk, path and expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlOptions {
    /// `Some(name)`: served as a download saved as `name`; `None`: inline.
    pub download: Option<String>,
}

impl UrlOptions {
    /// Shown inline (the default).
    pub fn inline() -> Self {
        Self::default()
    }
    /// Served as a download saved as `filename`.
    pub fn download(filename: impl Into<String>) -> Self {
        Self {
            download: Some(filename.into()),
        }
    }
}

/// Why a signed file request was refused. The route answers each with no
/// file content: 403 for [`Refusal::BadSignature`] and
/// [`Refusal::Expired`], 404 for [`Refusal::NotFound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The signature does not match the disk, path, expiry and options
    /// (altered, or made with a key that is not configured).
    BadSignature,
    /// The link has expired.
    Expired,
    /// The disk or path does not exist (here, or no longer).
    NotFound,
}

/// A request for a file that passed its signature and expiry checks.
#[derive(Debug, Clone)]
pub struct SignedFile {
    /// The disk to read from.
    pub disk: Arc<dyn Storage>,
    /// The file.
    pub path: StoragePath,
    /// How to serve it.
    pub disposition: Disposition,
}

/// What the signature covers: a purpose tag, the disk, the path, the
/// expiry and the download name, each on its own line (none can hold a
/// newline: disk names and paths refuse control characters, and the
/// download name is percent-encoded), so no two requests share it.
pub(crate) fn signed_data(disk: &str, path: &str, expires: i64, download: Option<&str>) -> Vec<u8> {
    format!(
        "platform/storage-url\n{disk}\n{path}\n{expires}\n{}",
        download.map(percent_encode).unwrap_or_default()
    )
    .into_bytes()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The content type to serve a file under, from its recorded type or its
/// extension; `application/octet-stream` when neither is known. A recorded
/// generic type (`application/octet-stream`, or S3's default
/// `binary/octet-stream` for objects stored without one) gives way to the
/// extension's.
///
/// ```
/// use platform_core::storage::{StoragePath, content_type_for};
///
/// let p = StoragePath::parse("docs/Report.PDF").unwrap();
/// assert_eq!(content_type_for(&p, None), "application/pdf");
/// assert_eq!(content_type_for(&p, Some("text/plain")), "text/plain");
/// assert_eq!(content_type_for(&p, Some("binary/octet-stream")), "application/pdf");
/// ```
pub fn content_type_for<'a>(path: &StoragePath, recorded: Option<&'a str>) -> &'a str {
    let generic = |t: &str| {
        t.is_empty()
            || t.eq_ignore_ascii_case("application/octet-stream")
            || t.eq_ignore_ascii_case("binary/octet-stream")
    };
    if let Some(t) = recorded.filter(|t| !generic(t)) {
        return t;
    }
    match path.extension().as_deref() {
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("mp3") => "audio/mpeg",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("ods") => "application/vnd.oasis.opendocument.spreadsheet",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_headers_are_safe() {
        assert_eq!(Disposition::Inline.header_value(), "inline");
        let v = Disposition::Attachment("Rechnung \"März\".pdf\r\nX-Evil: 1".into()).header_value();
        assert!(!v.contains('\r') && !v.contains('\n'));
        assert!(v.starts_with("attachment; filename=\"Rechnung _M_rz_.pdf__X-Evil_ 1\"; filename*=UTF-8''Rechnung%20%22M%C3%A4rz%22.pdf%0D%0AX-Evil%3A%201"), "{v}");
    }
}
