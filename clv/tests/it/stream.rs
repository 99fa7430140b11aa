//! The streaming path end to end on the embedded broker, each stage its own process as a user runs
//! them: `clv broker`, `clv ingest` (stopped with SIGTERM and restarted), `clv replay` with
//! backpressure, then the snapshot from the store equals the offline snapshot for every customer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::nisshi::*;
use crate::common::stack::*;
use crate::common::*;

/// "…, N read again, …" of an ingest summary.
fn read_again(summary: &str) -> usize {
    summary
        .split(" read again")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no read-again count in {summary}"))
}

#[test]
fn replay_then_ingest_equals_the_offline_snapshot() {
    let stack = Stack::start(800, 5, 4);
    assert!(stack.events >= 100_000, "{} events", stack.events);
    let (mut ingest, metrics) = stack.spawn_ingest();
    // A small lag bound: replay has to wait for ingest, which proves backpressure works.
    let replayed = stack.replay();
    assert!(
        replayed.contains(&format!("{} events sent", stack.events)),
        "{replayed}"
    );
    let page = http_get(&metrics, "/metrics");
    for metric in [
        "clv_ingest_events_total",
        "clv_ingest_consumer_lag",
        "clv_ingest_batch_apply_seconds_bucket",
        "clv_ingest_customers",
    ] {
        assert!(page.contains(metric), "{metric} missing from\n{page}");
    }
    let first = sigterm(&mut ingest);
    assert!(first.contains("ingested into"), "{first}");
    // A restart resumes from the offsets stored with the state: nothing is read twice.
    let second = stack.ingest_until_caught_up();
    assert_eq!(read_again(&second), 0, "{second}");
    for cutoff in ["2010-12-01", "2011-06-01"] {
        stack.store_equals_offline(cutoff);
    }
}

/// Kill ingest (SIGKILL) at random points of a replay, restart it each time: it resumes from the offsets
/// stored with its state, never applies an event twice, and ends equal to the offline snapshot. Then
/// replay everything again: every event is read again and nothing changes.
#[test]
fn sigkill_restarts_and_a_second_replay_change_nothing() {
    use rand::{Rng, SeedableRng};

    let stack = Stack::start(800, 21, 4);
    let replay_args = stack.replay_args();
    let mut replay = spawn(&replay_args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..3 {
        let (mut ingest, metrics) = stack.spawn_ingest();
        std::thread::sleep(Duration::from_millis(rng.random_range(3_500..6_000)));
        let page = http_get(&metrics, "/metrics");
        let applied_twice = page
            .lines()
            .find(|l| l.starts_with("clv_ingest_events_read_again_total"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("0")
            .to_string();
        assert_eq!(
            applied_twice, "0",
            "round {round}: events applied twice after a restart"
        );
        ingest.0.kill().unwrap(); // SIGKILL
        ingest.0.wait().unwrap();
    }
    let (mut ingest, _) = stack.spawn_ingest();
    assert!(replay.0.wait().unwrap().success(), "replay failed");
    sigterm(&mut ingest);
    let out = stack.ingest_until_caught_up();
    assert_eq!(read_again(&out), 0, "{out}");
    let first = stack.store_equals_offline("2011-06-01");

    // The same data again: the same event IDs, so the state does not change.
    let (mut ingest, _) = stack.spawn_ingest();
    let again = stack.replay();
    assert!(
        again.contains(&format!("{} events sent", stack.events)),
        "{again}"
    );
    let during = sigterm(&mut ingest);
    let rest = stack.ingest_until_caught_up();
    assert_eq!(
        read_again(&during) + read_again(&rest),
        stack.events,
        "{during}\n{rest}"
    );
    assert!(
        stack
            .store_equals_offline("2011-06-01")
            .equals_missing(&first),
        "a second replay changed the state"
    );
}

/// 1,000 malformed messages mixed into the stream and one of 1.5 MB: all of them land in the
/// dead-letter topic with a reason (the large one cut to what a dead letter carries). Every 50th good
/// event is put on another partition than its customer's: it is forwarded there, not dead-lettered,
/// and every good event is applied exactly once (the store equals the offline snapshot).
#[test]
fn malformed_messages_go_to_the_dead_letter_topic() {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let stack = Stack::start(40, 9, 3);
    let lines = dataset::read::read_raw(&stack.data, &indicatif::ProgressBar::hidden())
        .unwrap()
        .lines;
    let bootstrap = stack.bootstrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("partitioner", "murmur2_random")
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    let good = r#"{"schema_version":1,"event_id":"x","customer_id":12346,"invoice":"1","stock_code":"A","quantity":1,"invoice_date":"2011-01-01T00:00:00Z","price":1.0}"#;
    let malformed: Vec<(&str, String)> = (0..1000)
        .map(|i| match i % 7 {
            0 => ("12346", "{not json".to_string()),
            1 => ("12346", good.replace(r#""invoice":"1","#, "")),
            2 => (
                "12346",
                good.replace(r#""quantity":1"#, r#""quantity":"one""#),
            ),
            3 => (
                "12346",
                good.replace(r#""schema_version":1"#, r#""schema_version":9"#),
            ),
            4 => ("99999", good.to_string()),
            5 => ("12346", good.replace(r#""price":1.0"#, r#""price":1e999"#)),
            _ => ("12346", String::new()),
        })
        .collect();
    let mut sent_good = 0;
    let mut bad = malformed.iter();
    // Every 50th good event a third-party producer puts on another partition than its customer's
    // (another partitioner): it is forwarded to its customer's partition and applied there, once.
    let mut misrouted = 0;
    for (n, line) in lines.iter().enumerate() {
        if let Some(event) = ingest::replay::event_for_line(n as u64 + 1, line) {
            let (key, payload) = (event.customer_id.to_string(), event.encode());
            let mut record = BaseRecord::to("transactions").key(&key).payload(&payload);
            if sent_good % 50 == 0 {
                let home = contract::partition::of_customer(event.customer_id, 3);
                record = record.partition((home + 1) % 3);
                misrouted += 1;
            }
            producer.send(record).unwrap();
            sent_good += 1;
        }
        if n % 3 == 0
            && let Some((key, value)) = bad.next()
        {
            producer
                .send(BaseRecord::to("transactions").key(*key).payload(value))
                .unwrap();
        }
        producer.poll(Duration::ZERO);
    }
    for (key, value) in bad {
        producer
            .send(BaseRecord::to("transactions").key(*key).payload(value))
            .unwrap();
    }
    // One of 1.5 MB (the broker takes it): more than a dead letter may carry, so it is cut, not a
    // poison pill that would stop ingest at every restart.
    let larger = good.replace(
        r#""event_id":"x""#,
        &format!(r#""event_id":"{}""#, "l".repeat(1_500_000)),
    );
    producer
        .send(BaseRecord::to("transactions").key("12346").payload(&larger))
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    let out = stack.ingest_until_caught_up();
    assert!(out.contains("1001 dead-lettered"), "{out}");
    assert!(
        out.contains(&format!(
            "{misrouted} forwarded to their customer's partition"
        )),
        "{out}"
    );
    assert_eq!(applied(&out), sent_good, "{out}");
    assert_eq!(read_again(&out), 0, "{out}");

    // Every dead letter is in the topic, with its reason.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .set("fetch.message.max.bytes", "2000000")
        .create()
        .unwrap();
    consumer.subscribe(&["transactions.dlq"]).unwrap();
    let mut kinds = std::collections::BTreeMap::new();
    let mut truncated = 0;
    let started = Instant::now();
    while kinds.values().sum::<usize>() < 1001 && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let headers = m.headers().expect("dead letters carry headers");
            let kind = headers
                .iter()
                .find(|h| h.key == "clv.dlq.kind")
                .and_then(|h| h.value)
                .unwrap();
            let reason = headers
                .iter()
                .find(|h| h.key == "clv.dlq.reason")
                .and_then(|h| h.value)
                .expect("a reason");
            assert!(!String::from_utf8_lossy(reason).contains("misrouted"));
            if headers.iter().any(|h| h.key == "clv.dlq.truncated") {
                truncated += 1;
                assert_eq!(m.payload().map_or(0, <[u8]>::len), 900_000);
            }
            *kinds
                .entry(String::from_utf8_lossy(kind).into_owned())
                .or_insert(0usize) += 1;
        }
    }
    assert_eq!(kinds.values().sum::<usize>(), 1001, "{kinds:?}");
    // malformed, unsupported_version, invalid, and the 1.5 MB one out of bounds
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_eq!(truncated, 1, "only the 1.5 MB message is cut");
    stack.store_equals_offline("2011-06-01");
}

/// The real dataset (1,044,848 kept lines, 809,561 with a customer ID) through the embedded broker
/// while ingest runs: every event arrives, and the store equals the offline snapshot for every customer
/// at both cutoffs.
#[test]
fn the_real_data_through_kafka_equals_the_offline_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // Lines with a customer ID among the kept lines (the import's summary: 1,044,848 − 235,287).
    let events = 809_561;
    let stack = Stack::embedded(dir, real_csv(), events, 4);
    let (mut ingest, _) = stack.spawn_ingest();
    let replayed = stack.replay();
    assert!(
        replayed.contains("replayed 1044848 lines")
            && replayed.contains(&format!("{events} events sent, 235287 without customer ID")),
        "{replayed}"
    );
    stack.stop_and_finish(&mut ingest);
}

/// The same path against a broker that is not librdkafka's mock: nisshi, as a separate process over
/// TCP, with Kafka's defaults (multi-message record batches, static group membership). Topics are
/// created through the admin API by replay and ingest; ingest is stopped and restarted halfway and
/// resumes from the offsets in its store.
#[test]
fn replay_then_ingest_through_nisshi() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 400, 13);
    let events = count_with_customer(&data);
    assert!(events >= 40_000, "{events} events");
    let broker = Nisshi::start(dir.path(), "memory://nisshi/");
    let stack = Stack::external(dir, data, events, broker.bootstrap, Some(broker.process));
    let (mut ingest, metrics) = stack.spawn_ingest();
    let replayed = stack.replay();
    assert!(
        replayed.contains(&format!("{events} events sent")),
        "{replayed}"
    );
    let page = http_get(&metrics, "/metrics");
    assert!(page.contains("clv_ingest_events_total"), "{page}");
    let rest = stack.stop_and_finish(&mut ingest);
    assert_eq!(read_again(&rest), 0, "{rest}");
}

/// A broker outage: nisshi (SQLite storage, so that a restart keeps its data) is killed while replay
/// and ingest run, stays away 60 s and comes back on the same port. Both report it (ingest: a metric
/// and a warning; replay: a warning), retry, and resume: every event is applied exactly once and the
/// store equals the offline snapshot.
#[test]
fn replay_and_ingest_survive_a_60_s_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 300, 17);
    let events = count_with_customer(&data);
    let mut broker = Nisshi::start(dir.path(), "sqlite://nisshi.db");
    let stack = Stack::external(dir, data, events, broker.bootstrap.clone(), None);
    let (mut ingest, metrics) = stack.spawn_ingest();
    // Paced (two years of event time in ~30 s), so that the outage falls in the middle of it.
    let mut replay_args = stack.replay_args();
    replay_args.extend(["--speed".to_string(), "2000000".to_string()]);
    let mut replay = spawn(&replay_args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for("a quarter of the events", Duration::from_secs(120), || {
        events_counted(&metrics) >= events as u64 / 4
    });
    assert!(
        replay.0.try_wait().unwrap().is_none(),
        "replay ended before the outage"
    );
    broker.kill();
    let down = Instant::now();
    let metric = |name: &str| -> f64 {
        http_get(&metrics, "/metrics")
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    wait_for(
        "ingest to report the outage",
        Duration::from_secs(50),
        || {
            metric("clv_ingest_broker_reachable") == 0.0
                && metric("clv_ingest_broker_errors_total") > 0.0
        },
    );
    let during = events_counted(&metrics);
    std::thread::sleep(Duration::from_secs(60).saturating_sub(down.elapsed()));
    assert!(
        ingest.0.try_wait().unwrap().is_none(),
        "ingest exited during the outage"
    );
    assert!(
        replay.0.try_wait().unwrap().is_none(),
        "replay exited during the outage"
    );
    assert_eq!(
        events_counted(&metrics),
        during,
        "nothing is consumed while the broker is away"
    );
    broker.restart();
    wait_for(
        "ingest to see the broker again",
        Duration::from_secs(60),
        || metric("clv_ingest_broker_reachable") == 1.0,
    );
    let status = replay.0.wait().unwrap();
    assert!(status.success(), "replay after the outage: {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(replay.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains(&format!("{events} events sent")), "{out}");
    assert_eq!(metric("clv_ingest_events_read_again_total"), 0.0);
    let rest = stack.stop_and_finish(&mut ingest);
    assert_eq!(read_again(&rest), 0, "{rest}");
    drop(broker);
}

/// SIGTERM while the broker is gone stops ingest within seconds: once a call to the broker has
/// failed, the next ones wait a second, not three, and the loop between them sees the stop. What it
/// applied stays applied.
#[test]
fn sigterm_with_the_broker_gone_stops_ingest_within_seconds() {
    let mut stack = Stack::start(100, 23, 4);
    // A session longer than the test: the group keeps the partitions assigned, and ingest keeps
    // asking the broker for their watermarks (the tests' 6 s session would end with none).
    let mut args = stack.ingest_args(&[]);
    let at = args
        .iter()
        .position(|a| a == "--session-timeout-ms")
        .unwrap();
    args[at + 1] = "60000".into();
    let (mut ingest, metrics) = stack.spawn_ingest_with(args);
    let replayed = stack.replay();
    assert!(
        replayed.contains(&format!("{} events sent", stack.events)),
        "{replayed}"
    );
    wait_for("every event applied", Duration::from_secs(60), || {
        events_counted(&metrics) >= stack.events as u64
    });
    let Broker::Embedded { _process: broker } = &mut stack.broker else {
        unreachable!("Stack::start runs the embedded broker")
    };
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    let reachable = || -> Option<f64> {
        http_get(&metrics, "/metrics")
            .lines()
            .find(|l| l.starts_with("clv_ingest_broker_reachable"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    wait_for(
        "ingest to report the broker gone",
        Duration::from_secs(60),
        || reachable() == Some(0.0),
    );
    // Into the calls that follow the first failure.
    std::thread::sleep(Duration::from_secs(2));
    let (out, took) = sigterm_timed(&mut ingest);
    assert!(
        took < Duration::from_secs(5),
        "ingest took {took:?} to stop after SIGTERM with the broker gone"
    );
    assert!(out.contains("ingested into"), "{out}");
}

/// Replay with no ingest reading waits (its backpressure), says so within seconds instead of
/// waiting in silence, and goes on once ingest starts: every event is sent.
#[test]
fn replay_with_no_ingest_says_what_it_waits_for_and_goes_on_when_ingest_starts() {
    use std::io::{BufRead, Read};
    let stack = Stack::start(100, 29, 4);
    let mut args = stack.replay_args();
    let at = args.iter().position(|a| a == "--max-lag").unwrap();
    args[at + 1] = "500".into();
    assert!(stack.events > 2_000, "{} events", stack.events);
    let mut replay = Running(
        Command::new(env!("CARGO_BIN_EXE_clv"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = replay.0.stderr.take().unwrap();
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = said.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let asked = Instant::now();
    while !said.lock().unwrap().contains("is `clv ingest` running?") {
        assert!(
            asked.elapsed() < Duration::from_secs(60) && replay.0.try_wait().unwrap().is_none(),
            "replay did not say what it waits for: {}",
            said.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        replay.0.try_wait().unwrap().is_none(),
        "replay ended with no ingest: {}",
        said.lock().unwrap()
    );
    let (mut ingest, _) = stack.spawn_ingest();
    let status = replay.0.wait().unwrap();
    assert!(status.success(), "{status}: {}", said.lock().unwrap());
    let mut out = String::new();
    replay
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains(&format!("{} events sent", stack.events)),
        "{out}"
    );
    sigterm(&mut ingest);
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

/// A tmpfs mounted for one test (root only), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk: the store on a 320 KiB tmpfs fills up mid-stream. Ingest stops with a clear error and
/// writes no offset past what it stored; once space is freed, a restart resumes and the store equals
/// the offline snapshot (nothing lost, nothing applied twice).
#[test]
fn a_full_disk_stops_ingest_and_a_restart_after_freeing_space_resumes() {
    let stack = Stack::start(100, 23, 2);
    let Some(disk) = Tmpfs::mount(Path::new(&stack.path("featurestore")), "320k") else {
        // Mounting needs root (CI and these machines run as root); say so rather than pass silently.
        panic!("mounting a tmpfs failed: this test needs root (mount -t tmpfs)");
    };
    // Everything into the broker first (the embedded broker keeps ~5 MiB a partition: this fits).
    let replay: Vec<String> = stack
        .replay_args()
        .into_iter()
        .filter(|a| a != "--max-lag" && a != "15000")
        .collect();
    let replayed = clv(&replay.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        replayed.contains(&format!("{} events sent", stack.events)),
        "{replayed}"
    );

    // Small batches: the write-ahead log grows batch by batch until the disk is full.
    let args = stack.ingest_args(&["--until-caught-up", "--batch-size", "200"]);
    let full = clv_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "ingest on a full disk must fail");
    assert!(
        stderr.contains("feature store") && stderr.contains("No space left on device"),
        "{stderr}"
    );

    disk.resize("256m");
    let resumed = stack.ingest_until_caught_up();
    assert!(
        applied(&resumed) < stack.events as u64,
        "the first run stored nothing? {resumed}"
    );
    assert_eq!(read_again(&resumed), 0, "{resumed}");
    for cutoff in ["2010-12-01", "2011-06-01"] {
        stack.store_equals_offline(cutoff);
    }
    drop(disk);
}

/// "…, N forwarded to their customer's partition (M forwarded already …" of an ingest summary.
fn forwarded(summary: &str) -> (usize, usize) {
    let number = |marker: &str| -> usize {
        summary
            .split(marker)
            .next()
            .and_then(|s| s.rsplit([' ', '(']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{marker}` count in {summary}"))
    };
    (
        number(" forwarded to their customer's partition"),
        number(" forwarded already by an earlier reader"),
    )
}

/// The sum of the high watermarks of the transactions topic's `partitions`.
fn messages_in_topic(bootstrap: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks("transactions", p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

/// A producer with librdkafka's default partitioner: each misrouted event is forwarded once. A
/// second ingest reading the topic whole into a fresh store (a restore) finds the group's offsets
/// committed with clv's mark and forwards none of them again: the topic does not grow, and it
/// applies every event once. A reader without a mark (another group) forwards them all again, and
/// loses nothing. (Offsets committed without the mark, as an operator's reset, are not believed:
/// `forward_mark`'s unit tests.)
#[test]
fn a_misrouted_event_is_forwarded_once_however_often_its_partition_is_read_again() {
    let stack = Stack::start(60, 33, 3);
    let (sent, misrouted) =
        produce_with_default_partitioner(&stack.data, &stack.bootstrap(), "transactions", 3);
    assert!(misrouted > sent / 3, "{misrouted} of {sent}");
    let with_db = |db: &str| {
        let mut args = stack.ingest_args(&["--until-caught-up"]);
        let at = args.iter().position(|a| a == "--db").unwrap();
        args[at + 1] = stack.path(db);
        clv(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let first = stack.ingest_until_caught_up();
    assert_eq!(applied(&first), sent as u64, "{first}");
    assert_eq!(forwarded(&first), (misrouted, 0), "{first}");
    let in_topic = messages_in_topic(&stack.bootstrap(), 3);
    assert_eq!(in_topic, (sent + misrouted) as i64);

    let again = with_db("restored");
    assert_eq!(applied(&again), sent as u64, "{again}");
    assert_eq!(forwarded(&again), (0, misrouted), "{again}");
    assert_eq!(
        messages_in_topic(&stack.bootstrap(), 3),
        in_topic,
        "read again, the topic grew"
    );

    // A reader in another group finds no mark there: it forwards them all again, and loses
    // nothing (the copies are applied once by their IDs).
    let other_group = {
        let mut args = stack.ingest_args(&["--until-caught-up", "--group", "another-group"]);
        let at = args.iter().position(|a| a == "--db").unwrap();
        args[at + 1] = stack.path("other-group");
        clv(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(applied(&other_group), sent as u64, "{other_group}");
    assert_eq!(forwarded(&other_group), (misrouted, 0), "{other_group}");
    assert_eq!(
        messages_in_topic(&stack.bootstrap(), 3),
        in_topic + misrouted as i64
    );
}

/// A third-party producer with librdkafka's default partitioner (confluent-kafka at its defaults)
/// puts most events on another partition than their customer's. Ingest forwards each to its
/// customer's partition instead of dead-lettering it; killed (a test switch aborts the process)
/// after the forwarded copies are acknowledged and before the batch's offsets are written, it
/// forwards them again when it restarts, and each event is still applied exactly once: the store
/// equals the offline snapshot, nothing is dead-lettered, the second copies are read again.
#[test]
fn a_default_partitioner_producer_loses_nothing_through_a_crash_between_forwarding_and_the_offset()
{
    let stack = Stack::start(60, 31, 3);
    let (sent, misrouted) =
        produce_with_default_partitioner(&stack.data, &stack.bootstrap(), "transactions", 3);
    assert_eq!(sent, stack.events);
    assert!(
        misrouted > sent / 3,
        "{misrouted} of {sent}: the default partitioner should scatter the customers"
    );

    let args = stack.ingest_args(&["--until-caught-up", "--crash-after-forwarding"]);
    let crashed = clv_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!crashed.status.success(), "the switch did not abort");
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert!(
        stderr.contains("crash-after-forwarding: aborting"),
        "{stderr}"
    );

    let out = stack.ingest_until_caught_up();
    assert_eq!(applied(&out), sent as u64, "{out}");
    assert!(out.contains(" 0 dead-lettered"), "{out}");
    let forwarded: usize = out
        .split(" forwarded to their customer's partition")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(forwarded, misrouted, "{out}");
    assert!(
        read_again(&out) > 0,
        "the copies forwarded before the crash and again after it are read again: {out}"
    );
    stack.store_equals_offline("2011-06-01");
}
