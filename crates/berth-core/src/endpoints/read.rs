//! Reading a parsed YAML document the way Choreo's validator reads it: js-yaml builds a plain
//! value, and yup 1.x checks each field with its casting rules (a number where a string is
//! expected is its decimal text, `"9090"` is a number, `null` is not "absent") and its stock
//! messages (`… is a required field`, `… cannot be null`, `… must be a \`number\` type, …`).
//!
//! Every check reports into one [`Checker`] and carries on, so a document yields all of its
//! problems at once.

use std::collections::BTreeSet;

use serde_yaml_ng::{Mapping, Value};

use super::Issue;

/// What Choreo's validator prints before a js-yaml error (`index.js`, `parseYaml`).
const PARSE_PREFIX: &str = "Failed to parse yaml: ";

/// Parses the text into a generic value, `<<` merge keys applied. A syntax error becomes one
/// issue that names its line and column.
pub(super) fn parse(text: &str) -> Result<Value, Issue> {
    // Editors on Windows save a byte-order mark; js-yaml ignores it too.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut value: Value = crate::yaml::parse(text).map_err(|e| match e {
        crate::yaml::Error::Syntax(e) => syntax_issue(&e),
        too_large => Issue::new("", too_large.to_string()),
    })?;
    value.apply_merge().map_err(|e| syntax_issue(&e))?;
    Ok(value)
}

fn syntax_issue(e: &serde_yaml_ng::Error) -> Issue {
    let mut message = format!("{PARSE_PREFIX}{e}");
    // libyaml's scanner errors say where; serde's own (duplicate keys) do not.
    if let Some(at) = e.location().filter(|_| !message.contains(" at line ")) {
        message.push_str(&format!(" at line {} column {}", at.line(), at.column()));
    }
    Issue::new("", message)
}

/// `parent.key`, or `key` at the top.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The value under `key`, tags (`!!str x`) looked through.
pub(super) fn get<'v>(obj: &'v Mapping, key: &str) -> Option<&'v Value> {
    obj.get(key).map(untag)
}

pub(super) fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

/// Whether a field is there with a value (JavaScript's `value != null`).
pub(super) fn is_given(obj: &Mapping, key: &str) -> bool {
    !matches!(get(obj, key), None | Some(Value::Null))
}

/// A JavaScript number as JavaScript prints it: `9090`, not `9090.0`.
pub(super) fn js_number(n: f64) -> String {
    if n.is_nan() {
        "NaN".to_owned()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else if n == 0.0 && n.is_sign_negative() {
        "-0".to_owned()
    } else if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

/// A YAML number as a JavaScript number (js-yaml reads every number as a double).
pub(super) fn number_value(n: &serde_yaml_ng::Number) -> f64 {
    if let Some(i) = n.as_i64() {
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64().unwrap_or(f64::NAN)
    }
}

/// yup's `printValue(value, true)`: simple values as JavaScript shows them, strings quoted.
/// Lists and maps are shown as compact JSON (yup indents them; the content is the same).
pub(super) fn print_value(value: &Value) -> String {
    match untag(value) {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(number_value(n)),
        Value::String(s) => format!("\"{s}\""),
        other => serde_json::to_string(&to_json(other)).unwrap_or_else(|_| "?".to_owned()),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match untag(value) {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        // As JavaScript's JSON.stringify prints it: whole numbers without a fraction.
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => serde_json::Value::from(i),
            (None, Some(u)) => serde_json::Value::from(u),
            (None, None) => {
                let f = number_value(n);
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    serde_json::Value::from(f as i64)
                } else {
                    serde_json::Number::from_f64(f)
                        .map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
            }
        },
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Mapping(map) => {
            serde_json::Value::Object(map.iter().map(|(k, v)| (key_text(k), to_json(v))).collect())
        }
        Value::Tagged(_) => serde_json::Value::Null, // unreachable: untagged above
    }
}

/// A mapping key as js-yaml turns it into an object key.
fn key_text(key: &Value) -> String {
    match untag(key) {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(number_value(n)),
        other => serde_json::to_string(&to_json(other)).unwrap_or_default(),
    }
}

/// JavaScript's `Number(text)`.
pub(super) fn js_to_number(text: &str) -> f64 {
    let trimmed = text.trim_matches(is_js_space);
    if trimmed.is_empty() {
        0.0
    } else {
        js_parse_number(trimmed)
    }
}

/// JavaScript's `Number(text)` after yup removed all whitespace: decimal, `0x`/`0o`/`0b`
/// integers and `Infinity`; anything else is `NaN`.
fn js_parse_number(text: &str) -> f64 {
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    let radix = |digits: &str, radix: u32| {
        // JavaScript allows no sign before a prefixed integer.
        if sign < 0.0 || text.starts_with('+') {
            return f64::NAN;
        }
        u64::from_str_radix(digits, radix).map_or(f64::NAN, |v| v as f64)
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return radix(hex, 16);
    }
    if let Some(oct) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        return radix(oct, 8);
    }
    if let Some(bin) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        return radix(bin, 2);
    }
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    // Rust accepts "inf", "nan" and "infinity", which JavaScript does not.
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return f64::NAN;
    }
    body.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// JavaScript's `\s`.
pub(super) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// A field after yup's type and null checks.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field<T> {
    /// Not in the document (a required field has been reported).
    Absent,
    /// Present with a value of the right type (after yup's casting).
    Given(T),
    /// `null` or of the wrong type, and reported; yup runs none of the field's other tests.
    Failed,
}

impl<T> Field<T> {
    pub fn given(self) -> Option<T> {
        match self {
            Field::Given(v) => Some(v),
            Field::Absent | Field::Failed => None,
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Field::Failed)
    }
}

/// Collects the issues of one document.
pub(super) struct Checker<'a> {
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    pub schema_files: &'a BTreeSet<String>,
}

impl<'a> Checker<'a> {
    pub fn new(schema_files: &'a BTreeSet<String>) -> Self {
        Self {
            errors: Vec::new(),
            warnings: Vec::new(),
            schema_files,
        }
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Issue::new(path, message));
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Issue::new(path, message));
    }

    /// yup's `mixed.required`.
    pub fn required(&mut self, path: &str) {
        self.error(path, format!("{path} is a required field"));
    }

    /// yup's `mixed.notNull` (an optional field written as `key:` or `key: null`), or
    /// `mixed.required` when the field is required.
    fn null(&mut self, path: &str, required: bool) {
        if required {
            self.required(path);
        } else {
            self.error(path, format!("{path} cannot be null"));
        }
    }

    /// yup's `mixed.notType`.
    fn not_type(&mut self, path: &str, kind: &str, value: &str, cast_from: Option<&Value>) {
        let cast = cast_from.map_or_else(
            || ".".to_owned(),
            |original| format!(" (cast from the value `{}`).", print_value(original)),
        );
        self.error(
            path,
            format!("{path} must be a `{kind}` type, but the final value was: `{value}`{cast}"),
        );
    }

    /// yup's `mixed.oneOf`.
    pub fn one_of(&mut self, path: &str, allowed: &[&str]) {
        self.error(
            path,
            format!(
                "{path} must be one of the following values: {}",
                allowed.join(", ")
            ),
        );
    }

    /// A `yup.string()`: numbers and booleans become their text, lists and maps are refused.
    /// A required string must not be empty; the empty string is still returned (yup runs the
    /// field's other tests on it too).
    pub fn string(&mut self, value: Option<&Value>, path: &str, required: bool) -> Field<String> {
        match value.map(untag) {
            None => {
                if required {
                    self.required(path);
                }
                Field::Absent
            }
            Some(Value::Null) => {
                self.null(path, required);
                Field::Failed
            }
            Some(Value::String(s)) => {
                if required && s.is_empty() {
                    self.required(path);
                }
                Field::Given(s.clone())
            }
            Some(Value::Bool(b)) => Field::Given(b.to_string()),
            Some(Value::Number(n)) => Field::Given(js_number(number_value(n))),
            Some(other) => {
                self.not_type(path, "string", &print_value(other), None);
                Field::Failed
            }
        }
    }

    /// A `yup.number()`: numeric text is read as a number; anything else that is not a number
    /// is `NaN` and refused.
    pub fn number(&mut self, value: Option<&Value>, path: &str, required: bool) -> Field<f64> {
        let original = match value.map(untag) {
            None => {
                if required {
                    self.required(path);
                }
                return Field::Absent;
            }
            Some(Value::Null) => {
                self.null(path, required);
                return Field::Failed;
            }
            Some(Value::Number(n)) => {
                let n = number_value(n);
                if n.is_nan() {
                    self.not_type(path, "number", "NaN", None);
                    return Field::Failed;
                }
                return Field::Given(n);
            }
            Some(other) => other,
        };
        let cast = match original {
            Value::String(s) => {
                let compact: String = s.chars().filter(|c| !is_js_space(*c)).collect();
                if compact.is_empty() {
                    f64::NAN
                } else {
                    js_parse_number(&compact)
                }
            }
            _ => f64::NAN,
        };
        if cast.is_nan() {
            self.not_type(path, "number", "NaN", Some(original));
            Field::Failed
        } else {
            Field::Given(cast)
        }
    }

    /// A `yup.boolean()`: `true`/`false`, and text or numbers that read as `true|1` or
    /// `false|0` (any case).
    pub fn boolean(&mut self, value: Option<&Value>, path: &str) -> Field<bool> {
        let text = match value.map(untag) {
            None => return Field::Absent,
            Some(Value::Null) => {
                self.null(path, false);
                return Field::Failed;
            }
            Some(Value::Bool(b)) => return Field::Given(*b),
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(Value::Number(n)) => js_number(number_value(n)),
            Some(other) => {
                self.not_type(path, "boolean", &print_value(other), None);
                return Field::Failed;
            }
        };
        match text.as_str() {
            "true" | "1" => Field::Given(true),
            "false" | "0" => Field::Given(false),
            _ => {
                let shown = print_value(value.map(untag).unwrap_or(&Value::Null));
                self.not_type(path, "boolean", &shown, None);
                Field::Failed
            }
        }
    }

    /// A `yup.array()`.
    pub fn array<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
        required: bool,
    ) -> Field<&'v [Value]> {
        match value.map(untag) {
            None => {
                if required {
                    self.required(path);
                }
                Field::Absent
            }
            Some(Value::Null) => {
                self.null(path, required);
                Field::Failed
            }
            Some(Value::Sequence(items)) => Field::Given(items),
            Some(other) => {
                self.not_type(path, "array", &print_value(other), None);
                Field::Failed
            }
        }
    }

    /// A `yup.object()`. Absent is an empty object (yup's default for object schemas), so the
    /// fields inside are still checked: a missing `service` reports `service.port`.
    pub fn object<'v>(&mut self, value: Option<&'v Value>, path: &str) -> Option<ObjectRef<'v>> {
        match value.map(untag) {
            None => Some(ObjectRef::Empty),
            Some(Value::Null) => {
                self.null(path, false);
                None
            }
            Some(Value::Mapping(map)) => Some(ObjectRef::Map(map)),
            Some(other) => {
                self.not_type(path, "object", &print_value(other), None);
                None
            }
        }
    }

    /// Like [`Checker::object`] for a required object: `null` is "a required field".
    pub fn required_object<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
    ) -> Option<ObjectRef<'v>> {
        if matches!(value.map(untag), Some(Value::Null)) {
            self.null(path, true);
            return None;
        }
        self.object(value, path)
    }
}

/// An object field's value: a mapping, or the empty object yup substitutes when it is absent.
#[derive(Clone, Copy)]
pub(super) enum ObjectRef<'v> {
    Empty,
    Map(&'v Mapping),
}

impl<'v> ObjectRef<'v> {
    pub fn get(self, key: &str) -> Option<&'v Value> {
        match self {
            ObjectRef::Empty => None,
            ObjectRef::Map(map) => get(map, key),
        }
    }

    pub fn has(self, key: &str) -> bool {
        match self {
            ObjectRef::Empty => false,
            ObjectRef::Map(map) => is_given(map, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn numbers_print_and_parse_as_in_javascript() {
        for (n, text) in [(9090.0, "9090"), (0.1, "0.1"), (-0.0, "-0"), (1.5e21, "1500000000000000000000"), (f64::NAN, "NaN"), (f64::NEG_INFINITY, "-Infinity")] {
            assert_eq!(js_number(n), text, "{n}");
        }
        for (text, n) in [("9090", 9090.0), ("0x2382", 9090.0), ("1e3", 1000.0), ("-5", -5.0), ("+7", 7.0), ("Infinity", f64::INFINITY), (".5", 0.5)] {
            assert_eq!(js_parse_number(text), n, "{text}");
        }
        for text in ["abc", "inf", "nan", "9090px", "-0x10", "0xZZ", "1.2.3", "infinity"] {
            assert!(js_parse_number(text).is_nan(), "{text}");
        }
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let issue = parse("endpoints:\n  - name: a\n   port: 1\n").unwrap_err();
        assert_eq!(issue.path, "");
        assert!(
            issue.message.starts_with(PARSE_PREFIX) && issue.message.contains("at line 3 column"),
            "{issue:?}"
        );
        // serde's duplicate-key error has no position of its own; the location is added.
        let issue = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            issue.message,
            "Failed to parse yaml: duplicate entry with key \"a\" at line 1 column 1"
        );
    }

    #[test]
    fn merge_keys_and_tags_are_resolved() {
        let value = parse("base: &b {port: 9090}\nep:\n  <<: *b\n  name: !!str x\n").unwrap();
        let Value::Mapping(root) = value else {
            panic!("not a mapping")
        };
        let Some(Value::Mapping(ep)) = get(&root, "ep") else {
            panic!("no ep")
        };
        assert_eq!(get(ep, "port"), Some(&Value::from(9090)));
        assert_eq!(get(ep, "name"), Some(&Value::from("x")));
    }
}
