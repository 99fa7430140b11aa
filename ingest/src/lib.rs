//! The streaming path between the data and the feature store: `replay` (data file -> Kafka topic
//! `transactions`, keyed by customer ID) and `consume` (Kafka -> per-customer aggregates in RocksDB,
//! exactly-once in effect).
//!
//! Not built yet: the issue "Streaming path" fills this crate. Until then the offline path
//! (`dataset` -> `featurestore::offline`) is what `clv` runs.
