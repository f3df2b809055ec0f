//! An axum server on a synack stack, asked by a hyper client on another
//! stack over an in-memory link: a greeting, JSON both ways, and the
//! client's address through `ConnectInfo`; then a graceful shutdown.
//!
//! ```text
//! cargo run --example axum
//! ```

use std::net::Ipv4Addr;

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use synack::Stack;
use synack::axum::PeerAddr;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::hyper::{ConnectionInfo, Connector};
use synack::net::TcpListener;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

#[derive(Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Serialize)]
struct Receipt {
    item: String,
    quantity: u32,
    total_cents: u64,
    ordered_from: String,
}

async fn order(ConnectInfo(peer): ConnectInfo<PeerAddr>, Json(o): Json<Order>) -> Json<Receipt> {
    Json(Receipt {
        total_cents: u64::from(o.quantity) * 250,
        item: o.item,
        quantity: o.quantity,
        ordered_from: peer.to_string(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::new(a, SERVER, 24);
    let client = Stack::new(b, CLIENT, 24);

    let app =
        Router::new()
            .route("/", get(|| async { "hello from axum on synack\n" }))
            .route(
                "/whoami",
                get(|ConnectInfo(peer): ConnectInfo<PeerAddr>| async move {
                    format!("you are {peer}\n")
                }),
            )
            .route("/order", post(order));
    let listener = TcpListener::bind_on(&server, (SERVER, 80)).await?;
    println!(
        "axum listening on {} (server stack)",
        listener.local_addr()?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<PeerAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .into_future(),
    );

    // A pooled hyper client dialing on the client stack.
    let http =
        Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(Connector::new(&client));
    let mut used = std::collections::BTreeSet::new();
    for path in ["/", "/whoami"] {
        let res = http.get(format!("http://{SERVER}{path}").parse()?).await?;
        let via = res.extensions().get::<ConnectionInfo>().copied();
        used.extend(via.map(|c| c.local_addr.port()));
        let body = res.into_body().collect().await?.to_bytes();
        print!("GET {path} -> {}", String::from_utf8_lossy(&body));
        if let Some(c) = via {
            println!("    (over {} -> {})", c.local_addr, c.remote_addr);
        }
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{SERVER}/order"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"item":"coffee","quantity":3}"#,
        )))?;
    let res = http.request(req).await?;
    used.extend(
        res.extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.local_addr.port()),
    );
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!("POST /order -> {status} {}", String::from_utf8_lossy(&body));

    let stats = client.stats();
    println!(
        "client stack: 3 requests served over {} kept-alive connection(s); {} dialed, {} established now",
        used.len(),
        stats.connections_established,
        stats.states.established
    );

    drop(http); // closes the pooled connection, so the shutdown need not wait for it
    let _ = stop.send(());
    serving.await??;
    println!("server shut down gracefully");
    Ok(())
}
