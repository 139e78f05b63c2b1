//! Resolves the final settings: flags and environment (already merged by clap), then the TOML
//! file, then defaults. Also opens the store and the key that seals secrets at rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meetwire_core::retry::{RetrySchedule, ScheduleError};
use meetwire_core::sealing::SealingKey;
use meetwire_server::calendar::provider::ProviderUrls;
use meetwire_server::connections::{body_read_timeout_for, ConnectionLimits};
use meetwire_server::delivery::guard::AddressPolicy;
use meetwire_server::delivery::DeliveryConfig;
use meetwire_server::{MetricsAccess, ServerConfig};
use meetwire_store::sqlite::SqliteStore;
use meetwire_store::{Store, StoreOptions};
use serde::Deserialize;

use crate::cli::{
    CalendarProviderArgs, ConnectionArgs, DeliveryArgs, MetricsArgs, ServeArgs, StorageArgs,
};
use crate::open_files::OpenFiles;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] meetwire_store::StoreError),
    #[error("secret key: {0}")]
    Key(String),
}

/// The keys a config file may hold (the long flag names, with `_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<std::net::SocketAddr>,
    body_limit: Option<usize>,
    heartbeat_timeout: Option<f64>,
    poll_interval: Option<f64>,
    calendar_sync_interval: Option<f64>,
    sandbox_runner: Option<bool>,
    retry_schedule: Option<ScheduleText>,
    webhook_timeout: Option<f64>,
    allow_webhook_cidr: Option<Networks>,
    allow_http_webhooks: Option<bool>,
    webhook_ordering: Option<bool>,
    max_webhooks_per_bot: Option<u32>,
    max_webhooks_per_project: Option<u32>,
    endpoint_concurrency: Option<usize>,
    endpoint_rate_limit: Option<f64>,
    max_retry_after: Option<f64>,
    public_url: Option<String>,
    header_read_timeout: Option<f64>,
    body_read_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    max_connections: Option<usize>,
    google_token_url: Option<String>,
    google_api_url: Option<String>,
    microsoft_token_url: Option<String>,
    microsoft_graph_url: Option<String>,
    metrics_listen: Option<std::net::SocketAddr>,
    metrics_token: Option<String>,
    shutdown_grace: Option<f64>,
    retention_days: Option<f64>,
    record_retention_days: Option<f64>,
}

/// The retry schedule as the flag writes it (`"2,8,32"`) or as a TOML list (`[2, 8, 32]`).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "seconds before each retry, as \"2,8,32\" or [2, 8, 32]"
)]
enum ScheduleText {
    Text(String),
    Seconds(Vec<f64>),
}

impl ScheduleText {
    fn schedule(&self) -> Result<RetrySchedule, ScheduleError> {
        match self {
            ScheduleText::Text(text) => RetrySchedule::parse(text),
            ScheduleText::Seconds(seconds) => RetrySchedule::from_seconds(seconds),
        }
    }
}

/// Networks as one CIDR (`"10.0.0.0/8"`) or a list of them, each refused with its own reason.
#[derive(Debug, Default, Clone)]
struct Networks(Vec<ipnet::IpNet>);

impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Networks;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a network such as \"10.0.0.0/8\", or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Networks, E> {
                network(text).map(|n| Networks(vec![n]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut items: A,
            ) -> Result<Networks, A::Error> {
                let mut all = Vec::new();
                while let Some(text) = items.next_element::<String>()? {
                    all.push(network(&text)?);
                }
                Ok(Networks(all))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn network<E: serde::de::Error>(text: &str) -> Result<ipnet::IpNet, E> {
    text.parse()
        .map_err(|e| E::custom(format!("invalid network {text:?}: {e}")))
}

fn read_file(path: Option<&Path>) -> Result<FileConfig, SettingsError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SettingsError::ParseConfig {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// A duration given in seconds: at least a millisecond (a smaller one, `1e-12` say, would round
/// to nothing and make every timeout fire at once), below a billion.
fn seconds(name: &str, value: Option<f64>, default: Duration) -> Result<Duration, SettingsError> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.001..1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(SettingsError::Invalid(format!(
            "{name} must be a number of seconds from 0.001, got {s}"
        ))),
    }
}

/// Where the data is, with the file's values under the flags'.
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

fn storage(args: &StorageArgs, file: &FileConfig) -> Storage {
    Storage {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("meetwire-data")),
        database_url: args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone()),
    }
}

/// Everything `serve` needs.
pub struct ServeSettings {
    pub storage: Storage,
    pub server: ServerConfig,
    pub store: StoreOptions,
}

fn delivery_settings(
    args: &DeliveryArgs,
    file: &FileConfig,
) -> Result<(DeliveryConfig, StoreOptions), SettingsError> {
    let defaults = DeliveryConfig::default();
    let store_defaults = StoreOptions::default();
    let schedule = match (&args.retry_schedule, &file.retry_schedule) {
        (Some(text), _) => RetrySchedule::parse(text),
        (None, Some(in_file)) => in_file.schedule(),
        (None, None) => Ok(defaults.schedule.clone()),
    }
    .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    let max_retry_after = seconds(
        "max_retry_after",
        args.max_retry_after.or(file.max_retry_after),
        Duration::from_secs(600),
    )?;
    let schedule = schedule.with_max_retry_after(max_retry_after);
    let allowed = if args.allow_webhook_cidr.is_empty() {
        file.allow_webhook_cidr.clone().unwrap_or_default().0
    } else {
        args.allow_webhook_cidr.clone()
    };
    let endpoint_concurrency = args
        .endpoint_concurrency
        .or(file.endpoint_concurrency)
        .unwrap_or(defaults.endpoint_concurrency);
    if endpoint_concurrency == 0 {
        return Err(SettingsError::Invalid(
            "endpoint_concurrency must be above 0".into(),
        ));
    }
    let endpoint_rate_limit = args.endpoint_rate_limit.or(file.endpoint_rate_limit);
    if endpoint_rate_limit.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(SettingsError::Invalid(
            "endpoint_rate_limit must be above 0".into(),
        ));
    }
    let store = StoreOptions {
        max_attempts: schedule.max_attempts(),
        ordering: args
            .webhook_ordering
            .or(file.webhook_ordering)
            .unwrap_or(store_defaults.ordering),
        webhooks_per_bot: args
            .max_webhooks_per_bot
            .or(file.max_webhooks_per_bot)
            .unwrap_or(store_defaults.webhooks_per_bot),
        webhooks_per_project: args
            .max_webhooks_per_project
            .or(file.max_webhooks_per_project)
            .unwrap_or(store_defaults.webhooks_per_project),
    };
    let delivery = DeliveryConfig {
        schedule,
        timeout: seconds(
            "webhook_timeout",
            args.webhook_timeout.or(file.webhook_timeout),
            defaults.timeout,
        )?,
        policy: AddressPolicy {
            allowed,
            allow_http: args
                .allow_http_webhooks
                .or(file.allow_http_webhooks)
                .unwrap_or(false),
        },
        endpoint_concurrency,
        endpoint_rate_limit,
        ..defaults
    };
    Ok((delivery, store))
}

/// The URL users reach the server at, from the flag or the file.
fn public_url(args: &ServeArgs, file: &FileConfig) -> Result<Option<url::Url>, SettingsError> {
    args.public_url
        .as_ref()
        .or(file.public_url.as_ref())
        .map(|text| {
            url::Url::parse(text)
                .map_err(|e| SettingsError::Invalid(format!("public_url {text}: {e}")))
        })
        .transpose()
}

/// The providers' URLs: each flag, else the file's key, else the provider's public address.
fn calendar_providers(
    args: &CalendarProviderArgs,
    file: &FileConfig,
) -> Result<ProviderUrls, SettingsError> {
    let defaults = ProviderUrls::default();
    Ok(ProviderUrls {
        google_token: provider_url(
            "google_token_url",
            args.google_token_url
                .as_ref()
                .or(file.google_token_url.as_ref()),
            defaults.google_token,
        )?,
        google_api: provider_url(
            "google_api_url",
            args.google_api_url
                .as_ref()
                .or(file.google_api_url.as_ref()),
            defaults.google_api,
        )?,
        microsoft_token: provider_url(
            "microsoft_token_url",
            args.microsoft_token_url
                .as_ref()
                .or(file.microsoft_token_url.as_ref()),
            defaults.microsoft_token,
        )?,
        microsoft_graph: provider_url(
            "microsoft_graph_url",
            args.microsoft_graph_url
                .as_ref()
                .or(file.microsoft_graph_url.as_ref()),
            defaults.microsoft_graph,
        )?,
    })
}

fn provider_url(
    name: &str,
    given: Option<&String>,
    default: url::Url,
) -> Result<url::Url, SettingsError> {
    let Some(text) = given else {
        return Ok(default);
    };
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        Ok(_) => Err(SettingsError::Invalid(format!(
            "{name} {text}: not an http(s) URL"
        ))),
        Err(e) => Err(SettingsError::Invalid(format!("{name} {text}: {e}"))),
    }
}

/// A retention window given in days.
fn retention(days: Option<f64>) -> Result<Option<Duration>, SettingsError> {
    match days {
        None => Ok(None),
        Some(d) if d.is_finite() && (1e-6..=36_500.0).contains(&d) => {
            Ok(Some(Duration::from_secs_f64(d * 86_400.0)))
        }
        Some(d) => Err(SettingsError::Invalid(format!(
            "retention days must be a number above 0 (at most 36500), got {d}"
        ))),
    }
}

fn metrics_access(args: &MetricsArgs, file: &FileConfig) -> Result<MetricsAccess, SettingsError> {
    let token = args.metrics_token.clone().or(file.metrics_token.clone());
    if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(SettingsError::Invalid(
            "metrics_token must not be empty".into(),
        ));
    }
    Ok(MetricsAccess {
        listen: args.metrics_listen.or(file.metrics_listen),
        token,
    })
}

fn connection_limits(
    args: &ConnectionArgs,
    file: &FileConfig,
    body_limit: usize,
    open_files: OpenFiles,
    deliveries_in_flight: usize,
) -> Result<ConnectionLimits, SettingsError> {
    let defaults = ConnectionLimits::default();
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or_else(|| open_files.default_max_connections(deliveries_in_flight));
    if max_connections == 0 {
        return Err(SettingsError::Invalid(
            "max_connections must be above 0".into(),
        ));
    }
    Ok(ConnectionLimits {
        header_read_timeout: seconds(
            "header_read_timeout",
            args.header_read_timeout.or(file.header_read_timeout),
            defaults.header_read_timeout,
        )?,
        body_read_timeout: seconds(
            "body_read_timeout",
            args.body_read_timeout.or(file.body_read_timeout),
            body_read_timeout_for(body_limit),
        )?,
        idle_timeout: seconds(
            "idle_timeout",
            args.idle_timeout.or(file.idle_timeout),
            defaults.idle_timeout,
        )?,
        max_connections,
    })
}

/// The settings for `serve`, with the connection cap's default taken from `open_files`.
pub fn serve_settings(
    args: &ServeArgs,
    open_files: OpenFiles,
) -> Result<ServeSettings, SettingsError> {
    let file = read_file(args.storage.config.as_deref())?;
    let defaults = ServerConfig::default();
    let (delivery, store) = delivery_settings(&args.delivery, &file)?;
    let poll_interval = seconds(
        "poll_interval",
        args.poll_interval.or(file.poll_interval),
        defaults.poll_interval,
    )?;
    let body_limit = args
        .body_limit
        .or(file.body_limit)
        .unwrap_or(defaults.body_limit_bytes);
    if body_limit == 0 {
        return Err(SettingsError::Invalid("body_limit must be above 0".into()));
    }
    let connections = connection_limits(
        &args.connections,
        &file,
        body_limit,
        open_files,
        delivery.max_in_flight,
    )?;
    let server = ServerConfig {
        listen: args.listen.or(file.listen).unwrap_or(defaults.listen),
        body_limit_bytes: body_limit,
        heartbeat_timeout: seconds(
            "heartbeat_timeout",
            args.heartbeat_timeout.or(file.heartbeat_timeout),
            defaults.heartbeat_timeout,
        )?,
        poll_interval,
        calendar_sync_interval: seconds(
            "calendar_sync_interval",
            args.calendar_sync_interval.or(file.calendar_sync_interval),
            defaults.calendar_sync_interval,
        )?,
        calendar_providers: calendar_providers(&args.calendar_providers, &file)?,
        sandbox_runner: args
            .sandbox_runner
            .or(file.sandbox_runner)
            .unwrap_or(defaults.sandbox_runner),
        delivery: DeliveryConfig {
            poll_interval,
            ..delivery
        },
        secure_cookies: public_url(args, &file)?.is_some_and(|u| u.scheme() == "https"),
        connections,
        metrics: metrics_access(&args.metrics, &file)?,
        shutdown_grace: seconds(
            "shutdown_grace",
            args.shutdown_grace.or(file.shutdown_grace),
            defaults.shutdown_grace,
        )?,
        delivery_retention: retention(args.retention_days.or(file.retention_days))?
            .unwrap_or(defaults.delivery_retention),
        record_retention: retention(args.record_retention_days.or(file.record_retention_days))?,
        ..defaults
    };
    Ok(ServeSettings {
        storage: storage(&args.storage, &file),
        server,
        store,
    })
}

pub fn storage_settings(args: &StorageArgs) -> Result<Storage, SettingsError> {
    let file = read_file(args.config.as_deref())?;
    Ok(storage(args, &file))
}

/// Opens the configured store, which must already exist: credentials made in a database that
/// no server uses (an `admin` command run from another directory would create one) help no one.
pub async fn open_existing_store(
    storage: &Storage,
    options: StoreOptions,
) -> Result<Arc<dyn Store>, SettingsError> {
    let database = storage.data_dir.join(meetwire_store::sqlite::DATABASE_FILE);
    if storage.database_url.is_none() && !database.exists() {
        return Err(SettingsError::Invalid(format!(
            "no meetwire database in {} (give --data-dir, or create a project there first)",
            storage.data_dir.display()
        )));
    }
    open_store(storage, options).await
}

/// Opens the configured store.
pub async fn open_store(
    storage: &Storage,
    options: StoreOptions,
) -> Result<Arc<dyn Store>, SettingsError> {
    if let Some(url) = &storage.database_url {
        return Err(SettingsError::Invalid(format!(
            "database URL {}: only the embedded SQLite store is available in this version; \
             leave --database-url unset",
            redact_url(url)
        )));
    }
    Ok(Arc::new(
        SqliteStore::open(&storage.data_dir, options).await?,
    ))
}

/// A URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparseable)".into(),
    }
}

/// The name of the key file kept in the data directory when `MEETWIRE_SECRET_KEY` is unset.
pub const KEY_FILE: &str = "secret.key";

/// The key that seals webhook secrets: `MEETWIRE_SECRET_KEY` (base64 of 32 bytes), or the key
/// file in the data directory, generated (mode 0600) on first use. A key that does not open the
/// secrets already in the database is refused, and no key is generated for a database that holds
/// sealed secrets: either would let the API acknowledge events whose webhooks can never be
/// signed.
pub async fn sealing_key(
    storage: &Storage,
    store: &dyn Store,
) -> Result<SealingKey, SettingsError> {
    let stored = store.newest_sealed_secret().await?;
    let (key, source) = match std::env::var("MEETWIRE_SECRET_KEY") {
        Ok(text) => (
            SealingKey::from_base64(&text)
                .map_err(|e| SettingsError::Key(format!("MEETWIRE_SECRET_KEY: {e}")))?,
            "MEETWIRE_SECRET_KEY".to_owned(),
        ),
        Err(_) => {
            let path = storage.data_dir.join(KEY_FILE);
            (
                key_file(&path, stored.is_none())?,
                path.display().to_string(),
            )
        }
    };
    if let Some(sealed) = stored {
        key.open(&sealed).map_err(|_| {
            SettingsError::Key(format!(
                "the key from {source} does not open the webhook secrets stored in this \
                 database; start with the key that sealed them (MEETWIRE_SECRET_KEY or the \
                 data directory's {KEY_FILE})"
            ))
        })?;
    }
    Ok(key)
}

/// Reads the key file at `path`, or creates one if it is missing and `may_create`.
fn key_file(path: &Path, may_create: bool) -> Result<SealingKey, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => SealingKey::from_base64(&text)
            .map_err(|e| SettingsError::Key(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let (key, text) = SealingKey::generate();
            write_private(path, &text)
                .map_err(|e| SettingsError::Key(format!("cannot write {}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SettingsError::Key(format!(
            "{} is missing, but the database holds webhook secrets sealed with a key; restore \
             that file or set MEETWIRE_SECRET_KEY to the key",
            path.display()
        ))),
        Err(e) => Err(SettingsError::Key(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Creates `path` readable by its owner only; fails if it already exists (another process won).
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(toml: &str) -> DeliveryConfig {
        let file: FileConfig = toml::from_str(toml).unwrap();
        delivery_settings(&DeliveryArgs::default(), &file)
            .unwrap()
            .0
    }

    #[test]
    fn lists_in_the_file_take_either_form() {
        let text = from_file("retry_schedule = \"1,2.5\"\nallow_webhook_cidr = \"10.0.0.0/8\"");
        let list = from_file("retry_schedule = [1, 2.5]\nallow_webhook_cidr = [\"10.0.0.0/8\"]");
        for config in [&text, &list] {
            assert_eq!(
                config.schedule.delays(),
                [Duration::from_secs(1), Duration::from_millis(2500)]
            );
            assert!(config.policy.permits("10.1.2.3".parse().unwrap()));
            assert!(!config.policy.permits("192.168.0.1".parse().unwrap()));
        }
        let refused = toml::from_str::<FileConfig>("retry_schedule = true").unwrap_err();
        assert!(refused.to_string().contains("[2, 8, 32]"), "{refused}");
        for bad in ["\"10.0.0.0\"", "[\"10.0.0.0/8\", \"10.0.0.0\"]"] {
            let refused = toml::from_str::<FileConfig>(&format!("allow_webhook_cidr = {bad}"));
            let message = refused.unwrap_err().to_string();
            assert!(
                message.contains("invalid network \"10.0.0.0\""),
                "{message}"
            );
        }
    }
}
