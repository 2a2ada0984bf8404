//! berth-store: the control plane's state — schema, embedded migrations, queries, API token
//! hashing and (later) secret encryption at rest. SQLite through sqlx by default.
//!
//! It knows nothing of HTTP or container engines: callers get domain rows and [`Error`]s
//! (`NotFound`, `Conflict`, …) and map them to their own world. Every multi-row change runs in
//! one transaction, so an error never leaves anything half-written.

mod auto_deploy;
mod ci_tokens;
mod components;
mod configs;
pub mod crypto;
mod error;
pub mod keys;
mod orgs;
mod registries;
mod sources;
pub mod tasks;
mod tokens;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use auto_deploy::{AutoDeployCheckRecord, AutoDeployState, NewAutoDeploy};
pub use ci_tokens::{CiPrincipal, IDEMPOTENCY_WINDOW_HOURS, IdempotentAnswer};
pub use components::{
    ComponentRef, DeploymentWork, NewComponent, NewRelease, Origin, ReleaseChoice,
};
pub use configs::ConfigValue;
pub use error::{Error, Result};
pub use registries::RegistrySettings;
pub use sources::SourceFile;
pub use tasks::{
    ExecutionEnd, ExecutionFilter, ExecutionRecord, NewExecution, ScheduleSettings, StoredSchedule,
};
pub use tokens::{Principal, TokenKind, generate_token, hash_token};
pub use users::NewAuditEntry;

/// File name of the SQLite database inside the data dir.
pub const DB_FILE: &str = "berth.db";

/// The store: a pool of connections to the database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Encrypts credentials at rest; `None` until [`Store::with_master_key`].
    cipher: Option<std::sync::Arc<crypto::Cipher>>,
}

/// The default organization and environments created at first start.
pub const DEFAULT_ORG: &str = "default";
pub const DEFAULT_ENVIRONMENTS: [(&str, &str); 2] =
    [("development", "Development"), ("production", "Production")];

/// What the first start created.
#[derive(Debug)]
pub struct Bootstrap {
    /// The admin bearer token; shown once, only its hash is stored.
    pub admin_token: String,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Keeps a connection that goes back to the pool only when it is outside any transaction;
/// otherwise it is closed (which makes SQLite roll back and release its locks).
///
/// SQLite rolls a transaction back by itself on some errors (SQLITE_FULL when the disk is
/// full, SQLITE_IOERR, …). sqlx does not notice: its ROLLBACK then fails, and it keeps
/// counting the connection as inside a transaction. Its next transaction would start with a
/// SAVEPOINT and end with `ROLLBACK TO`, which leaves SQLite's transaction open: the
/// connection would hold the write lock forever and every later write would fail with
/// "database is locked", even after the disk has room again.
async fn release_outside_transaction(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<bool> {
    use sqlx::Connection;
    // A round trip through the connection's worker: the rollback a dropped transaction
    // queued has run when it returns.
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/berth.db` and applies pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(DB_FILE);
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(Error::Db)?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // A local file does not go stale: checking each connection before use would cost one
        // more round trip to its worker thread per query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(release_outside_transaction(conn)))
            .connect_with(options)
            .await
            .map_err(|e| Error::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        Self::from_pool(pool).await
    }

    /// An in-memory store, for tests.
    pub async fn open_in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(Error::Db)?
            .foreign_keys(true);
        // One connection: every connection to :memory: is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(Error::Db)?;
        Self::from_pool(pool).await
    }

    async fn from_pool(pool: SqlitePool) -> Result<Self> {
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| Error::Migrate(e.to_string()))?;
        Ok(Self { pool, cipher: None })
    }

    /// Enables storing credentials, encrypted with `key`.
    pub fn with_master_key(mut self, key: &keys::MasterKey) -> Self {
        self.cipher = Some(std::sync::Arc::new(crypto::Cipher::new(key)));
        self
    }

    pub(crate) fn cipher(&self) -> Result<&crypto::Cipher> {
        self.cipher.as_deref().ok_or_else(|| {
            Error::Io("no master key loaded: cannot store or read credentials".into())
        })
    }

    /// Cheap liveness check of the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// First start: when there are no users yet, creates the `default` organization with its
    /// environments and the `admin` user with a token, all in one transaction. Later starts
    /// return `None` and change nothing.
    pub async fn bootstrap(&self) -> Result<Option<Bootstrap>> {
        let mut tx = self.pool.begin().await?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await?;
        if users > 0 {
            return Ok(None);
        }
        let org_exists: Option<String> = sqlx::query_scalar("SELECT id FROM orgs WHERE name = ?")
            .bind(DEFAULT_ORG)
            .fetch_optional(&mut *tx)
            .await?;
        if org_exists.is_none() {
            orgs::insert_org_tx(&mut tx, DEFAULT_ORG, "Default", "").await?;
        }
        let user_id =
            users::insert_user_tx(&mut tx, "admin", "Administrator", berth_core::Role::Admin)
                .await?;
        let (_, secret) =
            tokens::insert_token_tx(&mut tx, &user_id, "bootstrap", TokenKind::Personal, None)
                .await?;
        tx.commit().await?;
        Ok(Some(Bootstrap {
            admin_token: secret,
        }))
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bootstrap_runs_once() {
        let store = Store::open_in_memory().await.unwrap();
        let first = store
            .bootstrap()
            .await
            .unwrap()
            .expect("first start bootstraps");
        assert!(first.admin_token.starts_with("berth_pat_"));
        assert!(store.bootstrap().await.unwrap().is_none());
        let envs = store.list_environments(DEFAULT_ORG).await.unwrap();
        let names: Vec<_> = envs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["development", "production"]);
        let principal = store
            .authenticate(&first.admin_token)
            .await
            .unwrap()
            .expect("token authenticates");
        assert_eq!(principal.user, "admin");
        assert_eq!(principal.role, berth_core::Role::Admin);
    }

    #[tokio::test]
    async fn a_transaction_sqlite_rolled_back_by_itself_does_not_wedge_the_pool() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store.bootstrap().await.unwrap().unwrap();
        {
            // As after SQLITE_FULL: SQLite ends the transaction, sqlx still counts it.
            let mut tx = store.pool().begin().await.unwrap();
            sqlx::query("INSERT INTO orgs (id, name, display_name, created_at, updated_at) VALUES ('x', 'x', 'x', 'x', 'x')")
                .execute(&mut *tx)
                .await
                .ok();
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        }
        // Every pooled connection is outside a transaction, and a write in a transaction that
        // fails, then a write from elsewhere, both go through (no "database is locked").
        let mut held = Vec::new();
        for _ in 0..8 {
            let conn = store.pool().acquire().await.unwrap();
            assert!(!conn.is_in_transaction());
            held.push(conn);
        }
        drop(held);
        for _ in 0..8 {
            let mut tx = store.pool().begin().await.unwrap();
            sqlx::query("INSERT INTO orgs (id, name, display_name, created_at, updated_at) VALUES ('y', 'y', 'y', 'y', 'y')")
                .execute(&mut *tx)
                .await
                .unwrap();
            drop(tx); // rolled back
        }
        tokio::time::timeout(
            std::time::Duration::from_secs(3),
            store.insert_project("default", "after", "After", ""),
        )
        .await
        .expect("not waiting for a lock")
        .unwrap();
    }

    #[tokio::test]
    async fn open_file_store_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).await.unwrap();
            store.bootstrap().await.unwrap().unwrap();
            store
                .insert_project("default", "shop", "Shop", "")
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).await.unwrap();
        assert!(store.bootstrap().await.unwrap().is_none());
        assert!(
            store
                .get_project("default", "shop")
                .await
                .unwrap()
                .is_some()
        );
    }
}
