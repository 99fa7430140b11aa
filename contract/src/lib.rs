//! The CLV contract (`FEATURES.md`) as pure code: no I/O, no Kafka, no RocksDB, no polars.
//!
//! Everything that must mean the same wherever it is computed lives here, once:
//! - the rules at the crate root: line classes, exact money, dates and the label window;
//! - [`bounds`]: what a producer may send and a file may hold (contract v1.1);
//! - [`event`]: the versioned transaction event that travels through Kafka, and its validation;
//! - [`state`]: the per-customer state and the fold of events into it (order-independent; each event
//!   changes one invoice or the fixed-size summary, whatever the customer's history);
//! - [`row`]: **the feature row**, the one definition of every feature a model reads (the contract's
//!   nine and the extra ones), with their names, documentation, JSON and OpenAPI schema, and its
//!   conversion to and from a row of values in column order;
//! - [`partition`]: which partition a customer's events go to (Kafka's murmur2, as the Java client);
//! - [`watermark`]: how far the data has got (what `as_of` follows), by a rule a few outliers cannot
//!   move;
//! - [`probabilistic`]: BG/NBD and Gamma-Gamma as they predict (their fitting is the trainer's);
//! - [`segment`]: a customer's value tier (by predicted CLV) and activity band (by P(alive));
//! - [`inputs`]: the model-wide inputs a row is computed with (fitted BG/NBD and Gamma-Gamma
//!   parameters, the seasonal profile), passed in explicitly so that a customer's row depends on
//!   that customer's state, `as_of` and the inputs alone.
//!
//! The stream (ingest), the offline snapshot's differential check, the trainer and the scorer all
//! call these same functions.

pub mod bounds;
pub mod event;
pub mod inputs;
pub mod partition;
pub mod probabilistic;
pub mod row;
mod rules;
pub mod segment;
pub mod state;
#[cfg(test)]
mod testing;
pub mod watermark;

pub use inputs::{ModelInputs, Seasonality};
pub use row::{Extra, Feature, FeatureKind, FeatureRow, Nine, RowBuilder};
pub use rules::*;
pub use state::{Applied, Change, CustomerState, Purchase, Summary};
