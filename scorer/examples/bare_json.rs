//! The ceiling for the scorer's benchmark: a bare axum endpoint answering a small JSON body, on the
//! same multi-threaded runtime. `bare_json 127.0.0.1:8090`, then `GET /customers/{id}/clv`.
//!
//! `bare_json 127.0.0.1:8090 <bytes>` answers instead one fixed JSON body of that many bytes,
//! made once as the scorer makes its answers: with the scorer's size (~860 bytes) it tells what
//! the answer's size costs from what the scorer does per request (BENCHMARKS.md).

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;

async fn clv(Path(id): Path<String>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"customer_id": id, "clv_6m": 1234.56}))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let fixed = std::env::args()
        .nth(2)
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| {
            let body =
                serde_json::json!({"clv_6m": 1234.56, "pad": "x".repeat(n.saturating_sub(28))});
            Bytes::from(body.to_string())
        });
    let router = match fixed {
        Some(body) => Router::new().route(
            "/customers/{id}/clv",
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body).into_response() }
            }),
        ),
        None => Router::new().route("/customers/{id}/clv", get(clv)),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            println!("bare JSON endpoint on http://{addr}/customers/{{id}}/clv");
            axum::serve(listener, router).await
        })
}
