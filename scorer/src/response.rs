//! The API's answers: every response body the scorer sends, in one place (the handlers are in
//! [`crate::http`], the population that fills them in [`crate::population`]).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use contract::FeatureRow;
use contract::segment::Segment;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The model that scored a population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelRef {
    /// The candidate's name, e.g. `bgnbd_gg_seasonal_yb0.2_q1.05`.
    pub name: String,
    /// The registry version, e.g. `v0003`.
    pub version: String,
}

/// `GET /customers/{id}/clv`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClvResponse {
    /// The customer.
    pub customer_id: u64,
    /// Predicted revenue in the 6 months from `as_of`, £.
    pub clv_6m: f64,
    /// The lower bound of its 10th-90th percentile interval, £ (bounds inclusive; README,
    /// "Intervals"); null for a version trained before intervals.
    pub clv_6m_low: Option<f64>,
    /// The upper bound, £.
    pub clv_6m_high: Option<f64>,
    /// BG/NBD's probability that the customer is still active at `as_of` (`features.extra.bgnbd_p_alive`).
    pub p_alive: f64,
    /// BG/NBD's expected purchase days in the horizon from `as_of` (`features.extra.bgnbd_expected_purchases`).
    pub expected_purchases: f64,
    /// Value tier by `clv_6m` and activity band by `p_alive` and the probability of no purchase in the horizon (README, "Segments"); null for a model
    /// version trained before segments.
    pub segment: Option<Segment>,
    /// The model that predicted it.
    pub model: ModelRef,
    /// The time the features are taken at (midnight, UTC).
    pub as_of: NaiveDate,
    /// The features the prediction used.
    pub features: FeatureRow,
}

/// How fresh the features are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Freshness {
    /// The latest purchase time ingested (event time).
    pub watermark: Option<DateTime<Utc>>,
    /// When the scorer last read the store (wall time).
    pub refreshed_at: DateTime<Utc>,
    /// The store's sequence number read then.
    pub store_sequence: u64,
}

/// `GET /customers/{id}/features`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeaturesResponse {
    /// The customer.
    pub customer_id: u64,
    /// The time the features are taken at.
    pub as_of: NaiveDate,
    /// The features.
    pub features: FeatureRow,
    /// Their freshness.
    pub freshness: Freshness,
}

/// One row of the top list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Ranked {
    /// 1 for the highest predicted CLV.
    pub rank: usize,
    /// The customer.
    pub customer_id: u64,
    /// Predicted revenue in the 6 months from `as_of`, £.
    pub clv_6m: f64,
    /// BG/NBD's probability that the customer is still active.
    pub p_alive: f64,
    /// Its value tier and activity band (when the model has tiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<contract::segment::Segment>,
}

/// The answer of `GET /customers/summary`: the customers scored at `as_of` in numbers (every
/// instance's, added up, for an instance of a group).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SummaryResponse {
    /// The time the features are taken at.
    pub as_of: chrono::NaiveDate,
    /// The model.
    pub model: ModelRef,
    /// Customers with a purchase before `as_of`.
    pub customers: usize,
    /// Their predicted CLV in all, £.
    pub total_clv: f64,
    /// The histogram's bucket edges, £: a bucket for £0, one up to each edge, one above the last.
    pub edges: Vec<f64>,
    /// Customers per bucket (`edges.len() + 2` of them).
    pub histogram: Vec<u64>,
    /// Customers per segment, `value/activity` (e.g. `high/fading`), when the model has tiers.
    pub segments: std::collections::BTreeMap<String, usize>,
}

/// One row of the at-risk list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AtRisk {
    /// 1 for the highest value at risk.
    pub rank: usize,
    /// The customer.
    pub customer_id: u64,
    /// Revenue to date × (1 − P(alive)), £.
    pub value_at_risk: f64,
    /// Revenue before `as_of`, £.
    pub total_revenue: f64,
    /// BG/NBD's probability that the customer is still active.
    pub p_alive: f64,
    /// Days since the last purchase.
    pub recency_days: i64,
    /// Predicted revenue in the 6 months from `as_of`, £.
    pub clv_6m: f64,
}

/// The top list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopResponse {
    /// The time the features are taken at.
    pub as_of: chrono::NaiveDate,
    /// The model.
    pub model: ModelRef,
    /// Highest predicted CLV first.
    pub customers: Vec<Ranked>,
}

/// The at-risk list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AtRiskResponse {
    /// The time the features are taken at.
    pub as_of: chrono::NaiveDate,
    /// The model.
    pub model: ModelRef,
    /// Customers in the `fading` activity band, highest value at risk (revenue to date × P(no
    /// purchase in the horizon)) first.
    pub customers: Vec<AtRisk>,
}

/// The answer of `POST /predict`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PredictResponse {
    /// Predicted revenue in the next 6 months, £.
    pub predicted_clv_6m: f64,
    /// The nine-feature model of the production version.
    pub model: ModelRef,
}

/// The answer of `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The answer of `GET /ready`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The model serving.
    pub model: ModelRef,
    /// The time the features are taken at.
    pub as_of: chrono::NaiveDate,
    /// Customers scored.
    pub customers: usize,
}

/// Every error of the API: a status and a message, as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong.
    pub error: String,
}

/// The answer of `GET /cluster`: this instance, its partitions and the members it routes to.
#[derive(Debug, Serialize)]
pub struct ClusterResponse {
    /// This instance's ID.
    pub instance: String,
    /// The topic's partition count.
    pub partition_count: u32,
    /// The group's watermark (RFC 3339), when every partition is caught up somewhere.
    pub group_watermark: Option<chrono::DateTime<chrono::Utc>>,
    /// This instance's partitions.
    pub partitions: std::collections::BTreeMap<i32, cluster::PartitionStatus>,
    /// The partitions this instance keeps warm standby copies of (never served from here until
    /// the group assigns them).
    pub standbys: std::collections::BTreeSet<i32>,
    /// How a customer's partition is computed ([`PARTITIONER`]): a client that computes it and
    /// asks the partition's owner in `owners` directly skips the forwarding hop.
    pub partitioner: String,
    /// Each served partition's owner: the partition map.
    pub owners: std::collections::BTreeMap<i32, Owner>,
    /// Every live member: ID, HTTP base URL and partitions.
    pub members: Vec<cluster::Member>,
    /// The partitions no member serves now, with why.
    pub unserved: std::collections::BTreeMap<i32, String>,
}

/// The partitioner, as `/cluster` states it for clients that route by themselves.
pub const PARTITIONER: &str = "murmur2: partition = (murmur2(customer ID as decimal text) & 0x7fffffff) % partition_count, Kafka's Java default (librdkafka: murmur2_random)";

/// A partition's owner in `/cluster`'s partition map.
#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    /// The instance's ID.
    pub id: String,
    /// Its HTTP base URL.
    pub http: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            error: error.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}
