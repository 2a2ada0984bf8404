//! A JSON body extractor whose rejections use berth's error shape and name the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted anywhere in the API.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Like `axum::Json`, but: 415 for a wrong content type, 413 past [`MAX_BODY_BYTES`], 400 for
/// malformed JSON (with line and column), 422 for well-formed JSON of the wrong shape with
/// `field` set to the JSON path (`endpoints[3].port`) or the unknown/missing field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(content_type) {
            let got = if content_type.is_empty() {
                "no Content-Type".to_owned()
            } else {
                format!("Content-Type {content_type:?}")
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected Content-Type application/json, got {got}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is too large (1 MiB for most requests, 3 MiB for config changes)",
                )
            } else {
                ApiError::bad_request(format!("reading the request body failed: {r}"))
            }
        })?;
        parse(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// Like `axum::extract::Path`, with berth's error shape: a segment that does not decode (its
/// percent-encoding is not UTF-8) or does not parse gets a JSON 400 naming the path, not
/// axum's plain-text answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(r) if r.status().is_client_error() => Err(ApiError::new(
                r.status(),
                "bad_request",
                format!("path: {}", r.body_text()),
            )
            .with_field("path")),
            Err(r) => Err(ApiError::internal(r.body_text())),
        }
    }
}

/// Like `axum::extract::Query`, with berth's error shape: 422 with `field` naming the
/// parameter (`limit` for `?limit=abc`), or `query` when no one parameter is to blame.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Deserializes a query string as axum's `Query` does, mapping errors as [`Query`] says.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|lead| inner.strip_prefix(lead))
            .and_then(|rest| rest.split('`').next());
        let field = match named {
            Some(name) => name.to_owned(),
            None if path.is_empty() || path == "." => "query".to_owned(),
            None => path,
        };
        ApiError::validation(field, inner)
    })
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserializes `bytes`, mapping errors as described on [`Json`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner),
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn data_error(path: &str, inner: &serde_json::Error) -> ApiError {
    let message = inner.to_string();
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|lead| message.strip_prefix(lead))
        .and_then(|rest| rest.split('`').next());
    let parent = if path == "." { "" } else { path };
    let field = match named {
        Some(name) if message.starts_with("unknown") => {
            // serde_path_to_error already ends the path with the unknown key.
            if parent.ends_with(name) {
                parent.to_owned()
            } else {
                join(parent, name)
            }
        }
        Some(name) => join(parent, name),
        None if parent.is_empty() => "body".to_owned(),
        None => parent.to_owned(),
    };
    let mut err = ApiError::validation(&field, message);
    err.message = format!("{field}: {}", strip_position(&inner.to_string()));
    err
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// serde_json appends " at line 1 column 9"; for data errors the field path says more.
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Outer {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        port: u16,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        #[allow(dead_code)]
        limit: Option<u32>,
        #[allow(dead_code)]
        cursor: Option<String>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let cases = [
            ("limit=abc", "limit", "invalid digit"),
            ("limit=-1", "limit", "invalid digit"),
            ("limit=99999999999", "limit", "too large"),
            ("cursor=x&colour=red", "colour", "unknown field"),
        ];
        for (query, field, text) in cases {
            let err = parse_query::<Params>(query).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            assert_eq!(
                err.field.as_deref(),
                Some(field),
                "{query}: {}",
                err.message
            );
            assert!(err.message.contains(text), "{query}: {}", err.message);
        }
        assert!(parse_query::<Params>("limit=5&cursor=abc").is_ok());
    }

    #[test]
    fn names_the_field() {
        let cases = [
            (r#"{"name":"a","colour":1}"#, "colour", "unknown field"),
            (r#"{}"#, "name", "missing field"),
            (r#"{"name":5}"#, "name", "invalid type"),
            (
                r#"{"name":"a","items":[{"port":1},{"port":70000}]}"#,
                "items[1].port",
                "invalid value",
            ),
            (
                r#"{"name":"a","items":[{"port":1,"x":2}]}"#,
                "items[0].x",
                "unknown field",
            ),
            (r#""text""#, "body", "invalid type"),
        ];
        for (body, field, text) in cases {
            let err = parse::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(err.field.as_deref(), Some(field), "{body}: {}", err.message);
            assert!(err.message.contains(text), "{body}: {}", err.message);
        }
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [r#"{"name":"#, "not json", r#"{"name":"a"} trailing"#] {
            let err = parse::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(err.message.starts_with("malformed JSON"), "{}", err.message);
        }
    }

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
