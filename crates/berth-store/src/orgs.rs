//! Organizations, their environments, and projects.

use berth_core::api::{Environment, Org, Project};
use sqlx::{Any, Row, Transaction};

use crate::{DEFAULT_ENVIRONMENTS, Error, Result, Store, new_id, now};

pub(crate) async fn insert_org_tx(
    tx: &mut Transaction<'_, Any>,
    name: &str,
    display_name: &str,
    description: &str,
) -> Result<String> {
    let id = new_id();
    let at = now();
    sqlx::query(
        "INSERT INTO orgs (id, name, display_name, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
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
             VALUES ($1, $2, $3, $4, $5, $6)",
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

/// (id, name) of an organization's environments in promotion order.
async fn environments_tx(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT id, name FROM environments WHERE org_id = $1 ORDER BY position")
        .bind(org_id)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
        .collect()
}

/// Moves an organization's positions to distinct negative numbers (p → -1 - p). SQLite checks
/// UNIQUE(org_id, position) row by row during an UPDATE, so shifting in place (p → p + 1)
/// would collide; negatives never collide with the 0.. that [`place_environments`] assigns.
async fn hide_positions(tx: &mut Transaction<'_, Any>, org_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE environments SET position = -1 - position WHERE org_id = $1 AND position >= 0",
    )
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives the environments `ids` the positions 0, 1, … in that order (after [`hide_positions`]).
async fn place_environments(tx: &mut Transaction<'_, Any>, ids: &[String]) -> Result<()> {
    for (position, id) in ids.iter().enumerate() {
        sqlx::query("UPDATE environments SET position = $1 WHERE id = $2")
            .bind(position as i64)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn org_from_row(row: &sqlx::any::AnyRow) -> Result<Org> {
    Ok(Org {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn project_from_row(row: &sqlx::any::AnyRow) -> Result<Project> {
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
        let mut tx = self.begin().await?;
        insert_org_tx(&mut tx, name, display_name, description).await?;
        tx.commit().await?;
        self.get_org(name)
            .await?
            .ok_or_else(|| Error::not_found("organization", name))
    }

    pub async fn get_org(&self, name: &str) -> Result<Option<Org>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE name = $1"
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
            "UPDATE orgs SET display_name = COALESCE($1, display_name),
             description = COALESCE($2, description), updated_at = $3 WHERE name = $4",
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
        let mut tx = self.begin().await?;
        let id: String = sqlx::query_scalar("SELECT id FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("organization", name))?;
        let projects: Vec<String> =
            sqlx::query_scalar("SELECT name FROM projects WHERE org_id = $1 ORDER BY name")
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
        sqlx::query("DELETE FROM orgs WHERE id = $1")
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
             JOIN orgs o ON o.id = e.org_id WHERE o.name = $1 ORDER BY e.position",
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

    /// Creates an environment at `position` (0-based; default: last). The environments from
    /// there on move one place down the promotion order.
    pub async fn insert_environment(
        &self,
        org: &str,
        name: &str,
        display_name: &str,
        position: Option<i64>,
    ) -> Result<Environment> {
        let org_id = self.require_org(org).await?;
        let mut tx = self.begin().await?;
        let mut ids: Vec<String> = environments_tx(&mut tx, &org_id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let count = ids.len() as i64;
        let position = position.unwrap_or(count);
        if !(0..=count).contains(&position) {
            return Err(Error::invalid(
                "position",
                format!(
                    "is {position}; it must be between 0 and {count} (organization {org:?} has \
                     {count} environments; leave it out to add the new one last)"
                ),
            ));
        }
        hide_positions(&mut tx, &org_id).await?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO environments (id, org_id, name, display_name, position, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&org_id)
        .bind(name)
        .bind(display_name)
        // Out of the way of the hidden ones (-1 ..= -count) until `place_environments`.
        .bind(-1 - count)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if crate::error::is_unique_violation(&e) {
                Error::conflict(
                    "name",
                    format!("an environment named {name:?} already exists in organization {org:?}"),
                )
            } else {
                Error::Db(e)
            }
        })?;
        // `position` is within 0..=count, so it fits a usize and the vector.
        ids.insert(position as usize, id);
        place_environments(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(Environment {
            name: name.to_owned(),
            display_name: display_name.to_owned(),
            position,
        })
    }

    /// Sets the promotion order: `order` must name every environment of the organization once.
    pub async fn reorder_environments(
        &self,
        org: &str,
        order: &[String],
    ) -> Result<Vec<Environment>> {
        let org_id = self.require_org(org).await?;
        let mut tx = self.begin().await?;
        let current = environments_tx(&mut tx, &org_id).await?;
        let known = |n: &str| current.iter().any(|(_, name)| name == n);
        let mut problems = Vec::new();
        let missing: Vec<&str> = current
            .iter()
            .map(|(_, name)| name.as_str())
            .filter(|n| !order.iter().any(|o| o == n))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("missing {}", missing.join(", ")));
        }
        // Each unknown or repeated name once, at its first (repeated: second) mention.
        let unknown: Vec<&str> = order
            .iter()
            .enumerate()
            .filter(|(i, n)| !known(n) && !order[..*i].contains(n))
            .map(|(_, n)| n.as_str())
            .collect();
        if !unknown.is_empty() {
            problems.push(format!("unknown {}", unknown.join(", ")));
        }
        let twice: Vec<&str> = order
            .iter()
            .enumerate()
            .filter(|(i, n)| known(n) && order[..*i].iter().filter(|o| o == n).count() == 1)
            .map(|(_, n)| n.as_str())
            .collect();
        if !twice.is_empty() {
            problems.push(format!("named more than once: {}", twice.join(", ")));
        }
        if !problems.is_empty() {
            return Err(Error::invalid(
                "order",
                format!(
                    "must name each environment of organization {org:?} exactly once ({}); \
                     {}",
                    current
                        .iter()
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    problems.join("; ")
                ),
            ));
        }
        let ids: Vec<String> = order
            .iter()
            .filter_map(|n| current.iter().find(|(_, name)| name == n))
            .map(|(id, _)| id.clone())
            .collect();
        hide_positions(&mut tx, &org_id).await?;
        place_environments(&mut tx, &ids).await?;
        tx.commit().await?;
        self.list_environments(org).await
    }

    /// Deletes an environment; refused (conflict) while a deployment or a config of any
    /// component refers to it, and for the organization's last environment.
    pub async fn delete_environment(&self, org: &str, name: &str) -> Result<()> {
        let org_id = self.require_org(org).await?;
        let mut tx = self.begin().await?;
        let current = environments_tx(&mut tx, &org_id).await?;
        let id = current
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| Error::not_found("environment", name))?;
        let users = |table: &'static str| {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT p.name || '/' || c.name FROM {table} x
                 JOIN components c ON c.id = x.component_id JOIN projects p ON p.id = c.project_id
                 WHERE x.environment_id = $1 ORDER BY 1"
            )))
            .bind(id.clone())
        };
        let deployed = users("deployments").fetch_all(&mut *tx).await?;
        let configured = users("component_configs").fetch_all(&mut *tx).await?;
        if !deployed.is_empty() || !configured.is_empty() {
            let mut uses = Vec::new();
            if !deployed.is_empty() {
                uses.push(format!("deployments of {}", deployed.join(", ")));
            }
            if !configured.is_empty() {
                uses.push(format!("configs of {}", configured.join(", ")));
            }
            return Err(Error::conflict(
                "name",
                format!(
                    "environment {name:?} is in use ({}); delete those components, or their \
                     configs in {name:?}, first",
                    uses.join("; ")
                ),
            ));
        }
        if current.len() == 1 {
            return Err(Error::conflict(
                "name",
                format!(
                    "environment {name:?} is the last one of organization {org:?}; \
                     an organization needs at least one (create another first)"
                ),
            ));
        }
        sqlx::query("DELETE FROM environments WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if crate::error::is_foreign_key_violation(&e) {
                    Error::conflict(
                        "name",
                        format!(
                            "environment {name:?} is in use by a deployment; retry to see which"
                        ),
                    )
                } else {
                    Error::Db(e)
                }
            })?;
        // Close the gap so positions stay 0.. and the first one is where deploys land.
        let rest: Vec<String> = current
            .into_iter()
            .map(|(i, _)| i)
            .filter(|i| *i != id)
            .collect();
        hide_positions(&mut tx, &org_id).await?;
        place_environments(&mut tx, &rest).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn org_id(&self, org: &str) -> Result<String> {
        self.require_org(org).await
    }

    async fn require_org(&self, org: &str) -> Result<String> {
        sqlx::query_scalar("SELECT id FROM orgs WHERE name = $1")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            "{PROJECT_SELECT} WHERE o.name = $1 AND p.name = $2"
        )))
        .bind(org)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// A page of an organization's projects by name: those after `after`, at most `limit`.
    pub async fn projects_page(
        &self,
        org: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<crate::Page<Project>> {
        let org_id = self.require_org(org).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PROJECT_SELECT} WHERE p.org_id = $1 AND ($2 IS NULL OR p.name > $2)
             ORDER BY p.name LIMIT $3"
        )))
        .bind(&org_id)
        .bind(after)
        .bind(crate::page_limit(limit))
        .fetch_all(self.pool())
        .await?;
        let items = rows
            .iter()
            .map(project_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::Page::of(items, limit))
    }

    /// All projects of an organization by name.
    pub async fn list_projects(&self, org: &str) -> Result<Vec<Project>> {
        self.require_org(org).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PROJECT_SELECT} WHERE o.name = $1 ORDER BY p.name"
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
            "UPDATE projects SET display_name = COALESCE($1, display_name),
             description = COALESCE($2, description), updated_at = $3
             WHERE org_id = $4 AND name = $5",
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
             WHERE p.org_id = $1 AND p.name = $2 ORDER BY c.name",
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
        let done = sqlx::query("DELETE FROM projects WHERE org_id = $1 AND name = $2")
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

    /// PostgreSQL's text cannot hold a NUL character: a lookup with one fails with an error
    /// that says so (bad input: a 422 at the API, not a 500); SQLite finds nothing.
    #[tokio::test]
    async fn a_nul_in_a_looked_up_name_is_bad_input() {
        let store = crate::test_store().await;
        let found = store.get_org("a\0b").await;
        match store.backend() {
            crate::Backend::Postgres => {
                let e = found.unwrap_err();
                assert!(e.is_unstorable_text(), "{e}");
            }
            crate::Backend::Sqlite => assert!(found.unwrap().is_none()),
        }
    }

    #[tokio::test]
    async fn org_and_project_lifecycle() {
        let store = crate::test_store().await;
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

    async fn names(store: &Store, org: &str) -> Vec<(String, i64)> {
        store
            .list_environments(org)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.position))
            .collect()
    }

    fn order(names: &[&str]) -> Vec<(String, i64)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as i64))
            .collect()
    }

    #[tokio::test]
    async fn environments_create_reorder_delete() {
        let store = crate::test_store().await;
        store.insert_org("acme", "Acme", "").await.unwrap();
        let staging = store
            .insert_environment("acme", "staging", "Staging", Some(1))
            .await
            .unwrap();
        assert_eq!(staging.position, 1);
        assert_eq!(
            names(&store, "acme").await,
            order(&["development", "staging", "production"])
        );
        // Default: last; position 0 shifts everything.
        store
            .insert_environment("acme", "dr", "DR", None)
            .await
            .unwrap();
        store
            .insert_environment("acme", "sandbox", "Sandbox", Some(0))
            .await
            .unwrap();
        assert_eq!(
            names(&store, "acme").await,
            order(&["sandbox", "development", "staging", "production", "dr"])
        );
        for bad in [-1, 6] {
            let err = store
                .insert_environment("acme", "qa", "QA", Some(bad))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Invalid {
                        field: "position",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let err = store
            .insert_environment("acme", "staging", "Again", None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        assert!(matches!(
            store.insert_environment("nope", "qa", "QA", None).await,
            Err(Error::NotFound {
                kind: "organization",
                ..
            })
        ));

        let new_order: Vec<String> = ["production", "dr", "staging", "development", "sandbox"]
            .map(String::from)
            .to_vec();
        let listed = store
            .reorder_environments("acme", &new_order)
            .await
            .unwrap();
        assert_eq!(listed[0].name, "production");
        assert_eq!(
            names(&store, "acme").await,
            order(&["production", "dr", "staging", "development", "sandbox"])
        );
        let bad: Vec<String> = [
            "production",
            "production",
            "qa",
            "staging",
            "development",
            "sandbox",
        ]
        .map(String::from)
        .to_vec();
        let err = store.reorder_environments("acme", &bad).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::Invalid { field: "order", .. }),
            "{text}"
        );
        assert!(text.contains("missing dr"), "{text}");
        assert!(text.contains("unknown qa"), "{text}");
        assert!(text.contains("more than once: production"), "{text}");
        // Unchanged after the refusal.
        assert_eq!(names(&store, "acme").await[0].0, "production");

        store.delete_environment("acme", "dr").await.unwrap();
        assert_eq!(
            names(&store, "acme").await,
            order(&["production", "staging", "development", "sandbox"])
        );
        assert!(matches!(
            store.delete_environment("acme", "dr").await,
            Err(Error::NotFound {
                kind: "environment",
                ..
            })
        ));
        for env in ["production", "staging", "development"] {
            store.delete_environment("acme", env).await.unwrap();
        }
        let err = store
            .delete_environment("acme", "sandbox")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("last"), "{err}");
        assert_eq!(names(&store, "acme").await, order(&["sandbox"]));
    }
}
