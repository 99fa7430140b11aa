//! The registry: numbered versions, the promotion rule (a worse model never replaces production; on
//! new data production's family is compared as re-evaluated), promote and rollback.

use models::metrics::Metrics;
use models::registry::Score;
use models::registry::{Metadata, Registry, beats};

fn score(model: &str, fold: &str, mae: f64) -> Score {
    Score {
        model: model.into(),
        fold: fold.into(),
        metrics: Metrics {
            rmse: 0.0,
            mae,
            r2: 0.0,
            spearman: 0.0,
            normalised_gini: 0.0,
            top_decile_share: 0.0,
            total_ratio: 1.0,
        },
    }
}

fn metadata(version: &str, model: &str, data: &str, scores: Vec<Score>) -> Metadata {
    Metadata {
        version: version.into(),
        created: "2026-11-25T00:00:00Z".into(),
        git_commit: None,
        contract_version: 1,
        model: model.into(),
        features: vec![],
        cutoff: "2011-06-01".into(),
        horizon_months: 6,
        train_cutoffs: vec![],
        data_fingerprint: data.into(),
        scores,
        value_tiers: None,
        interval: None,
        drift: None,
        data_end: None,
        gains: None,
        tested: None,
        passed_over: Vec::new(),
    }
}

#[test]
fn a_worse_or_equal_model_does_not_replace_production_on_the_same_data() {
    let production = metadata(
        "v0001",
        "boosting_all",
        "d1",
        vec![score("boosting_all", "validation", 600.0)],
    );
    let worse = metadata(
        "v0002",
        "linear_all",
        "d1",
        vec![score("linear_all", "validation", 650.0)],
    );
    let equal = metadata(
        "v0003",
        "boosting_all",
        "d1",
        vec![score("boosting_all", "validation", 600.0)],
    );
    let better = metadata(
        "v0004",
        "two_stage_all",
        "d1",
        vec![score("two_stage_all", "validation", 590.0)],
    );
    assert!(!beats(&worse, &production).0);
    assert!(!beats(&equal, &production).0);
    let (yes, reason) = beats(&better, &production);
    assert!(yes, "{reason}");
}

#[test]
fn on_new_data_production_is_judged_as_re_evaluated_there() {
    // Production scored 500 on the old data; on the new data its family scores 700 and the new
    // champion 650: the new one wins although 650 > 500.
    let production = metadata(
        "v0001",
        "boosting_all",
        "old",
        vec![score("boosting_all", "validation", 500.0)],
    );
    let candidate = metadata(
        "v0002",
        "two_stage_all",
        "new",
        vec![
            score("two_stage_all", "validation", 650.0),
            score("boosting_all", "validation", 700.0),
        ],
    );
    let (yes, reason) = beats(&candidate, &production);
    assert!(yes && reason.contains("re-evaluated"), "{reason}");
}

#[test]
fn on_new_data_the_same_family_refit_replaces_production_and_a_worse_one_does_not() {
    let production = metadata(
        "v0001",
        "bgnbd_gg",
        "old",
        vec![score("bgnbd_gg", "validation", 500.0)],
    );
    // Scheduled retraining on newer data: the same family wins again (its MAE on the new validation
    // fold is production's family's there).
    let refit = metadata(
        "v0002",
        "bgnbd_gg",
        "new",
        vec![score("bgnbd_gg", "validation", 520.0)],
    );
    let (yes, reason) = beats(&refit, &production);
    assert!(yes && reason.contains("refit"), "{reason}");
    // A champion worse than production's family on the same new fold (a candidate list that no
    // longer holds it would say "no comparable score" instead).
    let worse = metadata(
        "v0003",
        "linear_all",
        "new",
        vec![
            score("linear_all", "validation", 560.0),
            score("bgnbd_gg", "validation", 520.0),
        ],
    );
    let (no, reason) = beats(&worse, &production);
    assert!(!no, "{reason}");
}

#[test]
fn on_new_data_a_champion_the_selection_preferred_over_productions_family_replaces_it() {
    // Production's naive_scaled won its folds by more than one standard error; on the new data it
    // still has the lower mean MAE, but within one standard error, so the selection chose the
    // BG/NBD family: the registry follows the selection (retraining would otherwise never move).
    let production = metadata(
        "v0001",
        "naive_scaled",
        "old",
        vec![score("naive_scaled", "validation", 500.0)],
    );
    let mut preferred = metadata(
        "v0002",
        "bgnbd_gg",
        "new",
        vec![
            score("bgnbd_gg", "validation", 530.0),
            score("naive_scaled", "validation", 520.0),
        ],
    );
    let (no, reason) = beats(&preferred, &production);
    assert!(
        !no,
        "without the selection's word the lower MAE wins: {reason}"
    );
    preferred.passed_over = vec!["naive_scaled".into()];
    let (yes, reason) = beats(&preferred, &production);
    assert!(yes && reason.contains("one standard error"), "{reason}");
    // The same preference recorded on the same data changes nothing: there production's own
    // score is the bar.
    preferred.data_fingerprint = "old".into();
    assert!(!beats(&preferred, &production).0);
}

#[test]
fn versions_are_numbered_and_rollback_returns_to_the_previous_production() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    assert_eq!(registry.production().unwrap(), None);
    for _ in 0..3 {
        let (version, _) = registry.new_version().unwrap();
        registry
            .write_metadata(&metadata(&version, "naive", "d", vec![]))
            .unwrap();
    }
    assert_eq!(registry.versions().unwrap(), ["v0001", "v0002", "v0003"]);
    assert!(registry.promote("v0009", "no such version").is_err());
    assert!(registry.rollback().is_err(), "nothing in production yet");
    registry.promote("v0001", "first").unwrap();
    registry.promote("v0003", "better").unwrap();
    assert_eq!(registry.production().unwrap().as_deref(), Some("v0003"));
    assert_eq!(registry.rollback().unwrap(), "v0001");
    assert_eq!(registry.production().unwrap().as_deref(), Some("v0001"));
    assert_eq!(registry.history().unwrap(), ["v0001", "v0003", "v0001"]);
}
