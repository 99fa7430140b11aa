//! `clv`: the command line of the CLV feature store and scorer.

use clap::Parser;

/// mimalloc rather than glibc's malloc: polars' columns and RocksDB's batches are large, short-lived
/// buffers, which glibc maps and unmaps from the kernel each time (a third of `clv snapshot` went
/// to page faults).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = clv::Cli::parse();
    clv::init_logging();
    match clv::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", message(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: library errors that keep their source often also say it in
/// their own message, which `{:#}` would repeat.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}
