//! `clv demo`: the whole system in one process on a small generated dataset; the scorer's answers
//! for several customers and the top list equal the registered model applied to the offline
//! snapshot; SIGTERM stops it; a second run reuses what is done; without data it says how to get it.

mod common;

use std::time::Duration;

use common::stack::*;
use common::*;
use serde_json::Value;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `path` of the demo's scorer: 200 and its JSON.
fn get_json(addr: &str, path: &str) -> Value {
    let mut r = agent().get(&format!("http://{addr}{path}")).call().unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.body_mut().read_json().unwrap()
}

fn wait_ready(addr: &str, timeout: Duration) {
    let agent = agent();
    wait_for("the demo's scorer", timeout, || {
        agent
            .get(&format!("http://{addr}/ready"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });
}

#[test]
fn the_demo_serves_the_registered_model_and_a_second_run_skips_what_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let addr = format!("127.0.0.1:{}", free_port());
    let args = [
        "demo",
        "--synthetic",
        "--synthetic-customers",
        "300",
        "--dir",
        demo_dir.to_str().unwrap(),
        "--listen",
        &addr,
    ];
    let mut demo = spawn(&args);
    let get = |path: &str| get_json(&addr, path);
    wait_ready(&addr, Duration::from_secs(240));
    let ready = get("/ready");
    let version = ready["model"]["version"].as_str().unwrap().to_string();
    let as_of =
        chrono::NaiveDate::parse_from_str(ready["as_of"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let expected = expected_clv(
        &demo_dir.join("synthetic.csv"),
        &demo_dir.join("models"),
        &version,
        as_of,
    );
    assert_eq!(ready["customers"], expected.len());
    for (id, clv) in expected.iter().step_by(expected.len() / 8) {
        let body = get(&format!("/customers/{id}/clv"));
        let served = body["clv_6m"].as_f64().unwrap();
        assert!((served - clv).abs() <= 0.006, "{id}: {served} vs {clv}");
    }
    let mut ranked = expected.clone();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top = get("/customers/top?k=10");
    for (row, (_, clv)) in top["customers"].as_array().unwrap().iter().zip(&ranked) {
        assert!(
            (row["clv_6m"].as_f64().unwrap() - clv).abs() <= 0.006,
            "{row}"
        );
    }
    let out = sigterm(&mut demo);
    for needle in ["top 10 customers", "curl http://", "report:", "stopped"] {
        assert!(out.contains(needle), "{needle} missing from\n{out}");
    }
    assert!(
        demo_dir
            .join("models")
            .join(&version)
            .join("report.html")
            .is_file()
    );

    // Again: the store and the model are reused.
    let mut again: Vec<&str> = args.to_vec();
    again.push("--exit-when-ready");
    let out = clv(&again);
    assert!(out.contains("was streamed before"), "{out}");
    assert!(out.contains("skipping training"), "{out}");
}

#[test]
fn without_data_the_demo_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["demo", "--dir", "demo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clv data download") && err.contains("--synthetic"),
        "{err}"
    );
}

/// The demo on the real data (from ../shared/data): it answers for real customer IDs, as the
/// registered model applied to the offline snapshot says.
#[test]
fn the_demo_on_the_real_data_answers_for_real_customers() {
    let csv = real_csv();
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut demo = spawn(&[
        "demo",
        "--data",
        csv.to_str().unwrap(),
        "--dir",
        demo_dir.to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    let get = |path: &str| get_json(&addr, path);
    wait_ready(&addr, Duration::from_secs(600));
    let ready = get("/ready");
    // Every customer with a purchase before 2011-12-10 (FEATURES.md counts).
    assert_eq!(ready["customers"], 5878, "{ready}");
    assert_eq!(ready["as_of"], "2011-12-10");
    let version = ready["model"]["version"].as_str().unwrap().to_string();
    let expected = expected_clv(
        &csv,
        &demo_dir.join("models"),
        &version,
        chrono::NaiveDate::from_ymd_opt(2011, 12, 10).unwrap(),
    );
    for id in [12346u64, 12347, 14646, 17850, 18102] {
        let body = get(&format!("/customers/{id}/clv"));
        let want = expected.iter().find(|(c, _)| *c == id).unwrap().1;
        let served = body["clv_6m"].as_f64().unwrap();
        assert!((served - want).abs() <= 0.006, "{id}: {served} vs {want}");
    }
    let top = get("/customers/top?k=3");
    assert_eq!(top["customers"].as_array().unwrap().len(), 3);
    let out = sigterm(&mut demo);
    assert!(out.contains("curl http://"), "{out}");
}
