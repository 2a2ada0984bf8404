//! Registry credentials from a Docker config JSON — the file `docker login` writes to
//! `~/.docker/config.json` and `podman login --authfile` writes where it is told:
//!
//! ```json
//! {"auths": {"ghcr.io": {"auth": "<base64 of user:password>"}}}
//! ```
//!
//! berth registers one registry per config, so the file must hold exactly one `auths` entry
//! with the credentials inline. Files that keep credentials in a helper (`credsStore`,
//! `credHelpers`) or hold OAuth tokens are refused with the reason, because berth cannot run the
//! helper or refresh the token on the server.
//!
//! No error message and no `Debug` output contains the password or the `auth` value.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::Secret;
use crate::reference::{canonical_registry_host, validate_registry_host};

/// `docker login` writes padded base64; hand-made files are often unpadded. Accept both.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const EXPECTED_SHAPE: &str =
    r#"{"auths": {"<registry host>": {"auth": "<base64 of username:password>"}}}"#;

/// The credentials of the one registry in a Docker config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfigAuth {
    /// Canonical `host[:port]`: scheme and path removed, lowercase, Docker Hub as `docker.io`.
    pub host: String,
    pub username: String,
    pub password: Secret,
}

/// What is wrong with a Docker config: `field` is a JSON path into it (`auths`,
/// `auths["ghcr.io"].auth`, `credsStore`; empty for the document itself).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{}{}", .field, if .field.is_empty() { "" } else { ": " }, .message)]
pub struct DockerConfigError {
    pub field: String,
    pub message: String,
}

impl DockerConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads the single registry login out of a Docker config JSON document.
pub fn parse_docker_config(json: &str) -> Result<DockerConfigAuth, DockerConfigError> {
    // Editors on Windows save a byte-order mark that JSON parsers reject; it is never meant.
    let json = json.strip_prefix('\u{feff}').unwrap_or(json);
    // serde_json's syntax errors name the position, never the text around it, so they cannot
    // echo a password.
    let document: Value = serde_json::from_str(json)
        .map_err(|e| DockerConfigError::new("", format!("is not valid JSON: {e}")))?;
    let Value::Object(root) = document else {
        return Err(DockerConfigError::new(
            "",
            format!(
                "must be a JSON object like {EXPECTED_SHAPE}, not {}",
                kind(&document)
            ),
        ));
    };
    // Checked before `auths`: with a helper configured, `docker login` leaves an empty entry
    // there, and the helper is the real reason the credentials are missing.
    refuse_helpers(&root)?;

    let auths = match root.get("auths") {
        Some(Value::Object(auths)) => auths,
        Some(other) => {
            return Err(DockerConfigError::new(
                "auths",
                format!(
                    "must be an object mapping registry hosts to credentials, not {}",
                    kind(other)
                ),
            ));
        }
        None if looks_like_legacy_dockercfg(&root) => {
            return Err(DockerConfigError::new(
                "auths",
                format!(
                    "is missing; this looks like the legacy ~/.dockercfg format with hosts at the top level — wrap them: {EXPECTED_SHAPE}"
                ),
            ));
        }
        None => {
            return Err(DockerConfigError::new(
                "auths",
                format!("is missing; expected {EXPECTED_SHAPE}"),
            ));
        }
    };
    let mut entries = auths.iter();
    let (key, entry) = match (entries.next(), entries.next()) {
        (Some(only), None) => only,
        (None, _) => {
            return Err(DockerConfigError::new(
                "auths",
                format!(
                    "has no entries; it needs exactly one, the registry to register: {EXPECTED_SHAPE}"
                ),
            ));
        }
        (Some(_), Some(_)) => {
            let hosts: Vec<String> = auths.keys().map(|k| json_string(k)).collect();
            return Err(DockerConfigError::new(
                "auths",
                format!(
                    "has {} entries ({}); berth registers one registry per config, so keep only the entry of this registry",
                    auths.len(),
                    hosts.join(", ")
                ),
            ));
        }
    };

    let field = format!("auths[{}]", json_string(key));
    let host = host_of_key(key).map_err(|message| DockerConfigError::new(&field, message))?;
    let Value::Object(entry) = entry else {
        return Err(DockerConfigError::new(
            &field,
            format!(
                "must be an object with \"auth\" or \"username\" and \"password\", not {}",
                kind(entry)
            ),
        ));
    };
    let (username, password) = credentials(&field, entry)?;
    Ok(DockerConfigAuth {
        host,
        username,
        password,
    })
}

fn refuse_helpers(root: &Map<String, Value>) -> Result<(), DockerConfigError> {
    // Docker Desktop's CLI picks its keychain helper even for a fresh DOCKER_CONFIG, so the
    // advice names podman first and says where docker works.
    const WHY: &str = "berth cannot call a credential helper (it runs on the berth server, not where you logged in); write the login into the file instead — `podman login --authfile FILE HOST`, or `docker login --password-stdin HOST` with DOCKER_CONFIG set to a new directory on a machine without a credential helper — or register the registry with auth type basic";
    match root.get("credsStore") {
        None | Some(Value::Null) => {}
        Some(Value::String(store)) if store.is_empty() => {}
        Some(Value::String(store)) => {
            return Err(DockerConfigError::new(
                "credsStore",
                format!(
                    "credentials are kept in the external helper docker-credential-{store}, not in this file; {WHY}"
                ),
            ));
        }
        Some(other) => {
            return Err(DockerConfigError::new(
                "credsStore",
                format!(
                    "must be a string naming a credential helper, not {}",
                    kind(other)
                ),
            ));
        }
    }
    match root.get("credHelpers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(helpers)) if helpers.is_empty() => {}
        Some(Value::Object(helpers)) => {
            let hosts: Vec<String> = helpers.keys().map(|k| json_string(k)).collect();
            return Err(DockerConfigError::new(
                "credHelpers",
                format!(
                    "credentials for {} are kept in external credential helpers, not in this file; {WHY}",
                    hosts.join(", ")
                ),
            ));
        }
        Some(other) => {
            return Err(DockerConfigError::new(
                "credHelpers",
                format!(
                    "must be an object mapping hosts to helpers, not {}",
                    kind(other)
                ),
            ));
        }
    }
    Ok(())
}

/// `{"host": {"auth": …}}` without `auths`: what `docker login` wrote before Docker 1.7.
fn looks_like_legacy_dockercfg(root: &Map<String, Value>) -> bool {
    root.values()
        .any(|v| matches!(v, Value::Object(entry) if entry.contains_key("auth")))
}

/// The registry host of an `auths` key: `ghcr.io`, `localhost:5000`, or a URL such as
/// `https://index.docker.io/v1/` (what `docker login` writes for Docker Hub).
fn host_of_key(key: &str) -> Result<String, String> {
    let without_scheme = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            key.get(..scheme.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
                .map(|_| &key[scheme.len()..])
        })
        .unwrap_or(key);
    // Another scheme is kept whole so that validation names it instead of a stray ':'.
    let host = if without_scheme.contains("://") {
        without_scheme
    } else {
        without_scheme
            .split_once('/')
            .map_or(without_scheme, |(host, _path)| host)
    };
    validate_registry_host(host).map_err(|e| match e {
        crate::ReferenceError::Host { reason, .. } => {
            format!("is not a registry host: {host:?} {reason}")
        }
        other => other.to_string(),
    })?;
    Ok(canonical_registry_host(host))
}

fn credentials(
    field: &str,
    entry: &Map<String, Value>,
) -> Result<(String, Secret), DockerConfigError> {
    for (token, what) in [
        ("identitytoken", "identity tokens (OAuth refresh tokens)"),
        (
            "registrytoken",
            "registry tokens (short-lived bearer tokens)",
        ),
    ] {
        if matches!(entry.get(token), Some(v) if !is_blank(v)) {
            return Err(DockerConfigError::new(
                format!("{field}.{token}"),
                format!("{what} are not supported; use username and password or an access token"),
            ));
        }
    }
    let auth = string_field(field, entry, "auth")?.filter(|s| !s.is_empty());
    let username = string_field(field, entry, "username")?.filter(|s| !s.is_empty());
    let password = string_field(field, entry, "password")?.filter(|s| !s.is_empty());

    let (user, pass) = match (auth, username, password) {
        (Some(auth), username, password) => {
            let (user, pass) = decode_auth(auth)
                .map_err(|message| DockerConfigError::new(format!("{field}.auth"), message))?;
            // Two sources that disagree would make the choice ours; make it the user's.
            if username.is_some_and(|u| u != user) {
                return Err(DockerConfigError::new(
                    format!("{field}.username"),
                    "does not match the username encoded in \"auth\"; remove one of them or make them agree",
                ));
            }
            if password.is_some_and(|p| p != pass) {
                return Err(DockerConfigError::new(
                    format!("{field}.password"),
                    "does not match the password encoded in \"auth\"; remove one of them or make them agree",
                ));
            }
            (user, pass)
        }
        (None, Some(user), Some(pass)) => {
            if user.contains(':') {
                return Err(DockerConfigError::new(
                    format!("{field}.username"),
                    "must not contain ':' (HTTP Basic authentication cannot carry it)",
                ));
            }
            (user.to_owned(), pass.to_owned())
        }
        (None, None, None) => {
            return Err(DockerConfigError::new(
                field,
                "has no credentials; expected \"auth\" (base64 of username:password) or \"username\" and \"password\"",
            ));
        }
        (None, None, Some(_)) => {
            return Err(DockerConfigError::new(
                format!("{field}.username"),
                "is missing or empty (there is a password but no username)",
            ));
        }
        (None, Some(_), None) => {
            return Err(DockerConfigError::new(
                format!("{field}.password"),
                "is missing or empty (there is a username but no password)",
            ));
        }
    };
    Ok((user, Secret::new(pass)))
}

/// Splits base64(`user:password`) at the first ':' — the password may contain more.
fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let bytes = BASE64.decode(auth).map_err(|e| {
        // base64's own messages quote the offending byte, which is part of the secret.
        let what = match e {
            base64::DecodeError::InvalidByte(offset, _) => {
                format!("a character that is not base64 at offset {offset}")
            }
            base64::DecodeError::InvalidLength(_) => "a length that is not valid".to_owned(),
            base64::DecodeError::InvalidLastSymbol(offset, _) => {
                format!("an invalid last symbol at offset {offset}")
            }
            base64::DecodeError::InvalidPadding => "invalid padding".to_owned(),
        };
        format!("is not valid base64 (standard alphabet, padding optional): {what}")
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "decodes to bytes that are not UTF-8 text".to_owned())?;
    let Some((user, pass)) = text.split_once(':') else {
        return Err(
            "decodes to a value without ':'; expected the base64 of \"username:password\"".into(),
        );
    };
    if user.is_empty() {
        return Err("encodes an empty username (the value starts with ':')".into());
    }
    if pass.is_empty() {
        return Err("encodes an empty password".into());
    }
    // `echo user:pass | base64` adds a newline the registry would see as part of the password;
    // docker login strips it, so it only appears in hand-made files, and is never meant.
    if pass.ends_with('\n') {
        return Err(
            "encodes a password that ends with a newline (made with `echo` instead of `printf '%s'`?); encode it without the newline".into(),
        );
    }
    Ok((user.to_owned(), pass.to_owned()))
}

/// A string member; absent and `null` are `None`, any other type is an error.
fn string_field<'a>(
    field: &str,
    entry: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, DockerConfigError> {
    match entry.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(DockerConfigError::new(
            format!("{field}.{name}"),
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A key quoted as in JSON, for field paths and lists of hosts.
fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    fn auth(user_pass: &str) -> String {
        STANDARD.encode(user_pass)
    }

    fn config(key: &str, entry: &str) -> String {
        format!(r#"{{"auths":{{{}:{entry}}}}}"#, json_string(key))
    }

    /// A Google Artifact Registry service-account key: the whole JSON is the password.
    const GAR_KEY: &str = "{\n  \"type\": \"service_account\",\n  \"project_id\": \"p-1\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIE:vQ==\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"berth@p-1.iam.gserviceaccount.com\"\n}";

    // Tables stay one case per line: easier to read and to extend than rustfmt's layout.
    #[rustfmt::skip]
    #[test]
    fn reads_the_single_login() {
        let gar = format!(r#"{{"auth":"{}"}}"#, auth(&format!("_json_key:{GAR_KEY}")));
        // 14 bytes, so standard base64 would end in '='.
        let unpadded = format!(r#"{{"auth":"{}"}}"#, STANDARD_NO_PAD.encode("u:unpadded-pw1"));
        let hub = format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}","email":"x@y"}}}},"HttpHeaders":{{"User-Agent":"Docker"}},"psFormat":"table"}}"#, auth("me:hub-t0ken"));
        let agreeing = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}","username":"u","password":"agreed-pw"}}}},"credsStore":"","credHelpers":{{}}}}"#, auth("u:agreed-pw"));
        let empty_token = format!(r#"{{"auth":"{}","identitytoken":""}}"#, auth("u:no-token-pw"));
        // (document, host, username, password)
        let cases: Vec<(String, &str, &str, &str)> = vec![
            // What `podman login --authfile` writes.
            (r#"{"auths":{"127.0.0.1:5000":{"auth":"YmVydGg6czNjcmV0"}}}"#.into(), "127.0.0.1:5000", "berth", "s3cret"),
            // What `docker login` writes for Docker Hub, with the usual extra fields.
            (hub, "docker.io", "me", "hub-t0ken"),
            (config("ghcr.io", &format!(r#"{{"auth":"{}"}}"#, auth("u:pa:ss:word"))), "ghcr.io", "u", "pa:ss:word"),
            (config("europe-docker.pkg.dev", &gar), "europe-docker.pkg.dev", "_json_key", GAR_KEY),
            (config("Registry.Example.com:5000", r#"{"username":"ci","password":"p@ss: w"}"#), "registry.example.com:5000", "ci", "p@ss: w"),
            (config("http://localhost:5000/v2/", &unpadded), "localhost:5000", "u", "unpadded-pw1"),
            (config("[::1]:5000", &unpadded), "[::1]:5000", "u", "unpadded-pw1"),
            (config("registry-1.docker.io", &unpadded), "docker.io", "u", "unpadded-pw1"),
            (config("HTTPS://Quay.io", &unpadded), "quay.io", "u", "unpadded-pw1"),
            (format!("\u{feff}{}", config("quay.io", &unpadded)), "quay.io", "u", "unpadded-pw1"),
            // auth and username/password that agree; empty helper fields are no helpers.
            (agreeing, "ghcr.io", "u", "agreed-pw"),
            (config("ghcr.io", &empty_token), "ghcr.io", "u", "no-token-pw"),
        ];
        for (document, host, username, password) in cases {
            let got = parse_docker_config(&document).unwrap_or_else(|e| panic!("{document}: {e}"));
            assert_eq!(got.host, host, "{document}");
            assert_eq!(got.username, username, "{document}");
            // Byte-exact: the GAR key keeps its newlines and escapes.
            assert_eq!(got.password.expose(), password, "{document}");
            assert!(!format!("{got:?}").contains(password), "{got:?}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn refuses_what_berth_cannot_use_without_leaking_the_secret() {
        const PASSWORD: &str = "Sup3r-s3cret:pw";
        let good = auth(&format!("u:{PASSWORD}"));
        let entry = format!(r#"{{"auth":"{good}"}}"#);
        let bad_length = format!("{}AA", good.trim_end_matches('=')); // 4n+1 characters
        // (document, field, message fragment)
        let cases: Vec<(String, &str, &str)> = vec![
            ("{\"auths\": {".into(), "", "is not valid JSON: EOF while parsing an object at line 1 column 11"),
            ("{\n  \"auths\": {\"a\": x}\n}".into(), "", "is not valid JSON: expected value at line 2"),
            (format!("{{\"auths\":{{\"ghcr.io\":{{\"auth\":\"{PASSWORD}\n\"}}}}}}"), "", "control character"),
            ("[]".into(), "", "must be a JSON object like"),
            (r#"{"auths":[]}"#.into(), "auths", "must be an object mapping registry hosts to credentials, not an array"),
            (r#"{"auths":"ghcr.io"}"#.into(), "auths", "not a string"),
            (r#"{"HttpHeaders":{}}"#.into(), "auths", "is missing; expected"),
            (format!(r#"{{"ghcr.io":{entry}}}"#), "auths", "legacy ~/.dockercfg format"),
            (r#"{"auths":{}}"#.into(), "auths", "has no entries"),
            (format!(r#"{{"auths":{{"ghcr.io":{entry},"quay.io":{entry}}}}}"#), "auths", "has 2 entries (\"ghcr.io\", \"quay.io\"); berth registers one registry per config"),
            (r#"{"auths":{"ghcr.io":{}},"credsStore":"desktop"}"#.into(), "credsStore", "kept in the external helper docker-credential-desktop, not in this file; berth cannot call a credential helper"),
            (format!(r#"{{"auths":{{"ghcr.io":{entry}}},"credHelpers":{{"gcr.io":"gcloud"}}}}"#), "credHelpers", "credentials for \"gcr.io\" are kept in external credential helpers"),
            (format!(r#"{{"auths":{{"ghcr.io":{entry}}},"credsStore":7}}"#), "credsStore", "must be a string"),
            (config("ghcr.io", &format!(r#"{{"auth":"{good}","identitytoken":"{PASSWORD}"}}"#)), "auths[\"ghcr.io\"].identitytoken", "identity tokens (OAuth refresh tokens) are not supported; use username and password or an access token"),
            (config("ghcr.io", &format!(r#"{{"registrytoken":"{PASSWORD}"}}"#)), "auths[\"ghcr.io\"].registrytoken", "are not supported"),
            (config("ghcr.io", r#""x""#), "auths[\"ghcr.io\"]", "must be an object"),
            (config("ghcr.io", "{}"), "auths[\"ghcr.io\"]", "has no credentials"),
            (config("ghcr.io", r#"{"auth":""}"#), "auths[\"ghcr.io\"]", "has no credentials"),
            (config("ghcr.io", &format!(r#"{{"auth":"{PASSWORD}"}}"#)), "auths[\"ghcr.io\"].auth", "is not valid base64 (standard alphabet, padding optional): a character that is not base64 at offset 5"),
            (config("ghcr.io", &format!(r#"{{"auth":"{bad_length}"}}"#)), "auths[\"ghcr.io\"].auth", "is not valid base64"),
            (config("ghcr.io", &format!(r#"{{"auth":"{}"}}"#, auth("nocolonatall"))), "auths[\"ghcr.io\"].auth", "decodes to a value without ':'"),
            (config("ghcr.io", &format!(r#"{{"auth":"{}"}}"#, auth(&format!(":{PASSWORD}")))), "auths[\"ghcr.io\"].auth", "empty username"),
            (config("ghcr.io", &format!(r#"{{"auth":"{}"}}"#, auth("u:"))), "auths[\"ghcr.io\"].auth", "empty password"),
            (config("ghcr.io", &format!(r#"{{"auth":"{}"}}"#, auth(&format!("u:{PASSWORD}\n")))), "auths[\"ghcr.io\"].auth", "ends with a newline"),
            (config("ghcr.io", &format!(r#"{{"auth":"{}"}}"#, STANDARD.encode(b"u:\xff\xfe"))), "auths[\"ghcr.io\"].auth", "not UTF-8"),
            (config("ghcr.io", &format!(r#"{{"auth":"{good}","username":"other"}}"#)), "auths[\"ghcr.io\"].username", "does not match the username encoded in \"auth\""),
            (config("ghcr.io", &format!(r#"{{"auth":"{good}","password":"{PASSWORD}x"}}"#)), "auths[\"ghcr.io\"].password", "does not match the password encoded in \"auth\""),
            (config("ghcr.io", r#"{"username":"u","password":""}"#), "auths[\"ghcr.io\"].password", "is missing or empty"),
            (config("ghcr.io", &format!(r#"{{"username":"","password":"{PASSWORD}"}}"#)), "auths[\"ghcr.io\"].username", "is missing or empty"),
            (config("ghcr.io", &format!(r#"{{"username":"a:b","password":"{PASSWORD}"}}"#)), "auths[\"ghcr.io\"].username", "must not contain ':'"),
            (config("ghcr.io", r#"{"username":"u","password":7}"#), "auths[\"ghcr.io\"].password", "must be a string, not a number"),
            (config("", &entry), "auths[\"\"]", "is not a registry host: \"\" is empty"),
            (config("https://", &entry), "auths[\"https://\"]", "is empty"),
            (config("ghcr.io:http", &entry), "auths[\"ghcr.io:http\"]", "port \"http\" must be a number"),
            (config("user@ghcr.io", &entry), "auths[\"user@ghcr.io\"]", "must not contain user information"),
            (config("ftp://ghcr.io", &entry), "auths[\"ftp://ghcr.io\"]", "a scheme is not allowed"),
            (config("gh cr.io", &entry), "auths[\"gh cr.io\"]", "contains whitespace"),
        ];
        for (document, field, fragment) in cases {
            let err = parse_docker_config(&document).expect_err(&document);
            assert_eq!(err.field, field, "{document}: {err}");
            assert!(err.message.contains(fragment), "{document}: {err:?} does not contain {fragment:?}");
            let shown = format!("{err} {err:?}");
            for secret in [PASSWORD, "Sup3r", good.as_str(), bad_length.as_str()] {
                assert!(!shown.contains(secret), "{document}: {shown} leaks {secret:?}");
            }
        }
    }

    #[test]
    fn display_is_field_then_message() {
        let err = parse_docker_config(r#"{"auths":{}}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("auths: has no entries"),
            "{err}"
        );
        let err = parse_docker_config("nope").unwrap_err();
        assert!(err.to_string().starts_with("is not valid JSON: "), "{err}");
        assert!(err.to_string().contains("line 1 column"), "{err}");
    }
}
