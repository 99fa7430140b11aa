//! Scheduled retraining (`clv train --every`) against a store that ingest keeps filling, on the
//! embedded broker: a run on an empty store fails and is counted, the first data trains and promotes
//! a version, a run on the same data does nothing, new data trains and promotes a version at a later
//! cutoff; every step read from the retraining's own `/metrics`.

use std::time::Duration;

use crate::common::stack::*;
use crate::common::*;

/// The value of the series `name` (with its labels, as printed) on the metrics page at `addr`.
fn metric(addr: &str, name: &str) -> Option<f64> {
    try_http_get(addr, "/metrics")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Midnight of `day` (YYYY-MM-DD), seconds since the epoch.
fn midnight(day: &str) -> f64 {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp() as f64
}

#[test]
fn retraining_on_a_schedule_follows_the_store_ingest_fills() {
    let dir = tempfile::tempdir().unwrap();
    let all = generate_between(dir.path(), "all", "2015-03-02", "2016-05-20");
    // The lines before 2016-03-01, and the rest.
    let text = std::fs::read_to_string(&all).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut before, mut after) = (vec![header], vec![header]);
    for line in lines {
        let date = line.split(',').nth(4).unwrap();
        if date < "2016-03-01" {
            before.push(line);
        } else {
            after.push(line);
        }
    }
    assert!(before.len() > 1000 && after.len() > 1000);
    let first = dir.path().join("first.csv");
    let rest = dir.path().join("rest.csv");
    std::fs::write(&first, before.join("\n") + "\n").unwrap();
    std::fs::write(&rest, after.join("\n") + "\n").unwrap();
    let events = count_with_customer(&first);
    let stack = Stack::embedded(dir, first, events, 2);
    let models = stack.path("models");
    let (mut ingest, ingest_metrics) = stack.spawn_ingest();

    let metrics = format!("127.0.0.1:{}", free_port());
    let mut retrain = spawn_drained(&[
        "train",
        "--db",
        &stack.path("featurestore"),
        "--models-dir",
        &models,
        "--horizon-months",
        "3",
        "--every",
        "1s",
        "--metrics-addr",
        &metrics,
    ]);
    let runs = |outcome: &str| {
        metric(
            &metrics,
            &format!("clv_retrain_runs_total{{outcome=\"{outcome}\"}}"),
        )
        .unwrap_or(0.0)
    };
    // Nothing ingested yet: the run fails, says so, and the schedule goes on.
    wait_for("a failed run", Duration::from_secs(60), || {
        runs("failed") >= 1.0
    });
    assert_eq!(metric(&metrics, "clv_retrain_last_run_failed"), Some(1.0));
    assert_eq!(metric(&metrics, "clv_retrain_interval_seconds"), Some(1.0));

    stack.replay();
    wait_for(
        "ingest to apply the first part",
        Duration::from_secs(60),
        || events_counted(&ingest_metrics) >= events as u64,
    );
    // Ingest may have been part way when a run read the store: production's cutoff is the first
    // part's edge once a run has read all of it (the last purchase is 2016-02-29: 3-month labels
    // end by 2016-03-01).
    wait_for(
        "production trained at the first part's edge",
        Duration::from_secs(300),
        || {
            metric(&metrics, "clv_retrain_production_cutoff_timestamp_seconds")
                == Some(midnight("2015-12-01"))
        },
    );
    let promoted = runs("promoted");
    assert!(promoted >= 1.0);
    assert_eq!(metric(&metrics, "clv_retrain_last_run_failed"), Some(0.0));
    // The store stays as it is: the next runs find nothing new and register nothing.
    let unchanged = runs("unchanged");
    wait_for("a run with nothing new", Duration::from_secs(60), || {
        runs("unchanged") >= unchanged + 2.0
    });
    assert_eq!(runs("promoted"), promoted);
    let versions = std::fs::read_dir(&models)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('v')
        })
        .count();
    assert_eq!(versions as f64, promoted + runs("kept"));

    // New purchases: a version at the new edge, promoted.
    let mut replay = stack.replay_args();
    let at = replay.iter().position(|a| a == "--input").unwrap();
    replay[at + 1] = rest.to_str().unwrap().to_string();
    clv(&replay.iter().map(String::as_str).collect::<Vec<_>>());
    // A run may read the store while ingest is part way through the new lines and promote a
    // version at an earlier edge; the run on all of them must still replace it (the registry
    // follows the selection's choice on the new folds: models::registry::beats).
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while metric(&metrics, "clv_retrain_production_cutoff_timestamp_seconds")
        != Some(midnight("2016-02-01"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "production never trained at the new edge; production.log:\n{}\nthe retraining said:\n{}",
            std::fs::read_to_string(format!("{models}/production.log")).unwrap_or_default(),
            retrain.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(runs("promoted") > promoted);
    let production = std::fs::read_to_string(format!("{models}/production"))
        .unwrap()
        .trim()
        .to_string();
    let number: f64 = production[1..].parse().unwrap();
    assert_eq!(
        metric(&metrics, "clv_retrain_production_version"),
        Some(number)
    );
    let log = std::fs::read_to_string(format!("{models}/production.log")).unwrap();
    assert!(
        log.lines().last().unwrap().contains("on the new data"),
        "{log}"
    );
    let mae = metric(&metrics, "clv_retrain_validation_mae").unwrap();
    assert!(mae.is_finite() && mae > 0.0, "{mae}");
    let said = retrain.sigterm();
    assert!(said.contains("retraining stopped"), "{said}");
    sigterm(&mut ingest);
}
