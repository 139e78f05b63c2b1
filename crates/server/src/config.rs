//! The server's settings, already resolved from flags, environment and file by the binary.

use std::net::SocketAddr;
use std::time::Duration;

use crate::calendar::provider::ProviderUrls;
use crate::connections::ConnectionLimits;
use crate::delivery::DeliveryConfig;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// A claimed bot whose runner is silent this long gets `fatal_error` / `heartbeat_timeout`.
    pub heartbeat_timeout: Duration,
    /// How often the schedulers look for due work when nothing wakes them.
    pub poll_interval: Duration,
    /// How long before `join_at` a scheduled bot becomes `staged`.
    pub stage_lead: Duration,
    /// How often each connected calendar is synced.
    pub calendar_sync_interval: Duration,
    /// Where Google's and Microsoft's calendar APIs are reached.
    pub calendar_providers: ProviderUrls,
    /// Whether this node runs the built-in sandbox runner.
    pub sandbox_runner: bool,
    pub delivery: DeliveryConfig,
    /// Mark the UI's cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Time limits and the cap on client connections.
    pub connections: ConnectionLimits,
    pub metrics: MetricsAccess,
    /// How long a stopping server lets requests and delivery attempts in flight finish.
    pub shutdown_grace: Duration,
    /// How long finished deliveries and their attempts are kept.
    pub delivery_retention: Duration,
    /// How long after a bot finished its recorded data is kept; `None` keeps it.
    pub record_retention: Option<Duration>,
}

/// Where `/metrics` is served and who may read it: operators keep it off the public port, or
/// behind a token, or both (it tells how busy the server is and which endpoints fail).
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// Its own address; `None` serves it beside the API.
    pub listen: Option<SocketAddr>,
    /// The bearer token a reader must present, if any.
    pub token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8077)),
            body_limit_bytes: 1024 * 1024,
            heartbeat_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            stage_lead: Duration::from_secs(60),
            calendar_sync_interval: Duration::from_secs(300),
            calendar_providers: ProviderUrls::default(),
            sandbox_runner: true,
            delivery: DeliveryConfig::default(),
            secure_cookies: false,
            connections: ConnectionLimits::default(),
            metrics: MetricsAccess::default(),
            shutdown_grace: Duration::from_secs(15),
            delivery_retention: Duration::from_secs(30 * 24 * 3600),
            record_retention: None,
        }
    }
}
