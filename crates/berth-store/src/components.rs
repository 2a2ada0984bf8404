//! Components, releases, deployments and their events.

use berth_core::api::{
    Component, ComponentType, Deployment, DeploymentEvent, DeploymentPhase, DeploymentStatus,
    PreviousImage,
};
use sqlx::Row;

use crate::{Error, Result, Store, new_id, now};

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

fn work_from_row(row: &sqlx::any::AnyRow) -> Result<DeploymentWork> {
    let repository: String = row.try_get("repository")?;
    let digest: String = row.try_get("digest")?;
    let status: String = row.try_get("status")?;
    let phase: Option<String> = row.try_get("phase")?;
    let kind: String = row.try_get("component_type")?;
    let port: Option<i64> = row.try_get("port")?;
    let registry: String = row.try_get("registry_name")?;
    Ok(DeploymentWork {
        deployment: Deployment {
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
        },
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

    pub async fn list_components(&self, org: &str, project: &str) -> Result<Vec<Component>> {
        self.project_id(org, project).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COMPONENT_SELECT} WHERE o.name = $1 AND p.name = $2 ORDER BY c.name"
        )))
        .bind(org)
        .bind(project)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(component_from_row).collect()
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

    /// Deployments of a component, newest first, optionally of one environment.
    pub async fn list_deployments(
        &self,
        org: &str,
        project: &str,
        component: &str,
        env: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Deployment>> {
        let id = self.component_id(org, project, component).await?;
        // The newest ids first, then their rows: sorting all of a busy component's joined
        // rows to keep 50 took twice as long.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.id IN (
                SELECT d2.id FROM deployments d2 JOIN environments e2 ON e2.id = d2.environment_id
                WHERE d2.component_id = $1 AND ($2 IS NULL OR e2.name = $2)
                ORDER BY d2.created_at DESC, d2.id DESC LIMIT $3)
             ORDER BY d.created_at DESC, d.id DESC"
        )))
        .bind(&id)
        .bind(env)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| work_from_row(r).map(|w| w.deployment))
            .collect()
    }

    /// The newest deployment of a component in one environment, in one query (the
    /// same-digest check of every deploy request).
    pub async fn latest_deployment(
        &self,
        target: ComponentRef<'_>,
        env: &str,
    ) -> Result<Option<Deployment>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE o.name = $1 AND p.name = $2 AND c.name = $3 AND e.name = $4
             ORDER BY d.created_at DESC, d.id DESC LIMIT 1"
        )))
        .bind(target.org)
        .bind(target.project)
        .bind(target.component)
        .bind(env)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(|r| work_from_row(r).map(|w| w.deployment))
            .transpose()
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

    /// Each digest a component was deployed with, newest first: one query (the newest release
    /// of each digest by index `releases_component_digest`), not one more per digest.
    pub async fn previous_images(
        &self,
        org: &str,
        project: &str,
        component: &str,
    ) -> Result<Vec<PreviousImage>> {
        let component_id = self.component_id(org, project, component).await?;
        let rows = sqlx::query(
            "SELECT x.digest, x.first_at, x.last_at, r.id AS release_id, r.repository, r.tag,
               r.trigger, r.actor
             FROM (SELECT r.digest, MIN(d.created_at) AS first_at, MAX(d.created_at) AS last_at
                   FROM deployments d JOIN releases r ON r.id = d.release_id
                   WHERE d.component_id = $1 GROUP BY r.digest) x
             JOIN releases r ON r.id = (SELECT r2.id FROM releases r2
                 WHERE r2.component_id = $1 AND r2.digest = x.digest
                 ORDER BY r2.created_at DESC LIMIT 1)
             ORDER BY x.last_at DESC",
        )
        .bind(&component_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
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
                    first_deployed_at: row.try_get("first_at")?,
                    last_deployed_at: row.try_get("last_at")?,
                    trigger: row.try_get("trigger")?,
                    actor: row.try_get("actor")?,
                })
            })
            .collect()
    }

    /// For each component of `project` (all projects of `org` when `None`) and environment:
    /// the newest deployment (any status) and the newest `ready` one (what serves) — what the
    /// component's environments view shows, in one query for all of them instead of one list
    /// of deployments per component and environment.
    pub async fn environment_states(
        &self,
        org: &str,
        project: Option<&str>,
        component: Option<&str>,
    ) -> Result<Vec<EnvironmentDeployments>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.id IN (
                SELECT (SELECT d2.id FROM deployments d2
                        WHERE d2.component_id = x.cid AND d2.environment_id = x.eid
                        ORDER BY d2.created_at DESC, d2.id DESC LIMIT 1)
                FROM (SELECT c2.id AS cid, e2.id AS eid FROM components c2
                      JOIN projects p2 ON p2.id = c2.project_id JOIN orgs o2 ON o2.id = p2.org_id
                      JOIN environments e2 ON e2.org_id = o2.id
                      WHERE o2.name = $1 AND ($2 IS NULL OR p2.name = $2)
                        AND ($3 IS NULL OR c2.name = $3)) x
                UNION
                SELECT (SELECT d2.id FROM deployments d2
                        WHERE d2.component_id = x.cid AND d2.environment_id = x.eid
                          AND d2.status = 'ready'
                        ORDER BY d2.created_at DESC, d2.id DESC LIMIT 1)
                FROM (SELECT c2.id AS cid, e2.id AS eid FROM components c2
                      JOIN projects p2 ON p2.id = c2.project_id JOIN orgs o2 ON o2.id = p2.org_id
                      JOIN environments e2 ON e2.org_id = o2.id
                      WHERE o2.name = $1 AND ($2 IS NULL OR p2.name = $2)
                        AND ($3 IS NULL OR c2.name = $3)) x)
             ORDER BY p.name, c.name, e.position, d.created_at DESC, d.id DESC"
        )))
        .bind(org)
        .bind(project)
        .bind(component)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<EnvironmentDeployments> = Vec::new();
        for row in &rows {
            let d = work_from_row(row)?.deployment;
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
        let origin = Origin {
            trigger: "user",
            actor: "admin/bootstrap",
        };
        let d1 = store
            .create_deployment(
                WEB,
                "development",
                release("sha256:aaa", "v1"),
                None,
                origin,
            )
            .await
            .unwrap();
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
            .previous_images("default", "shop", "web")
            .await
            .unwrap();
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

    /// One query answers every component's environments: the newest deployment and the
    /// newest ready one per (component, environment), only where something was deployed.
    #[tokio::test]
    async fn environment_states_newest_and_serving() {
        let (store, _dir) = store().await;
        component(&store, "web").await;
        component(&store, "api").await;
        let origin = Origin {
            trigger: "user",
            actor: "admin/bootstrap",
        };
        let d1 = store
            .create_deployment(
                WEB,
                "development",
                release("sha256:aaa", "v1"),
                None,
                origin,
            )
            .await
            .unwrap();
        store
            .set_deployment_status(&d1.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();
        // times have millisecond resolution: keep the order unambiguous
        let tick = || tokio::time::sleep(std::time::Duration::from_millis(5));
        tick().await;
        let d2 = store
            .create_deployment(
                WEB,
                "development",
                release("sha256:bbb", "v2"),
                None,
                origin,
            )
            .await
            .unwrap();
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
            .environment_states("default", None, None)
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
            .environment_states("default", Some("shop"), Some("web"))
            .await
            .unwrap();
        assert_eq!(web.len(), 1);
        assert_eq!(
            web[0].latest.as_ref().unwrap().status,
            DeploymentStatus::Pending
        );
        assert!(
            store
                .environment_states("default", Some("other"), None)
                .await
                .unwrap()
                .is_empty()
        );

        // Previous Images: one entry per digest, named after its newest release, spanning
        // the first and the last deployment of the digest.
        tick().await;
        let again = store
            .create_deployment(
                WEB,
                "development",
                release("sha256:aaa", "v1-again"),
                None,
                origin,
            )
            .await
            .unwrap();
        let previous = store
            .previous_images("default", "shop", "web")
            .await
            .unwrap();
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
        let listed = store.list_components("default", "shop").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(store.list_users().await.unwrap()[0].name, "admin");

        // Deployments of one environment, events.
        let origin = Origin {
            trigger: "user",
            actor: "admin/bootstrap",
        };
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
