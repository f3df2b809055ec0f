//! Draws a time-sequence graph and a congestion-window plot of one transfer
//! through a simulated bottleneck, as hand-written SVG.
//!
//! ```text
//! cargo run --release --example plot -- [OUT_DIR] [SECONDS]
//! ```
//!
//! One synack flow crosses a 10 Mbit/s, 40 ms-RTT path with a one-BDP drop-tail
//! queue, under paused tokio time (so it takes well under a second). The
//! sequence and ACK numbers come from pcap captures of the sender's links
//! (what it sent, as it left; what it got back, as it arrived); cwnd, ssthresh
//! and the smoothed RTT from sampling `TcpStream::info()` every 5 ms of
//! simulated time. Writes `OUT_DIR/time-sequence.svg` and `OUT_DIR/cwnd.svg`
//! (default `OUT_DIR`: `target/plots`, default duration 10 s).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use synack::net::{TcpListener, TcpStream};
use synack::{Config, Stack};
use synack_sim::{CaptureBuffer, CapturePoint, HostConfig, LinkConfig, Network, read_pcap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SENDER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const RECEIVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// One sample of the sender's state.
struct Sample {
    t: f64,
    cwnd: f64,
    ssthresh: Option<f64>,
    srtt_ms: Option<f64>,
}

/// A TCP segment seen in a capture: time, sequence number, payload length, ACK number.
struct Segment {
    t: f64,
    seq: u32,
    len: u32,
    ack: Option<u32>,
}

/// The TCP segments of raw IPv4 packets in a pcap file (others are skipped).
fn segments(pcap: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    for r in read_pcap(pcap).unwrap_or_default() {
        let p = &r.data;
        if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 6 {
            continue;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
        if total < ihl + 20 {
            continue;
        }
        let tcp = &p[ihl..total];
        let doff = usize::from(tcp[12] >> 4) * 4;
        if doff < 20 || doff > tcp.len() {
            continue;
        }
        let word = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
        let flags = tcp[13];
        out.push(Segment {
            t: r.micros as f64 / 1e6,
            seq: word(4),
            len: (tcp.len() - doff) as u32,
            ack: (flags & 0x10 != 0).then(|| word(8)),
        });
    }
    out
}

/// A plot area: maps data coordinates to SVG pixels.
struct Axes {
    w: f64,
    h: f64,
    margin: f64,
    x_max: f64,
    y_max: f64,
}

impl Axes {
    fn x(&self, v: f64) -> f64 {
        self.margin + v / self.x_max * (self.w - 2.0 * self.margin)
    }
    fn y(&self, v: f64) -> f64 {
        self.h - self.margin - v / self.y_max * (self.h - 2.0 * self.margin)
    }

    /// The SVG header, frame, ticks and labels.
    fn frame(&self, title: &str, x_label: &str, y_label: &str) -> String {
        let mut s = String::new();
        let (w, h, m) = (self.w, self.h, self.margin);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{title}</text>"#,
            w / 2.0
        );
        let _ = writeln!(
            s,
            r#"<rect x="{m}" y="{m}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            w - 2.0 * m,
            h - 2.0 * m
        );
        for i in 0..=5 {
            let xv = self.x_max * f64::from(i) / 5.0;
            let yv = self.y_max * f64::from(i) / 5.0;
            let (x, y) = (self.x(xv), self.y(yv));
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="black"/><text x="{x}" y="{}" text-anchor="middle">{xv:.1}</text>"#,
                h - m,
                h - m + 5.0,
                h - m + 18.0
            );
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{y}" x2="{m}" y2="{y}" stroke="black"/><text x="{}" y="{}" text-anchor="end">{yv:.0}</text>"#,
                m - 5.0,
                m - 8.0,
                y + 4.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#,
            w / 2.0,
            h - 15.0
        );
        let _ = writeln!(
            s,
            r#"<text x="15" y="{}" text-anchor="middle" transform="rotate(-90 15 {})">{y_label}</text>"#,
            h / 2.0,
            h / 2.0
        );
        s
    }

    fn polyline(&self, points: impl Iterator<Item = (f64, f64)>, colour: &str) -> String {
        let mut pts = String::new();
        for (x, y) in points {
            let _ = write!(pts, "{:.1},{:.1} ", self.x(x), self.y(y));
        }
        format!(r#"<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1"/>"#)
    }
}

fn legend(items: &[(&str, &str)], x: f64) -> String {
    let mut s = String::new();
    for (i, (label, colour)) in items.iter().enumerate() {
        let y = 75.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{y}">{label}</text>"#,
            y - 9.0,
            x + 14.0
        );
    }
    s
}

fn time_sequence(sent: &[Segment], acks: &[Segment], iss: u32, seconds: f64) -> String {
    let rel = |s: u32| f64::from(s.wrapping_sub(iss)) / 1e6;
    let y_max = sent
        .iter()
        .map(|s| rel(s.seq.wrapping_add(s.len)))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.05;
    let axes = Axes {
        w: 1000.0,
        h: 600.0,
        margin: 60.0,
        x_max: seconds,
        y_max,
    };
    let mut svg = axes.frame(
        "Time-sequence graph: sender's segments and the ACKs it received",
        "time (s)",
        "relative sequence number (MB)",
    );
    // The ACK line first, then each data segment as a short vertical bar,
    // retransmissions in red, on top.
    let ack_line = acks
        .iter()
        .filter(|a| a.t <= seconds)
        .filter_map(|a| a.ack.map(|ack| (a.t, rel(ack))))
        .filter(|(_, v)| *v <= y_max);
    svg.push_str(&axes.polyline(ack_line, "green"));

    let mut highest = 0.0f64;
    for s in sent.iter().filter(|s| s.len > 0 && s.t <= seconds) {
        let (lo, hi) = (rel(s.seq), rel(s.seq.wrapping_add(s.len)));
        let colour = if hi <= highest { "red" } else { "black" };
        highest = highest.max(hi);
        let x = axes.x(s.t);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-width="1.5"/>"#,
            axes.y(lo),
            axes.y(hi) - 1.0
        );
    }
    svg.push_str(&legend(
        &[
            ("data sent", "black"),
            ("retransmission", "red"),
            ("ACK received", "green"),
        ],
        80.0,
    ));
    svg.push_str("</svg>\n");
    svg
}

fn cwnd_plot(samples: &[Sample], seconds: f64) -> String {
    let kb = |b: f64| b / 1024.0;
    let y_max = samples.iter().map(|s| kb(s.cwnd)).fold(1.0, f64::max) * 1.1;
    let rtt_max = samples.iter().filter_map(|s| s.srtt_ms).fold(1.0, f64::max) * 1.1;
    let axes = Axes {
        w: 1000.0,
        h: 600.0,
        margin: 60.0,
        x_max: seconds,
        y_max,
    };
    let mut svg = axes.frame(
        "Congestion window (KiB) and smoothed RTT (scaled to the right axis)",
        "time (s)",
        "KiB",
    );
    svg.push_str(
        &axes.polyline(
            samples
                .iter()
                .filter(|s| s.t <= seconds)
                .map(|s| (s.t, kb(s.cwnd))),
            "blue",
        ),
    );
    svg.push_str(
        &axes.polyline(
            samples
                .iter()
                .filter_map(|s| s.ssthresh.map(|v| (s.t, kb(v).min(y_max)))),
            "orange",
        ),
    );
    svg.push_str(
        &axes.polyline(
            samples
                .iter()
                .filter_map(|s| s.srtt_ms.map(|r| (s.t, r / rtt_max * y_max))),
            "purple",
        ),
    );
    for i in 0..=5 {
        let v = rtt_max * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}">{v:.0} ms</text>"#,
            axes.w - axes.margin + 5.0,
            axes.y(y_max * f64::from(i) / 5.0) + 4.0
        );
    }
    svg.push_str(&legend(
        &[("cwnd", "blue"), ("ssthresh", "orange"), ("srtt", "purple")],
        80.0,
    ));
    svg.push_str("</svg>\n");
    svg
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/plots".into()));
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let (sent, acks, samples, iss) = rt.block_on(async move {
        let net = Network::new(2026);
        let rate = 10_000_000;
        let leg = LinkConfig::new().delay(Duration::from_millis(10));
        // 10 Mbit/s for 40 ms: 50 kB of queue.
        let bottleneck = leg.rate_bps(rate).queue_bytes(50_000);
        let a = net.add_host(HostConfig::new(SENDER).uplink(leg).downlink(leg))?;
        let b = net.add_host(HostConfig::new(RECEIVER).uplink(leg).downlink(bottleneck))?;
        let (sent, acks) = (CaptureBuffer::new(), CaptureBuffer::new());
        a.uplink().capture(CapturePoint::Ingress, sent.clone())?;
        a.downlink().capture(CapturePoint::Egress, acks.clone())?;
        let config = Config {
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            ..Config::default()
        };
        let sa = Stack::builder(a, SENDER, 24)
            .config(config.clone())
            .secret([1, 2])
            .build();
        let sb = Stack::builder(b, RECEIVER, 24)
            .config(config)
            .secret([3, 4])
            .build();
        let listener = TcpListener::bind_on(&sb, SocketAddr::from((RECEIVER, 80))).await?;
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            }
        });
        let mut stream = TcpStream::connect_on(&sa, SocketAddr::from((RECEIVER, 80))).await?;
        let (iss, _) = stream.initial_sequence_numbers()?;
        let start = net.elapsed();
        let mut samples = Vec::new();
        let chunk = vec![0u8; 64 * 1024];
        let end = start + Duration::from_secs_f64(seconds);
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while net.elapsed() < end {
            tokio::select! {
                biased;
                _ = tick.tick() => {
                    let info = stream.info()?;
                    samples.push(Sample {
                        t: net.elapsed().as_secs_f64(),
                        cwnd: info.cwnd as f64,
                        ssthresh: (info.ssthresh != usize::MAX).then_some(info.ssthresh as f64),
                        srtt_ms: info.srtt.map(|d| d.as_secs_f64() * 1e3),
                    });
                }
                r = stream.write(&chunk) => { r?; }
            }
        }
        std::io::Result::Ok((
            segments(&sent.contents()),
            segments(&acks.contents()),
            samples,
            iss,
        ))
    })?;
    std::fs::create_dir_all(&out)?;
    let x_max = seconds;
    std::fs::write(
        out.join("time-sequence.svg"),
        time_sequence(&sent, &acks, iss, x_max),
    )?;
    std::fs::write(out.join("cwnd.svg"), cwnd_plot(&samples, x_max))?;
    println!(
        "{} segments sent, {} received, {} samples: wrote {} and {}",
        sent.len(),
        acks.len(),
        samples.len(),
        out.join("time-sequence.svg").display(),
        out.join("cwnd.svg").display()
    );
    Ok(())
}
