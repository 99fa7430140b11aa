//! The web page's handlers: the overview, the ranked list, a customer, the at-risk list, the report.

use super::*;

/// `?page=` and `?id=` of the page's ranked list.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    page: Option<String>,
    id: Option<String>,
}

/// An HTML page with `status`.
pub(super) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The population and the version it was scored with, when both are there.
pub(super) fn scored_pages(
    state: &AppState,
) -> Option<(Arc<Population>, Arc<crate::follow::Production>)> {
    let population = state.scorer.population()?;
    let production = state.scorer.production()?;
    (population.model.version == production.version).then_some((population, production))
}

/// The page saying why nothing is scored yet.
pub(super) fn not_ready_page(state: &AppState) -> Response {
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

/// `page` over the customers this scorer shows: every one for `clv serve`, an instance's own
/// partitions' (said above the lists) for `clv instance`.
pub(super) fn in_scope<R>(state: &AppState, page: impl FnOnce(&crate::page::Scope<'_>) -> R) -> R {
    match state.routing.scope_note() {
        None => page(&crate::page::Scope::all()),
        Some(note) => {
            let keep = |id| state.routing.serves_customer(id);
            page(&crate::page::Scope {
                keep: &keep,
                note: Some(note),
            })
        }
    }
}

/// `/`: the web page's overview.
pub(super) async fn page_overview(State(state): State<AppState>) -> Response {
    match scored_pages(&state) {
        Some((population, production)) => html(
            StatusCode::OK,
            in_scope(&state, |scope| {
                crate::page::overview_in(&population, &production, scope)
            }),
        ),
        None => not_ready_page(&state),
    }
}

/// `/customers`: the ranked list; `?id=` opens that customer.
pub(super) async fn page_customers(
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
        Some((population, production)) => html(
            StatusCode::OK,
            in_scope(&state, |scope| {
                crate::page::customers_in(&population, &production, page, scope)
            }),
        ),
        None => not_ready_page(&state),
    }
}

/// `/customers/{id}`: one customer's page.
pub(super) async fn page_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Ok(id) = customer_id(&id) else {
        return html(
            StatusCode::BAD_REQUEST,
            crate::page::message(
                "No such customer",
                &format!("{id:?} is not a customer ID: IDs are digits"),
            ),
        );
    };
    if let Some(elsewhere) = state.routing.elsewhere(id, &headers, &uri).await {
        return elsewhere;
    }
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

/// `/at-risk`: the at-risk list's page (the group's, merged from every owner, for an instance).
pub(super) async fn page_at_risk(State(state): State<AppState>) -> Response {
    const SHOWN: usize = 100;
    let query = Ok(Query(TopQuery {
        k: Some(SHOWN),
        partitions: None,
    }));
    match list::<AtRiskResponse>(&state, query).await {
        Ok(list) => html(
            StatusCode::OK,
            crate::page::at_risk_rows(&list.customers, list.as_of, SHOWN),
        ),
        Err(_) => not_ready_page(&state),
    }
}

/// `/report.html`: the production version's training report.
pub(super) async fn report_html(State(state): State<AppState>) -> Response {
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
