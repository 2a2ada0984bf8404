//! Table-driven tests. Cases marked "Choreo" are the documents of Choreo's validator's own
//! tests (`test/endpoints-yaml-samples.js`, `test/component-yaml-samples.js`) with the errors
//! its `test/schema.test.js` expects; each case checks every error, path and message.

use super::*;

fn schema_files(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// The files Choreo's tests have next to their documents.
fn choreo_files() -> BTreeSet<String> {
    schema_files(&[
        "dummy-openapi.yaml",
        "openapi.yaml",
        "greeting_openapi.yaml",
        "api/spec.json",
    ])
}

fn pairs(issues: &[Issue]) -> Vec<(&str, &str)> {
    issues
        .iter()
        .map(|i| (i.path.as_str(), i.message.as_str()))
        .collect()
}

/// The errors a case expects, as (path, message).
type Expected<'a> = &'a [(&'a str, &'a str)];
/// (label, document, expected errors).
type Case<'a> = (&'a str, &'a str, Expected<'a>);

/// Runs a table: every case's errors must be exactly the expected (path, message) list.
fn check_errors(kind: SourceConfigKind, cases: &[Case<'_>]) {
    for (label, document, expected) in cases {
        let (report, endpoints) = kind.validate(document, &choreo_files());
        assert_eq!(pairs(&report.errors), *expected, "{kind} case {label:?}");
        assert_eq!(report.valid, expected.is_empty(), "{kind} case {label:?}");
        if !report.valid {
            assert!(
                endpoints.is_empty(),
                "{kind} case {label:?}: endpoints of an invalid file"
            );
        }
    }
}

const UNIQUE: &str = "Endpoint names must be unique";
const TYPES_MSG: &str = "must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS";

#[rustfmt::skip]
#[test]
fn endpoints_yaml_cases() {
    let cases: &[Case<'_>] = &[
        // Choreo: validEndpointsYaml.
        ("valid", "version: 0.1\nendpoints:\n- name: Greeting Service\n  port: 9090\n  type: REST\n  networkVisibility: Project\n  context: /greeting\n  schemaFilePath: dummy-openapi.yaml\n", &[]),
        // Choreo: missingRequiredFieldsEndpointsYaml.
        ("missing required fields", "endpoints:\n- networkVisibility: Project\n  context: /greeting\n  schemaFilePath: dummy-openapi.yaml\n", &[
            ("version", "version is a required field"),
            ("endpoints[0].name", "endpoints[0].name is a required field"),
            ("endpoints[0].port", "endpoints[0].port is a required field"),
            ("endpoints[0].type", "endpoints[0].type is a required field"),
        ]),
        // Choreo: invalidPortEndpointsYaml (any version is accepted).
        ("ports out of range", "version: 0.5\nendpoints:\n- name: Greeting Service\n  port: 909\n  type: REST\n  context: /greeting\n- name: Greeting Service2\n  port: 90900\n  type: REST\n  context: /greeting\n", &[
            ("endpoints[0].port", "endpoints[0].port must be greater than 1000"),
            ("endpoints[1].port", "endpoints[1].port must be less than 65535"),
        ]),
        // Choreo: validateTypeFieldYaml (duplicate names are fine in endpoints.yaml).
        ("type", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: REST, context: /greeting}\n  - {name: B, port: 9090, type: GraphQL, context: /greeting}\n  - {name: B, port: 9090, type: GRPC, context: /greeting}\n  - {name: B, port: 9090, type: UDP, context: /greeting}\n  - {name: B, port: 9090, type: TCP, context: /greeting}\n  - {name: B, port: 9090, type: WS, context: /greeting}\n  - {name: B, port: 9090, type: Wss, context: /greeting}\n", &[
            ("endpoints[6].type", "endpoints[6].type must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS"),
        ]),
        // Choreo: validateVisibilityFieldYaml (UDP may be Public here).
        ("visibility", "version: beta\nendpoints:\n  - {name: A, port: 9090, type: REST, networkVisibility: Public, context: /greeting}\n  - {name: B, port: 9090, type: GraphQL, networkVisibility: Project, context: /greeting}\n  - {name: C, port: 9090, type: GRPC, networkVisibility: Organization, context: /greeting}\n  - {name: D, port: 9090, type: UDP, networkVisibility: Private, context: /greeting}\n", &[
            ("endpoints[3].networkVisibility", "endpoints[3].networkVisibility must be one of the following values: Public, Project, Organization"),
        ]),
        // Choreo: validateContextFieldYaml.
        ("context pattern", "version: beta\nendpoints:\n  - {name: A, port: 9090, type: REST, context: /a-valid-path-123/to-resource}\n  - {name: B, port: 9090, type: GraphQL, context: invalid/path/without/leading-slash}\n  - {name: C, port: 9090, type: GRPC, context: /another-valid/path-456}\n  - {name: D, port: 9090, type: UDP, context: '/invalid_path_with_special&chars'}\n", &[
            ("endpoints[1].context", "endpoints[1].context must start with a forward slash and can only contain alphanumeric characters, hyphens, and forward slashes."),
            ("endpoints[3].context", "endpoints[3].context must start with a forward slash and can only contain alphanumeric characters, hyphens, and forward slashes."),
        ]),
        // Choreo: validateContextRequiredScenariosYaml.
        ("context required for HTTP types", "version: beta\nendpoints:\n  - {name: A, port: 9090, type: REST}\n  - {name: B, port: 9090, type: GraphQL}\n  - {name: C, port: 9090, type: WS}\n  - {name: D, port: 9090, type: UDP}\n  - {name: D, port: 9090, type: TCP}\n  - {name: D, port: 9090, type: GRPC}\n", &[
            ("endpoints[0].context", "endpoints[0].context is required for REST-type endpoints"),
            ("endpoints[1].context", "endpoints[1].context is required for GraphQL-type endpoints"),
            ("endpoints[2].context", "endpoints[2].context is required for WS-type endpoints"),
        ]),
        // Choreo: validateSchemaFilePathYaml.
        ("schema file", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: REST, context: /greeting, schemaFilePath: dummy-openapi.yaml}\n  - {name: B, port: 9090, type: GraphQL, context: /greeting, schemaFilePath: invalid-path.yaml}\n", &[
            ("endpoints[1].schemaFilePath", "Schema file does not exist at the given path invalid-path.yaml."),
        ]),
        ("empty endpoint list", "version: 0.1\nendpoints: []\n", &[]),
        ("endpoints missing", "version: 0.1\n", &[("endpoints", "endpoints is a required field")]),
        ("endpoints null", "version: 0.1\nendpoints:\n", &[("endpoints", "endpoints is a required field")]),
        ("endpoints not a list", "version: 0.1\nendpoints: {a: 1}\n", &[("endpoints", "endpoints must be a `array` type, but the final value was: `{\"a\":1}`.")]),
        ("version null", "version:\nendpoints: []\n", &[("version", "version is a required field")]),
        ("version a map", "version: {a: 1}\nendpoints: []\n", &[("version", "version must be a `string` type, but the final value was: `{\"a\":1}`.")]),
        ("port as text is a number", "version: 0.1\nendpoints:\n  - {name: A, port: '9090', type: TCP}\n", &[]),
        ("port not a number", "version: 0.1\nendpoints:\n  - {name: A, port: http, type: TCP}\n", &[
            ("endpoints[0].port", "endpoints[0].port must be a `number` type, but the final value was: `NaN` (cast from the value `\"http\"`)."),
        ]),
        ("port bounds", "version: 0.1\nendpoints:\n  - {name: A, port: 1000, type: TCP}\n  - {name: B, port: 1001, type: TCP}\n  - {name: C, port: 65534, type: TCP}\n  - {name: D, port: 65535, type: TCP}\n  - {name: E, port: -1, type: TCP}\n", &[
            ("endpoints[0].port", "endpoints[0].port must be greater than 1000"),
            ("endpoints[3].port", "endpoints[3].port must be less than 65535"),
            ("endpoints[4].port", "endpoints[4].port must be greater than 1000"),
        ]),
        // berth: Choreo's validator would let a fraction through.
        ("port with a fraction", "version: 0.1\nendpoints:\n  - {name: A, port: 9090.5, type: TCP}\n  - {name: B, port: 9090.0, type: TCP}\n", &[
            ("endpoints[0].port", "endpoints[0].port must be an integer"),
        ]),
        ("port null", "version: 0.1\nendpoints:\n  - {name: A, port: null, type: TCP}\n", &[("endpoints[0].port", "endpoints[0].port is a required field")]),
        ("type is case-sensitive", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: rest, context: /a}\n  - {name: B, port: 9090, type: Graphql, context: /a}\n", &[
            ("endpoints[0].type", "endpoints[0].type must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS"),
            ("endpoints[1].type", "endpoints[1].type must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS"),
        ]),
        ("visibility null", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: TCP, networkVisibility: null}\n", &[("endpoints[0].networkVisibility", "endpoints[0].networkVisibility cannot be null")]),
        ("visibility is case-sensitive", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: TCP, networkVisibility: public}\n", &[("endpoints[0].networkVisibility", "endpoints[0].networkVisibility must be one of the following values: Public, Project, Organization")]),
        // yup runs both tests on an empty string.
        ("empty context on REST", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: REST, context: ''}\n", &[
            ("endpoints[0].context", "endpoints[0].context is required for REST-type endpoints"),
            ("endpoints[0].context", "endpoints[0].context must start with a forward slash and can only contain alphanumeric characters, hyphens, and forward slashes."),
        ]),
        // ...but none after the null check fails.
        ("null context on REST", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: REST, context: null}\n", &[("endpoints[0].context", "endpoints[0].context cannot be null")]),
        ("context with underscore and root", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: REST, context: /a_b/c-d}\n  - {name: B, port: 9091, type: WS, context: /}\n", &[]),
        ("context on a TCP endpoint still checked", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: TCP, context: 'a b'}\n", &[("endpoints[0].context", "endpoints[0].context must start with a forward slash and can only contain alphanumeric characters, hyphens, and forward slashes.")]),
        ("schema file paths resolve from the source root", "version: 0.1\nendpoints:\n  - {name: A, port: 9090, type: REST, context: /a, schemaFilePath: ./dummy-openapi.yaml}\n  - {name: B, port: 9091, type: REST, context: /b, schemaFilePath: /api/../api/spec.json}\n  - {name: C, port: 9092, type: REST, context: /c, schemaFilePath: ''}\n  - {name: D, port: 9093, type: REST, context: /d, schemaFilePath: ../dummy-openapi.yaml}\n", &[
            ("endpoints[3].schemaFilePath", "Schema file does not exist at the given path ../dummy-openapi.yaml."),
        ]),
        ("item not an object", "version: 0.1\nendpoints:\n  - foo\n  -\n", &[
            ("endpoints[0]", "endpoints[0] must be a `object` type, but the final value was: `\"foo\"`."),
            ("endpoints[1]", "endpoints[1] cannot be null"),
        ]),
        ("scalars are read as text, lists are not", "version: 0.1\nendpoints:\n  - {name: 123, port: 9090, type: TCP}\n  - {name: [a], port: 9091, type: TCP}\n", &[
            ("endpoints[1].name", "endpoints[1].name must be a `string` type, but the final value was: `[\"a\"]`."),
        ]),
        ("unknown fields are ignored", "version: 0.1\nextra: true\nendpoints:\n  - {name: A, port: 9090, type: TCP, networkVisibilities: [Bogus], foo: bar}\n", &[]),
        ("not a mapping", "- a\n- b\n", &[("", "the file must be a YAML mapping (key: value pairs), not a list")]),
        ("empty file", "", &[("", "the file is empty; it must be a YAML mapping of the fields of the file")]),
        ("only a comment", "# nothing\n", &[("", "the file is empty; it must be a YAML mapping of the fields of the file")]),
    ];
    check_errors(SourceConfigKind::EndpointsYaml, cases);
}

/// Choreo's samples for component.yaml's endpoints share this shape.
fn endpoint(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    displayName: Go Greeter Sample\n    service:\n      basePath: /greeting-service\n      port: 9090\n{extra}"
    )
}

#[rustfmt::skip]
#[test]
fn component_yaml_endpoint_cases() {
    let rest = "    type: REST\n";
    let udp_project = "    type: UDP\n    networkVisibilities:\n      - Project\n";
    let names = format!(
        "schemaVersion: 1.0\nendpoints:\n{}{}{}{}{}{}",
        endpoint("greeter-sample", rest), endpoint("valid-string-123", rest), endpoint("InvalidString", rest),
        endpoint("1invalid-start", udp_project), endpoint(" greeter-sample", rest),
        endpoint("a1234567890_valid_string_example_with_numbers_1234567", rest),
    );
    let project_only = format!(
        "schemaVersion: 1.0\nendpoints:\n{}{}{}{}{}{}{}{}",
        endpoint("greeter-sample", udp_project),
        endpoint("greeter-sample2", "    type: TCP\n    networkVisibilities:\n      - Project\n"),
        endpoint("greeter-sample3", "    type: GRPC\n    networkVisibilities:\n      - Project\n"),
        endpoint("greeter-sample4", "    type: REST\n    networkVisibilities:\n      - Public\n      - Organization\n"),
        endpoint("greeter-sample5", "    type: UDP\n    networkVisibilities:\n      - Public\n"),
        endpoint("greeter-sample6", "    type: TCP\n    networkVisibilities:\n      - Organization\n"),
        endpoint("greeter-sample7", "    type: GRPC\n    networkVisibilities:\n      - Public\n      - Organization\n      - Project\n"),
        endpoint("greeter-sample8", "    type: UDP\n"),
    );
    let cases: &[Case<'_>] = &[
        // Choreo: validComponentYaml.
        ("valid v1.0", "schemaVersion: 1.0\nendpoints:\n  - name: greeter-sample\n    displayName: Go Greeter Sample\n    service:\n      basePath: /greeting-service\n      port: 9090\n    type: REST\n    networkVisibilities: \n      - Public\n      - Organization\n    schemaFilePath: dummy-openapi.yaml\ndependencies:\n    serviceReferences:\n      - name: choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC\n        connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412\n        env:\n          - from: ServiceURL\n            to: SERVICE_URL\n", &[]),
        // Choreo: missingRequiredFieldsComponentYaml (a missing service reports its port).
        ("missing required fields", "\nendpoints:\n  - displayName: Go Greeter Sample\n", &[
            ("schemaVersion", "schemaVersion is a required field"),
            ("endpoints[0].name", "endpoints[0].name is a required field"),
            ("endpoints[0].service.port", "endpoints[0].service.port is a required field"),
            ("endpoints[0].type", "endpoints[0].type is a required field"),
        ]),
        // Choreo: validateProjectVisibilityOnlyType.
        ("GRPC, TCP and UDP are project-only", &project_only, &[
            ("endpoints[4].networkVisibilities", "The endpoints[4] is a type UDP endpoint and can only have networkVisibility set to Project"),
            ("endpoints[5].networkVisibilities", "The endpoints[5] is a type TCP endpoint and can only have networkVisibility set to Project"),
            ("endpoints[6].networkVisibilities", "The endpoints[6] is a type GRPC endpoint and can only have networkVisibility set to Project"),
            ("endpoints[7].networkVisibilities", "The endpoints[7] is a type UDP endpoint and can only have networkVisibility set to Project"),
        ]),
        // Choreo: validateEndpointName.
        ("endpoint names", &names, &[
            ("endpoints[2].name", "endpoints[2].name must start with a lowercase letter and can only contain lowercase letters, numbers, underscores (_), and hyphens (-)."),
            ("endpoints[3].name", "endpoints[3].name must start with a lowercase letter and can only contain lowercase letters, numbers, underscores (_), and hyphens (-)."),
            ("endpoints[5].name", "endpoints[5].name must be at most 50 characters"),
            ("endpoints", UNIQUE),
        ]),
        // Choreo: validateEndpointDisplayName.
        ("display names", "schemaVersion: 1.0\nendpoints:\n    - {name: greeter-sample, displayName: 'This string contains spaces, 123, symbols!@#', service: {basePath: /greeting-service, port: 9090}, type: REST}\n    - {name: greeter-sample2, displayName: 'short_string_with_symbols!@#$%^&*()_+{}|:\"<>?', service: {basePath: /greeting-service, port: 9090}, type: REST}\n    - {name: greeter-sample3, displayName: This string is way too long because it has more than fifty characters in total., service: {basePath: /greeting-service, port: 9090}, type: REST}\n", &[
            ("endpoints[2].displayName", "endpoints[2].displayName must be at most 50 characters"),
        ]),
        // Choreo: validateServiceSchema.
        ("service section", "schemaVersion: 1.0\nendpoints:\n    - {name: greeter-sample, displayName: greeter sample, service: {basePath: /a-valid-path-123/to-resource, port: 909}, type: UDP, networkVisibilities: [Project]}\n    - {name: greeter-sample2, displayName: greeter sample, service: {basePath: invalid/path/without/leading-slash, port: 75000}, type: REST}\n    - {name: greeter-sample3, displayName: greeter sample, service: {basePath: '/invalid_path_with_special&chars', port: 9090}, type: GraphQL}\n", &[
            ("endpoints[0].service.port", "endpoints[0].service.port must be greater than 1000"),
            ("endpoints[1].service.basePath", "endpoints[1].service.basePath must start with a forward slash and can only contain alphanumeric characters, hyphens, underscores and forward slashes."),
            ("endpoints[1].service.port", "endpoints[1].service.port must be less than 65535"),
            ("endpoints[2].service.basePath", "endpoints[2].service.basePath must start with a forward slash and can only contain alphanumeric characters, hyphens, underscores and forward slashes."),
        ]),
        // Choreo: validateTypeField (basePath is optional in component.yaml).
        ("type", "schemaVersion: 1.0\nendpoints:\n    - {name: greeter-sample, service: {port: 9090}, type: GRPC, networkVisibilities: [Project]}\n    - {name: greeter-sample2, service: {port: 9090, basePath: /ctx}, type: WS}\n    - {name: greeter-sample3, service: {port: 9090, basePath: /ctx}, type: REST}\n    - {name: greeter-sample4, service: {port: 9090, basePath: /ctx}, type: GraphQL}\n    - {name: greeter-sample5, service: {port: 9090}, type: TCP, networkVisibilities: [Project]}\n    - {name: greeter-sample6, service: {port: 9090}, type: UDP, networkVisibilities: [Project]}\n    - {name: greeter-sample7, service: {port: 9090}, type: pdf}\n", &[
            ("endpoints[6].type", "endpoints[6].type must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS"),
        ]),
        // Choreo: validateNetworkVisibilityField.
        ("network visibilities", "schemaVersion: 1.0\nendpoints:\n    - {name: greeter-sample, service: {port: 9090}, type: REST, networkVisibilities: [Public]}\n    - {name: greeter-sample2, service: {port: 9090, basePath: /ctx}, type: WS, networkVisibilities: [Organization]}\n    - {name: greeter-sample3, service: {port: 9090, basePath: /ctx}, type: REST, networkVisibilities: [Project]}\n    - {name: greeter-sample4, service: {port: 9090, basePath: /ctx}, type: GraphQL, networkVisibilities: [Public, Organization]}\n    - {name: greeter-sample5, service: {port: 9090}, type: REST, networkVisibilities: [Project, Organization]}\n    - {name: greeter-sample6, service: {port: 9090}, type: REST, networkVisibilities: [Public, Project]}\n    - {name: greeter-sample7, service: {port: 9090}, type: REST, networkVisibilities: [Public, Organization, Project]}\n    - {name: greeter-sample8, service: {port: 9090}, type: REST, networkVisibilities: [Public, Private]}\n", &[
            ("endpoints[7].networkVisibilities[1]", "endpoints[7].networkVisibilities[1] must be one of the following values: Public, Project, Organization"),
        ]),
        // Choreo: validateSchemaFilePath.
        ("schema file", "schemaVersion: 1.0\nendpoints:\n  - {name: greeter-sample, service: {basePath: /greeting-service, port: 9090}, type: REST, schemaFilePath: dummy-openapi.yaml}\n  - {name: greeter-sample2, service: {basePath: /greeting-service, port: 9090}, type: REST, schemaFilePath: wrong-openapi.yaml}\n", &[
            ("endpoints[1].schemaFilePath", "Schema file does not exist at the given path wrong-openapi.yaml."),
        ]),
        ("service null", "schemaVersion: 1.2\nendpoints:\n  - {name: a, service: null, type: REST}\n", &[("endpoints[0].service", "endpoints[0].service is a required field")]),
        ("service not an object", "schemaVersion: 1.2\nendpoints:\n  - {name: a, service: 9090, type: REST}\n", &[("endpoints[0].service", "endpoints[0].service must be a `object` type, but the final value was: `9090`.")]),
        ("visibilities not a list", "schemaVersion: 1.2\nendpoints:\n  - {name: a, service: {port: 9090}, type: REST, networkVisibilities: Public}\n", &[("endpoints[0].networkVisibilities", "endpoints[0].networkVisibilities must be a `array` type, but the final value was: `\"Public\"`.")]),
        // Both of yup's tests fail on a long name with capitals.
        ("long and invalid name", "schemaVersion: 1.2\nendpoints:\n  - {name: AbcdefghijabcdefghijabcdefghijabcdefghijabcdefghijX, service: {port: 9090}, type: REST}\n", &[
            ("endpoints[0].name", "endpoints[0].name must be at most 50 characters"),
            ("endpoints[0].name", "endpoints[0].name must start with a lowercase letter and can only contain lowercase letters, numbers, underscores (_), and hyphens (-)."),
        ]),
        ("project-only with an unknown visibility", "schemaVersion: 1.2\nendpoints:\n  - {name: a, service: {port: 9090}, type: TCP, networkVisibilities: [Private]}\n", &[
            ("endpoints[0].networkVisibilities[0]", "endpoints[0].networkVisibilities[0] must be one of the following values: Public, Project, Organization"),
            ("endpoints[0].networkVisibilities", "The endpoints[0] is a type TCP endpoint and can only have networkVisibility set to Project"),
        ]),
        ("project-only with an empty list", "schemaVersion: 1.2\nendpoints:\n  - {name: a, service: {port: 9090}, type: GRPC, networkVisibilities: []}\n", &[
            ("endpoints[0].networkVisibilities", "The endpoints[0] is a type GRPC endpoint and can only have networkVisibility set to Project"),
        ]),
        ("no endpoints at all", "schemaVersion: 1.2\n", &[]),
    ];
    check_errors(SourceConfigKind::ComponentYaml, cases);
}

#[rustfmt::skip]
#[test]
fn component_yaml_dependency_cases() {
    const CHOREO_FORMAT: &str = "has an invalid service identifier. Use the format choreo:///<org-handle>/<project-handle>/<component-handle>/<endpoint-identifier>/<major-version>/<network-visibility>";
    const THIRD_PARTY: &str = "has an invalid service identifier. Use the format thirdparty:<service_name>/<version>, allowing only alphanumeric characters, periods (.), underscores (_), hyphens (-), and slashes (/) after thirdparty:.";
    const DATABASE: &str = "has an invalid service identifier. Use the format database:[<serverName>/]<databaseName> where optional fields are in brackets, allowing only alphanumeric characters, underscores (_), hyphens (-), and slashes (/) after database:.";
    const SERVICE: &str = "has an invalid service identifier. Use the format [service:][/<project-handle>/]<component-handle>/<major-version>[/<endpoint-handle>][/<network-visibility>] where optional fields are specified in brackets.";
    const ANY: &str = "has an invalid service identifier. For services, use [service:][/<project-handle>/]<component-handle>/<major-version>[/<endpoint-handle>][/<network-visibility>]. For databases, use database:[<serverName>/]<databaseName>. For third-party services, use thirdparty:<service_name>/<version>. Optional fields are specified in brackets.";
    const CONN_NAME: &str = "can only contain letters, numbers, with non-consecutive delimiters: underscores (_), hyphens (-), dots (.), or spaces.";
    let svc = |name: &str| format!("      - name: {name}\n        connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412\n        env:\n          - from: ServiceURL\n            to: SERVICE_URL\n");
    let service_names: String = [
        "choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC", "choreo:///user123/project456/service789/instance000/v2.3/PROJECT",
        "choreo:///service_name/project_name/component_name/instance_name/v1/PRIVATE", "choreo://service_name/project_name/component_name/instance_name/v1/PUBLIC",
        "thirdparty:service name_test-v1.1/v1.1", "thirdparty:some-service_v1.0/path/to/resource", "thirdparty:service*name",
        "database:my_database-1/service-123", "database:service*name", "database:my_database.com/service-123/instance_1",
    ].iter().map(|n| svc(n)).collect();
    let service_names = format!("schemaVersion: 1.0\ndependencies:\n    serviceReferences:\n{service_names}");
    let conn = |name: &str, reference: &str| format!("      - name: {name}\n        resourceRef: {reference}\n");
    let ok_ref = "service:/mttm/mmvhxd/v1.1/ad088/PUBLIC";
    let connection_names: String = ["", "valid_connection_name", "invalid__connection_name", "valid connection name-v1.1", "invalid connection name-v1.1.", "Valid Connection Name ", "Invalid Connection Name_ "]
        .iter().map(|n| conn(n, ok_ref)).collect();
    let connection_names = format!("schemaVersion: 1.1\ndependencies:\n    connectionReferences:\n{connection_names}");
    let refs: String = [
        "", "service:/mttm/mmvhxd/v1.1/ad088/PUBLIC ", "service:mttm/mmvhxd/v1.1/ad088/PUBLIC", "service:/mttm/mmvhxd/v1.1/ad088/PRIVATE",
        "/mttm/mmvhxd/v1.1/ad088/PUBLIC", "mttm/mmvhxd/v1.1/ad088/PUBLIC", "mmvhxd/v1.1/ad088/PUBLIC", "mmvhxd/v1.1/PUBLIC", "mmvhxd/v1.1/ad088",
        "mmvhxd/v1.1/ad088/", "mmvhxd/v1.1", "mmvhxd/v1.1/", "/mmtm/mmvhxd/v1.1", "thirdparty:mttm/v1.1", "thirdparty:mttm/v1.1/invalid",
        "thirdparty:v1.1", "thirdparty:mmtm/", "database:mySqlDbServer/hotelDb", "database:mySqlDbServerV1.1/hotelDb",
        "database:mySqlDbServer/hotelDb/invalid", "database:/mySqlDbServer/hotelDb", "THIRDPARTY:mySqlDbServer/hotelDb/invalid",
    ].iter().map(|r| conn("valid_connection_name", r)).collect();
    let refs = format!("schemaVersion: 1.1\ndependencies:\n    connectionReferences:\n{refs}");
    let cr = |i: usize, msg: &str| format!("dependencies.connectionReferences[{i}].resourceRef {msg}");
    let ref_errors: Vec<String> = vec![
        cr(2, SERVICE), cr(3, SERVICE), cr(5, ANY), cr(9, ANY), cr(11, ANY), cr(14, THIRD_PARTY), cr(15, THIRD_PARTY),
        cr(16, THIRD_PARTY), cr(18, DATABASE), cr(19, DATABASE), cr(20, DATABASE), cr(21, ANY),
    ];
    let mut ref_pairs: Vec<(String, &str)> = vec![("dependencies.connectionReferences[0].resourceRef".into(), "dependencies.connectionReferences[0].resourceRef is a required field")];
    for (msg, i) in ref_errors.iter().zip([2, 3, 5, 9, 11, 14, 15, 16, 18, 19, 20, 21]) {
        ref_pairs.push((format!("dependencies.connectionReferences[{i}].resourceRef"), msg));
    }
    let ref_pairs: Vec<(&str, &str)> = ref_pairs.iter().map(|(p, m)| (p.as_str(), *m)).collect();

    let sn = |i: usize, msg: &str| format!("dependencies.serviceReferences[{i}].name {msg}");
    let sn_errors = [sn(2, CHOREO_FORMAT), sn(3, "has an invalid service identifier. It can only contain choreo, thirdparty, or database types."), sn(5, THIRD_PARTY), sn(6, THIRD_PARTY), sn(8, DATABASE), sn(9, DATABASE)];
    let sn_paths: Vec<String> = [2, 3, 5, 6, 8, 9].iter().map(|i| format!("dependencies.serviceReferences[{i}].name")).collect();
    let sn_pairs: Vec<(&str, &str)> = sn_paths.iter().zip(&sn_errors).map(|(p, m)| (p.as_str(), m.as_str())).collect();
    let cn = |i: usize| format!("dependencies.connectionReferences[{i}].name");
    let cn_paths: Vec<String> = [0, 2, 4, 6].iter().map(|i| cn(*i)).collect();
    let cn_msgs: Vec<String> = vec![format!("{} is a required field", cn(0)), format!("{} {CONN_NAME}", cn(2)), format!("{} {CONN_NAME}", cn(4)), format!("{} {CONN_NAME}", cn(6))];
    let cn_pairs: Vec<(&str, &str)> = cn_paths.iter().zip(&cn_msgs).map(|(p, m)| (p.as_str(), m.as_str())).collect();

    let cases: Vec<Case<'_>> = vec![
        // Choreo: validateServiceReferenceName.
        ("service reference names", &service_names, &sn_pairs),
        // Choreo: validateServiceReferenceConnectionConfig.
        ("connection configs", "schemaVersion: 1.0\ndependencies:\n    serviceReferences:\n      - {name: 'choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC', env: [{from: ServiceURL, to: SERVICE_URL}]}\n      - {name: 'choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC', connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412s, env: [{from: ServiceURL, to: SERVICE_URL}]}\n      - {name: 'choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC', connectionConfig: not uuid, env: [{from: ServiceURL, to: SERVICE_URL}]}\n", &[
            ("dependencies.serviceReferences[0].connectionConfig", "dependencies.serviceReferences[0].connectionConfig is a required field"),
            ("dependencies.serviceReferences[1].connectionConfig", "dependencies.serviceReferences[1].connectionConfig must be a valid UUID"),
            ("dependencies.serviceReferences[2].connectionConfig", "dependencies.serviceReferences[2].connectionConfig must be a valid UUID"),
        ]),
        // Choreo: validateServiceReferenceEnv.
        ("service reference env", "schemaVersion: 1.0\ndependencies:\n    serviceReferences:\n      - {name: 'choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC', connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412}\n      - {name: 'choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC', connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412, env: [{from: ServiceURL}]}\n      - {name: 'choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC', connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412, env: [{to: SERVICE_URL}]}\n", &[
            ("dependencies.serviceReferences[0].env", "dependencies.serviceReferences[0].env is a required field"),
            ("dependencies.serviceReferences[1].env[0].to", "dependencies.serviceReferences[1].env[0].to is a required field"),
            ("dependencies.serviceReferences[2].env[0].from", "dependencies.serviceReferences[2].env[0].from is a required field"),
        ]),
        // Choreo: validateConnectionReferenceName.
        ("connection reference names", &connection_names, &cn_pairs),
        // Choreo: validateConnectionReferenceResourceRef.
        ("resource refs", &refs, &ref_pairs),
        // v1.0 has no connection references: ignored (with a warning), not checked.
        ("connection references in v1.0", "schemaVersion: 1.0\ndependencies:\n  connectionReferences:\n    - {name: '!!', resourceRef: nope}\n", &[]),
        ("dependencies not an object", "schemaVersion: 1.1\ndependencies: [a]\n", &[("dependencies", "dependencies must be a `object` type, but the final value was: `[\"a\"]`.")]),
    ];
    check_errors(SourceConfigKind::ComponentYaml, &cases);
}

#[rustfmt::skip]
#[test]
fn component_yaml_configuration_cases() {
    // Choreo: validateConfigurations (v1.1, under the `configuration` key its samples use).
    let v1_1 = "schemaVersion: 1.1\nconfiguration:\n  env:\n    - name: HELLO_SERVICE_URL\n      valueFrom: \n        connectionRef:\n          name: hello-conn\n    - name: HELLO_SERVICE_API_KEY\n      valueFrom: \n        connectionRef:\n          name: hello-conn\n          key: ChoreoAPIKey\n    - name: HELLO_SERVICE_API_KEY\n      valueFrom: \n        connectionRef:\n          name: hello-conn\n          key: ConsumerSecret\n    - name: HELLO_SERVICE_CONSUMER_KEY\n      valueFrom: \n        name: hello-conn\n        key: ConsumerKey\n    - name: HELLO_SERVICE_TOKEN_URL\n      valueFrom: \n        connectionRef:\n          key: TokenURL\n    - name: CONFIG_GRP_VAR\n      valueFrom: \n        configGroupRef:\n          name: hello-conn\n    - name: CUSTOM_VAR\n    - name: INVALID VAR\n      value: custom-value\n";
    let v1_1_errors: &[(&str, &str)] = &[
        ("configuration.env[0].valueFrom.connectionRef.key", "configuration.env[0].valueFrom.connectionRef.key is a required field"),
        ("configuration.env[3]", "One of value, connectionRef or configGroupRef must be provided"),
        ("configuration.env[4].valueFrom.connectionRef.name", "configuration.env[4].valueFrom.connectionRef.name is a required field"),
        ("configuration.env[5].valueFrom.configGroupRef.key", "configuration.env[5].valueFrom.configGroupRef.key is a required field"),
        ("configuration.env[6]", "One of value, connectionRef or configGroupRef must be provided"),
        ("configuration.env[7].name", "Environment variable name must start with a letter or underscore and can only contain letters, numbers, and underscores."),
        ("configuration.env", "Environment variable names must be unique"),
    ];
    let form = |extra: &str| format!("schemaVersion: 1.2\nconfigurations:\n  env:\n    - name: DB_USER\n      valueFrom:\n        configForm:\n{extra}");
    let file = |body: &str| format!("schemaVersion: 1.2\nconfigurations:\n  file:\n{body}");
    let cases: Vec<(&str, String, Expected<'_>)> = vec![
        ("v1.1 env", v1_1.to_owned(), v1_1_errors),
        // A configuration form is a v1.2 value source.
        ("configForm in v1.1", "schemaVersion: 1.1\nconfigurations:\n  env:\n    - name: A\n      valueFrom:\n        configForm: {type: string}\n".into(), &[
            ("configurations.env[0]", "One of value, connectionRef or configGroupRef must be provided"),
        ]),
        ("no value source in v1.2", "schemaVersion: 1.2\nconfigurations:\n  env:\n    - name: A\n".into(), &[
            ("configurations.env[0]", "One of value, connectionRef, configGroupRef  or configForm must be provided"),
        ]),
        ("configForm required must be a boolean", form("          required: abc\n"), &[
            ("configurations.env[0].valueFrom.configForm.required", "configurations.env[0].valueFrom.configForm.required must be a `boolean` type, but the final value was: `\"abc\"`."),
        ]),
        ("configForm valid", form("          displayName: DB User\n          required: 'false'\n          type: secret\n"), &[]),
        ("configForm env type", form("          type: object\n"), &[
            ("configurations.env[0].valueFrom.configForm.type", "configurations.env[0].valueFrom.configForm.type must be one of the following values: string, number, boolean, secret"),
        ]),
        ("value may be empty, not null", "schemaVersion: 1.2\nconfigurations:\n  env:\n    - {name: A, value: ''}\n    - {name: B, value: null}\n".into(), &[
            ("configurations.env[1].value", "configurations.env[1].value cannot be null"),
            ("configurations.env[1]", "One of value, connectionRef, configGroupRef  or configForm must be provided"),
        ]),
        // Choreo docs' file example.
        ("file valid", file("    - name: application.yaml\n      mountPath: /src/resources\n      type: yaml\n      values:\n        - name: version\n          valueFrom:\n            configForm:\n              displayName: Version\n              type: number\n        - name: logger\n          valueFrom:\n            configForm:\n              type: object\n              properties:\n                - name: logger_name\n                  displayName: Logger Name\n                - name: level\n                  values: [info, debug]\n        - name: users\n          valueFrom:\n            configForm:\n              type: array\n              items:\n                type: object\n                properties:\n                  - name: name\n                  - {name: age, type: number, required: false}\n"), &[]),
        ("file errors", file("    - name: app.toml\n      mountPath: src/resources\n      type: xml\n      values: []\n    - mountPath: /etc/app\n      type: json\n      values:\n        - name: a\n        - name: b\n          valueFrom:\n            configForm: {type: object}\n        - name: c\n          valueFrom:\n            configForm: {type: array, required: maybe}\n"), &[
            ("configurations.file[0].mountPath", "configurations.file[0].mountPath must be an absolute path (start with a forward slash)"),
            ("configurations.file[0].type", "configurations.file[0].type must be one of the following values: yaml, json, toml"),
            ("configurations.file[0].values", "configurations.file[0].values field must have at least 1 items"),
            ("configurations.file[1].name", "configurations.file[1].name is a required field"),
            ("configurations.file[1].values[0]", "One of connectionRef or configForm must be provided"),
            ("configurations.file[1].values[1].valueFrom.configForm.properties", "configurations.file[1].values[1].valueFrom.configForm.properties is a required field"),
            ("configurations.file[1].values[2].valueFrom.configForm.required", "configurations.file[1].values[2].valueFrom.configForm.required must be a `boolean` type, but the final value was: `\"maybe\"`."),
            ("configurations.file[1].values[2].valueFrom.configForm.items", "configurations.file[1].values[2].valueFrom.configForm.items is a required field"),
        ]),
        // v1.1 knows no files: ignored (with a warning), not checked.
        ("file in v1.1", "schemaVersion: 1.1\nconfigurations:\n  file:\n    - {mountPath: relative}\n".into(), &[]),
        ("configurations in v1.0", "schemaVersion: 1.0\nconfigurations:\n  env:\n    - {name: 'NOT VALID'}\n".into(), &[]),
        ("configurations not an object", "schemaVersion: 1.2\nconfigurations: yes please\n".into(), &[
            ("configurations", "configurations must be a `object` type, but the final value was: `\"yes please\"`."),
        ]),
    ];
    let cases: Vec<Case<'_>> = cases.iter().map(|(l, d, e)| (*l, d.as_str(), *e)).collect();
    check_errors(SourceConfigKind::ComponentYaml, &cases);
}

#[rustfmt::skip]
#[test]
fn component_yaml_schema_versions() {
    let cases: &[Case<'_>] = &[
        ("missing", "endpoints: []\n", &[("schemaVersion", "schemaVersion is a required field")]),
        ("null", "schemaVersion:\n", &[("schemaVersion", "schemaVersion is a required field")]),
        ("unknown", "schemaVersion: 2.0\n", &[("schemaVersion", "schemaVersion must be one of the following values: 1.0, 1.1, 1.2")]),
        ("retired 0.9", "schemaVersion: 0.9\n", &[("schemaVersion", "schemaVersion must be one of the following values: 1.0, 1.1, 1.2")]),
        ("not a number", "schemaVersion: latest\n", &[("schemaVersion", "schemaVersion must be one of the following values: 1.0, 1.1, 1.2")]),
        ("text 1.0", "schemaVersion: \"1.0\"\n", &[]),
        ("text 1.2", "schemaVersion: '1.2'\n", &[]),
        ("1", "schemaVersion: 1\n", &[]),
    ];
    check_errors(SourceConfigKind::ComponentYaml, cases);
}

#[rustfmt::skip]
#[test]
fn component_config_yaml_cases() {
    // Choreo docs' sample.
    let valid = "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\nspec:\n  inbound:\n    - name: Greeting Service\n      port: 9090\n      type: REST\n      networkVisibility: Public\n      context: /greeting\n      schemaFilePath: greeting_openapi.yaml\n  outbound:\n    serviceReferences:\n      - name: choreo:///apifirst/mttm/mmvhxd/ad088/v1.0/PUBLIC\n        connectionConfig: 19d2648b-d29c-4452-afdd-1b9311e81412\n        env:\n          - from: ServiceURL\n            to: SERVICE_URL\n";
    let cases: &[Case<'_>] = &[
        ("valid", valid, &[]),
        ("header only", "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\n", &[]),
        ("missing header", "spec: {}\n", &[
            ("apiVersion", "apiVersion is a required field"),
            ("kind", "kind is a required field"),
        ]),
        ("wrong header", "apiVersion: core.choreo.dev/v1\nkind: Component\n", &[
            ("apiVersion", "apiVersion must be one of the following values: core.choreo.dev/v1beta1"),
            ("kind", "kind must be one of the following values: ComponentConfig"),
        ]),
        ("inbound and outbound problems", "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\nspec:\n  inbound:\n    - {name: a, port: 80, type: REST}\n    - {name: b, port: 9090, type: GraphQL, context: /g, schemaFilePath: missing.graphql}\n  outbound:\n    serviceReferences:\n      - {name: 'thirdparty:x/1', connectionConfig: abc, env: []}\n", &[
            ("spec.inbound[0].port", "spec.inbound[0].port must be greater than 1000"),
            ("spec.inbound[0].context", "spec.inbound[0].context is required for REST-type endpoints"),
            ("spec.inbound[1].schemaFilePath", "Schema file does not exist at the given path missing.graphql."),
            ("spec.outbound.serviceReferences[0].name", "spec.outbound.serviceReferences[0].name has an invalid service identifier. Use the format thirdparty:<service_name>/<version>, allowing only alphanumeric characters, periods (.), underscores (_), hyphens (-), and slashes (/) after thirdparty:."),
            ("spec.outbound.serviceReferences[0].connectionConfig", "spec.outbound.serviceReferences[0].connectionConfig must be a valid UUID"),
        ]),
        ("inbound not a list", "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\nspec:\n  inbound: {name: a}\n", &[
            ("spec.inbound", "spec.inbound must be a `array` type, but the final value was: `{\"name\":\"a\"}`."),
        ]),
    ];
    check_errors(SourceConfigKind::ComponentConfigYaml, cases);
}

#[test]
fn reports_every_error_at_once_in_document_order() {
    let document = "\
schemaVersion: 1.2
endpoints:
  - name: Orders API
    displayName: Orders
    service: {basePath: orders, port: 80}
    type: Rest
    networkVisibilities: [Internet]
  - name: grpc
    service: {port: 70000}
    type: GRPC
    schemaFilePath: proto/orders.proto
  - name: grpc
    service: {port: 9090}
    type: REST
dependencies:
  connectionReferences:
    - name: db
      resourceRef: database:/x
configurations:
  env:
    - name: 1BAD
      valueFrom:
        connectionRef: {name: nosuch}
";
    let (report, endpoints) = validate_component_yaml(document, &BTreeSet::new());
    let expected = [
        (
            "endpoints[0].name",
            "endpoints[0].name must start with a lowercase letter and can only contain lowercase letters, numbers, underscores (_), and hyphens (-).",
        ),
        (
            "endpoints[0].service.basePath",
            "endpoints[0].service.basePath must start with a forward slash and can only contain alphanumeric characters, hyphens, underscores and forward slashes.",
        ),
        (
            "endpoints[0].service.port",
            "endpoints[0].service.port must be greater than 1000",
        ),
        (
            "endpoints[0].type",
            "endpoints[0].type must be one of the following values: REST, GraphQL, GRPC, TCP, UDP, WS",
        ),
        (
            "endpoints[0].networkVisibilities[0]",
            "endpoints[0].networkVisibilities[0] must be one of the following values: Public, Project, Organization",
        ),
        (
            "endpoints[1].service.port",
            "endpoints[1].service.port must be less than 65535",
        ),
        (
            "endpoints[1].schemaFilePath",
            "Schema file does not exist at the given path proto/orders.proto.",
        ),
        (
            "endpoints[1].networkVisibilities",
            "The endpoints[1] is a type GRPC endpoint and can only have networkVisibility set to Project",
        ),
        ("endpoints", "Endpoint names must be unique"),
        (
            "dependencies.connectionReferences[0].name",
            "dependencies.connectionReferences[0].name can only contain letters, numbers, with non-consecutive delimiters: underscores (_), hyphens (-), dots (.), or spaces.",
        ),
        (
            "dependencies.connectionReferences[0].resourceRef",
            "dependencies.connectionReferences[0].resourceRef has an invalid service identifier. Use the format database:[<serverName>/]<databaseName> where optional fields are in brackets, allowing only alphanumeric characters, underscores (_), hyphens (-), and slashes (/) after database:.",
        ),
        (
            "configurations.env[0].name",
            "Environment variable name must start with a letter or underscore and can only contain letters, numbers, and underscores.",
        ),
        (
            "configurations.env[0].valueFrom.connectionRef.key",
            "configurations.env[0].valueFrom.connectionRef.key is a required field",
        ),
    ];
    assert_eq!(pairs(&report.errors), expected);
    assert_eq!(
        pairs(&report.warnings),
        [(
            "configurations.env[0].valueFrom.connectionRef.name",
            "there is no connection named \"nosuch\" in dependencies.connectionReferences"
        )]
    );
    assert!(!report.valid);
    assert!(endpoints.is_empty());
}

#[rustfmt::skip]
#[test]
fn syntax_errors_have_line_and_column() {
    let cases = [
        ("version: 0.1\nendpoints:\n  - name: a\n   port: 1\n", "Failed to parse yaml: did not find expected '-' indicator at line 4 column 4, while parsing a block collection at line 3 column 3"),
        ("version: 0.1\nendpoints: [a, b\n", "Failed to parse yaml: did not find expected ',' or ']' at line 3 column 1, while parsing a flow sequence at line 2 column 12"),
        ("version: 0.1\nversion: 0.2\nendpoints: []\n", "Failed to parse yaml: duplicate entry with key \"version\" at line 1 column 1"),
        ("version: 0.1\nendpoints:\n\t- name: a\n", "Failed to parse yaml: found character that cannot start any token at line 3 column 1, while scanning for the next token"),
        ("a: *nope\n", "Failed to parse yaml: unknown anchor at line 1 column 4"),
    ];
    for (document, message) in cases {
        for kind in SourceConfigKind::PRECEDENCE {
            let (report, endpoints) = kind.validate(document, &BTreeSet::new());
            assert_eq!(pairs(&report.errors), [("", message)], "{kind}: {document:?}");
            assert!(report.warnings.is_empty() && endpoints.is_empty() && !report.valid);
        }
    }
}

#[test]
fn older_formats_get_choreos_outdated_warning() {
    let warning = |what: &str| {
        format!(
            "OUTDATED SOURCE CONFIG: You are using {what}, which is an outdated source configuration file. Update to \"component.yaml v1.2\" to benefit from new features and improvements."
        )
    };
    let cases = [
        (
            SourceConfigKind::EndpointsYaml,
            "version: 0.1\nendpoints: []\n",
            Some(warning("endpoints.yaml")),
        ),
        (
            SourceConfigKind::ComponentConfigYaml,
            "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\n",
            Some(warning("component-config.yaml")),
        ),
        // Choreo prints the version as JavaScript prints the number: 1.0 is "v1".
        (
            SourceConfigKind::ComponentYaml,
            "schemaVersion: 1.0\n",
            Some(warning("component.yaml v1")),
        ),
        (
            SourceConfigKind::ComponentYaml,
            "schemaVersion: '1.1'\n",
            Some(warning("component.yaml v1.1")),
        ),
        (
            SourceConfigKind::ComponentYaml,
            "schemaVersion: 1.2\n",
            None,
        ),
        (SourceConfigKind::ComponentYaml, "schemaVersion: 3\n", None),
    ];
    for (kind, document, expected) in cases {
        let (report, _) = kind.validate(document, &BTreeSet::new());
        let got: Vec<(&str, &str)> = pairs(&report.warnings);
        let want: Vec<(&str, &str)> = expected.iter().map(|m| ("", m.as_str())).collect();
        assert_eq!(got, want, "{kind}: {document:?}");
    }
}

#[test]
fn feature_of_a_later_version_is_ignored_with_a_warning() {
    let (report, _) = validate_component_yaml(
        "schemaVersion: 1.0\ndependencies:\n  connectionReferences: []\nconfigurations: {}\n",
        &BTreeSet::new(),
    );
    assert!(report.valid, "{report:?}");
    let paths: Vec<&str> = report.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        ["", "dependencies.connectionReferences", "configurations"]
    );
}

#[test]
fn valid_files_yield_normalized_endpoints() {
    let files = schema_files(&["openapi.yaml", "api/schema.graphql"]);
    let (report, endpoints) = validate_endpoints_yaml(
        "version: 0.1\nendpoints:\n  - {name: Greeting Service, port: '9090', type: REST, context: /greeting, schemaFilePath: ./openapi.yaml}\n  - {name: grpc, port: 5000, type: GRPC, networkVisibility: Project}\n",
        &files,
    );
    assert!(report.valid, "{report:?}");
    assert_eq!(
        endpoints,
        [
            Endpoint {
                name: "Greeting Service".into(),
                display_name: "Greeting Service".into(),
                port: 9090,
                kind: EndpointType::Rest,
                visibilities: vec![Visibility::Public],
                context: "/greeting".into(),
                schema_file: Some("openapi.yaml".into()),
            },
            Endpoint {
                name: "grpc".into(),
                display_name: "grpc".into(),
                port: 5000,
                kind: EndpointType::Grpc,
                visibilities: vec![Visibility::Project],
                context: "/".into(),
                schema_file: None,
            },
        ]
    );

    let (report, endpoints) = validate_component_yaml(
        "schemaVersion: 1.2\nendpoints:\n  - name: graph\n    displayName: Graph API\n    service: {basePath: /graphql, port: 8080}\n    type: GraphQL\n    networkVisibilities: [Organization, Public, Organization]\n    schemaFilePath: api/schema.graphql\n  - name: rest\n    service: {port: 8081}\n    type: REST\n",
        &files,
    );
    assert!(report.valid, "{report:?}");
    assert_eq!(endpoints[0].display_name, "Graph API");
    assert_eq!(
        endpoints[0].visibilities,
        [Visibility::Organization, Visibility::Public]
    );
    assert_eq!(endpoints[0].context, "/graphql");
    assert_eq!(
        endpoints[0].schema_file.as_deref(),
        Some("api/schema.graphql")
    );
    assert_eq!(
        (
            endpoints[1].display_name.as_str(),
            endpoints[1].context.as_str()
        ),
        ("rest", "/")
    );
    assert_eq!(endpoints[1].visibilities, [Visibility::Public]);

    let (report, endpoints) = validate_component_config_yaml(
        "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\nspec:\n  inbound:\n    - {name: ws, port: 7000, type: WS, context: /chat, networkVisibility: Organization}\n",
        &files,
    );
    assert!(report.valid, "{report:?}");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].kind, EndpointType::Ws);
    assert_eq!(endpoints[0].visibilities, [Visibility::Organization]);
}

#[test]
fn detects_the_kind_by_name_then_content() {
    let cases = [
        (
            "component.yaml",
            "anything: 1",
            Some(SourceConfigKind::ComponentYaml),
        ),
        (
            "repo/.choreo/component-config.yml",
            "",
            Some(SourceConfigKind::ComponentConfigYaml),
        ),
        (
            "C:\\src\\.choreo\\endpoints.yaml",
            "",
            Some(SourceConfigKind::EndpointsYaml),
        ),
        (
            "my.yaml",
            "schemaVersion: 1.2\n",
            Some(SourceConfigKind::ComponentYaml),
        ),
        (
            "my.yaml",
            "apiVersion: x\n",
            Some(SourceConfigKind::ComponentConfigYaml),
        ),
        (
            "my.yaml",
            "kind: ComponentConfig\n",
            Some(SourceConfigKind::ComponentConfigYaml),
        ),
        (
            "my.yaml",
            "endpoints: []\n",
            Some(SourceConfigKind::EndpointsYaml),
        ),
        ("my.yaml", "foo: bar\n", None),
        ("my.yaml", "[1, 2]", None),
        ("my.yaml", "a: [", None),
        (
            "not-component.yaml",
            "version: 0.1\n",
            Some(SourceConfigKind::EndpointsYaml),
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(detect_kind(name, text), want, "{name}: {text:?}");
    }

    let (report, _) = detect_and_validate("x.yaml", "foo: bar\n", &BTreeSet::new());
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0]
            .message
            .starts_with("is not a Choreo source configuration file")
    );
    let (report, _) = detect_and_validate("x.yaml", "a: [", &BTreeSet::new());
    assert!(
        report.errors[0]
            .message
            .starts_with("Failed to parse yaml: ")
    );
    let (report, endpoints) = detect_and_validate(
        "x.yaml",
        "schemaVersion: 1.2\nendpoints:\n  - {name: a, service: {port: 9090}, type: REST}\n",
        &BTreeSet::new(),
    );
    assert!(report.valid && endpoints.len() == 1, "{report:?}");
}

#[test]
fn component_yaml_takes_precedence() {
    let mut files = BTreeMap::new();
    files.insert(
        "endpoints.yaml".to_owned(),
        "version: 0.1\nendpoints: [bad]\n".to_owned(),
    );
    files.insert("README.md".to_owned(), "# hi".to_owned());
    let chosen = validate_source_configs(&files, &BTreeSet::new()).expect("endpoints.yaml");
    assert_eq!(chosen.kind, SourceConfigKind::EndpointsYaml);
    assert!(!chosen.report.valid);

    files.insert(
        "component-config.yaml".to_owned(),
        "apiVersion: core.choreo.dev/v1beta1\nkind: ComponentConfig\n".to_owned(),
    );
    files.insert(
        "component.yaml".to_owned(),
        "schemaVersion: 1.2\n".to_owned(),
    );
    let chosen = validate_source_configs(&files, &BTreeSet::new()).expect("component.yaml");
    assert_eq!(chosen.kind, SourceConfigKind::ComponentYaml);
    assert!(chosen.report.valid, "{chosen:?}");
    assert_eq!(
        pairs(&chosen.report.warnings),
        [
            (
                "",
                "component-config.yaml is ignored: component.yaml takes precedence over it"
            ),
            (
                "",
                "endpoints.yaml is ignored: component.yaml takes precedence over it"
            ),
        ]
    );

    assert!(validate_source_configs(&BTreeMap::new(), &BTreeSet::new()).is_none());
}

#[test]
fn serializes_camel_case() {
    let (report, _) = validate_endpoints_yaml("version: 0.1\n", &BTreeSet::new());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(
        json["errors"],
        serde_json::json!([{"path": "endpoints", "message": "endpoints is a required field"}])
    );
    assert_eq!(json["warnings"][0]["path"], "");

    let endpoint = Endpoint {
        name: "graph".into(),
        display_name: "Graph".into(),
        port: 8080,
        kind: EndpointType::GraphQl,
        visibilities: vec![Visibility::Project],
        context: "/g".into(),
        schema_file: None,
    };
    assert_eq!(
        serde_json::to_value(&endpoint).unwrap(),
        serde_json::json!({"name": "graph", "displayName": "Graph", "port": 8080, "type": "GraphQL", "visibilities": ["Project"], "context": "/g", "schemaFile": null})
    );
    for t in EndpointType::ALL {
        assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        assert_eq!(EndpointType::parse(t.as_str()), Some(t));
    }
    assert_eq!(
        TYPES_MSG,
        format!(
            "must be one of the following values: {}",
            EndpointType::ALL.map(EndpointType::as_str).join(", ")
        )
    );
}

#[test]
fn issue_display_does_not_repeat_the_path() {
    assert_eq!(
        Issue::new("a.b", "a.b is a required field").to_string(),
        "a.b is a required field"
    );
    assert_eq!(
        Issue::new("a.b", "Endpoint names must be unique").to_string(),
        "a.b: Endpoint names must be unique"
    );
    assert_eq!(
        Issue::new("", "Failed to parse yaml: x").to_string(),
        "Failed to parse yaml: x"
    );
}
