//! The CLV feature store: the feature and label contract (`FEATURES.md`), and its computations.
//!
//! - [`contract`]: names, classes and time arithmetic of the contract, shared by every implementation;
//! - [`offline`]: the batch computation with polars, over normalised lines: point-in-time snapshots of the
//!   nine features and the 6-month label, and the import summary. It is deliberately an independent
//!   implementation of the contract, so that the streaming path can be checked against it.

pub mod contract;
pub mod offline;

pub use offline::{OfflineError, SnapshotSpec};
