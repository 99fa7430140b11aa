//! Load shedding at the connection cap: a connection beyond it gets a 503 with `Retry-After` and a
//! JSON error, without the server parsing anything; once a connection closes, a new one is served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use scorer::http::{Limits, router};
use scorer::service::Scorer;
use scorer::shed::CappedListener;

/// One keep-alive request on `stream`; the response head and body as text.
fn get(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length || n == 0 {
                return text.into_owned();
            }
        }
        if n == 0 {
            return text.into_owned();
        }
    }
}

#[test]
fn a_connection_over_the_cap_gets_503_with_retry_after() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let app = router(Arc::new(Scorer::default()), None, limits);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = CappedListener::new(listener, limits.max_connections);
    runtime.spawn(async move { axum::serve(listener, app).await });

    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut first = connect();
    let mut second = connect();
    assert!(get(&mut first, "/health").starts_with("HTTP/1.1 200"));
    assert!(get(&mut second, "/health").starts_with("HTTP/1.1 200"));
    // Both stay open (keep-alive): a third is over the cap.
    let mut third = connect();
    let shed = get(&mut third, "/health");
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(
        shed.to_ascii_lowercase().contains("retry-after: 1"),
        "{shed}"
    );
    let body: serde_json::Value =
        serde_json::from_str(shed.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["status"], 503);
    assert!(
        body["error"].as_str().unwrap().contains("overloaded"),
        "{body}"
    );
    // The open ones are still served; once one closes, a new connection is too.
    assert!(get(&mut first, "/health").starts_with("HTTP/1.1 200"));
    drop(second);
    let mut fourth = None;
    for _ in 0..50 {
        let mut s = connect();
        if get(&mut s, "/health").starts_with("HTTP/1.1 200") {
            fourth = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        fourth.is_some(),
        "a slot freed by a closed connection is reused"
    );
}
