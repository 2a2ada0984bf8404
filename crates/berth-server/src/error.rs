//! The one HTTP error type: every handler returns `Result<_, ApiError>` and ends in `?`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::api::{self, ErrorBody};
use tracing::{debug, error};

tokio::task_local! {
    /// The id of the request being served, so errors can carry it without threading it through.
    pub static REQUEST_ID: String;
}

/// An error answer: status + `{"error":{"code","message","field","requestId"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub details: Option<Vec<berth_core::api::ErrorDetail>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            details: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, unknown, revoked or expired token; send `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {}", message.into()),
        )
        .with_field(field)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn body(&self) -> api::ApiError {
        api::ApiError {
            error: ErrorBody {
                code: self.code.to_owned(),
                message: self.message.clone(),
                field: self.field.clone(),
                request_id: REQUEST_ID.try_with(Clone::clone).ok(),
                details: self.details.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            error!(status = %self.status, code = self.code, message = %self.message, "request failed");
        } else {
            debug!(status = %self.status, code = self.code, message = %self.message, "request rejected");
        }
        (self.status, Json(self.body())).into_response()
    }
}

impl From<berth_store::Error> for ApiError {
    fn from(e: berth_store::Error) -> Self {
        use berth_store::Error as E;
        match e {
            E::NotFound { .. } => ApiError::not_found(e.to_string()),
            E::Conflict { message, field } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "conflict", message);
                err.field = field.map(str::to_owned);
                err
            }
            E::Invalid { field, message } => ApiError::validation(field, message),
            e if e.is_unstorable_text() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "a text in the request (path, query or body) contains a NUL character \
                 (%00 or \\u0000), which is not allowed",
            ),
            e if e.is_storage_full() => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                format!(
                    "the data directory's filesystem is full; nothing was changed: free space and retry ({e})"
                ),
            ),
            e if e.is_transient() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the store is busy, retry: {e}"),
            ),
            e => ApiError::internal(format!("store error: {e}")),
        }
    }
}

impl From<berth_core::NameError> for ApiError {
    fn from(e: berth_core::NameError) -> Self {
        ApiError::validation(e.field, e.message)
    }
}
