//! `berth env …`: the organization's environments in promotion order.

use anyhow::bail;
use berth_core::api::{CreateEnvironment, Environment, EnvironmentOrder, List};
use reqwest::Method;
use serde_json::Value;

use crate::cli::EnvCmd;
use crate::client::{Client, seg};
use crate::printer::{Columns, Printer};

const ENV_COLUMNS: Columns = &[
    ("POSITION", "position"),
    ("NAME", "name"),
    ("DISPLAY NAME", "displayName"),
];

pub async fn run(cmd: EnvCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    let base = format!("/api/v1/orgs/{org}/environments");
    match cmd {
        EnvCmd::List => printer.print(&c.get::<List<Environment>>(&base).await?, ENV_COLUMNS),
        EnvCmd::Create {
            name,
            display_name,
            position,
        } => {
            let body = CreateEnvironment {
                name,
                display_name,
                position,
            };
            printer.print(&c.post::<_, Environment>(&base, &body).await?, ENV_COLUMNS)
        }
        EnvCmd::Delete { name, yes } => {
            if !yes {
                bail!("deleting environment {name:?} cannot be undone; add --yes to confirm");
            }
            c.delete::<Value>(&format!("{base}/{}", seg(&name))).await?;
            printer.done("deleted", "environment", &name)
        }
        EnvCmd::Reorder { names } => {
            let body = EnvironmentOrder { order: names };
            let envs: List<Environment> = c
                .call(Method::PUT, &format!("{base}/order"), Some(&body))
                .await?;
            printer.print(&envs, ENV_COLUMNS)
        }
    }
}
