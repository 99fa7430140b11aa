//! Every metric the scorer exports, named once here (all under `clv_`: `clv_scorer_*` for the
//! scorer's own, `clv_http_*` for its HTTP requests) and described once ([`register`], which also
//! creates the series a dashboard expects at 0 before the first request). A call site names a
//! metric by its constant, never by a string. Renaming one is a breaking change for dashboards and
//! alerts (README, "Metrics").

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};

/// Answers given, by endpoint (`clv`, `predict`, `top`, ...).
pub const PREDICTIONS: &str = "clv_scorer_predictions_total";
/// The predicted CLV of each customer answered, £ (a histogram).
pub const SERVED_CLV: &str = "clv_scorer_served_clv_pounds";
/// Requests and connections answered 503 because a cap was reached, by reason.
pub const SHED: &str = "clv_scorer_shed_requests_total";
/// Customers rescored, by kind of refresh (`full`, `changed`).
pub const RESCORED: &str = "clv_scorer_rescored_customers_total";
/// 1 for the model version served, labelled with its name and version.
pub const MODEL_INFO: &str = "clv_scorer_model_info";
/// Requests forwarded to the instance that owns the customer, by outcome.
pub const FORWARDED: &str = "clv_scorer_forwarded_requests_total";
/// Questions answered 503 because no instance serves the customer's partition.
pub const ROUTING_UNAVAILABLE: &str = "clv_scorer_routing_unavailable_total";
/// PSI of each feature against the production version's training population.
pub const FEATURE_DRIFT: &str = "clv_scorer_feature_drift_psi";
/// PSI of the predictions against the production version's.
pub const PREDICTION_DRIFT: &str = "clv_scorer_prediction_drift_psi";
/// Refreshes that failed.
pub const REFRESH_ERRORS: &str = "clv_scorer_refresh_errors_total";
/// How long a refresh took, seconds.
pub const REFRESH_DURATION: &str = "clv_scorer_refresh_duration_seconds";
/// 1 when the scorer answers, 0 when not (yet).
pub const READY: &str = "clv_scorer_ready";
/// When the features were last refreshed, Unix seconds.
pub const FEATURES_REFRESHED: &str = "clv_scorer_features_refreshed_timestamp_seconds";
/// The event-time watermark of the features, Unix seconds.
pub const FEATURE_WATERMARK: &str = "clv_scorer_feature_watermark_seconds";
/// The `as_of` the population is scored at, Unix seconds.
pub const AS_OF: &str = "clv_scorer_as_of_timestamp_seconds";
/// Customers scored.
pub const CUSTOMERS: &str = "clv_scorer_customers";
/// HTTP requests, by route and status.
pub const HTTP_REQUESTS: &str = "clv_http_requests_total";
/// HTTP request duration, seconds, by route and status.
pub const HTTP_DURATION: &str = "clv_http_request_duration_seconds";
/// HTTP response size, bytes, by route.
pub const HTTP_RESPONSE_SIZE: &str = "clv_http_response_size_bytes";

/// The reasons of [`SHED`].
pub const SHED_REASONS: [&str; 2] = ["connections", "in_flight"];

/// Describes every metric and creates the series dashboards and alerts read at 0, so that they
/// exist before the first request; with the HTTP layer's handles ([`crate::http::register_metrics`]
/// calls it). Call once, after the recorder is installed.
pub fn register() {
    describe_counter!(PREDICTIONS, "Answers given, by endpoint");
    describe_histogram!(SERVED_CLV, "The predicted CLV of each customer answered, £");
    describe_counter!(
        SHED,
        "Requests and connections answered 503 with Retry-After because a cap was reached, by reason"
    );
    describe_counter!(RESCORED, "Customers rescored, by kind of refresh");
    describe_gauge!(MODEL_INFO, "1 for the model version served");
    describe_counter!(
        FORWARDED,
        "Requests forwarded to the instance that owns the customer's partition, by outcome (answered, unreachable; redirected: a 307 to the owner asked for with x-clv-redirect)"
    );
    describe_counter!(
        ROUTING_UNAVAILABLE,
        "Questions answered 503 because no instance serves the customer's partition"
    );
    describe_gauge!(
        FEATURE_DRIFT,
        "PSI of each feature of the scored customers against the production version's training population (README, \"Drift\")"
    );
    describe_gauge!(
        PREDICTION_DRIFT,
        "PSI of the predicted CLV against the production version's predictions at its cutoff"
    );
    describe_counter!(REFRESH_ERRORS, "Refreshes that failed");
    describe_histogram!(REFRESH_DURATION, "How long a refresh took, seconds");
    describe_gauge!(READY, "1 when the scorer answers, 0 when not (yet)");
    describe_gauge!(
        FEATURES_REFRESHED,
        "When the features were last refreshed, Unix seconds"
    );
    describe_gauge!(
        FEATURE_WATERMARK,
        "The event-time watermark of the features, Unix seconds"
    );
    describe_gauge!(AS_OF, "The as_of the population is scored at, Unix seconds");
    describe_gauge!(CUSTOMERS, "Customers scored");
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by route and status");
    describe_histogram!(HTTP_DURATION, "HTTP request duration, seconds");
    describe_histogram!(HTTP_RESPONSE_SIZE, "HTTP response size, bytes");

    gauge!(READY).set(0.0);
    counter!(REFRESH_ERRORS).absolute(0);
    for refresh in ["full", "changed"] {
        counter!(RESCORED, "refresh" => refresh).absolute(0);
    }
    for endpoint in ["clv", "predict", "top"] {
        counter!(PREDICTIONS, "endpoint" => endpoint).absolute(0);
    }
    for reason in SHED_REASONS {
        counter!(SHED, "reason" => reason).absolute(0);
    }
}
