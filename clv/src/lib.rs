//! The `clv` command line: clap definitions and one module per command family, each a thin layer over
//! the libraries (`dataset`, `featurestore`, `ingest`, `trainer`, `scorer`).

use clap::{Parser, Subcommand};

mod data;
mod demo;
mod instance;
mod models;
mod progress;
mod retrain;
mod score;
mod serve;
mod server;
mod snapshot;
mod stream;
mod telemetry;
mod train;

/// Customer lifetime value: a streaming feature store and online scorer for Online Retail II.
#[derive(Debug, Parser)]
#[command(name = "clv", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Get the transaction data: import, download or generate it.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Compute the features and the label of every customer at a cutoff: in batch from the lines (the
    /// offline reference), or from the feature store (--db).
    Snapshot(snapshot::SnapshotArgs),
    /// Run the embedded Kafka broker (librdkafka's mock cluster) until stopped.
    Broker(stream::BrokerArgs),
    /// Produce the dataset into Kafka, one event per line, keyed by customer ID.
    Replay(stream::ReplayArgs),
    /// Consume the events into the RocksDB feature store (a consumer group member).
    Ingest(stream::IngestArgs),
    /// Produce one transaction by hand, keyed by its customer (e.g. into the running demo).
    Send(stream::SendArgs),
    /// Train and score every candidate model out of time, pick the champion, register it.
    Train(train::TrainArgs),
    /// List the registered models, promote one, or roll production back.
    Models(models::ModelsArgs),
    /// Score every customer with a registry version into a CSV or Parquet file (for a CRM).
    Score(score::ScoreArgs),
    /// Serve CLV over HTTP from the live feature store and the production model.
    Serve(serve::ServeArgs),
    /// One instance of a scaled-out group: ingest of its partitions, the scorer, and routing to the
    /// owner of any customer's partition (README, "Scale-out").
    Instance(instance::InstanceArgs),
    /// The whole system in one process: data -> embedded Kafka -> ingest -> RocksDB -> trained model
    /// -> HTTP scorer; again, it reuses what is done.
    Demo(demo::DemoArgs),
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Data(command) => data::run(command),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Broker(args) => stream::broker(args),
        Command::Replay(args) => stream::replay_command(args),
        Command::Ingest(args) => stream::ingest_command(args),
        Command::Send(args) => stream::send_command(args),
        Command::Train(args) => train::run(args),
        Command::Models(args) => models::run(args),
        Command::Score(args) => score::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Instance(args) => instance::run(args),
        Command::Demo(args) => demo::run(args),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
