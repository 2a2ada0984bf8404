//! Command-line definition (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Deploy prebuilt container images as managed components",
    propagate_version = true
)]
pub struct Cli {
    /// berth server URL.
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVER",
        default_value = "http://127.0.0.1:7400"
    )]
    pub server: String,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Organization.
    #[arg(long, global = true, env = "BERTH_ORG", default_value = "default")]
    pub org: String,

    /// Data dir of a local `berth serve`, used to find its admin token when no other token is
    /// configured.
    #[arg(long, global = true, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the berth server (API, console, reconciler, gateway).
    Serve(ServeArgs),
    /// Save a server URL and token (read from stdin) for later commands.
    Login {
        /// Read the token from standard input (otherwise from BERTH_TOKEN).
        #[arg(long)]
        token_stdin: bool,
    },
    /// Forget the saved token for the server.
    Logout,
    /// Show who the current token acts as.
    Whoami,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Projects of an organization.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Environments of an organization, in promotion order.
    #[command(subcommand, name = "env")]
    Env(EnvCmd),
    /// Users (admin).
    #[command(subcommand)]
    User(UserCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The audit log (admin).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where berth keeps its database, master key and admin token.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,
    /// Address of the API and console.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Container engine endpoint (unix:///path or tcp://host:port); default: DOCKER_HOST, then
    /// /var/run/docker.sock, then /run/podman/podman.sock.
    #[arg(long, env = "BERTH_ENGINE")]
    pub engine: Option<String>,
    /// Log format on stderr.
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct Describe {
    /// Human-friendly name (default: the name).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    List,
    Get {
        name: String,
    },
    Create {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Update {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    List,
    Get {
        name: String,
    },
    Create {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Update {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    List,
    Get {
        name: String,
    },
    Create {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    Delete {
        name: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Your tokens (admins: all, or --user's).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Create a token; the secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// The user the token acts as (default: you).
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}
