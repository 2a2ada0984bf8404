//! `berth ci …`: component-bound CI tokens and ready-made deploy snippets.

use berth_core::api::{CiSnippet, CiToken, CreateCiToken, CreatedCiToken, List};

use crate::cli::{CiCmd, CiTarget, CiTokenCmd, Output};
use crate::client::{Client, seg};
use crate::printer::{Columns, Printer};

const CI_TOKEN_COLUMNS: Columns = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("PREFIX", "prefix"),
    ("CREATED", "createdAt"),
    ("CREATED BY", "createdBy"),
    ("LAST USED", "lastUsedAt"),
    ("EXPIRES", "expiresAt"),
    ("REVOKED", "revokedAt"),
];

fn component_path(org: &str, t: &CiTarget) -> String {
    format!(
        "/api/v1/orgs/{org}/projects/{}/components/{}",
        seg(&t.project),
        seg(&t.component)
    )
}

pub async fn run(cmd: CiCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        CiCmd::Token(CiTokenCmd::Create {
            target,
            name,
            expires_in_days,
        }) => {
            let path = format!("{}/ci-tokens", component_path(org, &target));
            let body = CreateCiToken {
                name,
                expires_in_days,
            };
            let created: CreatedCiToken = c.post(&path, &body).await?;
            if printer.output == Output::Table {
                printer.note(&format!(
                    "CI token {:?} of {}/{} created; it is shown once, store it as the CI secret BERTH_TOKEN:",
                    created.token.name, target.project, target.component
                ));
                println!("{}", created.secret);
                Ok(())
            } else {
                printer.print(&created, &[])
            }
        }
        CiCmd::Token(CiTokenCmd::List { target }) => {
            let path = format!("{}/ci-tokens", component_path(org, &target));
            printer.print(&c.get::<List<CiToken>>(&path).await?, CI_TOKEN_COLUMNS)
        }
        CiCmd::Token(CiTokenCmd::Revoke { target, token }) => {
            let path = format!("{}/ci-tokens/{}", component_path(org, &target), seg(&token));
            printer.print(&c.delete::<CiToken>(&path).await?, CI_TOKEN_COLUMNS)
        }
        CiCmd::Snippet { target, kind } => {
            let path = format!(
                "{}/ci-snippets/{}",
                component_path(org, &target),
                seg(&kind)
            );
            let snippet: CiSnippet = c.get(&path).await?;
            if printer.output == Output::Table {
                // The text as is, ready to paste or to redirect into a file.
                print!("{}", snippet.text);
                Ok(())
            } else {
                printer.print(&snippet, &[])
            }
        }
    }
}
