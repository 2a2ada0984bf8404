//! Auto-deploy policies (pure): which tag of a repository a component should run, given the
//! tags the registry lists. `digest` follows one tag's digest (decided by the poller, which
//! resolves it); `semver` takes the highest version in a range; `regex` takes the greatest
//! matching tag in a sort order. Also the wire types of the auto-deploy API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The default and minimum time between two registry checks of a component.
pub const DEFAULT_INTERVAL_SECONDS: u32 = 60;
pub const MIN_INTERVAL_SECONDS: u32 = 30;
pub const MAX_INTERVAL_SECONDS: u32 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// The tracked tag moved to a new digest.
    Digest,
    /// The highest version tag in a semver range (`^1.2`, `~1.4`, `>=1.0, <2`).
    Semver,
    /// The greatest tag matching a regular expression, in a sort order.
    Regex,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Digest => "digest",
            PolicyKind::Semver => "semver",
            PolicyKind::Regex => "regex",
        }
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "digest" => Ok(PolicyKind::Digest),
            "semver" => Ok(PolicyKind::Semver),
            "regex" => Ok(PolicyKind::Regex),
            _ => Err(format!("unknown policy {s:?}; use digest, semver or regex")),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Byte order of the first capture group (the whole tag without one).
    #[default]
    Alphabetical,
    /// Numeric order of the first capture group, which must be digits.
    Numeric,
}

impl SortOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Alphabetical => "alphabetical",
            SortOrder::Numeric => "numeric",
        }
    }
}

impl std::str::FromStr for SortOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "alphabetical" => Ok(SortOrder::Alphabetical),
            "numeric" => Ok(SortOrder::Numeric),
            _ => Err(format!("unknown sort {s:?}; use alphabetical or numeric")),
        }
    }
}

/// The auto-deploy settings of a component and what its last check saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoDeploy {
    pub org: String,
    pub project: String,
    pub component: String,
    pub policy: PolicyKind,
    /// `digest`: the tracked tag (the component's tag when unset).
    pub tag: Option<String>,
    /// `semver`: the version range.
    pub range: Option<String>,
    /// `regex`: the pattern a whole tag must match.
    pub regex: Option<String>,
    /// `regex`: the sort order.
    pub sort: Option<SortOrder>,
    pub interval_seconds: u32,
    pub enabled: bool,
    pub last_checked_at: Option<String>,
    /// The tag and digest the last check chose.
    pub last_tag: Option<String>,
    pub last_digest: Option<String>,
    /// The last check's error, cleared by a successful check.
    pub last_error: Option<String>,
    pub updated_at: String,
}

/// Body of `PUT …/auto-deploy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutAutoDeploy {
    pub policy: PolicyKind,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub range: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub sort: Option<SortOrder>,
    /// Seconds between checks: default 60, at least 30.
    #[serde(default)]
    pub interval_seconds: Option<u32>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckDecision {
    /// A new deployment was created.
    Deploy,
    /// Nothing to do: no candidate, or the candidate is what already runs.
    None,
    /// The registry or the deploy failed; see `message`.
    Error,
}

/// Answer of `POST …/auto-deploy/check`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoDeployCheck {
    pub decision: CheckDecision,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// The deployment created (decision `deploy`).
    pub deployment_id: Option<String>,
    pub message: String,
}

/// Answer of `POST /api/v1/orgs/{org}/registries/{registry}/notification-secret`: the secret
/// (shown once) and the URL to configure as the registry's notification endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryNotificationSecret {
    pub registry: String,
    /// Sent by the registry as `Authorization: Bearer <secret>`.
    pub secret: String,
    pub url: String,
}

/// Answer of the registry notification receiver: how many components it is checking.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryNotificationAccepted {
    pub checks: u32,
}

/// The repositories named by the push events of a CNCF distribution notification envelope
/// (`{"events": [{"action": "push", "target": {"repository", "tag", "mediaType"}}]}`): manifest
/// pushes only (a tag or a manifest media type), each repository once, in order.
pub fn pushed_repositories(envelope: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let events = envelope["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for e in events {
        let target = &e["target"];
        let manifest = target["tag"].as_str().is_some_and(|t| !t.is_empty())
            || target["mediaType"]
                .as_str()
                .is_some_and(|m| m.contains("manifest") || m.contains("index"));
        if e["action"] != "push" || !manifest {
            continue;
        }
        if let Some(repo) = target["repository"].as_str()
            && !repo.is_empty()
            && !out.iter().any(|r| r == repo)
        {
            out.push(repo.to_owned());
        }
    }
    out
}

/// Parses a semver range; a leading `v` on versions inside it is accepted.
pub fn parse_range(range: &str) -> Result<semver::VersionReq, String> {
    let cleaned: String = range
        .split(',')
        .map(|part| {
            let p = part.trim();
            let ops = p.trim_start_matches(['^', '~', '=', '>', '<', ' ']);
            let op = &p[..p.len() - ops.len()];
            let ops = ops.strip_prefix(['v', 'V']).unwrap_or(ops);
            format!("{op}{ops}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    if range.trim().is_empty() {
        return Err("must not be empty (e.g. ^1.2)".into());
    }
    semver::VersionReq::parse(&cleaned)
        .map_err(|e| format!("{range:?} is not a semver range (e.g. ^1.2, ~1.4.0, >=1.0, <2): {e}"))
}

/// A tag as a version: `1.2.3`, `v1.2.3`, `1.3.0-rc.1`; anything else is not one.
pub fn tag_version(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    semver::Version::parse(t).ok()
}

/// The highest tag in `range` (pre-releases only when the range names one for the same
/// version, as in npm/Cargo). Equal versions (`1.3.0` and `v1.3.0`) prefer the tag without `v`.
pub fn select_semver<'a>(range: &semver::VersionReq, tags: &'a [String]) -> Option<&'a str> {
    tags.iter()
        .filter_map(|t| tag_version(t).map(|v| (v, t)))
        .filter(|(v, _)| range.matches(v))
        .max_by(|(a, ta), (b, tb)| a.cmp(b).then_with(|| tb.len().cmp(&ta.len())))
        .map(|(_, t)| t.as_str())
}

/// Compiles a tag pattern; it must match the whole tag.
pub fn parse_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.is_empty() {
        return Err("must not be empty (e.g. ^build-(\\d+)$)".into());
    }
    if pattern.len() > 512 {
        return Err("must be at most 512 characters".into());
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("{pattern:?} is not a valid regular expression: {e}"))
}

/// The greatest matching tag by the first capture group (the whole tag without one);
/// `numeric` skips tags whose group is not a number. Ties go to the greater whole tag.
pub fn select_regex<'a>(re: &regex::Regex, sort: SortOrder, tags: &'a [String]) -> Option<&'a str> {
    let key = |t: &'a String| -> Option<&'a str> {
        let caps = re.captures(t)?;
        Some(caps.get(1).map_or(t.as_str(), |m| m.as_str()))
    };
    match sort {
        SortOrder::Alphabetical => tags
            .iter()
            .filter_map(|t| key(t).map(|k| (k, t)))
            .max_by(|(a, ta), (b, tb)| a.cmp(b).then_with(|| ta.cmp(tb)))
            .map(|(_, t)| t.as_str()),
        SortOrder::Numeric => tags
            .iter()
            .filter_map(|t| {
                let k = key(t)?;
                let n: u128 = if k.bytes().all(|b| b.is_ascii_digit()) {
                    k.parse().ok()?
                } else {
                    return None;
                };
                Some((n, t))
            })
            .max_by(|(a, ta), (b, tb)| a.cmp(b).then_with(|| ta.cmp(tb)))
            .map(|(_, t)| t.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn semver_table() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("^1.2", &["1.2.9", "1.3.0", "2.0.0"], Some("1.3.0")),
            (
                "^1.2",
                &["1.2.9", "1.3.0", "2.0.0", "latest"],
                Some("1.3.0"),
            ),
            ("^1.2", &["v1.2.9", "v1.3.0", "v2.0.0"], Some("v1.3.0")),
            ("^1.2", &["1.3.0", "v1.3.0"], Some("1.3.0")),
            ("^1.2", &["1.1.0", "2.0.0"], None),
            ("^1.2", &["1.3.0", "1.4.0-rc.1"], Some("1.3.0")),
            (
                "^1.4.0-rc.1",
                &["1.3.0", "1.4.0-rc.1", "1.4.0-rc.2"],
                Some("1.4.0-rc.2"),
            ),
            ("^1.4.0-rc.1", &["1.4.0-rc.2", "1.4.0"], Some("1.4.0")),
            ("~1.2", &["1.2.0", "1.2.9", "1.3.0"], Some("1.2.9")),
            ("~1.2.3", &["1.2.2", "1.2.4", "1.3.0"], Some("1.2.4")),
            (">=1.0, <2", &["0.9.0", "1.9.9", "2.0.0"], Some("1.9.9")),
            ("=1.2.9", &["1.2.9", "1.3.0"], Some("1.2.9")),
            ("^v1.2", &["1.3.0"], Some("1.3.0")),
            ("^0.2", &["0.2.5", "0.3.0"], Some("0.2.5")),
            ("*", &["1.0.0", "3.0.0", "3.1.0-beta"], Some("3.0.0")),
        ];
        for (range, list, want) in cases {
            let r = parse_range(range).unwrap_or_else(|e| panic!("{range}: {e}"));
            let t = tags(list);
            assert_eq!(select_semver(&r, &t), *want, "{range} over {list:?}");
        }
    }

    #[test]
    fn bad_ranges() {
        for r in ["", "banana", "^1.x.y.z", ">>1"] {
            assert!(parse_range(r).is_err(), "{r:?}");
        }
    }

    #[test]
    fn notification_envelopes() {
        let envelope = serde_json::json!({"events": [
            {"action": "push", "target": {"mediaType": "application/octet-stream", "repository": "blobs/only"}},
            {"action": "pull", "target": {"tag": "v1", "repository": "pulled"}},
            {"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "test/web", "tag": "v2"}},
            {"action": "push", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "repository": "test/web"}},
            {"action": "push", "target": {"tag": "1.0.0", "repository": "team/api"}},
        ]});
        assert_eq!(pushed_repositories(&envelope), ["test/web", "team/api"]);
        assert!(pushed_repositories(&serde_json::json!({"nope": 1})).is_empty());
    }

    #[test]
    fn regex_table() {
        use SortOrder::*;
        let cases: &[(&str, SortOrder, &[&str], Option<&str>)] = &[
            (
                r"build-(\d+)",
                Numeric,
                &["build-9", "build-10", "build-2"],
                Some("build-10"),
            ),
            (
                r"build-(\d+)",
                Alphabetical,
                &["build-9", "build-10", "build-2"],
                Some("build-9"),
            ),
            (
                r"main-.*",
                Alphabetical,
                &["main-a", "main-c", "dev-z"],
                Some("main-c"),
            ),
            (r"(\d+)", Numeric, &["x1", "12", "3"], Some("12")),
            (r"rel-(.*)", Numeric, &["rel-x", "rel-4"], Some("rel-4")),
            (r"rel-(.*)", Numeric, &["rel-x"], None),
            (r"build-\d+", Alphabetical, &["prebuild-9x"], None),
        ];
        for (pattern, sort, list, want) in cases {
            let re = parse_regex(pattern).unwrap();
            let t = tags(list);
            assert_eq!(
                select_regex(&re, *sort, &t),
                *want,
                "{pattern} {sort:?} {list:?}"
            );
        }
        assert!(parse_regex("(unclosed").is_err());
        assert!(parse_regex("").is_err());
    }
}
