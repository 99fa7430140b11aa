//! The handlers of an instance of a group (`clv instance`): a customer's questions forwarded to its
//! partition's owner, the lists merged from every owner's, `/cluster`.

use super::*;

/// Where a routed customer's question goes: `None` to answer here, else the response (the owner's,
/// forwarded, or a 503 with `Retry-After`).
pub(super) async fn elsewhere(
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
pub(super) fn answered_here(state: &AppState, mut response: Response) -> Response {
    if let Some(routing) = &state.routing
        && let Ok(value) = HeaderValue::from_str(routing.instance().id())
    {
        response
            .headers_mut()
            .insert(crate::route::ANSWERED_BY, value);
    }
    response
}

pub(super) async fn routed_clv(
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

pub(super) async fn routed_features(
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

pub(super) async fn routed_page_customer(
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
pub(super) fn agreed<'a>(
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
pub(super) trait Listed: Serialize + serde::de::DeserializeOwned + Send + 'static {
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

/// [`Listed`] for a list response `$list` (`as_of`, `model`, `customers`) of rows `$row`, asked at
/// `$path`, counted as `$endpoint`, taken from the population by `$where` and ordered by the rows'
/// `$value`: the top list and the at-risk list are the same merge.
macro_rules! listed {
    ($list:ident, $row:ty, $path:literal, $endpoint:literal, $where:ident, $value:ident) => {
        impl Listed for $list {
            type Row = $row;
            const PATH: &'static str = $path;
            const ENDPOINT: &'static str = $endpoint;
            fn of(population: &Population, k: usize, keep: impl Fn(u64) -> bool) -> Self {
                $list {
                    as_of: population.as_of,
                    model: population.model.clone(),
                    customers: population.$where(k, keep),
                }
            }
            fn parts(self) -> (chrono::NaiveDate, ModelRef, Vec<$row>) {
                (self.as_of, self.model, self.customers)
            }
            fn from_parts(as_of: chrono::NaiveDate, model: ModelRef, customers: Vec<$row>) -> Self {
                $list {
                    as_of,
                    model,
                    customers,
                }
            }
            fn place(row: &$row) -> (f64, u64) {
                (row.$value, row.customer_id)
            }
            fn rank(row: &mut $row, rank: usize) {
                row.rank = rank;
            }
            fn stamp(&self) -> (&chrono::NaiveDate, &ModelRef) {
                (&self.as_of, &self.model)
            }
        }
    };
}

listed!(
    TopResponse,
    Ranked,
    "/customers/top",
    "top",
    top_where,
    clv_6m
);
listed!(
    AtRiskResponse,
    AtRisk,
    "/customers/at-risk",
    "at_risk",
    at_risk_where,
    value_at_risk
);

/// A list of a routed instance: one owner's part (`?partitions=`), or every owner's, merged.
pub(super) async fn routed_list<L: Listed>(
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

/// A routed list answered with `body`, or the error `routed_list` gave.
async fn routed_answer<L: Listed>(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
    body: impl FnOnce(L) -> Response,
) -> Response {
    match routed_list::<L>(state, query).await {
        Ok(answer) => body(answer),
        Err(response) => response,
    }
}

pub(super) async fn routed_top(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    routed_answer(&state, query, |a: TopResponse| {
        answered_here(&state, Json(a).into_response())
    })
    .await
}

pub(super) async fn routed_top_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    routed_answer(&state, query, |a: TopResponse| top_csv_body(a.customers)).await
}

pub(super) async fn routed_at_risk(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    routed_answer(&state, query, |a: AtRiskResponse| {
        answered_here(&state, Json(a).into_response())
    })
    .await
}

pub(super) async fn routed_at_risk_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    routed_answer(&state, query, |a: AtRiskResponse| {
        at_risk_csv_body(a.customers)
    })
    .await
}

/// `GET /cluster`: this instance's partitions, the live members and the unserved partitions.
pub(super) async fn cluster_view(State(state): State<AppState>) -> Response {
    match &state.routing {
        Some(routing) => Json(routing.describe()).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not an instance").into_response(),
    }
}
