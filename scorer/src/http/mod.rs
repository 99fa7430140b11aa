//! The HTTP API (axum): thin handlers over [`Scorer`], one JSON error type, request metrics, limits,
//! and the OpenAPI document with an offline Swagger UI. By resource: the JSON API and its error
//! (`api`), the web page (`pages`), the lists as CSV (`csv`), what every request goes through
//! (`layers`), the lists, one owner's part or the group's merged (`lists`); the router, the limits
//! and the OpenAPI document here. One handler per endpoint: a scorer alone (`clv serve`) is a group
//! of one whose [`Routing`] answers every question here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use contract::{Extra, Feature, FeatureRow, Nine};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::{IntoParams, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::population::{Population, Scored};
use crate::response::{
    ApiError, AtRisk, AtRiskResponse, ClvResponse, FeaturesResponse, Freshness, Health, ModelRef,
    PredictResponse, Ranked, Ready, SummaryResponse, TopResponse,
};
use crate::route::{ListError, Routing};
use crate::service::Scorer;
use contract::segment::{Activity, Segment, ValueTier};

mod api;
mod csv;
mod layers;
mod lists;
mod pages;

use api::*;
use csv::*;
use layers::*;
use lists::*;
use pages::*;

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
    /// Where answers come from: here alone (`clv serve`), or the partition's owner in a group.
    routing: Arc<Routing>,
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
        customers_summary,
        at_risk,
        at_risk_csv,
        predict,
        health,
        ready
    ),
    components(schemas(
        SummaryResponse,
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

/// The router of the API over `scorer` alone (`clv serve`); `/metrics` renders `metrics` when given.
pub fn router(scorer: Arc<Scorer>, metrics: Option<PrometheusHandle>, limits: Limits) -> Router {
    router_with(scorer, metrics, limits, Arc::new(Routing::alone()))
}

/// The router of the API over `scorer`, answering where `routing` says: for an instance of a group
/// (`clv instance`) a customer's questions go to its partition's owner, lists merge every owner's
/// ([`crate::route`]), and `/cluster` describes the group.
pub fn router_with(
    scorer: Arc<Scorer>,
    metrics: Option<PrometheusHandle>,
    limits: Limits,
    routing: Arc<Routing>,
) -> Router {
    let state = AppState {
        scorer,
        metrics,
        limits,
        routing,
    };
    let api = Router::new()
        .route("/customers/top", get(top))
        .route("/customers/summary", get(customers_summary))
        .route("/customers/top.csv", get(top_csv))
        .route("/customers/at-risk", get(at_risk))
        .route("/customers/at-risk.csv", get(at_risk_csv))
        .route("/customers/{id}/clv", get(customer_clv))
        .route("/customers/{id}/features", get(customer_features))
        .route("/customers/{id}", get(page_customer))
        .route("/cluster", get(cluster_view))
        .route("/", get(page_overview))
        .route("/customers", get(page_customers))
        .route("/at-risk", get(page_at_risk))
        .route("/report.html", get(report_html))
        .route("/favicon.ico", get(favicon))
        // The one route that reads a body (a layer on the router would box every route again).
        .route(
            "/predict",
            post(predict).layer(DefaultBodyLimit::max(limits.body_bytes)),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        // Metrics, the declared body's limit, the cap on requests in flight (shared by every
        // route), the timeout and a panic's 500, in one layer: each layer a router adds is a boxed
        // clone per request. The connection cap stays the listener's (crate::shed): no layer sees
        // a connection before it has sent a request.
        .route_layer(Guard::new(limits));
    let docs = Router::from(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .layer(CatchPanicLayer::custom(panic_response));
    Router::new()
        .merge(api)
        .merge(docs)
        .fallback(unmatched)
        .method_not_allowed_fallback(method_not_allowed)
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
