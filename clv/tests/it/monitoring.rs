//! The monitoring configuration proven against the real services and a real Prometheus (Debian's
//! package; Grafana is not installable here): promtool checks and rule unit tests; then ingest and the
//! scorer run on the embedded broker with data replayed, a dead letter, a 404 and a 400 caused, a
//! `prometheus` scrapes both, and every panel query of every dashboard (Grafana's variables
//! substituted) must return data, every alert expression must evaluate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::stack::*;
use serde_json::Value;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} is missing: apt-get install prometheus (scripts/setup.sh does)"
    );
    path
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(monitoring())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_config_and_the_alert_rules_pass_their_unit_tests() {
    promtool(&["check", "config", "prometheus.yml"]);
    let rules = promtool(&["check", "rules", "alerts.yml"]);
    assert!(rules.contains("SUCCESS: 16 rules found"), "{rules}");
    promtool(&["test", "rules", "alerts.test.yml"]);
}

/// Every panel query of the dashboards, with its panel's title.
fn panel_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = monitoring().join("grafana/dashboards");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                out.push((
                    panel["title"].as_str().unwrap().to_string(),
                    target["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert!(out.len() >= 12, "{out:?}");
    out
}

/// Grafana's variables as a dashboard would set them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__interval", "5s")
        .replace("$route", ".*")
}

fn query(agent: &ureq::Agent, prometheus: &str, expr: &str) -> Value {
    let mut response = agent
        .get(&format!("{prometheus}/api/v1/query"))
        .query("query", expr)
        .call()
        .unwrap();
    let body: Value = response.body_mut().read_json().unwrap();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body
}

fn alert_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring().join("alerts.yml")).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(alert) = line.strip_prefix("- alert: ") {
            name = alert.to_string();
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            out.push((name.clone(), expr.to_string()));
        }
    }
    assert_eq!(out.len(), 16, "{out:?}");
    out
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let stack = Stack::start(150, 13, 2);
    let models = stack.train();
    let (mut ingest, ingest_metrics) = stack.spawn_ingest();
    stack.replay();
    // Malformed messages during the scrapes: dead-lettered, so the dead-letter panel has a series that
    // moves, and ingest keeps applying batches.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", stack.bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let dead_letter = || {
        producer
            .send(
                BaseRecord::to("transactions")
                    .key("12346")
                    .payload("{not json"),
            )
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    };

    let scorer = format!("127.0.0.1:{}", free_port());
    let mut serve = spawn(&[
        "serve",
        "--db",
        &stack.path("featurestore"),
        "--models-dir",
        &models,
        "--listen",
        &scorer,
    ]);
    // The scheduled retraining on the same store and registry (the data it was trained on: its
    // runs find nothing new).
    let retrain_metrics = format!("127.0.0.1:{}", free_port());
    let mut retrain = spawn_drained(&[
        "train",
        "--db",
        &stack.path("featurestore"),
        "--models-dir",
        &models,
        "--every",
        "1s",
        "--metrics-addr",
        &retrain_metrics,
    ]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_for("the scorer ready", Duration::from_secs(60), || {
        agent
            .get(&format!("http://{scorer}/ready"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });

    // Prometheus with the repository's config, the targets and interval made local.
    let dir = stack.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(monitoring().join("prometheus.yml"))
        .unwrap()
        .replace("history:9464", &ingest_metrics)
        // The instances' DNS discovery, as the one scorer's static target.
        .replace(
            "dns_sd_configs:\n      - names: [\"ingest\"]\n        type: A\n        port: 8080",
            &format!("static_configs:\n      - targets: [\"{scorer}\"]"),
        )
        .replace("retrain:9465", &retrain_metrics)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace(
            "  - alerts.yml",
            &format!("  - {}", monitoring().join("alerts.yml").display()),
        );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let prometheus = format!("http://127.0.0.1:{port}");
    let _prometheus = Running(
        Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Traffic of every kind the panels count: answers, a 404, a 400.
    let ids: Vec<String> = {
        let mut r = agent
            .get(&format!("http://{scorer}/customers/top.csv?k=50"))
            .call()
            .unwrap();
        r.body_mut()
            .read_to_string()
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    let traffic = |rounds: usize| {
        for _ in 0..rounds {
            dead_letter();
            for id in &ids {
                let r = agent
                    .get(&format!("http://{scorer}/customers/{id}/clv"))
                    .call()
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
            assert_eq!(
                agent
                    .get(&format!("http://{scorer}/customers/999999999/clv"))
                    .call()
                    .unwrap()
                    .status(),
                404
            );
            assert_eq!(
                agent
                    .get(&format!("http://{scorer}/customers/abc/clv"))
                    .call()
                    .unwrap()
                    .status(),
                400
            );
        }
    };
    traffic(1);

    // Two scrapes of every target at least, with traffic between them.
    wait_for(
        "two scrapes of every target",
        Duration::from_secs(60),
        || {
            traffic(1);
            agent
                .get(&format!("{prometheus}/api/v1/query"))
                .query(
                    "query",
                    "count_over_time(up{job=~\"clv-.*\"}[1m]) >= 3 and up == 1",
                )
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|b| b["data"]["result"].as_array().is_some_and(|r| r.len() == 3))
        },
    );
    traffic(3);
    std::thread::sleep(Duration::from_secs(3));

    let mut empty = Vec::new();
    for (title, expr) in panel_queries() {
        let expr = substitute(&expr);
        let body = query(&agent, &prometheus, &expr);
        // Data: at least one series with a number (a quantile over no observations is NaN).
        let has_data = body["data"]["result"].as_array().is_some_and(|r| {
            r.iter().any(|series| {
                series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            })
        });
        if !has_data {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    // The error panels saw what was caused.
    let dead = query(
        &agent,
        &prometheus,
        "sum(clv_ingest_events_total{outcome=\"dead_lettered\"})",
    );
    let dead: f64 = dead["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(dead >= 1.0, "{dead}");
    for status in ["404", "400"] {
        let body = query(
            &agent,
            &prometheus,
            &format!(
                "clv_http_requests_total{{route=\"/customers/{{id}}/clv\",status=\"{status}\"}} > 0"
            ),
        );
        assert!(
            body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{status}: {body}"
        );
    }
    // Drift: every feature's PSI and the prediction's, scraped.
    let drift = query(&agent, &prometheus, "clv_scorer_feature_drift_psi >= 0");
    assert_eq!(
        drift["data"]["result"].as_array().map(Vec::len),
        Some(contract::Feature::ALL.len()),
        "{drift}"
    );
    // The retraining ran on the data production was trained on, and said so.
    let unchanged = query(
        &agent,
        &prometheus,
        "clv_retrain_runs_total{outcome=\"unchanged\"} > 0 and on() clv_retrain_last_run_failed == 0",
    );
    assert_eq!(
        unchanged["data"]["result"].as_array().map(Vec::len),
        Some(1),
        "{unchanged}"
    );
    for (_alert, expr) in alert_expressions() {
        query(&agent, &prometheus, &expr);
    }
    // Prometheus loaded the rules itself.
    let mut rules = agent
        .get(&format!("{prometheus}/api/v1/rules"))
        .call()
        .unwrap();
    let rules: Value = rules.body_mut().read_json().unwrap();
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(loaded, 16, "{rules}");
    for rule in rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    retrain.sigterm();
    sigterm(&mut serve);
    sigterm(&mut ingest);
}

/// The compose file follows the Compose Specification closely enough for Debian's docker-compose
/// 1.29 to parse it, names every service of the stack (`ingest` as scalable instances), and mounts
/// files that exist. It is not run: there is no container engine here; the commands its services
/// run are the ones the other tests run as processes.
#[test]
fn the_compose_file_parses_names_every_service_and_mounts_files_that_exist() {
    let root = monitoring().join("..");
    let compose = |args: &[&str]| {
        let out = Command::new(tool("docker-compose"))
            .args(["-f", "docker-compose.yml"])
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    compose(&["config", "-q"]);
    let mut services: Vec<String> = compose(&["config", "--services"])
        .lines()
        .map(String::from)
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            "grafana",
            "history",
            "ingest",
            "kafka",
            "kafka-init",
            "prometheus",
            "replay",
            "retrain",
        ]
    );
    // `ingest` scales (`--scale ingest=3`): a store per replica, a port range, no fixed name.
    let config = compose(&["config"]);
    assert!(
        config.contains("clv instance") && config.contains("/data/instances/$$HOSTNAME"),
        "{config}"
    );
    assert!(config.contains("8080-8089"), "{config}");
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("version:")));
    for mounted in text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./"))
        .map(|l| l.split(':').next().unwrap())
    {
        assert!(
            root.join(mounted).exists(),
            "{mounted} is mounted but missing"
        );
    }
}
