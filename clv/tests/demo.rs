//! `clv demo`: the whole system in one process on a small generated dataset; the scorer's answers
//! for several customers and the top list equal the registered model applied to the offline
//! snapshot; it stays live (a transaction sent with the command it prints changes that customer's
//! answer, and no one else's); SIGTERM stops it; a second run reuses what is done; without data it
//! says how to get it.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
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

/// Collects a running command's stdout on a thread, so that a test can read it while it runs.
fn collect_stdout(child: &mut Running) -> Arc<Mutex<String>> {
    let out = Arc::new(Mutex::new(String::new()));
    let stdout = child.0.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    out
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
    let output = collect_stdout(&mut demo);
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

    let _ = sigterm(&mut demo);
    std::thread::sleep(Duration::from_millis(200));
    let out = output.lock().unwrap().clone();
    for needle in [
        "top 10 customers",
        "curl http://",
        "report:",
        "live:",
        "stopped",
    ] {
        assert!(out.contains(needle), "{needle} missing from\n{out}");
    }
    assert!(
        demo_dir
            .join("models")
            .join(&version)
            .join("report.html")
            .is_file()
    );

    // Again: the store and the model are reused, and it is live.
    let mut demo = spawn(&args);
    let output = collect_stdout(&mut demo);
    wait_ready(&addr, Duration::from_secs(60));
    {
        let out = output.lock().unwrap();
        assert!(out.contains("was streamed before"), "{out}");
        assert!(out.contains("skipping training"), "{out}");
    }

    // Live: the printed command produces a purchase; the scorer shows it within a few seconds, for
    // that customer only.
    wait_for("the live hint", Duration::from_secs(10), || {
        output.lock().unwrap().contains(" send --brokers ")
    });
    let hint = output
        .lock()
        .unwrap()
        .lines()
        .find(|l| l.contains(" send --brokers "))
        .unwrap()
        .to_string();
    let words: Vec<&str> = hint.split_whitespace().collect();
    let at = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
    let (id, brokers, date) = (at("--customer"), at("--brokers"), at("--date"));
    let other = top["customers"][1]["customer_id"].to_string();
    assert_ne!(other, id);
    let before = get(&format!("/customers/{id}/clv"));
    let other_before = get(&format!("/customers/{other}/clv"));
    let sent = clv(&[
        "send",
        "--brokers",
        brokers,
        "--customer",
        id,
        "--price",
        "250",
        "--date",
        date,
    ]);
    assert!(sent.contains("sent send:"), "{sent}");
    let mut after = Value::Null;
    wait_for(
        "the sent purchase to be scored",
        Duration::from_secs(15),
        || {
            after = get(&format!("/customers/{id}/clv"));
            after["features"]["frequency"] != before["features"]["frequency"]
        },
    );
    assert_eq!(
        after["features"]["frequency"].as_i64().unwrap(),
        before["features"]["frequency"].as_i64().unwrap() + 1
    );
    let revenue = |v: &Value| v["features"]["total_revenue"].as_f64().unwrap();
    assert!(
        (revenue(&after) - revenue(&before) - 250.0).abs() < 1e-6,
        "{after}"
    );
    assert_ne!(after["clv_6m"], before["clv_6m"], "{after}");
    assert_eq!(after["as_of"], before["as_of"]);
    assert_eq!(get(&format!("/customers/{other}/clv")), other_before);

    let _ = sigterm(&mut demo);
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
