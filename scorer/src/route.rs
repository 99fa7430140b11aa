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

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cluster::Serving;
use metrics::counter;
use serde::de::DeserializeOwned;

use crate::response::ClusterResponse;

/// The header of a forwarded request: the ID of the instance that forwarded it.
pub const FORWARDED: &str = "x-clv-forwarded-by";
/// The header of a routed answer: the ID of the instance that answered.
pub const ANSWERED_BY: &str = "x-clv-instance";
/// A request header asking for a redirect to the owner instead of a forwarded answer: with it, a
/// question about a customer another instance serves is a `307 Temporary Redirect` to the same path
/// on that instance (a client that follows it, or that routes by `/cluster`'s partition map,
/// skips the forwarding hop).
pub const REDIRECT: &str = "x-clv-redirect";

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

/// The router of a scorer: alone (`clv serve`, a group of one that holds every partition and
/// answers every question itself), or an instance of a group (`clv instance`: its shared state and
/// an HTTP client to its peers). The HTTP layer has one handler per endpoint and asks this where
/// each answer comes from.
pub struct Routing {
    group: Option<Group>,
}

/// An instance's part in a group.
struct Group {
    instance: Serving,
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
    /// The router of a scorer alone: every question is answered here, every list is its own.
    pub fn alone() -> Self {
        Routing { group: None }
    }

    /// The router of `instance`; a peer that does not answer within `timeout` is a `503`.
    pub fn new(instance: Serving, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .build()
            .unwrap_or_default();
        Routing {
            group: Some(Group { instance, client }),
        }
    }

    /// Where `customer`'s question goes; `headers` tell whether it was forwarded already.
    pub fn route(&self, customer: u64, headers: &HeaderMap) -> Result<Route, RetryLater> {
        match &self.group {
            None => Ok(Route::Here),
            Some(group) => group.route(customer, headers),
        }
    }

    /// The answer to a request for `customer` when another instance gives it (forwarded, or a
    /// `503` while nobody serves its partition); `None` to answer here.
    pub async fn elsewhere(
        &self,
        customer: u64,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Option<Response> {
        let group = self.group.as_ref()?;
        match group.route(customer, headers) {
            Ok(Route::Here) => None,
            Ok(Route::To { id, http }) => {
                let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
                if headers.contains_key(REDIRECT) {
                    return Some(redirect(&id, &http, path));
                }
                Some(group.forward(&id, &http, path).await)
            }
            Err(retry) => Some(retry.into_response()),
        }
    }

    /// Marks an answer given here with this instance's ID ([`ANSWERED_BY`]), for an instance.
    pub fn answered_here(&self, mut response: Response) -> Response {
        if let Some(group) = &self.group
            && let Ok(value) = HeaderValue::from_str(group.instance.id())
        {
            response.headers_mut().insert(ANSWERED_BY, value);
        }
        response
    }

    /// The partitions of `?partitions=`, each checked to be served here; a scorer alone refuses
    /// the parameter (it holds every partition).
    pub fn local_partitions(&self, text: &str) -> Result<BTreeSet<i32>, ListError> {
        match &self.group {
            None => Err(ListError::Bad(
                "partitions= is for instances of a group (clv instance); this scorer holds every partition"
                    .into(),
            )),
            Some(group) => group.local_partitions(text),
        }
    }

    /// Whether `customer`'s partition is served here (every customer, alone).
    pub fn serves_customer(&self, customer: u64) -> bool {
        let Some(group) = &self.group else {
            return true;
        };
        let count = group.instance.partition_count();
        count > 0
            && group.instance.serves(
                contract::partition::of_customer(customer, count),
                Instant::now(),
            )
    }

    /// What the page says of an instance's numbers and lists (nothing, alone): that they are the
    /// group's.
    pub fn group_note(&self) -> Option<String> {
        let instance = &self.group.as_ref()?.instance;
        let view = instance.view();
        Some(format!(
            "The whole group's customers: {} instances serve the {} partitions, and the numbers and \
             lists on these pages are merged from all of them (this is {}). Any instance answers \
             for any customer.",
            view.members.len(),
            instance.partition_count(),
            instance.id(),
        ))
    }

    /// How long this instance has been out of contact with the broker, once past its fence (it
    /// then serves none of its partitions; never alone).
    pub fn fenced(&self) -> Option<Duration> {
        self.group
            .as_ref()
            .and_then(|group| group.instance.fenced(Instant::now()))
    }

    /// This instance's partitions not yet served, with their progress (none, alone).
    pub fn pending(&self) -> Vec<String> {
        let Some(group) = &self.group else {
            return Vec::new();
        };
        group
            .instance
            .statuses(Instant::now())
            .into_iter()
            .filter(|(_, s)| *s != cluster::PartitionStatus::Serving)
            .map(|(p, s)| format!("{p} ({:.0}%)", s.progress() * 100.0))
            .collect()
    }

    /// Whether `customer` is in `partitions` (`None`: every partition).
    pub fn keeps(&self, partitions: Option<&BTreeSet<i32>>, customer: u64) -> bool {
        match (partitions, &self.group) {
            (Some(partitions), Some(group)) => partitions.contains(
                &contract::partition::of_customer(customer, group.instance.partition_count()),
            ),
            _ => true,
        }
    }

    /// Every owner's answer to `path?k=K&partitions=...` for its own partitions: the local one
    /// computed by `here`, the others over HTTP; alone, `here` of every partition. A `503` while a
    /// partition has no serving owner or an owner does not answer.
    pub async fn gather<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        k: usize,
        here: impl Fn(Option<&BTreeSet<i32>>) -> Result<T, ListError>,
    ) -> Result<Vec<T>, ListError> {
        match &self.group {
            None => Ok(vec![here(None)?]),
            Some(group) => group.gather(path, k, here).await,
        }
    }

    /// The cluster as this instance sees it (none, alone).
    pub fn describe(&self) -> Option<ClusterResponse> {
        self.group.as_ref().map(Group::describe)
    }
}

/// A `307` to `path` on the owner `id` at `http`.
fn redirect(id: &str, http: &str, path: &str) -> Response {
    counter!(crate::telemetry::FORWARDED, "outcome" => "redirected").increment(1);
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{http}{path}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(ANSWERED_BY, value);
    }
    response
}

impl Group {
    fn partition_count(&self) -> Result<u32, RetryLater> {
        match self.instance.partition_count() {
            0 => Err(RetryLater(
                "this instance has not yet read the topic's partition count".into(),
            )),
            n => Ok(n),
        }
    }

    fn route(&self, customer: u64, headers: &HeaderMap) -> Result<Route, RetryLater> {
        let partition = contract::partition::of_customer(customer, self.partition_count()?);
        if self.instance.serves(partition, Instant::now()) {
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
    async fn forward(&self, id: &str, http: &str, path_and_query: &str) -> Response {
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

    fn local_partitions(&self, text: &str) -> Result<BTreeSet<i32>, ListError> {
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
            if !self.instance.serves(partition, Instant::now()) {
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

    async fn gather<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        k: usize,
        here: impl Fn(Option<&BTreeSet<i32>>) -> Result<T, ListError>,
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
                answers.push(here(Some(&partitions.into_iter().collect()))?);
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

    fn describe(&self) -> ClusterResponse {
        let view = self.instance.view();
        let count = self.instance.group_partition_count(&view);
        ClusterResponse {
            instance: self.instance.id().to_string(),
            partition_count: count,
            group_watermark: self
                .instance
                .group_watermark()
                .and_then(chrono::DateTime::from_timestamp_millis),
            partitions: self.instance.statuses(Instant::now()),
            standbys: self.instance.standbys().as_ref().clone(),
            partitioner: crate::response::PARTITIONER.into(),
            owners: (0..count as i32)
                .filter_map(|p| {
                    let owner = view.owner(p)?;
                    Some((
                        p,
                        crate::response::Owner {
                            id: owner.id.clone(),
                            http: owner.http.clone(),
                        },
                    ))
                })
                .collect(),
            members: view.members.values().map(|h| h.member.clone()).collect(),
            unserved: (0..count as i32)
                .filter(|p| view.owner(*p).is_none())
                .map(|p| (p, view.gap(p).to_string()))
                .collect(),
        }
    }
}

/// Why a list cannot be given.
#[derive(Debug)]
pub enum ListError {
    /// The request is wrong (400).
    Bad(String),
    /// Not now (503 with `Retry-After`).
    Retry(RetryLater),
    /// Nothing scored here yet (503 with `Retry-After`; the reason).
    NotReady(String),
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
            ListError::NotReady(reason) => {
                let body =
                    serde_json::json!({"status": 503, "error": format!("not ready: {reason}")});
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::shed::RETRY_AFTER_SECONDS),
                );
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::member::{Heard, Member, View};
    use cluster::{Instance, PartitionStatus};

    /// A customer of `partition` (of 4).
    fn customer_of(partition: i32) -> u64 {
        (1..)
            .find(|c| contract::partition::of_customer(*c, 4) == partition)
            .unwrap_or(1)
    }

    /// Instance "a" serving partition 0; "b" serves 2 and 3; "c" restores 1.
    fn routing() -> Routing {
        let now = Instant::now();
        let a = Instance::new("a", "http://a", now);
        a.ingest_side().set_partition_count(4);
        a.ingest_side().assigned(&[(0, Some(5))], now);
        assert!(a.ingest_side().progress(0, 5, (0, 5), 1, now).is_some());
        a.scorer_side().scored(1);
        let record = |id: &str, partitions: Vec<(i32, PartitionStatus)>, seq| Heard {
            member: Member {
                id: id.into(),
                http: format!("http://{id}"),
                partition_count: 4,
                partitions: partitions.into_iter().collect(),
                marks: Default::default(),
                standbys: Default::default(),
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
        a.membership_side().set_view(view);
        Routing::new(a.scorer_side(), Duration::from_secs(1))
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
        let described = routing.describe().expect("an instance");
        assert_eq!(described.partition_count, 4);
        assert_eq!(described.unserved.len(), 1);
        assert!(described.unserved[&1].contains("restoring"));
    }

    #[test]
    fn a_scorer_alone_answers_everything_itself_and_refuses_partitions() {
        let alone = Routing::alone();
        let forwarded = {
            let mut h = HeaderMap::new();
            h.insert(FORWARDED, HeaderValue::from_static("z"));
            h
        };
        for customer in [1, 12_346, u64::MAX >> 11] {
            assert_eq!(alone.route(customer, &HeaderMap::new()), Ok(Route::Here));
            assert_eq!(alone.route(customer, &forwarded), Ok(Route::Here));
            assert!(alone.serves_customer(customer));
            assert!(alone.keeps(None, customer));
        }
        assert!(matches!(
            alone.local_partitions("0"),
            Err(ListError::Bad(m)) if m.contains("holds every partition")
        ));
        assert!(alone.describe().is_none());
        assert!(alone.group_note().is_none());
        assert!(alone.pending().is_empty());
        let answered = alone.answered_here(Response::new(Body::empty()));
        assert!(answered.headers().get(ANSWERED_BY).is_none());
        // An instance's answers say who gave them; its lists keep only the partitions asked for.
        let routing = routing();
        let answered = routing.answered_here(Response::new(Body::empty()));
        assert_eq!(answered.headers()[ANSWERED_BY], "a");
        let zero: BTreeSet<i32> = [0].into();
        assert!(routing.keeps(Some(&zero), customer_of(0)));
        assert!(!routing.keeps(Some(&zero), customer_of(2)));
        assert!(routing.keeps(None, customer_of(2)));
    }
}
