//! Components and deploying them: create from an image URL, Update Image Tag / Update Image URL
//! / Previous Images, promotion, deployments and their events.

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    Component, CreateComponent, DeployAccepted, DeployRequest, Deployment, DeploymentEvent,
    DeploymentStatus, EnvironmentState, List, PreviousImage, PromoteRequest, UpdateComponent,
};
use berth_core::reference::{ImageRef, validate_tag};
use berth_core::role::Action;
use berth_core::{validate_description, validate_display_name, validate_name};
use berth_dataplane::{DataPlane, LogsOptions, WorkloadKey};
use berth_store::{
    ComponentRef, ComponentWindow, DeployContext, EnvironmentDeployments, NewComponent, NewRelease,
    Origin, ReleaseChoice,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::page::{Limits, ListScope, as_pair};
use crate::api::registries::{client_for, registry_error};
use crate::auth::Auth;
use crate::deploy;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};

pub(crate) async fn component_or_404(
    state: &AppState,
    org: &str,
    project: &str,
    name: &str,
) -> ApiResult<Component> {
    if state.store().get_project(org, project).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "project {project:?} not found in organization {org:?}"
        )));
    }
    state
        .store()
        .get_component(org, project, name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "component {name:?} not found in project {project:?}"
            ))
        })
}

/// Resolves `image` on `registry` to a digest; a missing tag is the caller's 422.
async fn resolve(
    state: &AppState,
    org: &str,
    registry: &str,
    image: &ImageRef,
    field: &str,
) -> ApiResult<String> {
    let (_, settings) = state
        .store()
        .registry_settings(org, registry)
        .await?
        .ok_or_else(|| {
            ApiError::validation("registry", format!("registry {registry:?} not found"))
        })?;
    resolve_with(state, &settings, image, field).await
}

/// [`resolve`] with the registry's settings at hand.
async fn resolve_with(
    state: &AppState,
    settings: &berth_store::RegistrySettings,
    image: &ImageRef,
    field: &str,
) -> ApiResult<String> {
    let client = client_for(state, settings)?;
    let reference = image
        .digest()
        .map(str::to_owned)
        .or_else(|| image.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".into());
    match client.resolve_shared(image.path(), &reference).await {
        Ok(r) if r.platform_available == Some(false) => Err(ApiError::validation(
            field,
            format!(
                "{image} has no {} image (it has: {})",
                settings.platform,
                r.platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Ok(r) => Ok(r.digest),
        Err(berth_registry::Error::NotFound { detail, .. }) => Err(ApiError::validation(
            field,
            format!("tag {reference:?} not found in {} ({detail})", image.name()),
        )),
        Err(e) => Err(registry_error(e)),
    }
}

/// The registry of the organization that serves `image`'s host: the preferred one when it
/// does, else the only other one.
async fn registry_for(
    state: &AppState,
    org: &str,
    preferred: &str,
    image: &ImageRef,
    field: &str,
) -> ApiResult<String> {
    let registries = state.store().list_registries(org).await?;
    let host = image.registry_host();
    if registries
        .iter()
        .any(|r| r.name == preferred && r.host == host)
    {
        return Ok(preferred.to_owned());
    }
    let serving: Vec<_> = registries.iter().filter(|r| r.host == host).collect();
    match serving.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(ApiError::validation(
            field,
            format!("no registered registry serves {host}; register it first (berth registry add)"),
        )),
        many => Err(ApiError::validation(
            field,
            format!(
                "several registries serve {host} ({}); deploy from the component's registry or change it",
                many.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn parse_image(field: &str, text: &str) -> ApiResult<ImageRef> {
    ImageRef::parse(text).map_err(|e| ApiError::validation(field, e.to_string()))
}

/// Page sizes of the components list.
pub const COMPONENT_LIMITS: Limits = Limits {
    default: 100,
    max: 500,
};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ComponentsQuery {
    /// At most this many, by name (1–500, default 100).
    pub limit: Option<u32>,
    /// Where to start: the `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A project's components by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components", tag = "components",
    params(ComponentsQuery),
    responses((status = 200, body = List<Component>), (status = 422, body = berth_core::api::ApiError)))]
pub async fn list_components(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project)): Path<(String, String)>,
    Query(q): Query<ComponentsQuery>,
) -> ApiResult<Json<List<Component>>> {
    let limit = COMPONENT_LIMITS.pick(q.limit)?;
    let scope = ListScope::new("components", &[&org, &project]);
    let after = scope.single(q.cursor.as_deref())?;
    let page = state
        .store()
        .list_components(&org, &project, after.as_deref(), limit)
        .await?;
    Ok(Json(List {
        next_cursor: page.next(|c| scope.cursor(&[&c.name])),
        items: page.items,
    }))
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/components", tag = "components",
    request_body = CreateComponent,
    responses((status = 201, body = Component), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError), (status = 502, body = berth_core::api::ApiError)))]
pub async fn create_component(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project)): Path<(String, String)>,
    Json(body): Json<CreateComponent>,
) -> ApiResult<(StatusCode, Json<Component>)> {
    auth.require(Action::Write)?;
    validate_name("name", &body.name)?;
    let display_name = body.display_name.unwrap_or_else(|| body.name.clone());
    validate_display_name("displayName", &display_name)?;
    let description = body.description.unwrap_or_default();
    validate_description("description", &description)?;
    if state.store().get_project(&org, &project).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "project {project:?} not found in organization {org:?}"
        )));
    }
    if body.port == Some(0) {
        return Err(ApiError::validation("port", "must be between 1 and 65535"));
    }
    let registry = state
        .store()
        .get_registry(&org, &body.registry)
        .await?
        .ok_or_else(|| {
            ApiError::validation(
                "registry",
                format!("registry {:?} not found in organization {org:?}; register it first (berth registry add)", body.registry),
            )
        })?;
    let image = parse_image("image", &body.image)?;
    if image.registry_host() != registry.host {
        return Err(ApiError::validation(
            "image",
            format!(
                "is on {} but registry {:?} serves {}; use a registry for {}",
                image.registry_host(),
                registry.name,
                registry.host,
                image.registry_host()
            ),
        ));
    }
    if !body.no_verify {
        resolve(&state, &org, &registry.name, &image, "image").await?;
    }
    let component = state
        .store()
        .insert_component(
            &org,
            &project,
            &NewComponent {
                name: &body.name,
                display_name: &display_name,
                description: &description,
                kind: body.kind,
                registry: &registry.name,
                image: &image.normalized(),
                port: body.port,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(component)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}", tag = "components",
    responses((status = 200, body = Component), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_component(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Component>> {
    Ok(Json(component_or_404(&state, &org, &project, &name).await?))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}", tag = "components",
    request_body = UpdateComponent,
    responses((status = 200, body = Component), (status = 422, body = berth_core::api::ApiError)))]
pub async fn update_component(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Json(body): Json<UpdateComponent>,
) -> ApiResult<Json<Component>> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &name).await?;
    if let Some(new) = &body.name
        && *new != name
    {
        return Err(ApiError::validation(
            "name",
            format!("is immutable (it is {name:?}); create a new component to use {new:?}"),
        ));
    }
    if let Some(d) = &body.display_name {
        validate_display_name("displayName", d)?;
    }
    if let Some(d) = &body.description {
        validate_description("description", d)?;
    }
    if body.port == Some(0) {
        return Err(ApiError::validation("port", "must be between 1 and 65535"));
    }
    let c = state
        .store()
        .update_component(
            &org,
            &project,
            &name,
            body.display_name.as_deref(),
            body.description.as_deref(),
            body.port,
        )
        .await?;
    Ok(Json(c))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}", tag = "components",
    responses((status = 204), (status = 404, body = berth_core::api::ApiError)))]
pub async fn delete_component(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &name).await?;
    let envs = state.store().list_environments(&org).await?;
    state
        .store()
        .delete_component(&org, &project, &name)
        .await?;
    // The store no longer wants it: stop everything now (the reconciler finishes the job if the
    // engine is away).
    for env in envs {
        let key = WorkloadKey {
            org: org.clone(),
            project: project.clone(),
            component: name.clone(),
            env: env.name,
        };
        state.gateway().remove(&key);
        if let Ok(engine) = state.engine()
            && let Err(e) = engine.remove_workload(&key).await
        {
            tracing::warn!(%key, error = %e, "removing the workload failed; the reconciler will retry");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

fn accepted(state: &AppState, d: &Deployment, created: bool) -> (StatusCode, Json<DeployAccepted>) {
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(DeployAccepted {
            deployment_id: d.id.clone(),
            environment: d.environment.clone(),
            image: d.image.clone(),
            digest: d.digest.clone(),
            created,
            status_url: format!("{}/api/v1/deployments/{}", state.config().public_url, d.id),
        }),
    )
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/deploy", tag = "components",
    request_body = DeployRequest,
    responses((status = 202, body = DeployAccepted), (status = 200, body = DeployAccepted),
              (status = 422, body = berth_core::api::ApiError), (status = 502, body = berth_core::api::ApiError)))]
pub async fn deploy(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Json(body): Json<DeployRequest>,
) -> ApiResult<(StatusCode, Json<DeployAccepted>)> {
    auth.require(Action::Write)?;
    let what = match (body.tag, body.image, body.previous) {
        (None, None, None) => DeployWhat::Current,
        (Some(t), None, None) => DeployWhat::Tag(t),
        (None, Some(i), None) => DeployWhat::Image(i),
        (None, None, Some(p)) => DeployWhat::Previous(p),
        _ => {
            return Err(ApiError::validation(
                "body",
                "give at most one of tag, image and previous",
            ));
        }
    };
    let actor = auth.0.actor();
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    let origin = Origin {
        trigger: "user",
        actor: &actor,
    };
    let (d, created) = deploy_component(&state, target, what, body.force, origin).await?;
    Ok(accepted(&state, &d, created))
}

/// What to deploy.
#[derive(Debug, Clone)]
pub enum DeployWhat {
    /// Re-resolve the component's current tag.
    Current,
    /// Update Image Tag: the same repository with another tag.
    Tag(String),
    /// Update Image URL: any repository on a registered registry.
    Image(String),
    /// Previous Images: a digest or release id the component ran before.
    Previous(String),
}

/// A shared read of a deploy context failed (each caller then reads alone, for its own error).
#[derive(Debug, Clone, Copy)]
pub struct SharedReadFailed;

impl From<berth_registry::Canceled> for SharedReadFailed {
    fn from(_: berth_registry::Canceled) -> Self {
        Self
    }
}

/// Shared reads of deploy contexts, per (org, project, component).
pub type ContextReads =
    berth_registry::Coalescer<(String, String, String), Option<DeployContext>, SharedReadFailed>;

/// What deploying `target` needs to know, in one query (see `Store::deploy_context`); a 404
/// naming the missing project or component.
///
/// Concurrent calls for one component share that query (a burst of webhook calls costs a few
/// reads, not one each). A call is only answered by a read that started after it asked, so it
/// sees every deployment created before it arrived, as a read of its own would.
pub(crate) async fn deploy_context(
    state: &AppState,
    target: ComponentRef<'_>,
) -> ApiResult<DeployContext> {
    let ComponentRef {
        org,
        project,
        component: name,
    } = target;
    let store = state.store().clone();
    let key = (org.to_owned(), project.to_owned(), name.to_owned());
    let shared = state
        .deploy_contexts()
        .run(key.clone(), move || {
            let (store, (org, project, name)) = (store.clone(), key.clone());
            async move {
                store
                    .deploy_context(&org, &project, &name)
                    .await
                    .map_err(|_| SharedReadFailed)
            }
        })
        .await;
    let found = match shared {
        Ok(found) => found,
        // Read again alone: the error is this call's, with its precise status.
        Err(SharedReadFailed) => state.store().deploy_context(org, project, name).await?,
    };
    if let Some(context) = found {
        return Ok(context);
    }
    // Which level is missing, in the words of every other route.
    component_or_404(state, org, project, name).await?;
    Err(ApiError::not_found(format!(
        "component {name:?} not found in project {project:?}"
    )))
}

/// Deploys a component to the first environment: resolves the image to a digest, creates the
/// release and a pending deployment, and wakes the runner. Returns the deployment and whether
/// it is new (`false`: the same digest is already deployed there and `force` is off).
/// Used by the API, the CI webhook and auto-deploy.
pub async fn deploy_component(
    state: &AppState,
    target: ComponentRef<'_>,
    what: DeployWhat,
    force: bool,
    origin: Origin<'_>,
) -> ApiResult<(Deployment, bool)> {
    let context = deploy_context(state, target).await?;
    deploy_with(state, target, context, what, force, origin).await
}

/// [`deploy_component`] with what [`deploy_context`] loaded. The usual request (the digest is
/// already deployed, from the component's registry) needs no other query.
pub(crate) async fn deploy_with(
    state: &AppState,
    target: ComponentRef<'_>,
    context: DeployContext,
    what: DeployWhat,
    force: bool,
    origin: Origin<'_>,
) -> ApiResult<(Deployment, bool)> {
    let ComponentRef {
        org,
        project,
        component: name,
    } = target;
    let DeployContext {
        component,
        registry_settings,
        first_environment,
        latest,
    } = context;
    let first = first_environment.ok_or_else(|| {
        ApiError::validation(
            "environment",
            format!("organization {org:?} has no environments"),
        )
    })?;
    let key = WorkloadKey {
        org: org.to_owned(),
        project: project.to_owned(),
        component: name.to_owned(),
        env: first.clone(),
    };
    if let DeployWhat::Previous(previous) = &what {
        let release = state
            .store()
            .find_release(org, project, name, previous)
            .await?
            .ok_or_else(|| {
                ApiError::validation(
                    "previous",
                    format!("{name:?} never ran {previous:?}; see its previous images for digests and release ids"),
                )
            })?;
        let d = state
            .store()
            .create_deployment(
                target,
                &first,
                ReleaseChoice::Existing(&release),
                None,
                origin,
            )
            .await?;
        deploy::kick(state, key);
        return Ok((d, true));
    }
    let current = parse_image("image", &component.image)?;
    let current_name = current.name();
    let (image, registry, field) = match what {
        DeployWhat::Tag(tag) => {
            validate_tag(&tag).map_err(|e| ApiError::validation("tag", e.to_string()))?;
            // The tag's content now: a digest the component's image was pinned to goes.
            let image = current
                .retagged(&tag)
                .map_err(|e| ApiError::validation("tag", e.to_string()))?;
            (image, component.registry.clone(), "tag")
        }
        DeployWhat::Image(text) => {
            let image = parse_image("image", &text)?;
            // The component's own registry serves it: what `registry_for` would answer first,
            // without listing the registries.
            let registry = if image.registry_host() == registry_settings.host {
                component.registry.clone()
            } else {
                registry_for(state, org, &component.registry, &image, "image").await?
            };
            (image, registry, "image")
        }
        DeployWhat::Current | DeployWhat::Previous(_) => {
            (current, component.registry.clone(), "image")
        }
    };
    let digest = if registry == component.registry {
        resolve_with(state, &registry_settings, &image, field).await?
    } else {
        resolve(state, org, &registry, &image, field).await?
    };
    // Same digest already deployed (or on its way) to the first environment: nothing to do.
    let already = |latest: Option<Deployment>| {
        latest.filter(|d| {
            d.digest == digest
                && !matches!(
                    d.status,
                    DeploymentStatus::Failed | DeploymentStatus::RolledBack
                )
        })
    };
    // Concurrent requests for one new digest create one deployment: the first takes the lock
    // and creates it, the others find it when they get the lock. (Servers sharing a PostgreSQL
    // database do not share this lock.)
    let lock = state.deploy_lock(&format!("{org}/{project}/{name}"));
    let _creating = if force {
        None
    } else {
        // As the context was read, a moment ago (a deployment created since is found below).
        if let Some(d) = already(latest) {
            return Ok((d, false));
        }
        let guard = lock.lock().await;
        if let Some(d) = already(state.store().latest_deployment(target, &first).await?) {
            return Ok((d, false));
        }
        Some(guard)
    };
    // The endpoints file as it is now becomes part of the release; a component without a port
    // serves on its first endpoint's.
    let (endpoints, snapshot) = crate::api::endpoints::current_snapshot(state, target).await?;
    let port = component.port.or_else(|| {
        endpoints
            .iter()
            .find(|e| {
                e.visibilities
                    .contains(&berth_core::endpoints::Visibility::Public)
            })
            .or(endpoints.first())
            .map(|e| e.port)
    });
    let repository = image.name();
    // A digest-only reference of the same repository keeps the component's tag for display;
    // of another repository it is the component's image from now on (keeping the old one
    // would pair it with the new registry: later deploys would resolve the old repository
    // there, and send that registry's credentials with its pulls).
    let normalized = if image.tag().is_some() || image.name() != current_name {
        image.normalized()
    } else {
        component.image.clone()
    };
    let d = state
        .store()
        .create_deployment(
            target,
            &first,
            ReleaseChoice::New(NewRelease {
                registry: &registry,
                repository: &repository,
                tag: image.tag(),
                digest: &digest,
                port,
                endpoints: &snapshot,
                config: "{}",
            }),
            Some(&normalized),
            origin,
        )
        .await?;
    deploy::kick(state, key);
    Ok((d, true))
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/promote", tag = "components",
    request_body = PromoteRequest,
    responses((status = 202, body = DeployAccepted), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn promote(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Json(body): Json<PromoteRequest>,
) -> ApiResult<(StatusCode, Json<DeployAccepted>)> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &name).await?;
    let envs = state.store().list_environments(&org).await?;
    let known = |field: &str, env: &str| {
        if envs.iter().any(|e| e.name == env) {
            Ok(())
        } else {
            Err(ApiError::validation(
                field,
                format!(
                    "environment {env:?} not found; the organization has {}",
                    envs.iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    };
    known("from", &body.from)?;
    known("to", &body.to)?;
    if body.from == body.to {
        return Err(ApiError::validation("to", "must differ from `from`"));
    }
    let current = state
        .store()
        .list_deployments(&org, &project, &name, Some(&body.from), 50)
        .await?
        .into_iter()
        .find(|d| d.status == DeploymentStatus::Ready)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "nothing is running in {} to promote; deploy there first",
                    body.from
                ),
            )
        })?;
    let actor = auth.0.actor();
    let d = state
        .store()
        .create_deployment(
            ComponentRef {
                org: &org,
                project: &project,
                component: &name,
            },
            &body.to,
            ReleaseChoice::Existing(&current.release),
            None,
            Origin {
                trigger: "promote",
                actor: &actor,
            },
        )
        .await?;
    deploy::kick(
        &state,
        WorkloadKey {
            org,
            project,
            component: name,
            env: body.to,
        },
    );
    Ok(accepted(&state, &d, true))
}

/// Page sizes of the deployments list.
pub const DEPLOYMENT_LIMITS: Limits = Limits {
    default: 50,
    max: 500,
};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsQuery {
    /// Only this environment.
    pub env: Option<String>,
    /// At most this many, newest first (1–500, default 50).
    pub limit: Option<u32>,
    /// Where to start: the `nextCursor` of the previous page (with the same `env`).
    pub cursor: Option<String>,
}

/// A component's deployments, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/deployments", tag = "components",
    params(DeploymentsQuery),
    responses((status = 200, body = List<Deployment>), (status = 422, body = berth_core::api::ApiError)))]
pub async fn list_deployments(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Query(q): Query<DeploymentsQuery>,
) -> ApiResult<Json<List<Deployment>>> {
    let limit = DEPLOYMENT_LIMITS.pick(q.limit)?;
    let env = q.env.as_deref();
    let scope = ListScope::new(
        "deployments",
        &[&org, &project, &name, env.unwrap_or_default()],
    );
    let before = scope.pair(q.cursor.as_deref())?;
    let page = state
        .store()
        .deployments_page(&org, &project, &name, env, as_pair(&before), limit)
        .await
        .map_err(|e| component_404(e, &org, &project, &name))?;
    Ok(Json(List {
        next_cursor: page.next(|d| scope.cursor(&[&d.created_at, &d.id])),
        items: page.items,
    }))
}

/// Page sizes of Previous Images.
pub const PREVIOUS_IMAGE_LIMITS: Limits = Limits {
    default: 50,
    max: 500,
};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviousImagesQuery {
    /// At most this many, the most recently deployed first (1–500, default 50).
    pub limit: Option<u32>,
    /// Where to start: the `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Each digest the component was deployed with (the newest release of it, the first and the
/// last deployment), the most recently deployed first, a page at a time.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/previous-images", tag = "components",
    params(PreviousImagesQuery),
    responses((status = 200, body = List<PreviousImage>), (status = 422, body = berth_core::api::ApiError)))]
pub async fn previous_images(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Query(q): Query<PreviousImagesQuery>,
) -> ApiResult<Json<List<PreviousImage>>> {
    let limit = PREVIOUS_IMAGE_LIMITS.pick(q.limit)?;
    let scope = ListScope::new("previous-images", &[&org, &project, &name]);
    let before = scope.pair(q.cursor.as_deref())?;
    let page = state
        .store()
        .previous_images(&org, &project, &name, as_pair(&before), limit)
        .await
        .map_err(|e| component_404(e, &org, &project, &name))?;
    Ok(Json(List {
        next_cursor: page.next(|p| scope.cursor(&[&p.last_deployed_at, &p.digest])),
        items: page.items,
    }))
}

/// The store's NotFound of a component lookup as the API words it ([`component_or_404`]).
fn component_404(e: berth_store::Error, org: &str, project: &str, name: &str) -> ApiError {
    match e {
        berth_store::Error::NotFound {
            kind: "project", ..
        } => ApiError::not_found(format!(
            "project {project:?} not found in organization {org:?}"
        )),
        berth_store::Error::NotFound {
            kind: "component", ..
        } => ApiError::not_found(format!(
            "component {name:?} not found in project {project:?}"
        )),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments", tag = "components",
    responses((status = 200, body = List<EnvironmentState>)))]
pub async fn environments(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
) -> ApiResult<Json<List<EnvironmentState>>> {
    let component = component_or_404(&state, &org, &project, &name).await?;
    let envs = state.store().list_environments(&org).await?;
    let found = state
        .store()
        .environment_states(
            &org,
            &ComponentWindow {
                project: Some(&project),
                component: Some(&name),
                ..Default::default()
            },
        )
        .await?;
    Ok(Json(List::new(environment_views(
        &state, &component, &envs, &found,
    ))))
}

/// What runs of `component` in each of the organization's environments (in their order):
/// the newest deployment there, the serving one (newest `ready`) and its gateway URL. `found`
/// holds [`berth_store::Store::environment_states`] rows; those of other components are
/// ignored. The console's overview builds its rows with this too.
pub fn environment_views(
    state: &AppState,
    component: &Component,
    envs: &[berth_core::api::Environment],
    found: &[EnvironmentDeployments],
) -> Vec<EnvironmentState> {
    envs.iter()
        .map(|env| {
            let row = found.iter().find(|f| {
                f.environment == env.name
                    && f.component == component.name
                    && f.project == component.project
            });
            let current = row.and_then(|r| r.current.clone());
            let key = WorkloadKey {
                org: component.org.clone(),
                project: component.project.clone(),
                component: component.name.clone(),
                env: env.name.clone(),
            };
            let url = (current.is_some() && !component.kind.is_task()).then(|| {
                state.gateway().url_for(
                    &key,
                    component.kind == berth_core::api::ComponentType::WebApp,
                )
            });
            EnvironmentState {
                environment: env.name.clone(),
                latest: row.and_then(|r| r.latest.clone()),
                current,
                url,
            }
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    responses((status = 200, body = Deployment), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_deployment(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Deployment>> {
    state
        .store()
        .get_deployment(&id)
        .await?
        .map(|w| Json(w.deployment))
        .ok_or_else(|| ApiError::not_found(format!("deployment {id:?} not found")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this event id.
    pub after: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}/events", tag = "deployments", params(EventsQuery),
    responses((status = 200, body = List<DeploymentEvent>)))]
pub async fn deployment_events(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<List<DeploymentEvent>>> {
    if state.store().get_deployment(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("deployment {id:?} not found")));
    }
    Ok(Json(List::new(
        state
            .store()
            .list_deployment_events(&id, q.after.unwrap_or(0))
            .await?,
    )))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Environment (default: the first).
    pub env: Option<String>,
    /// Last N lines (default 100, at most 10000).
    pub tail: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Logs {
    pub instance: String,
    pub lines: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/logs", tag = "components",
    params(LogsQuery), responses((status = 200, body = Logs)))]
pub async fn logs(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<Logs>> {
    let tail = q.tail.unwrap_or(100);
    let (instance, mut stream) =
        open_logs(&state, (&org, &project, &name), q.env, tail, false).await?;
    let mut lines = Vec::new();
    while let Some(line) = stream.next().await {
        lines.push(line.map_err(engine_unavailable)?.text);
    }
    Ok(Json(Logs { instance, lines }))
}

fn engine_unavailable(e: berth_dataplane::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engine_unavailable",
        e.to_string(),
    )
}

/// Opens the output of the component's running instance in `env` (default: the first
/// environment): the last `tail` lines (at most 10000), then, with `follow`, new lines until
/// the instance stops or the stream is dropped. Returns the instance's name and the lines.
/// Used by the API's logs and the console's follow view.
pub async fn open_logs(
    state: &AppState,
    (org, project, name): (&str, &str, &str),
    env: Option<String>,
    tail: u64,
    follow: bool,
) -> ApiResult<(String, berth_dataplane::BoxLogStream)> {
    component_or_404(state, org, project, name).await?;
    let envs = state.store().list_environments(org).await?;
    let env = match env {
        Some(e) if envs.iter().any(|x| x.name == e) => e,
        Some(e) => {
            return Err(ApiError::validation(
                "env",
                format!("environment {e:?} not found"),
            ));
        }
        None => envs.first().map(|e| e.name.clone()).unwrap_or_default(),
    };
    if tail > 10_000 {
        return Err(ApiError::validation("tail", "must be at most 10000"));
    }
    let engine = state.engine().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_unavailable",
            e.to_owned(),
        )
    })?;
    let key = WorkloadKey {
        org: org.to_owned(),
        project: project.to_owned(),
        component: name.to_owned(),
        env,
    };
    let instances = engine.instances(&key).await.map_err(engine_unavailable)?;
    let Some(instance) = instances
        .iter()
        .find(|i| i.state == berth_dataplane::InstanceState::Running)
    else {
        return Err(ApiError::not_found(format!(
            "{key} has no running instance"
        )));
    };
    let stream = engine
        .logs(
            &instance.id,
            &LogsOptions {
                tail: Some(tail),
                since: None,
                follow,
            },
        )
        .await
        .map_err(engine_unavailable)?;
    Ok((instance.name.clone(), stream))
}

/// Largest body of a config change: a 1 MiB file as a JSON string, with room for escapes.
pub const CONFIG_BODY_MAX: usize = 3 * 1024 * 1024;

async fn env_exists(state: &AppState, org: &str, env: &str) -> ApiResult<()> {
    let envs = state.store().list_environments(org).await?;
    if envs.iter().any(|e| e.name == env) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "environment {env:?} not found; the organization has {}",
            envs.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments/{env}/configs",
    tag = "components", responses((status = 200, body = List<berth_core::api::ConfigEntry>)))]
pub async fn list_configs(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name, env)): Path<(String, String, String, String)>,
) -> ApiResult<Json<List<berth_core::api::ConfigEntry>>> {
    component_or_404(&state, &org, &project, &name).await?;
    env_exists(&state, &org, &env).await?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    Ok(Json(List::new(
        state.store().list_configs(target, &env).await?,
    )))
}

/// Sets and removes configs and secrets of one environment, all or nothing; with `apply`
/// (default) the running release is rolled out again with them.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments/{env}/configs",
    tag = "components", request_body = berth_core::api::ConfigChange,
    responses((status = 200, body = berth_core::api::ConfigChanged), (status = 422, body = berth_core::api::ApiError)))]
pub async fn change_configs(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name, env)): Path<(String, String, String, String)>,
    Json(body): Json<berth_core::api::ConfigChange>,
) -> ApiResult<Json<berth_core::api::ConfigChanged>> {
    use berth_core::config::{ENV_VALUE_MAX, FILE_MAX, validate_env_name, validate_mount_path};
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &name).await?;
    env_exists(&state, &org, &env).await?;
    if body.set.is_empty() && body.unset.is_empty() {
        return Err(ApiError::validation(
            "set",
            "nothing to change: give `set` and/or `unset` entries",
        ));
    }
    let mut set = Vec::with_capacity(body.set.len());
    let mut seen = std::collections::HashSet::new();
    for (i, item) in body.set.iter().enumerate() {
        let field = format!("set[{i}].name");
        let value = item.value.expose();
        if item.kind.is_file() {
            validate_mount_path(&field, &item.name)?;
            if value.len() > FILE_MAX {
                return Err(ApiError::validation(
                    format!("set[{i}].value"),
                    format!(
                        "is {} bytes; files are at most {FILE_MAX} bytes",
                        value.len()
                    ),
                ));
            }
        } else {
            validate_env_name(&field, &item.name)?;
            if value.len() > ENV_VALUE_MAX {
                return Err(ApiError::validation(
                    format!("set[{i}].value"),
                    format!(
                        "is {} bytes; variables are at most {ENV_VALUE_MAX} bytes",
                        value.len()
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(ApiError::validation(
                    format!("set[{i}].value"),
                    "must not contain NUL characters",
                ));
            }
        }
        if !seen.insert((item.kind.is_file(), item.name.clone())) {
            return Err(ApiError::validation(
                field,
                format!("{:?} is set twice in this request", item.name),
            ));
        }
        set.push((item.kind, item.name.clone(), value.to_owned()));
    }
    let mut unset = Vec::with_capacity(body.unset.len());
    for (i, item) in body.unset.iter().enumerate() {
        match item.class.as_str() {
            "env" => validate_env_name(&format!("unset[{i}].name"), &item.name)?,
            "file" => validate_mount_path(&format!("unset[{i}].name"), &item.name)?,
            other => {
                return Err(ApiError::validation(
                    format!("unset[{i}].class"),
                    format!("{other:?} is not env or file"),
                ));
            }
        }
        unset.push((item.class.clone(), item.name.clone()));
    }
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    state
        .store()
        .change_configs(target, &env, &set, &unset)
        .await?;
    let mut deployment = None;
    if body.apply {
        let current = state
            .store()
            .list_deployments(&org, &project, &name, Some(&env), 50)
            .await?
            .into_iter()
            .find(|d| d.status == DeploymentStatus::Ready);
        if let Some(current) = current {
            let actor = auth.0.actor();
            let d = state
                .store()
                .create_deployment(
                    target,
                    &env,
                    ReleaseChoice::Existing(&current.release),
                    None,
                    Origin {
                        trigger: "config",
                        actor: &actor,
                    },
                )
                .await?;
            deploy::kick(
                &state,
                WorkloadKey {
                    org: org.clone(),
                    project: project.clone(),
                    component: name.clone(),
                    env: env.clone(),
                },
            );
            deployment = Some(accepted(&state, &d, true).1.0);
        }
    }
    Ok(Json(berth_core::api::ConfigChanged {
        items: state.store().list_configs(target, &env).await?,
        deployment,
    }))
}
