//! The one place the CLI writes results: `-o table|json|yaml`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use serde::Serialize;
use serde_json::Value;

use crate::cli::Output;

/// Columns of a table: header and the JSON key it shows.
pub type Columns = &'static [(&'static str, &'static str)];

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub output: Output,
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.replace(['\n', '\t'], " "),
        Some(other) => other.to_string(),
    }
}

/// Renders rows as an aligned table.
pub fn render_table(rows: &[Value], columns: Columns) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, k)| cell(r.get(*k))).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |vals: Vec<&str>, out: &mut String| {
        let mut s = String::new();
        for (i, (v, w)) in vals.iter().zip(&widths).enumerate() {
            if i + 1 == vals.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  "));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(columns.iter().map(|(h, _)| *h).collect(), &mut out);
    for row in &cells {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

impl Printer {
    /// Prints a value: a table of its `items` (or of itself) or the whole value as JSON/YAML.
    pub fn print<T: Serialize>(&self, value: &T, columns: Columns) -> anyhow::Result<()> {
        let value = serde_json::to_value(value)?;
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
            Output::Yaml => print!("{}", serde_yaml_ng::to_string(&value)?),
            Output::Table => {
                let rows = match value.get("items").and_then(Value::as_array) {
                    Some(items) => items.clone(),
                    None => vec![value],
                };
                print!("{}", render_table(&rows, columns));
            }
        }
        Ok(())
    }

    /// Prints a short confirmation; in JSON/YAML as `{"status": ..., "kind": ..., "name": ...}`.
    pub fn done(&self, status: &str, kind: &str, name: &str) -> anyhow::Result<()> {
        match self.output {
            Output::Table => println!("{kind} {name:?} {status}"),
            _ => self.print(
                &serde_json::json!({ "status": status, "kind": kind, "name": name }),
                &[],
            )?,
        }
        Ok(())
    }

    /// Prints an error: the API's envelope on stdout for JSON/YAML (it is part of the output
    /// contract), a readable line on stderr for tables.
    pub fn error(&self, code: &str, message: &str, field: Option<&str>) {
        self.error_with_details(code, message, field, None);
    }

    /// Like [`Printer::error`], with the list of every problem when the server sent one.
    pub fn error_with_details(
        &self,
        code: &str,
        message: &str,
        field: Option<&str>,
        details: Option<&serde_json::Value>,
    ) {
        let mut body =
            serde_json::json!({ "error": { "code": code, "message": message, "field": field } });
        if let Some(d) = details {
            body["error"]["details"] = d.clone();
        }
        if self.output == Output::Table
            && let Some(items) = details.and_then(serde_json::Value::as_array)
        {
            eprintln!("error: {message}");
            for d in items {
                eprintln!(
                    "  {}: {}",
                    d["path"].as_str().unwrap_or_default(),
                    d["message"].as_str().unwrap_or_default()
                );
            }
            return;
        }
        match self.output {
            Output::Table => eprintln!("error: {message}"),
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string())
            ),
            Output::Yaml => print!(
                "{}",
                serde_yaml_ng::to_string(&body).unwrap_or_else(|_| body.to_string())
            ),
        }
    }

    /// A note for humans on stderr (never mixed into machine-readable stdout).
    pub fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_marks_missing() {
        let rows = vec![
            serde_json::json!({"name": "shop", "displayName": "Shop"}),
            serde_json::json!({"name": "a-longer-name", "displayName": null}),
        ];
        let out = render_table(&rows, &[("NAME", "name"), ("DISPLAY NAME", "displayName")]);
        assert_eq!(
            out,
            "NAME           DISPLAY NAME\nshop           Shop\na-longer-name  -\n"
        );
    }
}
