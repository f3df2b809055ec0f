//! `ss -tuai` for a synack stack: `Stack::connections()` lists every socket
//! with its state, queues and, for TCP connections, `TcpInfo`. The example
//! sets up a listener, a connection with unread data, one half-closed
//! (CLOSE-WAIT on one side, FIN-WAIT-2 on the other), one in TIME-WAIT and
//! two UDP sockets, then prints the server stack's sockets as `ss` would.
//!
//! ```text
//! cargo run --example ss
//! ```

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::net::{TcpListener, TcpStream, UdpSocket};
use synack::{Protocol, SocketSummary, Stack};
use tokio::io::AsyncWriteExt;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn addr(a: Option<SocketAddrV4>) -> String {
    a.map_or("*:*".into(), |a| {
        if a.ip().is_unspecified() {
            format!("*:{}", a.port())
        } else {
            a.to_string()
        }
    })
}

/// One socket in `ss -tuai`'s layout: the line, then TCP's details indented.
fn print(s: &SocketSummary) {
    println!(
        "{:<5} {:<10} {:>6} {:>6} {:<21} {:<21}{}",
        match s.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        },
        s.state.to_string(),
        s.recv_q,
        s.send_q,
        addr(Some(s.local)),
        addr(s.remote),
        if s.orphan { " (orphan)" } else { "" },
    );
    if let Some(i) = &s.info {
        let rtt = i.srtt.map_or("-".into(), |r| {
            format!(
                "{:.3}/{:.3}",
                r.as_secs_f64() * 1e3,
                i.rttvar.as_secs_f64() * 1e3
            )
        });
        println!(
            "\t {} rto:{} rtt:{rtt} mss:{} cwnd:{} ssthresh:{} bytes_sent:{} bytes_retrans:{} \
             bytes_acked:{} bytes_received:{} segs_out:{} segs_in:{} lost:{} sack:{}",
            format!("{:?}", i.congestion).to_lowercase(),
            i.rto.as_millis(),
            i.snd_mss,
            i.cwnd / i.snd_mss.max(1),
            if i.ssthresh >= usize::MAX / 2 {
                "inf".into()
            } else {
                (i.ssthresh / i.snd_mss.max(1)).to_string()
            },
            i.bytes_sent,
            i.bytes_retrans,
            i.bytes_acked,
            i.bytes_received,
            i.segs_out,
            i.segs_in,
            i.lost,
            i.sack,
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::new(a, SERVER, 24);
    let client = Stack::new(b, CLIENT, 24);

    let listener = TcpListener::bind_on(&server, "0.0.0.0:80").await?;

    // ESTAB, with 5 000 bytes the server has not read yet.
    let mut busy = TcpStream::connect_on(&client, (SERVER, 80)).await?;
    let (_busy_server, _) = listener.accept().await?;
    busy.write_all(&[7u8; 5000]).await?;

    // The client shuts its side: the server's end is in CLOSE-WAIT.
    let mut half = TcpStream::connect_on(&client, (SERVER, 80)).await?;
    let (_half_server, _) = listener.accept().await?;
    half.shutdown().await?;

    // The server closes first: its end stays in TIME-WAIT.
    let mut done = TcpStream::connect_on(&client, (SERVER, 80)).await?;
    let (mut done_server, _) = listener.accept().await?;
    done_server.shutdown().await?;
    drop(done_server);
    done.shutdown().await?;
    drop(done);

    // A UDP socket bound to every address, and one connected.
    let _dns = UdpSocket::bind_on(&server, "0.0.0.0:53").await?;
    let udp = UdpSocket::bind_on(&server, (SERVER, 5353)).await?;
    udp.connect((CLIENT, 5353)).await?;

    tokio::time::sleep(Duration::from_millis(50)).await;
    println!(
        "{:<5} {:<10} {:>6} {:>6} {:<21} {:<21}",
        "Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"
    );
    for s in server.connections() {
        print(&s);
    }
    Ok(())
}
