//! The string grammars of Choreo's source configuration files, written out by hand (the
//! validator's regular expressions use look-ahead, which Rust's `regex` does not have, and
//! berth-core takes no regex dependency for a handful of patterns). Each function names the
//! pattern it implements.

use super::read::is_js_space;

/// `[a-zA-Z0-9_-]+`: a handle in a service or connection reference.
fn is_handle(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `\d+(\.\d+)*` (or `\d+(\.\d+)?` when `one_dot`).
fn is_dotted_number(s: &str, one_dot: bool) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (!one_dot || parts.len() <= 2)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[vV]\d+(\.\d+)*`: a major version in `resourceRef`s and third-party references.
fn is_version(s: &str) -> bool {
    s.strip_prefix(['v', 'V'])
        .is_some_and(|rest| is_dotted_number(rest, false))
}

/// `^/[a-zA-Z0-9/\-_]*$`: an endpoints.yaml `context` or a component.yaml `basePath`.
pub(super) fn is_base_path(s: &str) -> bool {
    s.strip_prefix('/').is_some_and(|rest| {
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
    })
}

/// `^[a-z][a-z0-9_-]*$`: a component.yaml endpoint name.
pub(super) fn is_endpoint_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `^[a-zA-Z_][a-zA-Z0-9_]*$`: an environment variable name.
pub(super) fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// yup's `string().uuid()`: RFC 4122 versions 1–5 (or the nil UUID), any case.
pub(super) fn is_uuid(s: &str) -> bool {
    if s == "00000000-0000-0000-0000-000000000000" {
        return true;
    }
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
        && matches!(groups[2].as_bytes()[0], b'1'..=b'5')
        && matches!(
            groups[3].as_bytes()[0].to_ascii_lowercase(),
            b'8' | b'9' | b'a' | b'b'
        )
}

/// A connection reference name:
/// `^[\s]*(?!.*[^a-zA-Z0-9][^a-zA-Z0-9])[a-zA-Z0-9][a-zA-Z0-9 _\-.]{1,48}[a-zA-Z0-9][\s]*$` —
/// 3 to 50 characters that start and end with a letter or digit, with single delimiters
/// (`_`, `-`, `.`, space) between them.
pub(super) fn is_connection_name(s: &str) -> bool {
    let rest = s.trim_start_matches(is_js_space);
    // The look-ahead: no two delimiters in a row anywhere after the leading spaces (`.` stops
    // at a line break, but a line break cannot appear in a valid name anyway).
    let chars: Vec<char> = rest.chars().collect();
    if chars
        .windows(2)
        .any(|w| !w[0].is_ascii_alphanumeric() && !w[1].is_ascii_alphanumeric())
    {
        return false;
    }
    let core: Vec<char> = rest.trim_end_matches(is_js_space).chars().collect();
    let (Some(first), Some(last)) = (core.first(), core.last()) else {
        return false;
    };
    let middle = &core[1..core.len().saturating_sub(1).max(1)];
    core.len() >= 3
        && core.len() <= 50
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && middle
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
}

/// `^thirdparty:([a-zA-Z0-9\s_.-]+)\/([vV]\d+(\.\d+)*)$`.
fn is_third_party(rest: &str) -> bool {
    rest.split_once('/').is_some_and(|(name, version)| {
        !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric() || is_js_space(c) || matches!(c, '_' | '.' | '-')
            })
            && is_version(version)
    })
}

/// `^database:(([a-zA-Z0-9_-]+)\/)?([a-zA-Z0-9_-]+)$`.
fn is_database(rest: &str) -> bool {
    match rest.split_once('/') {
        Some((server, db)) => is_handle(server) && is_handle(db),
        None => is_handle(rest),
    }
}

/// `^choreo:\/\/\/H\/H\/H\/H\/v\d+(\.\d+)?\/(PUBLIC|PROJECT|ORGANIZATION)$` (H a handle).
fn is_choreo_service(rest: &str) -> bool {
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() == 6
        && parts[..4].iter().all(|p| is_handle(p))
        && parts[4]
            .strip_prefix('v')
            .is_some_and(|n| is_dotted_number(n, true))
        && matches!(parts[5], "PUBLIC" | "PROJECT" | "ORGANIZATION")
}

/// `^(service:)?(\/([a-zA-Z0-9_-]+)\/)?([a-zA-Z0-9_-]+)\/([vV]\d+(\.\d+)*)(\/([a-zA-Z0-9_-]+))?(\/(PUBLIC|PROJECT|ORGANIZATION))?$`:
/// `[service:][/project/]component/major-version[/endpoint][/visibility]`.
fn is_service_resource(s: &str) -> bool {
    let s = s.strip_prefix("service:").unwrap_or(s);
    let rest = match s.strip_prefix('/') {
        // The project handle, then the rest.
        Some(after) => match after.split_once('/') {
            Some((project, rest)) if is_handle(project) => rest,
            _ => return false,
        },
        None => s,
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let visibility = |p: &str| matches!(p, "PUBLIC" | "PROJECT" | "ORGANIZATION");
    parts.len() >= 2
        && is_handle(parts[0])
        && is_version(parts[1])
        && match &parts[2..] {
            [] => true,
            // An endpoint handle or a visibility (which is a handle too).
            [one] => is_handle(one),
            [endpoint, vis] => is_handle(endpoint) && visibility(vis),
            _ => false,
        }
}

const CHOREO_NAME_FORMAT: &str = "has an invalid service identifier. Use the format choreo:///<org-handle>/<project-handle>/<component-handle>/<endpoint-identifier>/<major-version>/<network-visibility>";
const THIRD_PARTY_FORMAT: &str = "has an invalid service identifier. Use the format thirdparty:<service_name>/<version>, allowing only alphanumeric characters, periods (.), underscores (_), hyphens (-), and slashes (/) after thirdparty:.";
const DATABASE_FORMAT: &str = "has an invalid service identifier. Use the format database:[<serverName>/]<databaseName> where optional fields are in brackets, allowing only alphanumeric characters, underscores (_), hyphens (-), and slashes (/) after database:.";
const UNKNOWN_SERVICE_TYPE: &str =
    "has an invalid service identifier. It can only contain choreo, thirdparty, or database types.";
const SERVICE_FORMAT: &str = "has an invalid service identifier. Use the format [service:][/<project-handle>/]<component-handle>/<major-version>[/<endpoint-handle>][/<network-visibility>] where optional fields are specified in brackets.";
const ANY_RESOURCE_FORMAT: &str = "has an invalid service identifier. For services, use [service:][/<project-handle>/]<component-handle>/<major-version>[/<endpoint-handle>][/<network-visibility>]. For databases, use database:[<serverName>/]<databaseName>. For third-party services, use thirdparty:<service_name>/<version>. Optional fields are specified in brackets.";

/// A `dependencies.serviceReferences[].name` (Choreo's `validateServiceName`); the error is
/// the message after the field's path.
pub(super) fn check_service_reference_name(s: &str) -> Result<(), &'static str> {
    if let Some(rest) = s.strip_prefix("choreo:///") {
        return is_choreo_service(rest)
            .then_some(())
            .ok_or(CHOREO_NAME_FORMAT);
    }
    if let Some(rest) = s.strip_prefix("thirdparty:") {
        return is_third_party(rest).then_some(()).ok_or(THIRD_PARTY_FORMAT);
    }
    if let Some(rest) = s.strip_prefix("database:") {
        return is_database(rest).then_some(()).ok_or(DATABASE_FORMAT);
    }
    Err(UNKNOWN_SERVICE_TYPE)
}

/// A `dependencies.connectionReferences[].resourceRef` (Choreo's `validateResourceRef`).
pub(super) fn check_resource_ref(s: &str) -> Result<(), &'static str> {
    if s.starts_with("service:") {
        return is_service_resource(s).then_some(()).ok_or(SERVICE_FORMAT);
    }
    if let Some(rest) = s.strip_prefix("thirdparty:") {
        return is_third_party(rest).then_some(()).ok_or(THIRD_PARTY_FORMAT);
    }
    if let Some(rest) = s.strip_prefix("database:") {
        return is_database(rest).then_some(()).ok_or(DATABASE_FORMAT);
    }
    // "service:" is optional, so anything else may still be a service.
    is_service_resource(s)
        .then_some(())
        .ok_or(ANY_RESOURCE_FORMAT)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases from choreo-source-config-validator's test/component-yaml-samples.js (with their
    // verdicts from test/schema.test.js), plus edges of each pattern.
    #[rustfmt::skip]
    #[test]
    fn resource_refs() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("service:/mttm/mmvhxd/v1.1/ad088/PUBLIC", Ok(())),
            ("service:mttm/mmvhxd/v1.1/ad088/PUBLIC", Err(SERVICE_FORMAT)),
            ("service:/mttm/mmvhxd/v1.1/ad088/PRIVATE", Err(SERVICE_FORMAT)),
            ("/mttm/mmvhxd/v1.1/ad088/PUBLIC", Ok(())),
            ("mttm/mmvhxd/v1.1/ad088/PUBLIC", Err(ANY_RESOURCE_FORMAT)),
            ("mmvhxd/v1.1/ad088/PUBLIC", Ok(())),
            ("mmvhxd/v1.1/PUBLIC", Ok(())),
            ("mmvhxd/v1.1/ad088", Ok(())),
            ("mmvhxd/v1.1/ad088/", Err(ANY_RESOURCE_FORMAT)),
            ("mmvhxd/v1.1", Ok(())),
            ("mmvhxd/v1.1/", Err(ANY_RESOURCE_FORMAT)),
            ("/mmtm/mmvhxd/v1.1", Ok(())),
            ("service:/HRProject/UserComponent/v1/ad088/PUBLIC", Ok(())),
            ("thirdparty:mttm/v1.1", Ok(())),
            ("thirdparty:mttm/v1.1/invalid", Err(THIRD_PARTY_FORMAT)),
            ("thirdparty:v1.1", Err(THIRD_PARTY_FORMAT)),
            ("thirdparty:mmtm/", Err(THIRD_PARTY_FORMAT)),
            ("database:mySqlDbServer/hotelDb", Ok(())),
            ("database:hotelDb", Ok(())),
            ("database:mySqlDbServerV1.1/hotelDb", Err(DATABASE_FORMAT)),
            ("database:mySqlDbServer/hotelDb/invalid", Err(DATABASE_FORMAT)),
            ("database:/mySqlDbServer/hotelDb", Err(DATABASE_FORMAT)),
            ("THIRDPARTY:mySqlDbServer/hotelDb/invalid", Err(ANY_RESOURCE_FORMAT)),
            ("comp/V2.0.1", Ok(())),
            ("comp/v", Err(ANY_RESOURCE_FORMAT)),
            ("comp/v1./x", Err(ANY_RESOURCE_FORMAT)),
            ("", Err(ANY_RESOURCE_FORMAT)),
        ];
        for (input, want) in cases {
            assert_eq!(check_resource_ref(input), *want, "{input:?}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn service_reference_names() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC", Ok(())),
            ("choreo:///user123/project456/service789/instance000/v2.3/PROJECT", Ok(())),
            ("choreo:///service_name/project_name/component_name/instance_name/v1/PRIVATE", Err(CHOREO_NAME_FORMAT)),
            ("choreo:///a/b/c/d/v1.2.3/PUBLIC", Err(CHOREO_NAME_FORMAT)),
            ("choreo:///a/b/c/d/V1/PUBLIC", Err(CHOREO_NAME_FORMAT)),
            ("choreo://service_name/project_name/component_name/instance_name/v1/PUBLIC", Err(UNKNOWN_SERVICE_TYPE)),
            ("thirdparty:service name_test-v1.1/v1.1", Ok(())),
            ("thirdparty:some-service_v1.0/path/to/resource", Err(THIRD_PARTY_FORMAT)),
            ("thirdparty:service*name", Err(THIRD_PARTY_FORMAT)),
            ("database:my_database-1/service-123", Ok(())),
            ("database:service*name", Err(DATABASE_FORMAT)),
            ("database:my_database.com/service-123/instance_1", Err(DATABASE_FORMAT)),
            ("http://example.com", Err(UNKNOWN_SERVICE_TYPE)),
        ];
        for (input, want) in cases {
            assert_eq!(check_service_reference_name(input), *want, "{input:?}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn connection_names() {
        for ok in ["valid_connection_name", "valid connection name-v1.1", "Valid Connection Name ", "  hr-connection", "abc", "a1234567890123456789012345678901234567890123456789"] {
            assert!(is_connection_name(ok), "{ok:?} should be valid");
        }
        for bad in ["invalid__connection_name", "invalid connection name-v1.1.", "Invalid Connection Name_ ", "ab", "_abc", "abc  ", "a b-", "a\tb", "x123456789012345678901234567890123456789012345678901", ""] {
            assert!(!is_connection_name(bad), "{bad:?} should be invalid");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn small_patterns() {
        for (s, want) in [("/", true), ("/greeting-service/v1_2", true), ("", false), ("greeting", false), ("/a b", false), ("/invalid_path_with_special&chars", false), ("/ä", false)] {
            assert_eq!(is_base_path(s), want, "base path {s:?}");
        }
        for (s, want) in [("greeter-sample", true), ("a_1-b", true), ("InvalidString", false), ("1invalid-start", false), ("-a", false), ("", false), ("a.b", false)] {
            assert_eq!(is_endpoint_name(s), want, "endpoint name {s:?}");
        }
        for (s, want) in [("HELLO_URL", true), ("_x1", true), ("INVALID VAR", false), ("1X", false), ("A-B", false), ("", false)] {
            assert_eq!(is_env_name(s), want, "env name {s:?}");
        }
        for (s, want) in [("19d2648b-d29c-4452-afdd-1b9311e81412", true), ("19D2648B-D29C-4452-AFDD-1B9311E81412", true), ("00000000-0000-0000-0000-000000000000", true), ("19d2648b-d29c-4452-afdd-1b9311e81412s", false), ("not uuid", false), ("19d2648b-d29c-6452-afdd-1b9311e81412", false), ("19d2648b-d29c-4452-cfdd-1b9311e81412", false), ("19d2648bd29c4452afdd1b9311e81412", false)] {
            assert_eq!(is_uuid(s), want, "uuid {s:?}");
        }
    }
}
