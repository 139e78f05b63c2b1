//! The command line. Every option can also come from a `MEETWIRE_*` environment variable or,
//! for `serve`, from the TOML file named by `--config`; a flag wins over the environment, and
//! the environment over the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meetwire",
    version,
    about = "Meeting-bot events and the webhooks that deliver them"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "MEETWIRE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server: REST API, runner API, sandbox runner and schedulers.
    Serve(ServeArgs),
    /// Administration on the same data as a (running or stopped) server.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Where the data lives.
#[derive(Args, Clone, Default)]
pub struct StorageArgs {
    /// Data directory of the embedded SQLite database (default ./meetwire-data).
    #[arg(long, env = "MEETWIRE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL URL instead of the embedded database.
    #[arg(long, env = "MEETWIRE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A TOML configuration file.
    #[arg(long, env = "MEETWIRE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on (default 127.0.0.1:8077; port 0 picks a free port).
    #[arg(long, env = "MEETWIRE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Largest accepted request body in bytes (default 1048576).
    #[arg(long, env = "MEETWIRE_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Seconds of runner silence after which a bot fails with heartbeat_timeout (default 60).
    #[arg(long, env = "MEETWIRE_HEARTBEAT_TIMEOUT")]
    pub heartbeat_timeout: Option<f64>,
    /// Seconds between scheduler passes when nothing wakes them (default 1).
    #[arg(long, env = "MEETWIRE_POLL_INTERVAL")]
    pub poll_interval: Option<f64>,
    /// Run the built-in sandbox runner on this node (default true).
    #[arg(long, env = "MEETWIRE_SANDBOX_RUNNER")]
    pub sandbox_runner: Option<bool>,
}

/// The command names are the interface (`admin create-project`, …), hence the shared prefix.
#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
pub enum AdminCommand {
    /// Create a project; prints its id, a first API key and its webhook secret.
    CreateProject {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Create another API key for a project.
    CreateApiKey {
        #[arg(long)]
        project: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Create a token for an external runner.
    CreateRunnerToken {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
}
