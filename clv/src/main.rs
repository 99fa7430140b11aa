//! `clv`: the command line of the CLV feature store and scorer.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = clv::Cli::parse();
    clv::init_logging();
    match clv::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
