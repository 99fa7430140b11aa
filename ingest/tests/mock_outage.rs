//! A broker outage on librdkafka's mock cluster, in process: the broker goes down while ingest runs
//! and a producer keeps sending, stays down 15 s, and comes back. Ingest does not exit, applies
//! nothing while it is away, and then applies every event exactly once. (The 60 s outage of a real
//! broker process is `clv::stream replay_and_ingest_survive_a_60_s_broker_outage`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use contract::event::TransactionEvent;
use featurestore::store::RocksStore;
use ingest::broker::BrokerConfig;
use ingest::consume::{Ingest, IngestOptions};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

enum Control {
    Down,
    Up,
}

/// A mock cluster of one broker on its own thread (it cannot move between threads), taken down and
/// up through the channel; its address.
fn cluster() -> (String, mpsc::Sender<Control>) {
    let (address_tx, address_rx) = mpsc::channel();
    let (control_tx, control_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("transactions", 2, 1).unwrap();
        cluster.create_topic("transactions.dlq", 2, 1).unwrap();
        address_tx.send(cluster.bootstrap_servers()).unwrap();
        for control in control_rx {
            match control {
                Control::Down => cluster.broker_down(1).unwrap(),
                Control::Up => cluster.broker_up(1).unwrap(),
            }
        }
    });
    (address_rx.recv().unwrap(), control_tx)
}

fn event(n: u64) -> TransactionEvent<'static> {
    TransactionEvent {
        schema_version: 1,
        event_id: format!("outage:{n}").into(),
        customer_id: 1 + n % 40,
        invoice: (500_000 + n).to_string().into(),
        stock_code: "X".into(),
        description: None,
        quantity: 1,
        invoice_date: chrono::DateTime::from_timestamp(1_300_000_000 + n as i64 * 60, 0).unwrap(),
        price: 2.5,
        country: None,
    }
}

fn send(producer: &BaseProducer, events: std::ops::Range<u64>) {
    for n in events {
        let e = event(n);
        let (key, value) = (e.customer_id.to_string(), e.encode());
        producer
            .send(BaseRecord::to("transactions").key(&key).payload(&value))
            .unwrap();
        producer.poll(Duration::ZERO);
    }
}

fn applied(store: &RocksStore) -> usize {
    store.events().unwrap() as usize
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ingest_rides_out_a_mock_broker_outage() {
    let (bootstrap, control) = cluster();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RocksStore::open(dir.path()).unwrap());
    let config = BrokerConfig {
        bootstrap_servers: bootstrap.clone(),
        embedded: true,
        options: Vec::new(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let ingest = {
        let (config, store, stop) = (config.clone(), store.clone(), stop.clone());
        std::thread::spawn(move || {
            let options = IngestOptions {
                session_timeout: Duration::from_secs(6),
                instance_id: Some("outage-1".into()),
                ..IngestOptions::default()
            };
            Ingest::connect(&config, store, options)?.run(&stop)
        })
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    send(&producer, 0..1_000);
    producer.flush(Duration::from_secs(30)).unwrap();
    wait_for("the first 1,000 events", Duration::from_secs(60), || {
        applied(&store) == 1_000
    });

    control.send(Control::Down).unwrap();
    send(&producer, 1_000..2_000); // queued by the producer while the broker is away
    std::thread::sleep(Duration::from_secs(15));
    assert!(!ingest.is_finished(), "ingest exited during the outage");
    assert_eq!(
        applied(&store),
        1_000,
        "nothing arrives while the broker is down"
    );
    control.send(Control::Up).unwrap();
    producer.flush(Duration::from_secs(60)).unwrap();
    wait_for(
        "every event after the outage",
        Duration::from_secs(90),
        || applied(&store) == 2_000,
    );
    stop.store(true, Ordering::Relaxed);
    let summary = ingest
        .join()
        .unwrap()
        .expect("ingest ran through the outage");
    assert_eq!(summary.counts.duplicates, 0, "{summary:?}");
    assert_eq!(
        summary.counts.applied.values().sum::<u64>(),
        2_000,
        "{summary:?}"
    );
}
