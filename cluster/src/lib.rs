//! Scale-out across instances: the rules, with no I/O (Kafka and HTTP are the callers' business).
//!
//! An *instance* is one `clv instance` process: a consumer-group member folding its partitions into
//! its own RocksDB store, and the scorer over that store. This crate holds what they agree on:
//!
//! - [`instance`]: one instance's partitions as ingest sees them (assigned, restoring with
//!   progress, caught up) and as the scorer may serve them (caught up *and* scored); the group's
//!   view and watermark it routes and scores by;
//! - [`member`]: the record an instance advertises (its HTTP address, each partition's status and
//!   watermark mark) and the [`member::View`] of every live member: who serves a partition, whether
//!   every partition has an owner, and the group's one watermark;
//! - [`merge`]: the merge of the owners' lists into one ranking;
//! - [`standby`]: the partitions an instance keeps warm without serving them (those the group's
//!   range assignor would give it if other members left);
//! - [`sides`]: the handles through which ingest, the membership loop and the scorer each reach
//!   the instance, each allowed only its part.
//!
//! No I/O and no clock: the callers pass the time (`now`).
//!
//! Why a partition is never served by two owners: ingest's group uses the eager rebalance protocol,
//! in which every member gives up its partitions (and this crate's [`instance::Instance::revoked`]
//! stops serving them, before the rebalance callback returns) before any member is given new ones;
//! an instance answers for a partition only from its own state, never from the view's claims.

pub mod instance;
pub mod member;
pub mod merge;
pub mod sides;
pub mod standby;

pub use instance::{Instance, PartitionStatus, Restored};
pub use member::{Member, View};
pub use sides::{Advertised, Partitions, Serving};
