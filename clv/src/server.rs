//! One way to start a server process, shared by `clv serve`, `clv instance` and `clv demo`: the
//! metrics recorder, the runtime, the address taken at once, every limit as a flag, and a graceful
//! stop on Ctrl-C or SIGTERM (or when the process's own work ends) that is awaited, not polled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use metrics_exporter_prometheus::PrometheusHandle;
use scorer::http::Limits;

use crate::telemetry;

/// The address and the limits of a server: the same flags on every command that serves.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on (HTTP API, page and `/metrics`).
    #[arg(long, env = "CLV_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The largest request body, bytes (larger: 413).
    #[arg(long, default_value_t = Limits::default().body_bytes)]
    max_body_bytes: usize,
    /// Seconds before a request times out (408).
    #[arg(long, default_value_t = Limits::default().timeout.as_secs_f64())]
    timeout_seconds: f64,
    /// The largest `k` of the top and at-risk lists.
    #[arg(long, default_value_t = Limits::default().max_top)]
    max_top: usize,
    /// Requests handled at once; beyond it the answer is 503 with Retry-After (load shedding).
    #[arg(long, default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Connections open at once; beyond it a new one is answered 503 with Retry-After and closed.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
}

impl ServerArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            body_bytes: self.max_body_bytes,
            timeout: Duration::from_secs_f64(self.timeout_seconds.clamp(0.001, 86_400.0)),
            max_top: self.max_top.max(1),
            max_in_flight: self.max_in_flight.max(1),
            max_connections: self.max_connections.max(1),
        }
    }
}

/// What stops a process: Ctrl-C or SIGTERM, or its own work asking. Awaited by the server
/// ([`Stop::stopped`]) and read as a flag by the loops on threads ([`Stop::flag`]).
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    said: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Stop {
    /// Not stopped yet; nothing but [`Stop::stop`] stops it.
    pub fn new() -> Stop {
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            said: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Stopped by Ctrl-C or SIGTERM (the process's one signal handler), or by [`Stop::stop`].
    pub fn on_signal() -> anyhow::Result<Stop> {
        let stop = Stop::new();
        let signalled = stop.clone();
        ctrlc::set_handler(move || signalled.stop()).context("installing the signal handler")?;
        Ok(stop)
    }

    /// Stops.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.said.send_replace(true);
    }

    /// Whether it is stopped.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag a thread's loop reads (set by [`Stop::stop`]; set it through `stop`, not directly).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Resolves once stopped.
    pub async fn stopped(&self) {
        let mut said = self.said.subscribe();
        let _ = said.wait_for(|stopped| *stopped).await;
    }
}

/// A server process being started: the recorder installed, every metric registered, the runtime
/// built and the address bound (a port in use is said at once, and nothing else takes it while
/// the process prepares; connections wait in the backlog).
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    limits: Limits,
    metrics: PrometheusHandle,
}

impl Server {
    /// Starts a server process with `args`.
    pub fn start(args: &ServerArgs) -> anyhow::Result<Server> {
        let metrics = telemetry::install_recorder()?;
        scorer::http::register_metrics();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(&args.listen))
            .with_context(|| format!("binding {}", args.listen))?;
        Ok(Server {
            runtime,
            listener,
            limits: args.limits(),
            metrics,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The metrics `/metrics` renders.
    pub fn metrics(&self) -> PrometheusHandle {
        self.metrics.clone()
    }

    /// The limits of its API.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Serves `app` until `stop`; then the open connections finish their requests.
    pub fn serve(self, app: axum::Router, stop: &Stop) -> anyhow::Result<()> {
        let listener =
            scorer::shed::CappedListener::new(self.listener, self.limits.max_connections);
        let stop = stop.clone();
        self.runtime
            .block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.stopped().await })
                    .await
            })
            .context("serving")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_wakes_the_server_and_sets_the_flag() {
        let stop = Stop::new();
        let flag = stop.flag();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let waiter = {
            let stop = stop.clone();
            runtime.spawn(async move { stop.stopped().await })
        };
        assert!(!stop.is_stopped());
        stop.stop();
        runtime.block_on(waiter).unwrap();
        assert!(flag.load(Ordering::SeqCst));
        // Stopped before anyone waits: resolves at once.
        runtime.block_on(stop.stopped());
    }

    #[test]
    fn the_limits_are_the_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            server: ServerArgs,
        }
        let defaults = Cli::parse_from(["x"]).server.limits();
        let expected = Limits::default();
        assert_eq!(defaults.body_bytes, expected.body_bytes);
        assert_eq!(defaults.timeout, expected.timeout);
        assert_eq!(defaults.max_top, expected.max_top);
        assert_eq!(defaults.max_in_flight, expected.max_in_flight);
        assert_eq!(defaults.max_connections, expected.max_connections);
        let set = Cli::parse_from([
            "x",
            "--max-body-bytes",
            "10",
            "--timeout-seconds",
            "0.5",
            "--max-top",
            "7",
            "--max-in-flight",
            "3",
            "--max-connections",
            "4",
        ])
        .server
        .limits();
        assert_eq!(set.body_bytes, 10);
        assert_eq!(set.timeout, Duration::from_millis(500));
        assert_eq!(set.max_top, 7);
        assert_eq!(set.max_in_flight, 3);
        assert_eq!(set.max_connections, 4);
    }
}
