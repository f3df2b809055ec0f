//! A tonic gRPC server (tonic's health service: no `protoc` step) on one
//! synack stack and a tonic client on another, over an in-memory link. The
//! server sees each caller's address through `Request::remote_addr`; the
//! client checks a service, then watches it go from serving to not serving.
//!
//! ```text
//! cargo run --example tonic
//! ```

use std::net::Ipv4Addr;

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::hyper::Connector;
use synack::net::TcpListener;
use synack::tonic::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::pb::{HealthCheckRequest, health_check_response};
use tonic_health::server::{HealthReporter, HealthService};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Logs who calls: the address comes from synack's `Connected` for `TcpStream`.
fn log_caller(req: Request<()>) -> Result<Request<()>, Status> {
    println!(
        "  server: a call from {}",
        req.remote_addr()
            .map_or("an unknown address".to_string(), |a| a.to_string())
    );
    Ok(req)
}

fn status_name(s: i32) -> &'static str {
    match health_check_response::ServingStatus::try_from(s) {
        Ok(health_check_response::ServingStatus::Serving) => "SERVING",
        Ok(health_check_response::ServingStatus::NotServing) => "NOT_SERVING",
        Ok(health_check_response::ServingStatus::ServiceUnknown) => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::new(a, SERVER, 24);
    let client = Stack::builder(b, CLIENT, 24)
        .host("grpc.example", SERVER)
        .build();

    let reporter = HealthReporter::new();
    reporter
        .set_service_status("shop", ServingStatus::Serving)
        .await;
    let health = HealthServer::with_interceptor(
        HealthService::from_health_reporter(reporter.clone()),
        log_caller,
    );
    let listener = TcpListener::bind_on(&server, (SERVER, 50051)).await?;
    println!("gRPC server on {} (server stack)", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(TcpIncoming::new(listener), async move {
                let _ = stopped.await;
            }),
    );

    // A lazy channel dials from its own task when first used: the connector
    // carries the client stack there.
    let channel = Endpoint::from_static("http://grpc.example:50051")
        .connect_with_connector_lazy(Connector::new(&client));
    let mut health_client = HealthClient::new(channel);

    let reply = health_client
        .check(HealthCheckRequest {
            service: "shop".into(),
        })
        .await?;
    println!(
        "client: check(shop) = {}",
        status_name(reply.into_inner().status)
    );

    let mut watch = health_client
        .watch(HealthCheckRequest {
            service: "shop".into(),
        })
        .await?
        .into_inner();
    let first = watch.message().await?.map(|r| r.status);
    println!(
        "client: watch(shop) starts at {}",
        status_name(first.unwrap_or(-1))
    );
    reporter
        .set_service_status("shop", ServingStatus::NotServing)
        .await;
    let next = watch.message().await?.map(|r| r.status);
    println!(
        "client: watch(shop) now {}",
        status_name(next.unwrap_or(-1))
    );

    match health_client
        .check(HealthCheckRequest {
            service: "nothing-here".into(),
        })
        .await
    {
        Ok(r) => println!(
            "client: check(nothing-here) = {}",
            status_name(r.into_inner().status)
        ),
        Err(status) => println!("client: check(nothing-here) failed: {}", status.code()),
    }
    println!(
        "client stack: {} connection(s) for all calls (HTTP/2 multiplexes them)",
        client.stats().connections_established
    );

    drop((watch, health_client));
    let _ = stop.send(());
    serving.await??;
    println!("server shut down");
    Ok(())
}
