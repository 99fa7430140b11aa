//! `clv models`: the registry's versions and its `production` pointer.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use models::registry::Registry;

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// The model registry.
    #[arg(
        long,
        env = "CLV_MODELS_DIR",
        default_value = "data/models",
        global = true
    )]
    models_dir: PathBuf,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Every version with its champion, validation and test MAE; `*` marks production.
    List,
    /// Make a version production by hand.
    Promote {
        /// The version, e.g. v0003.
        version: String,
    },
    /// Move production back to the version it was before.
    Rollback,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let registry = Registry::open(&args.models_dir)?;
    match args.command {
        ModelsCommand::List => {
            let production = registry.production()?;
            println!("  version  model                 validation MAE  test MAE  created");
            for version in registry.versions()? {
                let m = registry.metadata(&version)?;
                let mae = |fold: &str| {
                    m.score(&m.model, fold)
                        .map(|s| format!("{:.1}", s.metrics.mae))
                        .unwrap_or_else(|| "-".into())
                };
                println!(
                    "{} {:<8} {:<21} {:>14}  {:>8}  {}",
                    if production.as_deref() == Some(version.as_str()) {
                        "*"
                    } else {
                        " "
                    },
                    version,
                    m.model,
                    mae("validation"),
                    mae("test"),
                    m.created
                );
            }
        }
        ModelsCommand::Promote { version } => {
            registry.promote(&version, "promoted by hand")?;
            println!("{version} is production");
        }
        ModelsCommand::Rollback => {
            let version = registry.rollback()?;
            println!("{version} is production again");
        }
    }
    Ok(())
}
