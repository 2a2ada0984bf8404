//! Container image references (`nginx`, `ghcr.io/org/app:1.2`, `localhost:5000/a@sha256:…`).
//!
//! The grammar and the normalization are those of Go's `github.com/distribution/reference`
//! (`ParseNormalizedNamed`), which Docker, containerd and the registry itself use: a reference
//! berth accepts names the same image it names to `docker pull`. The parser is hand-written so
//! that every error can name the part that is wrong.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]            ; port = [0-9]+
//! host             := domain-component ( "." domain-component )* | "[" [0-9A-Fa-f:]+ "]"
//! domain-component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
//! path             := path-component ( "/" path-component )*
//! path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" hex            ; sha256 (64), sha384 (96), sha512 (128)
//! ```
//!
//! Normalization, as upstream's `splitDockerDomain`: the first path component is the registry
//! only if it contains `.` or `:`, is `localhost`, or has an uppercase letter (a repository
//! never does); otherwise the registry is `docker.io`. On `docker.io` a one-component path gets
//! the `library/` prefix, and `index.docker.io` is rewritten to `docker.io` — the only alias
//! that is rewritten, because the others are real, distinct names a user may have chosen;
//! [`ImageRef::registry_host`] maps all of them to one host for matching credentials.
//!
//! Where berth deliberately differs from upstream:
//! - A reference without a tag or digest gets the tag `latest` when parsed (upstream's
//!   `TagNameOnly`), so `nginx` and `docker.io/library/nginx:latest` are equal values and
//!   `parse(r.to_string()) == r` always holds.
//! - A first component that upstream treats as a registry (it contains a `.`) but that is not a
//!   valid host, such as `a_b.com/x`, is an error here; upstream silently returns a reference
//!   with *no* registry at all, which cannot be pulled.
//! - [`ImageRef::familiar`] keeps `docker.io/` when dropping it would change the meaning
//!   (`docker.io/a.b/c` stays; upstream prints `a.b/c`, which reads back as registry `a.b`).
//! - [`ImageRef::with_digest`] checks the digest like the parser does (upstream's `WithDigest`
//!   only checks its shape), so every value prints as a string that parses back.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Longest repository name, counted over `domain/path` (upstream `NameTotalLengthMax`).
pub const NAME_MAX_LEN: usize = 255;
/// Longest tag.
pub const TAG_MAX_LEN: usize = 128;
/// The registry of names without one.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag of references that give neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// The old "Docker Index" name, rewritten to `docker.io` when parsing (as upstream does).
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Official images live under `library/` on Docker Hub.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Docker Hub's registry API answers here, not on `docker.io`.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Names under which Docker Hub's registry is known; all the same registry for credentials.
const DOCKER_HUB_ALIASES: [&str; 5] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
    "registry.docker.com",
];

/// Why a string is not an image reference, a tag, a digest or a registry host. Each variant
/// names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error("invalid reference format: the image reference is empty")]
    Empty,
    #[error("invalid reference format: {input:?} contains whitespace ({found:?} at byte {index})")]
    Whitespace {
        input: String,
        found: char,
        index: usize,
    },
    #[error(
        "invalid reference format: {input:?} starts with the URL scheme \"{scheme}://\"; an image reference has no scheme, remove it: {suggestion:?}"
    )]
    Scheme {
        input: String,
        scheme: String,
        suggestion: String,
    },
    #[error(
        "invalid reference format: {input:?} is a 64-character hexadecimal identifier, not a repository name"
    )]
    Identifier { input: String },
    #[error("invalid reference format: {input:?}: {reason}")]
    Format { input: String, reason: String },
    #[error("invalid reference format: host {host:?} is not valid: {reason}")]
    Host { host: String, reason: String },
    #[error(
        "invalid reference format: repository name (path component {component:?}) must be lowercase"
    )]
    Uppercase { component: String },
    #[error(
        "invalid reference format: repository name (path component {component:?}) is not valid: {reason}"
    )]
    PathComponent { component: String, reason: String },
    #[error(
        "repository name must not be longer than {NAME_MAX_LEN} characters ({name:?} is {len})"
    )]
    NameTooLong { name: String, len: usize },
    #[error("invalid tag {tag:?}: {reason}")]
    Tag { tag: String, reason: String },
    #[error("tag \"{prefix}...\" is longer than {TAG_MAX_LEN} characters ({len})")]
    TagTooLong { prefix: String, len: usize },
    #[error("invalid digest {digest:?}: {reason}")]
    Digest { digest: String, reason: String },
}

/// A parsed, normalized image reference: `domain/path[:tag][@digest]`.
///
/// Always has a domain and a path; has a tag, a digest or both (a reference that names neither
/// gets the tag `latest`). `Display` and `Serialize` give the full normalized form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference as `docker pull` does (upstream `ParseNormalizedNamed`): familiar
    /// names such as `nginx` or `user/app:1` are completed to `docker.io/library/nginx:latest`
    /// and `docker.io/user/app:1`.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some((index, found)) = input.char_indices().find(|(_, c)| c.is_whitespace()) {
            return Err(ReferenceError::Whitespace {
                input: input.to_owned(),
                found,
                index,
            });
        }
        if let Some(scheme) = url_scheme(input) {
            return Err(ReferenceError::Scheme {
                input: input.to_owned(),
                scheme: scheme.to_owned(),
                suggestion: input[scheme.len() + 3..].to_owned(),
            });
        }
        // Upstream refuses a bare image ID so it cannot be mistaken for a repository name.
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ReferenceError::Identifier {
                input: input.to_owned(),
            });
        }
        let format_error = |reason: &str| ReferenceError::Format {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };

        // Neither the name nor the tag may contain '@', so the first one starts the digest.
        let (rest, digest) = match input.split_once('@') {
            Some((_, digest)) if digest.contains('@') => {
                return Err(format_error(
                    "contains more than one '@' (a digest is written once, at the end)",
                ));
            }
            Some((rest, digest)) => (rest, Some(digest)),
            None => (input, None),
        };
        if rest.starts_with('[') && !rest.contains('/') {
            return Err(format_error(
                "names only a registry host; add the repository: host/repository[:tag]",
            ));
        }
        // A tag has neither '/' nor ':', and a ':' inside the name (a port, an IPv6 address)
        // is always followed by a '/', so the last ':' starts a tag exactly when no '/' follows.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(format_error(
                "the repository name is missing (expected name[:tag][@digest])",
            ));
        }

        let (domain, path) = split_docker_domain(name)?;
        for component in path.split('/') {
            check_path_component(component)?;
        }
        let len = domain.len() + 1 + path.len();
        if len > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                name: shorten(&format!("{domain}/{path}"), 60),
                len,
            });
        }
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        if let Some(digest) = digest {
            validate_digest(digest)?;
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(Self {
            domain: domain.to_owned(),
            path,
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry as written (after `index.docker.io` → `docker.io`), e.g. `ghcr.io`,
    /// `localhost:5000`, `[::1]:5000`. Case is kept, as upstream does.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/nginx`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag; `None` only when the reference has a digest and no tag.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The full form: `domain/path[:tag][@digest]`, e.g. `docker.io/library/nginx:latest`.
    pub fn normalized(&self) -> String {
        let mut out = self.name();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The name as Docker shows it: `nginx`, `user/app`, `ghcr.io/org/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            let short = match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest,
                _ => self.path.as_str(),
            };
            // Dropping docker.io is only safe if the result is not read back as a registry.
            if !first_component_is_domain(short) {
                return short.to_owned();
            }
        }
        self.name()
    }

    /// The reference as Docker shows it (upstream `FamiliarString(TagNameOnly(r))`):
    /// `nginx:latest`, `user/app:1@sha256:…`. Parses back to the same value.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The same repository with `tag` (an existing digest is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(tag)?;
        Ok(Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository with `tag` and no digest: a tag names whatever it points at now, so
    /// an old pin must not outlive it (Update Image Tag of a component created from
    /// `app:v1@sha256:…`).
    pub fn retagged(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(tag)?;
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (an existing tag is kept, as upstream does; the
    /// tag is then informational: [`ImageRef::pull_reference`] uses the digest).
    pub fn with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        validate_digest(digest)?;
        Ok(Self {
            digest: Some(digest.to_owned()),
            ..self.clone()
        })
    }

    /// The host to match registry settings and credentials against: `docker.io` for Docker
    /// Hub under any of its names, otherwise the domain lowercased (port kept).
    pub fn registry_host(&self) -> String {
        canonical_registry_host(&self.domain)
    }

    /// Where the registry API lives: `registry-1.docker.io` for Docker Hub under any of its
    /// names, otherwise the domain.
    pub fn api_host(&self) -> &str {
        if is_docker_hub(&self.domain) {
            DOCKER_HUB_API_HOST
        } else {
            &self.domain
        }
    }

    /// What to pull: `name@digest` when pinned (the tag would only be ignored), else
    /// `name:tag`.
    pub fn pull_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => format!("{}@{digest}", self.name()),
            (None, Some(tag)) => format!("{}:{tag}", self.name()),
            (None, None) => format!("{}:{DEFAULT_TAG}", self.name()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The host under which to file settings and credentials for the registry `host`: lowercase,
/// port kept, and `docker.io` for every name of Docker Hub's registry (`index.docker.io`,
/// `registry-1.docker.io`, `registry.hub.docker.com`, `registry.docker.com`).
pub fn canonical_registry_host(host: &str) -> String {
    if is_docker_hub(host) {
        DEFAULT_DOMAIN.to_owned()
    } else {
        host.to_ascii_lowercase()
    }
}

/// Checks a registry host as entered in registry settings: `host`, `host:port`, an IPv4
/// address or `[v6]:port` — nothing else (no scheme, path, user or spaces).
pub fn validate_registry_host(host: &str) -> Result<(), ReferenceError> {
    let error = |reason: String| ReferenceError::Host {
        host: host.to_owned(),
        reason,
    };
    if host.is_empty() {
        return Err(error(
            "is empty; expected host[:port], e.g. ghcr.io or localhost:5000".into(),
        ));
    }
    if let Some((index, found)) = host.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(error(format!(
            "contains whitespace ({found:?} at byte {index})"
        )));
    }
    if let Some(scheme) = url_scheme(host) {
        let rest = &host[scheme.len() + 3..];
        let bare = rest.split('/').next().unwrap_or(rest);
        return Err(error(format!(
            "a scheme is not allowed: remove \"{scheme}://\" and give only host[:port] ({bare:?})"
        )));
    }
    if host.contains('@') {
        return Err(error(
            "must not contain user information (\"user@\"); give the username and password separately".into(),
        ));
    }
    if let Some(i) = host.find('/') {
        return Err(error(format!(
            "must not contain a path ({:?}); give only host[:port]",
            &host[i..]
        )));
    }
    let port = check_host_port(host).map_err(error)?;
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => return Err(error(format!("port {port} is not in 1-65535"))),
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let error = |reason: String| ReferenceError::Tag {
        tag: tag.to_owned(),
        reason,
    };
    let Some(first) = tag.chars().next() else {
        return Err(error("is empty".into()));
    };
    if tag.len() > TAG_MAX_LEN {
        return Err(ReferenceError::TagTooLong {
            prefix: tag.chars().take(20).collect(),
            len: tag.chars().count(),
        });
    }
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(error(format!(
            "must start with a letter, a digit or '_', not {first:?}"
        )));
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(error(format!(
            "contains {bad:?}; a tag has only letters, digits, '_', '.' and '-'"
        )));
    }
    Ok(())
}

/// Checks a digest as `docker pull` does: `algorithm:hex` where the algorithm is one of
/// sha256, sha384, sha512 and the hex is lowercase and exactly as long as that hash.
pub fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let error = |reason: String| ReferenceError::Digest {
        digest: shorten(digest, 140),
        reason,
    };
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err(error(
            "expected algorithm:hex, e.g. sha256:<64 lowercase hex characters>".into(),
        ));
    };
    if let Err(reason) = check_digest_algorithm(algorithm) {
        return Err(error(reason));
    }
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            let lower = other.to_ascii_lowercase();
            let hint = if matches!(lower.as_str(), "sha256" | "sha384" | "sha512") {
                format!(" (algorithm names are lowercase: {lower:?})")
            } else {
                String::new()
            };
            return Err(error(format!(
                "unsupported digest algorithm {other:?}; expected sha256, sha384 or sha512{hint}"
            )));
        }
    };
    let needs = format!("{algorithm} needs {expected} lowercase hex characters");
    if let Some(bad) = encoded
        .chars()
        .find(|c| !matches!(c, '0'..='9' | 'a'..='f'))
    {
        return Err(error(format!("{needs}, found {bad:?}")));
    }
    if encoded.len() != expected {
        return Err(error(format!("{needs}, found {}", encoded.len())));
    }
    Ok(())
}

/// `[A-Za-z][A-Za-z0-9]*` components joined by one of `-_+.`.
fn check_digest_algorithm(algorithm: &str) -> Result<(), String> {
    if algorithm.is_empty() {
        return Err("the algorithm before ':' is empty".into());
    }
    for component in algorithm.split(['-', '_', '+', '.']) {
        let mut chars = component.chars();
        match chars.next() {
            Some(c) if c.is_ascii_alphabetic() => {}
            _ => {
                return Err(format!(
                    "algorithm {algorithm:?} is malformed: each part must start with a letter"
                ));
            }
        }
        if let Some(bad) = chars.find(|c| !c.is_ascii_alphanumeric()) {
            return Err(format!("algorithm {algorithm:?} contains {bad:?}"));
        }
    }
    Ok(())
}

/// Upstream's `splitDockerDomain`, returning the domain to use and the full path.
fn split_docker_domain(name: &str) -> Result<(&str, String), ReferenceError> {
    let Some((first, rest)) = name.split_once('/') else {
        return Ok((DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}")));
    };
    let (domain, path) = if first == "localhost" {
        (first, rest)
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if first.contains(['.', ':']) {
        check_host_port(first).map_err(|reason| ReferenceError::Host {
            host: first.to_owned(),
            reason,
        })?;
        (first, rest)
    } else if first.bytes().any(|b| b.is_ascii_uppercase()) {
        // Upstream reads an uppercase first component as a host because a repository is never
        // uppercase. If it is no valid host either, the user most likely mistyped the
        // repository, so say that.
        if check_host_port(first).is_err() {
            return Err(ReferenceError::Uppercase {
                component: first.to_owned(),
            });
        }
        (first, rest)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path.to_owned()
    };
    Ok((domain, path))
}

/// Whether upstream's `splitDockerDomain` would read the first component of `path` as a host.
fn first_component_is_domain(path: &str) -> bool {
    match path.split_once('/') {
        Some((first, _)) => {
            first == "localhost"
                || first.contains(['.', ':'])
                || first.bytes().any(|b| b.is_ascii_uppercase())
        }
        None => false,
    }
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(host))
}

/// Checks `host[:port]` against the grammar and returns the port, if any.
fn check_host_port(s: &str) -> Result<Option<&str>, String> {
    let port = if let Some(after) = s.strip_prefix('[') {
        let Some(end) = after.find(']') else {
            return Err("'[' opens an IPv6 address that is not closed with ']'".into());
        };
        let address = &after[..end];
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!(
                "IPv6 address {address:?} may only contain hex digits and ':' (zone identifiers and embedded IPv4 are not supported)"
            ));
        }
        match &after[end + 1..] {
            "" => None,
            tail => match tail.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected {tail:?} after ']'")),
            },
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        check_domain_name(host)?;
        port
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("port {port:?} must be a number"));
    }
    Ok(port)
}

/// Dot-separated components of letters, digits and inner hyphens (no IDN: use punycode).
fn check_domain_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err("has an empty label (a leading, trailing or doubled '.')".into());
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "contains {bad:?}; a host has only letters, digits, '-' and '.'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with '-'"));
        }
    }
    Ok(())
}

fn check_path_component(component: &str) -> Result<(), ReferenceError> {
    // Checking the lowercased text first means an uppercase letter is only reported when it is
    // the sole problem, which is the error upstream gives and the one worth fixing first.
    let lower = component.to_ascii_lowercase();
    if let Err(reason) = check_path_syntax(&lower) {
        return Err(ReferenceError::PathComponent {
            component: component.to_owned(),
            reason,
        });
    }
    if lower != component {
        return Err(ReferenceError::Uppercase {
            component: component.to_owned(),
        });
    }
    Ok(())
}

/// `[a-z0-9]+ ( ("." | "_" | "__" | "-"+) [a-z0-9]+ )*`
fn check_path_syntax(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() {
        return Err("is empty (two '/' in a row, or a '/' at the start or end)".into());
    }
    let mut i = 0;
    loop {
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(());
        }
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        if i == start {
            // Only ASCII bytes were skipped, so `i` is on a character boundary.
            let bad = component[i..].chars().next().unwrap_or_default();
            let hint = if bad == ':' {
                " (':' only separates a host from its port, or the name from its tag)"
            } else {
                ""
            };
            return Err(format!(
                "contains {bad:?}; only lowercase letters, digits and the separators '.', '_', '__' and '-' are allowed{hint}"
            ));
        }
        let separator = &component[start..i];
        if start == 0 {
            return Err(format!(
                "must start with a lowercase letter or digit, not {separator:?}"
            ));
        }
        if i == bytes.len() {
            return Err(format!("must not end with {separator:?}"));
        }
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return Err(format!(
                "separator {separator:?} is not allowed; use one '.', one or two '_', or any number of '-'"
            ));
        }
    }
}

/// The scheme of a URL-looking input (`https` in `https://…`).
fn url_scheme(input: &str) -> Option<&str> {
    let (scheme, _) = input.split_once("://")?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some(scheme)
}

/// At most `max` characters of `s`, with `...` when cut, so errors stay readable.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const SHA512: &str = "sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    /// (input, domain, path, tag, digest)
    type Valid = (
        String,
        &'static str,
        String,
        Option<&'static str>,
        Option<&'static str>,
    );

    // Tables stay one case per line: easier to read and to extend than rustfmt's layout.
    #[rustfmt::skip]
    fn valid_cases() -> Vec<Valid> {
        let v = |input: &str, domain, path: &str, tag, digest| -> Valid {
            (input.to_owned(), domain, path.to_owned(), tag, digest)
        };
        let d = Some(SHA256);
        let latest = Some("latest");
        vec![
            v("nginx", "docker.io", "library/nginx", latest, None),
            v("nginx:1.25", "docker.io", "library/nginx", Some("1.25"), None),
            v("user/app", "docker.io", "user/app", latest, None),
            v("docker/docker", "docker.io", "docker/docker", latest, None),
            v("library/debian", "docker.io", "library/debian", latest, None),
            v("docker.io/debian", "docker.io", "library/debian", latest, None),
            v("docker.io/library/debian", "docker.io", "library/debian", latest, None),
            v("docker.io/library/foo/bar", "docker.io", "library/foo/bar", latest, None),
            v("index.docker.io/docker/docker", "docker.io", "docker/docker", latest, None),
            v("index.docker.io/debian", "docker.io", "library/debian", latest, None),
            v("index.docker.io/library/nginx", "docker.io", "library/nginx", latest, None),
            // Only index.docker.io is rewritten; registry_host() still matches these to Hub.
            v("registry-1.docker.io/library/nginx", "registry-1.docker.io", "library/nginx", latest, None),
            v("registry-1.docker.io/nginx", "registry-1.docker.io", "nginx", latest, None),
            v("localhost/app", "localhost", "app", latest, None),
            v("localhost:5000/a/b:v1", "localhost:5000", "a/b", Some("v1"), None),
            v("127.0.0.1:5000/test/web:v1", "127.0.0.1:5000", "test/web", Some("v1"), None),
            v("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", latest, None),
            v("192.168.0.1:8/debian", "192.168.0.1:8", "debian", latest, None),
            v("192.168.1.1/repo", "192.168.1.1", "repo", latest, None),
            v("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", Some("5050"), None),
            // No '/': the whole thing is a Docker Hub repository, and ":80" a tag.
            v("192.168.0.1", "docker.io", "library/192.168.0.1", latest, None),
            v("192.168.0.1:80", "docker.io", "library/192.168.0.1", Some("80"), None),
            v("test.com:5000", "docker.io", "library/test.com", Some("5000"), None),
            v("localhost:5000", "docker.io", "library/localhost", Some("5000"), None),
            v("foo_bar.com:8080", "docker.io", "library/foo_bar.com", Some("8080"), None),
            v("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", Some("8080"), None),
            v("test_com/foo", "docker.io", "test_com/foo", latest, None),
            v("test.com/foo", "test.com", "foo", latest, None),
            v("test:5000/repo", "test:5000", "repo", latest, None),
            v("test-com:8080/foo", "test-com:8080", "foo", latest, None),
            v("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", latest, None),
            v("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", Some("xn--n3h.com"), None),
            v(&format!("xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}"), "xn--7o8h.com", "myimage", Some("xn--7o8h.com"), Some(SHA512)),
            v("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", Some("test.example.com"), None),
            v("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", Some("some-long-tag"), None),
            v("[::1]:5000/x", "[::1]:5000", "x", latest, None),
            v("[2001:db8::1]/repo", "[2001:db8::1]", "repo", latest, None),
            v("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", Some("tag"), None),
            v("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", latest, None),
            v("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", latest, None),
            v(&format!("[2001:db8::1]:5000/repo:tag@{SHA256}"), "[2001:db8::1]:5000", "repo", Some("tag"), d),
            v(&format!("ghcr.io/org/app@{SHA256}"), "ghcr.io", "org/app", None, d),
            v(&format!("test:5000/repo@{SHA256}"), "test:5000", "repo", None, d),
            v(&format!("busybox:latest@{SHA256}"), "docker.io", "library/busybox", latest, d),
            v("lowercase:Uppercase", "docker.io", "library/lowercase", Some("Uppercase"), None),
            // An uppercase first component is read as a host (upstream normalize_test.go).
            v("Docker/docker", "Docker", "docker", latest, None),
            v("DOCKER/docker", "DOCKER", "docker", latest, None),
            v("UPPER/x", "UPPER", "x", latest, None),
            // 64 non-hex characters, and 64 hex characters once a domain disambiguates.
            v("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io", "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", latest, None),
            v("docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker.io", "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", latest, None),
            v("docker-rules/docker", "docker.io", "docker-rules/docker", latest, None),
            v("docker---rules/docker", "docker.io", "docker---rules/docker", latest, None),
            v("dock__er/docker", "docker.io", "dock__er/docker", latest, None),
            v("d/docker", "docker.io", "d/docker", latest, None),
            v("a__b---c/d.e_f", "docker.io", "a__b---c/d.e_f", latest, None),
            v("x:_", "docker.io", "library/x", Some("_"), None),
            // Exactly 255 characters of domain/path.
            v(&format!("example.com/{}", "a".repeat(243)), "example.com", &"a".repeat(243), latest, None),
            v(&"a".repeat(237), "docker.io", &format!("library/{}", "a".repeat(237)), latest, None),
        ]
    }

    #[test]
    fn parses_valid_references() {
        for (input, domain, path, tag, digest) in valid_cases() {
            let r = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), digest, "{input}");
            assert_eq!(ImageRef::parse(&r.to_string()), Ok(r.clone()), "{input}");
            assert_eq!(ImageRef::parse(&r.familiar()), Ok(r.clone()), "{input}");
        }
        let longest_tag = "t".repeat(TAG_MAX_LEN);
        let r = ImageRef::parse(&format!("a:{longest_tag}")).unwrap();
        assert_eq!(r.tag(), Some(longest_tag.as_str()));
    }

    #[rustfmt::skip]
    #[test]
    fn rejects_invalid_references_naming_the_problem() {
        let long_tag = format!("nginx:{}", "t".repeat(129));
        let long_name = format!("example.com/{}", "a".repeat(244));
        let long_familiar = "a".repeat(238);
        let long_familiar_error = format!("(\"docker.io/library/{}...\" is 256)", "a".repeat(42));
        let long_namespace = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker";
        let cases: Vec<(&str, &str)> = vec![
            ("", "the image reference is empty"),
            ("nginx :1", "contains whitespace (' ' at byte 5)"),
            (" nginx", "contains whitespace"),
            ("nginx\n", "contains whitespace"),
            ("https://github.com/docker/docker", "starts with the URL scheme \"https://\"; an image reference has no scheme, remove it: \"github.com/docker/docker\""),
            ("http://x/y", "URL scheme \"http://\""),
            ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "64-character hexadecimal identifier"),
            ("a:b:c", "(path component \"a:b\") is not valid: contains ':'"),
            (":justtag", "the repository name is missing"),
            ("@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "the repository name is missing"),
            ("a@b@c", "more than one '@'"),
            ("nginx:", "invalid tag \"\": is empty"),
            ("nginx:-x", "must start with a letter, a digit or '_', not '-'"),
            ("nginx:a+b", "contains '+'"),
            (&long_tag, "tag \"tttttttttttttttttttt...\" is longer than 128 characters (129)"),
            ("docker/Docker", "invalid reference format: repository name (path component \"Docker\") must be lowercase"),
            ("docker.io/Library/x", "repository name (path component \"Library\") must be lowercase"),
            ("docker.io/docker/Docker", "(path component \"Docker\") must be lowercase"),
            ("Uppercase:tag", "(path component \"Uppercase\") must be lowercase"),
            ("test:5000/Uppercase/lowercase:tag", "(path component \"Uppercase\") must be lowercase"),
            ("Foo_Bar/x", "(path component \"Foo_Bar\") must be lowercase"),
            ("-docker", "(path component \"-docker\") is not valid: must start with a lowercase letter or digit, not \"-\""),
            ("-docker/docker", "must start with a lowercase letter or digit"),
            ("docker-/docker", "must not end with \"-\""),
            ("-docker-/docker", "must start with a lowercase letter or digit"),
            ("____/____", "must start with a lowercase letter or digit, not \"____\""),
            ("_docker/_docker", "not \"_\""),
            // A '.' makes the first component a host (upstream splitDockerDomain).
            ("dock..er/docker", "host \"dock..er\" is not valid: has an empty label"),
            ("dock_.er/docker", "host \"dock_.er\" is not valid: contains '_'"),
            ("dock-.er/docker", "label \"dock-\" must not start or end with '-'"),
            ("docker/dock..er", "separator \"..\" is not allowed"),
            ("docker/dock_.er", "separator \"_.\" is not allowed"),
            ("docker/dock-.er", "separator \"-.\" is not allowed"),
            ("dock___er/docker", "separator \"___\" is not allowed"),
            ("docker/", "(path component \"\") is not valid: is empty"),
            ("docker///docker", "is empty"),
            ("docker.io/docker///docker", "is empty"),
            ("aa/asdf$$^/aa", "(path component \"asdf$$^\") is not valid: contains '$'"),
            ("naïve/x", "contains 'ï'"),
            ("-docker.io/docker/docker", "host \"-docker.io\" is not valid: label \"-docker\" must not start or end with '-'"),
            ("a_b.com/x", "host \"a_b.com\" is not valid: contains '_'"),
            ("example..com/x", "empty label"),
            ("example.com:/x", "port \"\" must be a number"),
            ("example.com:50a/x", "port \"50a\" must be a number"),
            ("fc00::1:5000/debian", "host \"fc00::1:5000\" is not valid: port \":1:5000\" must be a number"),
            ("[fc00::1]", "names only a registry host"),
            ("[fc00::1]:5000", "names only a registry host"),
            ("[2001:db8::1]:tag", "names only a registry host"),
            ("[fe80::1%eth0]:5000/debian", "IPv6 address \"fe80::1%eth0\" may only contain hex digits and ':'"),
            ("[2001:db8:3:4::192.0.2.33]:5000/debian", "may only contain hex digits"),
            ("[::1/x", "not closed with ']'"),
            ("[::1]x/y", "unexpected \"x\" after ']'"),
            (&long_name, "repository name must not be longer than 255 characters"),
            (&long_familiar, &long_familiar_error),
            (long_namespace, "must not be longer than 255 characters"),
            ("repo@sha256:ffffffffffffffffffffffffffffffffff", "invalid digest \"sha256:ffffffffffffffffffffffffffffffffff\": sha256 needs 64 lowercase hex characters, found 34"),
            ("x@sha256:abc", "invalid digest \"sha256:abc\": sha256 needs 64 lowercase hex characters, found 3"),
            ("x@sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "needs 64 lowercase hex characters, found 'F'"),
            ("x@sha512:ffff", "sha512 needs 128 lowercase hex characters, found 4"),
            ("validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "unsupported digest algorithm \"invaliddigest\""),
            ("x@SHA256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "algorithm names are lowercase: \"sha256\""),
            ("x@sha256", "expected algorithm:hex"),
            ("x@:ffff", "the algorithm before ':' is empty"),
            ("x@1sha:ffff", "each part must start with a letter"),
            ("x@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff:1", "found ':'"),
        ];
        for (input, expected) in cases {
            let err = ImageRef::parse(input).expect_err(input).to_string();
            assert!(err.contains(expected), "{input:?}: {err:?} does not contain {expected:?}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn normalized_familiar_and_pull_forms() {
        let d = SHA256;
        // (input, normalized, familiar, pull_reference)
        let cases: Vec<(String, String, String, String)> = [
            ("nginx", "docker.io/library/nginx:latest", "nginx:latest", "docker.io/library/nginx:latest"),
            ("docker.io/user/app", "docker.io/user/app:latest", "user/app:latest", "docker.io/user/app:latest"),
            ("index.docker.io/library/nginx", "docker.io/library/nginx:latest", "nginx:latest", "docker.io/library/nginx:latest"),
            ("docker.io/library/foo/bar:1", "docker.io/library/foo/bar:1", "library/foo/bar:1", "docker.io/library/foo/bar:1"),
            ("ghcr.io/org/app:v2", "ghcr.io/org/app:v2", "ghcr.io/org/app:v2", "ghcr.io/org/app:v2"),
            ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest", "Foo/bar:latest"),
            ("busybox:latest@{d}", "docker.io/library/busybox:latest@{d}", "busybox:latest@{d}", "docker.io/library/busybox@{d}"),
            ("ghcr.io/o/a@{d}", "ghcr.io/o/a@{d}", "ghcr.io/o/a@{d}", "ghcr.io/o/a@{d}"),
            // Upstream would print "a.b/c" and "localhost/x", which read back as registries.
            ("docker.io/a.b/c", "docker.io/a.b/c:latest", "docker.io/a.b/c:latest", "docker.io/a.b/c:latest"),
            ("docker.io/localhost/x", "docker.io/localhost/x:latest", "docker.io/localhost/x:latest", "docker.io/localhost/x:latest"),
            ("docker.io/a.b", "docker.io/library/a.b:latest", "a.b:latest", "docker.io/library/a.b:latest"),
        ]
        .iter()
        .map(|row| {
            let fill = |s: &str| s.replace("{d}", d);
            (fill(row.0), fill(row.1), fill(row.2), fill(row.3))
        })
        .collect();
        for (input, normalized, familiar, pull) in cases {
            let r = ImageRef::parse(&input).unwrap();
            assert_eq!(r.normalized(), normalized, "{input}");
            assert_eq!(r.to_string(), normalized, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.pull_reference(), pull, "{input}");
            assert_eq!(ImageRef::parse(&familiar).as_ref(), Ok(&r), "{input}");
        }
        let r = ImageRef::parse("docker.io/library/redis:7").unwrap();
        assert_eq!(r.name(), "docker.io/library/redis");
        assert_eq!(r.familiar_name(), "redis");
    }

    #[rustfmt::skip]
    #[test]
    fn registry_and_api_hosts() {
        // (input, registry_host, api_host)
        let cases = [
            ("nginx", "docker.io", "registry-1.docker.io"),
            ("index.docker.io/library/nginx", "docker.io", "registry-1.docker.io"),
            ("registry-1.docker.io/library/nginx", "docker.io", "registry-1.docker.io"),
            ("registry.hub.docker.com/user/app", "docker.io", "registry-1.docker.io"),
            ("registry.docker.com/user/app", "docker.io", "registry-1.docker.io"),
            ("Registry.Docker.COM/user/app", "docker.io", "registry-1.docker.io"),
            ("ghcr.io/org/app", "ghcr.io", "ghcr.io"),
            ("GHCR.io/org/app", "ghcr.io", "GHCR.io"),
            ("localhost:5000/a", "localhost:5000", "localhost:5000"),
            ("docker.io:443/a/b", "docker.io:443", "docker.io:443"),
            ("[::1]:5000/x", "[::1]:5000", "[::1]:5000"),
        ];
        for (input, registry, api) in cases {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.registry_host(), registry, "{input}");
            assert_eq!(r.api_host(), api, "{input}");
        }
        assert_eq!(canonical_registry_host("Index.Docker.io"), "docker.io");
        assert_eq!(canonical_registry_host("Example.COM:5000"), "example.com:5000");
        assert_eq!(canonical_registry_host("index.docker.io:443"), "index.docker.io:443");
    }

    #[test]
    fn with_tag_and_with_digest_validate() {
        let r = ImageRef::parse("test.com:8000/foo").unwrap();
        assert_eq!(
            r.with_tag("TAG5").unwrap().to_string(),
            "test.com:8000/foo:TAG5"
        );
        let pinned = r.with_digest(SHA256).unwrap();
        assert_eq!(
            pinned.to_string(),
            format!("test.com:8000/foo:latest@{SHA256}")
        );
        assert_eq!(
            pinned.pull_reference(),
            format!("test.com:8000/foo@{SHA256}")
        );
        let digest_only = ImageRef::parse(&format!("test.com/foo@{SHA256}")).unwrap();
        assert_eq!(
            digest_only.with_tag("v1").unwrap().to_string(),
            format!("test.com/foo:v1@{SHA256}")
        );
        assert_eq!(
            digest_only.retagged("v2").unwrap().to_string(),
            "test.com/foo:v2"
        );
        assert!(r.retagged("-foo").is_err());
        assert!(r.with_tag("-foo").is_err());
        assert!(r.with_tag("").is_err());
        assert!(r.with_digest("foo").is_err());
        // Upstream's WithDigest accepts this shape; it would not parse back, so refuse it.
        assert!(
            r.with_digest("sha256:1234567890098765432112345667890098765")
                .is_err()
        );
    }

    #[rustfmt::skip]
    #[test]
    fn validates_registry_hosts() {
        let valid = [
            "ghcr.io", "localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000", "[::1]",
            "[::1]:5000", "[2001:db8::1]:443", "Registry.Example.COM", "xn--n3h.com:18080", "registry",
        ];
        for ok in valid {
            assert_eq!(validate_registry_host(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "is empty"),
            ("https://ghcr.io", "a scheme is not allowed: remove \"https://\" and give only host[:port] (\"ghcr.io\")"),
            ("http://x/v2/", "remove \"http://\""),
            ("ghcr.io/org", "must not contain a path (\"/org\")"),
            ("ghcr.io/", "must not contain a path"),
            ("user:pw@ghcr.io", "must not contain user information"),
            ("ghcr .io", "contains whitespace"),
            ("ghcr.io:", "port \"\" must be a number"),
            ("ghcr.io:http", "port \"http\" must be a number"),
            ("ghcr.io:0", "port 0 is not in 1-65535"),
            ("ghcr.io:65536", "port 65536 is not in 1-65535"),
            ("ghcr.io:99999999999999999999", "is not in 1-65535"),
            ("gh_cr.io", "contains '_'"),
            ("-ghcr.io", "must not start or end with '-'"),
            ("ghcr..io", "empty label"),
            ("[fe80::1%eth0]:5000", "may only contain hex digits"),
            ("[::1", "not closed"),
        ];
        for (input, expected) in cases {
            let err = validate_registry_host(input).expect_err(input).to_string();
            assert!(err.contains(expected), "{input:?}: {err:?} does not contain {expected:?}");
            assert!(err.starts_with("invalid reference format: host "), "{err}");
        }
    }

    #[test]
    fn tags_and_digests_on_their_own() {
        for ok in [
            "latest",
            "1.25",
            "_",
            "A",
            "v1.2.3-rc.1_x",
            &"t".repeat(128),
        ] {
            assert_eq!(validate_tag(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", "a@b", "ä", &"t".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
        let sha384 = format!("sha384:{}", "0".repeat(96));
        for ok in [SHA256, SHA512, sha384.as_str()] {
            assert_eq!(validate_digest(ok), Ok(()), "{ok}");
        }
        let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e";
        for bad in ["", "sha256", "sha256:", ":abc", md5, "sha256+b64:abc"] {
            assert!(validate_digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip_as_string() {
        let r: ImageRef = serde_json::from_str("\"nginx:1.25\"").unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"docker.io/library/nginx:1.25\""
        );
        let err = serde_json::from_str::<ImageRef>("\"docker.io/Library/x\"").unwrap_err();
        assert!(err.to_string().contains("must be lowercase"), "{err}");
        assert_eq!("nginx".parse::<ImageRef>(), ImageRef::parse("nginx"));
    }

    // Property tests: references generated from the grammar parse to the parts they were made
    // of and survive printing; arbitrary input never panics.

    fn domain_component() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?"
    }

    /// Hosts that upstream's splitDockerDomain recognises as hosts, with an optional port.
    fn domain() -> impl Strategy<Value = String> {
        let name = prop::collection::vec(domain_component(), 1..4).prop_map(|c| c.join("."));
        let ipv6 = "[0-9a-fA-F:]{1,12}".prop_map(|a| format!("[{a}]"));
        let host = prop_oneof![
            4 => name,
            1 => ipv6,
            1 => Just("localhost".to_owned()),
            1 => Just("index.docker.io".to_owned()),
            1 => Just("docker.io".to_owned()),
        ];
        (host, prop::option::of(0u32..100_000))
            .prop_map(|(host, port)| match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
            .prop_filter("read as a host", |d| {
                d == "localhost"
                    || d.contains(['.', ':'])
                    || d.bytes().any(|b| b.is_ascii_uppercase())
            })
    }

    fn path() -> impl Strategy<Value = String> {
        let component = "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}";
        prop::collection::vec(component, 1..5).prop_map(|c| c.join("/"))
    }

    fn tag() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    }

    fn digest() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
            "[0-9a-f]{96}".prop_map(|h| format!("sha384:{h}")),
            "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
        ]
    }

    fn check_round_trips(r: &ImageRef) -> Result<(), TestCaseError> {
        prop_assert_eq!(&ImageRef::parse(&r.to_string()), &Ok(r.clone()));
        prop_assert_eq!(&ImageRef::parse(&r.familiar()), &Ok(r.clone()));
        let pulled = ImageRef::parse(&r.pull_reference()).map(|p| p.name());
        prop_assert_eq!(pulled, Ok(r.name()));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_references_parse_and_round_trip(
            domain in prop::option::of(domain()),
            path in path(),
            tag in prop::option::of(tag()),
            digest in prop::option::of(digest()),
        ) {
            let mut input = match &domain {
                Some(domain) => format!("{domain}/{path}"),
                None => path.clone(),
            };
            if let Some(tag) = &tag {
                input = format!("{input}:{tag}");
            }
            if let Some(digest) = &digest {
                input = format!("{input}@{digest}");
            }
            // Without a domain, a first component with a '.' is read as the registry.
            prop_assume!(
                domain.is_some()
                    || !path.split_once('/').is_some_and(|(first, _)| first.contains('.'))
            );
            let r = ImageRef::parse(&input)
                .map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;

            let expected_domain = match domain.as_deref() {
                None | Some("index.docker.io") => "docker.io",
                Some(d) => d,
            };
            let expected_path = if expected_domain == "docker.io" && !path.contains('/') {
                format!("library/{path}")
            } else {
                path.clone()
            };
            prop_assert_eq!(r.domain(), expected_domain);
            prop_assert_eq!(r.path(), expected_path.as_str());
            let expected_tag = match (&tag, &digest) {
                (None, None) => Some("latest"),
                (tag, _) => tag.as_deref(),
            };
            prop_assert_eq!(r.tag(), expected_tag);
            prop_assert_eq!(r.digest(), digest.as_deref());
            check_round_trips(&r)?;
        }

        #[test]
        fn parse_never_panics_on_arbitrary_strings(input in any::<String>()) {
            if let Ok(r) = ImageRef::parse(&input) {
                check_round_trips(&r)?;
            }
        }

        #[test]
        fn parse_never_panics_on_reference_like_strings(
            input in "[a-zA-Z0-9._:/@\\[\\]-]{0,40}",
        ) {
            if let Ok(r) = ImageRef::parse(&input) {
                check_round_trips(&r)?;
            }
            let _ = validate_registry_host(&input);
        }
    }
}
