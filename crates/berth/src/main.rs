//! `berth`: the server (`berth serve`) and the CLI that talks to it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod auto_deploy;
mod ci;
mod cli;
mod client;
mod endpoints;
mod environments;
mod printer;
mod tasks;

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use berth_core::api::{
    ApiToken, CreateApiToken, CreateOrg, CreateProject, CreateUser, CreatedApiToken, List, Org,
    Project, UpdateOrg, UpdateProject, User, WhoAmI,
};
use clap::{CommandFactory, Parser};
use serde_json::Value;

use crate::cli::{
    AuditCmd, Cli, Command, ComponentCmd, ConfigCmd, ConfigTarget, DataPlaneArg, DeployArgs,
    DeploymentCmd, ImageCmd, LogFormat, OrgCmd, Output, ProjectCmd, RegistryCmd,
    RegistrySettingsArgs, ServeArgs, TokenCmd, UserCmd, ValidateCmd,
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
const REGISTRY_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("HOST", "host"),
    ("AUTH", "authType"),
    ("USERNAME", "username"),
    ("PASSWORD SET", "passwordSet"),
    ("PLATFORM", "platform"),
];
const STEP_COLUMNS: Columns = &[("STEP", "step"), ("OK", "ok"), ("DETAIL", "detail")];
const IMAGE_COLUMNS: Columns = &[
    ("DOMAIN", "domain"),
    ("PATH", "path"),
    ("TAG", "tag"),
    ("DIGEST", "digest"),
    ("NORMALIZED", "normalized"),
];

/// A failure already reported on stdout (e.g. a failed `registry test`): exit 1, print nothing more.
#[derive(Debug)]
pub(crate) struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

const COMPONENT_COLUMNS: Columns = &[
    ("NAME", "name"),
    ("TYPE", "type"),
    ("IMAGE", "image"),
    ("REGISTRY", "registry"),
    ("PORT", "port"),
];
const DEPLOYMENT_COLUMNS: Columns = &[
    ("ID", "id"),
    ("ENV", "environment"),
    ("STATUS", "status"),
    ("TAG", "tag"),
    ("DIGEST", "digest"),
    ("TRIGGER", "trigger"),
    ("CREATED", "createdAt"),
    ("REASON", "reason"),
];
const ACCEPTED_COLUMNS: Columns = &[
    ("DEPLOYMENT", "deploymentId"),
    ("ENV", "environment"),
    ("IMAGE", "image"),
    ("CREATED", "created"),
];
const PREVIOUS_COLUMNS: Columns = &[
    ("DIGEST", "digest"),
    ("IMAGE", "image"),
    ("RELEASE", "release"),
    ("FIRST DEPLOYED", "firstDeployedAt"),
    ("LAST DEPLOYED", "lastDeployedAt"),
    ("TRIGGER", "trigger"),
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
        Err(e) if e.is::<Reported>() => ExitCode::FAILURE,
        Err(e) => {
            match e.downcast_ref::<CallError>() {
                Some(CallError {
                    api: Some(api),
                    message,
                }) => {
                    let details = api
                        .error
                        .details
                        .as_ref()
                        .and_then(|d| serde_json::to_value(d).ok());
                    printer.error_with_details(
                        &api.error.code,
                        message,
                        api.error.field.as_deref(),
                        details.as_ref(),
                    );
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
                // Every page of the list.
                ProjectCmd::List => printer.print(
                    &c.get_pages(&base, None, LARGEST_PAGE).await?,
                    PROJECT_COLUMNS,
                ),
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
        Command::Env(cmd) => environments::run(cmd, &client()?, &org, printer).await,
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
        Command::Component(cmd) => component(cmd, &client()?, &org, printer).await,
        Command::Deploy(args) => deploy(args, &client()?, &org, printer).await,
        Command::Promote {
            project,
            component,
            from,
            to,
            wait,
        } => {
            let c = client()?;
            let path = format!(
                "/api/v1/orgs/{org}/projects/{}/components/{}/promote",
                seg(&project),
                seg(&component)
            );
            let accepted: Value = c
                .post(&path, &serde_json::json!({ "from": from, "to": to }))
                .await?;
            finish_deploy(&c, accepted, wait, printer).await
        }
        Command::Deployment(cmd) => deployment(cmd, &client()?, &org, printer).await,
        Command::Endpoints(cmd) => endpoints::run(cmd, &client()?, &org, printer).await,
        Command::Config(cmd) => config(cmd, &client()?, &org, printer).await,
        Command::Ci(cmd) => ci::run(cmd, &client()?, &org, printer).await,
        Command::AutoDeploy(cmd) => auto_deploy::run(cmd, &client()?, &org, printer).await,
        Command::Task(cmd) => tasks::task(cmd, &client()?, &org, printer).await,
        Command::Cron(cmd) => tasks::cron(cmd, printer),
        Command::Render {
            project,
            env,
            component,
            reveal_secrets,
        } => {
            render(
                &client()?,
                &org,
                &project,
                &env,
                component,
                reveal_secrets,
                printer,
            )
            .await
        }
        Command::Logs {
            project,
            component,
            env,
            tail,
        } => {
            let mut path = format!(
                "/api/v1/orgs/{org}/projects/{}/components/{}/logs?tail={tail}",
                seg(&project),
                seg(&component)
            );
            if let Some(e) = env {
                path.push_str(&format!("&env={}", seg(&e)));
            }
            let logs: Value = client()?.get(&path).await?;
            if printer.output == cli::Output::Table {
                for line in logs["lines"].as_array().into_iter().flatten() {
                    println!(
                        "{}",
                        line.as_str().unwrap_or_default().trim_end_matches('\n')
                    );
                }
                Ok(())
            } else {
                printer.print(&logs, &[])
            }
        }
        Command::Registry(cmd) => registry(cmd, &client()?, &org, printer).await,
        Command::Image(ImageCmd::Parse { reference }) => image_parse(&reference, printer),
        Command::Validate(ValidateCmd::DockerConfig { file }) => {
            validate_docker_config(&file, printer)
        }
        Command::Validate(ValidateCmd::Endpoints { file, schema_dir }) => {
            validate_source_config(&file, schema_dir.as_deref(), false, printer)
        }
        Command::Validate(ValidateCmd::Component { file, schema_dir }) => {
            validate_source_config(&file, schema_dir.as_deref(), true, printer)
        }
        Command::Audit(AuditCmd::List { limit }) => {
            // As many pages as `limit` rows take (1000 a page).
            let rows = client()?
                .get_pages("/api/v1/audit", Some(limit as usize), 1000)
                .await?;
            printer.print(&rows, AUDIT_COLUMNS)
        }
    }
}

/// Reads a file, or stdin for `-`.
pub(crate) fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .context("reading stdin")?;
        Ok(t)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The JSON body of `registry add|update` from flags; secrets only from stdin or files.
fn registry_body(
    name: Option<String>,
    args: RegistrySettingsArgs,
    clear_ca: bool,
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut body = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    if let Some(n) = name {
        put("name", n.into());
    }
    if let Some(a) = args.auth {
        put("authType", a.as_str().into());
    }
    if let Some(h) = args.host {
        put("host", h.into());
    }
    if let Some(u) = args.username {
        put("username", u.into());
    }
    if args.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .read_to_string(&mut p)
            .context("reading the password from stdin")?;
        // Only the line ending a shell adds; anything else is part of the password.
        let p = p
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&p);
        put("password", p.into());
    }
    if let Some(f) = args.docker_config {
        put("dockerConfig", read_input(&f)?.into());
    }
    if let Some(f) = args.ca_file {
        put("caCertificate", read_input(&f)?.into());
    } else if clear_ca {
        put("caCertificate", "".into());
    }
    if args.insecure {
        put("insecure", true.into());
    }
    if let Some(p) = args.platform {
        put("platform", p.into());
    }
    if let Some(d) = args.display_name {
        put("displayName", d.into());
    }
    Ok(body)
}

async fn registry(cmd: RegistryCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    let base = format!("/api/v1/orgs/{org}/registries");
    match cmd {
        RegistryCmd::Add { name, settings } => {
            if settings.auth.is_none() {
                bail!("--auth is required: anonymous, basic, docker-config or implicit");
            }
            let body = registry_body(Some(name), settings, false)?;
            printer.print(&c.post::<_, Value>(&base, &body).await?, REGISTRY_COLUMNS)
        }
        RegistryCmd::List => printer.print(&c.get::<Value>(&base).await?, REGISTRY_COLUMNS),
        RegistryCmd::Get { name } => printer.print(
            &c.get::<Value>(&format!("{base}/{}", seg(&name))).await?,
            REGISTRY_COLUMNS,
        ),
        RegistryCmd::Update {
            name,
            settings,
            clear_ca,
        } => {
            let body = registry_body(None, settings, clear_ca)?;
            let path = format!("{base}/{}", seg(&name));
            printer.print(&c.patch::<_, Value>(&path, &body).await?, REGISTRY_COLUMNS)
        }
        RegistryCmd::Delete { name, yes } => {
            confirm(yes, "registry", &name)?;
            c.delete::<Value>(&format!("{base}/{}", seg(&name))).await?;
            printer.done("deleted", "registry", &name)
        }
        RegistryCmd::Test { name, image } => {
            let path = format!("{base}/{}/test", seg(&name));
            let report: Value = c
                .post(&path, &serde_json::json!({ "image": image }))
                .await?;
            if printer.output == cli::Output::Table {
                let steps = serde_json::json!({ "items": report["steps"] });
                printer.print(&steps, STEP_COLUMNS)?;
                if let Some(d) = report["digest"].as_str() {
                    println!("digest: {d}");
                }
            } else {
                printer.print(&report, &[])?;
            }
            if report["ok"] == Value::Bool(true) {
                Ok(())
            } else {
                Err(Reported.into())
            }
        }
        RegistryCmd::Tags { name, repository } => {
            let path = format!("{base}/{}/tags?repository={}", seg(&name), seg(&repository));
            let tags: Value = c.get(&path).await?;
            if printer.output == cli::Output::Table {
                for t in tags["tags"].as_array().into_iter().flatten() {
                    println!("{}", t.as_str().unwrap_or_default());
                }
                Ok(())
            } else {
                printer.print(&tags, &[])
            }
        }
    }
}

/// The largest page of the API's lists (but the audit log's); the CLI follows `nextCursor`.
pub(crate) const LARGEST_PAGE: u32 = 500;

pub(crate) fn component_base(org: &str, project: &str) -> String {
    format!("/api/v1/orgs/{org}/projects/{}/components", seg(project))
}

async fn component(
    cmd: ComponentCmd,
    c: &Client,
    org: &str,
    printer: Printer,
) -> anyhow::Result<()> {
    match cmd {
        ComponentCmd::Create {
            name,
            project,
            kind,
            registry,
            image,
            port,
            display_name,
            description,
            no_verify,
        } => {
            let body = serde_json::json!({
                "name": name, "type": kind.as_str(), "registry": registry, "image": image,
                "port": port, "displayName": display_name, "description": description,
                "noVerify": no_verify,
            });
            let created: Value = c.post(&component_base(org, &project), &body).await?;
            printer.print(&created, COMPONENT_COLUMNS)
        }
        ComponentCmd::List { project } => printer.print(
            &c.get_pages(&component_base(org, &project), None, LARGEST_PAGE)
                .await?,
            COMPONENT_COLUMNS,
        ),
        ComponentCmd::Get { name, project } => {
            let path = format!("{}/{}", component_base(org, &project), seg(&name));
            printer.print(&c.get::<Value>(&path).await?, COMPONENT_COLUMNS)
        }
        ComponentCmd::Update {
            name,
            project,
            port,
            display_name,
            description,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(p) = port {
                body.insert("port".into(), p.into());
            }
            if let Some(d) = display_name {
                body.insert("displayName".into(), d.into());
            }
            if let Some(d) = description {
                body.insert("description".into(), d.into());
            }
            let path = format!("{}/{}", component_base(org, &project), seg(&name));
            printer.print(&c.patch::<_, Value>(&path, &body).await?, COMPONENT_COLUMNS)
        }
        ComponentCmd::Delete { name, project, yes } => {
            confirm(yes, "component", &name)?;
            let path = format!("{}/{}", component_base(org, &project), seg(&name));
            c.delete::<Value>(&path).await?;
            printer.done("deleted", "component", &name)
        }
        ComponentCmd::PreviousImages {
            name,
            project,
            limit,
        } => {
            let path = format!(
                "{}/{}/previous-images",
                component_base(org, &project),
                seg(&name)
            );
            printer.print(
                &c.get_pages(&path, limit.map(|l| l as usize), LARGEST_PAGE)
                    .await?,
                PREVIOUS_COLUMNS,
            )
        }
        ComponentCmd::Status { name, project } => {
            let path = format!(
                "{}/{}/environments",
                component_base(org, &project),
                seg(&name)
            );
            let envs: Value = c.get(&path).await?;
            if printer.output == cli::Output::Table {
                let rows: Vec<Value> = envs["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        serde_json::json!({
                            "environment": e["environment"],
                            "status": e["latest"]["status"],
                            "digest": e["current"]["digest"],
                            "url": e["url"],
                        })
                    })
                    .collect();
                printer.print(
                    &serde_json::json!({ "items": rows }),
                    &[
                        ("ENV", "environment"),
                        ("LATEST", "status"),
                        ("SERVING", "digest"),
                        ("URL", "url"),
                    ],
                )
            } else {
                printer.print(&envs, &[])
            }
        }
    }
}

async fn deploy(args: DeployArgs, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    let path = format!(
        "{}/{}/deploy",
        component_base(org, &args.project),
        seg(&args.component)
    );
    let mut body = serde_json::Map::new();
    if let Some(t) = args.tag {
        body.insert("tag".into(), t.into());
    }
    if let Some(i) = args.image {
        body.insert("image".into(), i.into());
    }
    if let Some(p) = args.previous {
        body.insert("previous".into(), p.into());
    }
    if args.force {
        body.insert("force".into(), true.into());
    }
    let accepted: Value = c.post(&path, &body).await?;
    finish_deploy(c, accepted, args.wait, printer).await
}

/// Prints the accepted deployment; with `wait`, follows its events until it finishes and exits
/// non-zero unless it became ready.
async fn finish_deploy(
    c: &Client,
    accepted: Value,
    wait: bool,
    printer: Printer,
) -> anyhow::Result<()> {
    if !wait {
        return printer.print(&accepted, ACCEPTED_COLUMNS);
    }
    let id = accepted["deploymentId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if accepted["created"] == Value::Bool(false) {
        printer.note(
            "the image is already deployed (same digest); nothing to do (use --force to redeploy)",
        );
    }
    let status = follow_events(c, &id, printer).await?;
    let deployment: Value = c.get(&format!("/api/v1/deployments/{}", seg(&id))).await?;
    if printer.output != cli::Output::Table {
        printer.print(&deployment, &[])?;
    }
    if status == "ready" {
        Ok(())
    } else {
        if printer.output == cli::Output::Table {
            printer.note(&format!(
                "deployment {id} {status}: {}",
                deployment["reason"]
                    .as_str()
                    .unwrap_or("no reason recorded")
            ));
        }
        Err(Reported.into())
    }
}

/// Streams a deployment's events to stderr until it reaches a final status; returns it.
async fn follow_events(c: &Client, id: &str, printer: Printer) -> anyhow::Result<String> {
    let mut after = 0i64;
    loop {
        let events: Value = c
            .get(&format!(
                "/api/v1/deployments/{}/events?after={after}",
                seg(id)
            ))
            .await?;
        for e in events["items"].as_array().into_iter().flatten() {
            after = after.max(e["id"].as_i64().unwrap_or(after));
            printer.note(&format!(
                "{}  {}",
                e["at"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            ));
        }
        let d: Value = c.get(&format!("/api/v1/deployments/{}", seg(id))).await?;
        let status = d["status"].as_str().unwrap_or("unknown").to_owned();
        if matches!(
            status.as_str(),
            "ready" | "failed" | "rolled-back" | "superseded"
        ) {
            // Print what arrived between the last poll and the final status.
            let rest: Value = c
                .get(&format!(
                    "/api/v1/deployments/{}/events?after={after}",
                    seg(id)
                ))
                .await?;
            for e in rest["items"].as_array().into_iter().flatten() {
                printer.note(&format!(
                    "{}  {}",
                    e["at"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                ));
            }
            return Ok(status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

async fn deployment(
    cmd: DeploymentCmd,
    c: &Client,
    org: &str,
    printer: Printer,
) -> anyhow::Result<()> {
    match cmd {
        DeploymentCmd::List {
            project,
            component,
            env,
            limit,
        } => {
            let mut path = format!(
                "{}/{}/deployments",
                component_base(org, &project),
                seg(&component)
            );
            if let Some(e) = env {
                path.push_str(&format!("?env={}", seg(&e)));
            }
            printer.print(
                &c.get_pages(&path, Some(limit as usize), LARGEST_PAGE)
                    .await?,
                DEPLOYMENT_COLUMNS,
            )
        }
        DeploymentCmd::Get { id } => printer.print(
            &c.get::<Value>(&format!("/api/v1/deployments/{}", seg(&id)))
                .await?,
            DEPLOYMENT_COLUMNS,
        ),
        DeploymentCmd::Events { id, follow } => {
            if follow {
                follow_events(c, &id, printer).await.map(|_| ())
            } else {
                let events: Value = c
                    .get(&format!("/api/v1/deployments/{}/events", seg(&id)))
                    .await?;
                printer.print(&events, &[("AT", "at"), ("MESSAGE", "message")])
            }
        }
    }
}

/// Whether the name part of a reference (before any `@digest`) ends in `:tag`.
fn explicit_tag(input: &str) -> bool {
    let name = input.split('@').next().unwrap_or(input);
    name.rsplit_once(':')
        .is_some_and(|(_, after)| !after.contains('/'))
}

fn config_path(org: &str, t: &ConfigTarget) -> String {
    format!(
        "{}/{}/environments/{}/configs",
        component_base(org, &t.project),
        seg(&t.component),
        seg(&t.env)
    )
}

const CONFIG_COLUMNS: Columns = &[
    ("KIND", "kind"),
    ("NAME", "name"),
    ("VALUE", "value"),
    ("UPDATED", "updatedAt"),
];

async fn config(cmd: ConfigCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    let (target, set, unset, apply) = match cmd {
        ConfigCmd::List { target } => {
            let list: Value = c.get(&config_path(org, &target)).await?;
            return printer.print(&list, CONFIG_COLUMNS);
        }
        ConfigCmd::Set {
            target,
            pairs,
            secret,
            no_apply,
        } => {
            let kind = if secret { "secret-env" } else { "env" };
            let mut set = Vec::new();
            for pair in pairs {
                let (name, value) = match pair.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None if secret => {
                        let mut v = String::new();
                        std::io::stdin()
                            .read_to_string(&mut v)
                            .context("reading the secret value from stdin")?;
                        let v = v.strip_suffix('\n').unwrap_or(&v).to_owned();
                        (pair.clone(), v)
                    }
                    None => bail!(
                        "{pair:?}: expected KEY=VALUE (or KEY alone with --secret to read stdin)"
                    ),
                };
                set.push(serde_json::json!({ "kind": kind, "name": name, "value": value }));
            }
            (target, set, Vec::new(), !no_apply)
        }
        ConfigCmd::SetFile {
            target,
            path,
            from_file,
            secret,
            no_apply,
        } => {
            let kind = if secret { "secret-file" } else { "file" };
            let content = read_input(&from_file)?;
            let set = vec![serde_json::json!({ "kind": kind, "name": path, "value": content })];
            (target, set, Vec::new(), !no_apply)
        }
        ConfigCmd::Unset {
            target,
            names,
            file,
            no_apply,
        } => {
            let class = if file { "file" } else { "env" };
            let unset = names
                .into_iter()
                .map(|n| serde_json::json!({ "class": class, "name": n }))
                .collect();
            (target, Vec::new(), unset, !no_apply)
        }
    };
    let body = serde_json::json!({ "set": set, "unset": unset, "apply": apply });
    let changed: Value = c.patch(&config_path(org, &target), &body).await?;
    if printer.output == cli::Output::Table {
        printer.print(
            &serde_json::json!({ "items": changed["items"] }),
            CONFIG_COLUMNS,
        )?;
        if let Some(id) = changed["deployment"]["deploymentId"].as_str() {
            printer.note(&format!("rolling out the new configs: deployment {id}"));
        }
        Ok(())
    } else {
        printer.print(&changed, &[])
    }
}

fn image_parse(input: &str, printer: Printer) -> anyhow::Result<()> {
    match berth_core::reference::ImageRef::parse(input) {
        Ok(r) => printer.print(
            &serde_json::json!({
                "input": input,
                "domain": r.domain(),
                "path": r.path(),
                // As written: `nginx` has no tag (normalized still shows the `latest` default).
                "tag": r.tag().filter(|_| explicit_tag(input)),
                "digest": r.digest(),
                "normalized": r.normalized(),
                "familiar": r.familiar(),
            }),
            IMAGE_COLUMNS,
        ),
        Err(e) => {
            printer.error("invalid_reference", &e.to_string(), Some("reference"));
            Err(Reported.into())
        }
    }
}

fn validate_docker_config(file: &std::path::Path, printer: Printer) -> anyhow::Result<()> {
    let text = read_input(file)?;
    match berth_core::docker_config::parse_docker_config(&text) {
        Ok(auth) => printer.print(
            &serde_json::json!({ "valid": true, "host": auth.host, "username": auth.username }),
            &[
                ("VALID", "valid"),
                ("HOST", "host"),
                ("USERNAME", "username"),
            ],
        ),
        Err(e) => {
            let body = serde_json::json!({
                "valid": false,
                "error": { "code": "invalid_docker_config", "field": e.field, "message": e.to_string() },
            });
            if printer.output == cli::Output::Table {
                printer.note(&format!("invalid: {e}"));
            } else {
                printer.print(&body, &[])?;
            }
            Err(Reported.into())
        }
    }
}

/// `berth validate endpoints|component FILE`: Choreo's rules, offline. JSON/YAML print the
/// report (`{valid, errors, warnings}`); tables print one line per problem. Exit 1 if invalid.
fn validate_source_config(
    file: &std::path::Path,
    schema_dir: Option<&std::path::Path>,
    component: bool,
    printer: Printer,
) -> anyhow::Result<()> {
    use berth_core::endpoints::{self, SourceConfigKind};
    let text = read_input(file)?;
    let dir = schema_dir.map_or_else(|| default_schema_dir(file), std::path::Path::to_path_buf);
    let schema_files = schema_files_in(&dir)?;
    let name = file.to_string_lossy();
    let kind = if !component {
        SourceConfigKind::EndpointsYaml
    } else if let Some(kind) = SourceConfigKind::from_file_name(&name) {
        kind
    } else if endpoints::detect_kind(&name, &text) == Some(SourceConfigKind::ComponentConfigYaml) {
        SourceConfigKind::ComponentConfigYaml
    } else {
        // A component.yaml without its schemaVersion should hear about the schemaVersion.
        SourceConfigKind::ComponentYaml
    };
    let (report, found) = kind.validate(&text, &schema_files);
    if printer.output != cli::Output::Table {
        printer.print(&report, &[])?;
    } else {
        for e in &report.errors {
            println!("error: {e}");
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
        let verdict = if report.valid { "valid" } else { "invalid" };
        println!(
            "{kind} is {verdict}: {} error(s), {} warning(s)",
            report.errors.len(),
            report.warnings.len()
        );
        if !found.is_empty() {
            let rows: Vec<Value> = found
                .iter()
                .map(|e| {
                    let visibility: Vec<&str> = e.visibilities.iter().map(|v| v.as_str()).collect();
                    serde_json::json!({
                        "name": e.name,
                        "type": e.kind.as_str(),
                        "port": e.port,
                        "visibility": visibility.join(","),
                        "context": e.context,
                        "schema": e.schema_file,
                    })
                })
                .collect();
            let columns: Columns = &[
                ("NAME", "name"),
                ("TYPE", "type"),
                ("PORT", "port"),
                ("VISIBILITY", "visibility"),
                ("CONTEXT", "context"),
                ("SCHEMA", "schema"),
            ];
            print!("{}", crate::printer::render_table(&rows, columns));
        }
    }
    if report.valid {
        Ok(())
    } else {
        Err(Reported.into())
    }
}

/// Where `schemaFilePath`s resolve when `--schema-dir` is not given: the file's directory, or
/// its parent when that is `.choreo` (Choreo resolves them against the build context).
fn default_schema_dir(file: &std::path::Path) -> std::path::PathBuf {
    let here = std::path::Path::new(".");
    if file.as_os_str() == "-" {
        return here.to_path_buf();
    }
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(here);
    if dir.file_name().is_some_and(|n| n == ".choreo") {
        dir.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(here)
            .to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The files under `dir`, as `/`-separated paths relative to it (what `schemaFilePath` names).
/// Bounded, and skipping `.git` and `node_modules`, so pointing it at a repository is cheap.
fn schema_files_in(dir: &std::path::Path) -> anyhow::Result<std::collections::BTreeSet<String>> {
    const MAX_FILES: usize = 20_000;
    const MAX_DEPTH: usize = 12;
    let mut files = std::collections::BTreeSet::new();
    let mut pending = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((path, prefix, depth)) = pending.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if depth == 0 => {
                return Err(e)
                    .with_context(|| format!("reading schema directory {}", path.display()));
            }
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            // Directories are not followed through symlinks (no loops); files are.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                if depth < MAX_DEPTH && name != ".git" && name != "node_modules" {
                    pending.push((entry.path(), relative, depth + 1));
                }
            } else if entry.path().is_file() {
                files.insert(relative);
                if files.len() >= MAX_FILES {
                    return Ok(files);
                }
            }
        }
    }
    Ok(files)
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        // bollard logs every request and response body at debug and trace: container
        // definitions with secret environment values, inspections that echo them. Capped at
        // info whatever BERTH_LOG says (crates/berth/tests/secrets_leak.rs).
        .add_directive("bollard=info".parse().expect("a valid directive"));
    // Colours only for a terminal: a log file, a pipe or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(berth_server::logwriter::Batched);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

/// `berth render`: the manifests as YAML documents (or the API's JSON with `-o json`).
async fn render(
    c: &Client,
    org: &str,
    project: &str,
    env: &str,
    component: Option<String>,
    reveal_secrets: bool,
    printer: Printer,
) -> anyhow::Result<()> {
    let mut path = format!(
        "/api/v1/orgs/{org}/projects/{}/environments/{}/render",
        seg(project),
        seg(env)
    );
    let mut query = Vec::new();
    if let Some(c) = &component {
        query.push(format!("component={}", seg(c)));
    }
    if reveal_secrets {
        query.push("revealSecrets=true".to_owned());
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let r: berth_core::api::RenderedManifests = c.get(&path).await?;
    if printer.output == Output::Json {
        return printer.print(&r, &[]);
    }
    let mut out = format!(
        "# berth render: {}/{} {} → namespace {} ({} component(s){})\n",
        r.org,
        r.project,
        r.environment,
        r.namespace,
        r.components.len(),
        if r.components.is_empty() {
            String::new()
        } else {
            format!(": {}", r.components.join(", "))
        }
    );
    if r.redacted {
        out.push_str(
            "# Secret values are redacted (they read <redacted>); --reveal-secrets prints them.\n",
        );
    }
    for object in &r.objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(object)?);
    }
    print!("{out}");
    Ok(())
}

/// `NAMESPACE/NAME` of a Gateway flag.
fn gateway_ref(flag: &str, value: &str) -> anyhow::Result<berth_server::GatewayRef> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(berth_server::GatewayRef {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => bail!("--{flag} {value:?}: expected NAMESPACE/NAME"),
    }
}

fn kubernetes_settings(args: &ServeArgs) -> anyhow::Result<berth_server::KubernetesSettings> {
    let routing = match &args.k8s_ingress_classes {
        None => berth_server::Routing::GatewayApi,
        Some(v) => match v.split_once(',') {
            Some((e, i)) if !e.trim().is_empty() && !i.trim().is_empty() => {
                berth_server::Routing::Ingress {
                    external_class: e.trim().to_owned(),
                    internal_class: i.trim().to_owned(),
                }
            }
            _ => bail!("--k8s-ingress-classes {v:?}: expected EXTERNAL,INTERNAL"),
        },
    };
    let percent = |flag: &str, v: u8| -> anyhow::Result<u8> {
        if (1..=100).contains(&v) {
            Ok(v)
        } else {
            bail!("--{flag} {v}: expected a percentage between 1 and 100")
        }
    };
    let scaling = match &args.k8s_replicas {
        None => None,
        Some(v) => {
            let parsed = v.split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
            });
            let Some((min, max)) = parsed.filter(|(min, max)| *min >= 1 && min <= max) else {
                bail!("--k8s-replicas {v:?}: expected MIN-MAX with 1 ≤ MIN ≤ MAX, e.g. 2-10");
            };
            Some(berth_server::Scaling {
                min_replicas: min,
                max_replicas: max,
                cpu_utilization: Some(percent("k8s-cpu-target", args.k8s_cpu_target)?),
                memory_utilization: args
                    .k8s_memory_target
                    .map(|m| percent("k8s-memory-target", m))
                    .transpose()?,
            })
        }
    };
    Ok(berth_server::KubernetesSettings {
        render: berth_server::RenderOptions {
            external_gateway: gateway_ref("k8s-external-gateway", &args.k8s_external_gateway)?,
            internal_gateway: gateway_ref("k8s-internal-gateway", &args.k8s_internal_gateway)?,
            routing,
            web_app_domain: args.k8s_domain.clone(),
            ..berth_server::RenderOptions::default()
        },
        scaling,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    // Batched log lines reach stderr before a panic's message and before the process ends.
    let panic_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        berth_server::logwriter::flush();
        panic_hook(info);
    }));
    let result = run_server(args).await;
    berth_server::logwriter::flush();
    result
}

async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    let kubernetes = kubernetes_settings(&args)?;
    let config = berth_server::Config {
        data_dir: args.data_dir,
        listen: args.listen,
        engine: args.engine,
        registry_ssrf: berth_server::SsrfPolicy {
            allow_private: !args.registry_block_private,
            allow_loopback: !args.registry_block_loopback,
        },
        gateway_listen: args.gateway_listen,
        internal_gateway_listen: args.internal_gateway_listen,
        ready_timeout: std::time::Duration::from_secs(args.ready_timeout),
        drain: std::time::Duration::from_millis(args.drain_ms),
        fault_hold: args.fault_hold.map(|h| (h.0, h.1)),
        ci_rate_per_minute: args.ci_rate_per_minute,
        gateway_workers: args.gateway_workers,
        public_url: args.public_url,
        database_url: args.database_url,
        data_plane: match args.data_plane {
            DataPlaneArg::Engine => berth_server::DataPlaneKind::Engine,
            DataPlaneArg::Kubernetes => berth_server::DataPlaneKind::Kubernetes,
        },
        kubernetes,
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

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before the server starts
/// listening: a signal that arrives right after the listening line still stops it gracefully
/// (installed on first poll, it would have killed the process).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(int) => {},
            () = wait(term) => {},
        }
    }
}
