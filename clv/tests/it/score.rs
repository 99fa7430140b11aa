//! `clv score`: every customer of a store (or of the lines) scored into CSV and Parquet, each row
//! equal to what `clv serve` answers for that customer.

use std::time::Duration;

use crate::common::stack::*;
use crate::common::*;
use serde_json::Value;

fn get_json(agent: &ureq::Agent, url: &str) -> Value {
    let mut response = agent.get(url).call().unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.body_mut().read_json().unwrap()
}

#[test]
fn batch_scores_equal_the_scorers_answers_for_every_customer() {
    let stack = Stack::start(150, 21, 2);
    let models = stack.train();
    let (mut ingest, ingest_metrics) = stack.spawn_ingest();
    stack.replay();
    wait_for(
        "ingest to apply everything",
        Duration::from_secs(60),
        || events_counted(&ingest_metrics) >= stack.events as u64,
    );
    sigterm(&mut ingest);
    let db = stack.path("featurestore");
    let csv = stack.path("scores.csv");
    let parquet = stack.path("scores.parquet");
    let said = clv(&["score", "--db", &db, "--models-dir", &models, "--out", &csv]);
    assert!(said.contains("customers scored by v0001"), "{said}");
    clv(&[
        "score",
        "--db",
        &db,
        "--models-dir",
        &models,
        "--out",
        &parquet,
    ]);

    let addr = format!("127.0.0.1:{}", free_port());
    let _serve = spawn(&[
        "serve",
        "--db",
        &db,
        "--models-dir",
        &models,
        "--listen",
        &addr,
    ]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_for("the scorer ready", Duration::from_secs(60), || {
        agent
            .get(&format!("http://{addr}/ready"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });

    let table = dataset::normalised::read_table(std::path::Path::new(&csv)).unwrap();
    let from_parquet = dataset::normalised::read_table(std::path::Path::new(&parquet)).unwrap();
    assert_eq!(table.height(), from_parquet.height());
    assert_eq!(table.get_column_names(), from_parquet.get_column_names());
    let served = get_json(&agent, &format!("http://{addr}/customers/top?k=10000"));
    let ranked = served["customers"].as_array().unwrap();
    assert_eq!(table.height(), ranked.len());
    assert!(table.height() > 100);

    let column = |name: &str| table.column(name).unwrap().as_materialized_series().clone();
    let ids = column("customer_id")
        .cast(&polars::prelude::DataType::Int64)
        .unwrap();
    let ids = ids.i64().unwrap();
    let number = |name: &str, row: usize| -> Option<f64> {
        column(name)
            .cast(&polars::prelude::DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .get(row)
    };
    let text = |name: &str, row: usize| -> Option<String> {
        column(name).str().unwrap().get(row).map(str::to_string)
    };
    for (row, served) in ranked.iter().enumerate() {
        let id = ids.get(row).unwrap();
        // The file is in the scorer's ranking order.
        assert_eq!(served["customer_id"].as_i64(), Some(id));
        let answer = get_json(&agent, &format!("http://{addr}/customers/{id}/clv"));
        for field in [
            "clv_6m",
            "clv_6m_low",
            "clv_6m_high",
            "p_alive",
            "expected_purchases",
        ] {
            let (ours, theirs) = (number(field, row), answer[field].as_f64());
            assert!(
                ours == theirs
                    || ours
                        .zip(theirs)
                        .is_some_and(|(a, b)| (a - b).abs() <= 1e-9 * b.abs().max(1.0)),
                "{id} {field}: {ours:?} vs {theirs:?}"
            );
        }
        assert_eq!(
            text("value_tier", row).as_deref(),
            answer["segment"]["value"].as_str()
        );
        assert_eq!(
            text("activity", row).as_deref(),
            answer["segment"]["activity"].as_str()
        );
        assert_eq!(text("as_of", row).as_deref(), answer["as_of"].as_str());
        assert_eq!(
            text("version", row).as_deref(),
            answer["model"]["version"].as_str()
        );
        for feature in contract::Feature::ALL {
            let served = match feature.name() {
                name if contract::Feature::NINE.contains(feature) => {
                    answer["features"][name].as_f64()
                }
                name => answer["features"]["extra"][name].as_f64(),
            };
            let ours = number(feature.name(), row);
            assert!(
                ours == served
                    || ours
                        .zip(served)
                        .is_some_and(|(a, b)| (a - b).abs() <= 1e-9 * b.abs().max(1.0)),
                "{id} {}: {ours:?} vs {served:?}",
                feature.name()
            );
        }
    }

    // From the lines at the scorer's as_of: the same scores.
    let as_of = text("as_of", 0).unwrap();
    let lines = stack.path("from-lines.csv");
    clv(&[
        "score",
        "--input",
        stack.data.to_str().unwrap(),
        "--models-dir",
        &models,
        "--as-of",
        &as_of,
        "--out",
        &lines,
    ]);
    let from_lines = dataset::normalised::read_table(std::path::Path::new(&lines)).unwrap();
    assert!(from_lines.equals_missing(&table), "{from_lines}\n{table}");

    // Bad requests get a clear error.
    let out = clv_output(&[
        "score",
        "--db",
        &db,
        "--models-dir",
        &models,
        "--out",
        "x.json",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".csv or .parquet"));
    let empty = stack.path("no-models");
    let out = clv_output(&["score", "--db", &db, "--models-dir", &empty, "--out", &csv]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no production version"));
}
