//! Where the Kafka cluster is: a real bootstrap list, or the embedded broker (librdkafka's mock cluster,
//! a real Kafka-protocol broker in-process that other processes reach over TCP).
//!
//! The embedded broker keeps only about 5 MiB per partition and silently drops older messages, so replay
//! into it applies backpressure (see [`crate::replay`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, Producer};

use crate::{IngestError, Result};

/// How long the embedded broker waits for more members when a consumer group forms: Kafka's
/// `group.initial.rebalance.delay.ms`, 3 s by default (and in librdkafka's mock cluster), which
/// Kafka's documentation advises lowering for development and tests. Every start of ingest on the
/// embedded broker waited it out; members started together (`clv demo --instances`) still join in
/// one round.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(250);

/// A client that owns a one-broker mock cluster (`test.mock.num.brokers`), which lives as long as
/// the client.
fn mock_cluster() -> KafkaResult<BaseProducer> {
    ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()
}

/// Sets the mock cluster's `group.initial.rebalance.delay.ms` (no safe binding exists for it).
#[allow(unsafe_code)]
fn set_initial_rebalance_delay<C: ClientContext>(client: &Client<C>, delay: Duration) {
    let ms = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `client` is a live handle for the whole call; `rd_kafka_handle_mock_cluster`
    // returns the mock cluster it owns (or null), which lives as long as the handle, and the
    // setter takes the cluster's lock.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(client.native_ptr());
        if !cluster.is_null() {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, ms);
        }
    }
}

/// The file in the state directory where `clv broker` writes its bootstrap address.
pub const BROKER_FILE: &str = "broker.addr";

/// How to reach Kafka. Its `Debug` shows no secret (the values of `sasl.password`, `*.key`, ...).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Whether this is the embedded mock cluster (it keeps little: replay must not outrun the consumer).
    pub embedded: bool,
    /// librdkafka properties for every client (`security.protocol`, `sasl.*`, tuning), applied after
    /// clv's own settings so that they win.
    pub options: Vec<(String, String)>,
}

/// Whether a librdkafka property holds a secret (never printed).
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token", "jaas"]
        .iter()
        .any(|word| key.contains(word))
        && !key.ends_with(".location")
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<(&str, &str)> = self
            .options
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("BrokerConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("embedded", &self.embedded)
            .field("options", &options)
            .finish()
    }
}

/// The partitioner of clv's producers: Kafka's murmur2 of the key, as the Java client and
/// [`contract::partition`] (librdkafka's default, CRC32, would disagree with Java producers).
pub const PARTITIONER: (&str, &str) = ("partitioner", "murmur2_random");

impl BrokerConfig {
    /// `--brokers` when given, else the address the embedded broker wrote into `state_dir`.
    pub fn resolve(brokers: Option<&str>, state_dir: &Path) -> Result<Self> {
        if let Some(list) = brokers {
            return Ok(BrokerConfig {
                bootstrap_servers: list.to_string(),
                embedded: false,
                options: Vec::new(),
            });
        }
        let file = state_dir.join(BROKER_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => Ok(BrokerConfig {
                bootstrap_servers: text.trim().to_string(),
                embedded: true,
                options: Vec::new(),
            }),
            _ => Err(IngestError::NoBroker(file)),
        }
    }
}

impl BrokerConfig {
    /// With these librdkafka properties for every client.
    pub fn with_options(mut self, options: Vec<(String, String)>) -> Self {
        self.options = options;
        self
    }

    /// The cluster ID the broker reports (what stored offsets and checkpoints belong to), learned
    /// from the metadata of `topic` alone (a real cluster may hold many topics).
    pub fn cluster_id(&self, topic: &str) -> Result<String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = self
            .client_config(&[])
            .create()
            .map_err(IngestError::kafka("creating a client"))?;
        self.read_cluster_id(consumer.client(), topic)
    }

    /// The cluster ID as `client` learns it, within 30 s, from the metadata of `topic`.
    ///
    /// The metadata is asked for: librdkafka connects a new client only when a request needs a
    /// broker (sparse connections) or on its one-second timer, and `rd_kafka_clusterid` alone
    /// requests nothing, so waiting for the ID cost a new ingest a second in most starts (measured
    /// in BENCHMARKS.md).
    pub(crate) fn read_cluster_id<C: ClientContext>(
        &self,
        client: &Client<C>,
        topic: &str,
    ) -> Result<String> {
        let context = || format!("reading the cluster ID of {}", self.bootstrap_servers);
        client
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|source| IngestError::Kafka {
                context: context(),
                source,
            })?;
        // Metadata carries the ID from Kafka 0.10.1 on: an answer without one is not waited for.
        client
            .fetch_cluster_id(Duration::from_secs(1))
            .ok_or_else(|| IngestError::Kafka {
                context: context(),
                source: KafkaError::MetadataFetch(
                    rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure,
                ),
            })
    }

    /// A client configuration: the bootstrap servers, then `settings` (clv's own), then
    /// [`BrokerConfig::options`].
    pub fn client_config(&self, settings: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in settings {
            config.set(*key, *value);
        }
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }

    /// Creates the `topics` (name, partitions) that do not exist yet, with `replication` replicas
    /// (`None`: the broker's default). A topic that exists is left as it is. The embedded broker creates
    /// its topics when it starts (the mock cluster does not serve the admin API), so this does nothing
    /// there.
    pub fn ensure_topics(&self, topics: &[(&str, i32)], replication: Option<i32>) -> Result<()> {
        use rdkafka::admin::{NewTopic, TopicReplication};

        if self.embedded || topics.is_empty() {
            return Ok(());
        }
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|(name, partitions)| {
                NewTopic::new(
                    name,
                    *partitions,
                    TopicReplication::Fixed(replication.unwrap_or(-1)),
                )
            })
            .collect();
        self.create_topics(&new_topics)
    }

    /// Creates the compacted topic `name` (one partition) when it does not exist: the members'
    /// records of scale-out. The embedded broker's is created when it starts.
    pub fn ensure_compacted_topic(&self, name: &str, replication: Option<i32>) -> Result<()> {
        use rdkafka::admin::{NewTopic, TopicReplication};
        if self.embedded {
            return Ok(());
        }
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(replication.unwrap_or(-1)))
            .set("cleanup.policy", "compact");
        self.create_topics(&[topic])
    }

    /// Creates `topics` through the admin API; one that exists already is left as it is.
    fn create_topics(&self, topics: &[rdkafka::admin::NewTopic<'_>]) -> Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        use rdkafka::types::RDKafkaErrorCode;

        let admin: AdminClient<DefaultClientContext> = self
            .client_config(&[])
            .create()
            .map_err(IngestError::kafka("connecting the admin client"))?;
        let options =
            AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(30)));
        let results = futures_executor::block_on(admin.create_topics(topics, &options))
            .map_err(IngestError::kafka("creating topics"))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(IngestError::Kafka {
                        context: format!("creating topic {name}"),
                        source: rdkafka::error::KafkaError::AdminOp(code),
                    });
                }
            }
        }
        Ok(())
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
                let cluster = mock_cluster().and_then(|handle| {
                    let cluster = handle
                        .client()
                        .mock_cluster()
                        .ok_or(KafkaError::MockCluster(
                            rdkafka::types::RDKafkaErrorCode::Fail,
                        ))?;
                    for (topic, partitions) in &topics {
                        cluster.create_topic(topic, *partitions, 1)?;
                    }
                    let servers = cluster.bootstrap_servers();
                    drop(cluster);
                    set_initial_rebalance_delay(handle.client(), INITIAL_REBALANCE_DELAY);
                    Ok((handle, servers))
                });
                match cluster {
                    Ok((handle, servers)) => {
                        let _ = ready_tx.send(Ok(servers));
                        let _ = stop_rx.recv(); // until stopped or dropped
                        drop(handle);
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

    /// Writes the address to `state_dir/broker.addr` (removed again when the broker stops, unless
    /// another broker has written its own since), so that other processes find it.
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
            options: Vec::new(),
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // Only its own address: a broker started since on the same state directory (a quick
        // restart, while this one still stops) keeps the file it wrote.
        if let Some(file) = self.file.take()
            && std::fs::read_to_string(&file).is_ok_and(|a| a == self.bootstrap_servers)
        {
            let _ = std::fs::remove_file(file);
        }
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_in_the_debug_output() {
        let config = BrokerConfig {
            bootstrap_servers: "kafka:9092".into(),
            embedded: false,
            options: vec![
                ("sasl.username".into(), "clv".into()),
                ("sasl.password".into(), "hunter2".into()),
                ("ssl.key.password".into(), "s3cret".into()),
                ("sasl.oauthbearer.client.secret".into(), "t0ken".into()),
                ("ssl.key.location".into(), "/etc/clv/key.pem".into()),
            ],
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "s3cret", "t0ken"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("clv") && shown.contains("/etc/clv/key.pem"),
            "{shown}"
        );
    }
}
