//! Components, releases, deployments and their events.

use berth_core::api::{
    Component, ComponentType, Deployment, DeploymentEvent, DeploymentPhase, DeploymentStatus,
    PreviousImage,
};
use sqlx::Row;

use crate::{Error, Page, Result, Store, new_id, now, page_limit};

/// A component to create.
#[derive(Debug, Clone)]
pub struct NewComponent<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub kind: ComponentType,
    pub registry: &'a str,
    pub image: &'a str,
    pub port: Option<u16>,
}

/// A release to create (immutable once written).
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub registry: &'a str,
    /// Repository without tag/digest, e.g. `127.0.0.1:5000/test/web`.
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: &'a str,
    pub port: Option<u16>,
    pub endpoints: &'a str,
    pub config: &'a str,
}

/// What to deploy: a new release, or one that exists (previous images, promotion).
#[derive(Debug, Clone)]
pub enum ReleaseChoice<'a> {
    New(NewRelease<'a>),
    Existing(&'a str),
}

/// A component by its names.
#[derive(Debug, Clone, Copy)]
pub struct ComponentRef<'a> {
    pub org: &'a str,
    pub project: &'a str,
    pub component: &'a str,
}

/// Who asked and how.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `user`, `ci`, `auto`, `promote`.
    pub trigger: &'a str,
    pub actor: &'a str,
}

/// Which components of an organization, in (project, name) order: all of them, those of one
/// project or one component, or a keyset page of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComponentWindow<'a> {
    /// Only this project's components.
    pub project: Option<&'a str>,
    /// Only the component of this name.
    pub component: Option<&'a str>,
    /// Only the components after this (project, component) pair.
    pub after: Option<(&'a str, &'a str)>,
    /// At most this many components.
    pub limit: Option<u32>,
}

impl ComponentWindow<'_> {
    /// A query of the ids of this window's components in (project, name) order, at most
    /// `extra` more than the window's limit, with its parameters in `b`. Projects and
    /// components only, so that the planner walks their unique (org_id, name) and
    /// (project_id, name) indexes in this order and stops at the limit: joined to the
    /// components' other tables first, it read and sorted every component of the organization.
    fn ids(&self, org: &str, extra: i64, b: &mut Built) -> String {
        let mut sql = format!(
            "SELECT cw.id FROM projects pw JOIN components cw ON cw.project_id = pw.id
             WHERE pw.org_id = (SELECT ow.id FROM orgs ow WHERE ow.name = {})",
            b.text(org)
        );
        if let Some(project) = self.project {
            sql.push_str(&format!(" AND pw.name = {}", b.text(project)));
        }
        if let Some(component) = self.component {
            sql.push_str(&format!(" AND cw.name = {}", b.text(component)));
        }
        if let Some((project, component)) = self.after {
            let (project, component) = (b.text(project), b.text(component));
            sql.push_str(&format!(
                " AND (pw.name > {project} OR (pw.name = {project} AND cw.name > {component}))"
            ));
        }
        sql.push_str(" ORDER BY pw.name, cw.name");
        if let Some(limit) = self.limit {
            sql.push_str(&format!(
                " LIMIT {}",
                b.param(Param::Int(i64::from(limit) + extra))
            ));
        }
        sql
    }
}

/// A value bound to a [`Built`] query.
#[derive(Debug, Clone)]
enum Param {
    Text(Option<String>),
    Int(i64),
}

/// A query whose text depends on which filters are set (so that the planner sees plain
/// equalities and picks the matching index, which `($2 IS NULL OR x = $2)` hides): the text
/// and its parameters `$1, $2, …` in order.
#[derive(Debug, Clone)]
struct Built {
    sql: String,
    params: Vec<Param>,
}

impl Built {
    /// Appends a parameter; its placeholder (`$n`).
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.param(Param::Text(Some(value.to_owned())))
    }

    /// The query with its parameters bound (`prefix` before the text, e.g. `EXPLAIN QUERY
    /// PLAN `).
    fn query(
        &self,
        prefix: &str,
    ) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("{prefix}{}", self.sql)));
        for p in &self.params {
            q = match p {
                Param::Text(t) => q.bind(t.clone()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// A deployment with what the data plane needs to run it.
#[derive(Debug, Clone)]
pub struct DeploymentWork {
    pub deployment: Deployment,
    pub component_type: ComponentType,
    pub registry: String,
    pub port: Option<u16>,
    /// The release's endpoints snapshot (JSON array of `berth_core::endpoints::Endpoint`).
    pub endpoints: String,
}

const COMPONENT_SELECT: &str = "SELECT o.name AS org_name, p.name AS project_name, c.name,
    c.display_name, c.description, c.type, g.name AS registry_name, c.image, c.port,
    c.created_at, c.updated_at
    FROM components c JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
    JOIN registries g ON g.id = c.registry_id";

const DEPLOYMENT_SELECT: &str = "SELECT d.id, o.name AS org_name, p.name AS project_name,
    c.name AS component_name, c.type AS component_type, e.name AS env_name, d.release_id,
    r.repository, r.tag, r.digest, r.port, r.endpoints, g.name AS registry_name, d.status, d.phase,
    d.reason,
    d.trigger, d.actor, d.created_at, d.updated_at
    FROM deployments d JOIN components c ON c.id = d.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
    JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
    JOIN registries g ON g.id = r.registry_id";

/// [`DEPLOYMENT_SELECT`] without what only the data plane needs (component type, port,
/// endpoints snapshot, registry): the lists of deployments ([`deployment_from_row`]).
const DEPLOYMENT_LIST_SELECT: &str = "SELECT d.id, o.name AS org_name, p.name AS project_name,
    c.name AS component_name, e.name AS env_name, d.release_id, r.repository, r.tag, r.digest,
    d.status, d.phase, d.reason, d.trigger, d.actor, d.created_at, d.updated_at
    FROM deployments d JOIN components c ON c.id = d.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
    JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id";

/// What deploying a component needs to know, in one query (the deploy webhook's usual call
/// needs nothing else from the database).
#[derive(Debug, Clone)]
pub struct DeployContext {
    pub component: Component,
    /// The settings of the component's registry (credentials decrypted: never put them in a
    /// response).
    pub registry_settings: crate::RegistrySettings,
    /// The first environment of the organization; `None` when it has none.
    pub first_environment: Option<String>,
    /// The newest deployment of the component in the first environment.
    pub latest: Option<Deployment>,
}

fn component_from_row(row: &sqlx::any::AnyRow) -> Result<Component> {
    let kind: String = row.try_get("type")?;
    let port: Option<i64> = row.try_get("port")?;
    Ok(Component {
        org: row.try_get("org_name")?,
        project: row.try_get("project_name")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        kind: kind.parse().map_err(Error::Io)?,
        registry: row.try_get("registry_name")?,
        image: row.try_get("image")?,
        port: port.and_then(|p| u16::try_from(p).ok()),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A deployment from a row of [`DEPLOYMENT_LIST_SELECT`] (or [`DEPLOYMENT_SELECT`]).
fn deployment_from_row(row: &sqlx::any::AnyRow) -> Result<Deployment> {
    let repository: String = row.try_get("repository")?;
    let digest: String = row.try_get("digest")?;
    let status: String = row.try_get("status")?;
    let phase: Option<String> = row.try_get("phase")?;
    Ok(Deployment {
        id: row.try_get("id")?,
        org: row.try_get("org_name")?,
        project: row.try_get("project_name")?,
        component: row.try_get("component_name")?,
        environment: row.try_get("env_name")?,
        release: row.try_get("release_id")?,
        image: format!("{repository}@{digest}"),
        tag: row.try_get("tag")?,
        digest,
        status: DeploymentStatus::parse(&status),
        phase: phase.as_deref().map(DeploymentPhase::parse),
        reason: row.try_get("reason")?,
        trigger: row.try_get("trigger")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn work_from_row(row: &sqlx::any::AnyRow) -> Result<DeploymentWork> {
    let kind: String = row.try_get("component_type")?;
    let port: Option<i64> = row.try_get("port")?;
    let registry: String = row.try_get("registry_name")?;
    Ok(DeploymentWork {
        deployment: deployment_from_row(row)?,
        component_type: kind.parse().map_err(Error::Io)?,
        registry,
        port: port.and_then(|p| u16::try_from(p).ok()),
        endpoints: row.try_get("endpoints")?,
    })
}

impl Store {
    async fn project_id(&self, org: &str, project: &str) -> Result<String> {
        let org_id = self.org_id(org).await?;
        sqlx::query_scalar("SELECT id FROM projects WHERE org_id = $1 AND name = $2")
            .bind(&org_id)
            .bind(project)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("project", project))
    }

    /// The id of a component, or NotFound naming the first missing level.
    pub async fn component_id(&self, org: &str, project: &str, name: &str) -> Result<String> {
        // One query when it exists (most calls); the levels one by one only to name what is
        // missing.
        let id: Option<String> = sqlx::query_scalar(
            "SELECT c.id FROM components c JOIN projects p ON p.id = c.project_id
             JOIN orgs o ON o.id = p.org_id WHERE o.name = $1 AND p.name = $2 AND c.name = $3",
        )
        .bind(org)
        .bind(project)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = id {
            return Ok(id);
        }
        self.project_id(org, project).await?;
        Err(Error::not_found("component", name))
    }

    async fn registry_id(&self, org: &str, registry: &str) -> Result<String> {
        let org_id = self.org_id(org).await?;
        sqlx::query_scalar("SELECT id FROM registries WHERE org_id = $1 AND name = $2")
            .bind(&org_id)
            .bind(registry)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("registry", registry))
    }

    pub async fn insert_component(
        &self,
        org: &str,
        project: &str,
        c: &NewComponent<'_>,
    ) -> Result<Component> {
        let project_id = self.project_id(org, project).await?;
        let registry_id = self.registry_id(org, c.registry).await?;
        let at = now();
        sqlx::query(
            "INSERT INTO components (id, project_id, name, display_name, description, type,
             registry_id, image, port, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(new_id())
        .bind(&project_id)
        .bind(c.name)
        .bind(c.display_name)
        .bind(c.description)
        .bind(c.kind.as_str())
        .bind(&registry_id)
        .bind(c.image)
        .bind(c.port.map(i64::from))
        .bind(&at)
        .bind(&at)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if crate::error::is_unique_violation(&e) {
                Error::conflict(
                    "name",
                    format!(
                        "a component named {:?} already exists in project {project:?}",
                        c.name
                    ),
                )
            } else {
                Error::Db(e)
            }
        })?;
        self.get_component(org, project, c.name)
            .await?
            .ok_or_else(|| Error::not_found("component", c.name))
    }

    pub async fn get_component(
        &self,
        org: &str,
        project: &str,
        name: &str,
    ) -> Result<Option<Component>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMPONENT_SELECT} WHERE o.name = $1 AND p.name = $2 AND c.name = $3"
        )))
        .bind(org)
        .bind(project)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(component_from_row).transpose()
    }

    /// The component with its registry's settings, the first environment of its organization
    /// and its newest deployment there, in one query (the deploy webhook's path); `None` when
    /// the project or component is missing.
    pub async fn deploy_context(
        &self,
        org: &str,
        project: &str,
        name: &str,
    ) -> Result<Option<DeployContext>> {
        let row = sqlx::query(
            "SELECT o.name AS org_name, p.name AS project_name, c.name, c.display_name,
                c.description, c.type, g.name AS registry_name, c.image, c.port, c.created_at,
                c.updated_at,
                g.id AS g_id, g.display_name AS g_display_name, g.host AS g_host,
                g.auth_type AS g_auth_type, g.username AS g_username, g.password AS g_password,
                g.ca_pem AS g_ca_pem, g.insecure AS g_insecure, g.platform AS g_platform,
                fe.name AS first_environment,
                d.id AS d_id, d.release_id AS d_release_id, r.repository AS d_repository,
                r.tag AS d_tag, r.digest AS d_digest, d.status AS d_status,
                d.reason AS d_reason, d.trigger AS d_trigger, d.actor AS d_actor,
                d.phase AS d_phase, d.created_at AS d_created_at, d.updated_at AS d_updated_at
             FROM components c JOIN projects p ON p.id = c.project_id
             JOIN orgs o ON o.id = p.org_id JOIN registries g ON g.id = c.registry_id
             LEFT JOIN environments fe ON fe.id = (SELECT e.id FROM environments e
                 WHERE e.org_id = o.id ORDER BY e.position LIMIT 1)
             LEFT JOIN deployments d ON d.id = (SELECT x.id FROM deployments x
                 WHERE x.component_id = c.id AND x.environment_id = fe.id
                 ORDER BY x.created_at DESC, x.id DESC LIMIT 1)
             LEFT JOIN releases r ON r.id = d.release_id
             WHERE o.name = $1 AND p.name = $2 AND c.name = $3",
        )
        .bind(org)
        .bind(project)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let component = component_from_row(&row)?;
        let first_environment: Option<String> = row.try_get("first_environment")?;
        let latest = match (
            row.try_get::<Option<String>, _>("d_id")?,
            &first_environment,
        ) {
            (Some(id), Some(env)) => {
                let repository: String = row.try_get("d_repository")?;
                let digest: String = row.try_get("d_digest")?;
                let status: String = row.try_get("d_status")?;
                let phase: Option<String> = row.try_get("d_phase")?;
                Some(Deployment {
                    id,
                    org: component.org.clone(),
                    project: component.project.clone(),
                    component: component.name.clone(),
                    environment: env.clone(),
                    release: row.try_get("d_release_id")?,
                    image: format!("{repository}@{digest}"),
                    tag: row.try_get("d_tag")?,
                    digest,
                    status: DeploymentStatus::parse(&status),
                    phase: phase.as_deref().map(DeploymentPhase::parse),
                    reason: row.try_get("d_reason")?,
                    trigger: row.try_get("d_trigger")?,
                    actor: row.try_get("d_actor")?,
                    created_at: row.try_get("d_created_at")?,
                    updated_at: row.try_get("d_updated_at")?,
                })
            }
            _ => None,
        };
        Ok(Some(DeployContext {
            registry_settings: self.settings_from_row(&row, "g_")?,
            component,
            first_environment,
            latest,
        }))
    }

    /// A page of a project's components by name: those after `after`, at most `limit`.
    pub async fn list_components(
        &self,
        org: &str,
        project: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Component>> {
        let project_id = self.project_id(org, project).await?;
        // By the project's id: index (project_id, name) gives the page in order.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMPONENT_SELECT} WHERE c.project_id = $1 AND ($2 IS NULL OR c.name > $2)
             ORDER BY c.name LIMIT $3"
        )))
        .bind(&project_id)
        .bind(after)
        .bind(page_limit(limit))
        .fetch_all(self.pool())
        .await?;
        let items = rows
            .iter()
            .map(component_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::of(items, limit))
    }

    /// The components of an organization in (project, name) order, as `window` says (the
    /// console's overview; a page of them when the window has a limit).
    pub async fn org_components(
        &self,
        org: &str,
        window: &ComponentWindow<'_>,
    ) -> Result<Page<Component>> {
        self.org_id(org).await?;
        let rows = org_components_sql(org, window)
            .query("")
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(component_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(match window.limit {
            Some(l) => Page::of(items, l),
            None => Page { items, more: false },
        })
    }

    pub async fn update_component(
        &self,
        org: &str,
        project: &str,
        name: &str,
        display_name: Option<&str>,
        description: Option<&str>,
        port: Option<u16>,
    ) -> Result<Component> {
        let id = self.component_id(org, project, name).await?;
        sqlx::query(
            "UPDATE components SET display_name = COALESCE($1, display_name),
             description = COALESCE($2, description), port = COALESCE($3, port), updated_at = $4
             WHERE id = $5",
        )
        .bind(display_name)
        .bind(description)
        .bind(port.map(i64::from))
        .bind(now())
        .bind(&id)
        .execute(self.pool())
        .await?;
        self.get_component(org, project, name)
            .await?
            .ok_or_else(|| Error::not_found("component", name))
    }

    /// Deletes a component with its releases and deployments (the audit log stays).
    pub async fn delete_component(&self, org: &str, project: &str, name: &str) -> Result<()> {
        let id = self.component_id(org, project, name).await?;
        sqlx::query("DELETE FROM components WHERE id = $1")
            .bind(&id)
            .execute(self.pool())
            .await?;
        // Its CI tokens went with it.
        self.ci_tokens.invalidate();
        Ok(())
    }

    /// Components that use a registry (for the 409 when deleting it).
    pub async fn components_using_registry(
        &self,
        org: &str,
        registry: &str,
    ) -> Result<Vec<String>> {
        let id = self.registry_id(org, registry).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT p.name || '/' || c.name FROM components c
             JOIN projects p ON p.id = c.project_id
             LEFT JOIN releases r ON r.component_id = c.id
             WHERE c.registry_id = $1 OR r.registry_id = $1 ORDER BY 1",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?;
        Ok(names)
    }

    /// Creates (when new) the release and a pending deployment of it to `env`, and points the
    /// component's image at it — all in one transaction.
    pub async fn create_deployment(
        &self,
        target: ComponentRef<'_>,
        env: &str,
        release: ReleaseChoice<'_>,
        image: Option<&str>,
        origin: Origin<'_>,
    ) -> Result<Deployment> {
        let ComponentRef {
            org,
            project,
            component,
        } = target;
        let component_id = self.component_id(org, project, component).await?;
        let org_id = self.org_id(org).await?;
        let mut tx = self.begin().await?;
        let env_id: String =
            sqlx::query_scalar("SELECT id FROM environments WHERE org_id = $1 AND name = $2")
                .bind(&org_id)
                .bind(env)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::not_found("environment", env))?;
        let at = now();
        let release_id = match release {
            ReleaseChoice::Existing(id) => {
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM releases WHERE id = $1 AND component_id = $2",
                )
                .bind(id)
                .bind(&component_id)
                .fetch_optional(&mut *tx)
                .await?;
                found.ok_or_else(|| Error::not_found("release", id))?
            }
            ReleaseChoice::New(r) => {
                let registry_id: String =
                    sqlx::query_scalar("SELECT id FROM registries WHERE org_id = $1 AND name = $2")
                        .bind(&org_id)
                        .bind(r.registry)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| Error::not_found("registry", r.registry))?;
                let id = new_id();
                sqlx::query(
                    "INSERT INTO releases (id, component_id, registry_id, repository, tag, digest,
                     port, endpoints, config, trigger, actor, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&id)
                .bind(&component_id)
                .bind(&registry_id)
                .bind(r.repository)
                .bind(r.tag)
                .bind(r.digest)
                .bind(r.port.map(i64::from))
                .bind(r.endpoints)
                .bind(r.config)
                .bind(origin.trigger)
                .bind(origin.actor)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
                if let Some(image) = image {
                    sqlx::query(
                        "UPDATE components SET image = $1, registry_id = $2, updated_at = $3 WHERE id = $4",
                    )
                    .bind(image)
                    .bind(&registry_id)
                    .bind(&at)
                    .bind(&component_id)
                    .execute(&mut *tx)
                    .await?;
                }
                id
            }
        };
        let id = new_id();
        sqlx::query(
            "INSERT INTO deployments (id, component_id, environment_id, release_id, status,
             trigger, actor, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&component_id)
        .bind(&env_id)
        .bind(&release_id)
        .bind(origin.trigger)
        .bind(origin.actor)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deployment_events (deployment_id, at, message) VALUES ($1, $2, $3)",
        )
        .bind(&id)
        .bind(&at)
        .bind(format!(
            "deployment created by {} ({})",
            origin.actor, origin.trigger
        ))
        .execute(&mut *tx)
        .await?;
        // Previous Images' summary (`component_images`) follows by itself: the database's
        // trigger `deployments_component_images` (migration 0013) updates it in this transaction.
        tx.commit().await?;
        self.get_deployment(&id)
            .await?
            .map(|w| w.deployment)
            .ok_or_else(|| Error::not_found("deployment", &id))
    }

    pub async fn get_deployment(&self, id: &str) -> Result<Option<DeploymentWork>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(work_from_row).transpose()
    }

    /// The newest `limit` deployments of a component, newest first, optionally of one
    /// environment (the first page of [`Store::deployments_page`]).
    pub async fn list_deployments(
        &self,
        org: &str,
        project: &str,
        component: &str,
        env: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Deployment>> {
        Ok(self
            .deployments_page(org, project, component, env, None, limit)
            .await?
            .items)
    }

    /// A page of a component's deployments, newest first (by creation time, then id),
    /// optionally of one environment (none for an environment that does not exist): those
    /// older than the (created_at, id) of `before`, at most `limit`.
    pub async fn deployments_page(
        &self,
        org: &str,
        project: &str,
        component: &str,
        env: Option<&str>,
        before: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Page<Deployment>> {
        let id = self.component_id(org, project, component).await?;
        let rows = deployments_page_sql(&id, env, before, limit)
            .query("")
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(deployment_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::of(items, limit))
    }

    /// The newest deployment of a component in one environment, in one query (the
    /// same-digest check of every deploy request).
    pub async fn latest_deployment(
        &self,
        target: ComponentRef<'_>,
        env: &str,
    ) -> Result<Option<Deployment>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_LIST_SELECT} WHERE o.name = $1 AND p.name = $2 AND c.name = $3
               AND e.name = $4
             ORDER BY d.created_at DESC, d.id DESC LIMIT 1"
        )))
        .bind(target.org)
        .bind(target.project)
        .bind(target.component)
        .bind(env)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(deployment_from_row).transpose()
    }

    /// Deployments not finished yet (oldest first): resumed after a restart.
    pub async fn unfinished_deployments(&self) -> Result<Vec<DeploymentWork>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.status IN ('pending', 'pulling', 'starting')
             ORDER BY d.created_at, d.id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(work_from_row).collect()
    }

    /// For each (component, environment): the newest ready deployment — what must run.
    pub async fn serving_deployments(&self) -> Result<Vec<DeploymentWork>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.id IN (
                SELECT (SELECT d2.id FROM deployments d2
                        WHERE d2.component_id = x.component_id AND d2.environment_id = x.environment_id
                          AND d2.status = 'ready' ORDER BY d2.created_at DESC, d2.id DESC LIMIT 1)
                FROM (SELECT DISTINCT component_id, environment_id FROM deployments) x)
             ORDER BY o.name, p.name, c.name, e.name"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(work_from_row).collect()
    }

    /// Sets a deployment's status (and reason), with an event saying so, and clears its phase
    /// (the rollout records the next one as it gets there). When it becomes `ready`, the
    /// deployment it replaced in that environment becomes `superseded`.
    pub async fn set_deployment_status(
        &self,
        id: &str,
        status: DeploymentStatus,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let at = now();
        sqlx::query("UPDATE deployments SET status = $1, phase = NULL, reason = COALESCE($2, reason), updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(reason)
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if status == DeploymentStatus::Ready {
            sqlx::query(
                "UPDATE deployments SET status = 'superseded', updated_at = $1
                 WHERE status = 'ready' AND id != $2 AND (component_id, environment_id) =
                   (SELECT component_id, environment_id FROM deployments WHERE id = $2)",
            )
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let message = match reason {
            Some(r) => format!("status {}: {r}", status.as_str()),
            None => format!("status {}", status.as_str()),
        };
        sqlx::query(
            "INSERT INTO deployment_events (deployment_id, at, message) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(&at)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records where an unfinished deployment's rollout is. A finished deployment keeps no
    /// phase: the update does nothing then (a late event of an interrupted rollout).
    pub async fn set_deployment_phase(&self, id: &str, phase: DeploymentPhase) -> Result<()> {
        sqlx::query(
            "UPDATE deployments SET phase = $1, updated_at = $2
             WHERE id = $3 AND status IN ('pending', 'pulling', 'starting')",
        )
        .bind(phase.as_str())
        .bind(now())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn add_deployment_event(&self, id: &str, message: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO deployment_events (deployment_id, at, message) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(now())
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Events of a deployment after event id `after` (0 = all), oldest first.
    pub async fn list_deployment_events(
        &self,
        id: &str,
        after: i64,
    ) -> Result<Vec<DeploymentEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, message FROM deployment_events WHERE deployment_id = $1 AND id > $2
             ORDER BY id",
        )
        .bind(id)
        .bind(after)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    /// The release of a component with this id or digest (newest for a digest).
    pub async fn find_release(
        &self,
        org: &str,
        project: &str,
        component: &str,
        id_or_digest: &str,
    ) -> Result<Option<String>> {
        let component_id = self.component_id(org, project, component).await?;
        Ok(sqlx::query_scalar(
            "SELECT id FROM releases WHERE component_id = $1 AND (id = $2 OR digest = $2)
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(&component_id)
        .bind(id_or_digest)
        .fetch_optional(self.pool())
        .await?)
    }

    /// A page of the digests a component was deployed with, the most recently deployed first
    /// (then by digest): those before the (last deployed at, digest) of `before`, at most
    /// `limit`. Read from `component_images` (kept by the database trigger of migration 0013)
    /// by index `component_images_newest`: a page costs the same however long the history.
    pub async fn previous_images(
        &self,
        org: &str,
        project: &str,
        component: &str,
        before: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Page<PreviousImage>> {
        let component_id = self.component_id(org, project, component).await?;
        let rows = previous_images_sql(&component_id, before, limit)
            .query("")
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(|row| {
                let repository: String = row.try_get("repository")?;
                let tag: Option<String> = row.try_get("tag")?;
                Ok(PreviousImage {
                    digest: row.try_get("digest")?,
                    image: match &tag {
                        Some(t) => format!("{repository}:{t}"),
                        None => repository,
                    },
                    tag,
                    release: row.try_get("release_id")?,
                    first_deployed_at: row.try_get("first_deployed_at")?,
                    last_deployed_at: row.try_get("last_deployed_at")?,
                    trigger: row.try_get("trigger")?,
                    actor: row.try_get("actor")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::of(items, limit))
    }

    /// For each component of `window` and environment: the newest deployment (any status)
    /// and the newest `ready` one (what serves) — what the component's environments view
    /// shows, in one query for all of them instead of one list of deployments per component
    /// and environment. Each lookup is one step down an index: `deployments_component_env`
    /// for the newest, the partial `deployments_serving` for the ready one.
    pub async fn environment_states(
        &self,
        org: &str,
        window: &ComponentWindow<'_>,
    ) -> Result<Vec<EnvironmentDeployments>> {
        let rows = environment_states_sql(org, window)
            .query("")
            .fetch_all(self.pool())
            .await?;
        let mut out: Vec<EnvironmentDeployments> = Vec::new();
        for row in &rows {
            let d = deployment_from_row(row)?;
            let same = out.last().is_some_and(|last| {
                last.project == d.project
                    && last.component == d.component
                    && last.environment == d.environment
            });
            if !same {
                out.push(EnvironmentDeployments {
                    project: d.project.clone(),
                    component: d.component.clone(),
                    environment: d.environment.clone(),
                    latest: None,
                    current: None,
                });
            }
            let entry = out.last_mut().expect("pushed above");
            // Newest first: the first row is the latest; the ready one is the current (it can
            // be the same deployment).
            if entry.latest.is_none() {
                entry.latest = Some(d.clone());
            }
            if d.status == DeploymentStatus::Ready && entry.current.is_none() {
                entry.current = Some(d);
            }
        }
        Ok(out)
    }
}

/// [`Store::org_components`]: the window's ids, one more than its limit (whether more follow),
/// then their rows.
fn org_components_sql(org: &str, window: &ComponentWindow<'_>) -> Built {
    let mut b = Built {
        sql: String::new(),
        params: Vec::new(),
    };
    let ids = window.ids(org, 1, &mut b);
    b.sql = format!("{COMPONENT_SELECT} WHERE c.id IN ({ids}) ORDER BY p.name, c.name");
    b
}

/// A page of a component's deployments ([`Store::deployments_page`]): the page's ids from an
/// index in this order (`deployments_component_newest`, or `deployments_component_env` for one
/// environment), then their rows — sorting all of a busy component's joined rows to keep 50
/// took twice as long.
fn deployments_page_sql(
    component_id: &str,
    env: Option<&str>,
    before: Option<(&str, &str)>,
    limit: u32,
) -> Built {
    let mut b = Built {
        sql: String::new(),
        params: Vec::new(),
    };
    let id = b.text(component_id);
    let mut conditions = String::new();
    if let Some(env) = env {
        conditions.push_str(&format!(
            " AND d2.environment_id = (SELECT e2.id FROM environments e2
               JOIN projects p2 ON p2.org_id = e2.org_id JOIN components c2 ON c2.project_id = p2.id
               WHERE c2.id = {id} AND e2.name = {})",
            b.text(env)
        ));
    }
    if let Some((created_at, did)) = before {
        let (at, did) = (b.text(created_at), b.text(did));
        conditions.push_str(&format!(
            " AND (d2.created_at < {at} OR (d2.created_at = {at} AND d2.id < {did}))"
        ));
    }
    let limit = b.param(Param::Int(page_limit(limit)));
    b.sql = format!(
        "{DEPLOYMENT_LIST_SELECT} WHERE d.id IN (
            SELECT d2.id FROM deployments d2 WHERE d2.component_id = {id}{conditions}
            ORDER BY d2.created_at DESC, d2.id DESC LIMIT {limit})
         ORDER BY d.created_at DESC, d.id DESC"
    );
    b
}

/// A page of Previous Images ([`Store::previous_images`]) by index `component_images_newest`.
fn previous_images_sql(component_id: &str, before: Option<(&str, &str)>, limit: u32) -> Built {
    let mut b = Built {
        sql: String::new(),
        params: Vec::new(),
    };
    let id = b.text(component_id);
    let after = match before {
        Some((at, digest)) => {
            let (at, digest) = (b.text(at), b.text(digest));
            format!(
                " AND (ci.last_deployed_at < {at} OR (ci.last_deployed_at = {at} AND ci.digest < {digest}))"
            )
        }
        None => String::new(),
    };
    let limit = b.param(Param::Int(page_limit(limit)));
    b.sql = format!(
        "SELECT ci.digest, ci.first_deployed_at, ci.last_deployed_at, r.id AS release_id,
           r.repository, r.tag, r.trigger, r.actor
         FROM component_images ci JOIN releases r ON r.id = ci.release_id
         WHERE ci.component_id = {id}{after}
         ORDER BY ci.last_deployed_at DESC, ci.digest DESC LIMIT {limit}"
    );
    b
}

/// [`Store::environment_states`]: the window's components, then per environment the newest
/// deployment and the newest ready one, each one step down an index.
fn environment_states_sql(org: &str, window: &ComponentWindow<'_>) -> Built {
    let mut b = Built {
        sql: String::new(),
        params: Vec::new(),
    };
    let ids = window.ids(org, 0, &mut b);
    b.sql = format!(
        "WITH w AS (SELECT c2.id AS cid, e2.id AS eid FROM components c2
             JOIN projects p2 ON p2.id = c2.project_id
             JOIN environments e2 ON e2.org_id = p2.org_id
             WHERE c2.id IN ({ids}))
         {DEPLOYMENT_LIST_SELECT} WHERE d.id IN (
            SELECT (SELECT d2.id FROM deployments d2
                    WHERE d2.component_id = w.cid AND d2.environment_id = w.eid
                    ORDER BY d2.created_at DESC, d2.id DESC LIMIT 1)
            FROM w
            UNION
            SELECT (SELECT d2.id FROM deployments d2
                    WHERE d2.component_id = w.cid AND d2.environment_id = w.eid
                      AND d2.status = 'ready'
                    ORDER BY d2.created_at DESC, d2.id DESC LIMIT 1)
            FROM w)
         ORDER BY p.name, c.name, e.position, d.created_at DESC, d.id DESC"
    );
    b
}

/// The newest deployment and the serving one of a component in one environment
/// ([`Store::environment_states`]).
#[derive(Debug, Clone)]
pub struct EnvironmentDeployments {
    pub project: String,
    pub component: String,
    pub environment: String,
    pub latest: Option<Deployment>,
    pub current: Option<Deployment>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RegistrySettings;
    use crate::keys::MasterKey;
    use berth_core::api::RegistryAuthType;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(dir.path()).unwrap();
        let store = crate::test_store_in(dir.path()).await.with_master_key(&key);
        store.bootstrap().await.unwrap();
        store
            .insert_project("default", "shop", "Shop", "")
            .await
            .unwrap();
        store
            .insert_registry(
                "default",
                "local",
                &RegistrySettings {
                    display_name: "Local".into(),
                    host: "127.0.0.1:5000".into(),
                    auth_type: RegistryAuthType::Anonymous,
                    username: None,
                    password: None,
                    ca_pem: None,
                    insecure: false,
                    platform: "linux/amd64".into(),
                },
            )
            .await
            .unwrap();
        (store, dir)
    }

    /// A new release of `web` with `digest` (tagged `tag`), deployed to `env` by the admin.
    async fn deploy(store: &Store, env: &str, digest: &str, tag: &str) -> Deployment {
        store
            .create_deployment(WEB, env, release(digest, tag), None, BY_ADMIN)
            .await
            .unwrap()
    }

    /// A deployment made by the bootstrap admin.
    const BY_ADMIN: Origin<'static> = Origin {
        trigger: "user",
        actor: "admin/bootstrap",
    };

    const WEB: ComponentRef<'static> = ComponentRef {
        org: "default",
        project: "shop",
        component: "web",
    };

    fn release<'a>(digest: &'a str, tag: &'a str) -> ReleaseChoice<'a> {
        ReleaseChoice::New(NewRelease {
            registry: "local",
            repository: "127.0.0.1:5000/test/web",
            tag: Some(tag),
            digest,
            port: Some(8080),
            endpoints: "[]",
            config: "{}",
        })
    }

    #[tokio::test]
    async fn deploy_lifecycle_and_previous_images() {
        let (store, _dir) = store().await;
        let c = store
            .insert_component(
                "default",
                "shop",
                &NewComponent {
                    name: "web",
                    display_name: "Web",
                    description: "",
                    kind: ComponentType::Service,
                    registry: "local",
                    image: "127.0.0.1:5000/test/web:v1",
                    port: Some(8080),
                },
            )
            .await
            .unwrap();
        assert_eq!(c.registry, "local");
        let origin = BY_ADMIN;
        let d1 = deploy(&store, "development", "sha256:aaa", "v1").await;
        assert_eq!(d1.status, DeploymentStatus::Pending);
        assert_eq!(d1.image, "127.0.0.1:5000/test/web@sha256:aaa");
        assert_eq!(store.unfinished_deployments().await.unwrap().len(), 1);
        store
            .set_deployment_status(&d1.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();
        let d2 = store
            .create_deployment(
                WEB,
                "development",
                release("sha256:bbb", "v2"),
                Some("127.0.0.1:5000/test/web:v2"),
                origin,
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .get_component("default", "shop", "web")
                .await
                .unwrap()
                .unwrap()
                .image,
            "127.0.0.1:5000/test/web:v2"
        );
        // Until d2 is ready, d1 serves.
        let serving = store.serving_deployments().await.unwrap();
        assert_eq!(serving.len(), 1);
        assert_eq!(serving[0].deployment.id, d1.id);
        // The phase is recorded while the rollout runs and cleared by the next status.
        let phase_of = |id: String| {
            let store = &store;
            async move {
                let d = store.get_deployment(&id).await.unwrap().unwrap();
                d.deployment.phase
            }
        };
        assert_eq!(phase_of(d2.id.clone()).await, None);
        store
            .set_deployment_phase(&d2.id, DeploymentPhase::Draining)
            .await
            .unwrap();
        assert_eq!(
            phase_of(d2.id.clone()).await,
            Some(DeploymentPhase::Draining)
        );
        store
            .set_deployment_status(&d2.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();
        assert_eq!(phase_of(d2.id.clone()).await, None);
        // A late event of a finished rollout leaves it without a phase.
        store
            .set_deployment_phase(&d2.id, DeploymentPhase::Draining)
            .await
            .unwrap();
        assert_eq!(phase_of(d2.id.clone()).await, None);
        let serving = store.serving_deployments().await.unwrap();
        assert_eq!(serving[0].deployment.id, d2.id);
        let d1_now = store.get_deployment(&d1.id).await.unwrap().unwrap();
        assert_eq!(d1_now.deployment.status, DeploymentStatus::Superseded);

        let previous = store
            .previous_images("default", "shop", "web", None, 100)
            .await
            .unwrap()
            .items;
        let digests: Vec<&str> = previous.iter().map(|p| p.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:bbb", "sha256:aaa"]);
        let rel = store
            .find_release("default", "shop", "web", "sha256:aaa")
            .await
            .unwrap()
            .unwrap();
        let d3 = store
            .create_deployment(
                WEB,
                "development",
                ReleaseChoice::Existing(&rel),
                None,
                origin,
            )
            .await
            .unwrap();
        assert_eq!(d3.digest, "sha256:aaa");
        assert!(matches!(
            store
                .create_deployment(WEB, "staging", ReleaseChoice::Existing(&rel), None, origin)
                .await,
            Err(Error::NotFound {
                kind: "environment",
                ..
            })
        ));
        let events = store.list_deployment_events(&d1.id, 0).await.unwrap();
        assert!(events.len() >= 2, "{events:?}");

        // In use: the environment, the registry and the project cannot be deleted; the
        // component can.
        let err = store
            .delete_environment("default", "development")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { .. }) && err.to_string().contains("shop/web"),
            "{err}"
        );
        let err = store.delete_registry("default", "local").await.unwrap_err();
        assert!(err.to_string().contains("shop/web"), "{err}");
        let err = store.delete_project("default", "shop").await.unwrap_err();
        assert!(err.to_string().contains("web"), "{err}");
        store
            .delete_component("default", "shop", "web")
            .await
            .unwrap();
        store.delete_registry("default", "local").await.unwrap();
        store.delete_project("default", "shop").await.unwrap();
    }

    async fn component(store: &Store, name: &str) {
        store
            .insert_component(
                "default",
                "shop",
                &NewComponent {
                    name,
                    display_name: name,
                    description: "",
                    kind: ComponentType::Service,
                    registry: "local",
                    image: "127.0.0.1:5000/test/web:v1",
                    port: Some(8080),
                },
            )
            .await
            .unwrap();
    }

    /// A component holds at most `MAX_SCHEMA_FILES` schema files: one more is refused (the
    /// field named), replacing one it has is not; the names are listed without the contents.
    #[tokio::test]
    async fn schema_files_are_capped_and_listed_by_name() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        let max = crate::sources::MAX_SCHEMA_FILES;
        for i in 0..max {
            store
                .put_schema_file(WEB, &format!("s{i:03}.yaml"), "openapi: 3.0.3")
                .await
                .unwrap();
        }
        let err = store
            .put_schema_file(WEB, "one-more.yaml", "openapi: 3.0.3")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field: "name", message } if message.contains("50 schema files")),
            "{err}"
        );
        store
            .put_schema_file(WEB, "s000.yaml", "openapi: 3.1.0")
            .await
            .unwrap();
        let names = store.schema_file_names(WEB).await.unwrap();
        assert_eq!(names.len() as i64, max);
        assert_eq!(names[0], "s000.yaml");
        assert!(!names.contains(&"one-more.yaml".to_owned()));
        store.delete_schema_file(WEB, "s001.yaml").await.unwrap();
        store
            .put_schema_file(WEB, "one-more.yaml", "openapi: 3.0.3")
            .await
            .unwrap();
    }

    /// One query answers every component's environments: the newest deployment and the
    /// newest ready one per (component, environment), only where something was deployed.
    #[tokio::test]
    async fn environment_states_newest_and_serving() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        component(&store, "api").await;
        let origin = BY_ADMIN;
        let d1 = deploy(&store, "development", "sha256:aaa", "v1").await;
        store
            .set_deployment_status(&d1.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();
        // times have millisecond resolution: keep the order unambiguous
        let tick = || tokio::time::sleep(std::time::Duration::from_millis(5));
        tick().await;
        let d2 = deploy(&store, "development", "sha256:bbb", "v2").await;
        let api = ComponentRef {
            component: "api",
            ..WEB
        };
        let d3 = store
            .create_deployment(api, "production", release("sha256:ccc", "v3"), None, origin)
            .await
            .unwrap();
        store
            .set_deployment_status(&d3.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();

        let all = store
            .environment_states("default", &ComponentWindow::default())
            .await
            .unwrap();
        let seen: Vec<(&str, &str, Option<&str>, Option<&str>)> = all
            .iter()
            .map(|r| {
                (
                    r.component.as_str(),
                    r.environment.as_str(),
                    r.latest.as_ref().map(|d| d.id.as_str()),
                    r.current.as_ref().map(|d| d.id.as_str()),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "api",
                    "production",
                    Some(d3.id.as_str()),
                    Some(d3.id.as_str())
                ),
                // d2 is still pending: it is the latest, d1 serves
                (
                    "web",
                    "development",
                    Some(d2.id.as_str()),
                    Some(d1.id.as_str())
                ),
            ]
        );
        let web = store
            .environment_states(
                "default",
                &ComponentWindow {
                    project: Some("shop"),
                    component: Some("web"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(web.len(), 1);
        assert_eq!(
            web[0].latest.as_ref().unwrap().status,
            DeploymentStatus::Pending
        );
        assert!(
            store
                .environment_states(
                    "default",
                    &ComponentWindow {
                        project: Some("other"),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .is_empty()
        );

        // Previous Images: one entry per digest, named after its newest release, spanning
        // the first and the last deployment of the digest.
        tick().await;
        let again = deploy(&store, "development", "sha256:aaa", "v1-again").await;
        let previous = store
            .previous_images("default", "shop", "web", None, 100)
            .await
            .unwrap()
            .items;
        let seen: Vec<(&str, Option<&str>)> = previous
            .iter()
            .map(|p| (p.digest.as_str(), p.tag.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [("sha256:aaa", Some("v1-again")), ("sha256:bbb", Some("v2"))]
        );
        assert_eq!(previous[0].release, again.release);
        assert_eq!(previous[0].image, "127.0.0.1:5000/test/web:v1-again");
        assert_eq!(previous[0].first_deployed_at, d1.created_at);
        assert_eq!(previous[0].last_deployed_at, again.created_at);
    }

    /// What Previous Images answered before `component_images` existed: every deployment of
    /// the component grouped by digest (the oracle the summary is checked against).
    async fn previous_images_aggregated(
        store: &Store,
        component: &str,
    ) -> Vec<(String, String, String, String)> {
        let id = store
            .component_id("default", "shop", component)
            .await
            .unwrap();
        sqlx::query_as(
            "SELECT x.digest, x.first_at, x.last_at, r.id
             FROM (SELECT r.digest, MIN(d.created_at) AS first_at, MAX(d.created_at) AS last_at
                   FROM deployments d JOIN releases r ON r.id = d.release_id
                   WHERE d.component_id = $1 GROUP BY r.digest) x
             JOIN releases r ON r.id = (SELECT r2.id FROM releases r2
                 WHERE r2.component_id = $1 AND r2.digest = x.digest
                 ORDER BY r2.created_at DESC, r2.id DESC LIMIT 1)
             ORDER BY x.last_at DESC, x.digest DESC",
        )
        .bind(&id)
        .fetch_all(store.pool())
        .await
        .unwrap()
    }

    /// Previous Images of `component`, page by page (`limit` each), as the oracle's tuples.
    async fn previous_images_walked(
        store: &Store,
        component: &str,
        limit: u32,
    ) -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        let mut before: Option<(String, String)> = None;
        loop {
            let page = store
                .previous_images(
                    "default",
                    "shop",
                    component,
                    before.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                    limit,
                )
                .await
                .unwrap();
            assert!(page.items.len() <= limit as usize);
            out.extend(page.items.iter().map(|p| {
                (
                    p.digest.clone(),
                    p.first_deployed_at.clone(),
                    p.last_deployed_at.clone(),
                    p.release.clone(),
                )
            }));
            match page.next(|p| (p.last_deployed_at.clone(), p.digest.clone())) {
                Some(next) => before = Some(next),
                None => return out,
            }
        }
    }

    /// The Previous Images summary answers what grouping all deployments did, through new
    /// digests, redeploys of an old digest (by release and by a new release of it),
    /// promotions and other components' deployments, whatever the page size; it goes with
    /// its component.
    #[tokio::test]
    async fn previous_images_summary_stays_right() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        component(&store, "api").await;
        let origin = BY_ADMIN;
        let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));
        let api = ComponentRef {
            component: "api",
            ..WEB
        };
        let mut expected_len = 0;
        for (digest, tag) in [
            ("sha256:aaa", "v1"),
            ("sha256:bbb", "v2"),
            ("sha256:ccc", "v3"),
            ("sha256:ddd", "v4"),
        ] {
            tick().await;
            store
                .create_deployment(WEB, "development", release(digest, tag), None, origin)
                .await
                .unwrap();
            expected_len += 1;
            // Another component with the same digests keeps its own list.
            store
                .create_deployment(api, "development", release(digest, tag), None, origin)
                .await
                .unwrap();
        }
        // Redeploy an old digest by its release (Previous Images): newest again, same release.
        let v1 = store
            .find_release("default", "shop", "web", "sha256:aaa")
            .await
            .unwrap()
            .unwrap();
        tick().await;
        let again = store
            .create_deployment(
                WEB,
                "development",
                ReleaseChoice::Existing(&v1),
                None,
                origin,
            )
            .await
            .unwrap();
        // A new release of an old digest (the tag moved back): its newest release changes.
        tick().await;
        let b_again = deploy(&store, "development", "sha256:bbb", "v2-again").await;
        // Promotion deploys an existing release to the next environment.
        let c = store
            .find_release("default", "shop", "web", "sha256:ccc")
            .await
            .unwrap()
            .unwrap();
        tick().await;
        let promoted = store
            .create_deployment(
                WEB,
                "production",
                ReleaseChoice::Existing(&c),
                None,
                Origin {
                    trigger: "promote",
                    actor: "admin/bootstrap",
                },
            )
            .await
            .unwrap();
        store
            .set_deployment_status(&promoted.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();

        let oracle = previous_images_aggregated(&store, "web").await;
        assert_eq!(oracle.len(), expected_len);
        let digests: Vec<&str> = oracle.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(
            digests,
            ["sha256:ccc", "sha256:bbb", "sha256:aaa", "sha256:ddd"]
        );
        // The redeploy and the new release moved their digests' last deployment; the newest
        // release of bbb is the new one, aaa kept its only release.
        assert_eq!(oracle[2].2, again.created_at);
        assert_eq!(oracle[2].3, v1);
        assert_eq!(oracle[1].3, b_again.release);
        assert_eq!(oracle[0].2, promoted.created_at);
        for limit in [1, 2, 3, 4, 100] {
            assert_eq!(
                previous_images_walked(&store, "web", limit).await,
                oracle,
                "pages of {limit}"
            );
        }
        assert_eq!(
            previous_images_walked(&store, "api", 3).await,
            previous_images_aggregated(&store, "api").await
        );
        let first = store
            .previous_images("default", "shop", "web", None, 4)
            .await
            .unwrap();
        assert_eq!((first.items.len(), first.more), (4, false));
        assert_eq!(first.items[1].tag.as_deref(), Some("v2-again"));
        assert_eq!(first.items[1].image, "127.0.0.1:5000/test/web:v2-again");

        // Deleting the component removes its summary rows; a new component of the same name
        // starts empty.
        let id = store.component_id("default", "shop", "web").await.unwrap();
        store
            .delete_component("default", "shop", "web")
            .await
            .unwrap();
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM component_images WHERE component_id = $1")
                .bind(&id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(left, 0);
        component(&store, "web").await;
        assert!(previous_images_walked(&store, "web", 2).await.is_empty());
        assert_eq!(previous_images_walked(&store, "api", 10).await.len(), 4);
    }

    /// Migration 0012 fills `component_images` from the deployments already recorded: run its
    /// INSERT again on an emptied table and the answers are the same.
    #[tokio::test]
    async fn the_migration_backfills_previous_images() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        let origin = BY_ADMIN;
        for (digest, tag) in [
            ("sha256:aaa", "v1"),
            ("sha256:bbb", "v2"),
            ("sha256:aaa", "v1-again"),
        ] {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            store
                .create_deployment(WEB, "development", release(digest, tag), None, origin)
                .await
                .unwrap();
        }
        let before = previous_images_walked(&store, "web", 10).await;
        assert_eq!(before, previous_images_aggregated(&store, "web").await);
        let migration = match store.backend() {
            crate::Backend::Sqlite => include_str!("../migrations/sqlite/0012_list_pages.sql"),
            crate::Backend::Postgres => {
                include_str!("../migrations/postgres/0012_list_pages.sql")
            }
        };
        let start = migration.find("INSERT INTO component_images").unwrap();
        let end = start + migration[start..].find(';').unwrap();
        sqlx::query("DELETE FROM component_images")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(previous_images_walked(&store, "web", 10).await.is_empty());
        sqlx::query(sqlx::AssertSqlSafe(migration[start..end].to_owned()))
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(previous_images_walked(&store, "web", 10).await, before);
    }

    /// A deployment recorded by SQL that knows nothing of `component_images` — what a server
    /// from before migration 0012 writes during a rolling upgrade on PostgreSQL — reaches
    /// Previous Images (the database's trigger keeps the summary). And one that commits after
    /// a newer deployment of the same digest (another server) leaves the newer release there.
    #[tokio::test]
    async fn previous_images_follow_deployments_written_without_the_summary() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        let first = deploy(&store, "development", "sha256:aaa", "v1").await;
        let (component_id, environment_id): (String, String) =
            sqlx::query_as("SELECT component_id, environment_id FROM deployments WHERE id = $1")
                .bind(&first.id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        let registry_id: String =
            sqlx::query_scalar("SELECT registry_id FROM releases WHERE id = $1")
                .bind(&first.release)
                .fetch_one(store.pool())
                .await
                .unwrap();
        // As an older server records a deployment: a release and a deployment, nothing else.
        let old_server = |release: &'static str, digest: &'static str, at: &'static str| {
            let (store, component_id, environment_id, registry_id) = (
                &store,
                component_id.clone(),
                environment_id.clone(),
                registry_id.clone(),
            );
            async move {
                let mut tx = store.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO releases (id, component_id, registry_id, repository, tag, digest,
                     trigger, actor, created_at)
                     VALUES ($1, $2, $3, 'test/web', 'old', $4, 'user', 'x', $5)",
                )
                .bind(release)
                .bind(&component_id)
                .bind(&registry_id)
                .bind(digest)
                .bind(at)
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO deployments (id, component_id, environment_id, release_id, status,
                     trigger, actor, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'pending', 'user', 'x', $5, $5)",
                )
                .bind(format!("d-{release}"))
                .bind(&component_id)
                .bind(&environment_id)
                .bind(release)
                .bind(at)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        };
        old_server("r-bbb", "sha256:bbb", "2999-01-01T00:00:02.000000Z").await;
        let walked = previous_images_walked(&store, "web", 10).await;
        assert_eq!(walked, previous_images_aggregated(&store, "web").await);
        assert_eq!(
            walked[0],
            (
                "sha256:bbb".to_owned(),
                "2999-01-01T00:00:02.000000Z".to_owned(),
                "2999-01-01T00:00:02.000000Z".to_owned(),
                "r-bbb".to_owned()
            )
        );
        // A newer release of digest aaa commits first, an older one after it.
        old_server("r-aaa-new", "sha256:aaa", "2999-01-01T00:00:04.000000Z").await;
        old_server("r-aaa-old", "sha256:aaa", "2999-01-01T00:00:03.000000Z").await;
        let walked = previous_images_walked(&store, "web", 1).await;
        assert_eq!(
            walked[0],
            (
                "sha256:aaa".to_owned(),
                first.created_at.clone(),
                "2999-01-01T00:00:04.000000Z".to_owned(),
                "r-aaa-new".to_owned()
            )
        );
        assert_eq!(walked.len(), 2);
    }

    /// Deployments page by page, with and without an environment, give what one long list
    /// gives, each once and in order.
    #[tokio::test]
    async fn deployments_page_by_page() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        let origin = BY_ADMIN;
        for i in 0..7 {
            let env = if i % 3 == 0 {
                "production"
            } else {
                "development"
            };
            // No tick: deployments created within one millisecond are ordered by id.
            store
                .create_deployment(WEB, env, release("sha256:aaa", "v1"), None, origin)
                .await
                .unwrap();
        }
        for env in [None, Some("development"), Some("production")] {
            let all: Vec<String> = store
                .list_deployments("default", "shop", "web", env, 500)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect();
            assert_eq!(
                all.len(),
                match env {
                    None => 7,
                    Some("production") => 3,
                    _ => 4,
                }
            );
            for limit in [1, 2, 3, 7] {
                let mut walked = Vec::new();
                let mut before: Option<(String, String)> = None;
                loop {
                    let page = store
                        .deployments_page(
                            "default",
                            "shop",
                            "web",
                            env,
                            before.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                            limit,
                        )
                        .await
                        .unwrap();
                    if let Some(e) = env {
                        assert!(page.items.iter().all(|d| d.environment == e));
                    }
                    walked.extend(page.items.iter().map(|d| d.id.clone()));
                    match page.next(|d| (d.created_at.clone(), d.id.clone())) {
                        Some(next) => before = Some(next),
                        None => break,
                    }
                }
                assert_eq!(walked, all, "{env:?} by {limit}");
            }
        }
        assert!(
            store
                .list_deployments("default", "shop", "web", Some("staging"), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// The organization's components in (project, name) order, page by page, and the
    /// environment states of one page: those of its components only.
    #[tokio::test]
    async fn org_components_and_their_states_page_by_page() {
        let (store, _dir) = store().await;
        store
            .insert_project("default", "admin", "Admin", "")
            .await
            .unwrap();
        for name in ["web", "api", "cart"] {
            component(&store, name).await;
        }
        for name in ["portal", "jobs"] {
            store
                .insert_component(
                    "default",
                    "admin",
                    &NewComponent {
                        name,
                        display_name: name,
                        description: "",
                        kind: ComponentType::Service,
                        registry: "local",
                        image: "127.0.0.1:5000/test/web:v1",
                        port: None,
                    },
                )
                .await
                .unwrap();
        }
        let origin = BY_ADMIN;
        for c in ["web", "cart"] {
            let target = ComponentRef {
                component: c,
                ..WEB
            };
            let d = store
                .create_deployment(
                    target,
                    "development",
                    release("sha256:aaa", "v1"),
                    None,
                    origin,
                )
                .await
                .unwrap();
            store
                .set_deployment_status(&d.id, DeploymentStatus::Ready, None)
                .await
                .unwrap();
        }
        let names = |page: &Page<Component>| -> Vec<String> {
            page.items
                .iter()
                .map(|c| format!("{}/{}", c.project, c.name))
                .collect()
        };
        let all = store
            .org_components("default", &ComponentWindow::default())
            .await
            .unwrap();
        assert_eq!(
            names(&all),
            [
                "admin/jobs",
                "admin/portal",
                "shop/api",
                "shop/cart",
                "shop/web"
            ]
        );
        let mut walked = Vec::new();
        let mut after: Option<(String, String)> = None;
        let mut pages = 0;
        loop {
            let window = ComponentWindow {
                after: after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                limit: Some(2),
                ..Default::default()
            };
            let page = store.org_components("default", &window).await.unwrap();
            let states = store.environment_states("default", &window).await.unwrap();
            // The states of this page's components, none of another page's.
            let deployed: Vec<String> = states
                .iter()
                .map(|s| format!("{}/{}", s.project, s.component))
                .collect();
            let on_page = names(&page);
            assert!(deployed.iter().all(|d| on_page.contains(d)), "{deployed:?}");
            for c in ["shop/web", "shop/cart"] {
                assert_eq!(
                    on_page.iter().any(|n| n == c),
                    deployed.iter().any(|d| d == c),
                    "{c}"
                );
            }
            walked.extend(on_page);
            pages += 1;
            match page.next(|c| (c.project.clone(), c.name.clone())) {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!((walked, pages), (names(&all), 3));
        let shop = store
            .org_components(
                "default",
                &ComponentWindow {
                    project: Some("shop"),
                    after: Some(("shop", "api")),
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (names(&shop), shop.more),
            (vec!["shop/cart".to_owned()], true)
        );
        let listed = store
            .list_components("default", "shop", Some("api"), 5)
            .await
            .unwrap();
        assert_eq!(
            (names(&listed), listed.more),
            (vec!["shop/cart".to_owned(), "shop/web".to_owned()], false)
        );
        let projects = store.projects_page("default", None, 1).await.unwrap();
        assert_eq!(projects.items[0].name, "admin");
        assert_eq!(projects.next(|p| p.name.clone()).as_deref(), Some("admin"));
        let rest = store
            .projects_page("default", Some("admin"), 1)
            .await
            .unwrap();
        assert_eq!((rest.items[0].name.as_str(), rest.more), ("shop", false));
    }

    /// The list queries read by index, however long the history. On SQLite, each lookup is a
    /// SEARCH on the index made for it and none sorts a component's deployments: with the old
    /// index (no id after created_at) each of the environments view's two lookups per
    /// environment sorted every deployment of the component there ("TEMP B-TREE FOR LAST TERM
    /// OF ORDER BY"), and the ready one read each row to check its status: ~30 ms p99 under
    /// load for a component with 1,334 deployments. (PostgreSQL plans by statistics.)
    #[tokio::test]
    async fn list_queries_read_by_index() {
        let (store, _dir) = store().await;
        if store.backend() != crate::Backend::Sqlite {
            return;
        }
        component(&store, "web").await;
        let origin = BY_ADMIN;
        for (digest, env) in [("sha256:aaa", "development"), ("sha256:bbb", "production")] {
            let d = store
                .create_deployment(WEB, env, release(digest, "v1"), None, origin)
                .await
                .unwrap();
            store
                .set_deployment_status(&d.id, DeploymentStatus::Ready, None)
                .await
                .unwrap();
        }
        let id = store.component_id("default", "shop", "web").await.unwrap();
        async fn plan_tree(store: &Store, built: &Built) -> Vec<(i64, i64, String)> {
            let rows = built
                .query("EXPLAIN QUERY PLAN ")
                .fetch_all(store.pool())
                .await
                .unwrap();
            rows.iter()
                .map(|r| {
                    (
                        r.try_get::<i64, _>(0).unwrap(),
                        r.try_get::<i64, _>(1).unwrap(),
                        r.try_get::<String, _>(3).unwrap(),
                    )
                })
                .collect()
        }
        async fn plan(store: &Store, built: Built) -> Vec<String> {
            plan_tree(store, &built)
                .await
                .into_iter()
                .map(|(_, _, detail)| detail)
                .collect()
        }
        /// The steps of the window's ids: the smallest `LIST SUBQUERY` of the plan that reads
        /// projects (`pw`).
        async fn window_steps(store: &Store, built: Built) -> Vec<String> {
            let tree = plan_tree(store, &built).await;
            let descendants = |root: i64| {
                let mut under = vec![root];
                let mut out = Vec::new();
                for (id, parent, detail) in &tree {
                    if under.contains(parent) {
                        under.push(*id);
                        out.push(detail.clone());
                    }
                }
                out
            };
            tree.iter()
                .filter(|(_, _, d)| d.starts_with("LIST SUBQUERY"))
                .map(|(id, _, _)| descendants(*id))
                .filter(|steps| steps.iter().any(|l| l.starts_with("SEARCH pw")))
                .min_by_key(Vec::len)
                .unwrap_or_else(|| panic!("no window in {tree:#?}"))
        }
        let sorts_or_scans = |lines: &[String]| -> Vec<String> {
            lines
                .iter()
                .filter(|l| {
                    l.contains("LAST TERM OF ORDER BY")
                        || l.contains("RIGHT PART OF ORDER BY")
                        || l.starts_with("SCAN d2")
                        || l.starts_with("SCAN ci")
                        || l.starts_with("SCAN cw")
                        || l.starts_with("SCAN pw")
                })
                .cloned()
                .collect()
        };
        let uses = |lines: &[String], table: &str, index: &str| {
            lines
                .iter()
                .any(|l| l.starts_with(&format!("SEARCH {table} ")) && l.contains(index))
        };

        let one = ComponentWindow {
            project: Some("shop"),
            component: Some("web"),
            ..Default::default()
        };
        let lines = plan(&store, environment_states_sql("default", &one)).await;
        assert!(
            uses(&lines, "d2", "deployments_component_env"),
            "{lines:#?}"
        );
        assert!(uses(&lines, "d2", "deployments_serving"), "{lines:#?}");
        assert!(
            uses(&lines, "cw", "(project_id=? AND name=?)"),
            "{lines:#?}"
        );
        assert_eq!(sorts_or_scans(&lines), Vec::<String>::new(), "{lines:#?}");

        // A page of the overview: the window's ids in index order, no sort of every component.
        for after in [None, Some(("shop", "api"))] {
            let page = ComponentWindow {
                after,
                limit: Some(50),
                ..Default::default()
            };
            for built in [
                org_components_sql("default", &page),
                environment_states_sql("default", &page),
            ] {
                let steps = window_steps(&store, built).await;
                assert!(
                    steps
                        .iter()
                        .any(|l| l.starts_with("SEARCH pw") && l.contains("(org_id=?")),
                    "{steps:#?}"
                );
                assert!(
                    steps
                        .iter()
                        .any(|l| l.starts_with("SEARCH cw") && l.contains("(project_id=?")),
                    "{steps:#?}"
                );
                assert!(
                    !steps.iter().any(|l| l.contains("TEMP B-TREE")),
                    "{steps:#?}"
                );
            }
        }

        for before in [None, Some(("2026-01-01T00:00:00.000Z", "sha256:aaa"))] {
            let lines = plan(&store, previous_images_sql(&id, before, 50)).await;
            assert!(uses(&lines, "ci", "component_images_newest"), "{lines:#?}");
            assert!(
                !lines.iter().any(|l| l.contains("TEMP B-TREE")),
                "{lines:#?}"
            );
        }
        for before in [None, Some(("2026-01-01T00:00:00.000Z", "x"))] {
            let lines = plan(&store, deployments_page_sql(&id, None, before, 50)).await;
            assert!(
                uses(&lines, "d2", "deployments_component_newest"),
                "{lines:#?}"
            );
            assert_eq!(sorts_or_scans(&lines), Vec::<String>::new(), "{lines:#?}");
            let lines = plan(
                &store,
                deployments_page_sql(&id, Some("production"), before, 50),
            )
            .await;
            assert!(
                uses(&lines, "d2", "deployments_component_env"),
                "{lines:#?}"
            );
            assert_eq!(sorts_or_scans(&lines), Vec::<String>::new(), "{lines:#?}");
        }
    }

    /// The deploy webhook's one query answers what the separate ones do: the component, its
    /// registry's settings (password decrypted), the first environment and the newest
    /// deployment there (not another environment's).
    #[tokio::test]
    async fn deploy_context_answers_what_the_separate_queries_do() {
        let (store, _dir) = store().await;
        assert!(
            store
                .deploy_context("default", "shop", "web")
                .await
                .unwrap()
                .is_none()
        );
        store
            .insert_registry(
                "default",
                "private",
                &RegistrySettings {
                    display_name: "Private".into(),
                    host: "registry.example.com".into(),
                    auth_type: RegistryAuthType::Basic,
                    username: Some("ci".into()),
                    password: Some(berth_core::Secret::new("s3cret")),
                    ca_pem: Some("PEM".into()),
                    insecure: true,
                    platform: "linux/arm64".into(),
                },
            )
            .await
            .unwrap();
        store
            .insert_component(
                "default",
                "shop",
                &NewComponent {
                    name: "web",
                    display_name: "Web",
                    description: "",
                    kind: ComponentType::Service,
                    registry: "private",
                    image: "registry.example.com/shop/web:v1",
                    port: Some(8080),
                },
            )
            .await
            .unwrap();
        fn as_json(d: &Option<Deployment>) -> serde_json::Value {
            serde_json::to_value(d).unwrap()
        }
        async fn check(store: &Store, context: DeployContext) {
            let listed = store
                .list_deployments("default", "shop", "web", Some("development"), 1)
                .await
                .unwrap();
            assert_eq!(as_json(&context.latest), as_json(&listed.first().cloned()));
            assert_eq!(
                as_json(&context.latest),
                as_json(&store.latest_deployment(WEB, "development").await.unwrap())
            );
        }
        let context = store
            .deploy_context("default", "shop", "web")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&context.component).unwrap(),
            serde_json::to_value(
                store
                    .get_component("default", "shop", "web")
                    .await
                    .unwrap()
                    .unwrap()
            )
            .unwrap()
        );
        let (_, settings) = store
            .registry_settings("default", "private")
            .await
            .unwrap()
            .unwrap();
        let got = &context.registry_settings;
        assert_eq!(
            (
                &got.display_name,
                &got.host,
                got.auth_type,
                &got.username,
                got.password.as_ref().map(berth_core::Secret::expose),
                &got.ca_pem,
                got.insecure,
                &got.platform
            ),
            (
                &settings.display_name,
                &settings.host,
                settings.auth_type,
                &settings.username,
                Some("s3cret"),
                &settings.ca_pem,
                settings.insecure,
                &settings.platform
            )
        );
        assert_eq!(context.first_environment.as_deref(), Some("development"));
        assert!(context.latest.is_none());
        check(&store, context).await;

        let origin = Origin {
            trigger: "ci",
            actor: "ci:web/github",
        };
        let release = |digest: &'static str| {
            ReleaseChoice::New(NewRelease {
                registry: "private",
                repository: "registry.example.com/shop/web",
                tag: Some("v1"),
                digest,
                port: Some(8080),
                endpoints: "[]",
                config: "{}",
            })
        };
        let d1 = store
            .create_deployment(WEB, "development", release("sha256:aaa"), None, origin)
            .await
            .unwrap();
        let d2 = store
            .create_deployment(WEB, "development", release("sha256:bbb"), None, origin)
            .await
            .unwrap();
        store
            .set_deployment_status(&d2.id, DeploymentStatus::Failed, Some("no"))
            .await
            .unwrap();
        // Newer, but in production: not the first environment's.
        store
            .create_deployment(WEB, "production", release("sha256:ccc"), None, origin)
            .await
            .unwrap();
        let context = store
            .deploy_context("default", "shop", "web")
            .await
            .unwrap()
            .unwrap();
        let latest = context.latest.clone().unwrap();
        assert_ne!(latest.id, d1.id);
        assert_eq!(
            (latest.id.as_str(), latest.digest.as_str(), latest.status),
            (d2.id.as_str(), "sha256:bbb", DeploymentStatus::Failed)
        );
        assert_eq!(latest.reason.as_deref(), Some("no"));
        assert_eq!(latest.environment, "development");
        check(&store, context).await;
    }

    /// The queries no other test reaches, once each, so that both backends run every one.
    #[tokio::test]
    async fn remaining_queries_run_on_this_backend() {
        use berth_core::auto_deploy::{PolicyKind, SortOrder};
        let (store, _dir) = store().await;
        store
            .insert_component(
                "default",
                "shop",
                &NewComponent {
                    name: "web",
                    display_name: "Web",
                    description: "",
                    kind: ComponentType::Service,
                    registry: "local",
                    image: "127.0.0.1:5000/test/web:v1",
                    port: Some(8080),
                },
            )
            .await
            .unwrap();
        // Organizations, projects, components, users.
        let org = store
            .update_org("default", Some("Default org"), None)
            .await
            .unwrap();
        assert_eq!(org.display_name, "Default org");
        assert_eq!(store.list_orgs().await.unwrap().len(), 1);
        assert_eq!(
            store.list_projects("default").await.unwrap()[0].name,
            "shop"
        );
        let c = store
            .update_component("default", "shop", "web", None, Some("the shop"), Some(9090))
            .await
            .unwrap();
        assert_eq!((c.description.as_str(), c.port), ("the shop", Some(9090)));
        let listed = store
            .list_components("default", "shop", None, 10)
            .await
            .unwrap();
        assert_eq!((listed.items.len(), listed.more), (1, false));
        assert_eq!(store.list_users().await.unwrap()[0].name, "admin");

        // Deployments of one environment, events.
        let origin = BY_ADMIN;
        let d = store
            .create_deployment(WEB, "production", release("sha256:ccc", "v3"), None, origin)
            .await
            .unwrap();
        store.add_deployment_event(&d.id, "hello").await.unwrap();
        let events = store.list_deployment_events(&d.id, 0).await.unwrap();
        assert_eq!(events.last().unwrap().message, "hello");
        let after = store
            .list_deployment_events(&d.id, events[0].id)
            .await
            .unwrap();
        assert_eq!(after.len(), events.len() - 1);
        let prod = store
            .list_deployments("default", "shop", "web", Some("production"), 10)
            .await
            .unwrap();
        assert_eq!(prod.len(), 1);
        let dev = store
            .list_deployments("default", "shop", "web", Some("development"), 10)
            .await
            .unwrap();
        assert!(dev.is_empty());

        // Source files.
        store
            .put_endpoints_file(WEB, "endpoints.yaml", "version: 0.1\n")
            .await
            .unwrap();
        store
            .put_schema_file(WEB, "api/openapi.yaml", "openapi: 3.0.0\n")
            .await
            .unwrap();
        store
            .put_schema_file(WEB, "api/openapi.yaml", "openapi: 3.1.0\n")
            .await
            .unwrap();
        assert_eq!(
            store.endpoints_file(WEB).await.unwrap().unwrap().name,
            "endpoints.yaml"
        );
        let schemas = store.schema_files(WEB).await.unwrap();
        assert_eq!(schemas.len(), 1);
        assert_eq!(schemas[0].content, "openapi: 3.1.0\n");
        assert!(
            store
                .delete_schema_file(WEB, "api/openapi.yaml")
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_schema_file(WEB, "api/openapi.yaml")
                .await
                .unwrap()
        );

        // Auto-deploy settings, checks and registry notification secrets.
        let settings = crate::NewAutoDeploy {
            policy: PolicyKind::Regex,
            tag: None,
            range: None,
            regex: Some("v[0-9]+"),
            sort: Some(SortOrder::Numeric),
            interval_seconds: 60,
            enabled: true,
            created_by: "admin/bootstrap",
        };
        let a = store.put_auto_deploy(WEB, &settings).await.unwrap();
        assert!(a.settings.enabled);
        assert_eq!(a.settings.sort, Some(SortOrder::Numeric));
        assert_eq!(store.due_auto_deploys(0, 10).await.unwrap().len(), 1);
        store
            .record_auto_deploy_check(
                WEB,
                &crate::AutoDeployCheckRecord {
                    tag: Some("v3"),
                    digest: Some("sha256:ccc"),
                    error: None,
                    failures: 0,
                    next_check_at: 60_000,
                },
            )
            .await
            .unwrap();
        assert!(store.due_auto_deploys(59_999, 10).await.unwrap().is_empty());
        let a = store.get_auto_deploy(WEB).await.unwrap().unwrap();
        assert_eq!(a.settings.last_tag.as_deref(), Some("v3"));
        let of_registry = store
            .auto_deploys_of_registry("default", "local")
            .await
            .unwrap();
        assert_eq!(of_registry[0].1, "127.0.0.1:5000/test/web:v1");
        let secret = store
            .rotate_registry_notification_secret("default", "local", "admin/bootstrap")
            .await
            .unwrap();
        assert!(
            store
                .registry_notification_secret_matches("default", "local", &secret)
                .await
                .unwrap()
        );
        assert!(
            !store
                .registry_notification_secret_matches("default", "local", "berth_rn_nope")
                .await
                .unwrap()
        );
        let disabled = crate::NewAutoDeploy {
            enabled: false,
            ..settings
        };
        let a = store.put_auto_deploy(WEB, &disabled).await.unwrap();
        assert!(!a.settings.enabled);
        assert!(
            store
                .due_auto_deploys(i64::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.delete_auto_deploy(WEB).await.unwrap().is_some());
        assert!(store.get_auto_deploy(WEB).await.unwrap().is_none());
    }
}
