//! `berth endpoints …`: upload a component's endpoints file and schemas, list its URLs.
#![allow(clippy::print_stdout)]

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::cli::{EndpointsCmd, Output};
use crate::client::{Client, seg};
use crate::printer::Printer;
use crate::{component_base, read_input};

/// The directory `schemaFilePath`s are relative to: the file's directory, or its parent when
/// the file is in `.choreo` (Choreo resolves them against the source root).
fn source_root(file: &Path) -> PathBuf {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == ".choreo") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

/// The name a schema file is uploaded as: its path relative to the source root, `/`-separated.
fn schema_name(root: &Path, schema: &Path) -> String {
    let relative = schema.strip_prefix(root).unwrap_or(schema);
    let parts: Vec<String> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if parts.is_empty() || schema.strip_prefix(root).is_err() {
        schema
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        parts.join("/")
    }
}

pub async fn run(cmd: EndpointsCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        EndpointsCmd::Set {
            project,
            component,
            file,
            schema,
        } => {
            let base = format!("{}/{}", component_base(org, &project), seg(&component));
            let root = source_root(&file);
            for s in &schema {
                let name = schema_name(&root, s);
                let content = read_input(s)?;
                let path = format!(
                    "{base}/schemas/{}",
                    name.split('/').map(seg).collect::<Vec<_>>().join("/")
                );
                c.put_text::<Value>(&path, content)
                    .await
                    .with_context(|| format!("uploading the schema {name}"))?;
            }
            let content = read_input(&file)?;
            let file_name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "endpoints.yaml".into());
            let state: Value = c
                .call(
                    reqwest::Method::PUT,
                    &format!("{base}/endpoints"),
                    Some(&serde_json::json!({ "fileName": file_name, "content": content })),
                )
                .await?;
            print_state(&state, printer)
        }
        EndpointsCmd::List { project, component } => {
            let base = format!("{}/{}", component_base(org, &project), seg(&component));
            let state: Value = c.get(&format!("{base}/endpoints")).await?;
            print_state(&state, printer)
        }
    }
}

fn print_state(state: &Value, printer: Printer) -> anyhow::Result<()> {
    if printer.output != Output::Table {
        return printer.print(state, &[]);
    }
    for w in state["warnings"].as_array().into_iter().flatten() {
        printer.note(&format!(
            "warning: {}",
            w["message"].as_str().unwrap_or_default()
        ));
    }
    let mut rows = Vec::new();
    for e in state["endpoints"].as_array().into_iter().flatten() {
        let urls: Vec<String> = e["urls"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(env, url)| format!("{env}={}", url.as_str().unwrap_or("-")))
            .collect();
        rows.push(serde_json::json!({
            "name": e["name"], "type": e["type"], "port": e["port"], "context": e["context"],
            "visibility": e["visibilities"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
            "urls": urls.join(" "),
        }));
    }
    printer.print(
        &serde_json::json!({ "items": rows }),
        &[
            ("NAME", "name"),
            ("TYPE", "type"),
            ("PORT", "port"),
            ("CONTEXT", "context"),
            ("VISIBILITY", "visibility"),
            ("URLS", "urls"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_relative_to_the_source_root() {
        let root = source_root(Path::new("repo/.choreo/component.yaml"));
        assert_eq!(root, Path::new("repo"));
        assert_eq!(
            schema_name(&root, Path::new("repo/api/openapi.yaml")),
            "api/openapi.yaml"
        );
        assert_eq!(
            schema_name(&root, Path::new("/elsewhere/openapi.yaml")),
            "openapi.yaml"
        );
        let root = source_root(Path::new("svc/endpoints.yaml"));
        assert_eq!(
            schema_name(&root, Path::new("svc/openapi.yaml")),
            "openapi.yaml"
        );
    }
}
