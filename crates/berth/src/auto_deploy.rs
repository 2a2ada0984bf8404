//! `berth auto-deploy …`: a component's auto-deploy policy (set, get, disable, check now).

use berth_core::auto_deploy::{
    AutoDeploy, AutoDeployCheck, PutAutoDeploy, RegistryNotificationSecret,
};
use reqwest::Method;

use crate::cli::{AutoDeployCmd, AutoDeployTarget, Output};
use crate::client::{Client, seg};
use crate::printer::{Columns, Printer};

const COLUMNS: Columns = &[
    ("COMPONENT", "component"),
    ("POLICY", "policy"),
    ("TAG", "tag"),
    ("RANGE", "range"),
    ("REGEX", "regex"),
    ("SORT", "sort"),
    ("INTERVAL", "intervalSeconds"),
    ("ENABLED", "enabled"),
    ("LAST CHECKED", "lastCheckedAt"),
    ("LAST TAG", "lastTag"),
    ("LAST ERROR", "lastError"),
];

const CHECK_COLUMNS: Columns = &[
    ("DECISION", "decision"),
    ("TAG", "tag"),
    ("DIGEST", "digest"),
    ("DEPLOYMENT", "deploymentId"),
    ("MESSAGE", "message"),
];

fn path(org: &str, t: &AutoDeployTarget) -> String {
    format!(
        "/api/v1/orgs/{org}/projects/{}/components/{}/auto-deploy",
        seg(&t.project),
        seg(&t.component)
    )
}

pub async fn run(
    cmd: AutoDeployCmd,
    c: &Client,
    org: &str,
    printer: Printer,
) -> anyhow::Result<()> {
    match cmd {
        AutoDeployCmd::Set {
            target,
            policy,
            tag,
            range,
            regex,
            sort,
            interval,
            disabled,
        } => {
            let body = PutAutoDeploy {
                policy,
                tag,
                range,
                regex,
                sort,
                interval_seconds: interval,
                enabled: Some(!disabled),
            };
            let set: AutoDeploy = c
                .call(Method::PUT, &path(org, &target), Some(&body))
                .await?;
            printer.print(&set, COLUMNS)
        }
        AutoDeployCmd::Get { target } => {
            printer.print(&c.get::<AutoDeploy>(&path(org, &target)).await?, COLUMNS)
        }
        AutoDeployCmd::Disable { target } => {
            printer.print(&c.delete::<AutoDeploy>(&path(org, &target)).await?, COLUMNS)
        }
        AutoDeployCmd::Check { target } => {
            let answer: AutoDeployCheck = c
                .post(
                    &format!("{}/check", path(org, &target)),
                    &serde_json::json!({}),
                )
                .await?;
            printer.print(&answer, CHECK_COLUMNS)
        }
        AutoDeployCmd::NotificationSecret { registry } => {
            let path = format!(
                "/api/v1/orgs/{org}/registries/{}/notification-secret",
                seg(&registry)
            );
            let created: RegistryNotificationSecret = c.post(&path, &serde_json::json!({})).await?;
            if printer.output == Output::Table {
                printer.note(&format!(
                    "notification secret of registry {registry:?} created; it is shown once. \
                     Configure the registry to send its events to {} with the header \
                     `Authorization: Bearer <secret>`:",
                    created.url
                ));
                println!("{}", created.secret);
                Ok(())
            } else {
                printer.print(&created, &[])
            }
        }
    }
}
