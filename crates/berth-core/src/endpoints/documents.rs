//! The three documents, field by field, in the order of Choreo's yup schemas (a field's errors
//! in declaration order, an object's own checks after its fields', a list's after its
//! items'), so errors come out in the order Choreo lists them.
//!
//! Messages marked "Choreo" are Choreo's validator's (`schemas.js`, `index.js`, and the
//! expectations of its `test/schema.test.js`) or yup's stock messages it relies on; the others
//! are berth's, written in the same style where Choreo has no rule or its source could not be
//! read.
//!
//! Configurations (component.yaml v1.1 and v1.2): the rules of `env` and their messages come
//! from the expectations of Choreo's tests; the v1.2 schema itself was not available, so the
//! configuration-form checks (`configForm` types, `file` entries) follow Choreo's documentation
//! ("Manage component source configurations", "Use configuration form") with berth's
//! messages in yup's style.

use serde_yaml_ng::{Mapping, Value};

use super::grammar::{
    check_resource_ref, check_service_reference_name, is_base_path, is_connection_name,
    is_endpoint_name, is_env_name, is_uuid,
};
use super::read::{Checker, Field, ObjectRef, get, index, join, js_number, js_to_number, untag};
use super::{Endpoint, EndpointType, LATEST_COMPONENT_YAML_VERSION, Visibility};

const TYPES: [&str; 6] = ["REST", "GraphQL", "GRPC", "TCP", "UDP", "WS"];
const VISIBILITIES: [&str; 3] = ["Public", "Project", "Organization"];
const API_VERSIONS: [&str; 1] = ["core.choreo.dev/v1beta1"];
const KINDS: [&str; 1] = ["ComponentConfig"];
/// Configuration-form types of an environment variable (Choreo docs, "Use configuration form").
const ENV_FORM_TYPES: [&str; 4] = ["string", "number", "boolean", "secret"];
/// Configuration-form types of a key of a file.
const FILE_FORM_TYPES: [&str; 6] = ["string", "number", "boolean", "secret", "object", "array"];
const FILE_TYPES: [&str; 3] = ["yaml", "json", "toml"];
/// Choreo: yup's `string().max(50)` on endpoint names and display names.
const NAME_MAX: usize = 50;

/// Choreo (`index.js`, `showOlderSrcConfigDetectedMessage`).
fn outdated(what: &str) -> String {
    format!(
        "OUTDATED SOURCE CONFIG: You are using {what}, which is an outdated source configuration file. Update to \"component.yaml v{LATEST_COMPONENT_YAML_VERSION}\" to benefit from new features and improvements."
    )
}

/// endpoints.yaml: `version` (any value: Choreo only requires one) and `endpoints`.
pub(super) fn endpoints_yaml(c: &mut Checker<'_>, root: &Mapping) -> Vec<Endpoint> {
    c.warn("", outdated("endpoints.yaml"));
    c.string(get(root, "version"), "version", true);
    let mut endpoints = Vec::new();
    if let Field::Given(items) = c.array(get(root, "endpoints"), "endpoints", true) {
        for (i, item) in items.iter().enumerate() {
            endpoints.extend(endpoint_v0d1(c, item, &index("endpoints", i)));
        }
    }
    endpoints
}

/// component-config.yaml: `apiVersion`, `kind`, `spec.inbound` (endpoints.yaml's endpoints)
/// and `spec.outbound.serviceReferences`.
pub(super) fn component_config_yaml(c: &mut Checker<'_>, root: &Mapping) -> Vec<Endpoint> {
    c.warn("", outdated("component-config.yaml"));
    required_one_of(c, get(root, "apiVersion"), "apiVersion", &API_VERSIONS);
    required_one_of(c, get(root, "kind"), "kind", &KINDS);
    let mut endpoints = Vec::new();
    if let Some(spec) = c.object(get(root, "spec"), "spec") {
        if let Field::Given(items) = c.array(spec.get("inbound"), "spec.inbound", false) {
            for (i, item) in items.iter().enumerate() {
                endpoints.extend(endpoint_v0d1(c, item, &index("spec.inbound", i)));
            }
        }
        if let Some(outbound) = c.object(spec.get("outbound"), "spec.outbound") {
            service_references(c, outbound, "spec.outbound");
        }
    }
    endpoints
}

/// A component.yaml schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    V1_0,
    V1_1,
    V1_2,
}

/// component.yaml: `schemaVersion`, `endpoints`, `dependencies`, `configurations`.
pub(super) fn component_yaml(c: &mut Checker<'_>, root: &Mapping) -> Vec<Endpoint> {
    let declared = schema_version(c, get(root, "schemaVersion"));
    // An unknown version is an error already; check the rest by the latest schema, which
    // accepts everything the older ones do, so the other problems show up too.
    let version = declared.as_ref().map_or(Version::V1_2, |(v, _)| *v);
    if let Some((v, shown)) = declared
        && v < Version::V1_2
    {
        c.warn("", outdated(&format!("component.yaml v{shown}")));
    }

    let mut endpoints = Vec::new();
    if let Field::Given(items) = c.array(get(root, "endpoints"), "endpoints", false) {
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (name, endpoint) = endpoint_v0d2(c, item, &index("endpoints", i));
            names.extend(name);
            endpoints.extend(endpoint);
        }
        if has_duplicates(&names) {
            // Choreo (`checkEndpointNameUniqueness`).
            c.error("endpoints", "Endpoint names must be unique");
        }
    }

    let mut connections = Vec::new();
    if let Some(deps) = c.object(get(root, "dependencies"), "dependencies") {
        service_references(c, deps, "dependencies");
        if version >= Version::V1_1 {
            connections = connection_references(c, deps);
        } else if deps.has("connectionReferences") {
            c.warn(
                "dependencies.connectionReferences",
                "connectionReferences are read from component.yaml v1.1 on; Choreo ignores them in v1.0",
            );
        }
    }

    // Choreo documents `configurations`; its validator's own samples use `configuration`.
    for key in ["configurations", "configuration"] {
        if !root.contains_key(key) {
            continue;
        }
        if version >= Version::V1_1 {
            if let Some(config) = c.object(get(root, key), key) {
                configurations(c, config, key, version, &connections);
            }
        } else {
            c.warn(
                key,
                format!("{key} are read from component.yaml v1.1 on; Choreo ignores them in v1.0"),
            );
        }
    }
    endpoints
}

/// `schemaVersion`, read as Choreo's action does (`Number(schemaVersion)`, so `"1.1"` is 1.1
/// and `1.0` is shown as `1`). Returns the version and how JavaScript prints it.
fn schema_version(c: &mut Checker<'_>, value: Option<&Value>) -> Option<(Version, String)> {
    const PATH: &str = "schemaVersion";
    let number = match value.map(untag) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(js_to_number(s)),
        Some(Value::Number(n)) => Some(super::read::number_value(n)),
        Some(_) => Some(f64::NAN),
    };
    let Some(number) = number else {
        // Choreo (yup's required message; `schemaVersion: yup.number().required()`).
        c.required(PATH);
        return None;
    };
    let shown = js_number(number);
    let version = match shown.as_str() {
        "1" => Version::V1_0,
        "1.1" => Version::V1_1,
        "1.2" => Version::V1_2,
        _ => {
            // Choreo's wording (`schemas.js` before 1.2, yup's oneOf), with the versions it
            // accepts now; its action still prints "1.0, 1.1" here.
            c.one_of(PATH, &["1.0", "1.1", "1.2"]);
            return None;
        }
    };
    Some((version, shown))
}

/// An item of a list of objects: `null` or a scalar is reported, as yup does.
fn item_object<'v>(c: &mut Checker<'_>, item: &'v Value, path: &str) -> Option<ObjectRef<'v>> {
    c.object(Some(item), path)
}

/// A required string that must be one of `allowed`.
fn required_one_of(c: &mut Checker<'_>, value: Option<&Value>, path: &str, allowed: &[&str]) {
    if let Field::Given(s) = c.string(value, path, true)
        && !allowed.contains(&s.as_str())
    {
        c.one_of(path, allowed);
    }
}

/// Choreo: `port: yup.number().required().moreThan(1000).lessThan(65535)`.
///
/// berth also refuses a port with a fraction (yup's `number.integer` message), which Choreo's
/// validator lets through but no container can listen on.
fn port(c: &mut Checker<'_>, value: Option<&Value>, path: &str) -> Option<u16> {
    let n = c.number(value, path, true).given()?;
    let mut ok = true;
    if n.is_nan() || n <= 1000.0 {
        c.error(path, format!("{path} must be greater than 1000"));
        ok = false;
    }
    if n.is_nan() || n >= 65535.0 {
        c.error(path, format!("{path} must be less than 65535"));
        ok = false;
    }
    if ok && n.fract() != 0.0 {
        c.error(path, format!("{path} must be an integer"));
        ok = false;
    }
    // In range and whole, so the conversion is exact.
    ok.then_some(n as u16)
}

/// Choreo: `type: yup.string().required().oneOf(ALLOWED_TYPES)`.
fn endpoint_type(c: &mut Checker<'_>, value: Option<&Value>, path: &str) -> Option<EndpointType> {
    let s = c.string(value, path, true).given()?;
    let kind = EndpointType::parse(&s);
    if kind.is_none() {
        c.one_of(path, &TYPES);
    }
    kind
}

/// A visibility at `path`; reported when it is not one of Choreo's three.
fn visibility(c: &mut Checker<'_>, value: Option<&Value>, path: &str) -> Field<Visibility> {
    match c.string(value, path, false) {
        Field::Given(s) => match Visibility::parse(&s) {
            Some(v) => Field::Given(v),
            None => {
                c.one_of(path, &VISIBILITIES);
                Field::Failed
            }
        },
        Field::Absent => Field::Absent,
        Field::Failed => Field::Failed,
    }
}

/// Choreo (`schemaFileExists`): a non-empty `schemaFilePath` must name an existing file,
/// relative to the source root. Returns the normalized path.
fn schema_file(c: &mut Checker<'_>, obj: ObjectRef<'_>, parent: &str) -> Option<String> {
    let path = join(parent, "schemaFilePath");
    let Field::Given(value) = c.string(obj.get("schemaFilePath"), &path, false) else {
        return None;
    };
    if value.is_empty() {
        return None;
    }
    let found = normalize_relative(&value).filter(|wanted| {
        c.schema_files
            .iter()
            .any(|file| normalize_relative(file).as_ref() == Some(wanted))
    });
    if found.is_none() {
        c.error(
            path,
            format!("Schema file does not exist at the given path {value}."),
        );
    }
    found
}

/// A `/`-separated path relative to a root, as Node's `path.join(root, p)` resolves it:
/// leading `/`, `.` and empty components dropped, `..` applied. `None` for a path that leaves
/// the root or names a directory (trailing `/`, or nothing at all).
fn normalize_relative(p: &str) -> Option<String> {
    if p.ends_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An endpoint of endpoints.yaml or of component-config.yaml's `spec.inbound`
/// (Choreo's `endpointSchemaV0D1`).
fn endpoint_v0d1(c: &mut Checker<'_>, item: &Value, path: &str) -> Option<Endpoint> {
    let obj = item_object(c, item, path)?;
    let name = c.string(obj.get("name"), &join(path, "name"), true).given();
    let port = port(c, obj.get("port"), &join(path, "port"));
    let kind = endpoint_type(c, obj.get("type"), &join(path, "type"));
    let visibility = visibility(
        c,
        obj.get("networkVisibility"),
        &join(path, "networkVisibility"),
    );

    let context_path = join(path, "context");
    let context = c.string(obj.get("context"), &context_path, false);
    if !context.is_failed() {
        let missing = matches!(&context, Field::Absent)
            || matches!(&context, Field::Given(s) if s.is_empty());
        if let Some(kind) = kind.filter(|k| k.is_http())
            && missing
        {
            // Choreo (`contextRequired`).
            c.error(
                &context_path,
                format!("{context_path} is required for {kind}-type endpoints"),
            );
        }
        if let Field::Given(s) = &context
            && !is_base_path(s)
        {
            // Choreo. (The pattern allows underscores too; the message does not say so.)
            c.error(
                &context_path,
                format!(
                    "{context_path} must start with a forward slash and can only contain alphanumeric characters, hyphens, and forward slashes."
                ),
            );
        }
    }
    let schema_file = schema_file(c, obj, path);

    let name = name?;
    Some(Endpoint {
        display_name: name.clone(),
        name,
        port: port?,
        kind: kind?,
        visibilities: vec![visibility.given().unwrap_or(Visibility::Public)],
        context: context
            .given()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/".to_owned()),
        schema_file,
    })
}

/// An endpoint of component.yaml (Choreo's `endpointSchemaV0D2`). Returns its name (for the
/// uniqueness check) and, when complete, the endpoint.
fn endpoint_v0d2(
    c: &mut Checker<'_>,
    item: &Value,
    path: &str,
) -> (Option<String>, Option<Endpoint>) {
    let Some(obj) = item_object(c, item, path) else {
        return (None, None);
    };
    let name_path = join(path, "name");
    let name = c.string(obj.get("name"), &name_path, true).given();
    if let Some(name) = &name {
        if too_long(name) {
            c.error(
                &name_path,
                format!("{name_path} must be at most {NAME_MAX} characters"),
            );
        }
        if !is_endpoint_name(name) {
            c.error(
                &name_path,
                format!(
                    "{name_path} must start with a lowercase letter and can only contain lowercase letters, numbers, underscores (_), and hyphens (-)."
                ),
            );
        }
    }
    let display_path = join(path, "displayName");
    let display_name = c
        .string(obj.get("displayName"), &display_path, false)
        .given();
    if display_name.as_deref().is_some_and(too_long) {
        c.error(
            &display_path,
            format!("{display_path} must be at most {NAME_MAX} characters"),
        );
    }

    let service_path = join(path, "service");
    let mut base_path = None;
    let mut port_number = None;
    if let Some(service) = c.required_object(obj.get("service"), &service_path) {
        let base_path_path = join(&service_path, "basePath");
        base_path = c
            .string(service.get("basePath"), &base_path_path, false)
            .given();
        if let Some(b) = &base_path
            && !is_base_path(b)
        {
            c.error(
                &base_path_path,
                format!(
                    "{base_path_path} must start with a forward slash and can only contain alphanumeric characters, hyphens, underscores and forward slashes."
                ),
            );
        }
        port_number = port(c, service.get("port"), &join(&service_path, "port"));
    }
    let kind = endpoint_type(c, obj.get("type"), &join(path, "type"));

    let visibilities_path = join(path, "networkVisibilities");
    let mut visibilities = Vec::new();
    let mut all_project = false;
    if let Field::Given(items) = c.array(obj.get("networkVisibilities"), &visibilities_path, false)
    {
        all_project = !items.is_empty();
        for (i, item) in items.iter().enumerate() {
            let v = visibility(c, Some(item), &index(&visibilities_path, i));
            all_project &= v == Field::Given(Visibility::Project);
            if let Field::Given(v) = v
                && !visibilities.contains(&v)
            {
                visibilities.push(v);
            }
        }
    }
    let schema_file = schema_file(c, obj, path);
    if let Some(kind) = kind.filter(|k| k.project_only())
        && !all_project
    {
        // Choreo (test/schema.test.js: "should fail when UDP,TCP and GRPC have visibility other
        // than project"); an absent list means the default, Public.
        c.error(
            visibilities_path,
            format!(
                "The {path} is a type {kind} endpoint and can only have networkVisibility set to Project"
            ),
        );
    }
    if visibilities.is_empty() {
        visibilities.push(Visibility::Public);
    }

    let endpoint = match (&name, port_number, kind) {
        (Some(name), Some(port), Some(kind)) => Some(Endpoint {
            name: name.clone(),
            display_name: display_name
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| name.clone()),
            port,
            kind,
            visibilities,
            context: base_path
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
            schema_file,
        }),
        _ => None,
    };
    (name, endpoint)
}

/// yup's `max(50)`, which counts UTF-16 code units.
fn too_long(s: &str) -> bool {
    s.encode_utf16().count() > NAME_MAX
}

fn has_duplicates(names: &[String]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    names.iter().any(|n| !seen.insert(n))
}

/// `serviceReferences` under `parent` (`dependencies` or `spec.outbound`).
fn service_references(c: &mut Checker<'_>, parent: ObjectRef<'_>, parent_path: &str) {
    let path = join(parent_path, "serviceReferences");
    let Field::Given(items) = c.array(parent.get("serviceReferences"), &path, false) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        let Some(obj) = item_object(c, item, &item_path) else {
            continue;
        };
        let name_path = join(&item_path, "name");
        if let Field::Given(name) = c.string(obj.get("name"), &name_path, true)
            && let Err(message) = check_service_reference_name(&name)
        {
            c.error(&name_path, format!("{name_path} {message}"));
        }
        let config_path = join(&item_path, "connectionConfig");
        if let Field::Given(config) = c.string(obj.get("connectionConfig"), &config_path, true)
            && !is_uuid(&config)
        {
            c.error(&config_path, format!("{config_path} must be a valid UUID"));
        }
        let env_path = join(&item_path, "env");
        if let Field::Given(env) = c.array(obj.get("env"), &env_path, true) {
            for (j, mapping) in env.iter().enumerate() {
                let mapping_path = index(&env_path, j);
                if let Some(m) = item_object(c, mapping, &mapping_path) {
                    c.string(m.get("from"), &join(&mapping_path, "from"), true);
                    c.string(m.get("to"), &join(&mapping_path, "to"), true);
                }
            }
        }
    }
}

/// `dependencies.connectionReferences` (v1.1 on). Returns the connection names.
fn connection_references(c: &mut Checker<'_>, deps: ObjectRef<'_>) -> Vec<String> {
    const PATH: &str = "dependencies.connectionReferences";
    let mut names = Vec::new();
    let Field::Given(items) = c.array(deps.get("connectionReferences"), PATH, false) else {
        return names;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(PATH, i);
        let Some(obj) = item_object(c, item, &item_path) else {
            continue;
        };
        let name_path = join(&item_path, "name");
        if let Field::Given(name) = c.string(obj.get("name"), &name_path, true) {
            if !is_connection_name(&name) {
                c.error(
                    &name_path,
                    format!(
                        "{name_path} can only contain letters, numbers, with non-consecutive delimiters: underscores (_), hyphens (-), dots (.), or spaces."
                    ),
                );
            }
            names.push(name);
        }
        let ref_path = join(&item_path, "resourceRef");
        if let Field::Given(reference) = c.string(obj.get("resourceRef"), &ref_path, true)
            && let Err(message) = check_resource_ref(&reference)
        {
            c.error(&ref_path, format!("{ref_path} {message}"));
        }
    }
    names
}

/// `configurations` (v1.1 on): `env`, and from v1.2 `file`.
fn configurations(
    c: &mut Checker<'_>,
    config: ObjectRef<'_>,
    path: &str,
    version: Version,
    connections: &[String],
) {
    let env_path = join(path, "env");
    if let Field::Given(items) = c.array(config.get("env"), &env_path, false) {
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            names.extend(env_var(c, item, &index(&env_path, i), version, connections));
        }
        if has_duplicates(&names) {
            // Choreo (test/schema.test.js).
            c.error(env_path, "Environment variable names must be unique");
        }
    }
    let file_path = join(path, "file");
    if version < Version::V1_2 {
        if config.has("file") {
            c.warn(
                file_path,
                "file configurations are read from component.yaml v1.2 on; Choreo ignores them in v1.1",
            );
        }
    } else if let Field::Given(items) = c.array(config.get("file"), &file_path, false) {
        for (i, item) in items.iter().enumerate() {
            config_file(c, item, &index(&file_path, i), connections);
        }
    }
}

/// An environment variable: a `name`, and a `value` or a `valueFrom` with a `connectionRef`,
/// a `configGroupRef` or (v1.2) a `configForm`. Returns its name.
fn env_var(
    c: &mut Checker<'_>,
    item: &Value,
    path: &str,
    version: Version,
    connections: &[String],
) -> Option<String> {
    let obj = item_object(c, item, path)?;
    let name_path = join(path, "name");
    let name = c.string(obj.get("name"), &name_path, true).given();
    if let Some(name) = &name
        && !is_env_name(name)
    {
        // Choreo (test/schema.test.js; the message has no path).
        c.error(
            &name_path,
            "Environment variable name must start with a letter or underscore and can only contain letters, numbers, and underscores.",
        );
    }
    c.string(obj.get("value"), &join(path, "value"), false);

    let from_path = join(path, "valueFrom");
    let mut has_source = false;
    if let Some(from) = c.object(obj.get("valueFrom"), &from_path) {
        has_source |= reference(c, from, &from_path, "connectionRef", Some(connections));
        has_source |= reference(c, from, &from_path, "configGroupRef", None);
        if version >= Version::V1_2 && from.get("configForm").is_some() {
            form_field(
                c,
                from.get("configForm"),
                &join(&from_path, "configForm"),
                &ENV_FORM_TYPES,
                false,
            );
            has_source = true;
        }
    }
    let has_value = !matches!(obj.get("value"), None | Some(Value::Null));
    if !has_value && !has_source {
        // Choreo (test/schema.test.js; the v1.2 message has the double space).
        let message = if version >= Version::V1_2 {
            "One of value, connectionRef, configGroupRef  or configForm must be provided"
        } else {
            "One of value, connectionRef or configGroupRef must be provided"
        };
        c.error(path, message);
    }
    name
}

/// A `connectionRef` or `configGroupRef` under `valueFrom`: `name` and `key`, both required
/// (Choreo). With `connections`, a `name` that is none of them gets a warning (berth).
/// Returns whether the reference is there.
fn reference(
    c: &mut Checker<'_>,
    from: ObjectRef<'_>,
    from_path: &str,
    key: &str,
    connections: Option<&[String]>,
) -> bool {
    let value = from.get(key);
    if value.is_none() {
        return false;
    }
    let path = join(from_path, key);
    if let Some(r) = c.object(value, &path) {
        let name_path = join(&path, "name");
        let name = c.string(r.get("name"), &name_path, true).given();
        c.string(r.get("key"), &join(&path, "key"), true);
        if let (Some(name), Some(connections)) = (name, connections)
            && !name.is_empty()
            && !connections.contains(&name)
        {
            c.warn(
                name_path,
                format!(
                    "there is no connection named {name:?} in dependencies.connectionReferences"
                ),
            );
        }
    }
    !matches!(value.map(untag), Some(Value::Null))
}

/// A configuration-form field (berth, after Choreo's docs): `displayName`, `required`
/// (a boolean), `type` (one of `types`); for keys of files also `values` (choices), and
/// `properties` when the type is `object`, `items` when it is `array`, recursively.
fn form_field(
    c: &mut Checker<'_>,
    value: Option<&Value>,
    path: &str,
    types: &[&str],
    nested: bool,
) {
    let Some(obj) = c.object(value, path) else {
        return;
    };
    c.string(obj.get("displayName"), &join(path, "displayName"), false);
    c.boolean(obj.get("required"), &join(path, "required"));
    let type_path = join(path, "type");
    let kind = c.string(obj.get("type"), &type_path, false).given();
    if let Some(k) = &kind
        && !types.contains(&k.as_str())
    {
        c.one_of(&type_path, types);
    }
    if !nested {
        return;
    }
    let values_path = join(path, "values");
    if let Field::Given(choices) = c.array(obj.get("values"), &values_path, false) {
        for (i, choice) in choices.iter().enumerate() {
            c.string(Some(choice), &index(&values_path, i), true);
        }
    }
    match kind.as_deref() {
        Some("object") => {
            let props_path = join(path, "properties");
            if let Field::Given(props) = c.array(obj.get("properties"), &props_path, true) {
                min_one(c, props, &props_path);
                for (i, prop) in props.iter().enumerate() {
                    let prop_path = index(&props_path, i);
                    if let Some(p) = item_object(c, prop, &prop_path) {
                        c.string(p.get("name"), &join(&prop_path, "name"), true);
                        form_field(c, Some(prop), &prop_path, types, true);
                    }
                }
            }
        }
        Some("array") => {
            let items_path = join(path, "items");
            match obj.get("items") {
                None => c.required(&items_path),
                items => form_field(c, items, &items_path, types, true),
            }
        }
        _ => {}
    }
}

/// yup's `array().min(1)`.
fn min_one(c: &mut Checker<'_>, items: &[Value], path: &str) {
    if items.is_empty() {
        c.error(path, format!("{path} field must have at least 1 items"));
    }
}

/// A configuration-form file (v1.2; berth, after Choreo's docs): `name`, `mountPath` (an
/// absolute path: it is where the file appears in the container), `type` (yaml, json or toml)
/// and at least one key in `values`, each with a `name` and a `valueFrom` holding a
/// `connectionRef` or a `configForm`.
fn config_file(c: &mut Checker<'_>, item: &Value, path: &str, connections: &[String]) {
    let Some(obj) = item_object(c, item, path) else {
        return;
    };
    c.string(obj.get("name"), &join(path, "name"), true);
    let mount_path = join(path, "mountPath");
    if let Field::Given(mount) = c.string(obj.get("mountPath"), &mount_path, true)
        && !mount.is_empty()
        && !mount.starts_with('/')
    {
        c.error(
            &mount_path,
            format!("{mount_path} must be an absolute path (start with a forward slash)"),
        );
    }
    required_one_of(c, obj.get("type"), &join(path, "type"), &FILE_TYPES);
    let values_path = join(path, "values");
    let Field::Given(keys) = c.array(obj.get("values"), &values_path, true) else {
        return;
    };
    min_one(c, keys, &values_path);
    for (i, key) in keys.iter().enumerate() {
        let key_path = index(&values_path, i);
        let Some(k) = item_object(c, key, &key_path) else {
            continue;
        };
        c.string(k.get("name"), &join(&key_path, "name"), true);
        let from_path = join(&key_path, "valueFrom");
        let mut has_source = false;
        if let Some(from) = c.object(k.get("valueFrom"), &from_path) {
            has_source |= reference(c, from, &from_path, "connectionRef", Some(connections));
            if from.get("configForm").is_some() {
                form_field(
                    c,
                    from.get("configForm"),
                    &join(&from_path, "configForm"),
                    &FILE_FORM_TYPES,
                    true,
                );
                has_source = true;
            }
        }
        if !has_source {
            c.error(
                &key_path,
                "One of connectionRef or configForm must be provided",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn schema_paths_resolve_like_path_join() {
        for (input, want) in [("openapi.yaml", Some("openapi.yaml")), ("./openapi.yaml", Some("openapi.yaml")), ("/openapi.yaml", Some("openapi.yaml")), ("api//v1/../spec.json", Some("api/spec.json")), ("../secret", None), ("api/", None), (".", None), ("", None)] {
            assert_eq!(normalize_relative(input).as_deref(), want, "{input:?}");
        }
    }
}
