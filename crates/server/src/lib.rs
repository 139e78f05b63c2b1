//! meetwire's server: the REST API, the runner API, the built-in sandbox runner and the
//! schedulers, over any [`meetwire_store::Store`].

pub mod api;
pub mod app;
pub mod calendar;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod metrics;
pub mod retention;
pub mod runner;
pub mod runner_api;
pub mod sandbox;
pub mod scheduler;
pub mod ui;

pub use app::{router, serve, AppState};
pub use config::{MetricsAccess, ServerConfig};
