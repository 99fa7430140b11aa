//! Where the Kafka cluster is: a real bootstrap list, or the embedded broker (librdkafka's mock cluster,
//! a real Kafka-protocol broker in-process that other processes reach over TCP).
//!
//! The embedded broker keeps only about 5 MiB per partition and silently drops older messages, so replay
//! into it applies backpressure (see [`crate::replay`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::{IngestError, Result};

/// The file in the state directory where `clv broker` writes its bootstrap address.
pub const BROKER_FILE: &str = "broker.addr";

/// How to reach Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Whether this is the embedded mock cluster (it keeps little: replay must not outrun the consumer).
    pub embedded: bool,
}

impl BrokerConfig {
    /// `--brokers` when given, else the address the embedded broker wrote into `state_dir`.
    pub fn resolve(brokers: Option<&str>, state_dir: &Path) -> Result<Self> {
        if let Some(list) = brokers {
            return Ok(BrokerConfig {
                bootstrap_servers: list.to_string(),
                embedded: false,
            });
        }
        let file = state_dir.join(BROKER_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => Ok(BrokerConfig {
                bootstrap_servers: text.trim().to_string(),
                embedded: true,
            }),
            _ => Err(IngestError::NoBroker(file)),
        }
    }
}

/// The embedded broker, running on its own thread (the mock cluster cannot move between threads) until
/// dropped.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    file: Option<PathBuf>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster with `topics` (name, partitions) created.
    pub fn start(topics: &[(&str, i32)]) -> Result<Self> {
        let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = MockCluster::new(1).and_then(|cluster| {
                    for (topic, partitions) in &topics {
                        cluster.create_topic(topic, *partitions, 1)?;
                    }
                    Ok(cluster)
                });
                match cluster {
                    Ok(cluster) => {
                        let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                        let _ = stop_rx.recv(); // until stopped or dropped
                        drop(cluster);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|source| IngestError::Io {
                path: "embedded-kafka thread".into(),
                source,
            })?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| IngestError::Io {
                path: "embedded-kafka thread".into(),
                source: std::io::Error::other("the broker thread ended"),
            })?
            .map_err(IngestError::kafka("starting the embedded broker"))?;
        Ok(EmbeddedBroker {
            bootstrap_servers,
            stop: Some(stop_tx),
            thread: Some(thread),
            file: None,
        })
    }

    /// Its bootstrap address.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Writes the address to `state_dir/broker.addr` (removed again when the broker stops), so that
    /// other processes find it.
    pub fn advertise(&mut self, state_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(state_dir).map_err(|source| IngestError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let file = state_dir.join(BROKER_FILE);
        std::fs::write(&file, &self.bootstrap_servers).map_err(|source| IngestError::Io {
            path: file.clone(),
            source,
        })?;
        self.file = Some(file.clone());
        Ok(file)
    }

    /// The config that reaches it.
    pub fn config(&self) -> BrokerConfig {
        BrokerConfig {
            bootstrap_servers: self.bootstrap_servers.clone(),
            embedded: true,
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = std::fs::remove_file(file);
        }
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
