//! The contract in batch, with polars: the independent implementation the streaming path is checked
//! against (differential tests), and the frames the trainer and `clv snapshot` write.
//!
//! - [`lines`]: over normalised lines (`dataset::normalised`): the line classes, purchases,
//!   point-in-time snapshots of the nine features with the label and the naive baseline, and the
//!   import summary, as polars expressions written independently of the fold;
//! - [`states`]: the same snapshot from per-customer states (through [`contract::Nine::of`]), the
//!   conversion between feature rows and frame columns, and the rule by which two snapshots agree.

pub mod lines;
pub mod states;

pub use contract::SnapshotSpec;
pub use lines::OfflineError;
