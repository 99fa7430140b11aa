//! The JSON API's handlers (each customer's CLV and features, the lists, `/predict`, health and
//! readiness, `/metrics`) and its one error type.

use super::*;

pub(super) fn json_bytes(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn customer_id(raw: &str) -> Result<u64, ApiError> {
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

pub(super) fn not_ready(scorer: &Scorer) -> ApiError {
    let reason = scorer.readiness().err().unwrap_or_default();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {reason}"),
    )
}

/// The customer's answer in `population`.
pub(super) fn scored_in(population: &Population, id: u64) -> Result<Arc<Scored>, ApiError> {
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
pub(super) async fn customer_clv(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = customer_id(&id)?;
    // The request itself, not its headers and URI extracted (each a copy per request).
    if let Some(elsewhere) = state
        .routing
        .elsewhere(id, request.headers(), request.uri())
        .await
    {
        return Ok(elsewhere);
    }
    // The hot path: the population borrowed (no shared reference count to bump per request).
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
    Ok(state
        .routing
        .answered_here(json_bytes(scored.clv_body.clone())))
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
pub(super) async fn customer_features(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = customer_id(&id)?;
    // The request itself, not its headers and URI extracted (each a copy per request).
    if let Some(elsewhere) = state
        .routing
        .elsewhere(id, request.headers(), request.uri())
        .await
    {
        return Ok(elsewhere);
    }
    let population = state
        .scorer
        .population()
        .ok_or_else(|| not_ready(&state.scorer))?;
    let scored = scored_in(&population, id)?;
    let answer = Json(FeaturesResponse {
        customer_id: id,
        as_of: population.as_of,
        features: scored.row,
        freshness: population.freshness.clone(),
    });
    Ok(state.routing.answered_here(answer.into_response()))
}

/// `?k=` of the top list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TopQuery {
    /// How many customers (default 100; at most the server's limit, 10,000 unless configured).
    #[param(minimum = 1, maximum = 10000)]
    pub(super) k: Option<usize>,
    /// Instances only (`clv instance`): the list of these partitions alone (comma-separated), as
    /// one instance asks another when it merges the group's list; 503 unless every one is served
    /// here. Without it, an instance merges every partition's owner's list. Not in the OpenAPI
    /// document: it is for instances to ask each other, and `clv serve` refuses it (400).
    #[param(ignore)]
    pub(super) partitions: Option<String>,
}

/// `k`, checked against the limit.
pub(super) fn checked_k(state: &AppState, k: Option<usize>) -> Result<usize, ApiError> {
    let k = k.unwrap_or(100);
    if k == 0 || k > state.limits.max_top {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("k must be 1..={}", state.limits.max_top),
        ));
    }
    Ok(k)
}

/// Valuable customers whose activity is fading: the `fading` band (alive by BG/NBD, more likely than
/// not to buy nothing in the horizon), highest value at risk first (revenue to date × P(no
/// purchase)): who to win back before they lapse.
#[utoipa::path(get, path = "/customers/at-risk", params(TopQuery),
    responses((status = 200, body = AtRiskResponse), (status = 400, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn at_risk(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    answer(&state, query, |a: AtRiskResponse| {
        state.routing.answered_here(Json(a).into_response())
    })
    .await
}

/// The k customers with the highest predicted CLV: who to retain and target.
#[utoipa::path(get, path = "/customers/top", params(TopQuery),
    responses((status = 200, body = TopResponse), (status = 400, body = ApiError)))]
pub(super) async fn top(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    answer(&state, query, |a: TopResponse| {
        state.routing.answered_here(Json(a).into_response())
    })
    .await
}

/// `?partitions=` of the summary (for instances asking each other).
#[derive(Debug, Deserialize)]
pub(super) struct SummaryQuery {
    partitions: Option<String>,
}

/// The customers scored at `as_of` in numbers: how many, their predicted CLV in all, the histogram
/// of predicted CLV and the customers per segment (an instance of a group adds up every owner's).
#[utoipa::path(get, path = "/customers/summary",
    responses((status = 200, body = SummaryResponse), (status = 503, body = ApiError)))]
pub(super) async fn customers_summary(
    State(state): State<AppState>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "partitions: a comma-separated list",
        )
        .into_response();
    };
    match summary(&state, query.partitions.as_deref()).await {
        Ok(answer) => state.routing.answered_here(Json(answer).into_response()),
        Err(e) => e.into_response(),
    }
}

/// Seed-compatible scoring of a feature vector by the production version's nine-feature model.
#[utoipa::path(post, path = "/predict", request_body = Nine,
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "malformed JSON or a negative feature", body = ApiError),
        (status = 413, description = "body too large", body = ApiError),
        (status = 415, description = "not application/json", body = ApiError),
        (status = 422, description = "a feature is missing or not a number", body = ApiError)))]
pub(super) async fn predict(
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

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
pub(super) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: a production model is loaded, the store is readable and customers are scored.
#[utoipa::path(get, path = "/ready",
    responses((status = 200, body = Ready), (status = 503, body = ApiError)))]
pub(super) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state
        .scorer
        .readiness()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    // Cut off from the broker, it may hold partitions the group has given away, or none at all
    // once its session has ended: either way not ready.
    if let Some(silent) = state.routing.fenced() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "out of contact with the broker for {:.0} s: serving no partition until the group confirms them",
                silent.as_secs_f64()
            ),
        ));
    }
    let pending = state.routing.pending();
    if !pending.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("restoring partitions {}", pending.join(", ")),
        ));
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

/// `GET /cluster`: this instance's partitions, the live members and the unserved partitions (404
/// for a scorer alone).
pub(super) async fn cluster_view(State(state): State<AppState>) -> Response {
    match state.routing.describe() {
        Some(described) => Json(described).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not an instance of a group: this scorer (clv serve) holds every partition",
        )
        .into_response(),
    }
}

pub(super) async fn render_metrics(State(state): State<AppState>) -> Response {
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

pub(super) async fn unmatched(request: Request) -> ApiError {
    counter!(crate::telemetry::HTTP_REQUESTS, "route" => "unmatched", "status" => "404")
        .increment(1);
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

pub(super) async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
