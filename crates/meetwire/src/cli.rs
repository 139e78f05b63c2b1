//! The command line. Every option can also come from a `MEETWIRE_*` environment variable or,
//! for `serve`, from the TOML file named by `--config`; a flag wins over the environment, and
//! the environment over the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::demo::DemoArgs;
use crate::listen::ListenArgs;
use crate::verify::VerifyArgs;

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
    Serve(Box<ServeArgs>),
    /// Administration on the same data as a (running or stopped) server.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Measure ingest, end-to-end delivery and latency against a real local receiver.
    Bench(crate::bench::BenchArgs),
    /// Run a local webhook receiver that verifies both signatures and prints each delivery.
    Listen(ListenArgs),
    /// Check a saved webhook body and its signatures against a secret (exit 0 valid, 1
    /// invalid, 2 usage error).
    Verify(VerifyArgs),
    /// See it work: a temporary server, a receiver, a webhook and a sandbox meeting.
    Demo(DemoArgs),
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
    /// Seconds between syncs of each connected calendar (default 300).
    #[arg(long, env = "MEETWIRE_CALENDAR_SYNC_INTERVAL")]
    pub calendar_sync_interval: Option<f64>,
    /// Run the built-in sandbox runner on this node (default true).
    #[arg(long, env = "MEETWIRE_SANDBOX_RUNNER", value_parser = BoolishValueParser::new())]
    pub sandbox_runner: Option<bool>,
    /// The URL users reach the server at (e.g. behind a proxy); https makes the UI's cookies
    /// Secure.
    #[arg(long, env = "MEETWIRE_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub calendar_providers: CalendarProviderArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Seconds a stopping server (SIGTERM or SIGINT) lets requests and delivery attempts in
    /// flight finish (default 15); a second signal stops it at once.
    #[arg(long, env = "MEETWIRE_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<f64>,
    /// Days finished deliveries and their attempts are kept (default 30; fractions allowed).
    /// Pending deliveries are kept until they finish.
    #[arg(long, env = "MEETWIRE_RETENTION_DAYS")]
    pub retention_days: Option<f64>,
    /// Days after a bot finished that its transcript, chat messages, participant events and
    /// logs are kept (default: kept for good). Its state history stays.
    #[arg(long, env = "MEETWIRE_RECORD_RETENTION_DAYS")]
    pub record_retention_days: Option<f64>,
}

/// Who may read `/metrics`, and where.
#[derive(Args, Clone, Default)]
pub struct MetricsArgs {
    /// Serve `/metrics` on this address instead of the main one (which then answers 404 for
    /// it), so that it can stay off the public port.
    #[arg(long, env = "MEETWIRE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <TOKEN>` to read `/metrics`.
    #[arg(long, env = "MEETWIRE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// Where the calendar providers' APIs are (their public addresses by default; a test or a
/// proxy may put them elsewhere).
#[derive(Args, Clone, Default)]
pub struct CalendarProviderArgs {
    /// Google's OAuth2 token endpoint (default https://oauth2.googleapis.com/token).
    #[arg(long, env = "MEETWIRE_GOOGLE_TOKEN_URL")]
    pub google_token_url: Option<String>,
    /// The base URL of Google's Calendar API (default https://www.googleapis.com).
    #[arg(long, env = "MEETWIRE_GOOGLE_API_URL")]
    pub google_api_url: Option<String>,
    /// Microsoft's OAuth2 token endpoint
    /// (default https://login.microsoftonline.com/common/oauth2/v2.0/token).
    #[arg(long, env = "MEETWIRE_MICROSOFT_TOKEN_URL")]
    pub microsoft_token_url: Option<String>,
    /// The base URL of Microsoft Graph (default https://graph.microsoft.com).
    #[arg(long, env = "MEETWIRE_MICROSOFT_GRAPH_URL")]
    pub microsoft_graph_url: Option<String>,
}

/// How long clients may take, and how many may be connected.
#[derive(Args, Clone, Default)]
pub struct ConnectionArgs {
    /// Seconds a client may take to send a request's headers, from connecting or from the
    /// first byte of a next request (default 5).
    #[arg(long, env = "MEETWIRE_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<f64>,
    /// Seconds a client may take to send a request's body (default 10, plus 1 for each 64 KiB
    /// of --body-limit: 26 for the default 1 MiB).
    #[arg(long, env = "MEETWIRE_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<f64>,
    /// Seconds a kept-alive connection may sit idle between requests (default 60).
    #[arg(long, env = "MEETWIRE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<f64>,
    /// Most client connections open at once (default: the open-files limit, less 64 and the
    /// webhook connections' share, at most a quarter of the limit).
    #[arg(long, env = "MEETWIRE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// How webhooks are delivered.
#[derive(Args, Clone, Default)]
pub struct DeliveryArgs {
    /// Seconds to wait before each retry, one number per retry (default 2,8,32: 4 attempts).
    #[arg(long, env = "MEETWIRE_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Seconds an attempt may take before it counts as failed (default 10).
    #[arg(long, env = "MEETWIRE_WEBHOOK_TIMEOUT")]
    pub webhook_timeout: Option<f64>,
    /// Networks webhooks may reach although private or loopback (repeatable, e.g. 127.0.0.0/8).
    #[arg(long, env = "MEETWIRE_ALLOW_WEBHOOK_CIDR", value_delimiter = ',')]
    pub allow_webhook_cidr: Vec<ipnet::IpNet>,
    /// Accept http:// webhook URLs (default: https:// only).
    #[arg(
        long,
        env = "MEETWIRE_ALLOW_HTTP_WEBHOOKS",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub allow_http_webhooks: Option<bool>,
    /// Deliver each bot's events to a subscription in order (default true).
    #[arg(long, env = "MEETWIRE_WEBHOOK_ORDERING", value_parser = BoolishValueParser::new())]
    pub webhook_ordering: Option<bool>,
    /// Most webhook subscriptions per bot (default 10).
    #[arg(long, env = "MEETWIRE_MAX_WEBHOOKS_PER_BOT")]
    pub max_webhooks_per_bot: Option<u32>,
    /// Most project-level webhook subscriptions (default 10).
    #[arg(long, env = "MEETWIRE_MAX_WEBHOOKS_PER_PROJECT")]
    pub max_webhooks_per_project: Option<u32>,
    /// Most attempts in flight to one endpoint (default 64).
    #[arg(long, env = "MEETWIRE_ENDPOINT_CONCURRENCY")]
    pub endpoint_concurrency: Option<usize>,
    /// Most attempts started per second to one endpoint (default: unlimited).
    #[arg(long, env = "MEETWIRE_ENDPOINT_RATE_LIMIT")]
    pub endpoint_rate_limit: Option<f64>,
    /// Longest wait a receiver's Retry-After may ask for, in seconds (default 600).
    #[arg(long, env = "MEETWIRE_MAX_RETRY_AFTER")]
    pub max_retry_after: Option<f64>,
}

/// The command names are the interface (`admin create-project`, …), hence the shared prefix.
#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
pub enum AdminCommand {
    /// Create a project; prints its id, a first API key and its webhook secret.
    CreateProject {
        /// The project's name (shown in logs and the UI).
        #[arg(long)]
        name: String,
        /// Print one JSON object instead of lines of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Create another API key for a project.
    CreateApiKey {
        /// The project's id (`proj_…`).
        #[arg(long)]
        project: String,
        /// Print one JSON object instead of a line of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Create a web UI user who is a member of a project.
    CreateUser {
        /// The user's email, used to sign in.
        #[arg(long)]
        email: String,
        /// The project's id (`proj_…`) the user joins.
        #[arg(long)]
        project: String,
        /// Read the password from standard input (its first line) instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
        /// Print one JSON object instead of a line of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Write a consistent copy of the database to a new file while the server runs. The key
    /// that seals webhook secrets (MEETWIRE_SECRET_KEY or the data directory's secret.key) is
    /// not in it: keep that apart, a restore needs it.
    Backup {
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Restore a backup into a new or empty data directory.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The secret.key of the server the backup came from (else MEETWIRE_SECRET_KEY).
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Create a token for an external runner.
    CreateRunnerToken {
        /// The runner's name, to tell runners apart in logs.
        #[arg(long)]
        name: String,
        /// Print one JSON object instead of a line of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
}
