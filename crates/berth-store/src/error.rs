use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Store errors. `NotFound`, `Conflict` and `Invalid` are the caller's fault; the rest are ours.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{message}")]
    Conflict {
        message: String,
        /// The input field that caused the conflict, when one did.
        field: Option<&'static str>,
    },
    /// The input is well-formed but cannot apply to what is stored (e.g. a reorder that is not
    /// a permutation of the existing environments).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("opening the database {path} failed: {reason}")]
    Open { path: String, reason: String },
    #[error("applying database migrations failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Io(String),
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
            field: Some(field),
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Whether retrying may help (the database was busy or locked, the disk was full).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Db(sqlx::Error::PoolTimedOut) => true,
            Error::Db(sqlx::Error::Database(e)) => {
                let msg = e.message();
                msg.contains("locked") || msg.contains("busy")
            }
            _ => false,
        }
    }

    /// Whether the database refused a text value it cannot hold: PostgreSQL's text has no NUL
    /// character (`character_not_in_repertoire`, 22021; `untranslatable_character`, 22P05).
    /// That is bad input, wherever in the request it was (a path segment, a query parameter,
    /// a body field).
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            Error::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("22021" | "22P05"))
            }
            _ => false,
        }
    }

    /// Whether the write failed for want of disk space: SQLITE_FULL or ENOSPC (the data
    /// directory's filesystem is full), PostgreSQL's `disk_full` (53100).
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("13" | "53100"))
                    || e.message().contains("disk is full")
            }
            Error::Db(sqlx::Error::Io(e)) => e.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

/// True when `e` is a FOREIGN KEY constraint violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

/// True when `e` is a UNIQUE constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
