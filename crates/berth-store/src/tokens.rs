//! Bearer tokens: generation, hashing and lookup. Only SHA-256 hashes are stored; lookup finds
//! candidates by a short public prefix and compares hashes in constant time.

use berth_core::Role;
use berth_core::api::ApiToken;
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use subtle::ConstantTimeEq;

use crate::{Error, Result, Store, new_id, now};

/// Length of the public prefix kept in clear (kind marker + 8 random characters).
const PREFIX_RANDOM_CHARS: usize = 8;

/// What a token is for; the marker makes leaked tokens recognisable to secret scanners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A user's API token: `berth_pat_…`.
    Personal,
    /// A component-bound CI token: `berth_ci_…`.
    Ci,
}

impl TokenKind {
    pub fn marker(self) -> &'static str {
        match self {
            TokenKind::Personal => "berth_pat_",
            TokenKind::Ci => "berth_ci_",
        }
    }
}

/// A fresh random token (160 bits of entropy) of the given kind.
pub fn generate_token(kind: TokenKind) -> Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io(format!("no system randomness: {e}")))?;
    Ok(format!("{}{}", kind.marker(), hex::encode(bytes)))
}

/// Hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn prefix_of(token: &str) -> Option<&str> {
    let marker_len = if token.starts_with(TokenKind::Personal.marker()) {
        TokenKind::Personal.marker().len()
    } else if token.starts_with(TokenKind::Ci.marker()) {
        TokenKind::Ci.marker().len()
    } else {
        return None;
    };
    token.get(..marker_len + PREFIX_RANDOM_CHARS)
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub token_id: String,
    pub token_name: String,
    /// When the token expires (`None`: never).
    pub expires_at: Option<String>,
}

impl Principal {
    /// `user/token` as written to the audit log.
    pub fn actor(&self) -> String {
        format!("{}/{}", self.user, self.token_name)
    }
}

pub(crate) async fn insert_token_tx(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    name: &str,
    kind: TokenKind,
    expires_at: Option<String>,
) -> Result<(String, String)> {
    let secret = generate_token(kind)?;
    let prefix = prefix_of(&secret).unwrap_or_default().to_owned();
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, prefix, hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(name)
    .bind(&prefix)
    .bind(hash_token(&secret))
    .bind(now())
    .bind(expires_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::conflict(
                "name",
                format!("the user already has a token named {name:?}"),
            )
        } else {
            Error::Db(e)
        }
    })?;
    Ok((id, secret))
}

const TOKEN_COLUMNS: &str = "t.id, u.name AS user_name, u.role, t.name, t.prefix, t.created_at,
     t.last_used_at, t.expires_at, t.revoked_at";

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<ApiToken> {
    let role: String = row.try_get("role")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        role: role.parse().map_err(Error::Io)?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Creates an API token for `user`; returns the listing row and the secret (shown once).
    pub async fn insert_token(
        &self,
        user: &str,
        name: &str,
        expires_at: Option<String>,
    ) -> Result<(ApiToken, String)> {
        let mut tx = self.begin().await?;
        let user_id: String = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("user", user))?;
        let (id, secret) =
            insert_token_tx(&mut tx, &user_id, name, TokenKind::Personal, expires_at).await?;
        tx.commit().await?;
        let token = self
            .get_token(&id)
            .await?
            .ok_or_else(|| Error::not_found("token", &id))?;
        Ok((token, secret))
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<ApiToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// All tokens, or those of one user; newest first.
    pub async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE ($1 IS NULL OR u.name = $1) ORDER BY t.created_at DESC, t.id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token. Revoking an already revoked token is a no-op.
    pub async fn revoke_token(&self, id: &str) -> Result<ApiToken> {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(self.pool())
            .await?;
        self.get_token(id)
            .await?
            .ok_or_else(|| Error::not_found("token", id))
    }

    /// The principal a bearer token stands for; `None` for unknown, revoked or expired tokens.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        let Some(prefix) = prefix_of(token) else {
            return Ok(None);
        };
        let presented = hash_token(token);
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.hash, t.expires_at, t.revoked_at, t.last_used_at,
                    u.name AS user_name, u.role
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.prefix = $1",
        )
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        let now = now();
        for row in rows {
            let hash: String = row.try_get("hash")?;
            if !bool::from(hash.as_bytes().ct_eq(presented.as_bytes())) {
                continue;
            }
            let revoked: Option<String> = row.try_get("revoked_at")?;
            let expires: Option<String> = row.try_get("expires_at")?;
            if revoked.is_some() || expires.as_ref().is_some_and(|e| *e <= now) {
                return Ok(None);
            }
            let id: String = row.try_get("id")?;
            let last_used: Option<String> = row.try_get("last_used_at")?;
            // Write at most once a minute per token: every request writing would serialize reads.
            let stale = last_used.is_none_or(|t| t.get(..16) != now.get(..16));
            if stale {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(&now)
                    .bind(&id)
                    .execute(self.pool())
                    .await?;
            }
            let role: String = row.try_get("role")?;
            return Ok(Some(Principal {
                user: row.try_get("user_name")?,
                role: role.parse().map_err(Error::Io)?,
                token_id: id,
                token_name: row.try_get("name")?,
                expires_at: expires,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = generate_token(TokenKind::Personal).unwrap();
        let b = generate_token(TokenKind::Personal).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("berth_pat_") && a.len() == 10 + 40);
        assert!(
            generate_token(TokenKind::Ci)
                .unwrap()
                .starts_with("berth_ci_")
        );
        assert_eq!(prefix_of(&a).unwrap().len(), 18);
        assert_eq!(prefix_of("Bearer x"), None);
        // Known SHA-256 vector.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn revoked_expired_and_wrong_tokens_do_not_authenticate() {
        let store = crate::test_store().await;
        let boot = store.bootstrap().await.unwrap().unwrap();
        let (tok, secret) = store.insert_token("admin", "laptop", None).await.unwrap();
        assert_eq!(tok.prefix.len(), 18);
        assert!(store.authenticate(&secret).await.unwrap().is_some());
        // Same prefix, different tail.
        let mut forged = secret.clone();
        forged.pop();
        forged.push(if secret.ends_with('0') { '1' } else { '0' });
        assert!(store.authenticate(&forged).await.unwrap().is_none());
        store.revoke_token(&tok.id).await.unwrap();
        assert!(store.authenticate(&secret).await.unwrap().is_none());
        let (_, old) = store
            .insert_token("admin", "old", Some("2000-01-01T00:00:00.000Z".into()))
            .await
            .unwrap();
        assert!(store.authenticate(&old).await.unwrap().is_none());
        assert!(
            store
                .authenticate(&boot.admin_token)
                .await
                .unwrap()
                .is_some()
        );
        let dup = store.insert_token("admin", "old", None).await.unwrap_err();
        assert!(matches!(dup, Error::Conflict { .. }), "{dup}");
        let listed = store.list_tokens(Some("admin")).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|t| !t.prefix.is_empty()));
    }
}
