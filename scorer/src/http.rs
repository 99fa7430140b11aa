//! The HTTP API (axum): thin handlers over [`Scorer`], one JSON error type, request metrics, limits,
//! and the OpenAPI document with an offline Swagger UI.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use contract::{Extra, Feature, FeatureRow, Nine};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::population::{
    AtRisk, ClvResponse, FeaturesResponse, Freshness, ModelRef, Population, Ranked, Scored,
};
use crate::route::{ListError, RetryLater, Route, Routing};
use crate::service::Scorer;
use crate::shed::InFlight;
use contract::segment::{Activity, Segment, ValueTier};

/// Limits of the API.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body accepted (bytes); larger ones get 413.
    pub body_bytes: usize,
    /// A request taking longer gets 408.
    pub timeout: Duration,
    /// The largest `k` of `/customers/top`.
    pub max_top: usize,
    /// Requests inside the router at once; more get 503 with `Retry-After` ([`crate::shed`]).
    pub max_in_flight: usize,
    /// Open connections at once; more get 503 with `Retry-After` (applied by the listener,
    /// [`crate::shed::CappedListener`]).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 16 * 1024,
            timeout: Duration::from_secs(10),
            max_top: 10_000,
            max_in_flight: 256,
            max_connections: 1024,
        }
    }
}

#[derive(Clone)]
struct AppState {
    scorer: Arc<Scorer>,
    metrics: Option<PrometheusHandle>,
    limits: Limits,
    /// The router between instances, for `clv instance` (none for `clv serve`).
    routing: Option<Arc<Routing>>,
}

/// Every error of the API: a status and a message, as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong.
    pub error: String,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
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

fn json_bytes(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn customer_id(raw: &str) -> Result<u64, ApiError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("customer ID {raw:?} is not digits"),
        ));
    }
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("customer ID {raw:?} is too large"),
        )
    })
}

fn not_ready(scorer: &Scorer) -> ApiError {
    let reason = scorer.readiness().err().unwrap_or_default();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {reason}"),
    )
}

/// The scored customer `raw` of the latest population: 400 for an ID that is not digits, 404 for a
/// customer without purchases before `as_of`, 503 before anything is scored.
fn lookup(state: &AppState, raw: &str) -> Result<(Arc<Population>, u64, Arc<Scored>), ApiError> {
    let id = customer_id(raw)?;
    let population = state
        .scorer
        .population()
        .ok_or_else(|| not_ready(&state.scorer))?;
    let scored = scored_in(&population, id)?;
    Ok((population, id, scored))
}

/// The customer's answer in `population`.
fn scored_in(population: &Population, id: u64) -> Result<Arc<Scored>, ApiError> {
    population.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("customer {id} has no purchase before {}", population.as_of),
        )
    })
}

/// The customer's predicted CLV, the model and the features it used.
#[utoipa::path(get, path = "/customers/{id}/clv",
    params(("id" = u64, Path, minimum = 1.0, maximum = 9007199254740991.0,
        description = "Customer ID (FEATURES.md bounds: 1 to 2^53 − 1); anything but digits is a 400")),
    responses(
        (status = 200, body = ClvResponse),
        (status = 400, description = "the ID is not digits", body = ApiError),
        (status = 404, description = "no purchase of this customer before as_of", body = ApiError),
        (status = 503, description = "not ready", body = ApiError)))]
async fn customer_clv(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // The hot path: the population borrowed (no shared reference count to bump per request).
    let id = customer_id(&id)?;
    let loaded = state.scorer.population_guard();
    let population = loaded.as_ref().ok_or_else(|| not_ready(&state.scorer))?;
    let scored = scored_in(population, id)?;
    drop(loaded);
    match SERVED.get() {
        Some(served) => {
            served.predictions.increment(1);
            served.clv.record(scored.clv_6m);
        }
        None => {
            counter!(crate::telemetry::PREDICTIONS, "endpoint" => "clv").increment(1);
            histogram!(crate::telemetry::SERVED_CLV).record(scored.clv_6m);
        }
    }
    Ok(json_bytes(scored.clv_body.clone()))
}

/// The customer's feature vector and its freshness.
#[utoipa::path(get, path = "/customers/{id}/features",
    params(("id" = u64, Path, minimum = 1.0, maximum = 9007199254740991.0,
        description = "Customer ID (FEATURES.md bounds: 1 to 2^53 − 1); anything but digits is a 400")),
    responses(
        (status = 200, body = FeaturesResponse),
        (status = 400, body = ApiError),
        (status = 404, body = ApiError),
        (status = 503, body = ApiError)))]
async fn customer_features(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (population, id, scored) = lookup(&state, &id)?;
    Ok(Json(FeaturesResponse {
        customer_id: id,
        as_of: population.as_of,
        features: scored.row,
        freshness: population.freshness.clone(),
    })
    .into_response())
}

/// `?page=` and `?id=` of the page's ranked list.
#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<String>,
    id: Option<String>,
}

/// An HTML page with `status`.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The population and the version it was scored with, when both are there.
fn scored_pages(state: &AppState) -> Option<(Arc<Population>, Arc<crate::follow::Production>)> {
    let population = state.scorer.population()?;
    let production = state.scorer.production()?;
    (population.model.version == production.version).then_some((population, production))
}

/// The page saying why nothing is scored yet.
fn not_ready_page(state: &AppState) -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::page::message(
            "Not ready yet",
            &state
                .scorer
                .readiness()
                .err()
                .unwrap_or_else(|| "the scores are being refreshed".into()),
        ),
    )
}

/// `/`: the web page's overview.
async fn page_overview(State(state): State<AppState>) -> Response {
    match scored_pages(&state) {
        Some((population, production)) => match &state.routing {
            None => html(
                StatusCode::OK,
                crate::page::overview(&population, &production),
            ),
            Some(routing) => {
                let keep = |id| routing.serves_customer(id);
                let scope = crate::page::Scope {
                    keep: &keep,
                    note: Some(routing.scope_note()),
                };
                html(
                    StatusCode::OK,
                    crate::page::overview_in(&population, &production, &scope),
                )
            }
        },
        None => not_ready_page(&state),
    }
}

/// `/customers`: the ranked list; `?id=` opens that customer.
async fn page_customers(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                crate::page::message("Bad request", &e.body_text()),
            );
        }
    };
    if let Some(id) = query.id.as_deref().map(str::trim) {
        return match customer_id(id) {
            Ok(id) => (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/customers/{id}"))],
            )
                .into_response(),
            Err(_) => html(
                StatusCode::BAD_REQUEST,
                crate::page::message(
                    "No such customer",
                    &format!("{id:?} is not a customer ID: IDs are digits"),
                ),
            ),
        };
    }
    let page = match query.page.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(page)) => page,
        Some(Err(_)) => {
            return html(
                StatusCode::BAD_REQUEST,
                crate::page::message("Bad request", "?page= is a page number"),
            );
        }
    };
    match scored_pages(&state) {
        Some((population, production)) => match &state.routing {
            None => html(
                StatusCode::OK,
                crate::page::customers(&population, &production, page),
            ),
            Some(routing) => {
                let keep = |id| routing.serves_customer(id);
                let scope = crate::page::Scope {
                    keep: &keep,
                    note: Some(routing.scope_note()),
                };
                html(
                    StatusCode::OK,
                    crate::page::customers_in(&population, &production, page, &scope),
                )
            }
        },
        None => not_ready_page(&state),
    }
}

/// `/customers/{id}`: one customer's page.
async fn page_customer(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = customer_id(&id) else {
        return html(
            StatusCode::BAD_REQUEST,
            crate::page::message(
                "No such customer",
                &format!("{id:?} is not a customer ID: IDs are digits"),
            ),
        );
    };
    let Some((population, _)) = scored_pages(&state) else {
        return not_ready_page(&state);
    };
    let Some(scored) = population.get(id) else {
        return html(
            StatusCode::NOT_FOUND,
            crate::page::message(
                "No such customer",
                &format!("customer {id} has no purchase before {}", population.as_of),
            ),
        );
    };
    let answer: ClvResponse = match serde_json::from_slice(&scored.clv_body) {
        Ok(answer) => answer,
        Err(e) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::page::message("Internal error", &e.to_string()),
            );
        }
    };
    // One point lookup in the store (microseconds) for the purchases the chart shows.
    let history = state
        .scorer
        .store()
        .and_then(|store| store.get(id).ok().flatten());
    html(
        StatusCode::OK,
        crate::page::customer(&answer, history.as_ref(), &population.freshness),
    )
}

/// `/at-risk`: the at-risk list's page.
async fn page_at_risk(State(state): State<AppState>) -> Response {
    if state.routing.is_some() {
        // The group's list, merged from every owner, as the API gives it.
        let query: Result<Query<TopQuery>, QueryRejection> = Ok(Query(TopQuery {
            k: Some(100),
            partitions: None,
        }));
        return match routed_list::<AtRiskResponse>(&state, query).await {
            Ok(list) => html(
                StatusCode::OK,
                crate::page::at_risk_rows(&list.customers, list.as_of, 100),
            ),
            Err(_) => not_ready_page(&state),
        };
    }
    match scored_pages(&state) {
        Some((population, _)) => html(StatusCode::OK, crate::page::at_risk(&population, 100)),
        None => not_ready_page(&state),
    }
}

/// `/report.html`: the production version's training report.
async fn report_html(State(state): State<AppState>) -> Response {
    let path = state
        .scorer
        .production()
        .and_then(|p| p.card.report.clone());
    match path.map(std::fs::read_to_string) {
        Some(Ok(text)) => html(StatusCode::OK, text),
        _ => html(
            StatusCode::NOT_FOUND,
            crate::page::message("No report", "the production version has no training report"),
        ),
    }
}

/// `?k=` of the top list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TopQuery {
    /// How many customers (default 100; at most the server's limit, 10,000 unless configured).
    #[param(minimum = 1, maximum = 10000)]
    k: Option<usize>,
    /// Instances only (`clv instance`): the list of these partitions alone (comma-separated), as
    /// one instance asks another when it merges the group's list; 503 unless every one is served
    /// here. Without it, an instance merges every partition's owner's list. Not in the OpenAPI
    /// document: it is for instances to ask each other, and `clv serve` refuses it (400).
    #[param(ignore)]
    partitions: Option<String>,
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

/// `k` of a list, checked against the limit.
fn list_size(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<usize, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if query.partitions.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "partitions= is for instances of a group (clv instance); this scorer holds every partition",
        ));
    }
    checked_k(state, query.k)
}

/// `k`, checked against the limit.
fn checked_k(state: &AppState, k: Option<usize>) -> Result<usize, ApiError> {
    let k = k.unwrap_or(100);
    if k == 0 || k > state.limits.max_top {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("k must be 1..={}", state.limits.max_top),
        ));
    }
    Ok(k)
}

/// The first `k` (the query's) of one of the population's lists, and the population it is of.
fn list_of<T>(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
    endpoint: &'static str,
    list: impl FnOnce(&Population, usize) -> Vec<T>,
) -> Result<(Arc<Population>, Vec<T>), ApiError> {
    let k = list_size(state, query)?;
    let population = state
        .scorer
        .population()
        .ok_or_else(|| not_ready(&state.scorer))?;
    counter!(crate::telemetry::PREDICTIONS, "endpoint" => endpoint).increment(1);
    let listed = list(&population, k);
    Ok((population, listed))
}

fn at_risk_of(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<(Arc<Population>, Vec<AtRisk>), ApiError> {
    list_of(state, query, "at_risk", Population::at_risk)
}

/// Valuable customers whose activity is fading: the `fading` band (alive by BG/NBD, more likely than
/// not to buy nothing in the horizon), highest value at risk first (revenue to date × P(no
/// purchase)): who to win back before they lapse.
#[utoipa::path(get, path = "/customers/at-risk", params(TopQuery),
    responses((status = 200, body = AtRiskResponse), (status = 400, body = ApiError), (status = 503, body = ApiError)))]
async fn at_risk(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<Json<AtRiskResponse>, ApiError> {
    let (population, customers) = at_risk_of(&state, query)?;
    Ok(Json(AtRiskResponse {
        as_of: population.as_of,
        model: population.model.clone(),
        customers,
    }))
}

/// The same list as CSV (`rank,customer_id,value_at_risk,total_revenue,p_alive,recency_days,clv_6m`).
#[utoipa::path(get, path = "/customers/at-risk.csv", params(TopQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ApiError), (status = 503, body = ApiError)))]
async fn at_risk_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, customers) = at_risk_of(&state, query)?;
    Ok(at_risk_csv_body(customers))
}

fn at_risk_csv_body(customers: Vec<AtRisk>) -> Response {
    let mut csv =
        String::from("rank,customer_id,value_at_risk,total_revenue,p_alive,recency_days,clv_6m\n");
    for r in customers {
        csv.push_str(&format!(
            "{},{},{:.2},{:.2},{:.4},{},{:.2}\n",
            r.rank,
            r.customer_id,
            r.value_at_risk,
            r.total_revenue,
            r.p_alive,
            r.recency_days,
            r.clv_6m
        ));
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response()
}

fn top_of(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<(Arc<Population>, Vec<Ranked>), ApiError> {
    list_of(state, query, "top", Population::top)
}

/// The k customers with the highest predicted CLV: who to retain and target.
#[utoipa::path(get, path = "/customers/top", params(TopQuery),
    responses((status = 200, body = TopResponse), (status = 400, body = ApiError)))]
async fn top(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<Json<TopResponse>, ApiError> {
    let (population, customers) = top_of(&state, query)?;
    Ok(Json(TopResponse {
        as_of: population.as_of,
        model: population.model.clone(),
        customers,
    }))
}

/// The same list as CSV (`rank,customer_id,clv_6m`), for marketing tools.
#[utoipa::path(get, path = "/customers/top.csv", params(TopQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ApiError)))]
async fn top_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, customers) = top_of(&state, query)?;
    Ok(top_csv_body(customers))
}

fn top_csv_body(customers: Vec<Ranked>) -> Response {
    let mut csv = String::from("rank,customer_id,clv_6m\n");
    for r in customers {
        csv.push_str(&format!("{},{},{:.2}\n", r.rank, r.customer_id, r.clv_6m));
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response()
}

/// The answer of `POST /predict`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PredictResponse {
    /// Predicted revenue in the next 6 months, £.
    pub predicted_clv_6m: f64,
    /// The nine-feature model of the production version.
    pub model: ModelRef,
}

/// Seed-compatible scoring of a feature vector by the production version's nine-feature model.
#[utoipa::path(post, path = "/predict", request_body = Nine,
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "malformed JSON or a negative feature", body = ApiError),
        (status = 413, description = "body too large", body = ApiError),
        (status = 415, description = "not application/json", body = ApiError),
        (status = 422, description = "a feature is missing or not a number", body = ApiError)))]
async fn predict(
    State(state): State<AppState>,
    body: Result<Json<Nine>, JsonRejection>,
) -> Result<Json<PredictResponse>, ApiError> {
    let Json(nine) = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let production = state
        .scorer
        .production()
        .ok_or_else(|| not_ready(&state.scorer))?;
    for (feature, value) in Feature::NINE.iter().zip(nine.values()) {
        if let Some(v) = value
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{} must be a finite number ≥ 0, not {v}", feature.name()),
            ));
        }
        let maximum = feature.kind().maximum();
        if value.is_some_and(|v| v > maximum) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{} must be at most {maximum}", feature.name()),
            ));
        }
    }
    // The nine-feature model reads none of the extra features (checked when it is loaded).
    let row = FeatureRow {
        nine,
        extra: Extra::unknown(),
    };
    let predicted = production
        .nine
        .predict_one(&row)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !predicted.is_finite() {
        // Valid but extreme inputs (a velocity of 1e308, say) can take a model past f64: the
        // request cannot be scored, which is not a fault of the server.
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "these features are beyond what the model can score (its prediction is not a finite number)",
        ));
    }
    counter!(crate::telemetry::PREDICTIONS, "endpoint" => "predict").increment(1);
    Ok(Json(PredictResponse {
        predicted_clv_6m: (predicted * 100.0).round() / 100.0,
        model: ModelRef {
            name: production.nine.spec.name(),
            version: production.version.clone(),
        },
    }))
}

/// The answer of `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
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

/// Readiness: a production model is loaded, the store is readable and customers are scored.
#[utoipa::path(get, path = "/ready",
    responses((status = 200, body = Ready), (status = 503, body = ApiError)))]
async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state
        .scorer
        .readiness()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    if let Some(routing) = &state.routing {
        let pending: Vec<String> = routing
            .instance()
            .statuses()
            .into_iter()
            .filter(|(_, s)| *s != cluster::PartitionStatus::Serving)
            .map(|(p, s)| format!("{p} ({:.0}%)", s.progress() * 100.0))
            .collect();
        if !pending.is_empty() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("restoring partitions {}", pending.join(", ")),
            ));
        }
    }
    let population = state
        .scorer
        .population()
        .ok_or_else(|| not_ready(&state.scorer))?;
    Ok(Json(Ready {
        status: "ready".into(),
        model: population.model.clone(),
        as_of: population.as_of,
        customers: population.len(),
    }))
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            handle.run_upkeep();
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }
        None => ApiError::new(StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}

async fn unmatched(request: Request) -> ApiError {
    counter!(crate::telemetry::HTTP_REQUESTS, "route" => "unmatched", "status" => "404")
        .increment(1);
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The metric handles of one route and status.
struct RequestHandles {
    requests: metrics::Counter,
    duration: metrics::Histogram,
    size: metrics::Histogram,
}

impl RequestHandles {
    fn new(route: &str, status: u16) -> Self {
        let (route, status) = (route.to_string(), status.to_string());
        RequestHandles {
            requests: counter!(crate::telemetry::HTTP_REQUESTS, "route" => route.clone(), "status" => status.clone()),
            duration: histogram!(crate::telemetry::HTTP_DURATION, "route" => route.clone(), "status" => status),
            size: histogram!(crate::telemetry::HTTP_RESPONSE_SIZE, "route" => route),
        }
    }
}

/// The routes of the API, and the statuses whose handles are looked up once at start-up (the hot
/// path then neither allocates label strings nor hashes metric keys).
const ROUTES: [&str; 10] = [
    "/customers/{id}/clv",
    "/customers/{id}/features",
    "/customers/top",
    "/customers/top.csv",
    "/customers/at-risk",
    "/customers/at-risk.csv",
    "/predict",
    "/health",
    "/ready",
    "/metrics",
];
const COMMON_STATUSES: [u16; 4] = [200, 400, 404, 503];

/// The handles of what `GET /customers/{id}/clv` serves.
struct Served {
    predictions: metrics::Counter,
    clv: metrics::Histogram,
}

static SERVED: std::sync::OnceLock<Served> = std::sync::OnceLock::new();

static HANDLES: std::sync::OnceLock<Vec<(&'static str, u16, RequestHandles)>> =
    std::sync::OnceLock::new();

/// Counts every routed request by route and status, and records its latency and response size;
/// within it, [`guard`] sheds, limits and times the request.
async fn track(request: Request, next: Next, limits: Limits, in_flight: InFlight) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = guard(limits, in_flight, request, next).await;
    let seconds = started.elapsed().as_secs_f64();
    let route = route.as_ref().map(|p| p.as_str()).unwrap_or("unmatched");
    let status = response.status().as_u16();
    let size = response.body().size_hint().exact();
    let cached = HANDLES.get().and_then(|handles| {
        handles
            .iter()
            .find(|(r, s, _)| *s == status && *r == route)
            .map(|(_, _, h)| h)
    });
    let record = |h: &RequestHandles| {
        h.requests.increment(1);
        h.duration.record(seconds);
        if let Some(size) = size {
            h.size.record(size as f64);
        }
    };
    match cached {
        Some(handles) => record(handles),
        None => record(&RequestHandles::new(route, status)),
    }
    response
}

/// Sheds a request over the in-flight cap (503 with `Retry-After`), refuses a body declared larger
/// than the limit before reading it (413), and answers 408 when a request takes longer than the
/// timeout; all as JSON errors.
async fn guard(limits: Limits, in_flight: InFlight, request: Request, next: Next) -> Response {
    let Some(_permit) = in_flight.try_enter() else {
        metrics::counter!(crate::telemetry::SHED, "reason" => "in_flight").increment(1);
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "overloaded: {} requests in flight, retry later",
                limits.max_in_flight
            ),
        )
        .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::shed::RETRY_AFTER_SECONDS),
        );
        return response;
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.body_bytes as u64) {
        let mut response = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} bytes", limits.body_bytes),
        )
        .into_response();
        // The unread body makes the connection unusable for another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("no answer within {:?}", limits.timeout),
        )
        .into_response(),
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// Where a routed customer's question goes: `None` to answer here, else the response (the owner's,
/// forwarded, or a 503 with `Retry-After`).
async fn elsewhere(
    state: &AppState,
    raw: &str,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Response>, ApiError> {
    let id = customer_id(raw)?;
    let Some(routing) = &state.routing else {
        return Ok(None);
    };
    match routing.route(id, headers) {
        Ok(Route::Here) => Ok(None),
        Ok(Route::To { id, http }) => {
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            Ok(Some(routing.forward(&id, &http, path).await))
        }
        Err(retry) => Ok(Some(retry.into_response())),
    }
}

/// Marks a routed answer given here.
fn answered_here(state: &AppState, mut response: Response) -> Response {
    if let Some(routing) = &state.routing
        && let Ok(value) = HeaderValue::from_str(routing.instance().id())
    {
        response
            .headers_mut()
            .insert(crate::route::ANSWERED_BY, value);
    }
    response
}

async fn routed_clv(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(response) = elsewhere(&state, &id, &uri, &headers).await? {
        return Ok(response);
    }
    let response = customer_clv(State(state.clone()), Path(id)).await?;
    Ok(answered_here(&state, response))
}

async fn routed_features(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(response) = elsewhere(&state, &id, &uri, &headers).await? {
        return Ok(response);
    }
    let response = customer_features(State(state.clone()), Path(id)).await?;
    Ok(answered_here(&state, response))
}

async fn routed_page_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    match elsewhere(&state, &id, &uri, &headers).await {
        Ok(Some(response)) => response,
        // A bad ID gets the page's own 400.
        Ok(None) | Err(_) => page_customer(State(state), Path(id)).await,
    }
}

/// The answers of the owners agree on `as_of` and the model, or the list must wait.
fn agreed<'a>(
    answers: impl Iterator<Item = (&'a chrono::NaiveDate, &'a ModelRef)>,
) -> Result<Option<(chrono::NaiveDate, ModelRef)>, ListError> {
    let mut first: Option<(chrono::NaiveDate, ModelRef)> = None;
    for (as_of, model) in answers {
        match &first {
            None => first = Some((*as_of, model.clone())),
            Some((a, m)) if a == as_of && m == model => {}
            Some((a, m)) => {
                return Err(ListError::Retry(RetryLater(format!(
                    "the instances' answers differ (as_of {a} and {as_of}, model {} and {}): a refresh or a promotion is under way",
                    m.version, model.version
                ))));
            }
        }
    }
    Ok(first)
}

/// A list the instances merge: `as_of`, the model and rows in the ranking order.
trait Listed: Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// One row.
    type Row;
    /// The list's path, which owners are asked at.
    const PATH: &'static str;
    /// The endpoint label of `clv_scorer_predictions_total`.
    const ENDPOINT: &'static str;
    /// The first `k` of the customers `keep` keeps, in `population`.
    fn of(population: &Population, k: usize, keep: impl Fn(u64) -> bool) -> Self;
    /// The parts.
    fn parts(self) -> (chrono::NaiveDate, ModelRef, Vec<Self::Row>);
    /// From the parts.
    fn from_parts(as_of: chrono::NaiveDate, model: ModelRef, rows: Vec<Self::Row>) -> Self;
    /// A row's place: its value (higher first) and customer (lower first on ties).
    fn place(row: &Self::Row) -> (f64, u64);
    /// Sets a row's rank.
    fn rank(row: &mut Self::Row, rank: usize);
    /// Its `as_of` and model, to check the owners agree.
    fn stamp(&self) -> (&chrono::NaiveDate, &ModelRef);
}

impl Listed for TopResponse {
    type Row = Ranked;
    const PATH: &'static str = "/customers/top";
    const ENDPOINT: &'static str = "top";
    fn of(population: &Population, k: usize, keep: impl Fn(u64) -> bool) -> Self {
        TopResponse {
            as_of: population.as_of,
            model: population.model.clone(),
            customers: population.top_where(k, keep),
        }
    }
    fn parts(self) -> (chrono::NaiveDate, ModelRef, Vec<Ranked>) {
        (self.as_of, self.model, self.customers)
    }
    fn from_parts(as_of: chrono::NaiveDate, model: ModelRef, customers: Vec<Ranked>) -> Self {
        TopResponse {
            as_of,
            model,
            customers,
        }
    }
    fn place(row: &Ranked) -> (f64, u64) {
        (row.clv_6m, row.customer_id)
    }
    fn rank(row: &mut Ranked, rank: usize) {
        row.rank = rank;
    }
    fn stamp(&self) -> (&chrono::NaiveDate, &ModelRef) {
        (&self.as_of, &self.model)
    }
}

impl Listed for AtRiskResponse {
    type Row = AtRisk;
    const PATH: &'static str = "/customers/at-risk";
    const ENDPOINT: &'static str = "at_risk";
    fn of(population: &Population, k: usize, keep: impl Fn(u64) -> bool) -> Self {
        AtRiskResponse {
            as_of: population.as_of,
            model: population.model.clone(),
            customers: population.at_risk_where(k, keep),
        }
    }
    fn parts(self) -> (chrono::NaiveDate, ModelRef, Vec<AtRisk>) {
        (self.as_of, self.model, self.customers)
    }
    fn from_parts(as_of: chrono::NaiveDate, model: ModelRef, customers: Vec<AtRisk>) -> Self {
        AtRiskResponse {
            as_of,
            model,
            customers,
        }
    }
    fn place(row: &AtRisk) -> (f64, u64) {
        (row.value_at_risk, row.customer_id)
    }
    fn rank(row: &mut AtRisk, rank: usize) {
        row.rank = rank;
    }
    fn stamp(&self) -> (&chrono::NaiveDate, &ModelRef) {
        (&self.as_of, &self.model)
    }
}

/// A list of a routed instance: one owner's part (`?partitions=`), or every owner's, merged.
async fn routed_list<L: Listed>(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<L, Response> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()).into_response())?;
    let k = checked_k(state, query.k).map_err(IntoResponse::into_response)?;
    let Some(routing) = state.routing.clone() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not an instance").into_response());
    };
    let scorer = state.scorer.clone();
    let here = |partitions: &BTreeSet<i32>| {
        let population = scorer.population().ok_or_else(|| {
            ListError::Retry(RetryLater(format!(
                "not ready: {}",
                not_ready(&scorer).error
            )))
        })?;
        Ok(L::of(&population, k, |id| routing.keeps(partitions, id)))
    };
    let answer = match &query.partitions {
        Some(text) => {
            let partitions = routing
                .local_partitions(text)
                .map_err(IntoResponse::into_response)?;
            here(&partitions).map_err(IntoResponse::into_response)?
        }
        None => {
            let answers: Vec<L> = routing
                .gather(L::PATH, k, here)
                .await
                .map_err(IntoResponse::into_response)?;
            let (as_of, model) = agreed(answers.iter().map(L::stamp))
                .map_err(IntoResponse::into_response)?
                .ok_or_else(|| not_ready(&state.scorer).into_response())?;
            let lists = answers.into_iter().map(|a| a.parts().2).collect();
            let mut rows = cluster::merge::first_k(lists, k, |r| L::place(r).0, |r| L::place(r).1);
            for (i, row) in rows.iter_mut().enumerate() {
                L::rank(row, i + 1);
            }
            L::from_parts(as_of, model, rows)
        }
    };
    counter!(crate::telemetry::PREDICTIONS, "endpoint" => L::ENDPOINT).increment(1);
    Ok(answer)
}

async fn routed_top(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    match routed_list::<TopResponse>(&state, query).await {
        Ok(answer) => answered_here(&state, Json(answer).into_response()),
        Err(response) => response,
    }
}

async fn routed_top_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    match routed_list::<TopResponse>(&state, query).await {
        Ok(answer) => top_csv_body(answer.customers),
        Err(response) => response,
    }
}

async fn routed_at_risk(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    match routed_list::<AtRiskResponse>(&state, query).await {
        Ok(answer) => answered_here(&state, Json(answer).into_response()),
        Err(response) => response,
    }
}

async fn routed_at_risk_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    match routed_list::<AtRiskResponse>(&state, query).await {
        Ok(answer) => at_risk_csv_body(answer.customers),
        Err(response) => response,
    }
}

/// `GET /cluster`: this instance's partitions, the live members and the unserved partitions.
async fn cluster_view(State(state): State<AppState>) -> Response {
    match &state.routing {
        Some(routing) => Json(routing.describe()).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not an instance").into_response(),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clv scorer",
        description = "Customer lifetime value (next 6 months) from live features"
    ),
    paths(
        customer_clv,
        customer_features,
        top,
        top_csv,
        at_risk,
        at_risk_csv,
        predict,
        health,
        ready
    ),
    components(schemas(
        AtRisk,
        AtRiskResponse,
        Segment,
        ValueTier,
        Activity,
        ClvResponse,
        FeaturesResponse,
        FeatureRow,
        Nine,
        Extra,
        Freshness,
        ModelRef,
        Ranked,
        TopResponse,
        PredictResponse,
        Health,
        Ready,
        ApiError
    ))
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The router of the API over `scorer`; `/metrics` renders `metrics` when given.
pub fn router(scorer: Arc<Scorer>, metrics: Option<PrometheusHandle>, limits: Limits) -> Router {
    router_with(scorer, metrics, limits, None)
}

/// The router of an instance of a group (`clv instance`) when `routing` is given: a customer's
/// questions go to its partition's owner, lists merge every owner's ([`crate::route`]), and
/// `/cluster` describes the group; else [`router`].
pub fn router_with(
    scorer: Arc<Scorer>,
    metrics: Option<PrometheusHandle>,
    limits: Limits,
    routing: Option<Arc<Routing>>,
) -> Router {
    let routed = routing.is_some();
    let state = AppState {
        scorer,
        metrics,
        limits,
        routing,
    };
    let in_flight = InFlight::new(limits.max_in_flight);
    let api = match routed {
        false => Router::new()
            .route("/customers/top", get(top))
            .route("/customers/top.csv", get(top_csv))
            .route("/customers/at-risk", get(at_risk))
            .route("/customers/at-risk.csv", get(at_risk_csv))
            .route("/customers/{id}/clv", get(customer_clv))
            .route("/customers/{id}/features", get(customer_features))
            .route("/customers/{id}", get(page_customer)),
        true => Router::new()
            .route("/customers/top", get(routed_top))
            .route("/customers/top.csv", get(routed_top_csv))
            .route("/customers/at-risk", get(routed_at_risk))
            .route("/customers/at-risk.csv", get(routed_at_risk_csv))
            .route("/customers/{id}/clv", get(routed_clv))
            .route("/customers/{id}/features", get(routed_features))
            .route("/customers/{id}", get(routed_page_customer))
            .route("/cluster", get(cluster_view)),
    };
    let api = api
        .route("/", get(page_overview))
        .route("/customers", get(page_customers))
        .route("/at-risk", get(page_at_risk))
        .route("/report.html", get(report_html))
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        // One layer that tracks and guards: every layer costs each request a clone of the boxed
        // service under it (about 3% of the scorer's time at saturation, in perf).
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            track(request, next, limits, in_flight.clone())
        }));
    Router::new()
        .merge(api)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .fallback(unmatched)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// Registers every metric ([`crate::telemetry::register`]) and the request metrics of every route
/// with status 200 at 0, and keeps the handles of the common statuses for the request path. Call
/// once, after the recorder is installed.
pub fn register_metrics() {
    crate::telemetry::register();
    let handles = ROUTES
        .iter()
        .flat_map(|route| {
            COMMON_STATUSES
                .iter()
                .map(move |status| (*route, *status, RequestHandles::new(route, *status)))
        })
        .collect::<Vec<_>>();
    for (_, status, h) in &handles {
        if *status == 200 {
            h.requests.absolute(0);
        }
    }
    let _ = HANDLES.set(handles);
    let _ = SERVED.set(Served {
        predictions: counter!(crate::telemetry::PREDICTIONS, "endpoint" => "clv"),
        clv: histogram!(crate::telemetry::SERVED_CLV),
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_says_what_the_server_answers_and_requires() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for (path, schema) in [("/health", "Health"), ("/ready", "Ready")] {
            let body = &doc["paths"][path]["get"]["responses"]["200"]["content"];
            assert_eq!(
                body["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{schema}"),
                "{path}: {body}"
            );
        }
        for path in ["/customers/top", "/customers/top.csv"] {
            let k = &doc["paths"][path]["get"]["parameters"][0];
            assert_eq!(k["name"], "k");
            assert_eq!(k["in"], "query", "{k}");
            assert_ne!(k["required"], true, "{k}");
            assert_eq!(k["schema"]["type"], "integer", "{k}");
            assert_eq!(k["schema"]["minimum"], 1, "{k}");
            assert_eq!(k["schema"]["maximum"], 10000, "{k}");
        }
    }
}
