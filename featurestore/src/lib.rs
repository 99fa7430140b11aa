//! The feature store on RocksDB: per-customer state ([`contract::CustomerState`]) by Kafka partition,
//! with the consumed offsets in the same atomic write ([`store`]).
//!
//! What a state means (the fold, the features) is the contract's ([`contract`]); this crate only keeps
//! it. The offline snapshot that checks it is the `offline` crate.

pub mod store;

pub use store::{Batch, CustomerWrite, LAYOUT, RocksStore, SourceId, StoreError};
