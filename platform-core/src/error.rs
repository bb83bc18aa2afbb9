//! The one error type of `platform-core`.

use std::fmt;

/// A boxed error from a back end (database, cache, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the platform, by meaning.
///
/// Back ends map their own failures into these variants, so adding a back
/// end never adds a variant. Callers (the API, the panel) map each variant
/// to one response: `NotFound` 404, `Validation` 422, `PermissionDenied`
/// 403, `Unauthenticated` 401, `Conflict` 409, `Unavailable` 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such record (or the actor may not know it exists).
    #[error("{resource} {id} not found")]
    NotFound {
        /// The resource's singular name.
        resource: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Input failed validation; one or more messages per field.
    #[error("validation failed: {0}")]
    Validation(FieldErrors),
    /// The actor lacks the permission.
    #[error("permission denied: `{ability}` is required")]
    PermissionDenied {
        /// The permission that was needed.
        ability: String,
    },
    /// No actor: sign in or present a token.
    #[error("authentication required")]
    Unauthenticated,
    /// The write conflicts with existing data (a unique value taken by a
    /// concurrent writer, a record still referenced).
    #[error("conflict on `{field}`: {message}")]
    Conflict {
        /// The field (or constraint) involved.
        field: String,
        /// What conflicts.
        message: String,
    },
    /// The operation is not supported here.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Configuration is missing or wrong (including schema drift).
    #[error("configuration: {0}")]
    Configuration(String),
    /// A back end cannot be reached; nothing was written. Retry later.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which back end.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A back end failed.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which back end.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A validation error on one field.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let mut e = FieldErrors::default();
        e.add(field, code, message);
        Self::Validation(e)
    }

    /// Whether this is a deadlock or a serialization failure: the
    /// database rolled the transaction back so that a concurrent one could
    /// go on; nothing of it was written, and running it again can succeed.
    pub fn is_deadlock(&self) -> bool {
        crate::db::failure::is_deadlock(self)
    }

    /// A stable machine code for this error (used in API bodies).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Validation(_) => "validation_failed",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::Unauthenticated => "unauthenticated",
            Self::Conflict { .. } => "conflict",
            Self::Unsupported(_) => "unsupported",
            Self::Configuration(_) => "configuration",
            Self::Unavailable { .. } => "unavailable",
            Self::Backend { .. } => "backend_error",
        }
    }
}

/// One validation message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field (or query parameter) at fault.
    pub field: String,
    /// A stable code: `required`, `type`, `too_long`, `choice`, `email`,
    /// `unique`, `exists`, `unknown_field`, `read_only`, `forbidden`,
    /// `unknown_parameter`, `invalid`, ... (the API adds `unknown_relation`).
    pub code: &'static str,
    /// A human message, without the field name (`"has already been taken"`).
    pub message: String,
}

/// Validation messages, per field, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Adds a message.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError {
            field: field.into(),
            code,
            message: message.into(),
        });
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The messages.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }
    /// Whether a field has a message.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
    /// The messages of one field.
    pub fn for_field<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a FieldError> + 'a {
        self.0.iter().filter(move |e| e.field == field)
    }
    /// `Err(Error::Validation)` when there are messages.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self))
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        crate::db::map_sqlx_error(e)
    }
}
