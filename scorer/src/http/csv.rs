//! The lists as CSV.

use super::*;

/// The same list as CSV (`rank,customer_id,value_at_risk,total_revenue,p_alive,recency_days,clv_6m`).
#[utoipa::path(get, path = "/customers/at-risk.csv", params(TopQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn at_risk_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    answer(&state, query, |a: AtRiskResponse| {
        at_risk_csv_body(a.customers)
    })
    .await
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

/// The same list as CSV (`rank,customer_id,clv_6m`), for marketing tools.
#[utoipa::path(get, path = "/customers/top.csv", params(TopQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ApiError)))]
pub(super) async fn top_csv(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    answer(&state, query, |a: TopResponse| top_csv_body(a.customers)).await
}

fn top_csv_body(customers: Vec<Ranked>) -> Response {
    let mut csv = String::from("rank,customer_id,clv_6m\n");
    for r in customers {
        csv.push_str(&format!("{},{},{:.2}\n", r.rank, r.customer_id, r.clv_6m));
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response()
}
