//! `berth validate endpoints|component`: the real binary on the Choreo fixtures in
//! `tests/fixtures/choreo/`, offline (no server). Checks the JSON report, the table output and
//! the exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/choreo")
}

fn berth(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(fixtures())
        // Keep any configured server or token out of an offline command.
        .env_remove("BERTH_SERVER")
        .env_remove("BERTH_TOKEN")
        .output()
        .expect("running berth")
}

/// Runs `berth validate ARGS -o json`; returns the exit code and the report.
fn validate_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["validate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = berth(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), report)
}

/// The report's errors as (path, message).
fn errors(report: &Value) -> Vec<(String, String)> {
    issues(&report["errors"])
}

fn issues(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .expect("a list of issues")
        .iter()
        .map(|i| {
            (
                i["path"].as_str().expect("path").to_owned(),
                i["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect()
}

const OUTDATED_ENDPOINTS: &str = "OUTDATED SOURCE CONFIG: You are using endpoints.yaml, which is an outdated source configuration file. Update to \"component.yaml v1.2\" to benefit from new features and improvements.";

#[test]
fn valid_endpoints_yaml_exits_zero_with_the_outdated_warning() {
    // schemas/greeting_openapi.yaml is found under the file's directory (searched recursively).
    let (code, report) = validate_json(&["endpoints", "endpoints-valid.yaml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report,
        serde_json::json!({
            "valid": true,
            "errors": [],
            "warnings": [{"path": "", "message": OUTDATED_ENDPOINTS}],
        })
    );
}

#[test]
fn invalid_endpoints_yaml_lists_every_error_and_exits_one() {
    let (code, report) = validate_json(&["endpoints", "endpoints-invalid.yaml"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["valid"], false);
    assert_eq!(
        errors(&report),
        owned(&[
            (
                "endpoints[0].port",
                "endpoints[0].port must be greater than 1000"
            ),
            (
                "endpoints[0].context",
                "endpoints[0].context is required for REST-type endpoints"
            ),
            (
                "endpoints[1].port",
                "endpoints[1].port must be less than 65535"
            ),
            (
                "endpoints[1].type",
                "endpoints[1].type must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS"
            ),
            (
                "endpoints[1].networkVisibility",
                "endpoints[1].networkVisibility must be one of the following values: Public, Project, Organization"
            ),
            (
                "endpoints[1].context",
                "endpoints[1].context must start with a forward slash and can only contain alphanumeric characters, hyphens, and forward slashes."
            ),
            (
                "endpoints[1].schemaFilePath",
                "Schema file does not exist at the given path missing.yaml."
            ),
        ])
    );
    assert_eq!(
        issues(&report["warnings"]),
        owned(&[("", OUTDATED_ENDPOINTS)])
    );
}

#[test]
fn component_yaml_in_choreo_dir_resolves_schemas_from_the_build_context() {
    let (code, report) = validate_json(&["component", "service/.choreo/component.yaml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report,
        serde_json::json!({"valid": true, "errors": [], "warnings": []})
    );

    // With another schema directory, api/openapi.yaml is not an uploaded file.
    let (code, report) = validate_json(&[
        "component",
        "service/.choreo/component.yaml",
        "--schema-dir",
        "schemas",
    ]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        errors(&report),
        owned(&[(
            "endpoints[0].schemaFilePath",
            "Schema file does not exist at the given path api/openapi.yaml."
        )])
    );
}

#[test]
fn invalid_component_yaml_exits_one() {
    let (code, report) = validate_json(&["component", "component-invalid.yaml"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        errors(&report),
        owned(&[
            (
                "endpoints[0].name",
                "endpoints[0].name must start with a lowercase letter and can only contain lowercase letters, numbers, underscores (_), and hyphens (-)."
            ),
            (
                "endpoints[1].networkVisibilities",
                "The endpoints[1] is a type UDP endpoint and can only have networkVisibility set to Project"
            ),
            (
                "dependencies.connectionReferences[0].resourceRef",
                "dependencies.connectionReferences[0].resourceRef has an invalid service identifier. Use the format [service:][/<project-handle>/]<component-handle>/<major-version>[/<endpoint-handle>][/<network-visibility>] where optional fields are specified in brackets."
            ),
        ])
    );
    assert_eq!(
        issues(&report["warnings"]),
        owned(&[(
            "",
            "OUTDATED SOURCE CONFIG: You are using component.yaml v1.1, which is an outdated source configuration file. Update to \"component.yaml v1.2\" to benefit from new features and improvements."
        )])
    );
}

#[test]
fn component_config_yaml_is_recognized_by_content() {
    let (code, report) = validate_json(&["component", "component-config-valid.yaml"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]));
    let warnings = issues(&report["warnings"]);
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(
        warnings[0]
            .1
            .starts_with("OUTDATED SOURCE CONFIG: You are using component-config.yaml,"),
        "{report}"
    );
}

#[test]
fn yaml_syntax_errors_name_line_and_column() {
    let (code, report) = validate_json(&["endpoints", "endpoints-broken.yaml"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        errors(&report),
        owned(&[(
            "",
            "Failed to parse yaml: did not find expected '-' indicator at line 4 column 4, while parsing a block collection at line 3 column 3"
        )])
    );
}

#[test]
fn table_output_is_one_line_per_problem() {
    let out = berth(&["validate", "endpoints", "endpoints-invalid.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 9, "{stdout}");
    assert_eq!(
        lines[0],
        "error: endpoints[0].port must be greater than 1000"
    );
    assert_eq!(
        lines[6],
        "error: endpoints[1].schemaFilePath: Schema file does not exist at the given path missing.yaml."
    );
    assert!(
        lines[7].starts_with("warning: OUTDATED SOURCE CONFIG"),
        "{stdout}"
    );
    assert_eq!(
        lines[8],
        "endpoints.yaml is invalid: 7 error(s), 1 warning(s)"
    );

    let out = berth(&["validate", "component", "service/.choreo/component.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("component.yaml is valid: 0 error(s), 0 warning(s)\nNAME "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "greeter-sample  REST  9090  Public,Organization  /greeting-service  api/openapi.yaml"
        ),
        "{stdout}"
    );
}

#[test]
fn reads_stdin_with_schemas_from_the_working_directory() {
    let text = std::fs::read(fixtures().join("service/.choreo/component.yaml")).unwrap();
    let mut child = Command::new(BIN)
        .args(["validate", "component", "-", "-o", "json"])
        .current_dir(fixtures().join("service"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running berth");
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
}

#[test]
fn unreadable_inputs_fail_with_a_reason() {
    let out = berth(&["validate", "endpoints", "no-such-file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reading no-such-file.yaml"),
        "{out:?}"
    );
    let out = berth(&[
        "validate",
        "endpoints",
        "endpoints-valid.yaml",
        "--schema-dir",
        "no-such-dir",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reading schema directory no-such-dir"),
        "{out:?}"
    );
}
