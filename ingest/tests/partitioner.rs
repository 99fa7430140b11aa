//! Where clv's producers put a customer is where `contract::partition` says, which is Kafka's Java
//! default (murmur2): checked against librdkafka's own partitioner through a real (mock) broker, both
//! for `clv send` and for replay.

use std::sync::mpsc;
use std::time::Duration;

use chrono::NaiveDate;
use contract::event::TransactionEvent;
use contract::partition;
use ingest::broker::BrokerConfig;
use ingest::send::send;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;

const PARTITIONS: i32 = 6;

fn cluster() -> String {
    let (address_tx, address_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("transactions", PARTITIONS, 1).unwrap();
        address_tx.send(cluster.bootstrap_servers()).unwrap();
        std::thread::park();
    });
    address_rx.recv().unwrap()
}

fn event(customer_id: u64) -> TransactionEvent<'static> {
    TransactionEvent {
        schema_version: 1,
        event_id: format!("p:{customer_id}").into(),
        customer_id,
        invoice: "1".into(),
        stock_code: "X".into(),
        description: None,
        quantity: 1,
        invoice_date: NaiveDate::from_ymd_opt(2011, 1, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap()
            .and_utc(),
        price: 1.0,
        country: None,
    }
}

#[test]
fn producers_partition_by_kafkas_murmur2() {
    let bootstrap = cluster();
    let config = BrokerConfig {
        bootstrap_servers: bootstrap.clone(),
        embedded: true,
        options: Vec::new(),
    };
    let customers: Vec<u64> = (0..60)
        .map(|i| 12_000 + i * 37)
        .chain([1, (1 << 53) - 1])
        .collect();
    let mut partitions_used = std::collections::BTreeSet::new();
    for &customer in &customers {
        let delivered = send(&config, "transactions", &event(customer)).unwrap();
        assert_eq!(
            delivered.partition,
            partition::of_customer(customer, PARTITIONS as u32),
            "customer {customer}"
        );
        partitions_used.insert(delivered.partition);
    }
    assert_eq!(
        partitions_used.len(),
        PARTITIONS as usize,
        "spread over every partition"
    );
    // What a consumer reads back: each message on its customer's partition.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["transactions"]).unwrap();
    let mut seen = 0;
    let started = std::time::Instant::now();
    while seen < customers.len() && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let key: u64 = std::str::from_utf8(message.key().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                message.partition(),
                partition::of_customer(key, PARTITIONS as u32)
            );
            seen += 1;
        }
    }
    assert_eq!(seen, customers.len());
}

/// The Python client third-party producers use: `$CLV_CONFLUENT_PYTHON`, else the virtualenv
/// `scripts/setup.sh` installs confluent-kafka into.
fn confluent_python() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("CLV_CONFLUENT_PYTHON") {
        return path.into();
    }
    let tools = std::env::var_os("CLV_TOOLS_DIR").unwrap_or_else(|| "/var/cache/clv-tools".into());
    std::path::Path::new(&tools).join("confluent/bin/python")
}

/// A confluent-kafka (Python) producer configured as the README tells third-party producers
/// (`partitioner=murmur2_random`, the customer ID as the key) puts every customer on the partition
/// `contract::partition` gives, which is where `clv replay` and `clv send` put it (above) and where
/// an instance's router looks for its owner (`scorer::route`).
#[test]
fn a_confluent_kafka_producer_and_the_router_agree() {
    let bootstrap = cluster();
    let python = confluent_python();
    assert!(
        python.exists(),
        "{} is missing: scripts/setup.sh installs confluent-kafka there",
        python.display()
    );
    let customers: Vec<u64> = (0..200)
        .map(|i| 12_000 + i * 53)
        .chain([1, 9, 99_999, (1 << 53) - 1])
        .collect();
    let keys: Vec<String> = customers.iter().map(u64::to_string).collect();
    let script = r#"
import json, sys
from confluent_kafka import Producer
bootstrap, keys = sys.argv[1], sys.argv[2].split(",")
producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
placed = {}
def delivered(err, msg):
    if err is not None:
        raise SystemExit(f"delivery failed: {err}")
    placed[msg.key().decode()] = msg.partition()
for key in keys:
    producer.produce("transactions", key=key.encode(), value=b"{}", on_delivery=delivered)
producer.flush(30)
print(json.dumps(placed))
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script, &bootstrap, &keys.join(",")])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let placed: std::collections::BTreeMap<String, i32> =
        serde_json::from_slice(&output.stdout).expect("the partitions as JSON");
    assert_eq!(placed.len(), customers.len());
    let mut used = std::collections::BTreeSet::new();
    for customer in &customers {
        let partition = placed[&customer.to_string()];
        assert_eq!(
            partition,
            partition::of_customer(*customer, PARTITIONS as u32),
            "customer {customer}"
        );
        used.insert(partition);
    }
    assert_eq!(used.len(), PARTITIONS as usize);
}
