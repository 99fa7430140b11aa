/// Errors of replay and ingest.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Kafka (librdkafka) failed.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: rdkafka::error::KafkaError,
    },
    /// The feature store failed.
    #[error(transparent)]
    Store(#[from] featurestore::store::StoreError),
    /// The stored offsets could not be read when partitions were assigned: ingest stops rather than
    /// read them from offsets it does not know.
    #[error("cannot resume the assigned partitions from the feature store: {0}")]
    Resume(#[source] featurestore::store::StoreError),
    /// A setting ingest cannot work with.
    #[error("configuration: {0}")]
    Config(String),
    /// An event to send is not a valid event.
    #[error("not a valid event: {0}")]
    Invalid(String),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] dataset::DatasetError),
    /// No broker address given and none found in the state directory.
    #[error(
        "no Kafka broker: pass --brokers host:port, or start the embedded one with `clv broker` (it writes {0})"
    )]
    NoBroker(std::path::PathBuf),
    /// Messages could not be delivered.
    #[error("{failed} message(s) could not be delivered to Kafka (first error: {first})")]
    Delivery {
        /// How many.
        failed: u64,
        /// The first error seen.
        first: String,
    },
    /// A file of the state directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl IngestError {
    pub(crate) fn kafka(
        context: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let context = context.into();
        move |source| IngestError::Kafka { context, source }
    }
}

/// Result with [`IngestError`].
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
