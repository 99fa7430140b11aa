//! `clv train` on the seed's modeling table and on the real data: every candidate is scored on both
//! folds, and the probabilistic model reproduces the reference measured with lifetimes.

mod common;

use common::*;

/// The metrics row of `model` in the table that follows `heading` in `clv train`'s output.
fn row(output: &str, heading: &str, model: &str) -> Vec<f64> {
    let section = output
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in\n{output}"));
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("| {model} |")))
        .unwrap_or_else(|| panic!("no row {model} after {heading:?} in\n{output}"));
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .skip(1)
        .map(|c| c.parse().unwrap())
        .collect()
}

fn seed_table() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/seed_clv_modeling_table.parquet")
}

#[test]
fn the_seed_table_is_scored_for_every_model_on_the_mod_5_split() {
    let out = clv(&["train", "--table", seed_table().to_str().unwrap()]);
    for heading in [
        "validation (customer_id mod 5 = 3)",
        "test (customer_id mod 5 = 4)",
    ] {
        for model in [
            "naive",
            "naive_scaled",
            "linear_nine",
            "random_forest_nine",
            "boosting_nine",
            "two_stage_nine",
        ] {
            assert_eq!(row(&out, heading, model).len(), 7, "{model}");
        }
    }
    // scikit-learn's numbers on the same split (../shared/README.md): the same least squares, the same
    // naive rule.
    let linear = row(&out, "test (customer_id mod 5 = 4)", "linear_nine");
    assert_eq!((linear[0], linear[1]), (4033.0, 1106.0), "{out}");
    let naive = row(&out, "test (customer_id mod 5 = 4)", "naive");
    assert_eq!((naive[0], naive[1]), (2899.0, 862.0), "{out}");
}

#[test]
fn on_the_real_data_bg_nbd_reproduces_the_lifetimes_reference() {
    let csv = real_csv();
    let models = tempfile::tempdir().unwrap();
    let out = clv(&[
        "train",
        "--input",
        csv.to_str().unwrap(),
        "--models-dir",
        models.path().to_str().unwrap(),
    ]);
    // BG/NBD + Gamma-Gamma fitted at 2011-06-01, per-day purchases, as measured with lifetimes:
    // RMSE 2557, MAE 575, R² 0.74, Spearman 0.62, Gini 0.86, top decile 0.634, total 0.86.
    let m = row(&out, "test fold", "bgnbd_gg");
    let reference = [2557.0, 575.0, 0.74, 0.62, 0.86, 0.634, 0.86];
    let tolerance = [15.0, 3.0, 0.01, 0.01, 0.01, 0.005, 0.01];
    for ((actual, expected), tol) in m.iter().zip(reference).zip(tolerance) {
        assert!(
            (actual - expected).abs() <= tol,
            "{m:?} vs {reference:?}\n{out}"
        );
    }
    // Every candidate is scored on both folds.
    for heading in ["validation fold", "test fold"] {
        for model in [
            "naive",
            "naive_scaled",
            "bgnbd_gg",
            "bgnbd_gg_scaled",
            "bgnbd_gg_seasonal",
            "linear_nine",
            "random_forest_nine",
            "boosting_nine",
            "two_stage_nine",
            "linear_all",
            "random_forest_all",
            "boosting_all",
            "two_stage_all",
        ] {
            let metrics = row(&out, heading, model);
            assert!(
                metrics.iter().all(|v| v.is_finite()),
                "{model}: {metrics:?}"
            );
        }
    }
    assert!(out.contains("champion (lowest validation MAE"), "{out}");
    // The seasonal index (the label window's months a year before) brings the total within 10%.
    let seasonal = row(&out, "test fold", "bgnbd_gg_seasonal");
    assert!((0.9..=1.1).contains(&seasonal[6]), "{seasonal:?}");
}

/// Two runs on the same generated data: the second version does not beat the first, so production
/// stays; `clv models promote` and `rollback` move the pointer; each version holds its models.
#[test]
fn train_registers_versions_and_promotes_only_a_better_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    let models = dir.path().join("models");
    clv(&[
        "data",
        "generate",
        "--customers",
        "300",
        "--seed",
        "3",
        "--out",
        data.to_str().unwrap(),
    ]);
    let train = || {
        clv(&[
            "train",
            "--input",
            data.to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
        ])
    };
    let first = train();
    assert!(
        first.contains("registered v0001") && first.contains("made it production"),
        "{first}"
    );
    let second = train();
    assert!(
        second.contains("registered v0002; production stays v0001"),
        "{second}"
    );
    for file in [
        "model.json",
        "model_nine.json",
        "metadata.json",
        "report.md",
    ] {
        assert!(models.join("v0002").join(file).is_file(), "{file}");
    }
    let models_dir = models.to_str().unwrap();
    clv(&["models", "promote", "v0002", "--models-dir", models_dir]);
    assert!(clv(&["models", "list", "--models-dir", models_dir]).contains("* v0002"));
    let back = clv(&["models", "rollback", "--models-dir", models_dir]);
    assert!(back.contains("v0001 is production again"), "{back}");
    let listed = clv(&["models", "list", "--models-dir", models_dir]);
    assert!(
        listed.contains("* v0001") && listed.contains("  v0002"),
        "{listed}"
    );
}
