//! The training job as a library call, without a process: a request in, a registered version with
//! its files and a typed summary out, promoted by the registry's rule.

use common::{d, shop};
use models::Trained;
use models::registry::Registry;
use trainer::job::{Job, run};
use trainer::training::Histories;

mod common;

#[test]
fn a_job_registers_a_version_with_its_report_and_follows_the_registry_rule() {
    let histories = Histories::from_states(shop(700, 3));
    let dir = tempfile::tempdir().unwrap();
    let job = Job::at_the_edge(dir.path().join("models"));

    let first = run(&job, &histories).unwrap();
    assert_eq!(first.version, "v0001");
    assert!(first.promoted, "{}", first.reason);
    assert_eq!(first.production, "v0001");
    let summary = &first.summary;
    // The edge of the data: every purchase before the day after the last one.
    assert!(summary.at_edge);
    assert_eq!(summary.end, summary.last_day.succ_opt().unwrap());
    assert_eq!(first.production_cutoff, summary.cutoff);
    assert!(summary.end > summary.cutoff && summary.first >= d("2009-12-01"));
    // The validation folds, their mean, then the test; each table holds every candidate.
    let folds: Vec<&str> = summary.sections.iter().map(|s| s.fold.as_str()).collect();
    assert_eq!(folds.last(), Some(&"test"));
    assert_eq!(folds[folds.len() - 2], "validation");
    let candidates = trainer::backtest::candidates().len();
    assert!(
        summary
            .sections
            .iter()
            .all(|s| s.scores.len() == candidates)
    );
    assert!(!summary.risk.is_empty() && !summary.intervals.is_empty());

    // The files a version holds, its metadata from the same run, its inputs fitted at the end.
    for file in [
        "model.json",
        "model_nine.json",
        "metadata.json",
        "report.md",
        "report.html",
    ] {
        assert!(first.dir.join(file).is_file(), "{file}");
    }
    let registry = Registry::open(&job.models_dir).unwrap();
    let metadata = registry.metadata("v0001").unwrap();
    assert_eq!(metadata.model, summary.champion);
    assert_eq!(metadata.data_fingerprint, histories.fingerprint());
    assert_eq!(metadata.data_end, Some(summary.end.to_string()));
    assert!(metadata.interval.is_some() && metadata.value_tiers.is_some());
    let model = Trained::load(&first.dir.join("model.json")).unwrap();
    assert_eq!(model.inputs.fitted_at, Some(summary.end));
    // report.md is the summary's, the output says where the version went.
    let report = std::fs::read_to_string(first.dir.join("report.md")).unwrap();
    assert_eq!(report, summary.markdown("v0001"));
    assert!(report.contains(&format!("# v0001: {}", summary.champion)));
    assert!(report.contains("## At-risk list") && report.contains("## Intervals"));
    let said = first.console(&job);
    assert!(said.contains("registered v0001") && said.contains("made it production"));
    assert!(said.contains(&summary.sections[0].heading));

    // Again on the same data: registered, but production stays (not better on the same data).
    let second = run(&job, &histories).unwrap();
    assert_eq!(second.version, "v0002");
    assert!(!second.promoted, "{}", second.reason);
    assert_eq!(second.production, "v0001");
    assert!(
        second
            .console(&job)
            .contains("registered v0002; production stays v0001")
    );
}
