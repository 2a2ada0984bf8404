//! Components, releases, deployments and their events.

use berth_core::api::{
    Component, ComponentType, Deployment, DeploymentEvent, DeploymentStatus, PreviousImage,
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
    r.repository, r.tag, r.digest, r.port, r.endpoints, g.name AS registry_name, d.status, d.reason,
    d.trigger, d.actor, d.created_at, d.updated_at
    FROM deployments d JOIN components c ON c.id = d.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
    JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
    JOIN registries g ON g.id = r.registry_id";

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
        let project_id = self.project_id(org, project).await?;
        sqlx::query_scalar("SELECT id FROM components WHERE project_id = $1 AND name = $2")
            .bind(&project_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("component", name))
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.component_id = $1 AND ($2 IS NULL OR e.name = $2)
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3"
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

    /// Sets a deployment's status (and reason), with an event saying so. When it becomes
    /// `ready`, the deployment it replaced in that environment becomes `superseded`.
    pub async fn set_deployment_status(
        &self,
        id: &str,
        status: DeploymentStatus,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let at = now();
        sqlx::query("UPDATE deployments SET status = $1, reason = COALESCE($2, reason), updated_at = $3 WHERE id = $4")
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

    /// Each digest a component was deployed with, newest first.
    pub async fn previous_images(
        &self,
        org: &str,
        project: &str,
        component: &str,
    ) -> Result<Vec<PreviousImage>> {
        let component_id = self.component_id(org, project, component).await?;
        let rows = sqlx::query(
            "SELECT r.digest, MIN(d.created_at) AS first_at, MAX(d.created_at) AS last_at,
               (SELECT r2.id FROM releases r2 WHERE r2.component_id = $1 AND r2.digest = r.digest
                 ORDER BY r2.created_at DESC LIMIT 1) AS release_id
             FROM deployments d JOIN releases r ON r.id = d.release_id
             WHERE d.component_id = $1 GROUP BY r.digest ORDER BY last_at DESC",
        )
        .bind(&component_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let release_id: String = row.try_get("release_id")?;
            let rel =
                sqlx::query("SELECT repository, tag, trigger, actor FROM releases WHERE id = $1")
                    .bind(&release_id)
                    .fetch_one(self.pool())
                    .await?;
            let repository: String = rel.try_get("repository")?;
            let tag: Option<String> = rel.try_get("tag")?;
            out.push(PreviousImage {
                digest: row.try_get("digest")?,
                image: match &tag {
                    Some(t) => format!("{repository}:{t}"),
                    None => repository,
                },
                tag,
                release: release_id,
                first_deployed_at: row.try_get("first_at")?,
                last_deployed_at: row.try_get("last_at")?,
                trigger: rel.try_get("trigger")?,
                actor: rel.try_get("actor")?,
            });
        }
        Ok(out)
    }
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
        store
            .set_deployment_status(&d2.id, DeploymentStatus::Ready, None)
            .await
            .unwrap();
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
