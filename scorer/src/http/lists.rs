//! The lists (top, at-risk) as one merge: a scorer alone answers from its population; an instance
//! answers one owner's part (`?partitions=`) or merges every owner's part into the group's list.

use super::*;

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
                return Err(ListError::Retry(crate::route::RetryLater(format!(
                    "the instances' answers differ (as_of {a} and {as_of}, model {} and {}): a refresh or a promotion is under way",
                    m.version, model.version
                ))));
            }
        }
    }
    Ok(first)
}

/// A list of customers: `as_of`, the model and rows in the ranking order.
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

/// The first `k` of a list: this scorer's own (alone), one owner's part (`?partitions=`), or every
/// owner's, merged.
pub(super) async fn list<L: Listed>(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Result<L, Response> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()).into_response())?;
    let k = checked_k(state, query.k).map_err(IntoResponse::into_response)?;
    let (routing, scorer) = (&state.routing, &state.scorer);
    let here = |partitions: Option<&BTreeSet<i32>>| {
        let population = scorer
            .population()
            .ok_or_else(|| ListError::NotReady(scorer.readiness().err().unwrap_or_default()))?;
        Ok(L::of(&population, k, |id| routing.keeps(partitions, id)))
    };
    let answer = match &query.partitions {
        Some(text) => {
            let partitions = routing
                .local_partitions(text)
                .map_err(IntoResponse::into_response)?;
            here(Some(&partitions)).map_err(IntoResponse::into_response)?
        }
        None => {
            let answers: Vec<L> = routing
                .gather(L::PATH, k, here)
                .await
                .map_err(IntoResponse::into_response)?;
            merged(answers, k).map_err(IntoResponse::into_response)?
        }
    };
    counter!(crate::telemetry::PREDICTIONS, "endpoint" => L::ENDPOINT).increment(1);
    Ok(answer)
}

/// The first `k` of the owners' lists in one ranking (one list as it is).
fn merged<L: Listed>(mut answers: Vec<L>, k: usize) -> Result<L, ListError> {
    if answers.len() == 1
        && let Some(only) = answers.pop()
    {
        return Ok(only);
    }
    let (as_of, model) = agreed(answers.iter().map(L::stamp))?
        .ok_or_else(|| ListError::NotReady("no partition is served".into()))?;
    let lists = answers.into_iter().map(|a| a.parts().2).collect();
    let mut rows = cluster::merge::first_k(lists, k, |r| L::place(r).0, |r| L::place(r).1);
    for (i, row) in rows.iter_mut().enumerate() {
        L::rank(row, i + 1);
    }
    Ok(L::from_parts(as_of, model, rows))
}

/// A list answered with `body`, or the error [`list`] gave.
pub(super) async fn answer<L: Listed>(
    state: &AppState,
    query: Result<Query<TopQuery>, QueryRejection>,
    body: impl FnOnce(L) -> Response,
) -> Response {
    match list::<L>(state, query).await {
        Ok(answer) => body(answer),
        Err(response) => response,
    }
}

/// The customers in numbers: this scorer's (alone), one owner's part (`?partitions=`), or every
/// owner's, added up.
pub(super) async fn summary(
    state: &AppState,
    partitions: Option<&str>,
) -> Result<SummaryResponse, ListError> {
    let (routing, scorer) = (&state.routing, &state.scorer);
    let here = |partitions: Option<&BTreeSet<i32>>| {
        let population = scorer
            .population()
            .ok_or_else(|| ListError::NotReady(scorer.readiness().err().unwrap_or_default()))?;
        Ok(crate::summary::summarize(&population, |id| {
            routing.keeps(partitions, id)
        }))
    };
    match partitions {
        Some(text) => here(Some(&routing.local_partitions(text)?)),
        None => {
            let parts: Vec<SummaryResponse> = routing.gather(SUMMARY_PATH, 1, here).await?;
            agreed(parts.iter().map(|p| (&p.as_of, &p.model)))?;
            crate::summary::add(parts)
                .ok_or_else(|| ListError::NotReady("no partition is served".into()))
        }
    }
}

/// Where owners are asked for their part of the summary.
pub(super) const SUMMARY_PATH: &str = "/customers/summary";
