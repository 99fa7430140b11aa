//! The CLV feature store: the feature and label contract (`FEATURES.md`), and its computations.
//!
//! - [`contract`]: names, classes and time arithmetic of the contract, shared by every implementation;
//! - [`event`]: the versioned transaction event that travels through Kafka, and its validation;
//! - [`aggregate`]: per-customer state, the fold of events into it, and features as of any time;
//! - [`offline`]: the batch computation with polars, over normalised lines: point-in-time snapshots of the
//!   nine features and the 6-month label, and the import summary. It is deliberately an independent
//!   implementation of the contract, so that the streaming path can be checked against it;
//! - [`snapshot`]: the same snapshot taken from per-customer states, and the rule by which two agree;
//! - [`store`]: the RocksDB store of those states, by Kafka partition, with the consumed offsets.

pub mod aggregate;
pub mod contract;
pub mod event;
pub mod offline;
pub mod snapshot;
pub mod store;

pub use offline::{OfflineError, SnapshotSpec};
