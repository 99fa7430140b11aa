//! The scorer: CLV over HTTP from the live feature store and the registry's production model.
//!
//! A request reads the latest scored population, which a background loop updates: the customers
//! ingest wrote since the last refresh are rescored from their own rows; everyone when the
//! `production` model (a promotion) or `as_of` changed. No frame is built anywhere here:
//!
//! - [`source`]: the store, shared in this process or opened as a RocksDB secondary that catches up;
//! - [`follow`]: the registry's `production` version and its two models;
//! - [`population`]: every customer's feature row at `as_of` and CLV, with its answer serialized
//!   once, in a persistent map that an update shares with the population before it;
//! - [`response`]: every response body of the API, in one place;
//! - [`service`]: the shared state ([`service::Scorer`]) and the refresh loop;
//! - [`route`]: where an answer comes from: here for a scorer alone (`clv serve`, a group of one);
//!   for an instance of a group (`clv instance`), a customer's questions go to its partition's
//!   owner and lists are merged from every owner;
//! - [`http`]: the axum router with one handler per endpoint, request metrics, limits and the
//!   OpenAPI document;
//! - [`page`]: the web page, as compile-time templates;
//! - [`shed`]: the cap on open connections (requests in flight are capped by the router's one
//!   layer);
//! - [`telemetry`]: every metric it exports, named and described once.

pub mod follow;
pub mod http;
pub mod page;
pub mod population;
pub mod response;
pub mod route;
pub mod service;
pub mod shed;
pub mod source;
pub mod summary;
pub mod telemetry;

/// Errors of the scorer.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// The feature store failed.
    #[error(transparent)]
    Store(#[from] featurestore::store::StoreError),
    /// The registry or a model failed.
    #[error(transparent)]
    Model(#[from] models::ModelError),
    /// The store or a model is not usable yet or at all.
    #[error("{0}")]
    Unusable(String),
    /// A body could not be serialized.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with [`ScorerError`].
pub type Result<T, E = ScorerError> = std::result::Result<T, E>;
