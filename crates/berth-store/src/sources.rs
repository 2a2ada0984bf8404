//! A component's endpoints file and schema files.

use sqlx::Row;

use crate::{ComponentRef, Error, Result, Store, now};

/// The most schema files a component holds (each is at most 512 KiB at the API; a deploy
/// snapshots them all into its release).
pub const MAX_SCHEMA_FILES: i64 = 50;

/// A stored source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub content: String,
    pub updated_at: String,
}

impl Store {
    /// Replaces the component's endpoints file (there is one at most).
    pub async fn put_endpoints_file(
        &self,
        target: ComponentRef<'_>,
        name: &str,
        content: &str,
    ) -> Result<()> {
        let id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM component_sources WHERE component_id = $1 AND kind = 'endpoints'")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO component_sources (component_id, kind, name, content, updated_at)
             VALUES ($1, 'endpoints', $2, $3, $4)",
        )
        .bind(&id)
        .bind(name)
        .bind(content)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn put_schema_file(
        &self,
        target: ComponentRef<'_>,
        name: &str,
        content: &str,
    ) -> Result<()> {
        let id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let mut tx = self.begin().await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM component_sources
             WHERE component_id = $1 AND kind = 'schema' AND name <> $2",
        )
        .bind(&id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if others >= MAX_SCHEMA_FILES {
            return Err(Error::Invalid {
                field: "name",
                message: format!(
                    "the component already holds {others} schema files, the most it may; \
                     delete one it no longer needs first"
                ),
            });
        }
        sqlx::query(
            "INSERT INTO component_sources (component_id, kind, name, content, updated_at)
             VALUES ($1, 'schema', $2, $3, $4)
             ON CONFLICT (component_id, kind, name) DO UPDATE
             SET content = excluded.content, updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(name)
        .bind(content)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The names of the component's schema files, in order (without their contents).
    pub async fn schema_file_names(&self, target: ComponentRef<'_>) -> Result<Vec<String>> {
        let id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        Ok(sqlx::query_scalar(
            "SELECT name FROM component_sources
             WHERE component_id = $1 AND kind = 'schema' ORDER BY name",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Removes a schema file; `false` when there was none.
    pub async fn delete_schema_file(&self, target: ComponentRef<'_>, name: &str) -> Result<bool> {
        let id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let done = sqlx::query(
            "DELETE FROM component_sources WHERE component_id = $1 AND kind = 'schema' AND name = $2",
        )
        .bind(&id)
        .bind(name)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn endpoints_file(&self, target: ComponentRef<'_>) -> Result<Option<SourceFile>> {
        Ok(self.sources(target, "endpoints").await?.into_iter().next())
    }

    pub async fn schema_files(&self, target: ComponentRef<'_>) -> Result<Vec<SourceFile>> {
        self.sources(target, "schema").await
    }

    async fn sources(&self, target: ComponentRef<'_>, kind: &str) -> Result<Vec<SourceFile>> {
        let id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let rows = sqlx::query(
            "SELECT name, content, updated_at FROM component_sources
             WHERE component_id = $1 AND kind = $2 ORDER BY name",
        )
        .bind(&id)
        .bind(kind)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceFile {
                    name: r.try_get("name")?,
                    content: r.try_get("content")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
}
