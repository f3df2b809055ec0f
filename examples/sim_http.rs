//! A hyper HTTP/1.1 server and client in the `synack::sim` harness, over a
//! path with a 50 ms one-way delay and about 1 % loss each way; prints each
//! request's latency in simulated time. Each host runs on its own runtime,
//! so the connection tasks are plain `tokio::spawn`s.
//!
//! ```text
//! cargo run --example sim_http [seed]
//! ```

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use synack::net::{TcpListener, TcpStream};
use synack::sim::{self, Builder, LinkConfig};

/// Answers `/size/N` with N bytes, anything else with a greeting.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.uri().path().strip_prefix("/size/") {
        Some(n) => vec![b'x'; n.parse().unwrap_or(0)],
        None => format!("hello from {}", req.uri().path()).into_bytes(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn server() -> sim::Result {
    let listener = TcpListener::bind("0.0.0.0:80").await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
        });
    }
}

/// Sends GETs for `paths` over one keep-alive connection to `server:80`;
/// returns each status, body and latency.
async fn get_all(paths: &[String]) -> sim::Result<Vec<(u16, Bytes, Duration)>> {
    let stream = TcpStream::connect("server:80").await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut out = Vec::new();
    for path in paths {
        let start = sim::elapsed();
        let req = Request::get(path.as_str())
            .header("host", "server")
            .body(Empty::<Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        out.push((status, body, sim::elapsed() - start));
    }
    Ok(out)
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The path asked for.
    pub path: String,
    /// The response status.
    pub status: u16,
    /// The response body.
    pub body: Bytes,
    /// From sending the request to having the whole body, in simulated time.
    pub latency: Duration,
}

/// What the client saw: its requests, and packets the links lost.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every request, in order.
    pub fetched: Vec<Fetched>,
    /// Packets lost on the server's and the client's links.
    pub lost_packets: u64,
}

/// The simulation: one server, one client asking for small and large responses.
pub fn simulation(seed: u64) -> (sim::Sim, Rc<RefCell<Outcome>>) {
    // Each way crosses two links (the sender's uplink, the receiver's downlink):
    // 2 × 25 ms = 50 ms one way, and 1 - 0.995² ≈ 1 % loss.
    let link = LinkConfig::new()
        .delay(Duration::from_millis(25))
        .rate_bps(20_000_000)
        .queue_packets(100)
        .loss(0.005);
    let mut sim = Builder::new().seed(seed).link(link).build();
    sim.host("server", server);
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let out = outcome.clone();
    sim.client("client", async move {
        let paths: Vec<String> = (0..10)
            .map(|i| format!("/hello/{i}"))
            .chain([1_000, 10_000, 100_000, 1_000_000].map(|n| format!("/size/{n}")))
            .collect();
        let got = get_all(&paths).await?;
        let mut out = out.borrow_mut();
        for (path, (status, body, latency)) in paths.into_iter().zip(got) {
            out.fetched.push(Fetched {
                path,
                status,
                body,
                latency,
            });
        }
        for host in ["server", "client"] {
            let (up, down) = sim::links(host)?;
            out.lost_packets += up.stats().dropped_loss + down.stats().dropped_loss;
        }
        Ok(())
    });
    (sim, outcome)
}

#[allow(dead_code)] // tests/sim_http.rs includes this file without calling `main`.
fn main() -> sim::Result {
    let seed = std::env::args().nth(1).map_or(Ok(1), |s| s.parse())?;
    let (mut sim, outcome) = simulation(seed);
    sim.run()?;
    let outcome = outcome.borrow();
    for f in &outcome.fetched {
        println!(
            "GET {:<16} {} {:>8} bytes in {:>7.1} ms",
            f.path,
            f.status,
            f.body.len(),
            f.latency.as_secs_f64() * 1e3
        );
    }
    println!("packets lost on the links: {}", outcome.lost_packets);
    Ok(())
}
