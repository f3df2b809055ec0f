//! hyper-util's pooled `Client` dialing through `synack::hyper::Connector`:
//! ten requests one after another reuse one kept-alive connection, four at
//! once open more; the stacks' counters show it.
//!
//! ```text
//! cargo run --example hyper_client
//! ```

use std::convert::Infallible;
use std::net::Ipv4Addr;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::hyper::{ConnectionInfo, Connector};
use synack::net::TcpListener;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello, {}",
        req.uri().path()
    )))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::builder(a, SERVER, 24).build();
    // The client knows the server by name, through its stack's host table.
    let client = Stack::builder(b, CLIENT, 24).host("api", SERVER).build();

    let listener = TcpListener::bind_on(&server, (SERVER, 8080)).await?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello)),
            );
        }
    });

    let http =
        Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(Connector::new(&client));
    let opened = || client.stats().connections_established;

    let mut used = std::collections::BTreeSet::new();
    for i in 0..10 {
        let res = http.get(format!("http://api:8080/{i}").parse()?).await?;
        let info = res.extensions().get::<ConnectionInfo>().copied();
        used.extend(info.map(|c| c.local_addr.port()));
        let body = res.into_body().collect().await?.to_bytes();
        if i == 0 || i == 9 {
            println!(
                "request {i}: {:?} via {:?}",
                String::from_utf8_lossy(&body),
                info.map(|c| (c.local_addr, c.remote_addr))
            );
        }
    }
    println!(
        "10 requests in sequence: served over {} connection(s) (kept alive in the pool); {} dialed",
        used.len(),
        opened()
    );
    println!(
        "  (hyper's pool dials a spare when a request starts before the last response's \
         connection is back in the pool)"
    );

    let before = opened();
    let requests = (0..4).map(|i| {
        let http = http.clone();
        async move {
            let res = http
                .get(format!("http://api:8080/parallel/{i}").parse()?)
                .await?;
            res.into_body().collect().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
    });
    for r in futures::future::join_all(requests).await {
        r?;
    }
    println!(
        "4 requests at once: {} more connection(s) opened; {} established on the client now",
        opened() - before,
        client.stats().states.established
    );
    Ok(())
}
