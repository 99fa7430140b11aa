//! The streaming path end to end on the embedded broker, each stage its own process as a user runs
//! them: `clv broker`, `clv ingest` (stopped with SIGTERM and restarted), `clv replay` with
//! backpressure, then the snapshot from the store equals the offline snapshot for every customer.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use featurestore::snapshot::differences;

/// A child process killed when dropped (so a failing test leaves nothing running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_clv"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clv starts"),
    )
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(child: &mut Running) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    let mut out = String::new();
    if let Some(mut stdout) = child.0.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    out
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn count_with_customer(path: &Path) -> usize {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .filter(|r| !r.as_ref().unwrap()[6].is_empty())
        .count()
}

#[test]
fn replay_then_ingest_equals_the_offline_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let db = dir.path().join("featurestore");
    let data = dir.path().join("data.csv");
    let (state_s, db_s, data_s) = (
        state.to_str().unwrap(),
        db.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    clv(&[
        "data",
        "generate",
        "--customers",
        "800",
        "--seed",
        "5",
        "--out",
        data_s,
    ]);
    let events = count_with_customer(&data);
    assert!(events >= 100_000, "{events} events");

    let _broker = spawn(&["broker", "--state-dir", state_s, "--partitions", "4"]);
    wait_for("the broker's address file", Duration::from_secs(30), || {
        state.join("broker.addr").exists()
    });

    let metrics = format!("127.0.0.1:{}", free_port());
    let mut ingest = spawn(&[
        "ingest",
        "--state-dir",
        state_s,
        "--db",
        db_s,
        "--metrics-addr",
        &metrics,
        "--session-timeout-ms",
        "6000",
    ]);
    // Replay with a small lag bound: it has to wait for ingest, which proves backpressure works.
    let replayed = clv(&[
        "replay",
        "--state-dir",
        state_s,
        "--input",
        data_s,
        "--max-lag",
        "20000",
    ]);
    assert!(
        replayed.contains(&format!("{events} events sent")),
        "{replayed}"
    );
    let page = http_get(&metrics, "/metrics");
    assert!(page.contains("clv_ingest_events_total"), "{page}");
    let first = sigterm(&mut ingest);
    assert!(first.contains("ingested into"), "{first}");

    // A restart resumes from the offsets stored with the state: nothing is read twice.
    let second = clv(&[
        "ingest",
        "--state-dir",
        state_s,
        "--db",
        db_s,
        "--until-caught-up",
        "--metrics-addr",
        &format!("127.0.0.1:{}", free_port()),
        "--session-timeout-ms",
        "6000",
    ]);
    assert!(second.contains(" 0 read again"), "{second}");

    for cutoff in ["2010-12-01", "2011-06-01"] {
        let online = dir.path().join(format!("online-{cutoff}.parquet"));
        let offline = dir.path().join(format!("offline-{cutoff}.parquet"));
        clv(&[
            "snapshot",
            "--cutoff",
            cutoff,
            "--db",
            db_s,
            "--out",
            online.to_str().unwrap(),
        ]);
        clv(&[
            "snapshot",
            "--cutoff",
            cutoff,
            "--input",
            data_s,
            "--out",
            offline.to_str().unwrap(),
        ]);
        let (online, offline) = (read_parquet(&online), read_parquet(&offline));
        assert!(offline.height() > 100);
        let diff = differences(&offline, &online, 20);
        assert!(diff.is_empty(), "{cutoff}: {diff:#?}");
    }
}

/// Kill ingest (SIGKILL) at random points of a replay, restart it each time: it resumes from the offsets
/// stored with its state, never applies an event twice, and ends equal to the offline snapshot. Then
/// replay everything again: every event is read again and nothing changes.
#[test]
fn sigkill_restarts_and_a_second_replay_change_nothing() {
    use rand::{Rng, SeedableRng};

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let db = dir.path().join("featurestore");
    let data = dir.path().join("data.csv");
    let (state_s, db_s, data_s) = (
        state.to_str().unwrap(),
        db.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    clv(&[
        "data",
        "generate",
        "--customers",
        "800",
        "--seed",
        "21",
        "--out",
        data_s,
    ]);
    let events = count_with_customer(&data);
    let _broker = spawn(&["broker", "--state-dir", state_s, "--partitions", "4"]);
    wait_for("the broker's address file", Duration::from_secs(30), || {
        state.join("broker.addr").exists()
    });

    // Static membership: a restarted member takes its partitions back without waiting out the session.
    let ingest_args = |metrics: &str| -> Vec<String> {
        [
            "ingest",
            "--state-dir",
            state_s,
            "--db",
            db_s,
            "--metrics-addr",
            metrics,
            "--instance-id",
            "ingest-1",
            "--session-timeout-ms",
            "6000",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let start_ingest = |metrics: &str| {
        let args = ingest_args(metrics);
        spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let mut replay = spawn(&[
        "replay",
        "--state-dir",
        state_s,
        "--input",
        data_s,
        "--max-lag",
        "15000",
    ]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..3 {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut ingest = start_ingest(&metrics);
        std::thread::sleep(Duration::from_millis(rng.random_range(3_500..6_000)));
        let page = http_get(&metrics, "/metrics");
        let read_again = page
            .lines()
            .find(|l| l.starts_with("clv_ingest_events_read_again_total"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("0")
            .to_string();
        assert_eq!(
            read_again, "0",
            "round {round}: events applied twice after a restart"
        );
        ingest.0.kill().unwrap(); // SIGKILL
        ingest.0.wait().unwrap();
    }
    let mut ingest = start_ingest(&format!("127.0.0.1:{}", free_port()));
    assert!(replay.0.wait().unwrap().success(), "replay failed");
    sigterm(&mut ingest);
    let out = clv(&[
        "ingest",
        "--state-dir",
        state_s,
        "--db",
        db_s,
        "--until-caught-up",
        "--instance-id",
        "ingest-1",
        "--session-timeout-ms",
        "6000",
        "--metrics-addr",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    assert!(out.contains(" 0 read again"), "{out}");
    let online = dir.path().join("online.parquet");
    let offline = dir.path().join("offline.parquet");
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--db",
        db_s,
        "--out",
        online.to_str().unwrap(),
    ]);
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--input",
        data_s,
        "--out",
        offline.to_str().unwrap(),
    ]);
    let first = read_parquet(&online);
    let diff = differences(&read_parquet(&offline), &first, 20);
    assert!(diff.is_empty(), "{diff:#?}");

    // The same data again: the same event IDs, so the state does not change.
    let mut ingest = start_ingest(&format!("127.0.0.1:{}", free_port()));
    let again = clv(&[
        "replay",
        "--state-dir",
        state_s,
        "--input",
        data_s,
        "--max-lag",
        "15000",
    ]);
    assert!(again.contains(&format!("{events} events sent")), "{again}");
    let first_run = sigterm(&mut ingest);
    let rest = clv(&[
        "ingest",
        "--state-dir",
        state_s,
        "--db",
        db_s,
        "--until-caught-up",
        "--instance-id",
        "ingest-1",
        "--session-timeout-ms",
        "6000",
        "--metrics-addr",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let read_again = |out: &str| -> usize {
        out.split(" read again")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    assert_eq!(
        read_again(&first_run) + read_again(&rest),
        events,
        "{first_run}\n{rest}"
    );
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--db",
        db_s,
        "--out",
        online.to_str().unwrap(),
    ]);
    assert!(
        read_parquet(&online).equals_missing(&first),
        "a second replay changed the state"
    );
}

#[test]
fn without_a_broker_replay_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = clv_output(&[
        "replay",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--input",
        "x.csv",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("clv broker") && stderr.contains("--brokers"),
        "{stderr}"
    );
}

/// 1,000 malformed messages mixed into the stream: all of them land in the dead-letter topic with a
/// reason, and every good event is applied.
#[test]
fn malformed_messages_go_to_the_dead_letter_topic() {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let db = dir.path().join("featurestore");
    let data = dir.path().join("data.csv");
    let (state_s, db_s, data_s) = (
        state.to_str().unwrap(),
        db.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    clv(&[
        "data",
        "generate",
        "--customers",
        "40",
        "--seed",
        "9",
        "--out",
        data_s,
    ]);
    let lines = dataset::read::read_raw(&data, &indicatif::ProgressBar::hidden())
        .unwrap()
        .lines;

    let _broker = spawn(&["broker", "--state-dir", state_s, "--partitions", "3"]);
    wait_for("the broker's address file", Duration::from_secs(30), || {
        state.join("broker.addr").exists()
    });
    let bootstrap = std::fs::read_to_string(state.join("broker.addr")).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let good = r#"{"schema_version":1,"event_id":"x","customer_id":12346,"invoice":"1","stock_code":"A","quantity":1,"invoice_date":"2011-01-01T00:00:00Z","price":1.0}"#;
    let malformed: Vec<(String, String)> = (0..1000)
        .map(|i| {
            let (key, value) = match i % 7 {
                0 => ("12346".to_string(), "{not json".to_string()),
                1 => ("12346".to_string(), good.replace(r#""invoice":"1","#, "")),
                2 => (
                    "12346".to_string(),
                    good.replace(r#""quantity":1"#, r#""quantity":"one""#),
                ),
                3 => (
                    "12346".to_string(),
                    good.replace(r#""schema_version":1"#, r#""schema_version":9"#),
                ),
                4 => ("99999".to_string(), good.to_string()),
                5 => (
                    "12346".to_string(),
                    good.replace(r#""price":1.0"#, r#""price":1e999"#),
                ),
                _ => ("12346".to_string(), String::new()),
            };
            (key, value)
        })
        .collect();
    let mut sent_good = 0;
    let mut bad = malformed.iter();
    for (n, line) in lines.iter().enumerate() {
        if let Some(event) = ingest::replay::event_for_line(n as u64 + 1, line) {
            let (key, payload) = (event.customer_id.to_string(), event.encode());
            producer
                .send(BaseRecord::to("transactions").key(&key).payload(&payload))
                .unwrap();
            sent_good += 1;
        }
        if n % 3 == 0
            && let Some((key, value)) = bad.next()
        {
            producer
                .send(BaseRecord::to("transactions").key(key).payload(value))
                .unwrap();
        }
        producer.poll(Duration::ZERO);
    }
    for (key, value) in bad {
        producer
            .send(BaseRecord::to("transactions").key(key).payload(value))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let out = clv(&[
        "ingest",
        "--state-dir",
        state_s,
        "--db",
        db_s,
        "--until-caught-up",
        "--metrics-addr",
        &format!("127.0.0.1:{}", free_port()),
        "--session-timeout-ms",
        "6000",
    ]);
    assert!(out.contains("1000 dead-lettered"), "{out}");
    let applied: u64 = out
        .split("applied {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .unwrap()
        .split(", ")
        .filter_map(|kv| kv.split(": ").nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(applied, sent_good, "{out}");

    // Every dead letter is in the topic, with its reason.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["transactions.dlq"]).unwrap();
    let mut kinds = std::collections::BTreeMap::new();
    let started = Instant::now();
    while kinds.values().sum::<usize>() < 1000 && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let headers = m.headers().expect("dead letters carry headers");
            let kind = headers
                .iter()
                .find(|h| h.key == "clv.dlq.kind")
                .and_then(|h| h.value)
                .unwrap();
            assert!(headers.iter().any(|h| h.key == "clv.dlq.reason"));
            *kinds
                .entry(String::from_utf8_lossy(kind).into_owned())
                .or_insert(0usize) += 1;
        }
    }
    assert_eq!(kinds.values().sum::<usize>(), 1000, "{kinds:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}"); // malformed, unsupported_version, invalid

    let online = dir.path().join("online.parquet");
    let offline = dir.path().join("offline.parquet");
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--db",
        db_s,
        "--out",
        online.to_str().unwrap(),
    ]);
    clv(&[
        "snapshot",
        "--cutoff",
        "2011-06-01",
        "--input",
        data_s,
        "--out",
        offline.to_str().unwrap(),
    ]);
    let diff = differences(&read_parquet(&offline), &read_parquet(&online), 20);
    assert!(diff.is_empty(), "{diff:#?}");
}
