//! Auto-deploy settings per component and what the poller last saw.

use berth_core::auto_deploy::{AutoDeploy, PolicyKind, SortOrder};
use sqlx::Row;

use subtle::ConstantTimeEq;

use crate::tokens::hash_token;
use crate::{ComponentRef, Error, Result, Store, now};

/// Settings to store (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewAutoDeploy<'a> {
    pub policy: PolicyKind,
    pub tag: Option<&'a str>,
    pub range: Option<&'a str>,
    pub regex: Option<&'a str>,
    pub sort: Option<SortOrder>,
    pub interval_seconds: u32,
    pub enabled: bool,
    pub created_by: &'a str,
}

/// What the poller needs beyond the API view.
#[derive(Debug, Clone)]
pub struct AutoDeployState {
    pub settings: AutoDeploy,
    /// Consecutive failed checks.
    pub failures: u32,
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct AutoDeployCheckRecord<'a> {
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub error: Option<&'a str>,
    pub failures: u32,
    /// Unix milliseconds of the next check.
    pub next_check_at: i64,
}

const SELECT: &str = "SELECT o.name AS org_name, p.name AS project_name, c.name AS component_name,
    a.policy, a.tag, a.range_expr, a.regex, a.sort, a.interval_seconds, a.enabled,
    a.last_checked_at, a.last_tag, a.last_digest, a.last_error, a.failures, a.updated_at
    FROM auto_deploy a JOIN components c ON c.id = a.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id";

const SELECT_WITH_IMAGE: &str = "SELECT o.name AS org_name, p.name AS project_name,
    c.name AS component_name, c.image, a.policy, a.tag, a.range_expr, a.regex, a.sort,
    a.interval_seconds, a.enabled, a.last_checked_at, a.last_tag, a.last_digest, a.last_error,
    a.failures, a.updated_at
    FROM auto_deploy a JOIN components c ON c.id = a.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id";

fn from_row(row: &sqlx::any::AnyRow) -> Result<AutoDeployState> {
    let policy: String = row.try_get("policy")?;
    let sort: Option<String> = row.try_get("sort")?;
    let interval: i64 = row.try_get("interval_seconds")?;
    let failures: i64 = row.try_get("failures")?;
    Ok(AutoDeployState {
        settings: AutoDeploy {
            org: row.try_get("org_name")?,
            project: row.try_get("project_name")?,
            component: row.try_get("component_name")?,
            policy: policy
                .parse()
                .map_err(|e| Error::Io(format!("stored auto-deploy settings: {e}")))?,
            tag: row.try_get("tag")?,
            range: row.try_get("range_expr")?,
            regex: row.try_get("regex")?,
            sort: sort
                .map(|s| s.parse::<SortOrder>())
                .transpose()
                .map_err(|e| Error::Io(format!("stored auto-deploy settings: {e}")))?,
            interval_seconds: u32::try_from(interval).unwrap_or(u32::MAX),
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            last_checked_at: row.try_get("last_checked_at")?,
            last_tag: row.try_get("last_tag")?,
            last_digest: row.try_get("last_digest")?,
            last_error: row.try_get("last_error")?,
            updated_at: row.try_get("updated_at")?,
        },
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
    })
}

impl Store {
    /// Creates or replaces a component's auto-deploy settings. What earlier checks saw is
    /// forgotten and the first check is due at once.
    pub async fn put_auto_deploy(
        &self,
        target: ComponentRef<'_>,
        new: &NewAutoDeploy<'_>,
    ) -> Result<AutoDeployState> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        sqlx::query(
            "INSERT INTO auto_deploy (component_id, policy, tag, range_expr, regex, sort,
             interval_seconds, enabled, next_check_at, created_by, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)
             ON CONFLICT (component_id) DO UPDATE SET policy = excluded.policy,
             tag = excluded.tag, range_expr = excluded.range_expr, regex = excluded.regex,
             sort = excluded.sort, interval_seconds = excluded.interval_seconds,
             enabled = excluded.enabled, next_check_at = 0, failures = 0, last_error = NULL,
             last_tag = NULL, last_digest = NULL, created_by = excluded.created_by,
             updated_at = excluded.updated_at",
        )
        .bind(&component_id)
        .bind(new.policy.as_str())
        .bind(new.tag)
        .bind(new.range)
        .bind(new.regex)
        .bind(new.sort.map(SortOrder::as_str))
        .bind(i64::from(new.interval_seconds))
        .bind(i64::from(new.enabled))
        .bind(new.created_by)
        .bind(now())
        .execute(self.pool())
        .await?;
        self.get_auto_deploy(target)
            .await?
            .ok_or_else(|| Error::not_found("auto-deploy settings", target.component))
    }

    pub async fn get_auto_deploy(
        &self,
        target: ComponentRef<'_>,
    ) -> Result<Option<AutoDeployState>> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.component_id = $1"
        )))
        .bind(&component_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Removes the settings; returns them, or `None` when there were none.
    pub async fn delete_auto_deploy(
        &self,
        target: ComponentRef<'_>,
    ) -> Result<Option<AutoDeployState>> {
        let existing = self.get_auto_deploy(target).await?;
        if existing.is_some() {
            let component_id = self
                .component_id(target.org, target.project, target.component)
                .await?;
            sqlx::query("DELETE FROM auto_deploy WHERE component_id = $1")
                .bind(&component_id)
                .execute(self.pool())
                .await?;
        }
        Ok(existing)
    }

    /// Enabled settings whose next check is due at `now_ms`, the most overdue first.
    pub async fn due_auto_deploys(&self, now_ms: i64, limit: u32) -> Result<Vec<AutoDeployState>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.enabled = 1 AND a.next_check_at <= $1 ORDER BY a.next_check_at LIMIT $2"
        )))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records a check. `tag`/`digest` are kept as they were when `None`.
    pub async fn record_auto_deploy_check(
        &self,
        target: ComponentRef<'_>,
        check: &AutoDeployCheckRecord<'_>,
    ) -> Result<()> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        sqlx::query(
            "UPDATE auto_deploy SET last_checked_at = $1, last_tag = COALESCE($2, last_tag),
             last_digest = COALESCE($3, last_digest), last_error = $4, failures = $5,
             next_check_at = $6 WHERE component_id = $7",
        )
        .bind(now())
        .bind(check.tag)
        .bind(check.digest)
        .bind(check.error)
        .bind(i64::from(check.failures))
        .bind(check.next_check_at)
        .bind(&component_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn registry_row_id(&self, org: &str, registry: &str) -> Result<String> {
        sqlx::query_scalar(
            "SELECT r.id FROM registries r JOIN orgs o ON o.id = r.org_id
             WHERE o.name = $1 AND r.name = $2",
        )
        .bind(org)
        .bind(registry)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::not_found("registry", registry))
    }

    /// Creates or replaces a registry's notification secret; returns it (shown once).
    pub async fn rotate_registry_notification_secret(
        &self,
        org: &str,
        registry: &str,
        created_by: &str,
    ) -> Result<String> {
        let registry_id = self.registry_row_id(org, registry).await?;
        let mut bytes = [0u8; 20];
        getrandom::fill(&mut bytes).map_err(|e| Error::Io(format!("no system randomness: {e}")))?;
        let secret = format!("berth_rn_{}", hex::encode(bytes));
        sqlx::query(
            "INSERT INTO registry_notification_secrets (registry_id, hash, created_at, created_by)
             VALUES ($1, $2, $3, $4) ON CONFLICT (registry_id) DO UPDATE SET hash = excluded.hash,
             created_at = excluded.created_at, created_by = excluded.created_by",
        )
        .bind(&registry_id)
        .bind(hash_token(&secret))
        .bind(now())
        .bind(created_by)
        .execute(self.pool())
        .await?;
        Ok(secret)
    }

    /// Whether `secret` is the registry's notification secret (false when it has none or the
    /// registry does not exist); compared in constant time.
    pub async fn registry_notification_secret_matches(
        &self,
        org: &str,
        registry: &str,
        secret: &str,
    ) -> Result<bool> {
        let hash: Option<String> = sqlx::query_scalar(
            "SELECT s.hash FROM registry_notification_secrets s
             JOIN registries r ON r.id = s.registry_id JOIN orgs o ON o.id = r.org_id
             WHERE o.name = $1 AND r.name = $2",
        )
        .bind(org)
        .bind(registry)
        .fetch_optional(self.pool())
        .await?;
        Ok(hash.is_some_and(|h| bool::from(h.as_bytes().ct_eq(hash_token(secret).as_bytes()))))
    }

    /// Enabled auto-deploy settings of the components whose image comes from `registry`, with
    /// each component's image.
    pub async fn auto_deploys_of_registry(
        &self,
        org: &str,
        registry: &str,
    ) -> Result<Vec<(AutoDeployState, String)>> {
        let registry_id = self.registry_row_id(org, registry).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_WITH_IMAGE} WHERE a.enabled = 1 AND c.registry_id = $1"
        )))
        .bind(&registry_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((from_row(row)?, row.try_get("image")?)))
            .collect()
    }
}
