//! CI tokens: bound to one component, shown once, only their SHA-256 hash stored. Lookup works
//! like [`Store::authenticate`]: candidates by public prefix, hashes compared in constant time.
//! Tokens that authenticated are kept in memory for a while (see [`CiTokenCache`]), so the deploy
//! webhook's usual call reads no row to authenticate.
//! Also the stored answers of the deploy webhook per idempotency key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_core::api::CiToken;
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::tokens::{TokenKind, generate_token, hash_token, prefix_of};
use crate::{Backend, ComponentRef, Error, Result, Store, new_id, now};

/// How long a CI token read from SQLite is trusted before it is read again. The only server of
/// a SQLite database revokes and deletes through this store, which drops its cached tokens at
/// once; re-reading is only a safety net for a change made behind its back.
pub const CI_TOKEN_RECHECK_SQLITE: Duration = Duration::from_secs(30);

/// How long a CI token read from PostgreSQL is trusted before it is read again: another server
/// of the database may revoke it, and its revocation must bite here within this bound.
pub const CI_TOKEN_RECHECK_POSTGRES: Duration = Duration::from_secs(1);

/// More cached tokens than this (there are never so many in use) and the cache starts over.
const CI_TOKEN_CACHE_MAX: usize = 10_000;

/// How long an idempotency key's answer is replayed.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

/// The component a CI token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiPrincipal {
    pub token_id: String,
    pub token_name: String,
    pub org: String,
    pub project: String,
    pub component: String,
}

impl CiPrincipal {
    /// `ci:<component>/<token name>`, as written to the audit log and the deployment history.
    pub fn actor(&self) -> String {
        format!("ci:{}/{}", self.component, self.token_name)
    }

    pub fn component_ref(&self) -> ComponentRef<'_> {
        ComponentRef {
            org: &self.org,
            project: &self.project,
            component: &self.component,
        }
    }
}

/// A stored webhook answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// Hex SHA-256 of what was asked, to refuse a key reused for another request.
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

const CI_TOKEN_SELECT: &str = "SELECT t.id, o.name AS org_name, p.name AS project_name,
    c.name AS component_name, t.name, t.prefix, t.created_at, t.created_by, t.last_used_at,
    t.expires_at, t.revoked_at
    FROM ci_tokens t JOIN components c ON c.id = t.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id";

fn ci_token_from_row(row: &sqlx::any::AnyRow) -> Result<CiToken> {
    Ok(CiToken {
        id: row.try_get("id")?,
        org: row.try_get("org_name")?,
        project: row.try_get("project_name")?,
        component: row.try_get("component_name")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// CI tokens that authenticated recently, by the SHA-256 of the secret (never the secret).
///
/// A hit still checks the expiry on every call; revoking a token or deleting a component through
/// this store drops every entry, and an entry older than the recheck interval of the backend is
/// read again from the database. `last_used_at` is written at most once a minute per token, as
/// without the cache.
#[derive(Debug)]
pub(crate) struct CiTokenCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// How long an entry is trusted before the token is read again.
    recheck: Duration,
    entries: HashMap<String, CachedCiToken>,
    /// Bumped by every invalidation: a database read that began before one must not put what it
    /// read into the cache (it may be the row just revoked).
    generation: u64,
}

#[derive(Debug, Clone)]
struct CachedCiToken {
    principal: CiPrincipal,
    expires_at: Option<String>,
    read_at: Instant,
    /// The minute (`YYYY-MM-DDTHH:MM`) of the last `last_used_at` written or read.
    last_used_minute: Option<String>,
}

/// What the cache says about a presented token.
enum CacheAnswer {
    /// Valid; `true` when this call should write `last_used_at` (first call of a minute).
    Valid(CiPrincipal, bool),
    Expired,
    /// Not cached, or due for a read from the database.
    Unknown,
}

fn minute_of(at: &str) -> Option<String> {
    at.get(..16).map(str::to_owned)
}

impl CiTokenCache {
    pub(crate) fn new(backend: Backend) -> Self {
        let recheck = match backend {
            Backend::Sqlite => CI_TOKEN_RECHECK_SQLITE,
            Backend::Postgres => CI_TOKEN_RECHECK_POSTGRES,
        };
        Self {
            inner: Mutex::new(CacheInner {
                recheck,
                ..CacheInner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn look_up(&self, hash: &str, now: &str) -> CacheAnswer {
        let mut inner = self.lock();
        let recheck = inner.recheck;
        let Some(entry) = inner.entries.get_mut(hash) else {
            return CacheAnswer::Unknown;
        };
        if entry.expires_at.as_deref().is_some_and(|e| e <= now) {
            inner.entries.remove(hash);
            return CacheAnswer::Expired;
        }
        if entry.read_at.elapsed() >= recheck {
            return CacheAnswer::Unknown;
        }
        let minute = minute_of(now);
        // Claim the write under the lock: concurrent calls at a minute's start write once.
        let write = entry.last_used_minute != minute;
        if write {
            entry.last_used_minute = minute;
        }
        CacheAnswer::Valid(entry.principal.clone(), write)
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches what a database read that began at `generation` found (unless an invalidation
    /// came in between).
    fn put(&self, hash: String, entry: CachedCiToken, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= CI_TOKEN_CACHE_MAX {
            inner.entries.clear();
        }
        inner.entries.insert(hash, entry);
    }

    fn forget(&self, hash: &str) {
        self.lock().entries.remove(hash);
    }

    /// Drops every cached token (a token was revoked or a component deleted).
    pub(crate) fn invalidate(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation += 1;
    }
}

fn window_start() -> String {
    (chrono::Utc::now() - chrono::Duration::hours(IDEMPOTENCY_WINDOW_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Creates a CI token for a component; returns the listing row and the secret (shown once).
    pub async fn insert_ci_token(
        &self,
        target: ComponentRef<'_>,
        name: &str,
        created_by: &str,
        expires_at: Option<String>,
    ) -> Result<(CiToken, String)> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let secret = generate_token(TokenKind::Ci)?;
        let prefix = prefix_of(&secret).unwrap_or_default().to_owned();
        let id = new_id();
        sqlx::query(
            "INSERT INTO ci_tokens (id, component_id, name, prefix, hash, created_at, created_by,
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&component_id)
        .bind(name)
        .bind(&prefix)
        .bind(hash_token(&secret))
        .bind(now())
        .bind(created_by)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if crate::error::is_unique_violation(&e) {
                Error::conflict(
                    "name",
                    format!(
                        "component {:?} already has a CI token named {name:?} (revoked ones keep their name)",
                        target.component
                    ),
                )
            } else {
                Error::Db(e)
            }
        })?;
        let token = self
            .get_ci_token(target, &id)
            .await?
            .ok_or_else(|| Error::not_found("CI token", &id))?;
        Ok((token, secret))
    }

    /// The CI tokens of a component, newest first.
    pub async fn list_ci_tokens(&self, target: ComponentRef<'_>) -> Result<Vec<CiToken>> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CI_TOKEN_SELECT} WHERE t.component_id = $1 ORDER BY t.created_at DESC, t.id DESC"
        )))
        .bind(&component_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(ci_token_from_row).collect()
    }

    /// A CI token of a component by id or name.
    pub async fn get_ci_token(
        &self,
        target: ComponentRef<'_>,
        id_or_name: &str,
    ) -> Result<Option<CiToken>> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CI_TOKEN_SELECT} WHERE t.component_id = $1 AND (t.id = $2 OR t.name = $2)
             ORDER BY t.id = $2 DESC LIMIT 1"
        )))
        .bind(&component_id)
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(ci_token_from_row).transpose()
    }

    /// Revokes a CI token (by id or name). Revoking a revoked token is a no-op.
    pub async fn revoke_ci_token(
        &self,
        target: ComponentRef<'_>,
        id_or_name: &str,
    ) -> Result<CiToken> {
        let token = self
            .get_ci_token(target, id_or_name)
            .await?
            .ok_or_else(|| Error::not_found("CI token", id_or_name))?;
        sqlx::query("UPDATE ci_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(&token.id)
            .execute(self.pool())
            .await?;
        // Its next call is refused: no cached copy may answer for it.
        self.ci_tokens.invalidate();
        self.get_ci_token(target, &token.id)
            .await?
            .ok_or_else(|| Error::not_found("CI token", id_or_name))
    }

    /// How long a cached CI token is trusted before it is read again (see the constants).
    pub fn ci_token_recheck(&self) -> Duration {
        self.ci_tokens.lock().recheck
    }

    #[cfg(test)]
    fn set_ci_token_recheck(&self, recheck: Duration) {
        self.ci_tokens.lock().recheck = recheck;
    }

    /// The component a CI token stands for; `None` for unknown, revoked or expired tokens (and
    /// for any token that is not a CI token).
    ///
    /// A token that authenticated within [`Store::ci_token_recheck`] is answered from memory
    /// (its expiry still checked on each call); revocations through this store take effect at
    /// once, those by another server of a PostgreSQL database within the recheck interval.
    pub async fn authenticate_ci(&self, token: &str) -> Result<Option<CiPrincipal>> {
        if !token.starts_with(TokenKind::Ci.marker()) {
            return Ok(None);
        }
        let Some(prefix) = prefix_of(token) else {
            return Ok(None);
        };
        let presented = hash_token(token);
        let now = now();
        // Keyed by the SHA-256 of the secret: a lookup compares digests an attacker cannot
        // steer, so it leaks nothing a timing probe could use.
        match self.ci_tokens.look_up(&presented, &now) {
            CacheAnswer::Valid(principal, write_last_used) => {
                if write_last_used {
                    self.touch_ci_token(&principal.token_id, &now).await?;
                }
                return Ok(Some(principal));
            }
            CacheAnswer::Expired => return Ok(None),
            CacheAnswer::Unknown => {}
        }
        let generation = self.ci_tokens.generation();
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.hash, t.expires_at, t.revoked_at, t.last_used_at,
                    o.name AS org_name, p.name AS project_name, c.name AS component_name
             FROM ci_tokens t JOIN components c ON c.id = t.component_id
             JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
             WHERE t.prefix = $1",
        )
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let hash: String = row.try_get("hash")?;
            if !bool::from(hash.as_bytes().ct_eq(presented.as_bytes())) {
                continue;
            }
            let revoked: Option<String> = row.try_get("revoked_at")?;
            let expires: Option<String> = row.try_get("expires_at")?;
            if revoked.is_some() || expires.as_deref().is_some_and(|e| e <= now.as_str()) {
                self.ci_tokens.forget(&presented);
                return Ok(None);
            }
            let id: String = row.try_get("id")?;
            let last_used: Option<String> = row.try_get("last_used_at")?;
            // At most one write a minute per token, as for API tokens.
            let mut last_used_minute = last_used.as_deref().and_then(minute_of);
            if last_used_minute != minute_of(&now) {
                self.touch_ci_token(&id, &now).await?;
                last_used_minute = minute_of(&now);
            }
            let principal = CiPrincipal {
                token_id: id,
                token_name: row.try_get("name")?,
                org: row.try_get("org_name")?,
                project: row.try_get("project_name")?,
                component: row.try_get("component_name")?,
            };
            self.ci_tokens.put(
                presented,
                CachedCiToken {
                    principal: principal.clone(),
                    expires_at: expires,
                    read_at: Instant::now(),
                    last_used_minute,
                },
                generation,
            );
            return Ok(Some(principal));
        }
        self.ci_tokens.forget(&presented);
        Ok(None)
    }

    async fn touch_ci_token(&self, id: &str, now: &str) -> Result<()> {
        sqlx::query("UPDATE ci_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The answer stored for `(token, key)` within the last 24 hours.
    pub async fn get_ci_idempotent_answer(
        &self,
        token_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentAnswer>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM ci_idempotency
             WHERE token_id = $1 AND key = $2 AND created_at > $3",
        )
        .bind(token_id)
        .bind(key)
        .bind(window_start())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            let status: i64 = r.try_get("status")?;
            Ok(IdempotentAnswer {
                request_hash: r.try_get("request_hash")?,
                status: u16::try_from(status).unwrap_or(500),
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    /// Stores the answer for `(token, key)` (an older one past the window is replaced; a newer
    /// one, written by a concurrent request, wins). Answers past the window are dropped.
    pub async fn put_ci_idempotent_answer(
        &self,
        token_id: &str,
        key: &str,
        answer: &IdempotentAnswer,
    ) -> Result<()> {
        let start = window_start();
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM ci_idempotency WHERE created_at <= $1")
            .bind(&start)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO ci_idempotency (token_id, key, request_hash, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_id, key) DO NOTHING",
        )
        .bind(token_id)
        .bind(key)
        .bind(&answer.request_hash)
        .bind(i64::from(answer.status))
        .bind(&answer.body)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[cfg(test)]
    async fn set_ci_token_expiry(&self, id: &str, expires_at: &str) -> Result<()> {
        sqlx::query("UPDATE ci_tokens SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(self.pool())
            .await?;
        self.ci_tokens.invalidate();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewComponent, RegistrySettings};
    use berth_core::api::{ComponentType, RegistryAuthType};

    async fn store_with(components: &[&str]) -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::keys::MasterKey::load_or_create(dir.path()).unwrap();
        let store = crate::test_store().await.with_master_key(&key);
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
        for name in components {
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
        (store, dir)
    }

    fn at(component: &str) -> ComponentRef<'_> {
        ComponentRef {
            org: "default",
            project: "shop",
            component,
        }
    }

    #[tokio::test]
    async fn ci_tokens_hash_bind_revoke_and_expire() {
        let (store, _dir) = store_with(&["web", "api"]).await;
        let (tok, secret) = store
            .insert_ci_token(at("web"), "github", "admin/bootstrap", None)
            .await
            .unwrap();
        assert!(secret.starts_with("berth_ci_") && secret.len() == 9 + 40);
        assert_eq!(tok.prefix, &secret[..17]);
        assert_eq!(
            (tok.component.as_str(), tok.name.as_str()),
            ("web", "github")
        );
        assert_eq!(tok.created_by, "admin/bootstrap");
        // Only the hash is stored: the secret appears in no column.
        let stored: Vec<String> = sqlx::query_scalar("SELECT id || prefix || hash FROM ci_tokens")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(stored.iter().all(|s| !s.contains(&secret)));
        assert!(stored[0].contains(&hash_token(&secret)));

        let p = store.authenticate_ci(&secret).await.unwrap().unwrap();
        assert_eq!(p.component, "web");
        assert_eq!(p.actor(), "ci:web/github");
        let listed = store.list_ci_tokens(at("web")).await.unwrap();
        assert!(listed[0].last_used_at.is_some());
        assert!(store.list_ci_tokens(at("api")).await.unwrap().is_empty());

        // Same prefix, another tail; a user token; the CI token on the user API.
        let mut forged = secret.clone();
        forged.pop();
        forged.push(if secret.ends_with('0') { '1' } else { '0' });
        assert!(store.authenticate_ci(&forged).await.unwrap().is_none());
        assert!(store.authenticate_ci("garbage").await.unwrap().is_none());
        let (_, pat) = store.insert_token("admin", "laptop", None).await.unwrap();
        assert!(store.authenticate_ci(&pat).await.unwrap().is_none());
        assert!(store.authenticate(&secret).await.unwrap().is_none());

        // Names are unique per component, not globally.
        let dup = store
            .insert_ci_token(at("web"), "github", "admin/bootstrap", None)
            .await
            .unwrap_err();
        assert!(matches!(dup, Error::Conflict { .. }), "{dup}");
        let (_, api_secret) = store
            .insert_ci_token(at("api"), "github", "admin/bootstrap", None)
            .await
            .unwrap();
        assert_eq!(
            store
                .authenticate_ci(&api_secret)
                .await
                .unwrap()
                .unwrap()
                .component,
            "api"
        );

        // Expired (in the past) and future expiry.
        let (old, old_secret) = store
            .insert_ci_token(
                at("web"),
                "old",
                "admin/bootstrap",
                Some("2999-01-01T00:00:00.000Z".into()),
            )
            .await
            .unwrap();
        assert!(store.authenticate_ci(&old_secret).await.unwrap().is_some());
        store
            .set_ci_token_expiry(&old.id, "2000-01-01T00:00:00.000Z")
            .await
            .unwrap();
        assert!(store.authenticate_ci(&old_secret).await.unwrap().is_none());

        // Revoke by name; again is a no-op; another component's token is not found.
        let revoked = store.revoke_ci_token(at("web"), "github").await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(store.authenticate_ci(&secret).await.unwrap().is_none());
        let again = store.revoke_ci_token(at("web"), &tok.id).await.unwrap();
        assert_eq!(again.revoked_at, revoked.revoked_at);
        assert!(matches!(
            store.revoke_ci_token(at("api"), &tok.id).await,
            Err(Error::NotFound { .. })
        ));

        // Deleting the component deletes its tokens.
        store
            .delete_component("default", "shop", "api")
            .await
            .unwrap();
        assert!(store.authenticate_ci(&api_secret).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cached_tokens_expire_on_time_and_see_changes_elsewhere_within_the_recheck() {
        let (store, _dir) = store_with(&["web"]).await;
        assert_eq!(
            store.ci_token_recheck(),
            match store.backend() {
                Backend::Sqlite => CI_TOKEN_RECHECK_SQLITE,
                Backend::Postgres => CI_TOKEN_RECHECK_POSTGRES,
            }
        );
        // Expiry is checked on every call, also when the token is answered from memory.
        let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (_, short) = store
            .insert_ci_token(at("web"), "short", "admin/bootstrap", Some(soon))
            .await
            .unwrap();
        assert!(store.authenticate_ci(&short).await.unwrap().is_some());
        assert!(store.authenticate_ci(&short).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(store.authenticate_ci(&short).await.unwrap().is_none());

        // A revocation behind this store's back (another server of the database) is seen
        // once the cached entry is due for a read: stale for at most the recheck interval.
        store.set_ci_token_recheck(Duration::from_millis(300));
        let (tok, secret) = store
            .insert_ci_token(at("web"), "github", "admin/bootstrap", None)
            .await
            .unwrap();
        assert!(store.authenticate_ci(&secret).await.unwrap().is_some());
        sqlx::query("UPDATE ci_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(now())
            .bind(&tok.id)
            .execute(store.pool())
            .await
            .unwrap();
        let revoked_at = Instant::now();
        while store.authenticate_ci(&secret).await.unwrap().is_some() {
            // (The interval, plus slack for a loaded machine between the check and here.)
            assert!(
                revoked_at.elapsed() < Duration::from_millis(300 + 250),
                "a revoked token still authenticated after the recheck interval"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // And it stays refused (no stale entry came back).
        assert!(store.authenticate_ci(&secret).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn idempotent_answers_are_kept_per_token_and_key() {
        let (store, _dir) = store_with(&["web"]).await;
        let (tok, _) = store
            .insert_ci_token(at("web"), "github", "admin/bootstrap", None)
            .await
            .unwrap();
        assert!(
            store
                .get_ci_idempotent_answer(&tok.id, "k1")
                .await
                .unwrap()
                .is_none()
        );
        let first = IdempotentAnswer {
            request_hash: "h1".into(),
            status: 202,
            body: "{\"deploymentId\":\"d1\"}".into(),
        };
        store
            .put_ci_idempotent_answer(&tok.id, "k1", &first)
            .await
            .unwrap();
        // A concurrent second writer does not replace the first answer.
        let second = IdempotentAnswer {
            status: 200,
            ..first.clone()
        };
        store
            .put_ci_idempotent_answer(&tok.id, "k1", &second)
            .await
            .unwrap();
        assert_eq!(
            store.get_ci_idempotent_answer(&tok.id, "k1").await.unwrap(),
            Some(first)
        );
        // Past the window the answer is gone.
        sqlx::query("UPDATE ci_idempotency SET created_at = '2000-01-01T00:00:00.000Z'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(
            store
                .get_ci_idempotent_answer(&tok.id, "k1")
                .await
                .unwrap()
                .is_none()
        );
    }
}
