use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The step of talking to a registry that failed; `berth registry test` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Dns,
    Connect,
    Tls,
    Auth,
    Manifest,
    Tags,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Dns => "dns",
            Step::Connect => "connect",
            Step::Tls => "tls",
            Step::Auth => "auth",
            Step::Manifest => "manifest",
            Step::Tags => "tags",
        }
    }
}

/// Registry errors. Messages carry the registry's own error text where it sent one, and never
/// a credential.
#[derive(Debug, Clone, Error)]
pub enum Error {
    #[error("cannot resolve {host}: {reason}")]
    Dns { host: String, reason: String },
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host} refused the request: {reason}")]
    Blocked { host: String, reason: String },
    #[error("{host} did not answer within {seconds} s")]
    Timeout { host: String, seconds: u64 },
    /// 401 from the registry or the token service (wrong or missing credentials).
    #[error("{host} rejected the credentials (401): {detail}")]
    Unauthorized { host: String, detail: String },
    /// 403: the credentials are valid but not for this repository.
    #[error("{host} denied access (403): {detail}")]
    Denied { host: String, detail: String },
    #[error("{what} not found in {host}: {detail}")]
    NotFound {
        host: String,
        what: String,
        detail: String,
    },
    #[error("{host} is rate limiting requests (429){}", retry_after.map(|s| format!("; retry after {s} s")).unwrap_or_default())]
    RateLimited {
        host: String,
        retry_after: Option<u64>,
    },
    #[error("{host} answered {status}: {detail}")]
    Server {
        host: String,
        status: u16,
        detail: String,
    },
    #[error("{host} sent an invalid answer: {detail}")]
    Protocol { host: String, detail: String },
    #[error("invalid registry settings: {0}")]
    Config(String),
}

impl Error {
    /// The step this error belongs to.
    pub fn step(&self) -> Step {
        match self {
            Error::Dns { .. } | Error::Blocked { .. } => Step::Dns,
            Error::Connect { .. } | Error::Timeout { .. } | Error::Config(_) => Step::Connect,
            Error::Tls { .. } => Step::Tls,
            Error::Unauthorized { .. } | Error::Denied { .. } => Step::Auth,
            Error::NotFound { .. }
            | Error::RateLimited { .. }
            | Error::Server { .. }
            | Error::Protocol { .. } => Step::Manifest,
        }
    }

    /// Whether retrying later may help (network trouble, rate limits, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Dns { .. }
                | Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::RateLimited { .. }
                | Error::Server { .. }
        )
    }

    /// A short machine-readable code: `dns`, `connect`, `tls`, `blocked`, `timeout`,
    /// `unauthorized`, `denied`, `not_found`, `rate_limited`, `server`, `protocol`, `config`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Dns { .. } => "dns",
            Error::Connect { .. } => "connect",
            Error::Tls { .. } => "tls",
            Error::Blocked { .. } => "blocked",
            Error::Timeout { .. } => "timeout",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Denied { .. } => "denied",
            Error::NotFound { .. } => "not_found",
            Error::RateLimited { .. } => "rate_limited",
            Error::Server { .. } => "server",
            Error::Protocol { .. } => "protocol",
            Error::Config(_) => "config",
        }
    }
}

impl From<crate::coalesce::Canceled> for Error {
    fn from(_: crate::coalesce::Canceled) -> Self {
        Error::Config("the registry lookup was canceled (shutting down)".into())
    }
}
