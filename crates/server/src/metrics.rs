//! Prometheus metrics at `/metrics`: what operators alert on — deliveries and attempts by
//! outcome, attempt latency, the outbox backlog and its oldest due delivery, which endpoints
//! keep failing, and whether the log can still be made durable.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

pub struct Metrics {
    registry: Registry,
    /// Deliveries that finished, by final status (success, failure).
    pub deliveries: Family<OutcomeLabel, Counter>,
    /// Attempts, by outcome (success or the failure kind).
    pub attempts: Family<OutcomeLabel, Counter>,
    pub attempt_seconds: Histogram,
    pub endpoint_failure_streak: Family<EndpointLabel, Gauge>,
    pub pending: Gauge,
    /// Claimed deliveries given back to the outbox unattempted.
    pub handed_back: Counter,
    /// Finished deliveries deleted by retention.
    pub deliveries_deleted: Counter,
    /// Bots whose recorded data retention deleted.
    pub bot_data_deleted: Counter,
    pub oldest_due_seconds: Gauge<f64, AtomicU64>,
    /// 1 once an fsync of the write-ahead log failed: nothing more is acknowledged.
    pub log_sync_failed: Gauge,
    /// Client connections open now.
    pub http_connections: Gauge,
    /// Client connections the server closed or refused, by reason.
    pub http_connections_closed: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("meetwire");
        let deliveries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "deliveries",
            "Webhook deliveries that reached a final status",
            deliveries.clone(),
        );
        let attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Webhook delivery attempts",
            attempts.clone(),
        );
        let attempt_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "delivery_attempt_seconds",
            "Duration of webhook delivery attempts",
            attempt_seconds.clone(),
        );
        let endpoint_failure_streak = Family::<EndpointLabel, Gauge>::default();
        registry.register(
            "endpoint_failure_streak",
            "Consecutive failed attempts per endpoint (0 after a success)",
            endpoint_failure_streak.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "deliveries_pending",
            "Deliveries not yet finished",
            pending.clone(),
        );
        let handed_back = Counter::default();
        registry.register(
            "deliveries_handed_back",
            "Claimed deliveries given back unattempted (endpoint at its limit with a full \
             queue, rate-limited, or the in-flight budget spent), due again shortly",
            handed_back.clone(),
        );
        let deliveries_deleted = Counter::default();
        registry.register(
            "deliveries_deleted",
            "Finished deliveries (with their attempts) deleted past their retention",
            deliveries_deleted.clone(),
        );
        let bot_data_deleted = Counter::default();
        registry.register(
            "bot_data_deleted",
            "Bots whose recorded data (transcript, chat, participant events, logs) retention \
             deleted",
            bot_data_deleted.clone(),
        );
        let oldest_due_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "oldest_due_delivery_age_seconds",
            "How long the longest-waiting due delivery has been due",
            oldest_due_seconds.clone(),
        );
        let log_sync_failed = Gauge::default();
        registry.register(
            "log_sync_failed",
            "1 once an fsync of the write-ahead log failed: writes are refused until a restart",
            log_sync_failed.clone(),
        );
        let http_connections = Gauge::default();
        registry.register(
            "http_connections",
            "Client connections open now",
            http_connections.clone(),
        );
        let http_connections_closed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_connections_closed",
            "Client connections closed by the server (header_timeout, idle_timeout, evicted at \
             the cap) or refused at the cap with every connection busy (refused)",
            http_connections_closed.clone(),
        );
        Metrics {
            registry,
            deliveries,
            attempts,
            attempt_seconds,
            endpoint_failure_streak,
            pending,
            handed_back,
            deliveries_deleted,
            bot_data_deleted,
            oldest_due_seconds,
            log_sync_failed,
            http_connections,
            http_connections_closed,
        }
    }
}

impl Metrics {
    pub fn outcome(outcome: &str) -> OutcomeLabel {
        OutcomeLabel {
            outcome: outcome.to_owned(),
        }
    }

    pub fn reason(reason: &str) -> ReasonLabel {
        ReasonLabel {
            reason: reason.to_owned(),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
