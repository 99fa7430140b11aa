//! Scale-out end to end: three `clv instance` processes (ingest of their partitions, scorer, routing)
//! on a topic of six partitions, on the embedded broker and on nisshi as a separate process. Every
//! customer, asked through every instance, gets the answer the registered model gives from the
//! offline features; then one instance is SIGKILLed and the survivors take its partitions over
//! (from warm standby copies with `--standby-replicas 1`: nothing to restore; without, restored from
//! the topic) and answer for everyone again; then a fourth joins, partitions move, and again every
//! answer is the offline one (nothing lost, nothing applied twice). While partitions move, a
//! question gets the right answer or a 503 with Retry-After, never a wrong one. On nisshi the data
//! comes from a producer with librdkafka's default partitioner: the events on the wrong partition
//! are forwarded to their customer's, none is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::nisshi::Nisshi;
use crate::common::stack::*;
use crate::common::*;
use serde_json::Value;
use trainer::training::Histories;

const PARTITIONS: u32 = 6;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// GET: status, the answering instance (`x-clv-instance`), `Retry-After`, body.
fn get(agent: &ureq::Agent, url: &str) -> (u16, Option<String>, Option<String>, String) {
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (by, retry) = (header("x-clv-instance"), header("retry-after"));
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), by, retry, body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Whether the data still streams in while [`Group::wait_settled`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streams {
    /// The replay is under way: earlier watermarks are expected.
    Yes,
    /// Every event is in: only the final answer or a 503.
    No,
}

/// The instances of a test, by ID: the process and its base URL.
struct Group<'a> {
    stack: &'a Stack,
    /// Flags every instance starts with (e.g. `--standby-replicas 1`).
    flags: Vec<String>,
    /// The offline snapshot's features at the group's `as_of`.
    features: Features,
    models: String,
    instances: BTreeMap<String, (Running, String)>,
    agent: ureq::Agent,
}

impl Group<'_> {
    fn start(&mut self, id: &str) {
        self.start_with(id, &[]);
    }

    fn start_with(&mut self, id: &str, extra: &[&str]) {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args: Vec<String> = [
            "instance",
            "--state-dir",
            &self.stack.path("state"),
            "--db",
            &self.stack.path(&format!("db-{id}")),
            "--models-dir",
            &self.models,
            "--listen",
            &listen,
            "--instance-id",
            id,
            "--session-timeout-ms",
            "6000",
            "--partitions",
            &PARTITIONS.to_string(),
            "--refresh-seconds",
            "0.2",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(self.stack.broker_args());
        args.extend(self.flags.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut process = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let base = format!("http://{listen}");
        wait_for(&format!("{id} to listen"), Duration::from_secs(30), || {
            if let Ok(Some(exit)) = process.0.try_wait() {
                panic!("{id} exited at start: {exit}");
            }
            try_http_get(&listen, "/health").is_ok()
        });
        self.instances.insert(id.to_string(), (process, base));
    }

    fn kill(&mut self, id: &str) {
        let (mut process, _) = self.instances.remove(id).expect("running");
        let _ = process.0.kill();
        let _ = process.0.wait();
    }

    /// Whether every instance's `/cluster` shows exactly the running instances, every partition
    /// owned once, and `more` holds of it (given the instance's base URL).
    fn every_view(&self, more: impl Fn(&str, &Value) -> bool) -> bool {
        let running: BTreeSet<&str> = self.instances.keys().map(String::as_str).collect();
        self.instances.values().all(|(_, base)| {
            let (status, _, _, body) = get(&self.agent, &format!("{base}/cluster"));
            if status != 200 {
                return false;
            }
            let cluster = json(&body);
            let members = cluster["members"].as_array().unwrap();
            let ids: BTreeSet<&str> = members.iter().map(|m| m["id"].as_str().unwrap()).collect();
            let owned: usize = members
                .iter()
                .map(|m| m["partitions"].as_object().unwrap().len())
                .sum();
            ids == running && owned == PARTITIONS as usize && more(base, &cluster)
        })
    }

    /// Whether the group has formed: every instance sees the running ones, and every partition
    /// owned once (no data needed).
    fn formed(&self) -> bool {
        self.every_view(|_, _| true)
    }

    /// Whether the group has formed, every partition is served, and every instance is ready at
    /// `as_of`.
    fn settled(&self, as_of: &str) -> bool {
        self.every_view(|base, cluster| {
            let serving = cluster["members"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| m["partitions"].as_object().unwrap().values())
                .all(|status| status["state"] == "serving");
            if !serving || !cluster["unserved"].as_object().unwrap().is_empty() {
                return false;
            }
            let (ready, _, _, body) = get(&self.agent, &format!("{base}/ready"));
            ready == 200 && json(&body)["as_of"] == as_of
        })
    }

    /// Waits until settled, asking for customers through the first instance meanwhile: each answer
    /// is the expected one or a 503 with Retry-After. While the data still `streams` in, an answer
    /// may be as of an earlier watermark (its value is not checked) or a 404 for a customer with no
    /// purchase before it yet; once it is all in, every 200 is as of `as_of` with the expected
    /// value, and nothing else but a 503 is accepted. Returns how many 503s it saw.
    fn wait_settled(&self, as_of: &str, expected: &[(u64, f64)], streams: Streams) -> usize {
        let started = Instant::now();
        let mut unavailable = 0;
        let mut i = 0;
        let (_, base) = self.instances.values().next().unwrap();
        while !self.settled(as_of) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the group did not settle: {}",
                self.describe()
            );
            for _ in 0..20 {
                let (id, clv) = expected[i % expected.len()];
                i += 7;
                let (status, _, retry, body) =
                    get(&self.agent, &format!("{base}/customers/{id}/clv"));
                match status {
                    200 => {
                        let body = json(&body);
                        if body["as_of"] == as_of {
                            let served = body["clv_6m"].as_f64().unwrap();
                            assert!((served - clv).abs() <= 0.006, "{id}: {served} vs {clv}");
                        } else {
                            assert_eq!(streams, Streams::Yes, "{id}: a stale answer: {body}");
                        }
                    }
                    503 => {
                        assert_eq!(retry.as_deref(), Some("1"), "{body}");
                        unavailable += 1;
                    }
                    // While the data still streams in, as_of (the group's watermark) is earlier
                    // and a later customer has no purchase before it yet.
                    404 if streams == Streams::Yes
                        && !body.contains(&format!("before {as_of}")) => {}
                    other => panic!("{id}: {other} while partitions move: {body}"),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unavailable
    }

    /// The sum of the samples of metric `name` (every label set) on instance `id`.
    fn metric(&self, id: &str, name: &str) -> f64 {
        let (_, base) = &self.instances[id];
        let metrics = get(&self.agent, &format!("{base}/metrics")).3;
        metric_sum(&metrics, name)
    }

    /// The partitions `id` owns, as its `/cluster` says.
    fn partitions_of(&self, id: &str) -> Vec<i32> {
        let (_, base) = &self.instances[id];
        let cluster = json(&get(&self.agent, &format!("{base}/cluster")).3);
        cluster["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in its own view: {cluster}"))["partitions"]
            .as_object()
            .unwrap()
            .keys()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    /// Each instance's standby partitions, as its `/cluster` says.
    fn standbys(&self) -> BTreeMap<String, Vec<i64>> {
        self.instances
            .iter()
            .map(|(id, (_, base))| {
                let cluster = json(&get(&self.agent, &format!("{base}/cluster")).3);
                let standbys = cluster["standbys"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{cluster}"))
                    .iter()
                    .map(|p| p.as_i64().unwrap())
                    .collect();
                (id.clone(), standbys)
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.instances
            .values()
            .map(|(_, base)| get(&self.agent, &format!("{base}/cluster")).3)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every customer through every instance equals the expected answer (its CLV, and the features
    /// it was scored from equal the offline snapshot's); every instance answers some of them itself
    /// (routing spreads them); the merged lists are the same everywhere.
    fn every_answer_is_the_offline_one(&self, as_of: &str, expected: &[(u64, f64)]) {
        let mut lists: Vec<(Value, Value)> = Vec::new();
        for (name, (_, base)) in &self.instances {
            let mut answered_by: BTreeMap<String, usize> = BTreeMap::new();
            // The partition map a client can route by: each customer's owner is who answers.
            let cluster = json(&get(&self.agent, &format!("{base}/cluster")).3);
            assert!(
                cluster["partitioner"]
                    .as_str()
                    .unwrap()
                    .starts_with("murmur2")
            );
            let owners = cluster["owners"].as_object().unwrap();
            assert_eq!(owners.len(), PARTITIONS as usize, "{cluster}");
            let mut redirected = false;
            for (id, clv) in expected {
                let (status, by, _, body) = get(&self.agent, &format!("{base}/customers/{id}/clv"));
                assert_eq!(status, 200, "{name}: customer {id}: {body}");
                let body = json(&body);
                assert_eq!(body["as_of"], as_of, "{body}");
                assert_eq!(body["customer_id"], *id);
                let served = body["clv_6m"].as_f64().unwrap();
                assert!((served - clv).abs() <= 0.006, "{id}: {served} vs {clv}");
                // The features it was scored from are the offline snapshot's.
                let offline = &self.features[id];
                for name in [
                    "recency_days",
                    "frequency",
                    "total_revenue",
                    "avg_order_value",
                    "tenure_days",
                    "active_months",
                ] {
                    let (online, offline) = (body["features"][name].as_f64(), offline.get(name));
                    assert!(
                        matches!((online, offline), (Some(a), Some(b)) if (a - b).abs() <= 1e-6 * b.abs().max(1.0) + 1e-3),
                        "{name} of {id}: {online:?} online, {offline:?} offline"
                    );
                }
                let by = by.expect("x-clv-instance");
                let partition = contract::partition::of_customer(*id, PARTITIONS);
                assert_eq!(owners[&partition.to_string()]["id"], by.as_str());
                // Asked for a redirect instead, a question for another owner is a 307 there.
                if by != *name && !redirected {
                    redirected = true;
                    let no_follow: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .max_redirects(0)
                        .build()
                        .into();
                    let response = no_follow
                        .get(format!("{base}/customers/{id}/clv"))
                        .header("x-clv-redirect", "1")
                        .call()
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 307);
                    let location = response.headers()["location"].to_str().unwrap();
                    let owner = owners[&partition.to_string()]["http"].as_str().unwrap();
                    assert_eq!(location, format!("{owner}/customers/{id}/clv"));
                }
                *answered_by.entry(by).or_default() += 1;
            }
            let answerers: BTreeSet<&str> = answered_by.keys().map(String::as_str).collect();
            let running: BTreeSet<&str> = self.instances.keys().map(String::as_str).collect();
            assert_eq!(answerers, running, "{name}: {answered_by:?}");
            // The features too, forwarded the same way.
            let (id, _) = expected[expected.len() / 2];
            let (status, _, _, body) = get(&self.agent, &format!("{base}/customers/{id}/features"));
            assert_eq!(status, 200, "{body}");

            // The page: a customer's page is routed like the API; the lists say whose they are.
            let (status, _, _, body) = get(&self.agent, &format!("{base}/customers/{id}"));
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(&format!("{id}")), "{body}");
            // The overview and the ranked list are the group's: every customer counted, the
            // first page the merged ranking's, the note says so.
            for page in ["/", "/customers"] {
                let (status, _, _, body) = get(&self.agent, &format!("{base}{page}"));
                assert_eq!(status, 200, "{page}: {body}");
                assert!(body.contains("The whole group"), "{page}: {body}");
                assert!(
                    body.contains(&format!("{} customers", expected.len())),
                    "{page}: {body}"
                );
            }
            // In the order of the merged top list (checked against the offline answers below).
            let top = json(&get(&self.agent, &format!("{base}/customers/top?k=50")).3);
            let ranked: Vec<(u64, f64)> = top["customers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["customer_id"].as_u64().unwrap(), 0.0))
                .collect();
            let (_, _, _, overview) = get(&self.agent, &format!("{base}/"));
            let (_, _, _, list) = get(&self.agent, &format!("{base}/customers"));
            for (page, body, n) in [("/", &overview, 10), ("/customers", &list, 50)] {
                let at: Vec<usize> = ranked
                    .iter()
                    .take(n.min(ranked.len()))
                    .map(|(id, _)| {
                        body.find(&format!("<a href=\"/customers/{id}\">{id}</a>"))
                            .unwrap_or_else(|| panic!("{page} of {name} lacks customer {id}"))
                    })
                    .collect();
                assert!(
                    at.windows(2).all(|w| w[0] < w[1]),
                    "{page} of {name}: out of order"
                );
            }
            let (status, _, _, body) = get(&self.agent, &format!("{base}/at-risk"));
            assert_eq!(status, 200, "{body}");

            // The merged top list holds everyone, in order, each at its own answer.
            let k = expected.len();
            let (status, _, _, body) = get(&self.agent, &format!("{base}/customers/top?k={k}"));
            assert_eq!(status, 200, "{body}");
            let top = json(&body);
            assert_eq!(top["as_of"], as_of);
            let rows = top["customers"].as_array().unwrap().clone();
            assert_eq!(rows.len(), expected.len());
            let by_id: BTreeMap<u64, f64> = expected.iter().copied().collect();
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(row["rank"], i + 1);
                let clv = by_id[&row["customer_id"].as_u64().unwrap()];
                assert!(
                    (row["clv_6m"].as_f64().unwrap() - clv).abs() <= 0.006,
                    "{row}"
                );
            }
            assert!(
                rows.windows(2)
                    .all(|w| w[0]["clv_6m"].as_f64() >= w[1]["clv_6m"].as_f64())
            );
            let (status, _, _, body) = get(&self.agent, &format!("{base}/customers/at-risk?k=50"));
            assert_eq!(status, 200, "{body}");
            let at_risk = json(&body);
            assert!(!at_risk["customers"].as_array().unwrap().is_empty());
            lists.push((top["customers"].clone(), at_risk["customers"].clone()));
        }
        assert!(lists.windows(2).all(|w| w[0] == w[1]), "the lists differ");
    }
}

/// The registry trained on the stack's data, the group's `as_of` and every customer's expected CLV
/// (the registered model on the offline features at that `as_of`).
/// Each customer's features in the offline snapshot at `as_of` (`clv snapshot --input`), by name.
type Features = BTreeMap<u64, BTreeMap<String, f64>>;

fn offline_features(stack: &Stack, as_of: &str) -> Features {
    let out = stack.path(&format!("offline-{as_of}.csv"));
    clv(&[
        "snapshot",
        "--cutoff",
        as_of,
        "--input",
        stack.data.to_str().unwrap(),
        "--out",
        &out,
    ]);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let names: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let id: u64 = r[0].parse().unwrap();
            let values = names
                .iter()
                .zip(r.iter())
                .skip(1)
                .filter_map(|(n, v)| Some((n.clone(), v.parse::<f64>().ok()?)))
                .collect();
            (id, values)
        })
        .collect()
}

fn expected(stack: &Stack) -> (String, String, Vec<(u64, f64)>) {
    let models = stack.train();
    let as_of = group_as_of(stack);
    let expected = expected_clv(
        &stack.data,
        std::path::Path::new(&models),
        "v0001",
        as_of.parse().unwrap(),
    );
    (models, as_of, expected)
}

/// The `as_of` of a group over the stack's data, all of it in.
fn group_as_of(stack: &Stack) -> String {
    let loaded = dataset::normalised::load(&stack.data, &indicatif::ProgressBar::hidden()).unwrap();
    let histories = Histories::from_lines(polars::prelude::IntoLazy::lazy(loaded.frame)).unwrap();
    // The group's watermark is the rule over every partition (each customer in the partition the
    // producers' partitioner gives it), as one store holding all of them would compute it.
    let mut marks: BTreeMap<i32, contract::watermark::PartitionMark> = BTreeMap::new();
    for (id, state) in histories.customers() {
        if let Some(latest) = state.purchases.values().map(|p| p.time_ms).max() {
            marks
                .entry(contract::partition::of_customer(*id, PARTITIONS))
                .or_default()
                .observe(*id, latest);
        }
    }
    let watermark = contract::watermark::watermark(marks.values()).unwrap();
    scorer::population::as_of_watermark(watermark)
        .unwrap()
        .to_string()
}

/// The sum of the high watermarks of `partitions` of the transactions topic.
fn high_watermarks(bootstrap: &str, partitions: &[i32]) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    partitions
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks("transactions", *p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

/// The sum of the samples of `name` (any labels) in a Prometheus text exposition.
fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The instances of [`scenario`] keep standby copies, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standby {
    /// `--standby-replicas 1`: the killed instance's partitions go to warm copies.
    One,
    /// None: the survivors restore them from the topic.
    None,
}

/// Who sends the data in [`scenario`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// `clv replay` (the contract's partitioner).
    Replay,
    /// confluent-kafka at its defaults (librdkafka's `consistent_random`): most events land on
    /// another partition than their customer's and are forwarded there by whoever reads them.
    DefaultPartitioner,
}

fn scenario(stack: &Stack, standby: Standby, producer: Producer) {
    let (models, as_of, expected) = expected(stack);
    let mut group = Group {
        stack,
        flags: match standby {
            Standby::One => vec!["--standby-replicas".into(), "1".into()],
            Standby::None => vec![],
        },
        features: offline_features(stack, &as_of),
        models,
        instances: BTreeMap::new(),
        agent: agent(),
    };
    for id in ["i-1", "i-2", "i-3"] {
        group.start(id);
    }
    // The three have their partitions before any event is sent. Otherwise the first to start may
    // read a partition whole before a later one takes it from it, and later, when the killed
    // instance's partitions come back to it, it has them already: nothing to restore (seen on
    // nisshi, where members join more slowly), which the test below cannot tell from a warm copy.
    wait_for("the group to form", Duration::from_secs(60), || {
        group.formed()
    });
    match producer {
        Producer::Replay => {
            let replayed = stack.replay();
            assert!(
                replayed.contains(&format!("{} events sent", stack.events)),
                "{replayed}"
            );
        }
        Producer::DefaultPartitioner => {
            let (sent, misrouted) = produce_with_default_partitioner(
                &stack.data,
                &stack.bootstrap(),
                "transactions",
                PARTITIONS,
            );
            assert_eq!(sent, stack.events);
            assert!(misrouted > sent / 2, "{misrouted} of {sent}");
        }
    }
    group.wait_settled(&as_of, &expected, Streams::Yes);
    group.every_answer_is_the_offline_one(&as_of, &expected);
    if producer == Producer::DefaultPartitioner {
        // Every event applied once on its customer's partition (the answers above), none
        // dead-lettered: the ones on the wrong partition were forwarded.
        let ids: Vec<String> = group.instances.keys().cloned().collect();
        let forwarded: f64 = ids
            .iter()
            .map(|id| group.metric(id, "clv_ingest_events_repartitioned_total"))
            .sum();
        assert!(forwarded > 0.0, "nothing forwarded");
        for id in &ids {
            let (_, base) = &group.instances[id];
            let metrics = get(&group.agent, &format!("{base}/metrics")).3;
            let dead: f64 = metrics
                .lines()
                .filter(|l| {
                    l.starts_with("clv_ingest_events_total{") && l.contains("dead_lettered")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            assert_eq!(dead, 0.0, "{id} dead-lettered events");
        }
    }
    if standby == Standby::One {
        // The range assignor gives i-1 0..2, i-2 2..4, i-3 4..6; without i-2, i-1 gets 0..3 and
        // i-3 3..6; without i-1, i-2 gets 0..3; without i-3, i-2 gets 3..6.
        let expected_standbys: BTreeMap<String, Vec<i64>> = [
            ("i-1".to_string(), vec![2]),
            ("i-2".to_string(), vec![0, 1, 4, 5]),
            ("i-3".to_string(), vec![3]),
        ]
        .into();
        wait_for("the standby copies", Duration::from_secs(60), || {
            group.standbys() == expected_standbys
                && ["i-1", "i-3"].iter().all(|id| {
                    group.metric(id, "clv_ingest_standby_partitions") >= 1.0
                        && group.metric(id, "clv_ingest_standby_lag") == 0.0
                })
        });
    }
    // The killed instance's partitions, and every message in them (the topic is new: from offset
    // 0), which the survivors read whole without standbys.
    let killed_partitions = group.partitions_of("i-2");
    let in_killed_partitions = high_watermarks(&stack.bootstrap(), &killed_partitions);
    let restored_before: BTreeMap<&str, f64> = ["i-1", "i-3"]
        .iter()
        .map(|id| (*id, group.metric(id, "clv_ingest_restored_messages_total")))
        .collect();

    // One killed: its partitions go to the survivors, which restore them from the topic. Until
    // they do, a question for one of them is a 503 (the prober asks 20 every 100 ms, a third of
    // them for the killed instance's partitions, for at least the 6 s session timeout).
    group.kill("i-2");
    let unavailable = group.wait_settled(&as_of, &expected, Streams::No);
    eprintln!(
        "after the kill: {unavailable} answers were 503 with Retry-After while partitions moved"
    );
    assert!(
        unavailable > 0,
        "no 503 while the killed instance's partitions moved"
    );
    group.every_answer_is_the_offline_one(&as_of, &expected);
    // What the survivors read from the topic to take the killed instance's partitions over: with
    // warm standbys nothing (they held them up to the moment of the kill), without them every
    // event of those partitions.
    let restored: f64 = restored_before
        .iter()
        .map(|(id, before)| group.metric(id, "clv_ingest_restored_messages_total") - before)
        .sum();
    eprintln!("after the kill: the survivors restored {restored} messages ({standby:?} standby)");
    match standby {
        Standby::One => assert_eq!(restored, 0.0, "a standby was not warm"),
        // Every message the killed instance's partitions held, and the copies forwarded into them
        // while they were read: nisshi 0.8.1 keeps no offset-commit metadata (its OffsetFetch
        // answers none), so the group's offsets carry no mark of what was forwarded and the
        // survivors forward the misrouted events they read again (applied once by their IDs).
        // Where the broker keeps it, they do not: `stream::a_misrouted_event_is_forwarded_once_..`.
        Standby::None => assert!(
            restored >= in_killed_partitions as f64,
            "without standbys, the {in_killed_partitions} messages of partitions {killed_partitions:?}"
        ),
    }

    // A fourth joins with an empty store: partitions move to it, and it restores them.
    group.start("i-4");
    group.wait_settled(&as_of, &expected, Streams::No);
    let (_, base) = &group.instances["i-4"];
    let cluster = json(&get(&group.agent, &format!("{base}/cluster")).3);
    assert!(
        !cluster["partitions"].as_object().unwrap().is_empty(),
        "the new instance got no partition: {cluster}"
    );
    group.every_answer_is_the_offline_one(&as_of, &expected);
    // The restores are visible as metrics.
    let metrics = get(&group.agent, &format!("{base}/metrics")).3;
    let restores: f64 = metrics
        .lines()
        .find(|l| l.starts_with("clv_ingest_restores_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(restores >= 1.0, "{metrics}");
    assert!(
        metrics.contains("clv_ingest_partition_restoring{"),
        "{metrics}"
    );
}

#[test]
fn three_instances_with_standbys_on_the_embedded_broker_answer_for_everyone_through_a_kill_and_a_join()
 {
    let stack = Stack::start(300, 21, PARTITIONS);
    scenario(&stack, Standby::One, Producer::Replay);
}

#[test]
fn three_instances_on_nisshi_fed_by_a_default_partitioner_answer_for_everyone_through_a_kill_and_a_join()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 300, 22);
    let events = count_with_customer(&data);
    let broker = Nisshi::start(dir.path(), "memory://nisshi/");
    let stack = Stack::external(dir, data, events, broker.bootstrap, Some(broker.process));
    scenario(&stack, Standby::None, Producer::DefaultPartitioner);
}

/// A broker outage: an instance on nisshi (SQLite storage, so that a restart keeps the topic) that
/// has lost contact with the broker for half the session timeout stops answering for its partitions
/// (by the whole timeout the group could give them to another member, which would then be a second
/// owner): 503 with Retry-After, never a stale answer, and `/ready` says so. When the broker is
/// back, the partitions are confirmed (or assigned again), restored from where the store left off,
/// and every answer is again the offline one.
#[test]
fn an_instance_cut_off_from_the_broker_stops_answering_for_its_partitions_then_serves_again() {
    one_instance_on_nisshi(&[], |group, broker, as_of, expected| {
        let (_, base) = &group.instances["i-1"];

        broker.kill();
        let killed = Instant::now();
        let (id, _) = expected[0];
        wait_for(
            "the instance to stop serving",
            Duration::from_secs(30),
            || get(&group.agent, &format!("{base}/customers/{id}/clv")).0 == 503,
        );
        let stopped = killed.elapsed();
        assert!(
            stopped < Duration::from_secs(6),
            "served {stopped:?} after the broker went away"
        );
        // Past the session timeout too: still no answer from a state another owner may have.
        std::thread::sleep(Duration::from_secs(4));
        for (id, _) in expected.iter().take(20) {
            let (status, _, retry, body) = get(&group.agent, &format!("{base}/customers/{id}/clv"));
            assert_eq!(status, 503, "{id}: {body}");
            assert_eq!(retry.as_deref(), Some("1"));
        }
        let (status, _, _, body) = get(&group.agent, &format!("{base}/ready"));
        assert_eq!(status, 503, "{body}");

        broker.restart();
        group.wait_settled(as_of, expected, Streams::No);
        group.every_answer_is_the_offline_one(as_of, expected);
    });
}

/// What the fence prevents, shown: the same outage with the fence off (a hidden switch for this
/// test), and the instance keeps answering from its partitions past half the session timeout,
/// where the test above proves the fence stops it, on towards the whole timeout, when the group may
/// give them to another member (the broker's clock for the session is not the instance's). Without
/// the fence only librdkafka's own session timeout, seen at the next poll, takes them away.
#[test]
fn without_the_fence_an_instance_cut_off_from_the_broker_keeps_answering_past_half_the_session_timeout()
 {
    one_instance_on_nisshi(&["--no-fence"], |group, broker, _, expected| {
        let (_, base) = &group.instances["i-1"];
        broker.kill();
        // Past half the 6 s session timeout, where a fenced instance answers 503.
        std::thread::sleep(Duration::from_secs(4));
        for (id, _) in expected.iter().take(20) {
            let (status, _, _, body) = get(&group.agent, &format!("{base}/customers/{id}/clv"));
            assert_eq!(status, 200, "{id}: {body}");
        }
    });
}

/// SIGTERM while the broker is gone stops `clv instance` (ingest, membership, scorer) within
/// seconds, as it does `clv ingest` (`stream::sigterm_with_the_broker_gone_...`): no thread waits
/// out a broker call's full timeout, nor a final commit to a broker that is not there.
#[test]
fn sigterm_with_the_broker_gone_stops_an_instance_within_seconds() {
    one_instance_on_nisshi(&[], |group, broker, _, expected| {
        let (_, base) = &group.instances["i-1"];
        let (id, _) = expected[0];
        broker.kill();
        wait_for(
            "the instance to notice the broker gone",
            Duration::from_secs(30),
            || get(&group.agent, &format!("{base}/customers/{id}/clv")).0 == 503,
        );
        // Into the calls that follow the first failures.
        std::thread::sleep(Duration::from_secs(2));
        let (mut process, _) = group.instances.remove("i-1").expect("running");
        let (out, took) = sigterm_timed(&mut process);
        assert!(
            took < Duration::from_secs(5),
            "the instance took {took:?} to stop after SIGTERM with the broker gone: {out}"
        );
        assert!(out.contains("instance i-1 stopped"), "{out}");
    });
}

/// One instance (started with `extra` flags) on nisshi with SQLite storage (a restart keeps the
/// topic), the generated data replayed and every answer the offline one; then `check` with the
/// group, the broker, the group's `as_of` and the expected answers.
fn one_instance_on_nisshi(
    extra: &[&str],
    check: impl FnOnce(&mut Group<'_>, &mut Nisshi, &str, &[(u64, f64)]),
) {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 150, 23);
    let events = count_with_customer(&data);
    let mut broker = Nisshi::start(dir.path(), "sqlite://nisshi.db");
    let stack = Stack::external(dir, data, events, broker.bootstrap.clone(), None);
    let (models, as_of, expected) = expected(&stack);
    let mut group = Group {
        stack: &stack,
        flags: vec![],
        features: offline_features(&stack, &as_of),
        models,
        instances: BTreeMap::new(),
        agent: agent(),
    };
    group.start_with("i-1", extra);
    stack.replay();
    group.wait_settled(&as_of, &expected, Streams::Yes);
    group.every_answer_is_the_offline_one(&as_of, &expected);
    check(&mut group, &mut broker, &as_of, &expected);
}

/// The embedded broker keeps only ~5 MiB of each partition, so after the real data it no longer
/// holds the beginning of the topic and a partition cannot be restored from it. With
/// `--checkpoint-dir`, the instances write checkpoints of their partitions to a shared folder; a
/// third instance joining with an empty store loads them and reads only the rest of the topic, and
/// the group's answers (the merged list of every customer) are the same before and after.
#[test]
fn on_the_embedded_broker_a_joining_instance_restores_the_real_data_from_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    // Any production model will do: the answers are compared before and after the join.
    let small = generate(dir.path(), 60, 41);
    let models = dir.path().join("models").to_str().unwrap().to_string();
    clv(&[
        "train",
        "--input",
        small.to_str().unwrap(),
        "--models-dir",
        &models,
        "--backtests",
        "0",
    ]);
    let stack = Stack::embedded(dir, real_csv(), 809_561, PARTITIONS);
    let as_of = group_as_of(&stack);
    let checkpoints = stack.path("checkpoints");
    let mut group = Group {
        stack: &stack,
        flags: [
            "--checkpoint-dir",
            &checkpoints,
            "--checkpoint-seconds",
            "1",
            "--max-top",
            "10000",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        features: Features::new(),
        models,
        instances: BTreeMap::new(),
        agent: agent(),
    };
    group.start("i-1");
    group.start("i-2");
    stack.replay();
    wait_for("two instances to settle", Duration::from_secs(300), || {
        group.settled(&as_of)
    });

    // The broker dropped the beginning of the topic; each partition's newest checkpoint reaches
    // its end.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", stack.bootstrap())
        .create()
        .unwrap();
    let watermarks: Vec<(i64, i64)> = (0..PARTITIONS as i32)
        .map(|p| {
            consumer
                .fetch_watermarks("transactions", p, Duration::from_secs(10))
                .unwrap()
        })
        .collect();
    assert!(
        watermarks.iter().all(|(low, _)| *low > 0),
        "the broker still holds the whole topic: {watermarks:?}"
    );
    let newest = |p: usize| -> i64 {
        std::fs::read_dir(format!(
            "{checkpoints}/transactions/p{p}.layout{}",
            featurestore::LAYOUT
        ))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .max()
                .unwrap_or(-1)
        })
        .unwrap_or(-1)
    };
    wait_for(
        "every partition's checkpoint",
        Duration::from_secs(60),
        || {
            watermarks
                .iter()
                .enumerate()
                .all(|(p, (_, high))| newest(p) == *high)
        },
    );
    let list = |group: &Group<'_>, id: &str| -> Value {
        let (_, base) = &group.instances[id];
        let (status, _, _, body) = get(&group.agent, &format!("{base}/customers/top?k=10000"));
        assert_eq!(status, 200, "{body}");
        let list = json(&body);
        assert_eq!(list["as_of"], as_of.as_str());
        list["customers"].clone()
    };
    let before = list(&group, "i-1");
    assert!(before.as_array().unwrap().len() > 5_000, "{before}");

    group.start("i-3");
    // Settled with partitions on the new one (it is in the view before the group rebalances).
    wait_for(
        "three instances to settle",
        Duration::from_secs(120),
        || {
            let (_, base) = &group.instances["i-3"];
            let cluster = json(&get(&group.agent, &format!("{base}/cluster")).3);
            !cluster["partitions"].as_object().unwrap().is_empty() && group.settled(&as_of)
        },
    );
    assert!(group.metric("i-3", "clv_ingest_checkpoints_loaded_total") >= 1.0);
    assert_eq!(
        list(&group, "i-3"),
        before,
        "the group's answers changed with the join"
    );
    assert_eq!(list(&group, "i-1"), before);
}

/// `clv demo --instances 3`: the main job scaled out on the embedded default. After streaming and
/// training it prints three instances (address, process ID); SIGKILL of one while the demo runs,
/// and the two others serve every partition again with the same answers (the group's summary and
/// merged list unchanged); the demo SIGKILLed then, its instances stop with it.
#[test]
fn the_demo_with_three_instances_survives_a_sigkill_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut demo = spawn_drained(&[
        "demo",
        "--synthetic",
        "--synthetic-customers",
        "300",
        "--dir",
        dir.path().join("demo").to_str().unwrap(),
        "--listen",
        &listen,
        "--instances",
        "3",
    ]);
    wait_for("the demo's instances", Duration::from_secs(400), || {
        demo.output().contains("Ctrl-C stops everything")
    });
    let out = demo.output();
    // "  i-2   http://127.0.0.1:43133    23332    /tmp/.../i-2.log"
    let instances: BTreeMap<String, (String, u32)> = out
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next()?.strip_prefix("i-")?;
            let http = words.next()?.to_string();
            let pid = words.next()?.parse().ok()?;
            Some((format!("i-{id}"), (http, pid)))
        })
        .collect();
    assert_eq!(instances.len(), 3, "{out}");
    assert_eq!(instances["i-1"].0, format!("http://{listen}"));
    let agent = agent();
    let base = &instances["i-1"].0;
    let group_answers = |agent: &ureq::Agent| {
        let summary = json(&get(agent, &format!("{base}/customers/summary")).3);
        let top = json(&get(agent, &format!("{base}/customers/top?k=1000")).3);
        (summary, top["customers"].clone())
    };
    let (summary, top) = group_answers(&agent);
    assert!(summary["customers"].as_u64().unwrap() > 250, "{summary}");
    // Every instance answers the same.
    for (http, _) in instances.values() {
        let other = json(&get(&agent, &format!("{http}/customers/top?k=1000")).3);
        assert_eq!(other["customers"], top);
    }

    let (_, victim) = &instances["i-2"];
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(
        "the survivors to serve everything",
        Duration::from_secs(60),
        || {
            let cluster = json(&get(&agent, &format!("{base}/cluster")).3);
            let owners: BTreeSet<&str> = cluster["owners"]
                .as_object()
                .unwrap()
                .values()
                .map(|o| o["id"].as_str().unwrap())
                .collect();
            cluster["unserved"].as_object().unwrap().is_empty()
                && cluster["owners"].as_object().unwrap().len() == 4
                && !owners.contains("i-2")
        },
    );
    assert_eq!(group_answers(&agent), (summary, top));
    wait_for("the demo to say so", Duration::from_secs(10), || {
        demo.output().contains("instance i-2 exited")
    });
    // The demo itself SIGKILLed (no chance to stop its instances): they stop with it, not left
    // running on their own (their standard input, a pipe from the demo, closes).
    demo.kill();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    wait_for(
        "the instances to stop with the demo",
        Duration::from_secs(40),
        || instances.values().all(|(_, pid)| !alive(*pid)),
    );
}
