//! axum, hyper-util and tonic on synack, through the `axum`, `hyper` and
//! `tonic` features: each over a `MemoryLink` between two stacks, and each
//! against the Linux kernel over a TUN interface in a throwaway namespace
//! (the kernel as client of a synack server, and for hyper the other way).
//! The process-wide default stack found from tasks nobody entered a stack in.

mod common;

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use synack::Stack;
use synack::axum::PeerAddr;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::hyper::{ConnectionInfo, Connector};
use synack::net::{TcpListener, TcpStream};
use synack::tonic::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn two_stacks() -> (Stack, Stack) {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    (
        Stack::new(a, SERVER, 24),
        Stack::builder(b, CLIENT, 24).host("server", SERVER).build(),
    )
}

fn app() -> Router {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Sum {
        a: i64,
        b: i64,
    }
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(p): ConnectInfo<PeerAddr>| async move { p.to_string() }),
        )
        .route(
            "/sum",
            post(|Json(s): Json<Sum>| async move { Json(serde_json::json!({ "sum": s.a + s.b })) }),
        )
}

async fn body_string(res: Response<Incoming>) -> Result<String, BoxError> {
    Ok(String::from_utf8(
        res.into_body().collect().await?.to_bytes().to_vec(),
    )?)
}

#[tokio::test]
async fn axum_serves_a_synack_listener_with_peer_addresses_and_graceful_shutdown()
-> Result<(), BoxError> {
    let (server, client) = two_stacks();
    let listener = TcpListener::bind_on(&server, (SERVER, 80)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        axum::serve(
            listener,
            app().into_make_service_with_connect_info::<PeerAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .into_future(),
    );
    let http =
        Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(Connector::new(&client));

    let res = http.get("http://server/".parse()?).await?;
    assert_eq!(res.status(), 200);
    let info = *res
        .extensions()
        .get::<ConnectionInfo>()
        .expect("connection info");
    assert_eq!(info.remote_addr, SocketAddr::from((SERVER, 80)));
    assert_eq!(info.local_addr.ip(), std::net::IpAddr::V4(CLIENT));
    assert_eq!(body_string(res).await?, "hello");

    // The server saw the client's address, port included.
    let res = http.get("http://server/peer".parse()?).await?;
    assert_eq!(body_string(res).await?, info.local_addr.to_string());

    let req = Request::post("http://server/sum")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"a":40,"b":2}"#)))?;
    let res = http.request(req).await?;
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&body_string(res).await?)?;
    assert_eq!(v["sum"], 42);

    // Keep-alive: three requests, fewer connections. (hyper's pool may dial
    // a second one when a request starts before the last response's
    // connection is back in the pool; it never needs a third.)
    assert!(client.stats().connections_established <= 2);

    // Graceful shutdown lets a request in progress finish, then stops.
    let slow = tokio::spawn({
        let http = http.clone();
        async move {
            let res = http.get("http://server/slow".parse()?).await?;
            body_string(res).await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !serving.is_finished(),
        "shut down under a request in progress"
    );
    assert_eq!(slow.await??, "slow");
    tokio::time::timeout(Duration::from_secs(5), serving).await???;
    // The listener is gone with the server: a new connect is refused.
    let e = TcpStream::connect_on(&client, (SERVER, 80))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

#[tokio::test]
async fn axum_connect_info_socket_addr_through_tap_io() -> Result<(), BoxError> {
    let (server, client) = two_stacks();
    let listener = TcpListener::bind_on(&server, (SERVER, 80)).await?;
    let app = Router::new().route(
        "/",
        get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move { p.to_string() }),
    );
    let listener = listener.tap_io(|s: &mut TcpStream| {
        let _ = s.set_nodelay(true);
    });
    tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    let http =
        Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(Connector::new(&client));
    let res = http.get("http://server/".parse()?).await?;
    let local = res.extensions().get::<ConnectionInfo>().unwrap().local_addr;
    assert_eq!(body_string(res).await?, local.to_string());
    Ok(())
}

/// Requests for `/t…` wait at this barrier until all four are in: four
/// requests in flight at once, which a pool can only serve over four
/// connections (HTTP/1 carries one request at a time).
static FOUR_AT_ONCE: std::sync::LazyLock<tokio::sync::Barrier> =
    std::sync::LazyLock::new(|| tokio::sync::Barrier::new(4));

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path().starts_with("/t") {
        FOUR_AT_ONCE.wait().await;
    }
    Ok(Response::new(Full::new(Bytes::from(
        req.uri().path().to_owned(),
    ))))
}

/// An HTTP/1 server on `listener`, one task per connection.
fn serve_http1(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), hyper::service::service_fn(hello)),
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_pooled_client_reuses_connections_and_dials_from_its_own_tasks()
-> Result<(), BoxError> {
    let (server, client) = two_stacks();
    serve_http1(TcpListener::bind_on(&server, (SERVER, 8080)).await?);
    // No stack is entered anywhere: the connector carries its own.
    let http =
        Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(Connector::new(&client));
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..5 {
        let res = http.get(format!("http://server:8080/{i}").parse()?).await?;
        ports.insert(
            res.extensions()
                .get::<ConnectionInfo>()
                .unwrap()
                .local_addr
                .port(),
        );
        assert_eq!(body_string(res).await?, format!("/{i}"));
    }
    // Keep-alive: five requests in turn over at most two connections (hyper's
    // pool dials a second one when a request starts before the previous
    // response's connection is back in the pool, a race on this runtime).
    // (The one dialed may win no request: it waits in the pool.)
    let opened = client.stats().connections_established;
    assert!(opened <= 2, "{opened} connections for 5 requests");
    assert!(ports.len() as u64 <= opened);
    // From tasks of its own, four at once (the server answers none until all
    // four are in): a connection each, all answered.
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let http = http.clone();
            tokio::spawn(async move {
                let res = http
                    .get(format!("http://server:8080/t{i}").parse()?)
                    .await?;
                body_string(res).await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await??, format!("/t{i}"));
    }
    assert!(client.stats().connections_established >= 4);
    Ok(())
}

#[tokio::test]
async fn the_connector_reports_errors_with_the_kernels_kinds() {
    let (_server, client) = two_stacks();
    let mut c = Connector::new(&client);
    let refused = c.connect(&"http://server:81/".parse().unwrap()).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
    let unknown = c.connect(&"http://nowhere/".parse().unwrap()).await;
    assert_eq!(unknown.unwrap_err().kind(), io::ErrorKind::NotFound);
    // A host that never answers: the connect timeout, not the SYN retries.
    c.set_connect_timeout(Some(Duration::from_millis(200)));
    let silent = c
        .connect(&"http://192.0.2.77/".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(silent.kind(), io::ErrorKind::TimedOut);
}

/// tonic's health service on `listener`, with a counter of the calls that
/// reached it from `expect_peer`'s address.
async fn health_server(
    listener: TcpListener,
    expect_peer: Ipv4Addr,
) -> (HealthReporter, Arc<AtomicUsize>) {
    let reporter = HealthReporter::new();
    reporter
        .set_service_status("shop", ServingStatus::Serving)
        .await;
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let svc = HealthServer::with_interceptor(
        HealthService::from_health_reporter(reporter.clone()),
        move |req: tonic::Request<()>| {
            if req.remote_addr().map(|a| a.ip()) == Some(expect_peer.into())
                && req.local_addr().is_some()
            {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(req)
        },
    );
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpIncoming::new(listener).with_nodelay(Some(true))),
    );
    (reporter, seen)
}

#[tokio::test]
async fn tonic_server_and_lazy_client_over_two_stacks() -> Result<(), BoxError> {
    let (server, client) = two_stacks();
    let listener = TcpListener::bind_on(&server, (SERVER, 50051)).await?;
    let (reporter, seen) = health_server(listener, CLIENT).await;
    // A lazy channel dials from a task tonic spawns: the connector's stack goes along.
    let channel = Endpoint::from_static("http://server:50051")
        .connect_with_connector_lazy(Connector::new(&client));
    let mut health = HealthClient::new(channel);
    let check = |s: &str| HealthCheckRequest { service: s.into() };
    assert_eq!(health.check(check("shop")).await?.into_inner().status, 1);
    reporter
        .set_service_status("shop", ServingStatus::NotServing)
        .await;
    assert_eq!(health.check(check("shop")).await?.into_inner().status, 2);
    let missing = health.check(check("missing")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(seen.load(Ordering::Relaxed), 3, "remote_addr on every call");
    assert_eq!(
        client.stats().connections_established,
        1,
        "one HTTP/2 connection"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_stack_is_found_by_tasks_nobody_entered_it_in() -> io::Result<()> {
    let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
    let stack = Stack::new(a, SERVER, 24);
    assert!(Stack::set_default(&stack).is_none());
    let listener = tokio::spawn(TcpListener::bind("127.0.0.1:0")).await??;
    let addr = listener.local_addr()?;
    let connect = tokio::spawn(TcpStream::connect(addr));
    let (_s, peer) = listener.accept().await?;
    assert_eq!(connect.await??.local_addr()?, peer);
    // An entered stack wins over the default.
    let (c, _d) = MemoryLink::pair(MemoryLinkConfig::default());
    let other = Stack::new(c, CLIENT, 24);
    {
        let _g = other.enter();
        let l = TcpListener::bind("0.0.0.0:0").await?;
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        drop(l);
    }
    assert!(Stack::clear_default().is_some());
    let none = tokio::spawn(TcpListener::bind("127.0.0.1:0")).await?;
    assert_eq!(none.unwrap_err().kind(), io::ErrorKind::NotFound);
    Ok(())
}

/// In `synack::sim`, an axum front end whose handler dials a backend by
/// name: the handler runs in the task axum spawned for the connection (with
/// `tokio::spawn`), and still uses its host's stack, because each host runs
/// on its own runtime.
#[test]
fn axum_in_sim_a_handler_dials_a_backend_by_name() {
    use synack::sim::{Builder, LinkConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut sim = Builder::new()
        .link(LinkConfig::new().delay(Duration::from_millis(5)))
        .build();
    sim.host("backend", || async {
        let listener = TcpListener::bind("0.0.0.0:7").await?;
        loop {
            let (mut s, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut buf = [0; 4];
                s.read_exact(&mut buf).await?;
                s.write_all(b"pong").await
            });
        }
    });
    sim.host("front", || async {
        let app = Router::new().route(
            "/",
            get(|| async {
                let mut s = TcpStream::connect("backend:7")
                    .await
                    .map_err(|e| e.to_string())?;
                s.write_all(b"ping").await.map_err(|e| e.to_string())?;
                let mut buf = [0; 4];
                s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
            }),
        );
        axum::serve(TcpListener::bind("0.0.0.0:80").await?, app).await?;
        Ok(())
    });
    sim.client("user", async {
        let mut s = TcpStream::connect("front:80").await?;
        s.write_all(b"GET / HTTP/1.1\r\nhost: front\r\nconnection: close\r\n\r\n")
            .await?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).await?;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("pong"), "{resp}");
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(sim.log().iter().filter(|l| l.contains("failed")).count(), 0);
}

#[cfg(all(target_os = "linux", feature = "tun"))]
mod linux {
    //! The kernel as a client of synack's axum and tonic servers, and as the
    //! server of synack's hyper client, over a TUN interface in a namespace
    //! (the kernel 192.0.2.1/24, synack 192.0.2.2/24).

    use super::*;
    use crate::common::netns::{self, NetNs};
    use synack::device::Tun;

    const KERNEL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const SYNACK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn with_tun<F, Fut>(tag: char, body: F)
    where
        F: FnOnce(NetNs, Stack) -> Fut,
        Fut: std::future::Future<Output = Result<(), BoxError>>,
    {
        let Some(ns) = netns::start("fw") else {
            return;
        };
        let rt = netns::runtime();
        rt.block_on(async {
            let name = netns::tun_name("fw", tag);
            let handle = tokio::runtime::Handle::current();
            let tun = ns
                .in_ns(|| {
                    let _guard = handle.enter();
                    Tun::create(&name, 1500)
                })
                .expect("creating the TUN inside the namespace");
            ns.addr_add(&name, "192.0.2.1/24").expect("kernel address");
            ns.link_up(&name).expect("link up");
            let stack = Stack::new(tun, SYNACK, 24);
            tokio::time::timeout(Duration::from_secs(60), body(ns, stack))
                .await
                .expect("the test timed out")
                .expect("the test failed");
        });
    }

    /// A kernel TCP connection to synack, made inside the namespace.
    fn kernel_connect(ns: &NetNs, port: u16) -> tokio::net::TcpStream {
        let s = ns
            .in_ns(|| std::net::TcpStream::connect((SYNACK, port)))
            .expect("the kernel's connect");
        s.set_nonblocking(true).unwrap();
        tokio::net::TcpStream::from_std(s).unwrap()
    }

    #[test]
    fn the_kernel_asks_synacks_axum_server() {
        with_tun('a', |ns, stack| async move {
            let listener = TcpListener::bind_on(&stack, (SYNACK, 80)).await?;
            tokio::spawn(
                axum::serve(
                    listener,
                    app().into_make_service_with_connect_info::<PeerAddr>(),
                )
                .into_future(),
            );
            let io = TokioIo::new(kernel_connect(&ns, 80));
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            let res = send
                .send_request(
                    Request::get("/peer")
                        .header("host", "x")
                        .body(Empty::<Bytes>::new())?,
                )
                .await?;
            let peer: SocketAddr = body_string(res).await?.parse()?;
            assert_eq!(peer.ip(), std::net::IpAddr::V4(KERNEL));
            send.ready().await?; // the first exchange is over
            let res = send
                .send_request(
                    Request::get("/")
                        .header("host", "x")
                        .body(Empty::<Bytes>::new())?,
                )
                .await?;
            assert_eq!(body_string(res).await?, "hello");
            Ok(())
        });
    }

    #[test]
    fn the_kernel_asks_synacks_tonic_server() {
        with_tun('t', |ns, stack| async move {
            let listener = TcpListener::bind_on(&stack, (SYNACK, 50051)).await?;
            let (_reporter, seen) = health_server(listener, KERNEL).await;
            let stream = std::sync::Mutex::new(Some(kernel_connect(&ns, 50051)));
            let channel = Endpoint::from_static("http://192.0.2.2:50051")
                .connect_with_connector(tower::service_fn(move |_uri| {
                    let s = stream.lock().unwrap().take();
                    async move {
                        s.map(TokioIo::new)
                            .ok_or_else(|| io::Error::other("one connection only"))
                    }
                }))
                .await?;
            let mut health = HealthClient::new(channel);
            let r = health
                .check(HealthCheckRequest {
                    service: "shop".into(),
                })
                .await?;
            assert_eq!(r.into_inner().status, 1);
            assert_eq!(seen.load(Ordering::Relaxed), 1);
            Ok(())
        });
    }

    #[test]
    fn synacks_hyper_client_asks_the_kernel() {
        with_tun('h', |ns, stack| async move {
            let std_listener = ns
                .in_ns(|| std::net::TcpListener::bind((KERNEL, 8080)))
                .expect("the kernel's listener");
            std_listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), hyper::service::service_fn(hello)),
                    );
                }
            });
            let http = Client::builder(TokioExecutor::new())
                .build::<_, Empty<Bytes>>(Connector::new(&stack));
            for i in 0..3 {
                let res = http
                    .get(format!("http://192.0.2.1:8080/k{i}").parse()?)
                    .await?;
                assert_eq!(body_string(res).await?, format!("/k{i}"));
            }
            assert!(stack.stats().connections_established <= 2, "keep-alive");
            Ok(())
        });
    }
}
