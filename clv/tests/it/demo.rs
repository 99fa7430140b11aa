//! `clv demo`: the whole system in one process on a small generated dataset; the scorer's answers
//! for several customers and the top list equal the registered model applied to the offline
//! snapshot; it stays live (a transaction sent with the command it prints changes that customer's
//! answer, and no one else's); SIGTERM stops it; a second run reuses what is done; without data it
//! says how to get it.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::stack::*;
use crate::common::*;
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
/// registered model applied to the offline snapshot says; then a third-party producer sends it a
/// hostile corpus (FEATURES.md "Bounds"), and nothing any real customer sees changes.
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
    let output = collect_stdout(&mut demo);
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
    browse(
        &addr,
        &top["customers"][0]["customer_id"].to_string(),
        &top["customers"][2]["customer_id"].to_string(),
    );

    wait_for("the live hint", Duration::from_secs(10), || {
        output.lock().unwrap().contains(" send --brokers ")
    });
    let brokers = {
        let out = output.lock().unwrap();
        let hint = out
            .lines()
            .find(|l| l.contains(" send --brokers "))
            .unwrap();
        let words: Vec<&str> = hint.split_whitespace().collect();
        words[words.iter().position(|w| *w == "--brokers").unwrap() + 1].to_string()
    };
    hostile::corpus_changes_nothing(&addr, &brokers, &csv);

    let _ = sigterm(&mut demo);
    assert!(output.lock().unwrap().contains("curl http://"));
}

/// The web page in a real browser (Debian's chromium, driven by playwright-core:
/// `tests/browser/page.cjs`): the top customer listed, a search opening a customer, the at-risk
/// list, no console errors, accessibility basics; screenshots kept in the target folder
/// (`browser-screenshots/`).
fn browse(addr: &str, top: &str, search: &str) {
    let tools = std::env::var("CLV_TOOLS_DIR").unwrap_or_else(|_| "/var/cache/clv-tools".into());
    let playwright = std::env::var("CLV_PLAYWRIGHT")
        .unwrap_or_else(|_| format!("{tools}/browser/node_modules/playwright-core"));
    assert!(
        std::path::Path::new(&playwright).exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "playwright-core ({playwright}) or chromium is missing: scripts/setup.sh installs them"
    );
    // The target folder: CI keeps what is there.
    let shots = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("node")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page.cjs"))
        .args([
            &format!("http://{addr}"),
            top,
            search,
            shots.to_str().unwrap(),
        ])
        .env("CLV_PLAYWRIGHT", &playwright)
        .output()
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim() == "ok",
        "the browser test: {said}"
    );
    for shot in [
        "overview.png",
        "customers.png",
        "customer.png",
        "at-risk.png",
    ] {
        assert!(
            shots.join(shot).metadata().unwrap().len() > 10_000,
            "{shot}"
        );
    }
}

/// A hostile corpus against a live stack (issue 13): what a careless or malicious producer sends.
mod hostile {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use contract::event::Rejection;
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use serde_json::{Value, json};

    use super::*;

    /// One message: key, value (either may be missing) and the dead-letter kind it must get (or
    /// `None`: applied as a new event; `Some("duplicate")`: read again, changes nothing).
    struct Sent {
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        expect: &'static str,
    }

    fn event(id: &str, customer: u64, date: &str) -> Value {
        json!({
            "schema_version": 1, "event_id": id, "customer_id": customer, "invoice": "990001",
            "stock_code": "HOSTILE", "quantity": 1, "invoice_date": date, "price": 10.0,
            "country": "Nowhere"
        })
    }

    fn keyed(customer: u64, value: Vec<u8>, expect: &'static str) -> Sent {
        Sent {
            key: Some(customer.to_string().into_bytes()),
            value: Some(value),
            expect,
        }
    }

    /// The corpus: out-of-bounds events on real customers and on their own, malformed messages of
    /// every kind (more than 10,000), redeliveries of real and new events, and good new customers,
    /// one of them dated (validly) years after the rest of the data.
    fn corpus(real: &[(u64, Vec<u8>)]) -> Vec<Sent> {
        let mut sent = Vec::new();
        let real_customers = [12346u64, 14646, 17850, 18102];
        // Out of bounds, each kind on a real customer and on a customer of its own.
        let mut n = 0;
        let mut bounded = |sent: &mut Vec<Sent>, edit: &dyn Fn(&mut Value)| {
            for customer in real_customers.iter().copied().chain([9_200_000_000 + n]) {
                n += 1;
                let mut e = event(
                    &format!("hostile:oob:{n}"),
                    customer,
                    "2011-12-09T10:00:00Z",
                );
                edit(&mut e);
                let key = e["customer_id"].to_string();
                sent.push(Sent {
                    key: Some(key.into_bytes()),
                    value: Some(e.to_string().into_bytes()),
                    expect: "out_of_bounds",
                });
            }
        };
        bounded(&mut sent, &|e| {
            e["invoice_date"] = "2099-01-01T00:00:00Z".into()
        });
        bounded(&mut sent, &|e| {
            e["invoice_date"] = "1900-01-01T00:00:00Z".into()
        });
        bounded(&mut sent, &|e| {
            e["invoice_date"] = "1989-12-31T23:59:59Z".into()
        });
        bounded(&mut sent, &|e| {
            e["quantity"] = 10_000_000.into();
            e["price"] = 1e12.into();
        });
        bounded(&mut sent, &|e| e["quantity"] = (1i64 << 62).into());
        bounded(&mut sent, &|e| e["quantity"] = (-10_000_001i64).into());
        bounded(&mut sent, &|e| e["price"] = 100_000_000.01.into());
        bounded(&mut sent, &|e| e["invoice"] = "1".repeat(100_000).into());
        bounded(&mut sent, &|e| e["invoice"] = "".into());
        bounded(&mut sent, &|e| e["stock_code"] = "S".repeat(65).into());
        bounded(&mut sent, &|e| e["country"] = "c".repeat(129).into());
        bounded(&mut sent, &|e| e["description"] = "d".repeat(1025).into());
        bounded(&mut sent, &|e| e["event_id"] = "".into());
        bounded(&mut sent, &|e| e["event_id"] = "e".repeat(257).into());
        bounded(&mut sent, &|e| e["customer_id"] = 0.into());
        bounded(&mut sent, &|e| e["customer_id"] = (1u64 << 53).into());
        bounded(&mut sent, &|e| e["customer_id"] = u64::MAX.into());
        // One 900 KB event ID (the size a producer can send by default).
        let mut huge = event("x", 9_200_000_999, "2011-12-09T10:00:00Z");
        huge["event_id"] = "h".repeat(900_000).into();
        sent.push(keyed(
            9_200_000_999,
            huge.to_string().into_bytes(),
            "out_of_bounds",
        ));

        // Malformed, of every kind: 12 kinds × 1,000.
        let good = event("hostile:template", 12346, "2011-12-09T10:00:00Z");
        let text = good.to_string();
        for i in 0..1_000u64 {
            let id = format!("hostile:bad:{i}");
            let with = |field: &str, value: Value| {
                let mut e = good.clone();
                e["event_id"] = id.clone().into();
                e[field] = value;
                e.to_string().into_bytes()
            };
            let without = |field: &str| {
                let mut e = good.clone();
                e.as_object_mut().unwrap().remove(field);
                e.to_string().into_bytes()
            };
            let bytes: Vec<u8> = (0..64).map(|b| ((i * 31 + b * 7) % 256) as u8).collect();
            sent.push(keyed(12346, b"{not json".to_vec(), "malformed"));
            sent.push(keyed(
                12346,
                text.as_bytes()[..text.len() / 2].to_vec(),
                "malformed",
            ));
            sent.push(keyed(12346, without("invoice"), "malformed"));
            sent.push(keyed(12346, with("quantity", "twelve".into()), "malformed"));
            sent.push(keyed(12346, with("quantity", 1.5.into()), "malformed"));
            sent.push(keyed(
                12346,
                with("customer_id", (-12346).into()),
                "malformed",
            ));
            sent.push(keyed(
                12346,
                with("schema_version", 9.into()),
                "unsupported_version",
            ));
            sent.push(keyed(12347, with("event_id", id.clone().into()), "invalid")); // key ≠ customer
            sent.push(keyed(12346, with("event_id", "   ".into()), "invalid"));
            sent.push(keyed(12346, bytes, "malformed"));
            sent.push(Sent {
                key: Some(b"12346".to_vec()),
                value: None,
                expect: "malformed",
            });
            sent.push(Sent {
                key: None,
                value: Some(with("event_id", id.clone().into())),
                expect: "invalid",
            });
        }
        // Deeply nested JSON (a parser's recursion limit), a NaN and 1e999.
        sent.push(keyed(12346, "[".repeat(100_000).into_bytes(), "malformed"));
        sent.push(keyed(
            12346,
            text.replace("10.0", "NaN").into_bytes(),
            "malformed",
        ));
        sent.push(keyed(
            12346,
            text.replace("10.0", "1e999").into_bytes(),
            "malformed",
        ));

        // Redeliveries of real events (already applied by the replay): read again, change nothing.
        for (customer, value) in real {
            sent.push(keyed(*customer, value.clone(), "duplicate"));
        }
        // Good new customers on the data's last day, each sent twice; and one dated validly
        // (within 24 hours of now) years after the rest of the data, which moves no `as_of`.
        for i in 0..20u64 {
            let customer = 9_100_000_000 + i;
            let e = event(
                &format!("hostile:new:{i}"),
                customer,
                "2011-12-09T10:00:00Z",
            );
            sent.push(keyed(customer, e.to_string().into_bytes(), "applied"));
            sent.push(keyed(customer, e.to_string().into_bytes(), "duplicate"));
        }
        let now = chrono::Utc::now() - chrono::Duration::hours(1);
        let future = event("hostile:future", 9_100_000_100, &now.to_rfc3339());
        sent.push(keyed(
            9_100_000_100,
            future.to_string().into_bytes(),
            "applied",
        ));
        sent
    }

    /// `clv_ingest_events_total` by (outcome, class), and the read-again counter, from /metrics.
    fn counters(addr: &str) -> BTreeMap<(String, String), u64> {
        let page = http_get(addr, "/metrics");
        let mut counts = BTreeMap::new();
        for line in page.lines() {
            let value = || line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64;
            if let Some(labels) = line.strip_prefix("clv_ingest_events_total{") {
                let label = |name: &str| {
                    labels
                        .split(&format!("{name}=\""))
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap()
                        .to_string()
                };
                counts.insert((label("outcome"), label("class")), value());
            } else if line.starts_with("clv_ingest_events_read_again_total ") {
                counts.insert(("duplicate".into(), String::new()), value());
            }
        }
        counts
    }

    /// Every scored customer's CLV, exactly as served (JSON numbers, every digit).
    fn everyone(addr: &str) -> BTreeMap<u64, Value> {
        get_json(addr, "/customers/top?k=10000")["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["customer_id"].as_u64().unwrap(), r["clv_6m"].clone()))
            .collect()
    }

    pub fn corpus_changes_nothing(addr: &str, brokers: &str, csv: &Path) {
        let before_ready = get_json(addr, "/ready");
        let before_top = everyone(addr);
        assert_eq!(before_top.len(), 5878);
        let before_counts = counters(addr);
        // 2,000 real events, as the replay sent them.
        let real: Vec<(u64, Vec<u8>)> =
            dataset::normalised::numbered_lines(csv, &indicatif::ProgressBar::hidden())
                .unwrap()
                .iter()
                .filter_map(|(n, line)| ingest::replay::event_for_line(*n, line))
                .step_by(397)
                .take(2_000)
                .map(|e| (e.customer_id, e.encode()))
                .collect();
        assert_eq!(real.len(), 2_000);
        let corpus = corpus(&real);
        let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &corpus {
            *expected.entry(s.expect).or_default() += 1;
        }
        let malformed_like = expected["malformed"] + expected["invalid"];
        assert!(malformed_like >= 10_000, "{expected:?}");

        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            // As every producer must (README, "Partitioner"): redeliveries land where the originals did.
            .set("partitioner", "murmur2_random")
            .set("message.max.bytes", "2000000")
            .create()
            .unwrap();
        for s in &corpus {
            let mut record = BaseRecord::<[u8], [u8]>::to("transactions");
            if let Some(k) = &s.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &s.value {
                record = record.payload(v.as_slice());
            }
            let mut record = record;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        assert!(
                            e.rdkafka_error_code()
                                == Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                            "{e}"
                        );
                        producer.poll(Duration::from_millis(50));
                        record = r;
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).unwrap();

        // Every message is counted once, in the outcome it must have.
        let total = corpus.len() as u64;
        let counted = |c: &BTreeMap<(String, String), u64>| c.values().sum::<u64>();
        let started = Instant::now();
        let mut after_counts = counters(addr);
        while counted(&after_counts) < counted(&before_counts) + total {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{} of {total} counted: {after_counts:?}",
                counted(&after_counts) - counted(&before_counts)
            );
            std::thread::sleep(Duration::from_millis(250));
            after_counts = counters(addr);
        }
        let delta = |outcome: &str, class: &str| {
            let key = (outcome.to_string(), class.to_string());
            after_counts.get(&key).copied().unwrap_or(0)
                - before_counts.get(&key).copied().unwrap_or(0)
        };
        for kind in Rejection::KINDS {
            assert_eq!(
                delta("dead_lettered", kind),
                expected[kind],
                "{kind}: {after_counts:?}"
            );
        }
        assert_eq!(delta("duplicate", ""), expected["duplicate"]);
        assert_eq!(delta("applied", "purchase"), expected["applied"]);
        assert_eq!(
            counted(&after_counts),
            counted(&before_counts) + total,
            "nothing counted twice"
        );

        // Every dead letter is in the dead-letter topic with its kind and a reason.
        let dead: u64 = Rejection::KINDS.iter().map(|k| expected[k]).sum();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "hostile-dlq-reader")
            .set("auto.offset.reset", "earliest")
            .set("fetch.message.max.bytes", "2000000")
            .create()
            .unwrap();
        consumer.subscribe(&["transactions.dlq"]).unwrap();
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        let started = Instant::now();
        while kinds.values().sum::<u64>() < dead && started.elapsed() < Duration::from_secs(120) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
                let headers = m.headers().expect("dead letters carry headers");
                let header = |name: &str| {
                    headers
                        .iter()
                        .find(|h| h.key == name)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                assert!(header("clv.dlq.reason").is_some_and(|r| !r.is_empty()));
                *kinds.entry(header("clv.dlq.kind").unwrap()).or_default() += 1;
            }
        }
        for kind in Rejection::KINDS {
            assert_eq!(
                kinds.get(kind).copied().unwrap_or(0),
                expected[kind],
                "{kinds:?}"
            );
        }

        // The scorer: as_of and every real customer's CLV exactly as before; the new good
        // customers (those with a purchase before as_of) are there too.
        std::thread::sleep(Duration::from_secs(3));
        let after_ready = get_json(addr, "/ready");
        assert_eq!(after_ready["as_of"], before_ready["as_of"], "{after_ready}");
        let after_top = everyone(addr);
        for (id, clv) in &before_top {
            assert_eq!(after_top.get(id), Some(clv), "customer {id}");
        }
        let new: Vec<&u64> = after_top
            .keys()
            .filter(|id| !before_top.contains_key(id))
            .collect();
        assert_eq!(new.len(), 20, "{new:?}");
        assert!(
            new.iter()
                .all(|id| (9_100_000_000..9_100_000_020).contains(*id))
        );
        assert_eq!(after_ready["customers"], 5878 + 20);
        // The real customers an attack was aimed at answer as before.
        let body = get_json(addr, "/customers/12346/clv");
        assert_eq!(body["clv_6m"], before_top[&12346]);
    }
}
