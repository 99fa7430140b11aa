//! The ceiling for the scorer's benchmark: a bare axum endpoint answering a small fixed JSON body,
//! on the same multi-threaded runtime. `bare_json 127.0.0.1:8090`, then `GET /customers/{id}/clv`.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;

async fn clv(Path(id): Path<String>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"customer_id": id, "clv_6m": 1234.56}))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            println!("bare JSON endpoint on http://{addr}/customers/{{id}}/clv");
            axum::serve(
                listener,
                Router::new().route("/customers/{id}/clv", get(clv)),
            )
            .await
        })
}
