//! Load shedding: explicit caps on what the scorer holds at once, so that overload is answered with
//! `503 Service Unavailable` and `Retry-After` instead of unbounded queues, memory and latency.
//!
//! Two caps, because of where requests wait. An answer here is a lookup of microseconds that never
//! yields, so under HTTP/1.1 a request waits *before* it is parsed (in its connection's socket and
//! the runtime's queue), one per connection: the number of open connections is what bounds the
//! requests in flight and their latency. [`CappedListener`] accepts at most `max_connections` at once
//! and answers each one beyond with a canned 503 (written without parsing anything) and closes it.
//! Requests that do wait inside the server (a slow client reading a large CSV, say) are capped in
//! the router by one layer over a count of requests in flight ([`crate::http`]), also with a 503.
//! No tower layer can cap connections: a layer sees a request, after hyper has accepted the
//! connection and parsed it, so this cap is the listener's. Both are counted in
//! `clv_scorer_shed_requests_total{reason="connections"|"in_flight"}`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Seconds a shed client is asked to wait before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The canned answer to a connection over the cap.
fn overloaded_response() -> Vec<u8> {
    let body = r#"{"status":503,"error":"overloaded: too many connections, retry later"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECONDS}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A TCP listener that holds at most `max_connections` open connections.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    max_connections: usize,
    overloaded: Arc<[u8]>,
}

impl CappedListener {
    /// Caps `inner` at `max_connections` (at least 1).
    pub fn new(inner: TcpListener, max_connections: usize) -> Self {
        CappedListener {
            inner,
            open: Arc::new(AtomicUsize::new(0)),
            max_connections: max_connections.max(1),
            overloaded: overloaded_response().into(),
        }
    }
}

/// A connection counted by its [`CappedListener`] until dropped.
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, as axum does.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_connections {
                self.open.fetch_sub(1, Ordering::AcqRel);
                metrics::counter!(crate::telemetry::SHED, "reason" => "connections").increment(1);
                // Answered on its own task, without parsing: the 503, then the client's request
                // is read and discarded briefly, so that closing does not reset the connection
                // before the client has read the answer.
                let overloaded = self.overloaded.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut stream = stream;
                    if stream.write_all(&overloaded).await.is_ok() {
                        let _ = stream.shutdown().await;
                        let mut sink = [0u8; 4096];
                        let drain = async {
                            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                        };
                        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), drain)
                            .await;
                    }
                });
                continue;
            }
            let _ = stream.set_nodelay(true);
            return (
                Counted {
                    stream,
                    open: self.open.clone(),
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
