//! What every request goes through ([`Guard`]): its metrics (by route and status), a body declared
//! too large refused before it is read, load shedding over one cap on requests in flight shared by
//! every route, the timeout, and a panic caught, with their refusals as JSON.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

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

/// What every routed request goes through, as one tower layer (a hand-written one: each of
/// tower's layers, a `from_fn` middleware and their error handler cost a clone and a boxed future
/// per request, measured in BENCHMARKS.md): its metrics by route and status, a body declared too
/// large refused before it is read (413), load shedding over one cap on requests in flight shared
/// by every route (503 with `Retry-After`, never queued), the timeout (408), and a panic in the
/// handler caught (500; tower-http's `CatchPanic` as a layer of its own cost a boxed route per
/// request).
#[derive(Clone)]
pub(super) struct Guard {
    limits: Limits,
    in_flight: Arc<AtomicUsize>,
}

impl Guard {
    pub(super) fn new(limits: Limits) -> Self {
        Guard {
            limits,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<S> tower::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            limits: self.limits,
            in_flight: self.in_flight.clone(),
        }
    }
}

/// A route behind [`Guard`].
#[derive(Clone)]
pub(super) struct Guarded<S> {
    inner: S,
    limits: Limits,
    in_flight: Arc<AtomicUsize>,
}

/// A request counted in flight until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> tower::Service<Request> for Guarded<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let limits = self.limits;
        if let Some(refused) = refuse_large(&request, limits) {
            return Box::pin(std::future::ready(Ok(tracked(route, started, refused))));
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= limits.max_in_flight.max(1) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Box::pin(std::future::ready(Ok(tracked(
                route,
                started,
                shed(limits),
            ))));
        }
        let slot = Slot(self.in_flight.clone());
        // A panic in the handler is a 500 and frees its place: caught here rather than by a layer
        // of its own, which would cost another boxed route per request.
        let answer = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(answer) => answer,
            Err(panic) => {
                return Box::pin(std::future::ready(Ok(tracked(
                    route,
                    started,
                    panic_response(panic),
                ))));
            }
        };
        Box::pin(async move {
            let mut answer = std::pin::pin!(answer);
            let mut poll = |cx: &mut Context<'_>| -> Poll<Response> {
                match catch_unwind(AssertUnwindSafe(|| answer.as_mut().poll(cx))) {
                    Ok(Poll::Ready(Ok(response))) => Poll::Ready(response),
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Ok(Poll::Pending) => Poll::Pending,
                    // Not polled again: the answer is given.
                    Err(panic) => Poll::Ready(panic_response(panic)),
                }
            };
            // Most answers are ready at once (a lookup): the timer is armed only for one that is
            // not, with the deadline counted from the request's arrival.
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(match poll(cx) {
                    Poll::Ready(response) => Some(response),
                    Poll::Pending => None,
                })
            })
            .await;
            let response = match first {
                Some(response) => response,
                None => {
                    let rest = std::future::poll_fn(&mut poll);
                    match tokio::time::timeout_at((started + limits.timeout).into(), rest).await {
                        Ok(response) => response,
                        Err(_) => timed_out(limits),
                    }
                }
            };
            drop(slot);
            Ok(tracked(route, started, response))
        })
    }
}

/// Counts `response` by route and status, and records its latency and size.
fn tracked(route: Option<MatchedPath>, started: Instant, response: Response) -> Response {
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

/// The answer to a request over the cap on requests in flight: 503 with `Retry-After`.
fn shed(limits: Limits) -> Response {
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
    response
}

/// The answer to a request not answered within the limit: 408.
fn timed_out(limits: Limits) -> Response {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("no answer within {:?}", limits.timeout),
    )
    .into_response()
}

/// The answer to a request whose handler panicked: 500, without the panic's message.
pub(super) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;
    use tower::Service;

    /// A router with a route answered at once, one answered when `release` fires, and one that
    /// never answers, behind [`Guard`] with `limits`.
    fn guarded(limits: Limits, release: oneshot::Receiver<()>) -> Router {
        let release = Arc::new(std::sync::Mutex::new(Some(release)));
        Router::new()
            .route("/now", get(|| async { "now" }))
            .route(
                "/held",
                get(move || {
                    let release = release.lock().unwrap().take();
                    async move {
                        if let Some(release) = release {
                            let _ = release.await;
                        }
                        "released"
                    }
                }),
            )
            .route("/never", get(std::future::pending::<&'static str>))
            .route(
                "/panics",
                get(|| async {
                    if true {
                        panic!("a handler's bug");
                    }
                    "unreachable"
                }),
            )
            .route_layer(Guard::new(limits))
    }

    async fn call(router: &mut Router, request: Request) -> Response {
        match router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn get_request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    /// A guarded router that lets one request in at a time (with `limits` otherwise), and what
    /// releases its `/held` route.
    fn one_at_a_time(limits: Limits) -> (oneshot::Sender<()>, Router) {
        let (release, held) = oneshot::channel();
        let limits = Limits {
            max_in_flight: 1,
            ..limits
        };
        (release, guarded(limits, held))
    }

    /// The status of `GET path`.
    async fn status(router: &mut Router, path: &str) -> StatusCode {
        call(router, get_request(path)).await.status()
    }

    #[tokio::test]
    async fn a_request_over_the_cap_in_flight_is_refused_at_once_and_the_cap_frees() {
        let (release, mut router) = one_at_a_time(Limits::default());
        let mut first = router.clone();
        let holding = tokio::spawn(async move { call(&mut first, get_request("/held")).await });
        // Wait until the held request is inside the router.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = call(&mut router, get_request("/now")).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        release.send(()).unwrap();
        assert_eq!(holding.await.unwrap().status(), StatusCode::OK);
        assert_eq!(status(&mut router, "/now").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_dropped_unanswered_frees_its_place() {
        let (_release, mut router) = one_at_a_time(Limits::default());
        let mut first = router.clone();
        let abandoned = tokio::spawn(async move { call(&mut first, get_request("/never")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            status(&mut router, "/now").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        abandoned.abort();
        let _ = abandoned.await;
        assert_eq!(status(&mut router, "/now").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_answer_later_than_the_limit_is_a_408_and_frees_its_place() {
        let (_release, mut router) = one_at_a_time(Limits {
            timeout: Duration::from_millis(50),
            ..Limits::default()
        });
        let started = Instant::now();
        let late = call(&mut router, get_request("/never")).await;
        assert_eq!(late.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(status(&mut router, "/now").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_panic_in_a_handler_is_a_500_and_frees_its_place() {
        let (_release, mut router) = one_at_a_time(Limits::default());
        for _ in 0..2 {
            let answer = call(&mut router, get_request("/panics")).await;
            assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(answer.into_body(), 1024)
                .await
                .unwrap();
            assert!(!String::from_utf8_lossy(&body).contains("bug"), "{body:?}");
        }
        assert_eq!(status(&mut router, "/now").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_body_declared_too_large_is_refused_before_it_is_read() {
        let limits = Limits {
            body_bytes: 10,
            ..Limits::default()
        };
        let (_release, held) = oneshot::channel();
        let mut router = guarded(limits, held);
        let request = Request::builder()
            .uri("/now")
            .header(header::CONTENT_LENGTH, "11")
            .body(Body::from("01234567890"))
            .unwrap();
        let refused = call(&mut router, request).await;
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
        let request = Request::builder()
            .uri("/now")
            .header(header::CONTENT_LENGTH, "10")
            .body(Body::from("0123456789"))
            .unwrap();
        assert_eq!(call(&mut router, request).await.status(), StatusCode::OK);
    }
}
