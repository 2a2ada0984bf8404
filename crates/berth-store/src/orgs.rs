//! Organizations, their environments, and projects.

use berth_core::api::{Environment, Org, Project};
use sqlx::{Row, Sqlite, Transaction};

use crate::{DEFAULT_ENVIRONMENTS, Error, Result, Store, new_id, now};

pub(crate) async fn insert_org_tx(
    tx: &mut Transaction<'_, Sqlite>,
    name: &str,
    display_name: &str,
    description: &str,
) -> Result<String> {
    let id = new_id();
    let at = now();
    sqlx::query(
        "INSERT INTO orgs (id, name, display_name, description, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(name)
    .bind(display_name)
    .bind(description)
    .bind(&at)
    .bind(&at)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::conflict(
                "name",
                format!("an organization named {name:?} already exists"),
            )
        } else {
            Error::Db(e)
        }
    })?;
    for (position, (env, display)) in DEFAULT_ENVIRONMENTS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO environments (id, org_id, name, display_name, position, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(new_id())
        .bind(&id)
        .bind(env)
        .bind(display)
        .bind(position as i64)
        .bind(&at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

fn org_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Org> {
    Ok(Org {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn project_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Project> {
    Ok(Project {
        org: row.try_get("org_name")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const ORG_COLUMNS: &str = "name, display_name, description, created_at, updated_at";
const PROJECT_SELECT: &str = "SELECT o.name AS org_name, p.name, p.display_name, p.description,
    p.created_at, p.updated_at FROM projects p JOIN orgs o ON o.id = p.org_id";

impl Store {
    /// Creates an organization with the default environments (development → production).
    pub async fn insert_org(
        &self,
        name: &str,
        display_name: &str,
        description: &str,
    ) -> Result<Org> {
        let mut tx = self.pool().begin().await?;
        insert_org_tx(&mut tx, name, display_name, description).await?;
        tx.commit().await?;
        self.get_org(name)
            .await?
            .ok_or_else(|| Error::not_found("organization", name))
    }

    pub async fn get_org(&self, name: &str) -> Result<Option<Org>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORG_COLUMNS} FROM orgs ORDER BY name"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Changes display name and/or description; `None` keeps the current value.
    pub async fn update_org(
        &self,
        name: &str,
        display_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Org> {
        let done = sqlx::query(
            "UPDATE orgs SET display_name = COALESCE(?, display_name),
             description = COALESCE(?, description), updated_at = ? WHERE name = ?",
        )
        .bind(display_name)
        .bind(description)
        .bind(now())
        .bind(name)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("organization", name));
        }
        self.get_org(name)
            .await?
            .ok_or_else(|| Error::not_found("organization", name))
    }

    /// Deletes an organization; refused (conflict) while it still has projects.
    pub async fn delete_org(&self, name: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let id: String = sqlx::query_scalar("SELECT id FROM orgs WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("organization", name))?;
        let projects: Vec<String> =
            sqlx::query_scalar("SELECT name FROM projects WHERE org_id = ? ORDER BY name")
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
        if !projects.is_empty() {
            return Err(Error::conflict(
                "name",
                format!(
                    "organization {name:?} still has projects ({}); delete them first",
                    projects.join(", ")
                ),
            ));
        }
        sqlx::query("DELETE FROM orgs WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The environments of an organization in promotion order.
    pub async fn list_environments(&self, org: &str) -> Result<Vec<Environment>> {
        self.require_org(org).await?;
        let rows = sqlx::query(
            "SELECT e.name, e.display_name, e.position FROM environments e
             JOIN orgs o ON o.id = e.org_id WHERE o.name = ? ORDER BY e.position",
        )
        .bind(org)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Environment {
                    name: row.try_get("name")?,
                    display_name: row.try_get("display_name")?,
                    position: row.try_get("position")?,
                })
            })
            .collect()
    }

    pub(crate) async fn org_id(&self, org: &str) -> Result<String> {
        self.require_org(org).await
    }

    async fn require_org(&self, org: &str) -> Result<String> {
        sqlx::query_scalar("SELECT id FROM orgs WHERE name = ?")
            .bind(org)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("organization", org))
    }

    pub async fn insert_project(
        &self,
        org: &str,
        name: &str,
        display_name: &str,
        description: &str,
    ) -> Result<Project> {
        let org_id = self.require_org(org).await?;
        let at = now();
        sqlx::query(
            "INSERT INTO projects (id, org_id, name, display_name, description, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new_id())
        .bind(&org_id)
        .bind(name)
        .bind(display_name)
        .bind(description)
        .bind(&at)
        .bind(&at)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if crate::error::is_unique_violation(&e) {
                Error::conflict(
                    "name",
                    format!("a project named {name:?} already exists in organization {org:?}"),
                )
            } else {
                Error::Db(e)
            }
        })?;
        self.get_project(org, name)
            .await?
            .ok_or_else(|| Error::not_found("project", name))
    }

    pub async fn get_project(&self, org: &str, name: &str) -> Result<Option<Project>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PROJECT_SELECT} WHERE o.name = ? AND p.name = ?"
        )))
        .bind(org)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    pub async fn list_projects(&self, org: &str) -> Result<Vec<Project>> {
        self.require_org(org).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PROJECT_SELECT} WHERE o.name = ? ORDER BY p.name"
        )))
        .bind(org)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// Changes display name and/or description; `None` keeps the current value.
    pub async fn update_project(
        &self,
        org: &str,
        name: &str,
        display_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Project> {
        let org_id = self.require_org(org).await?;
        let done = sqlx::query(
            "UPDATE projects SET display_name = COALESCE(?, display_name),
             description = COALESCE(?, description), updated_at = ?
             WHERE org_id = ? AND name = ?",
        )
        .bind(display_name)
        .bind(description)
        .bind(now())
        .bind(&org_id)
        .bind(name)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("project", name));
        }
        self.get_project(org, name)
            .await?
            .ok_or_else(|| Error::not_found("project", name))
    }

    /// Deletes a project; refused (conflict) while it still has components.
    pub async fn delete_project(&self, org: &str, name: &str) -> Result<()> {
        let org_id = self.require_org(org).await?;
        let components: Vec<String> = sqlx::query_scalar(
            "SELECT c.name FROM components c JOIN projects p ON p.id = c.project_id
             WHERE p.org_id = ? AND p.name = ? ORDER BY c.name",
        )
        .bind(&org_id)
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        if !components.is_empty() {
            return Err(Error::conflict(
                "name",
                format!(
                    "project {name:?} still has components ({}); delete them first",
                    components.join(", ")
                ),
            ));
        }
        let done = sqlx::query("DELETE FROM projects WHERE org_id = ? AND name = ?")
            .bind(&org_id)
            .bind(name)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("project", name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn org_and_project_lifecycle() {
        let store = Store::open_in_memory().await.unwrap();
        let org = store.insert_org("acme", "Acme", "").await.unwrap();
        assert_eq!(org.display_name, "Acme");
        assert_eq!(store.list_environments("acme").await.unwrap().len(), 2);
        assert!(matches!(
            store.insert_org("acme", "Again", "").await,
            Err(Error::Conflict { .. })
        ));
        store
            .insert_project("acme", "shop", "Shop", "d")
            .await
            .unwrap();
        let dup = store
            .insert_project("acme", "shop", "Shop", "")
            .await
            .unwrap_err();
        assert!(dup.to_string().contains("already exists"), "{dup}");
        assert!(matches!(
            store.insert_project("nope", "shop", "Shop", "").await,
            Err(Error::NotFound {
                kind: "organization",
                ..
            })
        ));
        let p = store
            .update_project("acme", "shop", None, Some("new"))
            .await
            .unwrap();
        assert_eq!(
            (p.display_name.as_str(), p.description.as_str()),
            ("Shop", "new")
        );
        let err = store.delete_org("acme").await.unwrap_err();
        assert!(err.to_string().contains("shop"), "{err}");
        store.delete_project("acme", "shop").await.unwrap();
        assert!(matches!(
            store.delete_project("acme", "shop").await,
            Err(Error::NotFound { .. })
        ));
        store.delete_org("acme").await.unwrap();
        assert!(store.get_org("acme").await.unwrap().is_none());
    }
}
