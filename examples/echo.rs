//! An echo server and a client, each on its own synack stack, joined by an
//! in-memory link.
//!
//! ```sh
//! cargo run --example echo
//! ```

use std::error::Error;
use std::net::Ipv4Addr;

use synack::Stack;
use synack::device::{MemoryLink, MemoryLinkConfig};
use synack::net::{TcpListener, TcpStream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Two stacks on the two ends of a wire.
    let (a, b) = MemoryLink::pair(MemoryLinkConfig::default());
    let server = Stack::new(a, Ipv4Addr::new(192, 0, 2, 1), 24);
    let client = Stack::new(b, Ipv4Addr::new(192, 0, 2, 2), 24);

    // The server: for each connection, write back whatever is read.
    let listener = TcpListener::bind_on(&server, "192.0.2.1:7").await?;
    println!("echo server listening on {}", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            let (mut socket, peer) = listener.accept().await.expect("accept");
            println!("server: connection from {peer}");
            tokio::spawn(async move {
                let mut buf = vec![0; 1024];
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) => return, // the client closed its side
                        Ok(n) => n,
                        Err(e) => return eprintln!("server: read failed: {e}"),
                    };
                    if let Err(e) = socket.write_all(&buf[..n]).await {
                        return eprintln!("server: write failed: {e}");
                    }
                }
            });
        }
    });

    // The client: send a few lines, print what comes back.
    let stream = TcpStream::connect_on(&client, "192.0.2.1:7").await?;
    println!("client: connected from {}", stream.local_addr()?);
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    for line in ["hello", "synack speaks TCP", "goodbye"] {
        writer.write_all(format!("{line}\n").as_bytes()).await?;
        let echoed = lines.next_line().await?.ok_or("connection closed early")?;
        println!("client: echoed {echoed:?}");
    }
    writer.shutdown().await?;
    Ok(())
}
