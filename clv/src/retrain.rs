//! `clv train --every D`: the scheduled retraining. Every interval it reads the store again (a
//! consistent snapshot while ingest writes it), trains when the data changed since the last run (or
//! since production's version), registers the version and promotes it by the registry's rule
//! ([`models::registry::beats`]); it logs each run to MLflow when configured (as `clv train` does)
//! and exposes the last run and its outcome as Prometheus metrics.
//!
//! A failed run (a store without enough history yet, an unreadable store) is logged and counted, and
//! the next one runs at its time. SIGTERM between runs stops at once; during a run, after it (a
//! version whose files are half written has no metadata and is never listed, so a SIGKILL is safe).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use models::registry::Registry;

use crate::train::{self, TrainArgs};
use trainer::job::Registered;

// The retraining's metrics, each named once (README, "Retraining").
const RUNS: &str = "clv_retrain_runs_total";
const LAST_RUN: &str = "clv_retrain_last_run_timestamp_seconds";
const LAST_SUCCESS: &str = "clv_retrain_last_success_timestamp_seconds";
const LAST_RUN_FAILED: &str = "clv_retrain_last_run_failed";
const LAST_RUN_DURATION: &str = "clv_retrain_last_run_duration_seconds";
const INTERVAL: &str = "clv_retrain_interval_seconds";
const VALIDATION_MAE: &str = "clv_retrain_validation_mae";
const PRODUCTION_VERSION: &str = "clv_retrain_production_version";
const PRODUCTION_CUTOFF: &str = "clv_retrain_production_cutoff_timestamp_seconds";

/// What one scheduled run did (the `outcome` label of `clv_retrain_runs_total`).
enum Ran {
    /// Trained, registered and made production.
    Promoted(Registered),
    /// Trained and registered; production stayed.
    Kept(Registered),
    /// The store held the same purchases as at the last training: nothing to do.
    Unchanged,
}

/// The outcomes, as labelled.
const OUTCOMES: [&str; 4] = ["promoted", "kept", "unchanged", "failed"];

fn describe(every: Duration) {
    describe_counter!(
        RUNS,
        "Scheduled retraining runs by outcome: promoted, kept (registered, production stayed), unchanged (no new data), failed"
    );
    describe_gauge!(LAST_RUN, "When the last retraining run ended (wall time)");
    describe_gauge!(
        LAST_SUCCESS,
        "When the last retraining run that did not fail ended (wall time)"
    );
    describe_gauge!(
        LAST_RUN_FAILED,
        "1 when the last retraining run failed, else 0"
    );
    describe_gauge!(LAST_RUN_DURATION, "How long the last retraining run took");
    describe_gauge!(INTERVAL, "The retraining interval (--every)");
    describe_gauge!(
        VALIDATION_MAE,
        "Validation MAE of the last trained version's champion, pounds"
    );
    describe_gauge!(
        PRODUCTION_VERSION,
        "The production version's number (v0007: 7)"
    );
    describe_gauge!(
        PRODUCTION_CUTOFF,
        "The production version's cutoff: its model knows the data before it"
    );
    for outcome in OUTCOMES {
        counter!(RUNS, "outcome" => outcome).absolute(0);
    }
    gauge!(INTERVAL).set(every.as_secs_f64());
}

/// Production's version and cutoff as gauges.
fn publish_production(version: &str, cutoff: chrono::NaiveDate) {
    if let Some(number) = version
        .strip_prefix('v')
        .and_then(|n| n.parse::<u32>().ok())
    {
        gauge!(PRODUCTION_VERSION).set(f64::from(number));
    }
    if let Some(midnight) = cutoff.and_hms_opt(0, 0, 0) {
        gauge!(PRODUCTION_CUTOFF).set(midnight.and_utc().timestamp() as f64);
    }
}

/// Runs until SIGINT / SIGTERM.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let every = args.every.context("--every")?;
    anyhow::ensure!(
        every >= Duration::from_secs(1),
        "--every {}: at least one second",
        humantime::format_duration(every)
    );
    let stop = crate::stream::stop_flag()?;
    if let Some(addr) = &args.metrics_addr {
        crate::telemetry::serve_metrics(addr)?;
    }
    describe(every);
    let registry = Registry::open(&args.models_dir)?;
    // The data production was trained on: no run until the store holds something else.
    let mut trained_on = match registry.production()? {
        Some(version) => {
            let metadata = registry.metadata(&version)?;
            if let Ok(cutoff) = metadata.cutoff.parse() {
                publish_production(&version, cutoff);
            }
            Some(metadata.data_fingerprint)
        }
        None => None,
    };
    println!(
        "retraining from {} every {}, into {}",
        args.db
            .as_deref()
            .unwrap_or(std::path::Path::new("?"))
            .display(),
        humantime::format_duration(every),
        args.models_dir.display()
    );
    loop {
        let started = Instant::now();
        let outcome = match run_once(&args, &mut trained_on) {
            Ok(Ran::Promoted(o)) => {
                tracing::info!(version = %o.version, reason = %o.reason, "retraining promoted");
                publish_production(&o.production, o.production_cutoff);
                gauge!(VALIDATION_MAE).set(o.validation_mae);
                "promoted"
            }
            Ok(Ran::Kept(o)) => {
                tracing::info!(version = %o.version, reason = %o.reason, "retraining kept production");
                gauge!(VALIDATION_MAE).set(o.validation_mae);
                "kept"
            }
            Ok(Ran::Unchanged) => {
                println!("retraining: the store holds the data already trained on; nothing to do");
                "unchanged"
            }
            Err(error) => {
                let message = format!("{error:#}");
                tracing::error!("retraining failed: {message}");
                println!("retraining failed: {message}");
                "failed"
            }
        };
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        counter!(RUNS, "outcome" => outcome).increment(1);
        gauge!(LAST_RUN).set(now);
        gauge!(LAST_RUN_DURATION).set(started.elapsed().as_secs_f64());
        gauge!(LAST_RUN_FAILED).set(if outcome == "failed" { 1.0 } else { 0.0 });
        if outcome != "failed" {
            gauge!(LAST_SUCCESS).set(now);
        }
        let next = started + every;
        while Instant::now() < next {
            if stop.load(Ordering::SeqCst) {
                println!("retraining stopped");
                return Ok(());
            }
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200)),
            );
        }
        if stop.load(Ordering::SeqCst) {
            println!("retraining stopped");
            return Ok(());
        }
    }
}

/// One run: read the store; train unless it holds what was trained on last.
fn run_once(args: &TrainArgs, trained_on: &mut Option<String>) -> anyhow::Result<Ran> {
    let histories = train::read(args)?;
    if trained_on.as_deref() == Some(histories.fingerprint().as_str()) {
        return Ok(Ran::Unchanged);
    }
    let outcome = train::train_histories(&train::job(args), &histories, Instant::now())?;
    *trained_on = Some(outcome.summary.fingerprint.clone());
    Ok(if outcome.promoted {
        Ran::Promoted(outcome)
    } else {
        Ran::Kept(outcome)
    })
}
