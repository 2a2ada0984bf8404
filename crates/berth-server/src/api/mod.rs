//! The HTTP API under `/api/v1`, plus `/healthz` and `/readyz`.

pub mod orgs;
pub mod system;
pub mod users;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "berth API", description = "Deploy prebuilt container images as managed components."),
    paths(
        system::healthz, system::readyz,
        users::whoami, users::list_users, users::create_user, users::get_user, users::delete_user,
        users::list_tokens, users::create_token, users::revoke_token, users::list_audit,
        orgs::list_orgs, orgs::create_org, orgs::get_org, orgs::update_org, orgs::delete_org,
        orgs::list_environments,
        orgs::list_projects, orgs::create_project, orgs::get_project, orgs::update_project,
        orgs::delete_project,
    ),
    modifiers(&BearerAuth),
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
        .route("/orgs/{org}/environments", get(orgs::list_environments))
        .route(
            "/orgs/{org}/projects",
            get(orgs::list_projects).post(orgs::create_project),
        )
        .route(
            "/orgs/{org}/projects/{project}",
            get(orgs::get_project)
                .patch(orgs::update_project)
                .delete(orgs::delete_project),
        )
}
