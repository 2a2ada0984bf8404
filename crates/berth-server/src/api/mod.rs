//! The HTTP API under `/api/v1`, plus `/healthz` and `/readyz`.

pub mod auto_deploy;
pub mod ci;
pub mod components;
pub mod endpoints;
pub mod orgs;
pub mod page;
pub mod registries;
pub mod render;
pub mod system;
pub mod tasks;
pub mod users;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

/// The API's OpenAPI document, served at `/api/v1/openapi.json`. Path parameters are read by
/// utoipa (`axum_extras`) from each handler's spelled-out `Path<(String, …)>` argument: a type
/// alias hides them. `tests::every_path_template_parameter_is_declared` catches a miss.
#[derive(OpenApi)]
#[openapi(
    info(title = "berth API", description = "Deploy prebuilt container images as managed components."),
    paths(
        system::healthz, system::readyz, system::metrics, system::openapi,
        users::whoami, users::list_users, users::create_user, users::get_user, users::delete_user,
        users::list_tokens, users::create_token, users::revoke_token, users::list_audit,
        orgs::list_orgs, orgs::create_org, orgs::get_org, orgs::update_org, orgs::delete_org,
        orgs::list_environments, orgs::create_environment, orgs::reorder_environments,
        orgs::delete_environment,
        orgs::list_projects, orgs::create_project, orgs::get_project, orgs::update_project,
        orgs::delete_project,
        registries::list_registries, registries::create_registry, registries::get_registry,
        registries::update_registry, registries::delete_registry, registries::test_registry,
        registries::list_tags,
        components::list_components, components::create_component, components::get_component,
        components::update_component, components::delete_component, components::deploy,
        components::promote, components::list_deployments, components::previous_images,
        components::environments, components::get_deployment, components::deployment_events,
        components::logs, endpoints::put_endpoints, endpoints::get_endpoints,
        endpoints::put_schema, endpoints::delete_schema, components::list_configs, components::change_configs,
        ci::list_ci_tokens, ci::create_ci_token, ci::revoke_ci_token, ci::ci_snippet,
        ci::deploy_hook, ci::hook_deployment,
        auto_deploy::get_auto_deploy, auto_deploy::put_auto_deploy,
        auto_deploy::delete_auto_deploy, auto_deploy::check_auto_deploy,
        auto_deploy::rotate_notification_secret, auto_deploy::registry_notification,
        tasks::get_schedule, tasks::put_schedule, tasks::delete_schedule, tasks::run,
        tasks::list_executions, tasks::get_execution, tasks::execution_logs,
        tasks::cancel_execution,
        render::render,
    ),
    modifiers(&BearerAuth, &CommonResponses),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The deploy webhook takes a component's CI token (`berth_ci_…`), no user token.
        components.add_security_scheme(
            "ci_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Operations that answer without any token.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"];

/// Reads that need more than the viewer role (`auth.require(…)` in a GET handler).
const RESTRICTED_READS: [&str; 6] = [
    "get_auto_deploy",
    "list_ci_tokens",
    "render",
    "list_users",
    "get_user",
    "list_audit",
];

/// The error answers every handler shares through its extractors and middleware, added to
/// each operation that can give them (a handler's own declaration wins):
/// - 401 without a valid token (everything but [`PUBLIC_PATHS`]);
/// - 403 when the caller's role is too low (mutations and [`RESTRICTED_READS`]);
/// - 404 when a path parameter names nothing;
/// - 422 for a query string or body of the wrong shape (`crate::extract`);
/// - 400 for malformed JSON, 413 past the body limit, 415 for a body that is not JSON.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ApiError")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in &mut openapi.paths.paths {
            let public = PUBLIC_PATHS.contains(&path.as_str());
            let ops = [
                (false, item.get.as_mut()),
                (true, item.put.as_mut()),
                (true, item.post.as_mut()),
                (true, item.delete.as_mut()),
                (true, item.patch.as_mut()),
            ];
            for (mutating, op) in ops {
                let Some(op) = op else { continue };
                let params = op.parameters.iter().flatten().filter_map(|p| match p {
                    RefOr::T(p) => Some(&p.parameter_in),
                    RefOr::Ref(_) => None,
                });
                let has_path = params.clone().any(|p| *p == ParameterIn::Path);
                let has_query = params.clone().any(|p| *p == ParameterIn::Query);
                let body_types: Vec<String> = match &op.request_body {
                    Some(RefOr::T(b)) => b.content.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                let json_body = body_types.iter().any(|t| t == "application/json");
                let restricted = op
                    .operation_id
                    .as_deref()
                    .is_some_and(|id| RESTRICTED_READS.contains(&id));
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                };
                if !public {
                    add("401", "missing, unknown, expired or revoked token");
                    if mutating || restricted {
                        add("403", "the caller's role does not allow this");
                    }
                }
                if has_path {
                    add("404", "a path parameter names nothing");
                }
                if has_query {
                    add("422", "a query parameter is invalid (`field` names it)");
                }
                if !body_types.is_empty() {
                    add("413", "the request body is too large");
                }
                if json_body {
                    add("400", "the body is not well-formed JSON");
                    add("415", "the body is not JSON (Content-Type)");
                    add(
                        "422",
                        "the body has the wrong shape or an invalid value (`field` names it)",
                    );
                }
            }
        }
    }
}

/// Routes that need a bearer token.
pub fn authenticated() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(users::whoami))
        .route("/users", get(users::list_users).post(users::create_user))
        .route(
            "/users/{user}",
            get(users::get_user).delete(users::delete_user),
        )
        .route("/tokens", get(users::list_tokens).post(users::create_token))
        .route("/tokens/{id}", axum::routing::delete(users::revoke_token))
        .route("/audit", get(users::list_audit))
        .route("/orgs", get(orgs::list_orgs).post(orgs::create_org))
        .route(
            "/orgs/{org}",
            get(orgs::get_org)
                .patch(orgs::update_org)
                .delete(orgs::delete_org),
        )
        .route(
            "/orgs/{org}/environments",
            get(orgs::list_environments).post(orgs::create_environment),
        )
        .route(
            "/orgs/{org}/environments/order",
            axum::routing::put(orgs::reorder_environments),
        )
        .route(
            "/orgs/{org}/environments/{env}",
            axum::routing::delete(orgs::delete_environment),
        )
        .route(
            "/orgs/{org}/projects",
            get(orgs::list_projects).post(orgs::create_project),
        )
        .route(
            "/orgs/{org}/registries",
            get(registries::list_registries).post(registries::create_registry),
        )
        .route(
            "/orgs/{org}/registries/{registry}",
            get(registries::get_registry)
                .patch(registries::update_registry)
                .delete(registries::delete_registry),
        )
        .route(
            "/orgs/{org}/registries/{registry}/test",
            axum::routing::post(registries::test_registry),
        )
        .route(
            "/orgs/{org}/registries/{registry}/tags",
            get(registries::list_tags),
        )
        .route(
            "/orgs/{org}/projects/{project}/components",
            get(components::list_components).post(components::create_component),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}",
            get(components::get_component)
                .patch(components::update_component)
                .delete(components::delete_component),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/deploy",
            axum::routing::post(components::deploy),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/promote",
            axum::routing::post(components::promote),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/deployments",
            get(components::list_deployments),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/previous-images",
            get(components::previous_images),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/environments",
            get(components::environments),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/logs",
            get(components::logs),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/environments/{env}/configs",
            get(components::list_configs)
                .patch(components::change_configs)
                .layer(axum::extract::DefaultBodyLimit::max(
                    components::CONFIG_BODY_MAX,
                )),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/endpoints",
            get(endpoints::get_endpoints).put(endpoints::put_endpoints),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/schemas/{*name}",
            axum::routing::put(endpoints::put_schema).delete(endpoints::delete_schema),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/ci-tokens",
            get(ci::list_ci_tokens).post(ci::create_ci_token),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/ci-tokens/{id}",
            axum::routing::delete(ci::revoke_ci_token),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/ci-snippets/{kind}",
            get(ci::ci_snippet),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/auto-deploy",
            get(auto_deploy::get_auto_deploy)
                .put(auto_deploy::put_auto_deploy)
                .delete(auto_deploy::delete_auto_deploy),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/auto-deploy/check",
            axum::routing::post(auto_deploy::check_auto_deploy),
        )
        .route(
            "/orgs/{org}/registries/{registry}/notification-secret",
            axum::routing::post(auto_deploy::rotate_notification_secret),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/environments/{env}/schedule",
            get(tasks::get_schedule)
                .put(tasks::put_schedule)
                .delete(tasks::delete_schedule),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/runs",
            axum::routing::post(tasks::run),
        )
        .route(
            "/orgs/{org}/projects/{project}/components/{component}/executions",
            get(tasks::list_executions),
        )
        .route(
            "/orgs/{org}/projects/{project}/environments/{env}/render",
            get(render::render),
        )
        .route("/executions/{id}", get(tasks::get_execution))
        .route("/executions/{id}/logs", get(tasks::execution_logs))
        .route(
            "/executions/{id}/cancel",
            axum::routing::post(tasks::cancel_execution),
        )
        .route("/deployments/{id}", get(components::get_deployment))
        .route(
            "/deployments/{id}/events",
            get(components::deployment_events),
        )
        .route(
            "/orgs/{org}/projects/{project}",
            get(orgs::get_project)
                .patch(orgs::update_project)
                .delete(orgs::delete_project),
        )
}

#[cfg(test)]
mod tests;
