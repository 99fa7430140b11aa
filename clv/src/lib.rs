//! The `clv` command line: clap definitions and one module per command family, each a thin layer over
//! the libraries (`dataset`, `featurestore`).

use clap::{Parser, Subcommand};

mod data;
mod progress;
mod snapshot;

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
    /// Compute the features and the label of every customer at a cutoff, in batch (the offline reference).
    Snapshot(snapshot::SnapshotArgs),
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Data(command) => data::run(command),
        Command::Snapshot(args) => snapshot::run(args),
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
