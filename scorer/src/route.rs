//! Routing between instances (`clv instance`): a customer's questions are answered by the instance
//! that serves its partition, found with the producers' partitioner
//! ([`contract::partition::of_customer`]); lists are merged from every partition's owner.
//!
//! - Served here (assigned, caught up and scored: [`cluster::Instance::serves`]): answered from
//!   the local population.
//! - Served by another live member: forwarded once (with [`FORWARDED`]; a forwarded request is
//!   never forwarded again), and its answer passed back with [`ANSWERED_BY`].
//! - Served by nobody (a rebalance, a restore, an owner that died and has not expired): `503` with
//!   `Retry-After` and the reason, never a wrong `404`.
//! - Lists: each owner is asked for the first `k` of its own partitions (`?partitions=`), and
//!   refuses unless it serves every one; the union then covers every partition exactly once, and
//!   the answers must agree on `as_of` and the model version (else `503`: a refresh or a promotion
//!   is under way).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cluster::Instance;
use metrics::counter;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The header of a forwarded request: the ID of the instance that forwarded it.
pub const FORWARDED: &str = "x-clv-forwarded-by";
/// The header of a routed answer: the ID of the instance that answered.
pub const ANSWERED_BY: &str = "x-clv-instance";

/// A reason to retry later: `503` with `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryLater(pub String);

impl IntoResponse for RetryLater {
    fn into_response(self) -> Response {
        counter!(crate::telemetry::ROUTING_UNAVAILABLE).increment(1);
        let body = serde_json::json!({"status": 503, "error": self.0});
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::shed::RETRY_AFTER_SECONDS),
        );
        response
    }
}

/// An instance's router: its shared state and an HTTP client to its peers.
pub struct Routing {
    instance: Arc<Instance>,
    client: reqwest::Client,
}

/// Where a customer's question goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Answered here.
    Here,
    /// Forwarded to this base URL (the member with this ID).
    To {
        /// The member's ID.
        id: String,
        /// Its base URL.
        http: String,
    },
}

impl Routing {
    /// The router of `instance`; a peer that does not answer within `timeout` is a `503`.
    pub fn new(instance: Arc<Instance>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .build()
            .unwrap_or_default();
        Routing { instance, client }
    }

    /// The instance.
    pub fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }

    fn partition_count(&self) -> Result<u32, RetryLater> {
        match self.instance.partition_count() {
            0 => Err(RetryLater(
                "this instance has not yet read the topic's partition count".into(),
            )),
            n => Ok(n),
        }
    }

    /// The partition of `customer`.
    pub fn partition_of(&self, customer: u64) -> Result<i32, RetryLater> {
        Ok(contract::partition::of_customer(
            customer,
            self.partition_count()?,
        ))
    }

    /// Where `customer`'s question goes; `headers` tell whether it was forwarded already.
    pub fn route(&self, customer: u64, headers: &HeaderMap) -> Result<Route, RetryLater> {
        let partition = self.partition_of(customer)?;
        if self.instance.serves(partition) {
            return Ok(Route::Here);
        }
        if let Some(from) = headers.get(FORWARDED) {
            return Err(RetryLater(format!(
                "partition {partition} is not served by {} any more (forwarded by {}; it moved)",
                self.instance.id(),
                from.to_str().unwrap_or("?")
            )));
        }
        let view = self.instance.view();
        match view.owner(partition) {
            Some(owner) if owner.id != self.instance.id() => Ok(Route::To {
                id: owner.id.clone(),
                http: owner.http.clone(),
            }),
            _ => Err(RetryLater(format!(
                "partition {partition} (customer {customer}) is not served yet: {}",
                view.gap(partition)
            ))),
        }
    }

    /// Forwards `path_and_query` to the member at `http` and passes its answer back.
    pub async fn forward(&self, id: &str, http: &str, path_and_query: &str) -> Response {
        let url = format!("{http}{path_and_query}");
        let sent = self
            .client
            .get(&url)
            .header(FORWARDED, self.instance.id())
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => {
                counter!(crate::telemetry::FORWARDED, "outcome" => "unreachable").increment(1);
                return RetryLater(format!("the owner {id} ({http}) did not answer: {e}"))
                    .into_response();
            }
        };
        let status = StatusCode::from_u16(answer.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let retry_after = answer.headers().get(header::RETRY_AFTER).cloned();
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(e) => {
                counter!(crate::telemetry::FORWARDED, "outcome" => "unreachable").increment(1);
                return RetryLater(format!("the owner {id} ({http}) broke off its answer: {e}"))
                    .into_response();
            }
        };
        counter!(crate::telemetry::FORWARDED, "outcome" => "answered").increment(1);
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, value);
        }
        if let Some(value) = retry_after {
            headers.insert(header::RETRY_AFTER, value);
        }
        if let Ok(value) = HeaderValue::from_str(id) {
            headers.insert(ANSWERED_BY, value);
        }
        response
    }

    /// The partitions of `?partitions=`, each checked to be served here.
    pub fn local_partitions(&self, text: &str) -> Result<BTreeSet<i32>, ListError> {
        let count = self.partition_count().map_err(ListError::Retry)? as i32;
        let mut partitions = BTreeSet::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let partition: i32 = part.trim().parse().map_err(|_| {
                ListError::Bad(format!("partitions: {part:?} is not a partition number"))
            })?;
            if !(0..count).contains(&partition) {
                return Err(ListError::Bad(format!(
                    "partitions: {partition} is not a partition of the topic (0..{count})"
                )));
            }
            if !self.instance.serves(partition) {
                return Err(ListError::Retry(RetryLater(format!(
                    "partition {partition} is not served by {} (any more)",
                    self.instance.id()
                ))));
            }
            partitions.insert(partition);
        }
        if partitions.is_empty() {
            return Err(ListError::Bad("partitions: none given".into()));
        }
        Ok(partitions)
    }

    /// Whether `customer`'s partition is served here.
    pub fn serves_customer(&self, customer: u64) -> bool {
        let count = self.instance.partition_count();
        count > 0
            && self
                .instance
                .serves(contract::partition::of_customer(customer, count))
    }

    /// What a page of this instance's own customers says about them.
    pub fn scope_note(&self) -> String {
        let served: Vec<String> = self
            .instance
            .statuses()
            .into_iter()
            .filter(|(_, s)| *s == cluster::PartitionStatus::Serving)
            .map(|(p, _)| p.to_string())
            .collect();
        format!(
            "Instance {} serves partitions {} of {}: the customers below are its own. Every customer is \
             answered by any instance (search above, /customers/{{id}}/clv, the top and at-risk lists).",
            self.instance.id(),
            if served.is_empty() {
                "none yet".to_string()
            } else {
                served.join(", ")
            },
            self.instance.partition_count()
        )
    }

    /// Whether `customer` is in `partitions`.
    pub fn keeps(&self, partitions: &BTreeSet<i32>, customer: u64) -> bool {
        partitions.contains(&contract::partition::of_customer(
            customer,
            self.instance.partition_count(),
        ))
    }

    /// Every owner's answer to `path?k=K&partitions=...` for its own partitions: the local one
    /// computed by `here`, the others over HTTP. A `503` while a partition has no serving owner or
    /// an owner does not answer.
    pub async fn gather<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        k: usize,
        here: impl Fn(&BTreeSet<i32>) -> Result<T, ListError>,
    ) -> Result<Vec<T>, ListError> {
        let count = self.partition_count().map_err(ListError::Retry)?;
        let view = self.instance.view();
        let owners = view.coverage(count).map_err(|gaps| {
            let said: Vec<String> = gaps.iter().map(|(p, why)| format!("{p}: {why}")).collect();
            ListError::Retry(RetryLater(format!(
                "not every partition is served yet ({})",
                said.join("; ")
            )))
        })?;
        let mut answers = Vec::with_capacity(owners.len());
        let mut asked = tokio::task::JoinSet::new();
        for (id, (http, partitions)) in owners {
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            if id == self.instance.id() {
                answers.push(here(&partitions.into_iter().collect())?);
                continue;
            }
            let url = format!("{http}{path}?k={k}&partitions={}", list.join(","));
            let request = self.client.get(url).header(FORWARDED, self.instance.id());
            asked.spawn(async move {
                let answer = request.send().await.map_err(|e| format!("{id}: {e}"))?;
                if !answer.status().is_success() {
                    let status = answer.status();
                    let text = answer.text().await.unwrap_or_default();
                    return Err(format!("{id} answered {status}: {text}"));
                }
                answer
                    .json::<T>()
                    .await
                    .map_err(|e| format!("{id}'s answer: {e}"))
            });
        }
        while let Some(joined) = asked.join_next().await {
            match joined {
                Ok(Ok(answer)) => answers.push(answer),
                Ok(Err(e)) => {
                    return Err(ListError::Retry(RetryLater(format!(
                        "an owner's list is missing: {e}"
                    ))));
                }
                Err(e) => {
                    return Err(ListError::Retry(RetryLater(format!(
                        "asking an owner failed: {e}"
                    ))));
                }
            }
        }
        Ok(answers)
    }
}

/// Why a list cannot be given.
#[derive(Debug)]
pub enum ListError {
    /// The request is wrong (400).
    Bad(String),
    /// Not now (503 with `Retry-After`).
    Retry(RetryLater),
}

impl IntoResponse for ListError {
    fn into_response(self) -> Response {
        match self {
            ListError::Bad(message) => (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"status": 400, "error": message})),
            )
                .into_response(),
            ListError::Retry(retry) => retry.into_response(),
        }
    }
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
    /// Every live member: ID, HTTP base URL and partitions.
    pub members: Vec<cluster::Member>,
    /// The partitions no member serves now, with why.
    pub unserved: std::collections::BTreeMap<i32, String>,
}

impl Routing {
    /// The cluster as this instance sees it.
    pub fn describe(&self) -> ClusterResponse {
        let view = self.instance.view();
        let count = self.instance.group_partition_count(&view);
        ClusterResponse {
            instance: self.instance.id().to_string(),
            partition_count: count,
            group_watermark: self
                .instance
                .group_watermark()
                .and_then(chrono::DateTime::from_timestamp_millis),
            partitions: self.instance.statuses(),
            members: view.members.values().map(|h| h.member.clone()).collect(),
            unserved: (0..count as i32)
                .filter(|p| view.owner(*p).is_none())
                .map(|p| (p, view.gap(p).to_string()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::PartitionStatus;
    use cluster::member::{Heard, Member, View};

    /// A customer of `partition` (of 4).
    fn customer_of(partition: i32) -> u64 {
        (1..)
            .find(|c| contract::partition::of_customer(*c, 4) == partition)
            .unwrap_or(1)
    }

    /// Instance "a" serving partition 0; "b" serves 2 and 3; "c" restores 1.
    fn routing() -> Routing {
        let a = Instance::new("a", "http://a");
        a.set_partition_count(4);
        a.assigned(&[0]);
        assert!(a.progress(0, 5, 5, 1).is_some());
        a.scored(1);
        let record = |id: &str, partitions: Vec<(i32, PartitionStatus)>, seq| Heard {
            member: Member {
                id: id.into(),
                http: format!("http://{id}"),
                partition_count: 4,
                partitions: partitions.into_iter().collect(),
                marks: Default::default(),
            },
            seq,
        };
        let view = View {
            members: [
                (
                    "a".into(),
                    record("a", vec![(0, PartitionStatus::Serving)], 1),
                ),
                (
                    "b".into(),
                    record(
                        "b",
                        vec![(2, PartitionStatus::Serving), (3, PartitionStatus::Serving)],
                        2,
                    ),
                ),
                (
                    "c".into(),
                    record(
                        "c",
                        vec![(
                            1,
                            PartitionStatus::Restoring {
                                done: 1,
                                total: Some(2),
                            },
                        )],
                        3,
                    ),
                ),
            ]
            .into(),
        };
        a.set_view(view);
        Routing::new(a, Duration::from_secs(1))
    }

    #[test]
    fn a_question_goes_to_its_partitions_owner_or_waits() {
        let routing = routing();
        let none = HeaderMap::new();
        assert_eq!(routing.route(customer_of(0), &none), Ok(Route::Here));
        assert_eq!(
            routing.route(customer_of(2), &none),
            Ok(Route::To {
                id: "b".into(),
                http: "http://b".into()
            })
        );
        let restoring = routing.route(customer_of(1), &none).expect_err("no owner");
        assert!(
            restoring.0.contains("c is restoring it (50% done)"),
            "{restoring:?}"
        );
        // A forwarded question is never forwarded again.
        let mut forwarded = HeaderMap::new();
        forwarded.insert(FORWARDED, HeaderValue::from_static("z"));
        let moved = routing
            .route(customer_of(2), &forwarded)
            .expect_err("not here");
        assert!(moved.0.contains("not served by a"), "{moved:?}");
        assert_eq!(routing.route(customer_of(0), &forwarded), Ok(Route::Here));
        assert!(routing.serves_customer(customer_of(0)));
        assert!(!routing.serves_customer(customer_of(3)));
    }

    #[test]
    fn an_owners_part_of_a_list_is_only_its_own_partitions() {
        let routing = routing();
        assert_eq!(
            routing.local_partitions("0").expect("served here"),
            [0].into()
        );
        assert!(matches!(
            routing.local_partitions("0,2"),
            Err(ListError::Retry(_))
        ));
        for bad in ["", "x", "9", "-1", "0,,x"] {
            assert!(
                matches!(routing.local_partitions(bad), Err(ListError::Bad(_))),
                "{bad:?}"
            );
        }
        let described = routing.describe();
        assert_eq!(described.partition_count, 4);
        assert_eq!(described.unserved.len(), 1);
        assert!(described.unserved[&1].contains("restoring"));
    }
}
