//! Container registries per organization, with write-only credentials encrypted at rest.

use berth_core::Secret;
use berth_core::api::{Registry, RegistryAuthType};
use sqlx::Row;

use crate::{Error, Result, Store, new_id, now};

/// Everything about a registry except its name: what create and update write.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub display_name: String,
    pub host: String,
    pub auth_type: RegistryAuthType,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_pem: Option<String>,
    pub insecure: bool,
    pub platform: String,
}

const SELECT: &str = "SELECT r.id, o.name AS org_name, r.name, r.display_name, r.host, r.auth_type,
    r.username, r.password, r.ca_pem, r.insecure, r.platform, r.created_at, r.updated_at
    FROM registries r JOIN orgs o ON o.id = r.org_id";

fn password_context(id: &str) -> String {
    format!("registry:{id}:password")
}

fn registry_from_row(row: &sqlx::any::AnyRow) -> Result<Registry> {
    let auth: String = row.try_get("auth_type")?;
    let password: Option<Vec<u8>> = row.try_get("password")?;
    Ok(Registry {
        org: row.try_get("org_name")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        host: row.try_get("host")?,
        auth_type: auth.parse().map_err(Error::Io)?,
        username: row.try_get("username")?,
        password_set: password.is_some(),
        ca_certificate: row.try_get("ca_pem")?,
        insecure: row.try_get::<i64, _>("insecure")? != 0,
        platform: row.try_get("platform")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The settings of a registry selected with `prefix` before each column name (`id`,
    /// `display_name`, `host`, `auth_type`, `username`, `password`, `ca_pem`, `insecure`,
    /// `platform`), its password decrypted: for queries that join a registry to something else.
    pub(crate) fn settings_from_row(
        &self,
        row: &sqlx::any::AnyRow,
        prefix: &str,
    ) -> Result<RegistrySettings> {
        let col = |name: &str| format!("{prefix}{name}");
        let id: String = row.try_get(col("id").as_str())?;
        let auth: String = row.try_get(col("auth_type").as_str())?;
        let sealed: Option<Vec<u8>> = row.try_get(col("password").as_str())?;
        let password = sealed
            .map(|s| self.cipher()?.decrypt(&s, &password_context(&id)))
            .transpose()?
            .map(Secret::new);
        Ok(RegistrySettings {
            display_name: row.try_get(col("display_name").as_str())?,
            host: row.try_get(col("host").as_str())?,
            auth_type: auth.parse().map_err(Error::Io)?,
            username: row.try_get(col("username").as_str())?,
            password,
            ca_pem: row.try_get(col("ca_pem").as_str())?,
            insecure: row.try_get::<i64, _>(col("insecure").as_str())? != 0,
            platform: row.try_get(col("platform").as_str())?,
        })
    }

    fn seal(&self, id: &str, password: Option<&Secret>) -> Result<Option<Vec<u8>>> {
        password
            .map(|p| self.cipher()?.encrypt(p.expose(), &password_context(id)))
            .transpose()
    }

    pub async fn insert_registry(
        &self,
        org: &str,
        name: &str,
        s: &RegistrySettings,
    ) -> Result<Registry> {
        let org_id = self.org_id(org).await?;
        let id = new_id();
        let sealed = self.seal(&id, s.password.as_ref())?;
        let at = now();
        sqlx::query(
            "INSERT INTO registries (id, org_id, name, display_name, host, auth_type, username,
             password, ca_pem, insecure, platform, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(&org_id)
        .bind(name)
        .bind(&s.display_name)
        .bind(&s.host)
        .bind(s.auth_type.as_str())
        .bind(&s.username)
        .bind(sealed)
        .bind(&s.ca_pem)
        .bind(i64::from(s.insecure))
        .bind(&s.platform)
        .bind(&at)
        .bind(&at)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if crate::error::is_unique_violation(&e) {
                Error::conflict(
                    "name",
                    format!("a registry named {name:?} already exists in organization {org:?}"),
                )
            } else {
                Error::Db(e)
            }
        })?;
        self.get_registry(org, name)
            .await?
            .ok_or_else(|| Error::not_found("registry", name))
    }

    /// Replaces the settings of a registry (the caller merges partial updates first).
    pub async fn update_registry(
        &self,
        org: &str,
        name: &str,
        s: &RegistrySettings,
    ) -> Result<Registry> {
        let org_id = self.org_id(org).await?;
        let id: String =
            sqlx::query_scalar("SELECT id FROM registries WHERE org_id = $1 AND name = $2")
                .bind(&org_id)
                .bind(name)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| Error::not_found("registry", name))?;
        let sealed = self.seal(&id, s.password.as_ref())?;
        sqlx::query(
            "UPDATE registries SET display_name = $1, host = $2, auth_type = $3, username = $4,
             password = $5, ca_pem = $6, insecure = $7, platform = $8, updated_at = $9 WHERE id = $10",
        )
        .bind(&s.display_name)
        .bind(&s.host)
        .bind(s.auth_type.as_str())
        .bind(&s.username)
        .bind(sealed)
        .bind(&s.ca_pem)
        .bind(i64::from(s.insecure))
        .bind(&s.platform)
        .bind(now())
        .bind(&id)
        .execute(self.pool())
        .await?;
        self.get_registry(org, name)
            .await?
            .ok_or_else(|| Error::not_found("registry", name))
    }

    pub async fn get_registry(&self, org: &str, name: &str) -> Result<Option<Registry>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE o.name = $1 AND r.name = $2"
        )))
        .bind(org)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(registry_from_row).transpose()
    }

    /// A registry with its decrypted settings, for talking to it. Never put these in a response.
    pub async fn registry_settings(
        &self,
        org: &str,
        name: &str,
    ) -> Result<Option<(Registry, RegistrySettings)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE o.name = $1 AND r.name = $2"
        )))
        .bind(org)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let registry = registry_from_row(&row)?;
        let id: String = row.try_get("id")?;
        let sealed: Option<Vec<u8>> = row.try_get("password")?;
        let password = sealed
            .map(|s| self.cipher()?.decrypt(&s, &password_context(&id)))
            .transpose()?
            .map(Secret::new);
        let settings = RegistrySettings {
            display_name: registry.display_name.clone(),
            host: registry.host.clone(),
            auth_type: registry.auth_type,
            username: registry.username.clone(),
            password,
            ca_pem: registry.ca_certificate.clone(),
            insecure: registry.insecure,
            platform: registry.platform.clone(),
        };
        Ok(Some((registry, settings)))
    }

    pub async fn list_registries(&self, org: &str) -> Result<Vec<Registry>> {
        self.org_id(org).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE o.name = $1 ORDER BY r.name"
        )))
        .bind(org)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(registry_from_row).collect()
    }

    /// Deletes a registry; refused (conflict, naming them) while components use it.
    pub async fn delete_registry(&self, org: &str, name: &str) -> Result<()> {
        let org_id = self.org_id(org).await?;
        let users = self.components_using_registry(org, name).await?;
        if !users.is_empty() {
            return Err(Error::conflict(
                "name",
                format!(
                    "registry {name:?} is used by components {}; delete or move them first",
                    users.join(", ")
                ),
            ));
        }
        let done = sqlx::query("DELETE FROM registries WHERE org_id = $1 AND name = $2")
            .bind(&org_id)
            .bind(name)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("registry", name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn settings(password: Option<&str>) -> RegistrySettings {
        RegistrySettings {
            display_name: "Local".into(),
            host: "127.0.0.1:5000".into(),
            auth_type: RegistryAuthType::Basic,
            username: Some("berth".into()),
            password: password.map(Secret::new),
            ca_pem: None,
            insecure: false,
            platform: "linux/amd64".into(),
        }
    }

    #[tokio::test]
    async fn credentials_are_encrypted_and_write_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(dir.path()).unwrap();
        let store = crate::test_store_in(dir.path()).await.with_master_key(&key);
        store.bootstrap().await.unwrap();
        let r = store
            .insert_registry("default", "local", &settings(Some("s3cr:et")))
            .await
            .unwrap();
        assert!(r.password_set);
        let raw: Vec<u8> = sqlx::query_scalar("SELECT password FROM registries")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(!raw.windows(6).any(|w| w == b"s3cr:e"), "not in clear text");
        let (_, s) = store
            .registry_settings("default", "local")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.password.unwrap().expose(), "s3cr:et");
        assert!(matches!(
            store
                .insert_registry("default", "local", &settings(None))
                .await,
            Err(Error::Conflict { .. })
        ));
        let r = store
            .update_registry("default", "local", &settings(None))
            .await
            .unwrap();
        assert!(!r.password_set);
        assert_eq!(store.list_registries("default").await.unwrap().len(), 1);
        store.delete_registry("default", "local").await.unwrap();
        assert!(
            store
                .get_registry("default", "local")
                .await
                .unwrap()
                .is_none()
        );

        // Without the master key, storing a password is refused rather than written in clear.
        let keyless = Store {
            cipher: None,
            ..store.clone()
        };
        assert!(
            keyless
                .insert_registry("default", "x", &settings(Some("p")))
                .await
                .is_err()
        );
    }
}
