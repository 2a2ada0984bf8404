//! Facts every server of one database must agree on (table `server_meta`).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::keys::MasterKey;
use crate::{Result, Store};

const MASTER_KEY_CHECK: &str = "master_key_check";
const SERVER_ID: &str = "server_id";

/// One-way check value of a master key: SHA-256 over a fixed label and the key. It tells keys
/// apart without revealing anything usable about the 256-bit key.
fn key_check(key: &MasterKey) -> String {
    let mut h = Sha256::new();
    h.update(b"berth master key check v1\0");
    h.update(key.expose());
    hex::encode(h.finalize())
}

impl Store {
    /// Stores `value` under `key` unless a value is there, and returns the stored one.
    async fn meta_value_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_meta WHERE key = $1")
                .bind(key)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Whether `key` is the master key this database's secrets are encrypted with. The first
    /// server to ask records its key's check value; a server with another key gets `false`
    /// (it could not decrypt the stored credentials).
    pub async fn master_key_matches(&self, key: &MasterKey) -> Result<bool> {
        let mine = key_check(key);
        let stored = self.meta_value_or_insert(MASTER_KEY_CHECK, &mine).await?;
        Ok(bool::from(stored.as_bytes().ct_eq(mine.as_bytes())))
    }

    /// The server id shared by every server of this database (it labels the containers they
    /// manage, so a new leader adopts what the old one started): the stored one, or
    /// `candidate` when this is the first server.
    pub async fn shared_server_id(&self, candidate: &str) -> Result<String> {
        self.meta_value_or_insert(SERVER_ID, candidate).await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn master_key_check_refuses_another_key() {
        let store = crate::test_store().await;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let key_a = crate::keys::MasterKey::load_or_create(a.path()).unwrap();
        let key_b = crate::keys::MasterKey::load_or_create(b.path()).unwrap();
        assert!(store.master_key_matches(&key_a).await.unwrap());
        assert!(store.master_key_matches(&key_a).await.unwrap());
        assert!(!store.master_key_matches(&key_b).await.unwrap());
        assert_eq!(store.shared_server_id("first").await.unwrap(), "first");
        assert_eq!(store.shared_server_id("second").await.unwrap(), "first");
    }
}
