//! Files mounted into containers: written below `<data root>/<container name>/` on the host and
//! bind-mounted read-only. Secret files go to a `0700` directory as `0600` files and are never
//! logged.
//!
//! The writes are small and synchronous: a spec's files are configuration, not data.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use tracing::debug;

use crate::{Error, FileMount, Result};

/// Checks that every mount has a usable, distinct absolute path inside the container.
pub(crate) fn validate(files: &[FileMount]) -> Result<()> {
    let mut seen = HashSet::new();
    for f in files {
        let p = Path::new(&f.path);
        let ok = p.is_absolute()
            && p.file_name().is_some()
            && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            // `:` and `,` would break the engine's bind syntax.
            && !f.path.contains([':', ',', '\0']);
        if !ok {
            return Err(Error::Invalid(format!(
                "file mount path {:?} must be an absolute file path without `..`, `:` or `,`",
                f.path
            )));
        }
        if !seen.insert(p.components().collect::<Vec<_>>()) {
            return Err(Error::Invalid(format!(
                "file mount path {:?} is used twice",
                f.path
            )));
        }
    }
    Ok(())
}

/// Writes `files` for container `name` (replacing what an earlier container of that name left)
/// and returns the engine binds (`host:container:ro`).
pub(crate) fn write(root: &Path, name: &str, files: &[FileMount]) -> Result<Vec<String>> {
    validate(files)?;
    remove(root, name);
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::Invalid(format!("{what} {}: {e}", p.display()))
    };
    fs::create_dir_all(root).map_err(|e| io("creating the data root", root, e))?;
    let dir = root.join(name);
    DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io("creating", &dir, e))?;
    let mut binds = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let (sub, dir_mode, file_mode) = if f.secret {
            ("secrets", 0o700, 0o600)
        } else {
            ("files", 0o755, 0o644)
        };
        let sub = dir.join(sub);
        if !sub.exists() {
            DirBuilder::new()
                .mode(dir_mode)
                .create(&sub)
                .map_err(|e| io("creating", &sub, e))?;
        }
        let base = Path::new(&f.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let host = sub.join(format!("{i}-{base}"));
        // create_new + mode: the file never exists with wider permissions.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file_mode)
            .open(&host)
            .map_err(|e| io("writing", &host, e))?;
        file.write_all(&f.content)
            .map_err(|e| io("writing", &host, e))?;
        // The umask may have narrowed the mode: make readable files really readable.
        fs::set_permissions(&host, fs::Permissions::from_mode(file_mode))
            .map_err(|e| io("chmod", &host, e))?;
        binds.push(format!("{}:{}:ro", host.display(), f.path));
    }
    debug!(container = %name, files = files.len(), "file mounts written");
    Ok(binds)
}

/// Removes what [`write`] wrote for container `name`; missing is fine.
pub(crate) fn remove(root: &Path, name: &str) {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return;
    }
    let dir = root.join(name);
    if let Err(e) = fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        debug!(dir = %dir.display(), error = %e, "could not remove file mounts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(path: &str, secret: bool) -> FileMount {
        FileMount {
            path: path.into(),
            content: b"x=1\n".to_vec(),
            secret,
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in ["relative", "/", "/a/../b", "/a:b", "/a,b"] {
            assert!(validate(&[mount(bad, false)]).is_err(), "{bad}");
        }
        assert!(validate(&[mount("/a/b", false), mount("/a//b", true)]).is_err());
        assert!(validate(&[mount("/etc/app.conf", false), mount("/run/s/key", true)]).is_ok());
    }

    #[test]
    fn writes_files_and_secrets_with_modes() {
        let root = std::env::temp_dir().join(format!("berth-mounts-{}", std::process::id()));
        let binds = write(
            &root,
            "c1",
            &[
                mount("/etc/app.conf", false),
                mount("/run/secrets/key", true),
            ],
        )
        .unwrap();
        assert_eq!(binds.len(), 2);
        assert!(binds[0].ends_with(":/etc/app.conf:ro"), "{binds:?}");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("c1/secrets")), 0o700);
        assert_eq!(mode(&root.join("c1/secrets/1-key")), 0o600);
        assert_eq!(mode(&root.join("c1/files/0-app.conf")), 0o644);
        assert_eq!(
            fs::read(root.join("c1/files/0-app.conf")).unwrap(),
            b"x=1\n"
        );
        // Rewriting replaces, removing cleans up.
        write(&root, "c1", &[mount("/etc/app.conf", false)]).unwrap();
        assert!(!root.join("c1/secrets").exists());
        remove(&root, "c1");
        assert!(!root.join("c1").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
