//! What a file is, from its first bytes, and a safe name to store it
//! under.
//!
//! The type is read from the content's magic numbers, never from the
//! client's `Content-Type` nor from the name. Images go through
//! [`image::guess_format`] (the decoder's own signatures, so what passes
//! here is what the conversions can open); a small table covers the other
//! common document types. No extra dependency (`infer` would add 200
//! signatures nobody here accepts; the accepted set is small and a type
//! this does not know is `application/octet-stream`, which a collection
//! accepts only when it accepts everything).

/// How many leading bytes [`sniff_mime`] looks at.
pub const SNIFF_LEN: usize = 512;

/// The type of a file from its first bytes (at least the first
/// [`SNIFF_LEN`], when the file is that long): `image/png`, `image/jpeg`,
/// `image/gif`, `image/webp`, `application/pdf`, `application/zip`,
/// `application/gzip`, `text/plain` (UTF-8 without control characters
/// and without markup), else `application/octet-stream`.
///
/// ```
/// use platform_media::sniff_mime;
///
/// assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
/// assert_eq!(sniff_mime(b"%PDF-1.7\n"), "application/pdf");
/// assert_eq!(sniff_mime(b"hello, world\n"), "text/plain");
/// // A script named `.png` is not an image, and markup is not text.
/// assert_eq!(sniff_mime(b"<script>alert(1)</script>"), "application/octet-stream");
/// ```
pub fn sniff_mime(head: &[u8]) -> &'static str {
    if let Ok(format) = image::guess_format(head) {
        match format {
            image::ImageFormat::Png => return "image/png",
            image::ImageFormat::Jpeg => return "image/jpeg",
            image::ImageFormat::Gif => return "image/gif",
            image::ImageFormat::WebP => return "image/webp",
            _ => {}
        }
    }
    const TABLE: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
    ];
    for (magic, mime) in TABLE {
        if head.starts_with(magic) {
            return mime;
        }
    }
    if looks_like_text(head) {
        return "text/plain";
    }
    "application/octet-stream"
}

/// UTF-8 (a character cut at the end of the sample is fine), no control
/// characters but tab, CR, LF and form feed, and no `<` (markup that a
/// browser could be talked into rendering is never "text" here).
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&b'<') {
        return false;
    }
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            // Cut in the middle of a character at the end of the sample.
            match std::str::from_utf8(&head[..e.valid_up_to()]) {
                Ok(s) => s,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    // A sample that is nothing but the start of one character is not text.
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// The extension a stored file of type `mime` gets, whatever the client
/// called it.
pub(crate) fn extension_for(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/gzip" => "gz",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// A file name safe to store and to show: the last segment of `name`
/// (anything before a `/` or `\` is dropped, so `../../etc/passwd` is
/// `passwd`), with control characters, quotes and other characters that
/// mean something to a shell, a URL or HTML replaced by `_`, no leading
/// dots, at most 100 characters before the extension, and the extension
/// of `mime` (what the content is, not what the client said). Empty
/// names become `file`.
///
/// ```
/// use platform_media::sanitize_file_name;
///
/// assert_eq!(sanitize_file_name("../../etc/passwd", "text/plain"), "passwd.txt");
/// assert_eq!(sanitize_file_name("C:\\fakepath\\Photo 1.JPG", "image/jpeg"), "Photo 1.jpg");
/// assert_eq!(sanitize_file_name("<img src=x>.png", "image/png"), "_img src=x_.png");
/// assert_eq!(sanitize_file_name("evil.php.png", "application/octet-stream"), "evil.php.bin");
/// assert_eq!(sanitize_file_name("...", "image/png"), "file.png");
/// ```
pub fn sanitize_file_name(name: &str, mime: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let stem = match last.rsplit_once('.') {
        Some((stem, _)) if !stem.trim_matches('.').is_empty() => stem,
        _ => last,
    };
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_control()
                || matches!(
                    c,
                    '<' | '>'
                        | '"'
                        | '\''
                        | '`'
                        | '&'
                        | '%'
                        | '?'
                        | '#'
                        | ':'
                        | '*'
                        | '|'
                        | '$'
                        | ';'
                        | '\\'
                        | '/'
                )
            {
                '_'
            } else {
                c
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let stem = if cleaned.is_empty() { "file" } else { cleaned };
    format!("{stem}.{}", extension_for(mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff_mime(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff_mime(b"GIF89a...."), "image/gif");
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff_mime(b"#!/bin/sh\nrm -rf /\n"), "text/plain");
        assert_eq!(sniff_mime(b"\0\x01\x02"), "application/octet-stream");
        assert_eq!(sniff_mime(b""), "application/octet-stream");
        assert_eq!(sniff_mime("caf\u{e9}".as_bytes()), "text/plain");
        assert_eq!(
            sniff_mime(&"\u{e9}".as_bytes()[..1]),
            "application/octet-stream"
        );
        assert_eq!(
            sniff_mime(b"<svg onload=alert(1)>"),
            "application/octet-stream"
        );
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(sanitize_file_name("a\0b\r\n.png", "image/png"), "a_b__.png");
        assert_eq!(
            sanitize_file_name(".htaccess", "text/plain"),
            "htaccess.txt"
        );
        assert_eq!(sanitize_file_name("", "image/png"), "file.png");
        let long = "x".repeat(500);
        assert_eq!(sanitize_file_name(&long, "image/png").len(), 104);
    }
}
