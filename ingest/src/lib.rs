//! The streaming path between the data and the feature store:
//! - [`replay`]: data file -> Kafka topic `transactions`, keyed by customer ID, idempotent, paced or as
//!   fast as possible, bounded by the consumer's lag;
//! - [`fold`]: the pure batch folder: messages in, outcomes, states, offsets, watermark and counts
//!   out (no Kafka, no RocksDB);
//! - [`consume`]: the Kafka loop around it: Kafka -> per-customer state in RocksDB
//!   (`featurestore::store`), exactly-once in effect, malformed messages to a dead-letter topic;
//! - [`forward_mark`]: the group's committed offset as the mark below which misrouted events were
//!   forwarded already (pure);
//! - [`checkpoint`]: partitions written to a shared folder and loaded by the member they move to;
//! - [`membership`]: the instances' records on a compacted topic, read back into the view that
//!   `clv instance` routes by (scale-out);
//! - [`send`]: one event by hand, keyed by its customer (`clv send`);
//! - [`broker`]: a real Kafka bootstrap list, or the embedded broker (librdkafka's mock cluster);
//! - [`telemetry`]: every metric ingest exports, named and described once.

pub mod broker;
pub mod checkpoint;
pub mod consume;
mod delivery;
mod error;
pub mod fold;
pub mod forward_mark;
pub mod membership;
pub mod replay;
pub mod send;
pub mod telemetry;

pub use error::{IngestError, Result};
