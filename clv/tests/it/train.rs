//! `clv train` on the seed's modeling table and on the real data: every candidate is scored on both
//! folds, and the probabilistic model reproduces the reference measured with lifetimes.

use crate::common::*;

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
            "linear_all_ridge0.01",
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
    // The seasonal index (the label window's months a year before) brings the total within 10%.
    let seasonal = row(&out, "test fold", "bgnbd_gg_seasonal");
    assert!((0.9..=1.1).contains(&seasonal[6]), "{seasonal:?}");

    // The champion the procedure chose on the data before 2011-06-01 (its test), beats every
    // reference row of ../shared/README.md on every column of the test fold (the best of each:
    // BG/NBD's, but for MAE).
    let champion = out
        .split("test fold: the procedure on the data before 2011-06-01")
        .nth(1)
        .and_then(|rest| rest.split("champion ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no tested champion in\n{out}"));
    let m = row(&out, "test fold", champion);
    let [rmse, mae, r2, spearman, gini, top_decile, total] = m[..] else {
        panic!("{m:?}")
    };
    assert!(
        rmse < 2557.0 && mae < 575.0 && r2 > 0.74,
        "{champion}: {m:?}"
    );
    assert!(
        spearman > 0.62 && gini > 0.86 && top_decile > 0.634,
        "{champion}: {m:?}"
    );
    assert!((0.9..=1.1).contains(&total), "{champion}: {m:?}");

    // BG/NBD and Gamma-Gamma fitted at the cutoff as lifetimes fits them (r 0.68, α 66.1, a 0.157,
    // b 3.32; p 2.37, q 3.50, v 431).
    let loaded = dataset::normalised::load(&csv, &indicatif::ProgressBar::hidden()).unwrap();
    let histories =
        trainer::training::Histories::from_lines(polars::prelude::IntoLazy::lazy(loaded.frame))
            .unwrap();
    let at_cutoff = trainer::training::fit_inputs(
        &histories,
        &contract::SnapshotSpec {
            cutoff: "2011-06-01".parse().unwrap(),
            horizon_months: 6,
        },
        &trainer::training::Sample::default(),
    )
    .unwrap();
    for (value, expected) in [
        (at_cutoff.bgnbd.r, 0.68),
        (at_cutoff.bgnbd.alpha, 66.1),
        (at_cutoff.bgnbd.a, 0.157),
        (at_cutoff.bgnbd.b, 3.32),
        (at_cutoff.gamma_gamma.p, 2.37),
        (at_cutoff.gamma_gamma.q, 3.50),
        (at_cutoff.gamma_gamma.v, 431.0),
    ] {
        assert!(
            (value / expected - 1.0).abs() < 0.05,
            "{value} vs {expected}"
        );
    }
    // The registered version serves inputs fitted on all its data, at its end (2011-12-10), not at
    // its production cutoff; the report has its four plots.
    let version = models.path().join("v0001");
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("model.json")).unwrap()).unwrap();
    assert_eq!(
        model["inputs"]["fitted_at"], "2011-12-10",
        "{}",
        model["inputs"]
    );
    assert_ne!(
        model["inputs"]["bgnbd"]["a"].as_f64(),
        Some(at_cutoff.bgnbd.a),
        "{}",
        model["inputs"]
    );
    let html = std::fs::read_to_string(version.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "{html}");
    assert!(html.contains("Cumulative gains") && html.contains("feature importance"));
    let production = out
        .lines()
        .filter(|l| l.starts_with("champion (lowest mean validation MAE"))
        .find_map(|l| l.split_once("): ").map(|(_, model)| model))
        .unwrap_or_else(|| panic!("no champion in\n{out}"));
    assert!(html.contains(&format!("<tr class=\"champion\"><td>{production}</td>")));
}

/// The model that is tested is the model that is served: `clv train` on the data cut at C (at that
/// data's edge) and `clv score --as-of C` give every customer exactly the prediction the backtest at
/// C on the whole data scored; the version's BG/NBD inputs are fitted at the end of its data.
#[test]
fn a_version_trained_on_the_data_cut_at_c_and_served_at_c_is_the_backtest_at_c() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 400, 11);
    let cut: chrono::NaiveDate = "2011-04-01".parse().unwrap();
    let loaded = dataset::normalised::load(&data, &indicatif::ProgressBar::hidden()).unwrap();
    let mut before = loaded
        .frame
        .clone()
        .lazy()
        .filter(
            col(dataset::normalised::columns::INVOICE_DATE)
                .lt(lit(cut.and_hms_opt(0, 0, 0).unwrap())),
        )
        .collect()
        .unwrap();
    assert!(before.height() < loaded.frame.height());
    let cut_file = dir.path().join("before.parquet");
    dataset::normalised::write_parquet(&mut before, &cut_file).unwrap();
    let models = dir.path().join("models");
    let (cut_file, models_dir) = (cut_file.to_str().unwrap(), models.to_str().unwrap());
    let as_of = cut.to_string();
    clv(&[
        "train",
        "--input",
        cut_file,
        "--as-of",
        &as_of,
        "--backtests",
        "0",
        "--models-dir",
        models_dir,
    ]);
    let scores = dir.path().join("scores.parquet");
    clv(&[
        "score",
        "--input",
        cut_file,
        "--as-of",
        &as_of,
        "--models-dir",
        models_dir,
        "--out",
        scores.to_str().unwrap(),
    ]);
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("v0001/metadata.json")).unwrap())
            .unwrap();
    assert_eq!(metadata["data_end"], as_of.as_str());
    for file in ["model.json", "model_nine.json"] {
        let model: serde_json::Value =
            serde_json::from_slice(&std::fs::read(models.join("v0001").join(file)).unwrap())
                .unwrap();
        assert_eq!(
            model["inputs"]["fitted_at"], metadata["data_end"],
            "{file}: its inputs must know all the data it was trained from"
        );
    }

    // The backtest at C on the whole data, in process.
    let histories = trainer::training::Histories::from_lines(loaded.frame.lazy()).unwrap();
    let run = trainer::pipeline::run(
        &histories,
        &trainer::pipeline::Request {
            backtest_cutoffs: vec![cut],
            ..trainer::pipeline::Request::at_the_edge()
        },
    )
    .unwrap();
    let tested = run.backtests.iter().find(|b| b.cutoff == cut).unwrap();
    assert_eq!(metadata["model"], tested.champion());
    let expected = tested.predictions.of(tested.champion()).unwrap();
    let served = read_parquet(&scores);
    let ids = served
        .column("customer_id")
        .unwrap()
        .cast(&DataType::UInt64)
        .unwrap();
    let clv_6m = served.column("clv_6m").unwrap().f64().unwrap().clone();
    assert_eq!(served.height(), tested.customer_ids.len());
    for (id, predicted) in ids.u64().unwrap().iter().zip(clv_6m.iter()) {
        let (id, predicted) = (id.unwrap(), predicted.unwrap());
        let at = tested.customer_ids.iter().position(|c| *c == id).unwrap();
        // The scorer answers in pence.
        let pence = (expected[at] * 100.0).round() / 100.0;
        assert!(
            (predicted - pence).abs() <= 1e-6,
            "customer {id}: served {predicted}, tested {}",
            expected[at]
        );
    }
}

/// Two runs on the same generated data: the second version does not beat the first, so production
/// stays; `clv models promote` and `rollback` move the pointer; each version holds its models.
#[test]
fn train_registers_versions_and_promotes_only_a_better_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 300, 3);
    let models = dir.path().join("models");
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
        "report.html",
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

/// A real `mlflow server` (from PyPI; `scripts/setup.sh` installs it): `clv train` with
/// `MLFLOW_TRACKING_URI` logs the run's parameters, every score, and the version's files.
#[test]
fn train_logs_the_run_to_a_real_mlflow_server() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 300, 4);
    let mlflow = std::env::var_os("CLV_MLFLOW")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/var/cache/clv-tools/mlflow/bin/mlflow".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = dir.path().join("mlflow");
    std::fs::create_dir_all(&store).unwrap();
    // Its own process group, so that the server and its workers stop together.
    let server = Command::new(&mlflow)
        .args([
            "server",
            "--backend-store-uri",
            &format!("sqlite:///{}/mlflow.db", store.display()),
            "--artifacts-destination",
            store.join("artifacts").to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} starts ({e}); scripts/setup.sh installs it",
                mlflow.display()
            )
        });
    struct Group(std::process::Child);
    impl Drop for Group {
        #[allow(unsafe_code)]
        fn drop(&mut self) {
            let pgid = self.0.id() as i32;
            // SIGTERM to the server's process group (its pid: it leads the group), never to a group
            // id ≤ 1. (Debian's procps-ng 4.0.2 `kill -TERM -<pgid>` signalled far more than the
            // group here, so no external `kill`.)
            if pgid > 1 {
                // SAFETY: kill(2) with a negative pid signals exactly that process group.
                unsafe {
                    libc::kill(-pgid, libc::SIGTERM);
                }
            }
            let _ = self.0.wait();
        }
    }
    let _server = Group(server);
    let uri = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while ureq::get(&format!("{uri}/health")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "mlflow did not start"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let models = dir.path().join("models");
    let output = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args([
            "train",
            "--input",
            data.to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
        ])
        .env("MLFLOW_TRACKING_URI", &uri)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("logged v0001 to MLflow"), "{out}");

    let runs: serde_json::Value = ureq::post(&format!("{uri}/api/2.0/mlflow/runs/search"))
        .send_json(serde_json::json!({"experiment_ids": ["1"]}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let run = &runs["runs"][0];
    assert_eq!(run["info"]["status"], "FINISHED", "{run}");
    let params = run["data"]["params"].as_array().unwrap();
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("v0001/metadata.json")).unwrap())
            .unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["key"] == "model" && p["value"] == metadata["model"]),
        "{params:?}"
    );
    let champion = metadata["model"].as_str().unwrap();
    let test_mae = metadata["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["model"] == champion && s["fold"] == "test")
        .unwrap()["metrics"]["mae"]
        .as_f64()
        .unwrap();
    let logged = run["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "test.mae")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((logged - test_mae).abs() < 1e-9, "{logged} vs {test_mae}");
    let run_id = run["info"]["run_id"].as_str().unwrap();
    let artifacts: serde_json::Value = ureq::get(&format!(
        "{uri}/api/2.0/mlflow/artifacts/list?run_id={run_id}"
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_json()
    .unwrap();
    let mut files: Vec<&str> = artifacts["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "metadata.json",
            "model.json",
            "model_nine.json",
            "report.html",
            "report.md"
        ]
    );
}

/// Without `--cutoff`, `clv train` trains at the edge of whatever data it has, of any dates and
/// horizons: the latest cutoff whose label window the data holds, folds inside the history that
/// exists (a customer split when it is too short for a validation fold before the test fold), a
/// clear error when there is not enough history, and a cutoff past the data refused.
#[test]
fn train_at_the_edge_of_data_of_other_dates_and_horizons() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let models = models.to_str().unwrap();
    let data = generate_between(dir.path(), "2015", "2015-03-02", "2016-05-20");
    let out = clv(&[
        "train",
        "--input",
        &data,
        "--horizon-months",
        "3",
        "--models-dir",
        models,
    ]);
    assert!(
        out.contains("production cutoff 2016-02-01 (the edge of the data)")
            && out.contains("evaluate at 2015-12-01")
            && out.contains("registered v0001"),
        "{out}"
    );
    let metadata: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("models/v0001/metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["cutoff"], "2016-02-01");
    assert_eq!(metadata["horizon_months"], 3);
    // The segments' value tiers, fixed with the version.
    let tiers = &metadata["value_tiers"];
    assert!(
        tiers["high_from"].as_f64().unwrap() >= tiers["medium_from"].as_f64().unwrap(),
        "{tiers}"
    );

    let past = clv_output(&[
        "train",
        "--input",
        &data,
        "--horizon-months",
        "3",
        "--cutoff",
        "2016-03-01",
        "--models-dir",
        models,
    ]);
    let said = String::from_utf8_lossy(&past.stderr);
    assert!(
        !past.status.success() && said.contains("2016-02-01"),
        "{said}"
    );

    // Eighteen months and 6-month labels: no room for a validation fold before the test fold.
    let short = generate_between(dir.path(), "short", "2015-01-01", "2016-06-30");
    let out = clv(&["train", "--input", &short, "--models-dir", models]);
    assert!(
        out.contains("production cutoff 2016-01-01") && out.contains("split by a hash"),
        "{out}"
    );
    // Ten months: not enough for 6-month labels, and it says how much is.
    let shorter = generate_between(dir.path(), "shorter", "2015-03-02", "2016-01-15");
    let failed = clv_output(&["train", "--input", &shorter, "--models-dir", models]);
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success()
            && said.contains("not enough history")
            && said.contains("13 months"),
        "{said}"
    );
    assert_eq!(
        clv(&["models", "list", "--models-dir", models])
            .lines()
            .filter(|l| l.contains("v000"))
            .count(),
        2,
        "only the two versions that trained are registered"
    );
}
