//! [`StoragePath`]: a file's name on a disk, checked once.

use std::fmt;
use std::str::FromStr;

use super::StorageError;

/// The longest path accepted, in bytes (S3's key limit).
pub const MAX_PATH_LEN: usize = 1024;
/// The longest segment accepted, in bytes (most file systems' name limit).
pub const MAX_SEGMENT_LEN: usize = 255;

/// A file's path on a disk: `/`-separated segments, relative to the disk's
/// root, such as `invoices/2026/INV-7.pdf`.
///
/// Every [`Storage`](super::Storage) method takes one, so a back end never
/// sees a hostile name. [`StoragePath::parse`] refuses, with
/// [`StorageError::InvalidPath`]:
/// - the empty path, and paths longer than [`MAX_PATH_LEN`] bytes;
/// - absolute paths (`/etc/passwd`) and empty segments (`a//b`, `a/`);
/// - `.` and `..` segments, so a path never leaves its disk's root;
/// - backslashes (a separator on Windows), NUL and other control characters;
/// - segments longer than [`MAX_SEGMENT_LEN`] bytes.
///
/// ```
/// use platform_core::storage::StoragePath;
///
/// let p = StoragePath::parse("invoices/2026/INV-7.pdf").unwrap();
/// assert_eq!(p.file_name(), "INV-7.pdf");
/// assert!(StoragePath::parse("../../etc/passwd").is_err());
/// assert!(StoragePath::parse("/etc/passwd").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoragePath(String);

impl StoragePath {
    /// Checks `path` (see the type's rules).
    pub fn parse(path: &str) -> Result<Self, StorageError> {
        let bad = |reason: &'static str| StorageError::InvalidPath {
            path: path.chars().take(200).collect(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("the path is empty"));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(bad("the path is longer than 1024 bytes"));
        }
        if path.starts_with('/') {
            return Err(bad(
                "the path is absolute (it must be relative to the disk)",
            ));
        }
        if path.contains('\\') {
            return Err(bad("the path contains a backslash"));
        }
        if path.chars().any(char::is_control) {
            return Err(bad("the path contains a NUL or control character"));
        }
        for segment in path.split('/') {
            match segment {
                "" => {
                    return Err(bad(
                        "the path has an empty segment (`//` or a trailing `/`)",
                    ));
                }
                "." | ".." => return Err(bad("the path has a `.` or `..` segment")),
                s if s.len() > MAX_SEGMENT_LEN => {
                    return Err(bad("a segment of the path is longer than 255 bytes"));
                }
                _ => {}
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Its last segment (`INV-7.pdf`).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Its extension, lowercase (`pdf`), if the last segment has one.
    pub fn extension(&self) -> Option<String> {
        let name = self.file_name();
        let (stem, ext) = name.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
    }

    /// `self/child` (`child` is checked like any path).
    pub fn join(&self, child: &str) -> Result<Self, StorageError> {
        Self::parse(&format!("{}/{child}", self.0))
    }

    /// Whether this path lies under the directory `prefix` (`a/b/c` is
    /// under `a/b` and `a`, not under `a/bc` nor under itself).
    pub fn is_under(&self, prefix: &StoragePath) -> bool {
        self.0.len() > prefix.0.len()
            && self.0.starts_with(&prefix.0)
            && self.0.as_bytes()[prefix.0.len()] == b'/'
    }
}

impl fmt::Display for StoragePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StoragePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for StoragePath {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for StoragePath {
    type Error = StorageError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StoragePath {
    type Error = StorageError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
            &format!("{}/x", "a/".repeat(600)),
        ] {
            let err = StoragePath::parse(p).expect_err(p);
            assert!(
                matches!(err, StorageError::InvalidPath { .. }),
                "{p:?}: {err}"
            );
        }
        for p in [
            "a",
            "a/b.txt",
            ".env",
            "a/..b",
            "a/b..",
            "été/фото 1.jpg",
            "x:y",
        ] {
            assert_eq!(StoragePath::parse(p).unwrap().as_str(), p);
        }
    }

    #[test]
    fn prefixes_are_directories() {
        let p = StoragePath::parse("a/b/c").unwrap();
        assert!(p.is_under(&StoragePath::parse("a/b").unwrap()));
        assert!(p.is_under(&StoragePath::parse("a").unwrap()));
        assert!(!p.is_under(&StoragePath::parse("a/b/c").unwrap()));
        assert!(
            !StoragePath::parse("a/bc")
                .unwrap()
                .is_under(&StoragePath::parse("a/b").unwrap())
        );
        assert_eq!(p.extension(), None);
        assert_eq!(
            StoragePath::parse("x/Y.PDF")
                .unwrap()
                .extension()
                .as_deref(),
            Some("pdf")
        );
        assert_eq!(StoragePath::parse(".env").unwrap().extension(), None);
    }
}
