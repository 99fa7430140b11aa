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
//! - [`service`]: the shared state ([`service::Scorer`]) and the refresh loop;
//! - [`route`]: between instances of a group (`clv instance`): a customer's questions to its
//!   partition's owner, lists merged from every owner;
//! - [`http`]: the axum router, its JSON errors, request metrics, limits and OpenAPI document;
//! - [`shed`]: the caps on open connections and requests in flight, beyond which it answers 503;
//! - [`telemetry`]: every metric it exports, named and described once.

pub mod follow;
pub mod http;
pub mod page;
pub mod population;
pub mod route;
pub mod service;
pub mod shed;
pub mod source;
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
