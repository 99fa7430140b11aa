//! The scorer: CLV over HTTP from the live feature store and the registry's production model.
//!
//! A request reads the latest scored population, which a background loop rebuilds whenever the
//! store (ingest wrote), the `production` model (a promotion) or `as_of` changed:
//!
//! - [`source`]: the store, shared in this process or opened as a RocksDB secondary that catches up;
//! - [`follow`]: the registry's `production` version and its two models;
//! - [`population`]: every customer's features at `as_of` and CLV, serialized once per refresh;
//! - [`service`]: the shared state ([`service::Scorer`]) and the refresh loop;
//! - [`http`]: the axum router, its JSON errors, request metrics, limits and OpenAPI document.

pub mod follow;
pub mod http;
pub mod population;
pub mod service;
pub mod source;

/// Errors of the scorer.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// The feature store failed.
    #[error(transparent)]
    Store(#[from] featurestore::store::StoreError),
    /// The registry or a model failed.
    #[error(transparent)]
    Train(#[from] trainer::TrainError),
    /// A model's output or input is unusable.
    #[error("model: {0}")]
    Model(String),
    /// polars failed.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    /// A body could not be serialized.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with [`ScorerError`].
pub type Result<T, E = ScorerError> = std::result::Result<T, E>;
