//! Container registries: register once per organization, test the connection, list tags.

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::Secret;
use berth_core::api::{
    CreateRegistry, List, Registry, RegistryAuthType, RegistryTestReport, RegistryTestStep, Tags,
    TestRegistry, UpdateRegistry,
};
use berth_core::docker_config::parse_docker_config;
use berth_core::reference::{ImageRef, canonical_registry_host, validate_registry_host};
use berth_core::role::Action;
use berth_core::{validate_display_name, validate_name};
use berth_registry::{Credentials, Platform, RegistryClient, RegistryOptions};
use berth_store::RegistrySettings;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};

/// What a create or a merged update asks for, before validation.
struct Draft {
    display_name: String,
    host: Option<String>,
    auth_type: RegistryAuthType,
    username: Option<String>,
    password: Option<Secret>,
    docker_config: Option<Secret>,
    ca_pem: Option<String>,
    insecure: bool,
    platform: String,
}

fn not_allowed(field: &str, auth: RegistryAuthType) -> ApiError {
    ApiError::validation(
        field,
        format!("is not used with authType {}; remove it", auth.as_str()),
    )
}

/// Checks a draft against the rules of its auth type and returns the settings to store.
fn validate(d: Draft) -> ApiResult<RegistrySettings> {
    validate_display_name("displayName", &d.display_name)?;
    let platform: Platform = d
        .platform
        .parse()
        .map_err(|e: String| ApiError::validation("platform", e))?;
    let (mut host, username, password) = match d.auth_type {
        RegistryAuthType::Anonymous | RegistryAuthType::Implicit => {
            if d.username.is_some() {
                return Err(not_allowed("username", d.auth_type));
            }
            if d.password.is_some() {
                return Err(not_allowed("password", d.auth_type));
            }
            if d.docker_config.is_some() {
                return Err(not_allowed("dockerConfig", d.auth_type));
            }
            (d.host, None, None)
        }
        RegistryAuthType::Basic => {
            if d.docker_config.is_some() {
                return Err(not_allowed("dockerConfig", d.auth_type));
            }
            let username = d.username.filter(|u| !u.is_empty()).ok_or_else(|| {
                ApiError::validation("username", "is required for authType basic")
            })?;
            if username.contains(':') || username.chars().any(char::is_control) {
                return Err(ApiError::validation(
                    "username",
                    "must not contain ':' or control characters",
                ));
            }
            let password = d
                .password
                .filter(|p| !p.expose().is_empty())
                .ok_or_else(|| {
                    ApiError::validation(
                        "password",
                        "is required for authType basic (a password or an access token)",
                    )
                })?;
            (d.host, Some(username), Some(password))
        }
        RegistryAuthType::DockerConfig => {
            if d.username.is_some() {
                return Err(not_allowed("username", d.auth_type));
            }
            if d.password.is_some() {
                return Err(not_allowed("password", d.auth_type));
            }
            let text = d.docker_config.ok_or_else(|| {
                ApiError::validation("dockerConfig", "is required for authType docker-config")
            })?;
            let auth = parse_docker_config(text.expose()).map_err(|e| {
                let field = if e.field.is_empty() {
                    "dockerConfig".to_owned()
                } else {
                    format!("dockerConfig.{}", e.field)
                };
                ApiError::validation(field, e.message)
            })?;
            if let Some(h) = &d.host
                && canonical_registry_host(h) != auth.host
            {
                return Err(ApiError::validation(
                    "dockerConfig",
                    format!(
                        "its auths entry is for {:?} but the registry host is {:?}",
                        auth.host,
                        canonical_registry_host(h)
                    ),
                ));
            }
            (
                Some(auth.host.clone()),
                Some(auth.username.clone()),
                Some(auth.password.clone()),
            )
        }
    };
    let raw_host = host
        .take()
        .ok_or_else(|| ApiError::validation("host", "is required (host[:port], e.g. ghcr.io)"))?;
    validate_registry_host(&raw_host).map_err(|e| ApiError::validation("host", e.to_string()))?;
    let host = canonical_registry_host(&raw_host);
    let ca_pem = d.ca_pem.filter(|c| !c.trim().is_empty());
    if let Some(pem) = &ca_pem {
        // Building a client parses the bundle; no request is made.
        let opts = RegistryOptions {
            ca_pem: Some(pem.clone()),
            ..RegistryOptions::default()
        };
        RegistryClient::new(&api_host(&host), Credentials::Anonymous, opts)
            .map_err(|e| ApiError::validation("caCertificate", e.to_string()))?;
    }
    Ok(RegistrySettings {
        display_name: d.display_name,
        host,
        auth_type: d.auth_type,
        username,
        password,
        ca_pem,
        insecure: d.insecure,
        platform: platform.to_string(),
    })
}

/// Where a registry's API lives: Docker Hub's is `registry-1.docker.io`.
pub fn api_host(canonical: &str) -> String {
    if canonical == "docker.io" {
        "registry-1.docker.io".to_owned()
    } else {
        canonical.to_owned()
    }
}

/// A client for a stored registry, with its credentials.
/// The registry client for a stored registry, shared between calls: connections, the learned
/// scheme and auth challenge, and Bearer tokens are reused. Keyed by a hash of every setting
/// (credentials included), so a changed registry gets a new client.
pub fn client_for(
    state: &AppState,
    s: &RegistrySettings,
) -> ApiResult<std::sync::Arc<RegistryClient>> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        s.host.as_str(),
        s.auth_type.as_str(),
        s.username.as_deref().unwrap_or(""),
        s.password.as_ref().map_or("", |p| p.expose()),
        s.ca_pem.as_deref().unwrap_or(""),
        if s.insecure { "insecure" } else { "secure" },
        s.platform.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let policy = state.ssrf_policy();
    h.update([
        u8::from(policy.allow_private),
        u8::from(policy.allow_loopback),
    ]);
    let key = hex::encode(h.finalize());
    let mut cache = state.registry_clients();
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let client = std::sync::Arc::new(new_client_for(state, s)?);
    // Settings change rarely; an unbounded map would only grow with edits. Start over past 256.
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(key, client.clone());
    Ok(client)
}

/// A fresh client (nothing learned or cached): what a connection test needs to report every
/// step honestly.
pub fn new_client_for(state: &AppState, s: &RegistrySettings) -> ApiResult<RegistryClient> {
    let creds = match (s.auth_type, &s.username, &s.password) {
        (RegistryAuthType::Basic | RegistryAuthType::DockerConfig, Some(u), Some(p)) => {
            Credentials::Basic {
                username: u.clone(),
                password: p.expose().to_owned(),
            }
        }
        _ => Credentials::Anonymous,
    };
    let opts = RegistryOptions {
        ca_pem: s.ca_pem.clone(),
        insecure: s.insecure,
        platform: s.platform.parse().unwrap_or_default(),
        ssrf: state.ssrf_policy(),
        ..RegistryOptions::default()
    };
    RegistryClient::new(&api_host(&s.host), creds, opts)
        .map_err(|e| ApiError::internal(format!("registry client: {e}")))
}

/// Maps a registry error to an answer: 404 for a missing repository or tag, 502 otherwise
/// (the registry, not the caller, failed), naming the step.
pub fn registry_error(e: berth_registry::Error) -> ApiError {
    match e {
        berth_registry::Error::NotFound { .. } => ApiError::not_found(e.to_string()),
        e => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "registry_error",
            format!("registry {} step failed: {e}", e.step().as_str()),
        ),
    }
}

async fn settings_or_404(
    state: &AppState,
    org: &str,
    name: &str,
) -> ApiResult<(Registry, RegistrySettings)> {
    state
        .store()
        .registry_settings(org, name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "registry {name:?} not found in organization {org:?}"
            ))
        })
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/registries", tag = "registries",
    responses((status = 200, body = List<Registry>)))]
pub async fn list_registries(
    State(state): State<AppState>,
    _auth: Auth,
    Path(org): Path<String>,
) -> ApiResult<Json<List<Registry>>> {
    Ok(Json(List::new(state.store().list_registries(&org).await?)))
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/registries", tag = "registries",
    request_body = CreateRegistry,
    responses((status = 201, body = Registry), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn create_registry(
    State(state): State<AppState>,
    auth: Auth,
    Path(org): Path<String>,
    Json(body): Json<CreateRegistry>,
) -> ApiResult<(StatusCode, Json<Registry>)> {
    auth.require(Action::Administer)?;
    validate_name("name", &body.name)?;
    let settings = validate(Draft {
        display_name: body.display_name.unwrap_or_else(|| body.name.clone()),
        host: body.host,
        auth_type: body.auth_type,
        username: body.username,
        password: body.password,
        docker_config: body.docker_config,
        ca_pem: body.ca_certificate,
        insecure: body.insecure.unwrap_or(false),
        platform: body.platform.unwrap_or_else(|| "linux/amd64".into()),
    })?;
    let registry = state
        .store()
        .insert_registry(&org, &body.name, &settings)
        .await?;
    Ok((StatusCode::CREATED, Json(registry)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/registries/{registry}", tag = "registries",
    responses((status = 200, body = Registry), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_registry(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<Json<Registry>> {
    state
        .store()
        .get_registry(&org, &name)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "registry {name:?} not found in organization {org:?}"
            ))
        })
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}/registries/{registry}", tag = "registries",
    request_body = UpdateRegistry,
    responses((status = 200, body = Registry), (status = 422, body = berth_core::api::ApiError)))]
pub async fn update_registry(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, name)): Path<(String, String)>,
    Json(body): Json<UpdateRegistry>,
) -> ApiResult<Json<Registry>> {
    auth.require(Action::Administer)?;
    if let Some(new) = &body.name
        && *new != name
    {
        return Err(ApiError::validation(
            "name",
            format!("is immutable (it is {name:?}); register a new registry to use {new:?}"),
        ));
    }
    let (_, current) = settings_or_404(&state, &org, &name).await?;
    let auth_type = body.auth_type.unwrap_or(current.auth_type);
    let same_type = auth_type == current.auth_type;
    // Credentials carry over only within the same auth type; a docker-config is stored as its
    // username/password, so changing anything of it needs the whole config again.
    let keep = same_type && auth_type == RegistryAuthType::Basic;
    let draft = Draft {
        display_name: body.display_name.unwrap_or(current.display_name),
        host: body.host.or(Some(current.host.clone())),
        auth_type,
        username: body
            .username
            .or(if keep { current.username.clone() } else { None }),
        password: body
            .password
            .or(if keep { current.password.clone() } else { None }),
        docker_config: body.docker_config,
        ca_pem: match body.ca_certificate {
            Some(c) => Some(c),
            None => current.ca_pem.clone(),
        },
        insecure: body.insecure.unwrap_or(current.insecure),
        platform: body.platform.unwrap_or(current.platform.clone()),
    };
    let settings = if auth_type == RegistryAuthType::DockerConfig && draft.docker_config.is_none() {
        if !same_type {
            return Err(ApiError::validation(
                "dockerConfig",
                "is required when changing authType to docker-config",
            ));
        }
        // Unchanged docker-config credentials: validate the rest with them as they are.
        let mut s = validate(Draft {
            auth_type: RegistryAuthType::Anonymous,
            username: None,
            password: None,
            ..draft
        })?;
        if s.host != current.host {
            return Err(ApiError::validation(
                "host",
                "changing the host of a docker-config registry needs a dockerConfig for the new host",
            ));
        }
        s.auth_type = RegistryAuthType::DockerConfig;
        s.username = current.username;
        s.password = current.password;
        s
    } else {
        validate(draft)?
    };
    Ok(Json(
        state
            .store()
            .update_registry(&org, &name, &settings)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/registries/{registry}", tag = "registries",
    responses((status = 204), (status = 404, body = berth_core::api::ApiError),
              (status = 409, body = berth_core::api::ApiError)))]
pub async fn delete_registry(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Administer)?;
    state.store().delete_registry(&org, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `repo:tag`, `repo@digest` or a full reference on the registry's host → (repository, reference).
fn image_on(host: &str, image: &str) -> ApiResult<(String, String)> {
    // Same rule as the reference grammar: a first component with '.' or ':' (or `localhost`)
    // is a host; otherwise the path is relative to this registry.
    let first = image.split('/').next().unwrap_or("");
    let explicit_host = image.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    let text = if explicit_host {
        image.to_owned()
    } else {
        format!("{host}/{image}")
    };
    let full = ImageRef::parse(&text).map_err(|e| {
        ApiError::validation(
            "image",
            format!("{e} (expected repo:tag, repo@digest or {host}/repo:tag)"),
        )
    })?;
    if full.registry_host() != host {
        return Err(ApiError::validation(
            "image",
            format!("is on {} but this registry is {host}", full.registry_host()),
        ));
    }
    let reference = full
        .digest()
        .map(str::to_owned)
        .or_else(|| full.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".to_owned());
    Ok((full.path().to_owned(), reference))
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/registries/{registry}/test", tag = "registries",
    request_body = TestRegistry,
    responses((status = 200, body = RegistryTestReport)))]
pub async fn test_registry(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, name)): Path<(String, String)>,
    Json(body): Json<TestRegistry>,
) -> ApiResult<Json<RegistryTestReport>> {
    auth.require(Action::Write)?;
    let (registry, settings) = settings_or_404(&state, &org, &name).await?;
    let image = body
        .image
        .as_deref()
        .map(|i| image_on(&registry.host, i))
        .transpose()?;
    let client = new_client_for(&state, &settings)?;
    let steps = berth_registry::test_connection(
        &client,
        image.as_ref().map(|(r, t)| (r.as_str(), t.as_str())),
    )
    .await;
    let ok = steps.iter().all(|s| s.ok);
    let digest = if ok && let Some((repo, reference)) = &image {
        client.resolve(repo, reference).await.ok().map(|r| r.digest)
    } else {
        None
    };
    let mut steps: Vec<RegistryTestStep> = steps
        .into_iter()
        .map(|s| RegistryTestStep {
            step: s.step.to_owned(),
            ok: s.ok,
            detail: s.detail,
        })
        .collect();
    if registry.auth_type == RegistryAuthType::Implicit
        && let Some(auth) = steps.iter_mut().find(|s| s.step == "auth")
    {
        auth.detail.push_str(
            "; implicit registries: the data plane pulls with its own access, which berth cannot check from here",
        );
    }
    Ok(Json(RegistryTestReport { ok, steps, digest }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TagsQuery {
    /// Repository path on this registry, e.g. `test/web`.
    pub repository: String,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/registries/{registry}/tags", tag = "registries",
    params(TagsQuery),
    responses((status = 200, body = Tags), (status = 404, body = berth_core::api::ApiError),
              (status = 502, body = berth_core::api::ApiError)))]
pub async fn list_tags(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, name)): Path<(String, String)>,
    Query(query): Query<TagsQuery>,
) -> ApiResult<Json<Tags>> {
    let (registry, settings) = settings_or_404(&state, &org, &name).await?;
    let (repository, _) = image_on(&registry.host, &query.repository)
        .map_err(|e| ApiError::validation("repository", e.message))?;
    let client = client_for(&state, &settings)?;
    let mut tags = client
        .list_tags(&repository)
        .await
        .map_err(registry_error)?;
    tags.sort();
    Ok(Json(Tags { repository, tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(auth: RegistryAuthType) -> Draft {
        Draft {
            display_name: "R".into(),
            host: Some("127.0.0.1:5000".into()),
            auth_type: auth,
            username: None,
            password: None,
            docker_config: None,
            ca_pem: None,
            insecure: false,
            platform: "linux/amd64".into(),
        }
    }

    fn field(r: ApiResult<RegistrySettings>) -> String {
        r.unwrap_err().field.unwrap_or_default()
    }

    #[test]
    fn auth_type_rules() {
        assert!(validate(draft(RegistryAuthType::Anonymous)).is_ok());
        assert!(validate(draft(RegistryAuthType::Implicit)).is_ok());
        let mut d = draft(RegistryAuthType::Anonymous);
        d.username = Some("u".into());
        assert_eq!(field(validate(d)), "username");
        assert_eq!(field(validate(draft(RegistryAuthType::Basic))), "username");
        let mut d = draft(RegistryAuthType::Basic);
        d.username = Some("u".into());
        assert_eq!(field(validate(d)), "password");
        let mut d = draft(RegistryAuthType::Basic);
        d.username = Some("u".into());
        d.password = Some(Secret::new("p"));
        let s = validate(d).unwrap();
        assert_eq!(s.password.unwrap().expose(), "p");
        assert_eq!(
            field(validate(draft(RegistryAuthType::DockerConfig))),
            "dockerConfig"
        );
        let mut d = draft(RegistryAuthType::Anonymous);
        d.host = Some("https://ghcr.io".into());
        assert_eq!(field(validate(d)), "host");
        let mut d = draft(RegistryAuthType::Anonymous);
        d.host = None;
        assert_eq!(field(validate(d)), "host");
        let mut d = draft(RegistryAuthType::Anonymous);
        d.platform = "amd64".into();
        assert_eq!(field(validate(d)), "platform");
        let mut d = draft(RegistryAuthType::Anonymous);
        d.ca_pem = Some("garbage".into());
        assert_eq!(field(validate(d)), "caCertificate");
    }

    #[test]
    fn docker_config_fills_host_and_credentials() {
        let mut d = draft(RegistryAuthType::DockerConfig);
        d.host = None;
        d.docker_config = Some(Secret::new(
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YmVydGg6czNjcmV0"}}}"#,
        ));
        let s = validate(d).unwrap();
        assert_eq!(s.host, "127.0.0.1:5000");
        assert_eq!(s.username.as_deref(), Some("berth"));
        assert_eq!(s.password.unwrap().expose(), "s3cret");
        let mut d = draft(RegistryAuthType::DockerConfig);
        d.host = Some("ghcr.io".into());
        d.docker_config = Some(Secret::new(
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YmVydGg6czNjcmV0"}}}"#,
        ));
        let err = validate(d).unwrap_err();
        assert!(err.message.contains("ghcr.io"), "{}", err.message);
        assert!(!err.message.contains("s3cret"));
    }

    #[test]
    fn docker_hub_aliases_are_one_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        let mut d = draft(RegistryAuthType::Anonymous);
        d.host = Some("index.docker.io".into());
        assert_eq!(validate(d).unwrap().host, "docker.io");
        assert_eq!(
            image_on("docker.io", "nginx:1.25").unwrap(),
            ("library/nginx".into(), "1.25".into())
        );
        assert_eq!(
            image_on("127.0.0.1:5000", "test/web:v1").unwrap(),
            ("test/web".into(), "v1".into())
        );
        assert_eq!(
            image_on("127.0.0.1:5000", "127.0.0.1:5000/test/web:v2").unwrap(),
            ("test/web".into(), "v2".into())
        );
        assert_eq!(
            image_on("127.0.0.1:5000", "ghcr.io/a/b:v1")
                .unwrap_err()
                .field
                .as_deref(),
            Some("image")
        );
    }
}
