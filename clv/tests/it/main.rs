//! The `clv` binary's integration tests, one test binary (each test still runs in its own process
//! under nextest): a module per area, the support they share in `common`, and the dataset crate's
//! fixtures. One binary instead of fourteen links polars, RocksDB and librdkafka once
//! (BENCHMARKS.md, "The first run").

mod common;
#[path = "../../../dataset/tests/common/mod.rs"]
mod fixtures;

mod api_fuzz;
mod cli;
mod demo;
mod feature_row;
mod monitoring;
mod online_offline;
mod real_data;
mod retrain;
mod scale_out;
mod score;
mod serve;
mod stream;
mod synthetic_shape;
mod train;
