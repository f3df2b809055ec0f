//! Engine configuration: plain data with documented defaults.

use std::time::Duration;

use crate::CongestionAlgorithm;

/// Configuration of an [`Engine`](crate::Engine). Every field has a default
/// (see [`Config::default`]) close to Linux's.
#[derive(Debug, Clone)]
pub struct Config {
    /// The MSS to offer, if smaller than the MTU allows (RFC 9293 §3.7.1). Default: from the MTU.
    pub mss: Option<u16>,
    /// The largest send buffer of a connection, bytes (Linux's `tcp_wmem[2]`).
    /// A connection starts at [`send_buffer_initial`](Config::send_buffer_initial)
    /// and grows to twice its congestion window up to this (Linux's
    /// `tcp_sndbuf_expand`). Memory is allocated as data is written, not up
    /// front. A socket that sets its own size (`SO_SNDBUF`) gets that size
    /// from the start and no growth. Default 256 KiB.
    pub send_buffer: usize,
    /// How much a connection may write before its congestion window has grown,
    /// bytes (Linux's `tcp_wmem[1]`), and at least four segments. Default 16 KiB.
    pub send_buffer_initial: usize,
    /// The largest receive buffer of a connection, bytes; it also bounds
    /// reassembly and sets the window scale offered (RFC 7323 §2.3). A
    /// connection starts by offering
    /// [`recv_buffer_initial`](Config::recv_buffer_initial) and grows its window
    /// to about twice what the application reads per round trip, up to this
    /// (dynamic right-sizing, Linux's `tcp_rcv_space_adjust`). Memory is
    /// allocated as data arrives. A socket that sets its own size (`SO_RCVBUF`)
    /// gets that size from the start and no autotuning. Default 256 KiB.
    pub recv_buffer: usize,
    /// The receive window a connection starts with, bytes (Linux's
    /// `tcp_rmem[1]` gives about the same), and at least four segments: a
    /// window of about one segment stalls the ACK clock. Default 64 KiB.
    pub recv_buffer_initial: usize,
    /// The stack-wide budget for socket buffer memory (Linux's `tcp_mem`).
    /// `None`: derived from the buffer sizes ([`MemoryLimits::for_buffers`]).
    pub memory: Option<MemoryLimits>,
    /// Zero-window probes sent to a closed (orphaned) connection before it is
    /// dropped, answered or not (Linux's `tcp_orphan_retries`, 8 when unset).
    /// An open connection gives up after [`data_retries`](Config::data_retries)
    /// unanswered probes. Default 8.
    pub orphan_retries: u32,
    /// The most connections closed by the application that may still be
    /// delivering data or waiting for the peer (Linux's `tcp_max_orphans`);
    /// one more is reset at once on close. Default 65 536.
    pub max_orphans: usize,
    /// Offer window scaling (RFC 7323 §2). Default on.
    pub window_scaling: bool,
    /// Initial retransmission timeout (RFC 6298 §2.1). Default 1 s.
    pub initial_rto: Duration,
    /// Lower bound on the RTO. RFC 6298 says 1 s; Linux uses 200 ms, as does the default.
    pub min_rto: Duration,
    /// Upper bound on the RTO. Default 120 s, as Linux.
    pub max_rto: Duration,
    /// SYN retransmissions before a connect gives up with `TimedOut`. Default 7:
    /// the attempt lasts 247 s, meeting RFC 1122 §4.2.3.5 ("R2 for a SYN
    /// segment MUST be ... at least 3 minutes"). Linux's default of 6 gives up
    /// after 127 s; an application wanting less sets this, a connect timeout,
    /// or a `tokio::time::timeout` (the RFC lets the application give up sooner).
    pub syn_retries: u32,
    /// Data retransmissions before giving up with `TimedOut`. Default 15, as Linux.
    pub data_retries: u32,
    /// The maximum segment lifetime; TIME-WAIT lasts twice this. Default 30 s (Linux's 60 s TIME-WAIT).
    pub msl: Duration,
    /// How long a closed connection waits in FIN-WAIT-2 for the peer's FIN. Default 60 s.
    pub fin_wait2_timeout: Duration,
    /// Longest delay before an ACK (RFC 1122 §4.2.3.2 allows 500 ms). Default 40 ms, as Linux.
    pub delayed_ack: Duration,
    /// Initial congestion window in segments (RFC 6928). Default 10.
    pub initial_window_segments: usize,
    /// The largest listen backlog accepted. Default 4096.
    pub max_backlog: usize,
    /// Ephemeral ports for outgoing connections, inclusive. Default 49152–65535 (IANA).
    pub ephemeral_ports: (u16, u16),
    /// A connect may take over the 4-tuple of one of our connections in
    /// TIME-WAIT when timestamps make that safe (Linux's `tcp_tw_reuse`; the
    /// active side of RFC 6191): the old connection used timestamps and its
    /// peer's last one is at least a second old. Default on (Linux's default
    /// enables it for loopback only).
    pub tw_reuse: bool,
    /// A connect (SYN-SENT) fails at once with
    /// [`Error::HostUnreachable`](crate::Error::HostUnreachable) when ICMP
    /// says the host or network is unreachable: RFC 5461's "non-standard,
    /// but widely implemented" reaction (Linux, the BSDs), so an application
    /// need not wait out the SYN retries. Off: RFC 1122 §4.2.3.9's soft
    /// error, reported only when the connect times out. Established
    /// connections never abort on it. Default on.
    pub unreachable_fails_connect: bool,
    /// A UDP socket's receive buffer, bytes (`SO_RCVBUF`): datagrams beyond
    /// it are dropped and counted. Default 212 992, as Linux's `rmem_default`.
    pub udp_recv_buffer: usize,
    /// A UDP socket's send buffer, bytes (`SO_SNDBUF`): beyond it a send
    /// would block. Default 212 992, as Linux's `wmem_default`.
    pub udp_send_buffer: usize,
    /// How long the fragments of a datagram wait for the rest (RFC 1122
    /// §3.3.2: a fixed value, 60 s to 120 s recommended). Default 60 s.
    pub reassembly_timeout: Duration,
    /// Memory all partial datagrams together may hold, bytes; beyond it the
    /// oldest are dropped (and counted). Default 4 MiB, as Linux's
    /// `ipfrag_high_thresh`.
    pub reassembly_memory: usize,
    /// IP time-to-live of outgoing packets. Default 64.
    pub ttl: u8,
    /// Offer and accept the timestamps option (RFC 7323 §3, §4, §5): RTT
    /// measurement and PAWS. Default on, as Linux.
    pub timestamps: bool,
    /// Challenge ACKs (RFC 5961 §3, §4, §5) the whole stack sends per second at
    /// most (RFC 5961 §7); the rest are suppressed and counted in
    /// [`Stats::challenge_acks_suppressed`](crate::Stats::challenge_acks_suppressed).
    /// Default 1000, as Linux's `tcp_challenge_ack_limit`.
    pub challenge_ack_limit: u32,
    /// How many of the first data segments of a connection are acknowledged at
    /// once, without delay (Linux's quickack mode at connection start). Default 16.
    pub initial_quickacks: u32,
    /// Answer the in-order segments of a connection that arrive in one batch
    /// (one call of the driver's receive) with a single ACK, much as Linux
    /// does for what GRO merged, instead of an ACK for every second full
    /// segment (RFC 1122 §4.2.3.2, RFC 5681 §4.2). Out-of-order segments
    /// still get a duplicate ACK each (GRO does not merge them). Fewer ACKs
    /// and more throughput on fast links, at the price of stretch ACKs (RFC
    /// 2525 §2.13): the peer's ACK clock and per-ACK RTT samples see one ACK
    /// where there were several. Default `false`.
    pub coalesce_acks: bool,
    /// Give up a connection attempt after this long, whatever the SYN retries
    /// left ([`Error::TimedOut`](crate::Error::TimedOut)). Default none: only
    /// [`syn_retries`](Config::syn_retries) bound it.
    pub connect_timeout: Option<std::time::Duration>,
    /// The keepalive settings a connection starts from when keepalive is
    /// switched on without its own (`SO_KEEPALIVE` alone), as Linux's
    /// `net.ipv4.tcp_keepalive_time`, `_intvl` and `_probes` and FreeBSD's
    /// `net.inet.tcp.keepidle`, `keepintvl`, `keepcnt`. Keepalive stays off
    /// until asked for (RFC 1122 §4.2.3.6). Default
    /// [`Keepalive::default`](crate::Keepalive::default): 7200 s, 75 s, 9.
    pub keepalive: crate::Keepalive,
    /// The congestion control algorithm of new connections (per socket:
    /// [`Engine::set_congestion`](crate::Engine::set_congestion)). Default CUBIC.
    pub congestion: CongestionAlgorithm,
    /// Offer and use selective acknowledgements (RFC 2018, RFC 2883, RFC 6675). Default on.
    pub sack: bool,
    /// Pace new data: segments are spread over the round trip at the
    /// controller's pacing rate instead of sent in bursts (per socket:
    /// [`Engine::set_pacing`](crate::Engine::set_pacing)); HyStart++ then
    /// lets an ACK grow the window by all it acknowledges (RFC 9406 §4.3,
    /// L = infinity). Default off.
    pub pacing: bool,
    /// SYN-ACK retransmissions before a half-open passive connection is dropped
    /// from the SYN queue. Default 5, as Linux's `tcp_synack_retries` (63 s).
    /// Once a listener's SYN queue is more than half full, embryos that never
    /// saw an ACK get at most 2 (Linux's `reqsk_timer_handler`).
    pub synack_retries: u32,
    /// SYN cookies (RFC 4987 §3.6), like Linux's `tcp_syncookies`. Default
    /// [`SynCookies::OnOverflow`].
    pub syn_cookies: SynCookies,
    /// Longest a passive connection may stay in SYN-RECEIVED before it is
    /// dropped, whatever SYN-ACK retries are left. Default none (only
    /// [`synack_retries`](Config::synack_retries) bounds it).
    pub syn_received_timeout: Option<Duration>,
}

/// When a listener answers SYNs with cookies instead of queueing them
/// (Linux's `tcp_syncookies` 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynCookies {
    /// Never: a SYN that finds the SYN queue full is dropped.
    Off,
    /// When the SYN queue is full: a flood of spoofed SYNs cannot keep
    /// legitimate clients out.
    #[default]
    OnOverflow,
    /// For every SYN: listeners keep no half-open state at all.
    Always,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: None,
            send_buffer: 256 * 1024,
            send_buffer_initial: 16 * 1024,
            recv_buffer: 256 * 1024,
            recv_buffer_initial: 64 * 1024,
            memory: None,
            orphan_retries: 8,
            max_orphans: 65_536,
            window_scaling: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            syn_retries: 7,
            data_retries: 15,
            msl: Duration::from_secs(30),
            fin_wait2_timeout: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            initial_window_segments: 10,
            max_backlog: 4096,
            ephemeral_ports: (49152, 65535),
            tw_reuse: true,
            unreachable_fails_connect: true,
            udp_recv_buffer: 212_992,
            udp_send_buffer: 212_992,
            reassembly_timeout: Duration::from_secs(60),
            reassembly_memory: 4 << 20,
            ttl: 64,
            timestamps: true,
            challenge_ack_limit: 1000,
            initial_quickacks: 16,
            coalesce_acks: false,
            connect_timeout: None,
            keepalive: crate::Keepalive::default(),
            congestion: CongestionAlgorithm::Cubic,
            sack: true,
            pacing: false,
            synack_retries: 5,
            syn_cookies: SynCookies::OnOverflow,
            syn_received_timeout: None,
        }
    }
}

/// A stack-wide budget for socket buffer memory, bytes, like Linux's
/// `tcp_mem`: below `low` nothing is regulated; above `pressure` buffers stop
/// growing and empty ones are freed at once, until use falls below `low`
/// again; above `high` no connection's window moves beyond what it has
/// already promised and no new data is taken from the application, so
/// arriving data beyond a promise is dropped (and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Below this, memory is not regulated (and pressure ends).
    pub low: usize,
    /// Above this, buffers stop growing.
    pub pressure: usize,
    /// Above this, no new window is offered and no new data written.
    pub high: usize,
}

impl MemoryLimits {
    /// The default budget: room for 1 024 connections with full send and
    /// receive buffers (512 MiB with the default 256 KiB each, about what
    /// Linux's `tcp_mem` gives a 24 GiB host), pressure at three quarters and
    /// `low` at half of that.
    pub fn for_buffers(send_buffer: usize, recv_buffer: usize) -> MemoryLimits {
        let high = 1024usize.saturating_mul(send_buffer.saturating_add(recv_buffer));
        MemoryLimits {
            low: high / 2,
            pressure: high / 4 * 3,
            high,
        }
    }
}
