//! Rules for configs and secrets: environment variable names and mount paths.

use crate::NameError;

/// Largest environment variable value.
pub const ENV_VALUE_MAX: usize = 32 * 1024;
/// Largest config or secret file.
pub const FILE_MAX: usize = 1024 * 1024;

/// `^[A-Za-z_][A-Za-z0-9_]*$`, at most 255 characters (what shells and engines accept).
pub fn validate_env_name(field: &str, name: &str) -> Result<(), NameError> {
    let rule = "must match ^[A-Za-z_][A-Za-z0-9_]*$ (letters, digits and '_', not starting with a digit), at most 255 characters";
    let mut chars = name.chars();
    let ok = name.len() <= 255
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(NameError::new(field, format!("{name:?} {rule}")))
    }
}

/// Directories a file may not be mounted into: the engine and the kernel own them.
const FORBIDDEN_ROOTS: [&str; 4] = ["/proc", "/sys", "/dev", "/run/secrets/kubernetes.io"];

/// An absolute, normalized path (no `.`, `..` or empty components), not `/` itself and not
/// under /proc, /sys or /dev.
pub fn validate_mount_path(field: &str, path: &str) -> Result<(), NameError> {
    let err = |why: &str| Err(NameError::new(field, format!("{path:?} {why}")));
    if !path.starts_with('/') {
        return err("must be an absolute path, e.g. /etc/app/config.yaml");
    }
    if path.len() > 1024 || path.contains('\0') || path.chars().any(char::is_control) {
        return err("must be at most 1024 characters without control characters");
    }
    // The engines' bind-mount syntax (`host:container:options`, `,` between options) has no
    // escape for these: accepting them here would fail every later deploy of the environment.
    if path.contains([':', ',']) {
        return err("must not contain ':' or ','");
    }
    let components: Vec<&str> = path[1..].split('/').collect();
    if components.iter().any(|c| *c == ".." || *c == ".") {
        return err("must not contain '.' or '..' components");
    }
    if components.iter().any(|c| c.is_empty()) {
        return err("must not contain empty components ('//' or a trailing '/')");
    }
    if let Some(root) = FORBIDDEN_ROOTS
        .iter()
        .find(|r| path == **r || path.starts_with(&format!("{r}/")))
    {
        return err(&format!(
            "is under {root}, which the container runtime owns"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        for ok in ["A", "_x", "GREETING_2", "lower"] {
            assert!(validate_env_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "2X", "A-B", "A B", "Ä", &"A".repeat(256)] {
            let e = validate_env_name("name", bad).unwrap_err();
            assert!(e.message.contains("^[A-Za-z_]"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn mount_paths() {
        for ok in ["/etc/app.conf", "/run/secrets/key", "/a/b/c.yaml"] {
            assert!(validate_mount_path("name", ok).is_ok(), "{ok}");
        }
        let cases = [
            ("etc/app", "absolute"),
            ("/etc/../passwd", "'..'"),
            ("/etc/./x", "'..'"),
            ("/etc//x", "empty components"),
            ("/etc/x/", "empty components"),
            ("/", "empty components"),
            ("/proc/self/x", "/proc"),
            ("/dev/null", "/dev"),
            ("/sys", "/sys"),
            ("/a\u{0}b", "control"),
            ("/etc/app,v2.conf", "':' or ','"),
            ("/etc/app:ro", "':' or ','"),
        ];
        for (bad, why) in cases {
            let e = validate_mount_path("name", bad).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }
}
