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

/// The first `k` of a list (the group's, merged, for an instance); none while it cannot be given.
async fn first<L: Listed>(state: &AppState, k: usize) -> Option<L> {
    let query = Ok(Query(TopQuery {
        k: Some(k.min(state.limits.max_top)),
        partitions: None,
    }));
    list::<L>(state, query).await.ok()
}

/// A page that cannot be given while a list or the numbers cannot (partitions are moving).
fn unavailable_page(error: ListError) -> Response {
    let reason = match error {
        ListError::Bad(why) | ListError::NotReady(why) => why,
        ListError::Retry(retry) => retry.0,
    };
    let mut response = html(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::page::message(
            "Not available right now",
            &format!("{reason}; reload in a moment"),
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::shed::RETRY_AFTER_SECONDS),
    );
    response
}

/// `/`: the web page's overview: the customers (every one for a scorer alone, the group's for an
/// instance), then the model.
pub(super) async fn page_overview(State(state): State<AppState>) -> Response {
    let Some((population, production)) = scored_pages(&state) else {
        return not_ready_page(&state);
    };
    let summary = match summary(&state, None).await {
        Ok(summary) => summary,
        Err(e) => return unavailable_page(e),
    };
    let top = first::<TopResponse>(&state, crate::page::OVERVIEW_ROWS).await;
    let at_risk = first::<AtRiskResponse>(&state, crate::page::OVERVIEW_ROWS).await;
    let note = state.routing.group_note();
    html(
        StatusCode::OK,
        crate::page::overview_of(
            &population,
            &production,
            &crate::page::Customers {
                summary: &summary,
                top: top.as_ref().map(|l| l.customers.as_slice()),
                at_risk: at_risk.as_ref().map(|l| l.customers.as_slice()),
                note: note.as_deref(),
            },
        ),
    )
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
    let Some((_, production)) = scored_pages(&state) else {
        return not_ready_page(&state);
    };
    let summary = match summary(&state, None).await {
        Ok(summary) => summary,
        Err(e) => return unavailable_page(e),
    };
    let per_page = crate::page::PER_PAGE;
    let pages = summary.customers.div_ceil(per_page).max(1);
    let page = page.clamp(1, pages);
    let start = (page - 1) * per_page;
    // The list goes as deep as the server's limit on k.
    let Some(top) = first::<TopResponse>(&state, start + per_page).await else {
        return unavailable_page(ListError::NotReady("the ranked list".into()));
    };
    let rows: Vec<Ranked> = top.customers.into_iter().skip(start).collect();
    let note = state.routing.group_note();
    html(
        StatusCode::OK,
        crate::page::customers_of(
            &rows,
            summary.customers,
            page,
            summary.as_of,
            &production,
            note.as_deref(),
        ),
    )
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

/// `/favicon.ico`: the pages' icon ([`crate::page::ICON_SVG`]), for what names none.
pub(super) async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        crate::page::ICON_SVG,
    )
        .into_response()
}
