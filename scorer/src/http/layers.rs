//! What every request goes through: its metrics (by route and status), a body declared too large
//! refused before it is read, then tower's layers (load shedding over one concurrency limit shared
//! by every route, and the timeout) with their refusals as JSON, and the answer to a panic.

use super::*;

/// The metric handles of one route and status.
pub(super) struct RequestHandles {
    pub(super) requests: metrics::Counter,
    duration: metrics::Histogram,
    size: metrics::Histogram,
}

impl RequestHandles {
    pub(super) fn new(route: &str, status: u16) -> Self {
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
pub(super) const ROUTES: [&str; 10] = [
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
pub(super) const COMMON_STATUSES: [u16; 4] = [200, 400, 404, 503];

/// The handles of what `GET /customers/{id}/clv` serves.
pub(super) struct Served {
    pub(super) predictions: metrics::Counter,
    pub(super) clv: metrics::Histogram,
}

pub(super) static SERVED: std::sync::OnceLock<Served> = std::sync::OnceLock::new();

pub(super) static HANDLES: std::sync::OnceLock<Vec<(&'static str, u16, RequestHandles)>> =
    std::sync::OnceLock::new();

/// Counts every routed request by route and status, and records its latency and response size;
/// within it, [`refuse_large`] and then tower's layers (the router's `route_layer`s).
pub(super) async fn track(request: Request, next: Next, limits: Limits) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = match refuse_large(&request, limits) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
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

/// A 413 for a body declared larger than the limit, before it is read (axum's
/// [`DefaultBodyLimit`] stops a body that grows past it without saying so).
fn refuse_large(request: &Request, limits: Limits) -> Option<Response> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())?;
    if declared <= limits.body_bytes as u64 {
        return None;
    }
    let mut response = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {} bytes", limits.body_bytes),
    )
    .into_response();
    // The unread body makes the connection unusable for another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// The answer to a request tower's layers refused: shed (503 with `Retry-After`) or timed out
/// (408), as JSON errors.
pub(super) fn refused(error: &tower::BoxError, limits: Limits) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
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
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("no answer within {:?}", limits.timeout),
        )
        .into_response();
    }
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
}

pub(super) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
