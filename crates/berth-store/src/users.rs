//! Users and the audit log.

use berth_core::Role;
use berth_core::api::{AuditEntry, User};
use sqlx::{Any, Row, Transaction};

use crate::{Error, Result, Store, new_id, now};

pub(crate) async fn insert_user_tx(
    tx: &mut Transaction<'_, Any>,
    name: &str,
    display_name: &str,
    role: Role,
) -> Result<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO users (id, name, display_name, role, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(display_name)
    .bind(role.as_str())
    .bind(now())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::conflict("name", format!("a user named {name:?} already exists"))
        } else {
            Error::Db(e)
        }
    })?;
    Ok(id)
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        role: role.parse().map_err(Error::Io)?,
        created_at: row.try_get("created_at")?,
    })
}

/// One audit row to write.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub actor: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub request_id: &'a str,
    pub source: &'a str,
}

/// An audit row whose time was taken when the call happened, for writing later in a batch
/// ([`Store::insert_audit_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub request_id: String,
    pub source: String,
}

impl AuditRow {
    /// `entry`, stamped now.
    pub fn now(entry: &NewAuditEntry<'_>) -> Self {
        Self {
            at: now(),
            actor: entry.actor.to_owned(),
            method: entry.method.to_owned(),
            path: entry.path.to_owned(),
            status: entry.status,
            request_id: entry.request_id.to_owned(),
            source: entry.source.to_owned(),
        }
    }
}

/// Rows per INSERT statement of a batch: 7 parameters each stays far below every backend's
/// limit on bound parameters.
const AUDIT_ROWS_PER_STATEMENT: usize = 100;

impl Store {
    pub async fn insert_user(&self, name: &str, display_name: &str, role: Role) -> Result<User> {
        let mut tx = self.begin().await?;
        insert_user_tx(&mut tx, name, display_name, role).await?;
        tx.commit().await?;
        self.get_user(name)
            .await?
            .ok_or_else(|| Error::not_found("user", name))
    }

    pub async fn get_user(&self, name: &str) -> Result<Option<User>> {
        let row =
            sqlx::query("SELECT name, display_name, role, created_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows =
            sqlx::query("SELECT name, display_name, role, created_at FROM users ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Deletes a user and their tokens. The last admin cannot be deleted (nobody could
    /// administer berth afterwards).
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let role = role.ok_or_else(|| Error::not_found("user", name))?;
        if role == Role::Admin.as_str() {
            let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
                .fetch_one(&mut *tx)
                .await?;
            if admins <= 1 {
                return Err(Error::conflict(
                    "name",
                    format!("{name:?} is the last admin; create another admin first"),
                ));
            }
        }
        sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_audit(&self, entry: &NewAuditEntry<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, method, path, status, request_id, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now())
        .bind(entry.actor)
        .bind(entry.method)
        .bind(entry.path)
        .bind(i64::from(entry.status))
        .bind(entry.request_id)
        .bind(entry.source)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Writes audit rows in one transaction (in the order given), with multi-row INSERTs: what
    /// a group commit of many calls costs about as much as one row.
    pub async fn insert_audit_rows(&self, rows: &[AuditRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for chunk in rows.chunks(AUDIT_ROWS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let n = i * 7;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6,
                        n + 7
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO audit_log (at, actor, method, path, status, request_id, source)
                 VALUES {}",
                values.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(&row.at)
                    .bind(&row.actor)
                    .bind(&row.method)
                    .bind(&row.path)
                    .bind(i64::from(row.status))
                    .bind(&row.request_id)
                    .bind(&row.source);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` audit rows, newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Ok(self.audit_page(None, limit).await?.items)
    }

    /// A page of the audit log, newest first: the rows with an id below `before`, at most
    /// `limit`.
    pub async fn audit_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<crate::Page<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, method, path, status, request_id, source
             FROM audit_log WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(crate::page_limit(limit))
        .fetch_all(self.pool())
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    method: row.try_get("method")?,
                    path: row.try_get("path")?,
                    status: row.try_get("status")?,
                    request_id: row.try_get("request_id")?,
                    source: row.try_get("source")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::Page::of(items, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_and_last_admin_rule() {
        let store = crate::test_store().await;
        store.bootstrap().await.unwrap();
        let dev = store
            .insert_user("dev", "Dev", Role::Developer)
            .await
            .unwrap();
        assert_eq!(dev.role, Role::Developer);
        assert!(matches!(
            store.insert_user("dev", "Again", Role::Viewer).await,
            Err(Error::Conflict { .. })
        ));
        let err = store.delete_user("admin").await.unwrap_err();
        assert!(err.to_string().contains("last admin"), "{err}");
        store.insert_token("dev", "t", None).await.unwrap();
        store.delete_user("dev").await.unwrap();
        assert!(store.get_user("dev").await.unwrap().is_none());
        assert!(store.list_tokens(Some("dev")).await.unwrap().is_empty());
        assert!(matches!(
            store.delete_user("dev").await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn audit_rows_newest_first() {
        let store = crate::test_store().await;
        for status in [201u16, 409] {
            store
                .insert_audit(&NewAuditEntry {
                    actor: "admin/bootstrap",
                    method: "POST",
                    path: "/api/v1/orgs/default/projects",
                    status,
                    request_id: "r",
                    source: "127.0.0.1",
                })
                .await
                .unwrap();
        }
        let rows = store.list_audit(10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].status, 409);
        assert_eq!(rows[1].status, 201);
    }

    /// A batch bigger than one statement: every row once, in the order given, with its own
    /// time and fields.
    #[tokio::test]
    async fn audit_rows_in_batches() {
        let store = crate::test_store().await;
        store.insert_audit_rows(&[]).await.unwrap();
        let batch: Vec<AuditRow> = (0..250)
            .map(|n| AuditRow {
                at: format!("2026-01-01T00:00:{:02}.{n:03}Z", n % 60),
                actor: format!("ci:web/t{n}"),
                method: "POST".into(),
                path: "/api/v1/hooks/deploy".into(),
                status: 200 + u16::try_from(n % 3).unwrap(),
                request_id: format!("r{n}"),
                source: "127.0.0.1".into(),
            })
            .collect();
        store.insert_audit_rows(&batch).await.unwrap();
        let mut rows = store.list_audit(1000).await.unwrap();
        // Page by page (100 each): the same rows, newest first.
        let mut walked = Vec::new();
        let mut before = None;
        loop {
            let page = store.audit_page(before, 100).await.unwrap();
            walked.extend(page.items.iter().map(|r| r.id));
            match page.next(|r| r.id) {
                Some(id) => before = Some(id),
                None => break,
            }
        }
        assert_eq!(walked, rows.iter().map(|r| r.id).collect::<Vec<_>>());
        rows.reverse();
        assert_eq!(rows.len(), 250);
        for (row, want) in rows.iter().zip(&batch) {
            assert_eq!(
                (
                    row.at.as_str(),
                    row.actor.as_str(),
                    row.method.as_str(),
                    row.path.as_str(),
                    row.status,
                    row.request_id.as_str(),
                    row.source.as_str()
                ),
                (
                    want.at.as_str(),
                    want.actor.as_str(),
                    want.method.as_str(),
                    want.path.as_str(),
                    i64::from(want.status),
                    want.request_id.as_str(),
                    want.source.as_str()
                )
            );
        }
    }
}
