//! Configs and secrets of a component per environment.

use berth_core::api::{ConfigEntry, ConfigKind};
use sqlx::Row;

use crate::{ComponentRef, Error, Result, Store, new_id, now};

/// One decrypted entry, for building a workload. Never put these in a response or a log.
#[derive(Clone)]
pub struct ConfigValue {
    pub kind: ConfigKind,
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigValue")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn class(kind: ConfigKind) -> &'static str {
    if kind.is_file() { "file" } else { "env" }
}

fn context(component_id: &str, env_id: &str, class: &str, name: &str) -> String {
    format!("config:{component_id}:{env_id}:{class}:{name}")
}

impl Store {
    /// Sets and removes entries in one transaction (sets win over unsets of the same name).
    pub async fn change_configs(
        &self,
        target: ComponentRef<'_>,
        env: &str,
        set: &[(ConfigKind, String, String)],
        unset: &[(String, String)],
    ) -> Result<()> {
        let (component_id, env_id) = self.component_env_id(target, env).await?;
        let mut tx = self.begin().await?;
        for (class, name) in unset {
            sqlx::query(
                "DELETE FROM component_configs WHERE component_id = $1 AND environment_id = $2
                 AND class = $3 AND name = $4",
            )
            .bind(&component_id)
            .bind(&env_id)
            .bind(class)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        let at = now();
        for (kind, name, value) in set {
            let class = class(*kind);
            let stored = if kind.is_secret() {
                self.cipher()?
                    .encrypt(value, &context(&component_id, &env_id, class, name))?
            } else {
                value.as_bytes().to_vec()
            };
            sqlx::query(
                "INSERT INTO component_configs (id, component_id, environment_id, kind, class, name, value, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (component_id, environment_id, class, name)
                 DO UPDATE SET kind = excluded.kind, value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(new_id())
            .bind(&component_id)
            .bind(&env_id)
            .bind(kind.as_str())
            .bind(class)
            .bind(name)
            .bind(stored)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The entries as shown to users: secret values are `None`.
    pub async fn list_configs(
        &self,
        target: ComponentRef<'_>,
        env: &str,
    ) -> Result<Vec<ConfigEntry>> {
        let (component_id, env_id) = self.component_env_id(target, env).await?;
        let rows = sqlx::query(
            "SELECT kind, name, value, updated_at FROM component_configs
             WHERE component_id = $1 AND environment_id = $2 ORDER BY class, name",
        )
        .bind(&component_id)
        .bind(&env_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: ConfigKind =
                    r.try_get::<String, _>("kind")?.parse().map_err(Error::Io)?;
                let value: Vec<u8> = r.try_get("value")?;
                Ok(ConfigEntry {
                    kind,
                    name: r.try_get("name")?,
                    value: (!kind.is_secret())
                        .then(|| String::from_utf8_lossy(&value).into_owned()),
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The decrypted entries, for the data plane.
    pub async fn config_values(
        &self,
        target: ComponentRef<'_>,
        env: &str,
    ) -> Result<Vec<ConfigValue>> {
        let (component_id, env_id) = self.component_env_id(target, env).await?;
        let rows = sqlx::query(
            "SELECT kind, class, name, value FROM component_configs
             WHERE component_id = $1 AND environment_id = $2 ORDER BY class, name",
        )
        .bind(&component_id)
        .bind(&env_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: ConfigKind =
                    r.try_get::<String, _>("kind")?.parse().map_err(Error::Io)?;
                let class: String = r.try_get("class")?;
                let name: String = r.try_get("name")?;
                let raw: Vec<u8> = r.try_get("value")?;
                let value = if kind.is_secret() {
                    self.cipher()?
                        .decrypt(&raw, &context(&component_id, &env_id, &class, &name))?
                } else {
                    String::from_utf8_lossy(&raw).into_owned()
                };
                Ok(ConfigValue { kind, name, value })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_encrypted_and_never_listed() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::keys::MasterKey::load_or_create(dir.path()).unwrap();
        let store = crate::test_store_in(dir.path()).await.with_master_key(&key);
        store.bootstrap().await.unwrap();
        store
            .insert_project("default", "shop", "Shop", "")
            .await
            .unwrap();
        store
            .insert_registry(
                "default",
                "r",
                &crate::RegistrySettings {
                    display_name: "r".into(),
                    host: "127.0.0.1:5000".into(),
                    auth_type: berth_core::api::RegistryAuthType::Anonymous,
                    username: None,
                    password: None,
                    ca_pem: None,
                    insecure: false,
                    platform: "linux/amd64".into(),
                },
            )
            .await
            .unwrap();
        store
            .insert_component(
                "default",
                "shop",
                &crate::NewComponent {
                    name: "web",
                    display_name: "web",
                    description: "",
                    kind: berth_core::api::ComponentType::Service,
                    registry: "r",
                    image: "127.0.0.1:5000/test/web:v1",
                    port: None,
                },
            )
            .await
            .unwrap();
        let web = ComponentRef {
            org: "default",
            project: "shop",
            component: "web",
        };
        store
            .change_configs(
                web,
                "development",
                &[
                    (ConfigKind::Env, "GREETING".into(), "hi".into()),
                    (ConfigKind::SecretEnv, "TOKEN".into(), "t0p-s3cret".into()),
                    (
                        ConfigKind::SecretFile,
                        "/run/secrets/key".into(),
                        "k3y-s3cret".into(),
                    ),
                ],
                &[],
            )
            .await
            .unwrap();
        let listed = store.list_configs(web, "development").await.unwrap();
        assert_eq!(listed.len(), 3);
        // In the database (either backend) the secret values are ciphertexts.
        let raw: Vec<Vec<u8>> = sqlx::query_scalar("SELECT value FROM component_configs")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(
            raw.iter().any(|v| v == b"hi"),
            "plain values are stored as they are"
        );
        assert!(
            !raw.iter().any(|v| v
                .windows(10)
                .any(|w| w == b"k3y-s3cret" || w == b"t0p-s3cret")),
            "secret values are encrypted"
        );
        assert!(
            listed
                .iter()
                .filter(|e| e.kind.is_secret())
                .all(|e| e.value.is_none())
        );
        assert_eq!(
            listed
                .iter()
                .find(|e| e.name == "GREETING")
                .unwrap()
                .value
                .as_deref(),
            Some("hi")
        );
        let values = store.config_values(web, "development").await.unwrap();
        assert_eq!(
            values.iter().find(|v| v.name == "TOKEN").unwrap().value,
            "t0p-s3cret"
        );
        assert!(!format!("{values:?}").contains("s3cret"));
        // Environments are separate; unset removes; a kind change keeps one entry per name.
        assert!(
            store
                .list_configs(web, "production")
                .await
                .unwrap()
                .is_empty()
        );
        store
            .change_configs(
                web,
                "development",
                &[(ConfigKind::Env, "TOKEN".into(), "plain".into())],
                &[("file".into(), "/run/secrets/key".into())],
            )
            .await
            .unwrap();
        let listed = store.list_configs(web, "development").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed.iter().find(|e| e.name == "TOKEN").unwrap().kind,
            ConfigKind::Env
        );
        for file in ["berth.db", "berth.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
                assert!(
                    !bytes
                        .windows(10)
                        .any(|w| w == b"k3y-s3cret" || w == b"t0p-s3cret"),
                    "{file}"
                );
            }
        }
    }
}
