//! The master key (encrypts registry credentials and secrets at rest) and other owner-only
//! files in the data dir.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{Error, Result};

/// File name of the master key inside the data dir.
pub const MASTER_KEY_FILE: &str = "master.key";

/// 32 random bytes. `Debug` never prints them.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads `<data_dir>/master.key`, or creates it (mode 0600) with fresh random bytes at
    /// first start. A key file with the wrong size or group/other permissions is an error:
    /// better to stop than to run with a damaged or exposed key.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(MASTER_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mode = fs::metadata(&path)
                    .map_err(|e| io_err(&path, "reading the metadata of", e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(Error::Io(format!(
                        "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    )));
                }
                let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
                let bytes = bytes.ok_or_else(|| {
                    Error::Io(format!(
                        "{} does not hold a 32-byte hex key; restore it from a backup",
                        path.display()
                    ))
                })?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| Error::Io(format!("no system randomness: {e}")))?;
                write_owner_only(&path, &format!("{}\n", hex::encode(key)))?;
                Ok(Self(key))
            }
            Err(e) => Err(io_err(&path, "reading", e)),
        }
    }
}

/// File name of the server id inside the data dir.
pub const SERVER_ID_FILE: &str = "server-id";

/// The id of the server that owns this data dir: 16 random bytes in hex, created at first
/// start. The engine driver labels containers with it, so servers sharing an engine (a
/// developer's and a test's, or two tests) never take each other's containers for orphans.
pub fn load_or_create_server_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(SERVER_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(id.to_owned())
            } else {
                Err(Error::Io(format!(
                    "{} does not hold a 32-character hex id; delete it to get a new one \
                     (containers labelled with the old id are then no longer adopted)",
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes)
                .map_err(|e| Error::Io(format!("no system randomness: {e}")))?;
            let id = hex::encode(bytes);
            write_owner_only(&path, &format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(io_err(&path, "reading", e)),
    }
}

/// Creates `path` with mode 0600 and writes `contents`; fails if it already exists.
pub fn write_owner_only(path: &Path, contents: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err(path, "creating", e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, "writing", e))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io(format!("{what} {} failed: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = MasterKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert_eq!(format!("{first:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn server_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_server_id(dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create_server_id(dir.path()).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create_server_id(other.path()).unwrap(), first);
        fs::write(dir.path().join(SERVER_ID_FILE), "nope").unwrap();
        assert!(load_or_create_server_id(dir.path()).is_err());
    }

    #[test]
    fn refuses_exposed_or_damaged_key() {
        let dir = tempfile::tempdir().unwrap();
        MasterKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "abcd").unwrap();
        let err = MasterKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("32-byte"), "{err}");
    }
}
