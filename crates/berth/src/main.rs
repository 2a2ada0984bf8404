//! `berth`: the server (`berth serve`) and the CLI that talks to it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod client;
mod printer;

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use berth_core::api::{
    ApiToken, AuditEntry, CreateApiToken, CreateOrg, CreateProject, CreateUser, CreatedApiToken,
    Environment, List, Org, Project, UpdateOrg, UpdateProject, User, WhoAmI,
};
use clap::{CommandFactory, Parser};
use serde_json::Value;

use crate::cli::{
    AuditCmd, Cli, Command, EnvCmd, LogFormat, OrgCmd, ProjectCmd, ServeArgs, TokenCmd, UserCmd,
};
use crate::client::{CallError, Client, resolve_token, seg, store_credentials};
use crate::printer::{Columns, Printer};

const ORG_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("DISPLAY NAME", "displayName"),
    ("CREATED", "createdAt"),
];
const PROJECT_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("DISPLAY NAME", "displayName"),
    ("DESCRIPTION", "description"),
    ("CREATED", "createdAt"),
];
const ENV_COLUMNS: Columns = &[
    ("POSITION", "position"),
    ("NAME", "name"),
    ("DISPLAY NAME", "displayName"),
];
const USER_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("ROLE", "role"),
    ("DISPLAY NAME", "displayName"),
    ("CREATED", "createdAt"),
];
const TOKEN_COLUMNS: Columns = &[
    ("ID", "id"),
    ("USER", "user"),
    ("NAME", "name"),
    ("PREFIX", "prefix"),
    ("ROLE", "role"),
    ("CREATED", "createdAt"),
    ("LAST USED", "lastUsedAt"),
    ("EXPIRES", "expiresAt"),
    ("REVOKED", "revokedAt"),
];
const AUDIT_COLUMNS: Columns = &[
    ("AT", "at"),
    ("ACTOR", "actor"),
    ("METHOD", "method"),
    ("PATH", "path"),
    ("STATUS", "status"),
    ("SOURCE", "source"),
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer { output: cli.output };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer.error(
                "internal",
                &format!("starting the async runtime failed: {e}"),
                None,
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, printer)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<CallError>() {
                Some(CallError {
                    api: Some(api),
                    message,
                }) => {
                    printer.error(&api.error.code, message, api.error.field.as_deref());
                }
                _ => printer.error("error", &format!("{e:#}"), None),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, printer: Printer) -> anyhow::Result<()> {
    // One TLS provider for the process (reqwest is built without a default one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let org = seg(&cli.org);
    let client = || Client::new(&cli.server, resolve_token(&cli.server, &cli.data_dir));
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(())
        }
        Command::Login { token_stdin } => {
            let token = if token_stdin {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .context("reading the token from stdin")?;
                t.trim().to_owned()
            } else {
                std::env::var("BERTH_TOKEN")
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            if token.is_empty() {
                bail!(
                    "no token given: pipe it into `berth login --token-stdin` or set BERTH_TOKEN"
                );
            }
            let who: WhoAmI = Client::new(&cli.server, Some(token.clone()))?
                .get("/api/v1/whoami")
                .await?;
            let path = store_credentials(cli.server.trim_end_matches('/'), Some(&token))?;
            printer.note(&format!(
                "logged in to {} as {} ({}); token saved to {}",
                cli.server,
                who.user,
                who.role,
                path.display()
            ));
            printer.print(
                &who,
                &[("USER", "user"), ("ROLE", "role"), ("TOKEN", "token")],
            )
        }
        Command::Logout => {
            let path = store_credentials(cli.server.trim_end_matches('/'), None)?;
            printer.note(&format!(
                "removed the token for {} from {}",
                cli.server,
                path.display()
            ));
            Ok(())
        }
        Command::Whoami => {
            let who: WhoAmI = client()?.get("/api/v1/whoami").await?;
            printer.print(
                &who,
                &[("USER", "user"), ("ROLE", "role"), ("TOKEN", "token")],
            )
        }
        Command::Org(cmd) => {
            let c = client()?;
            match cmd {
                OrgCmd::List => {
                    printer.print(&c.get::<List<Org>>("/api/v1/orgs").await?, ORG_COLUMNS)
                }
                OrgCmd::Get { name } => printer.print(
                    &c.get::<Org>(&format!("/api/v1/orgs/{}", seg(&name)))
                        .await?,
                    ORG_COLUMNS,
                ),
                OrgCmd::Create { name, describe } => {
                    let body = CreateOrg {
                        name,
                        display_name: describe.display_name,
                        description: describe.description,
                    };
                    printer.print(&c.post::<_, Org>("/api/v1/orgs", &body).await?, ORG_COLUMNS)
                }
                OrgCmd::Update { name, describe } => {
                    let body = UpdateOrg {
                        name: None,
                        display_name: describe.display_name,
                        description: describe.description,
                    };
                    let path = format!("/api/v1/orgs/{}", seg(&name));
                    printer.print(&c.patch::<_, Org>(&path, &body).await?, ORG_COLUMNS)
                }
                OrgCmd::Delete { name, yes } => {
                    confirm(yes, "organization", &name)?;
                    c.delete::<Value>(&format!("/api/v1/orgs/{}", seg(&name)))
                        .await?;
                    printer.done("deleted", "organization", &name)
                }
            }
        }
        Command::Project(cmd) => {
            let c = client()?;
            let base = format!("/api/v1/orgs/{org}/projects");
            match cmd {
                ProjectCmd::List => {
                    printer.print(&c.get::<List<Project>>(&base).await?, PROJECT_COLUMNS)
                }
                ProjectCmd::Get { name } => printer.print(
                    &c.get::<Project>(&format!("{base}/{}", seg(&name))).await?,
                    PROJECT_COLUMNS,
                ),
                ProjectCmd::Create { name, describe } => {
                    let body = CreateProject {
                        name,
                        display_name: describe.display_name,
                        description: describe.description,
                    };
                    printer.print(&c.post::<_, Project>(&base, &body).await?, PROJECT_COLUMNS)
                }
                ProjectCmd::Update { name, describe } => {
                    let body = UpdateProject {
                        name: None,
                        display_name: describe.display_name,
                        description: describe.description,
                    };
                    let path = format!("{base}/{}", seg(&name));
                    printer.print(&c.patch::<_, Project>(&path, &body).await?, PROJECT_COLUMNS)
                }
                ProjectCmd::Delete { name, yes } => {
                    confirm(yes, "project", &name)?;
                    c.delete::<Value>(&format!("{base}/{}", seg(&name))).await?;
                    printer.done("deleted", "project", &name)
                }
            }
        }
        Command::Env(EnvCmd::List) => {
            let envs: List<Environment> = client()?
                .get(&format!("/api/v1/orgs/{org}/environments"))
                .await?;
            printer.print(&envs, ENV_COLUMNS)
        }
        Command::User(cmd) => {
            let c = client()?;
            match cmd {
                UserCmd::List => {
                    printer.print(&c.get::<List<User>>("/api/v1/users").await?, USER_COLUMNS)
                }
                UserCmd::Get { name } => printer.print(
                    &c.get::<User>(&format!("/api/v1/users/{}", seg(&name)))
                        .await?,
                    USER_COLUMNS,
                ),
                UserCmd::Create {
                    name,
                    role,
                    display_name,
                } => {
                    let role = role.parse().map_err(|e: String| anyhow!("--role: {e}"))?;
                    let body = CreateUser {
                        name,
                        display_name,
                        role,
                    };
                    printer.print(
                        &c.post::<_, User>("/api/v1/users", &body).await?,
                        USER_COLUMNS,
                    )
                }
                UserCmd::Delete { name, yes } => {
                    confirm(yes, "user", &name)?;
                    c.delete::<Value>(&format!("/api/v1/users/{}", seg(&name)))
                        .await?;
                    printer.done("deleted", "user", &name)
                }
            }
        }
        Command::Token(cmd) => {
            let c = client()?;
            match cmd {
                TokenCmd::List { user } => {
                    let path = match user {
                        Some(u) => format!("/api/v1/tokens?user={}", seg(&u)),
                        None => "/api/v1/tokens".to_owned(),
                    };
                    printer.print(&c.get::<List<ApiToken>>(&path).await?, TOKEN_COLUMNS)
                }
                TokenCmd::Create {
                    name,
                    user,
                    expires_in_days,
                } => {
                    let user = match user {
                        Some(u) => u,
                        None => c.get::<WhoAmI>("/api/v1/whoami").await?.user,
                    };
                    let body = CreateApiToken {
                        user,
                        name,
                        expires_in_days,
                    };
                    let created: CreatedApiToken = c.post("/api/v1/tokens", &body).await?;
                    if printer.output == cli::Output::Table {
                        printer.note("the token is shown once; store it now:");
                        println!("{}", created.secret);
                        Ok(())
                    } else {
                        printer.print(&created, &[])
                    }
                }
                TokenCmd::Revoke { id } => {
                    let token: ApiToken = c.delete(&format!("/api/v1/tokens/{}", seg(&id))).await?;
                    printer.print(&token, TOKEN_COLUMNS)
                }
            }
        }
        Command::Audit(AuditCmd::List { limit }) => {
            let rows: List<AuditEntry> = client()?
                .get(&format!("/api/v1/audit?limit={limit}"))
                .await?;
            printer.print(&rows, AUDIT_COLUMNS)
        }
    }
}

fn confirm(yes: bool, kind: &str, name: &str) -> anyhow::Result<()> {
    if yes {
        Ok(())
    } else {
        bail!("deleting {kind} {name:?} cannot be undone; add --yes to confirm")
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let config = berth_server::Config {
        data_dir: args.data_dir,
        listen: args.listen,
        engine: args.engine,
    };
    let server = berth_server::Server::prepare(&config).await?;
    if let Some(token) = &server.admin_token {
        println!(
            "berth: first start: created organization \"default\" (development -> production) and user \"admin\".\n\
             Admin token (shown once; also saved to {}, mode 0600):\n\n    {token}\n",
            server.admin_token_file.display()
        );
    }
    server.run(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
