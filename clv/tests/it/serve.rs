//! `clv serve` over real HTTP, against a store that the streaming path fills while the scorer runs as
//! a separate process (a RocksDB secondary instance): every endpoint, every error, the answers checked
//! against the registered model applied to the offline features, and a promotion under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::stack::*;
use crate::common::*;
use models::Trained;
use serde_json::{Value, json};
use trainer::training::Histories;

fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET, returning the status and the body.
fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn get_json(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let (status, body) = get(agent, url);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, value)
}

fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut response = agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}")),
    )
}

/// A JSON error of the API with this status.
fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

/// POSTs headers declaring a `length`-byte JSON body and 1 KiB of it; returns the raw response.
fn raw_post(addr: &str, path: &str, length: usize) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let _ = stream.write_all(&[b' '; 1024]);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn the_scorer_serves_the_streamed_store_and_swaps_models_without_dropping_a_request() {
    let stack = Stack::start(300, 7, 2);
    let models = stack.dir.path().join("models");
    let models_dir = models.to_str().unwrap();
    let train = || {
        clv(&[
            "train",
            "--input",
            stack.data.to_str().unwrap(),
            "--models-dir",
            models_dir,
        ])
    };
    train();
    let (mut ingest, ingest_metrics) = stack.spawn_ingest();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let mut serve = spawn(&[
        "serve",
        "--db",
        &stack.path("featurestore"),
        "--models-dir",
        models_dir,
        "--listen",
        &addr,
        "--refresh-seconds",
        "0.2",
    ]);
    let agent = new_agent();
    wait_for("the scorer to listen", Duration::from_secs(30), || {
        agent.get(&format!("{base}/health")).call().is_ok()
    });
    // Before anything is ingested the scorer is alive but not ready.
    let (status, body) = get_json(&agent, &format!("{base}/ready"));
    assert_error(status, &body, 503);

    // The scorer sees what ingest writes while both run: poll until every customer is scored.
    stack.replay();
    let loaded = dataset::normalised::load(&stack.data, &indicatif::ProgressBar::hidden()).unwrap();
    let histories = Histories::from_lines(polars::prelude::IntoLazy::lazy(loaded.frame)).unwrap();
    wait_for(
        "ingest to apply every event",
        Duration::from_secs(60),
        || events_counted(&ingest_metrics) >= stack.events as u64,
    );
    // The watermark by its rule (contract::watermark) over the offline purchases, each customer in
    // the partition the store holds it in.
    let watermark = stack.expected_watermark(&histories);
    assert!(watermark <= histories.last_purchase_ms().unwrap());
    let as_of = scorer::population::as_of_watermark(watermark).unwrap();
    let customers = expected_clv(&stack.data, &models, "v0001", as_of).len();
    wait_for("every customer scored", Duration::from_secs(60), || {
        let (status, body) = get_json(&agent, &format!("{base}/ready"));
        status == 200 && body["customers"] == customers && body["as_of"] == as_of.to_string()
    });

    // GET /customers/{id}/clv equals the registered model applied to the offline features.
    let expected = expected_clv(&stack.data, &models, "v0001", as_of);
    assert_eq!(expected.len(), customers);
    for (id, clv) in expected.iter().step_by(expected.len() / 12) {
        let (status, body) = get_json(&agent, &format!("{base}/customers/{id}/clv"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["customer_id"], *id);
        assert_eq!(body["as_of"], as_of.to_string());
        assert_eq!(body["model"]["version"], "v0001");
        let served = body["clv_6m"].as_f64().unwrap();
        assert!((served - clv).abs() <= 0.006, "{id}: {served} vs {clv}");
        assert!(
            body["features"]["frequency"].as_i64().unwrap() >= 1,
            "{body}"
        );
        assert!(
            body["features"]["extra"]["bgnbd_p_alive"].is_number(),
            "{body}"
        );
        let (status, body) = get_json(&agent, &format!("{base}/customers/{id}/features"));
        assert_eq!(status, 200, "{body}");
        assert!(body["freshness"]["watermark"].is_string(), "{body}");
        assert!(
            body["features"]["tenure_days"].as_i64().unwrap() >= 0,
            "{body}"
        );
    }

    // The top list: the highest predictions, in order; and as CSV.
    let mut ranked = expected.clone();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (status, top) = get_json(&agent, &format!("{base}/customers/top?k=10"));
    assert_eq!(status, 200, "{top}");
    let top = top["customers"].as_array().unwrap().clone();
    assert_eq!(top.len(), 10);
    for (row, (id, clv)) in top.iter().zip(&ranked) {
        assert!(
            (row["clv_6m"].as_f64().unwrap() - clv).abs() <= 0.006,
            "{row} vs {id}"
        );
    }
    assert_eq!(top[0]["rank"], 1);
    let (status, csv) = get(&agent, &format!("{base}/customers/top.csv?k=3"));
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0], "rank,customer_id,clv_6m");
    assert!(lines[1].starts_with(&format!("1,{},", top[0]["customer_id"])));

    // The at-risk list: fading customers (P(alive) >= 0.3, P(no purchase in the horizon) >= 0.5),
    // highest value at risk (revenue × P(no purchase)) first, each matching its own answer.
    let (status, risk) = get_json(&agent, &format!("{base}/customers/at-risk?k=20"));
    assert_eq!(status, 200, "{risk}");
    let risk = risk["customers"].as_array().unwrap().clone();
    assert!(!risk.is_empty(), "nobody at risk in the generated data");
    let values: Vec<f64> = risk
        .iter()
        .map(|r| r["value_at_risk"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    for row in &risk {
        let p = row["p_alive"].as_f64().unwrap();
        assert!(p >= 0.3, "{row}");
        let (_, answer) = get_json(
            &agent,
            &format!("{base}/customers/{}/clv", row["customer_id"]),
        );
        let silent = answer["features"]["extra"]["bgnbd_p_no_purchase"]
            .as_f64()
            .unwrap();
        assert!(silent >= 0.5, "{answer}");
        let expected = row["total_revenue"].as_f64().unwrap() * silent;
        assert!(
            (row["value_at_risk"].as_f64().unwrap() - expected).abs() < 0.01,
            "{row} {answer}"
        );
        assert_eq!(answer["segment"]["activity"], "fading", "{answer}");
        assert_eq!(answer["p_alive"], row["p_alive"], "{answer}");
    }
    let (status, csv) = get(&agent, &format!("{base}/customers/at-risk.csv?k=2"));
    assert_eq!(status, 200);
    assert!(
        csv.starts_with(
            "rank,customer_id,value_at_risk,total_revenue,p_alive,recency_days,clv_6m\n"
        ),
        "{csv}"
    );

    // Bad IDs, unknown customers, bad k.
    for (path, expected) in [
        ("/customers/abc/clv", 400),
        ("/customers/12a/features", 400),
        ("/customers/-5/clv", 400),
        ("/customers/99999999999999999999999/clv", 400),
        ("/customers/999999999/clv", 404),
        ("/customers/999999999/features", 404),
        ("/customers/top?k=0", 400),
        ("/customers/top?k=abc", 400),
        ("/customers/top?k=1000000", 400),
        ("/customers/at-risk?k=0", 400),
        ("/no/such/route", 404),
    ] {
        let (status, body) = get_json(&agent, &format!("{base}{path}"));
        assert_error(status, &body, expected);
    }

    // POST /predict: the nine-feature model, seed-compatible; malformed, huge and wrong bodies get
    // clean 4xx.
    let nine = Trained::load(&models.join("v0001/model_nine.json")).unwrap();
    let request = json!({
        "recency_days": 12, "frequency": 7, "total_revenue": 2450.5, "avg_order_value": 350.07,
        "tenure_days": 400, "active_months": 6, "purchase_velocity": 0.52,
        "avg_gap_days": 64.7, "std_gap_days": 20.1
    });
    let (status, body) = post(
        &agent,
        &format!("{base}/predict"),
        "application/json",
        request.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let row = contract::FeatureRow {
        nine: serde_json::from_value(request.clone()).unwrap(),
        extra: contract::Extra::unknown(),
    };
    let want = nine.predict_one(&row).unwrap();
    let got = body["predicted_clv_6m"].as_f64().unwrap();
    assert!((got - want).abs() <= 0.006, "{got} vs {want}");
    assert_eq!(body["model"]["version"], "v0001");
    for (content_type, body, expected) in [
        ("application/json", b"{not json".to_vec(), 400),
        ("application/json", b"{\"recency_days\": 3}".to_vec(), 422),
        (
            "application/json",
            request
                .to_string()
                .replace("\"frequency\":7", "\"frequency\":-1")
                .into_bytes(),
            400,
        ),
        ("text/plain", request.to_string().into_bytes(), 415),
    ] {
        let (status, body) = post(&agent, &format!("{base}/predict"), content_type, &body);
        assert_error(status, &body, expected);
    }
    // A huge body is refused from its declared length, before it is read.
    let huge = raw_post(&addr, "/predict", 64 * 1024 * 1024);
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    let body: Value = serde_json::from_str(huge.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_error(413, &body, 413);
    let mut response = agent.delete(&format!("{base}/predict")).call().unwrap();
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_error(response.status().as_u16(), &body, 405);

    // Health, OpenAPI, the offline docs page, and the metrics of what happened above.
    assert_eq!(get(&agent, &format!("{base}/health")).0, 200);
    let (status, openapi) = get_json(&agent, &format!("{base}/openapi.json"));
    assert_eq!(status, 200);
    for path in [
        "/customers/{id}/clv",
        "/customers/top",
        "/predict",
        "/ready",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} in {openapi}");
    }
    let (status, docs) = get(&agent, &format!("{base}/docs/"));
    assert_eq!(status, 200);
    assert!(docs.to_lowercase().contains("swagger"), "{docs}");
    // Served from the binary: no CDN, the page works offline.
    assert!(
        !docs.contains("src=\"http") && !docs.contains("href=\"http"),
        "{docs}"
    );
    let (status, bundle) = get(&agent, &format!("{base}/docs/swagger-ui-bundle.js"));
    assert!(status == 200 && bundle.len() > 100_000);
    let (status, page) = get(&agent, &format!("{base}/metrics"));
    assert_eq!(status, 200);
    for needle in [
        "clv_http_request_duration_seconds_bucket{route=\"/customers/{id}/clv\",status=\"200\",le=",
        "clv_http_requests_total{route=\"/customers/{id}/clv\",status=\"404\"}",
        "clv_http_requests_total{route=\"/predict\",status=\"413\"}",
        "clv_http_response_size_bytes_bucket",
        "clv_scorer_predictions_total{endpoint=\"clv\"}",
        "clv_scorer_model_info{name=",
        "clv_scorer_feature_watermark_seconds",
        "clv_scorer_features_refreshed_timestamp_seconds",
    ] {
        assert!(page.contains(needle), "{needle} missing from\n{page}");
    }

    // A promotion while clients hammer the scorer: every request answers 200, and the new version
    // takes over.
    train();
    let stop = Arc::new(AtomicBool::new(false));
    let seen_new = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let ids: Arc<Vec<u64>> = Arc::new(expected.iter().map(|(id, _)| *id).collect());
    let clients: Vec<_> = (0..4)
        .map(|k| {
            let (stop, seen_new, served, ids, base) = (
                stop.clone(),
                seen_new.clone(),
                served.clone(),
                ids.clone(),
                base.clone(),
            );
            std::thread::spawn(move || {
                let agent = new_agent();
                let mut i = k;
                while !stop.load(Ordering::Acquire) {
                    let id = ids[i % ids.len()];
                    i += 7;
                    let (status, body) = get_json(&agent, &format!("{base}/customers/{id}/clv"));
                    assert_eq!(status, 200, "{body}");
                    if body["model"]["version"] == "v0002" {
                        seen_new.store(true, Ordering::Release);
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    clv(&["models", "promote", "v0002", "--models-dir", models_dir]);
    wait_for(
        "the promoted model to serve",
        Duration::from_secs(30),
        || seen_new.load(Ordering::Acquire),
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    for client in clients {
        client.join().expect("no client saw an error");
    }
    assert!(served.load(Ordering::Relaxed) > 100);
    let (_, ready) = get_json(&agent, &format!("{base}/ready"));
    assert_eq!(ready["model"]["version"], "v0002", "{ready}");

    // SIGTERM: a graceful stop.
    let out = sigterm(&mut serve);
    assert!(out.contains("stopped"), "{out}");
    sigterm(&mut ingest);
}
