//! Encryption at rest for credentials and secrets: AES-256-GCM with the master key, a fresh
//! random 96-bit nonce per value, and associated data that binds each ciphertext to its row and
//! column (a ciphertext copied to another row does not decrypt).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::keys::MasterKey;
use crate::{Error, Result};

const NONCE_LEN: usize = 12;
/// Format marker so the scheme can change later without guessing.
const VERSION: u8 = 1;

/// Encrypts and decrypts values with the master key.
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            aead: Aes256Gcm::new(key.expose().into()),
        }
    }

    /// `version || nonce || ciphertext+tag`.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Io(format!("no system randomness: {e}")))?;
        let sealed = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Io("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn decrypt(&self, data: &[u8], context: &str) -> Result<String> {
        let damaged = || {
            Error::Io(format!(
                "a stored secret ({context}) does not decrypt: the master key changed or the database was edited"
            ))
        };
        if data.len() < 1 + NONCE_LEN || data[0] != VERSION {
            return Err(damaged());
        }
        let (nonce, sealed) = data[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| damaged())?;
        let plain = self
            .aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        let dir = tempfile::tempdir().unwrap();
        Cipher::new(&MasterKey::load_or_create(dir.path()).unwrap())
    }

    #[test]
    fn roundtrip_with_fresh_nonces() {
        let c = cipher();
        let secret = r#"{"type":"service_account","private_key":"-----BEGIN…\n"}"#;
        let a = c.encrypt(secret, "registry:1:password").unwrap();
        let b = c.encrypt(secret, "registry:1:password").unwrap();
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(
            !a.windows(7).any(|w| w == b"service"),
            "ciphertext hides the text"
        );
        assert_eq!(c.decrypt(&a, "registry:1:password").unwrap(), secret);
    }

    #[test]
    fn wrong_context_key_or_damage_fails() {
        let c = cipher();
        let mut sealed = c.encrypt("pw", "registry:1:password").unwrap();
        assert!(c.decrypt(&sealed, "registry:2:password").is_err());
        assert!(cipher().decrypt(&sealed, "registry:1:password").is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        let err = c.decrypt(&sealed, "registry:1:password").unwrap_err();
        assert!(err.to_string().contains("master key"), "{err}");
        assert!(c.decrypt(&[], "x").is_err());
    }
}
