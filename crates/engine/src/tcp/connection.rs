//! One TCP connection: its transmission control block (TCB) and state machine.
//!
//! RFC 9293 §3.3.2 names the states and §3.10 the event processing that this
//! file follows: [`Tcb::on_segment`] is "SEGMENT ARRIVES" (§3.10.7),
//! [`Tcb::poll_output`] decides what to send next, and [`Tcb::on_timer`] handles
//! the timeouts (§3.10.8). The TCB knows nothing of IP, the timer wheel or other
//! connections: it asks for timers through [`Tcb::timers`] and reports readiness
//! through [`Tcb::events`]; the engine does the rest.

use std::net::SocketAddrV4;
use std::time::Duration;

use tracing::{debug, trace};

use super::buffer::{MemLevel, RecvBuffer, SendBuffer};
use super::cc::{CongestionAlgorithm, CongestionControl, new_controller};
use super::rtt::RttEstimator;
use super::timestamps::{self, Timestamps};
use crate::seq::Seq;
use crate::{Config, Error, Instant};

mod recovery;

pub use recovery::CaState;

/// The state of a connection (RFC 9293 §3.3.2). `Listen` belongs to listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// A SYN was sent; waiting for a matching SYN.
    SynSent,
    /// A SYN was received and answered; waiting for the ACK of our SYN.
    SynReceived,
    /// Data flows both ways.
    Established,
    /// We closed our direction; our FIN is not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer closed its direction; we may still send.
    CloseWait,
    /// Both closed at once; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed first, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Both directions closed; waiting 2·MSL so stray segments die out.
    TimeWait,
    /// No connection.
    Closed,
}

impl State {
    /// Whether the handshake is done (RFC 9293's "synchronized states").
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::SynReceived | State::Closed)
    }
}

/// The control flag of a segment. TCP allows combinations; smoltcp's parser
/// already rejects the nonsensical ones (SYN+FIN, SYN+RST, FIN+RST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctl {
    None,
    Syn,
    Fin,
    Rst,
}

/// A parsed inbound segment, as the TCB sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment<'a> {
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub ctl: Ctl,
    pub window: u16,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub payload: &'a [u8],
    /// The timestamps option: (TSval, TSecr) (RFC 7323 §3).
    pub timestamp: Option<(u32, u32)>,
    /// The SACK-permitted option (RFC 2018 §2), in a SYN.
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3), in the order sent.
    pub sack_blocks: [Option<(Seq, Seq)>; 3],
    /// The urgent pointer, when the URG bit is set (RFC 9293 §3.8.5).
    pub urgent: Option<u16>,
    /// FIN set beside SYN (`ctl` is `Syn`). It occupies sequence space (RFC
    /// 9293 §3.4) but opens nothing: such a segment is dropped in LISTEN and
    /// SYN-SENT (as Linux in LISTEN and FreeBSD's `drop_synfin`), treated as
    /// a SYN in the synchronized states (RFC 5961 §4: a challenge ACK), and
    /// answered with a RST covering it when no socket has its port.
    pub syn_fin: bool,
}

impl Segment<'_> {
    /// SEG.LEN: the sequence space it occupies (RFC 9293 §3.4: SYN and FIN
    /// count one each).
    pub(crate) fn len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(matches!(self.ctl, Ctl::Syn | Ctl::Fin))
            + u32::from(self.syn_fin)
    }
}

/// An outbound segment the TCB wants sent; its payload is `payload_len` bytes
/// of the send buffer starting `payload_offset` bytes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub ctl: Ctl,
    pub window: u16,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub payload_offset: usize,
    pub payload_len: usize,
    pub psh: bool,
    /// The timestamps option to send: (TSval, TSecr) (RFC 7323 §3).
    pub timestamp: Option<(u32, u32)>,
    /// Offer SACK (RFC 2018 §2), in a SYN or SYN-ACK.
    pub sack_permitted: bool,
    /// SACK blocks to report, most important first; as many as fit the
    /// option space go out (RFC 2018 §3).
    pub sack_blocks: [Option<(Seq, Seq)>; crate::tcp::sack::MAX_BLOCKS],
    /// URG with this urgent pointer (RFC 9293 §3.8.5).
    pub urgent: Option<u16>,
}

/// The timers of one connection; each is one entry in the engine's wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retransmission of unacknowledged data, SYN or FIN (RFC 6298).
    Retransmit = 0,
    /// Zero-window probing (RFC 9293 §3.8.6.1).
    Persist = 1,
    /// The delayed ACK (RFC 1122 §4.2.3.2).
    DelayedAck = 2,
    /// TIME-WAIT's 2·MSL, or the FIN-WAIT-2 timeout of a released connection.
    Linger = 3,
    /// Keepalive (RFC 1122 §4.2.3.6) once synchronized; the connect timeout before.
    Keepalive = 4,
    /// The next paced transmission (see [`Config::pacing`]).
    Pacing = 5,
    /// Empty buffers give their memory back after a while idle.
    Reclaim = 6,
}

impl Timer {
    pub(crate) const ALL: [Timer; 7] = [
        Timer::Retransmit,
        Timer::Persist,
        Timer::DelayedAck,
        Timer::Linger,
        Timer::Keepalive,
        Timer::Pacing,
        Timer::Reclaim,
    ];
}

/// Readiness bits the TCB raises for the engine to report.
pub(crate) const EV_READ: u8 = 1;
pub(crate) const EV_WRITE: u8 = 2;

/// Statistics of one connection, a subset of Linux's `TCP_INFO`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed round-trip time, once measured (samples on the stack's own
    /// clock, so it is right below a millisecond).
    pub srtt: Option<Duration>,
    /// Round-trip time variation.
    pub rttvar: Duration,
    /// Current retransmission timeout, backoff included.
    pub rto: Duration,
    /// Congestion window, bytes.
    pub cwnd: usize,
    /// Slow-start threshold, bytes (`usize::MAX` until the first loss).
    pub ssthresh: usize,
    /// Effective send MSS.
    pub snd_mss: usize,
    /// Bytes sent and not yet acknowledged.
    pub bytes_in_flight: usize,
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// Payload bytes retransmitted.
    pub bytes_retrans: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Payload bytes received in order.
    pub bytes_received: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u64,
    /// Fast retransmits.
    pub fast_retransmits: u64,
    /// The state, as [`Engine::state`](crate::Engine::state) reports it.
    pub state: Option<State>,
    /// The loss-recovery state (Linux's `tcpi_ca_state`).
    pub ca_state: CaState,
    /// Payload bytes delivered to the peer: cumulatively acknowledged or SACKed.
    pub delivered: u64,
    /// Payload bytes marked lost (RFC 6675 `IsLost`, RACK, or a timeout).
    pub lost: u64,
    /// Bytes SACKed above SND.UNA now.
    pub sacked: usize,
    /// The reordering seen, in segments (Linux's `tcpi_reordering`; 3 until more is seen).
    pub reordering: u32,
    /// Retransmitted segments not yet acknowledged (Linux's `tcpi_retrans`).
    pub retrans: u32,
    /// The pacing rate, bytes per second (once an RTT is known).
    pub pacing_rate: Option<u64>,
    /// The congestion control algorithm.
    pub congestion: CongestionAlgorithm,
    /// SACK was negotiated (RFC 2018).
    pub sack: bool,
    /// Timestamps were negotiated (RFC 7323 §3; Linux's `TCPI_OPT_TIMESTAMPS`).
    pub timestamps: bool,
    /// Window scaling was negotiated (RFC 7323 §2): the shift counts (send,
    /// receive), Linux's `tcpi_snd_wscale` and `tcpi_rcv_wscale`.
    pub wscale: Option<(u8, u8)>,
    /// Reductions undone as spurious (D-SACK, RFC 2883 §4).
    pub spurious_undos: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub tail_loss_probes: u64,
    /// How much the send buffer may hold now, bytes (it grows with the
    /// congestion window up to [`Config::send_buffer`]; `ss -m`'s `tb`).
    pub send_buffer: usize,
    /// How much the receive buffer may hold now, bytes: the window it backs
    /// (autotuned up to [`Config::recv_buffer`]; `ss -m`'s `rb`).
    pub recv_buffer: usize,
    /// Bytes of buffer memory the connection holds now (`ss -m`'s `r` + `t`).
    pub buffer_memory: usize,
}

/// The cumulative counters a connection keeps for [`TcpInfo`] (the rest of
/// it is computed when asked, so an idle connection carries only these).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    pub timeouts: u64,
    pub fast_retransmits: u64,
}

/// The transmission control block of one connection (RFC 9293 §3.3.1).
#[derive(Debug)]
pub(crate) struct Tcb {
    pub(crate) state: State,
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    span: tracing::Span,

    // Send sequence space (RFC 9293 §3.3.1, Figure 4).
    pub(crate) iss: Seq,
    pub(crate) snd_una: Seq,
    pub(crate) snd_nxt: Seq,
    /// The highest sequence number sent so far (SND.NXT can fall back on timeout).
    snd_max: Seq,
    pub(crate) snd_wnd: u32,
    snd_wl1: Seq,
    snd_wl2: Seq,
    /// The largest window the peer ever offered (RFC 5961 §5.2's MAX.SND.WND).
    max_snd_wnd: u32,
    /// Window scale shift for the peer's windows (RFC 7323 §2.3).
    snd_wscale: u8,
    /// The sequence number of the first byte in the send buffer.
    snd_buf_seq: Seq,
    snd_buf: SendBuffer,
    /// The application closed its sending direction: a FIN follows the data.
    fin_queued: bool,
    /// Text that came on the peer's SYN in a simultaneous open, processed
    /// once the connection is established (RFC 9293 §3.10.7.3: "queue them
    /// for processing after the ESTABLISHED state has been reached").
    syn_text: Option<Box<[u8]>>,
    /// The effective send MSS (RFC 9293 §3.7.1).
    pub(crate) snd_mss: usize,

    // Receive sequence space (Figure 5).
    pub(crate) irs: Seq,
    pub(crate) rcv_nxt: Seq,
    /// The right edge of the window last advertised; never moved left (RFC 9293 §3.8.6.2.2).
    rcv_adv: Seq,
    rcv_wscale: u8,
    /// We offer window scaling; `wscale_on` once both sides did (RFC 7323 §2).
    wscale_ok: bool,
    wscale_on: bool,
    rcv_buf: RecvBuffer,
    /// The peer's FIN arrived ahead of data still missing; its sequence number.
    rcv_fin: Option<Seq>,
    /// The peer's FIN has been consumed: reads end after the buffered bytes.
    fin_received: bool,
    /// Our MSS offered in the SYN.
    rcv_mss: u16,

    // Acknowledgement policy.
    ack_now: bool,
    segs_since_ack: u32,
    /// Send a RST with this sequence number (and ACK, if any) next.
    rst_pending: Option<(Seq, Option<Seq>)>,
    /// Send a zero-window probe next.
    probe_pending: bool,
    /// Retransmit one segment from SND.UNA next (fast retransmit / partial ACK).
    rtx_pending: bool,

    // Loss detection and congestion control.
    rtt: RttEstimator,
    /// The segment being timed for an RTT sample: its end and when it was sent (Karn).
    rtt_timing: Option<(Seq, Instant)>,
    backoff: u32,
    /// Debug builds: part of the timed segment went out again since it was
    /// armed, as [`data_segment`](Tcb::data_segment) and the SYN output see
    /// it, independently of the retransmission paths that must call
    /// [`karn_resent`](Tcb::karn_resent). Checked where a sample is taken.
    #[cfg(debug_assertions)]
    timed_resent: bool,
    /// Debug builds: when the retransmission timeout that started the
    /// current backoff fired. Checked where a sample ends the backoff.
    #[cfg(debug_assertions)]
    backoff_since: Option<Instant>,
    retries: u32,
    dup_acks: u32,
    /// In fast recovery until SND.UNA passes this (RFC 6582's "recover").
    recover: Option<Seq>,
    cc: Box<dyn CongestionControl>,

    // The application's side.
    pub(crate) nodelay: bool,
    /// IP time-to-live of this connection's packets (`IP_TTL`).
    pub(crate) ttl: u8,
    /// `SO_REUSEADDR`: another socket with it may bind this connection's port.
    pub(crate) reuseaddr: bool,
    /// `SO_REUSEPORT`, inherited from the listener that accepted it.
    pub(crate) reuseport: bool,
    /// The handle was given up: nobody will read; close on its own.
    pub(crate) released: bool,
    pub(crate) error: Option<Error>,
    /// A soft error from ICMP, reported if the connection later times out (RFC 5927 §4).
    soft_error: Option<Error>,
    /// The listener this connection came from, until it is accepted.
    pub(crate) parent: Option<crate::SocketHandle>,
    passive: bool,

    // Timers the engine keeps in its wheel, and readiness to report.
    pub(crate) timers: [Option<Instant>; Timer::ALL.len()],
    /// The timers changed since the engine last looked, a bit each
    /// (`1 << Timer as u8`), so it touches the wheel for those alone.
    pub(crate) timers_dirty: u8,
    pub(crate) events: u8,
    /// The cumulative counters of [`TcpInfo`]; the rest is computed when asked.
    pub(crate) info: Counters,

    cfg: TcbConfig,

    /// The timestamps option (RFC 7323).
    pub(crate) ts: Timestamps,
    /// The TSecr of the segment being processed, for an RTT sample (RFC 7323 §4).
    seg_tsecr: Option<u32>,
    /// A challenge ACK is owed (RFC 5961); the engine applies its rate limit
    /// (§7) and turns it into an ACK or drops it.
    pub(crate) challenge_pending: bool,
    /// Keepalive settings, when on (RFC 1122 §4.2.3.6).
    pub(crate) keepalive: Option<crate::conn_opts::Keepalive>,
    /// Keepalive probes sent without an answer.
    ka_probes: u32,
    /// When the last segment arrived: keepalive counts idleness from here.
    last_rcv: Instant,
    /// SO_LINGER: `Some(0)` makes close an abort.
    pub(crate) linger: Option<Duration>,
    /// TCP_USER_TIMEOUT (RFC 5482): longest time data may stay unacknowledged.
    pub(crate) user_timeout: Option<Duration>,
    /// Since when sent data has gone unacknowledged without progress.
    unacked_since: Option<Instant>,
    /// ACK every data segment at once (TCP_QUICKACK).
    pub(crate) quickack: bool,
    /// Data segments still to be acknowledged at once at connection start.
    quickacks_left: u32,
    /// When a connection attempt gives up (connect timeout).
    pub(crate) connect_deadline: Option<Instant>,
    // Loss recovery (tcp/connection/recovery.rs, tcp/sack.rs).
    rec: recovery::Recovery,
    /// Since when the peer's zero window has held our data back (for the user timeout).
    persist_since: Option<Instant>,
    /// The IP type-of-service byte of our datagrams (RFC 1122 §4.2.4.2).
    pub(crate) tos: u8,
    /// SND.UP: the end of our urgent data, until it is acknowledged.
    snd_up: Option<Seq>,
    /// RCV.UP: the end of the peer's urgent data (RFC 9293 §3.8.5).
    rcv_up: Option<Seq>,

    // Memory (tcp/buffer.rs).
    /// Dynamic right-sizing of the receive window (Linux's `rcvq_space`).
    rcvq: RcvSpace,
    /// Bytes the application has read in all.
    bytes_read: u64,
    /// The stack-wide memory level, as the engine last reported it.
    pub(crate) mem_level: MemLevel,
    /// Zero-window probes sent since the peer last answered (or, for an
    /// orphan, in all).
    persist_probes: u32,
    /// Data bytes dropped because they lay beyond the window while memory
    /// was short, not yet counted by the engine.
    pub(crate) dropped_for_memory: u64,
    /// SYN-ACK retransmissions allowed; the engine lowers it for old embryos
    /// of a crowded listener.
    pub(crate) synack_retries: u32,
    /// [`Config::unreachable_fails_connect`].
    unreachable_fails_connect: bool,
}

/// How long an empty buffer larger than [`RECLAIM_AT_ONCE`] keeps its memory
/// before giving it back.
const RECLAIM_IDLE: Duration = Duration::from_secs(1);

/// An emptied buffer this small gives its memory back at once.
const RECLAIM_AT_ONCE: usize = 16 * 1024;

/// The receiver's measurement for dynamic right-sizing (Linux's
/// `tcp_rcv_space_adjust`): what the application reads per round trip.
#[derive(Debug, Clone, Copy)]
struct RcvSpace {
    /// When the current round of measurement began.
    time: Instant,
    /// `bytes_read` then.
    read: u64,
    /// The most read in one round so far.
    space: usize,
}

/// The MSS we offer on an interface of `mtu` (RFC 9293 §3.7.1: the MTU less
/// the fixed IP and TCP headers), or less if configured. The engine's MTU is
/// at least 68 (RFC 791), so this is at least 28.
pub(crate) fn offered_mss(cfg: &Config, mtu: usize) -> u16 {
    cfg.mss
        .unwrap_or(u16::MAX)
        .min(mtu.saturating_sub(40).clamp(1, 65495) as u16)
        .max(1)
}

/// RFC 7323 §2.3: the smallest window scale that lets the largest receive
/// buffer be advertised.
pub(crate) fn window_scale_for(cfg: &Config) -> u8 {
    let mut shift = 0u8;
    while (cfg.recv_buffer >> shift) > 65535 && shift < 14 {
        shift += 1;
    }
    shift
}

/// What a buffer may hold at the start: the configured initial size, but at
/// least four segments of `mss` (a window of about one segment stalls the
/// ACK clock: the receiver's SWS avoidance never sees a full segment of new
/// room), so on a 64 KiB MTU both start at the maximum.
fn initial_buffer(initial: usize, mss: u16) -> usize {
    initial.max(4 * usize::from(mss))
}

/// The window of our SYN or SYN-ACK on an interface of `mtu`: the initial
/// receive window, unscaled (RFC 7323 §2.2).
pub(crate) fn syn_window(cfg: &Config, mtu: usize) -> u16 {
    initial_buffer(cfg.recv_buffer_initial, offered_mss(cfg, mtu))
        .min(cfg.recv_buffer)
        .min(65535) as u16
}

/// The parts of [`Config`] a TCB needs, copied in at creation.
#[derive(Debug, Clone, Copy)]
struct TcbConfig {
    syn_retries: u32,
    data_retries: u32,
    orphan_retries: u32,
    time_wait: Duration,
    fin_wait2_timeout: Duration,
    delayed_ack: Duration,
}

impl Tcb {
    fn new(
        cfg: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        mtu: usize,
        passive: bool,
    ) -> Tcb {
        let rcv_mss = offered_mss(cfg, mtu);
        let rcv_wscale = if cfg.window_scaling {
            window_scale_for(cfg)
        } else {
            0
        };
        // RFC 9293 §3.7.1: without an MSS option, assume 536.
        let snd_mss = 536usize.min(usize::from(rcv_mss));
        let span = tracing::debug_span!("tcp", %local, %remote);
        Tcb {
            state: State::Closed,
            local,
            remote,
            span,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: Seq(0),
            max_snd_wnd: 0,
            snd_wscale: 0,
            snd_buf_seq: iss + 1u32,
            snd_buf: SendBuffer::new(
                initial_buffer(cfg.send_buffer_initial, rcv_mss),
                cfg.send_buffer,
            ),
            fin_queued: false,
            syn_text: None,
            snd_mss,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_adv: Seq(0),
            rcv_wscale,
            wscale_ok: cfg.window_scaling,
            wscale_on: false,
            rcv_buf: RecvBuffer::new(
                initial_buffer(cfg.recv_buffer_initial, rcv_mss),
                cfg.recv_buffer,
            ),
            rcv_fin: None,
            fin_received: false,
            rcv_mss,
            ack_now: false,
            segs_since_ack: 0,
            rst_pending: None,
            probe_pending: false,
            rtx_pending: false,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtt_timing: None,
            backoff: 0,
            #[cfg(debug_assertions)]
            timed_resent: false,
            #[cfg(debug_assertions)]
            backoff_since: None,
            retries: 0,
            dup_acks: 0,
            recover: None,
            cc: {
                let mut cc = new_controller(cfg.congestion, snd_mss, cfg.initial_window_segments);
                cc.set_paced(cfg.pacing);
                cc
            },
            nodelay: false,
            ttl: cfg.ttl,
            reuseaddr: false,
            reuseport: false,
            released: false,
            error: None,
            soft_error: None,
            parent: None,
            passive,
            timers: [None; Timer::ALL.len()],
            timers_dirty: 0,
            events: 0,
            info: Counters::default(),
            cfg: TcbConfig {
                syn_retries: cfg.syn_retries,
                data_retries: cfg.data_retries,
                orphan_retries: cfg.orphan_retries,
                time_wait: cfg.msl * 2,
                fin_wait2_timeout: cfg.fin_wait2_timeout,
                delayed_ack: cfg.delayed_ack,
            },
            ts: Timestamps::new(cfg.timestamps, 0),
            seg_tsecr: None,
            challenge_pending: false,
            keepalive: None,
            ka_probes: 0,
            last_rcv: Instant::ZERO,
            linger: None,
            user_timeout: None,
            unacked_since: None,
            quickack: false,
            quickacks_left: cfg.initial_quickacks,
            connect_deadline: None,
            rec: recovery::Recovery::new(cfg, iss),
            persist_since: None,
            tos: 0,
            snd_up: None,
            rcv_up: None,
            rcvq: RcvSpace {
                time: Instant::ZERO,
                read: 0,
                // Linux: the first round expects no more than the initial window.
                space: initial_buffer(cfg.recv_buffer_initial, rcv_mss)
                    .min(cfg.recv_buffer)
                    .min(10 * usize::from(rcv_mss)),
            },
            bytes_read: 0,
            mem_level: MemLevel::Normal,
            persist_probes: 0,
            dropped_for_memory: 0,
            synack_retries: cfg.synack_retries,
            unreachable_fails_connect: cfg.unreachable_fails_connect,
        }
    }

    /// An active open (RFC 9293 §3.10.1, "OPEN call, CLOSED state"): SYN-SENT, SYN queued.
    pub(crate) fn connect(
        cfg: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        mtu: usize,
    ) -> Tcb {
        let mut tcb = Tcb::new(cfg, local, remote, iss, mtu, false);
        tcb.state = State::SynSent;
        tcb
    }

    /// A passive open from a SYN that reached a listener (RFC 9293 §3.10.7.2):
    /// SYN-RECEIVED, SYN-ACK queued.
    pub(crate) fn accept_syn(
        cfg: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        mtu: usize,
        syn: &Segment<'_>,
    ) -> Tcb {
        let mut tcb = Tcb::new(cfg, local, remote, iss, mtu, true);
        tcb.state = State::SynReceived;
        tcb.irs = syn.seq;
        tcb.rcv_nxt = syn.seq + 1u32;
        tcb.rcv_adv = tcb.rcv_nxt;
        tcb.take_syn_options(syn);
        tcb.snd_wnd = u32::from(syn.window);
        tcb.max_snd_wnd = tcb.snd_wnd;
        tcb.snd_wl1 = syn.seq;
        debug!(parent: &tcb.span, irs = %tcb.irs, iss = %tcb.iss, "SYN received");
        tcb
    }

    /// A passive open rebuilt from a valid SYN cookie (tcp/syncookie.rs):
    /// `syn` is the SYN as the cookie remembers it, and our SYN-ACK, with
    /// window `synack_window`, has gone out already. The ACK that carried the
    /// cookie is handed to [`on_segment`](Tcb::on_segment) next.
    pub(crate) fn from_cookie(
        cfg: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        mtu: usize,
        syn: &Segment<'_>,
    ) -> Tcb {
        let mut tcb = Tcb::accept_syn(cfg, local, remote, iss, mtu, syn);
        tcb.snd_nxt = iss + 1u32;
        tcb.snd_max = tcb.snd_nxt;
        tcb.rcv_adv = tcb.rcv_nxt + u32::from(syn_window(cfg, mtu));
        debug!(parent: &tcb.span, "SYN cookie valid");
        tcb
    }

    /// Finishes creating a connection at `now`: the timestamp clock offset
    /// (RFC 7323 §5.4, from the stack secret) and, for an active open, the
    /// connect timeout.
    pub(crate) fn start(&mut self, now: Instant, cfg: &Config, ts_offset: u32) {
        self.ts.start(now, ts_offset);
        self.last_rcv = now;
        self.rcvq.time = now;
        let limit = match self.state {
            State::SynSent => cfg.connect_timeout,
            State::SynReceived => cfg.syn_received_timeout,
            _ => None,
        };
        if limit.is_some() {
            self.connect_deadline = limit.map(|t| now + t);
            self.set_timer(Timer::Keepalive, self.connect_deadline);
        }
    }

    /// Whether a SYN may open a new connection on this TIME-WAIT pair (RFC 6191
    /// §2): with timestamps on both, when its TSval is newer than TS.Recent
    /// (whatever its sequence number); otherwise when its sequence number is
    /// beyond RCV.NXT (RFC 9293 §3.10.7.4).
    pub(crate) fn syn_may_reuse(&self, syn: &Segment<'_>) -> bool {
        match syn.timestamp {
            Some((tsval, _)) if self.ts.on => (tsval.wrapping_sub(self.ts.recent) as i32) > 0,
            _ => syn.seq.gt(self.rcv_nxt),
        }
    }

    /// Whether a new connection from our side may take this TIME-WAIT
    /// connection's 4-tuple (Linux's `tcp_tw_reuse`, the active side of RFC
    /// 6191): only with timestamps, whose per-tuple clock makes every
    /// segment of the new connection newer than the old one's (PAWS, RFC 7323
    /// §5), and only when the peer's last timestamp is a second old, so a
    /// peer still in LAST-ACK has had time to retransmit its FIN.
    pub(crate) fn tw_reusable(&self, now: Instant) -> bool {
        self.state == State::TimeWait
            && self.ts.on
            && now.saturating_duration_since(self.ts.recent_age())
                >= std::time::Duration::from_secs(1)
    }

    /// Marks everything written so far as urgent (RFC 9293 §3.8.5): SND.UP.
    pub(crate) fn mark_urgent(&mut self) {
        self.snd_up = Some(self.data_end());
    }

    /// Bytes from the read position up to the end of the peer's urgent data
    /// (RCV.UP), if urgent data is pending.
    pub(crate) fn urgent_mark(&self) -> Option<usize> {
        let up = self.rcv_up?;
        let read = self.rcv_nxt - (self.rcv_buf.readable() as u32 + u32::from(self.fin_received));
        up.gt(read).then(|| (up - read) as usize)
    }

    /// The engine's rate limit let an owed challenge ACK through (RFC 5961 §7).
    pub(crate) fn send_challenge_ack(&mut self) {
        self.ack_now = true;
    }

    /// Sets (or clears) the connect timeout of a connection attempt.
    pub(crate) fn set_connect_deadline(&mut self, at: Option<Instant>) {
        self.connect_deadline = at;
        self.set_timer(Timer::Keepalive, at);
    }

    /// The retransmission deadline from `now`: the backed-off RTO, cut short by
    /// the user timeout (as Linux's `tcp_clamp_rto_to_user_timeout`).
    fn rto_deadline(&self, now: Instant) -> Option<Instant> {
        let rto = now + self.rtt.backed_off(self.backoff);
        match (self.user_timeout, self.unacked_since) {
            (Some(ut), Some(since)) => Some(rto.min((since + ut).max(now))),
            _ => Some(rto),
        }
    }

    /// Options of the peer's SYN: MSS (RFC 9293 §3.7.1) and window scale (RFC 7323 §2.2).
    fn take_syn_options(&mut self, syn: &Segment<'_>) {
        // RFC 7323 §3.2: timestamps only if both SYNs carry the option.
        self.ts.on_syn(self.last_rcv, syn.timestamp, syn.seq + 1u32);
        // A peer's MSS below 64 is taken as 64 (Linux: tcp_min_snd_mss), but
        // never past what our own interface carries.
        let peer_mss = usize::from(syn.mss.unwrap_or(536)).max(64);
        self.snd_mss = peer_mss.min(usize::from(self.rcv_mss));
        if self.ts.on {
            // RFC 7323 §3.2 / RFC 9293 §3.7.1: the option's 12 bytes come out of
            // every segment, so the effective send MSS shrinks by as much.
            self.snd_mss = self.snd_mss.saturating_sub(timestamps::OPTION_LEN).max(1);
        }
        self.cc.set_mss(self.snd_mss);
        // RFC 2018 §2: SACK is used only if both SYNs carried SACK-permitted.
        self.rec.sack_on = self.rec.sack_ok && syn.sack_permitted;
        match syn.window_scale {
            // RFC 7323 §2.3: a shift above 14 is taken as 14 (smoltcp already clamps).
            Some(shift) if self.wscale_ok => {
                self.wscale_on = true;
                self.snd_wscale = shift.min(14);
            }
            _ => {
                // Scaling is on only if both sides offered it.
                self.wscale_on = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    fn set_timer(&mut self, timer: Timer, at: Option<Instant>) {
        if self.timers[timer as usize] != at {
            self.timers[timer as usize] = at;
            self.timers_dirty |= 1 << timer as u8;
        }
    }

    fn timer_armed(&self, timer: Timer) -> bool {
        self.timers[timer as usize].is_some()
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            debug!(parent: &self.span, from = ?self.state, to = ?state, "state");
            self.state = state;
            if matches!(state, State::FinWait2 | State::TimeWait | State::Closed) {
                // Nothing more will be written (and in TIME-WAIT or CLOSED,
                // nothing more received): empty buffers go at once.
                self.release_empty_buffers();
            }
        }
    }

    /// The end of the data the application has written: where a FIN goes.
    fn data_end(&self) -> Seq {
        self.snd_buf_seq + self.snd_buf.len()
    }

    fn flight(&self) -> usize {
        (self.snd_max - self.snd_una).max(0) as usize
    }

    /// Moves to CLOSED, dropping every timer.
    fn close_now(&mut self) {
        self.set_state(State::Closed);
        for t in Timer::ALL {
            self.set_timer(t, None);
        }
        self.events |= EV_READ | EV_WRITE;
    }

    /// Fails the connection with `error` (RFC 9293 §3.10.7.4: reset or timeout).
    fn fail(&mut self, error: Error) {
        debug!(parent: &self.span, ?error, "connection failed");
        self.error = Some(error);
        self.close_now();
    }

    // ----- SEGMENT ARRIVES (RFC 9293 §3.10.7) -----

    /// Processes one inbound segment for this connection.
    pub(crate) fn on_segment(&mut self, now: Instant, seg: &Segment<'_>) {
        self.info.segs_in += 1;
        // Anything from the peer proves it alive (RFC 1122 §4.2.3.6).
        self.last_rcv = now;
        self.ka_probes = 0;
        if !self.released {
            self.persist_probes = 0;
        }
        self.seg_tsecr = if self.ts.on {
            seg.timestamp.map(|(_, tsecr)| tsecr)
        } else {
            None
        };
        match self.state {
            State::Closed => {}
            State::SynSent => self.on_segment_syn_sent(now, seg),
            _ => self.on_segment_synchronized(now, seg),
        }
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &Segment<'_>) {
        // First, the ACK: it must acknowledge our SYN and nothing beyond.
        if let Some(ack) = seg.ack
            && (ack.le(self.iss) || ack.gt(self.snd_max))
        {
            if seg.ctl != Ctl::Rst {
                self.rst_pending = Some((ack, None));
            }
            return;
        }
        // Second, RST: with an acceptable ACK the peer refused us.
        if seg.ctl == Ctl::Rst {
            if seg.ack.is_some() {
                self.fail(Error::ConnectionRefused);
            }
            return;
        }
        // Fourth, SYN. With a FIN beside it: dropped, as FreeBSD does (its
        // default `drop_synfin`); no opening carries one.
        if seg.ctl != Ctl::Syn || seg.syn_fin {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1u32;
        // Nothing offered yet: the right edge starts at `rcv_nxt` (a stale
        // `rcv_adv` would compare across half the sequence space).
        self.rcv_adv = self.rcv_nxt;
        self.take_syn_options(seg);
        match seg.ack {
            Some(ack) => {
                debug!(parent: &self.span, irs = %self.irs, ack = %ack, "SYN-ACK received");
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = ack;
                // RFC 7323 §2.2: the window in a SYN is never scaled.
                self.snd_wnd = u32::from(seg.window);
                self.max_snd_wnd = self.snd_wnd;
                self.on_new_ack(now, ack);
                self.set_state(State::Established);
                self.ack_now = true;
                debug!(parent: &self.span, seq = %self.snd_nxt, ack = %self.rcv_nxt, "ACK of SYN-ACK queued");
                self.events |= EV_WRITE;
                self.after_establish();
                // RFC 9293 §3.10.7.3: "If there are other controls or text in
                // the segment, then continue processing at the sixth step":
                // text on a SYN-ACK is data like any other (within the window).
                self.take_syn_text(now, seg.payload);
            }
            None => {
                // Simultaneous open: answer with SYN-ACK, same ISS (RFC 9293 §3.5, Figure 8).
                self.set_state(State::SynReceived);
                self.snd_wnd = u32::from(seg.window);
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = seg.seq;
                self.snd_nxt = self.iss;
                // Karn (RFC 6298 §3): our SYN goes out again in the SYN-ACK,
                // and the ACK that completes the open may answer either.
                self.karn_resent(self.iss);
                // RFC 9293 §3.10.7.3: text on the SYN is queued until
                // ESTABLISHED (FreeBSD does; Linux drops it). At most a
                // window's worth: what does not fit is the peer's to resend.
                if !seg.payload.is_empty() {
                    let room = self.rcv_buf.window().min(self.rcv_buf.capacity());
                    let text = &seg.payload[..seg.payload.len().min(room)];
                    self.syn_text = Some(text.into());
                }
            }
        }
    }

    /// A FIN the application asked for before the handshake finished goes out now.
    fn after_establish(&mut self) {
        if self.rtt.srtt().is_none() {
            // RFC 6298 §5.7: the SYN (or SYN-ACK) was retransmitted, so the handshake
            // gave no RTT sample (Karn): data starts with an RTO of at least 3 s.
            self.rtt.syn_fallback();
        }
        self.backoff = 0;
        #[cfg(debug_assertions)]
        {
            self.backoff_since = None;
        }
        self.retries = 0;
        if self.fin_queued {
            self.set_state(State::FinWait1);
        }
        // The connect timeout is over; keepalive takes the timer.
        self.connect_deadline = None;
        self.arm_keepalive();
    }

    /// Text that came on the peer's SYN, at RCV.NXT now that the connection
    /// is established: stored as data, within the receive buffer.
    fn take_syn_text(&mut self, now: Instant, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        let room = self.rcv_buf.window();
        self.on_data(now, 0, &text[..text.len().min(room)], false);
    }

    /// The window we may accept data into: at least what we advertised.
    fn rcv_wnd(&self) -> u32 {
        let advertised = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
        if self.mem_level == MemLevel::High {
            return advertised.min(self.rcv_buf.window() as u32);
        }
        let free = self.rcv_buf.window() as u32;
        free.max(advertised).min(self.rcv_buf.capacity() as u32)
    }

    /// RFC 9293 §3.10.7.4: the synchronized states and SYN-RECEIVED.
    fn on_segment_synchronized(&mut self, now: Instant, seg: &Segment<'_>) {
        if self.ts.on && seg.ctl != Ctl::Rst {
            match seg.timestamp {
                // RFC 7323 §3.2: once negotiated, a non-RST segment without the
                // option SHOULD be dropped (never a reason to abort).
                None => {
                    trace!(parent: &self.span, "no timestamp: dropped");
                    return;
                }
                // RFC 7323 §5.3 R1: PAWS. An old duplicate is answered with an
                // ACK and dropped.
                Some((tsval, _)) if self.ts.paws_rejects(now, tsval) => {
                    debug!(parent: &self.span, tsval, recent = self.ts.recent, "PAWS: old duplicate dropped");
                    self.ack_now = true;
                    return;
                }
                Some(_) => {}
            }
        }
        let rcv_wnd = self.rcv_wnd();
        let seg_len = seg.len();
        // First: is the sequence number acceptable?
        let wnd_end = self.rcv_nxt + rcv_wnd;
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_range(self.rcv_nxt, wnd_end),
            // A bare FIN at RCV.NXT takes no buffer space: Linux accepts it
            // at a zero window (`tcp_data_queue`), where RFC 9293's table
            // would drop it. Dropped, it is acknowledged only once the
            // window opens and the peer resends it; a peer whose user
            // timeout is shorter than its RTO gives up first, and this end
            // waits in FIN-WAIT-2 or ESTABLISHED for a FIN that never
            // comes (the fuzz target `stack` found that).
            (1, 0) => seg.ctl == Ctl::Fin && seg.payload.is_empty() && seg.seq == self.rcv_nxt,
            (_, 0) => false,
            (_, _) => {
                seg.seq.in_range(self.rcv_nxt, wnd_end)
                    || (seg.seq + (seg_len - 1)).in_range(self.rcv_nxt, wnd_end)
            }
        };
        // With a zero window, a segment at RCV.NXT still carries a valid ACK
        // (RFC 9293 §3.10.7.4: "special allowance ... for valid ACKs").
        let zero_window_probe = !acceptable && rcv_wnd == 0 && seg.seq == self.rcv_nxt;
        if !acceptable && !zero_window_probe {
            if self.state == State::SynReceived
                && seg.ctl == Ctl::Syn
                && seg.seq == self.irs
                && !self.passive
                && seg.ack == Some(self.iss + 1u32)
            {
                // Simultaneous open (RFC 9293 §3.5, Figure 8 line 5): the peer's
                // SYN-ACK crossed ours. Its SYN is old but its ACK completes the
                // handshake; as Linux does, take it and acknowledge.
                self.snd_wnd = u32::from(seg.window); // RFC 7323 §2.2: a SYN's window is not scaled.
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = self.iss + 1u32;
                self.on_new_ack(now, self.iss + 1u32);
                debug!(parent: &self.span, "SYN-ACK of a simultaneous open received");
                self.set_state(State::Established);
                self.events |= EV_WRITE;
                self.after_establish();
                self.ack_now = true;
                return;
            }
            if (seg.seq + seg.payload.len()).le(self.rcv_nxt) {
                // RFC 2883 §4: a duplicate is reported in a D-SACK block.
                self.sack_duplicate(seg.seq, seg.payload.len());
            }
            if self.state == State::SynReceived && seg.ctl == Ctl::Syn && seg.seq == self.irs {
                // A retransmitted SYN: our SYN-ACK was lost; send it again.
                // Karn (RFC 6298 §3): the ACK that completes the handshake
                // may answer either SYN-ACK, so it gives no RTT sample.
                self.snd_nxt = self.iss;
                self.karn_resent(self.iss);
                return;
            }
            if seg.ctl != Ctl::Rst {
                self.ack_now = true;
            }
            if self.state == State::TimeWait && seg.ctl == Ctl::Fin {
                self.arm_time_wait(now);
            }
            return;
        }
        // RFC 7323 §4.3 (2), §5.3 R3: an acceptable segment may update TS.Recent.
        if self.ts.on
            && let Some((tsval, _)) = seg.timestamp
        {
            self.ts.update_recent(now, seg.seq, tsval);
        }

        // Second: RST (RFC 5961 §3.2: only an exact match resets; else challenge).
        if seg.ctl == Ctl::Rst {
            if seg.seq != self.rcv_nxt {
                self.challenge_pending = true;
                return;
            }
            match self.state {
                State::SynReceived if self.passive => {
                    // Back to LISTEN: for us, the embryonic connection just goes.
                    self.close_now();
                }
                State::SynReceived => self.fail(Error::ConnectionRefused),
                State::Closing | State::LastAck | State::TimeWait => self.close_now(),
                _ => self.fail(Error::ConnectionReset),
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4: challenge ACK).
        if seg.ctl == Ctl::Syn {
            if self.state == State::SynReceived && seg.seq == self.irs {
                // The peer's SYN again (with text, so it passed the window
                // check): our SYN-ACK goes out again, and Karn's rule
                // (RFC 6298 §3) takes the timing off it, as on the path
                // above. Found by the `api` fuzz target.
                self.snd_nxt = self.iss;
                self.karn_resent(self.iss);
            } else {
                self.challenge_pending = true;
            }
            return;
        }

        // Fifth: the ACK field.
        let Some(ack) = seg.ack else {
            return;
        };
        if self.state == State::SynReceived {
            if ack.gt(self.snd_una) && ack.le(self.snd_max) {
                self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = ack;
                self.on_new_ack(now, ack);
                debug!(parent: &self.span, ack = %ack, "ACK of SYN-ACK received");
                self.set_state(State::Established);
                self.events |= EV_WRITE;
                self.after_establish();
                if let Some(text) = self.syn_text.take() {
                    self.take_syn_text(now, &text);
                }
            } else {
                self.rst_pending = Some((ack, None));
                return;
            }
        } else if !self.on_ack(now, seg, ack) {
            return;
        }

        // Our FIN acknowledged?
        let fin_acked = self.fin_queued && self.snd_una == self.data_end() + 1u32;
        match self.state {
            State::FinWait1 if fin_acked => {
                self.set_state(State::FinWait2);
                if self.released {
                    self.set_timer(Timer::Linger, Some(now + self.cfg.fin_wait2_timeout));
                }
            }
            State::Closing if fin_acked => {
                self.set_state(State::TimeWait);
                self.arm_time_wait(now);
            }
            State::LastAck if fin_acked => {
                self.close_now();
                return;
            }
            _ => {}
        }

        // Sixth: the URG bit (RFC 9293 §3.10.7.4, §3.8.5): RCV.UP moves to the
        // furthest urgent pointer seen, and the application is told (as urgent
        // data stays in the stream, like SO_OOBINLINE).
        if let Some(up) = seg.urgent
            && matches!(
                self.state,
                State::Established | State::FinWait1 | State::FinWait2
            )
        {
            let mark = seg.seq + u32::from(up);
            if self.rcv_up.is_none_or(|r| mark.gt(r)) {
                self.rcv_up = Some(mark);
                self.events |= EV_READ;
            }
        }

        // Seventh: segment text.
        let mut payload = seg.payload;
        let mut seq = seg.seq;
        let mut fin = seg.ctl == Ctl::Fin;
        if zero_window_probe {
            if !payload.is_empty() {
                self.ack_now = true;
            }
            payload = &[];
            fin = false;
        }
        // Trim what we already have from the front.
        let already = self.rcv_nxt - seq;
        let below = already > 0 && !payload.is_empty();
        if already > 0 {
            let cut = (already as usize).min(payload.len());
            self.sack_duplicate(seq, cut);
            payload = &payload[cut..];
            seq = seq + cut;
        }
        if !payload.is_empty() {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.released {
                        // Nobody will ever read this: reset, as Linux does for orphans.
                        self.rst_pending = Some((self.snd_nxt, Some(self.rcv_nxt)));
                        self.close_now();
                        return;
                    }
                    let offset = (seq - self.rcv_nxt).max(0) as usize;
                    let room = self.rcv_buf.window().min(self.rcv_wnd() as usize);
                    let fits = room.saturating_sub(offset);
                    if payload.len() > fits {
                        if self.mem_level == MemLevel::High {
                            self.dropped_for_memory += (payload.len() - fits) as u64;
                        }
                        // Beyond the window: cut, and the FIN with it.
                        payload = &payload[..fits];
                        fin = false;
                    }
                    self.on_data(now, offset, payload, !below);
                }
                // The peer already sent its FIN: data after it is a protocol error; ignore.
                _ => {}
            }
        }

        // Eighth: FIN.
        if fin {
            let fin_seq = seq + payload.len();
            if fin_seq.ge(self.rcv_nxt) && !self.fin_received {
                self.rcv_fin = Some(fin_seq);
            }
        }
        self.maybe_consume_fin(now);
        if fin && !self.fin_received && self.rcv_fin.is_some_and(|f| f.gt(self.rcv_nxt)) {
            // A FIN beyond a hole is an out-of-order segment like any other:
            // an immediate duplicate ACK (RFC 5681 §4.2, SHOULD; RFC 9293
            // §3.10.7.4 keeps it for later).
            self.ack_now = true;
        }
        if self.state == State::TimeWait && seg.ctl == Ctl::Fin {
            // A retransmitted FIN: acknowledge and restart the 2·MSL wait.
            self.ack_now = true;
            self.arm_time_wait(now);
        }
    }

    /// The ACK processing of RFC 9293 §3.10.7.4 "fifth" for the synchronized
    /// states. Returns false when the segment must be dropped.
    fn on_ack(&mut self, now: Instant, seg: &Segment<'_>, ack: Seq) -> bool {
        if ack.gt(self.snd_max) {
            // Acknowledges something not yet sent: ACK and drop.
            self.ack_now = true;
            return false;
        }
        // RFC 5961 §5.2: an ACK too far in the past gets a challenge ACK.
        if ack.lt(self.snd_una - self.max_snd_wnd.max(1)) {
            self.challenge_pending = true;
            return false;
        }
        let window = u32::from(seg.window) << self.snd_wscale;
        let old_wnd = self.snd_wnd;
        let (delivered_before, lost_before) = self.delivered_and_lost();
        // SACK blocks first (RFC 6675 §5): they tell what the ACK delivered.
        let newly_sacked = self.on_sack_blocks(now, ack, &seg.sack_blocks);
        let old_una = self.snd_una;
        let mut dup = false;
        if ack.gt(self.snd_una) {
            self.on_new_ack(now, ack);
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && seg.ctl == Ctl::None
            && (window == old_wnd || newly_sacked > 0)
            && self.snd_una != self.snd_max
        {
            dup = true;
            self.on_dup_ack(now);
        }
        // Window update (RFC 9293 §3.10.7.4: only from a newer segment).
        if self.snd_wl1.lt(seg.seq) || (self.snd_wl1 == seg.seq && self.snd_wl2.le(ack)) {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if window > old_wnd {
                self.events |= EV_WRITE;
            }
        }
        self.update_persist(now);
        // RACK (RFC 8985 §6.2) and the loss-detection timer.
        let delivered_any = self.snd_una.gt(old_una) || newly_sacked > 0;
        self.after_ack_recovery(now, ack, old_una, dup, delivered_any);
        // Proportional Rate Reduction (RFC 6937) of what may go out now.
        let (delivered, lost) = self.delivered_and_lost();
        let safe = self.snd_una.gt(old_una) && lost == lost_before;
        let delivered = usize::try_from(delivered - delivered_before).unwrap_or(usize::MAX);
        self.prr_on_ack(delivered, safe);
        true
    }

    /// SND.UNA advances to `ack`: free acknowledged data, sample the RTT, and
    /// restart the retransmission timer (RFC 6298 §5.3).
    fn on_new_ack(&mut self, now: Instant, ack: Seq) {
        let acked = (ack - self.snd_una) as usize;
        // Drop acknowledged bytes from the send buffer (the SYN and FIN are not in it).
        let data_acked = (ack.min(self.data_end()) - self.snd_buf_seq).max(0) as usize;
        if data_acked > 0 {
            self.snd_buf.consume(data_acked);
            self.snd_buf_seq = self.snd_buf_seq + data_acked;
            self.info.bytes_acked += data_acked as u64;
            self.events |= EV_WRITE;
        }
        self.snd_una = ack;
        if self.snd_up.is_some_and(|up| up.le(ack)) {
            self.snd_up = None;
        }
        if self.snd_nxt.lt(ack) {
            self.snd_nxt = ack;
        }
        // RTT samples (RFC 6298 §2–§3). Linux's order (`tcp_ack_update_rtt`):
        // first the send time of the oldest segment this ACK delivers, if it
        // was sent once (Karn), on the stack's own clock, so a fast path's
        // RTT reads in microseconds; then the one timed segment (the SYN, or
        // a connection without SACK; Karn's algorithm, RFC 6298 §3); last
        // the TSecr (RFC 7323 §4: every ACK of new data gives one, and a
        // retransmission's echo is its own TSval, so Karn's ambiguity does
        // not arise), whose millisecond clock reads a fast path as 0 or 1 ms.
        // Any sample ends the backoff (RFC 6298 §5.5 with §2.3, RFC 9293
        // §3.8.1: the backed-off RTO stays until a valid sample recomputes it).
        let ts_sample = self
            .seg_tsecr
            .take()
            .and_then(|tsecr| self.ts.rtt_sample(now, tsecr));
        let timed = self
            .rtt_timing
            .filter(|&(end, _)| ack.ge(end))
            .map(|(_, sent)| now - sent);
        let rtt_sample = self.segment_rtt().or(timed).or(ts_sample);
        #[cfg(debug_assertions)]
        self.debug_check_sample(now, timed, rtt_sample);
        if let Some(r) = rtt_sample {
            self.rtt.sample(r);
            self.rtt_timing = None;
            self.backoff = 0;
            #[cfg(debug_assertions)]
            {
                self.backoff_since = None;
            }
        }
        self.retries = 0;
        // Congestion control and loss recovery (RFC 5681, RFC 6582, RFC 6675).
        self.on_ack_recovery(now, ack, acked, data_acked, rtt_sample);
        if data_acked > 0 {
            self.send_space_adjust();
            self.arm_reclaim(now);
        }
        self.dup_acks = 0;
        // Progress: the user timeout counts again from here.
        self.unacked_since = (self.snd_una != self.snd_max).then_some(now);
        if self.snd_una == self.snd_max {
            self.set_timer(Timer::Retransmit, None);
        } else {
            self.set_timer(Timer::Retransmit, self.rto_deadline(now));
        }
    }

    /// Stores received data `offset` bytes past RCV.NXT and decides when to ACK
    /// (RFC 1122 §4.2.3.2: at least every second full segment, within the delay;
    /// at once for out-of-order data and for data that fills a gap, RFC 5681 §4.2).
    /// `dsack_held`: whether a duplicate of data held out of order is to be
    /// reported (not when a lower duplicate, below RCV.NXT, already was).
    fn on_data(&mut self, now: Instant, offset: usize, payload: &[u8], dsack_held: bool) {
        let had_gaps = self.rcv_buf.has_gaps();
        if dsack_held {
            self.sack_before_insert(offset, payload.len());
        }
        let advanced = self.rcv_buf.insert(offset, payload);
        self.sack_after_insert(offset, payload.len());
        if advanced > 0 {
            self.rcv_nxt = self.rcv_nxt + advanced;
            self.info.bytes_received += advanced as u64;
            self.events |= EV_READ;
        }
        if offset > 0 || had_gaps || payload.is_empty() {
            self.ack_now = true;
        } else if self.quickack || self.quickacks_left > 0 {
            // Quick ACK: per socket, or for the first segments of a connection
            // so the peer's slow start is not held up by delayed ACKs (Linux).
            self.quickacks_left = self.quickacks_left.saturating_sub(1);
            self.ack_now = true;
        } else {
            self.segs_since_ack += 1;
            if self.segs_since_ack >= 2 {
                self.ack_now = true;
            } else if !self.timer_armed(Timer::DelayedAck) {
                self.set_timer(Timer::DelayedAck, Some(now + self.cfg.delayed_ack));
            }
        }
    }

    /// Consumes the peer's FIN once every byte before it has arrived (RFC 9293 §3.10.7.4 "eighth").
    fn maybe_consume_fin(&mut self, now: Instant) {
        let Some(fin_seq) = self.rcv_fin else {
            return;
        };
        if fin_seq != self.rcv_nxt {
            return;
        }
        self.rcv_fin = None;
        self.fin_received = true;
        self.rcv_nxt = self.rcv_nxt + 1u32;
        self.ack_now = true;
        self.events |= EV_READ;
        debug!(parent: &self.span, "FIN received");
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.snd_una == self.data_end() + 1u32 {
                    self.set_state(State::TimeWait);
                    self.arm_time_wait(now);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => {
                self.set_state(State::TimeWait);
                self.arm_time_wait(now);
            }
            _ => {}
        }
    }

    fn arm_time_wait(&mut self, now: Instant) {
        for t in [
            Timer::Retransmit,
            Timer::Persist,
            Timer::DelayedAck,
            Timer::Keepalive,
        ] {
            self.set_timer(t, None);
        }
        self.set_timer(Timer::Linger, Some(now + self.cfg.time_wait));
    }

    /// Arms or stops the persist timer (RFC 9293 §3.8.6.1): it runs while the
    /// peer's window is zero, data waits, and nothing is in flight to bring an ACK.
    fn update_persist(&mut self, now: Instant) {
        let waiting = self.snd_nxt.lt(self.data_end()) || self.fin_waiting();
        let stalled = self.state.is_synchronized()
            && self.snd_wnd == 0
            && waiting
            && self.snd_una == self.snd_max;
        if !stalled {
            if self.timer_armed(Timer::Persist) {
                // Probing is over (the window opened): its backoff must not carry
                // over to the RTO of the data that follows (RFC 6298 §5.5 backs off
                // only on retransmission timeouts; Linux resets it likewise).
                self.backoff = 0;
                #[cfg(debug_assertions)]
                {
                    self.backoff_since = None;
                }
            }
            self.set_timer(Timer::Persist, None);
            self.persist_since = None;
            self.persist_probes = 0;
        } else if !self.timer_armed(Timer::Persist) {
            let at = now + self.rtt.backed_off(self.backoff);
            self.set_timer(Timer::Persist, Some(at));
            self.persist_since.get_or_insert(now);
        }
    }

    fn fin_waiting(&self) -> bool {
        self.fin_queued && self.snd_nxt == self.data_end()
    }

    // ----- Timeouts (RFC 9293 §3.10.8) -----

    /// Handles a timer of this connection that fired.
    pub(crate) fn on_timer(&mut self, now: Instant, timer: Timer) {
        self.timers[timer as usize] = None;
        match timer {
            Timer::Retransmit => self.on_retransmit_timeout(now),
            Timer::Persist => {
                // The user timeout also bounds a zero window that keeps our data
                // back, even if the peer answers every probe (as Linux since
                // 5.11); without it the window may stay closed for ever (RFC 1122
                // §4.2.2.17).
                if let (Some(ut), Some(since)) = (self.user_timeout, self.persist_since)
                    && now - since >= ut
                {
                    debug!(parent: &self.span, "user timeout in zero-window probing");
                    self.fail(Error::TimedOut);
                    return;
                }
                // Probes nobody answers end the connection after the
                // retransmission budget (RFC 9293 §3.8.6.1 lets a sender give
                // up; Linux counts them against `tcp_retries2`); an orphan's
                // probes are bounded whether answered or not (Linux's
                // `tcp_orphan_retries`), so nothing holds memory for ever.
                let limit = if self.released {
                    self.cfg.orphan_retries
                } else {
                    self.cfg.data_retries
                };
                if self.persist_probes >= limit {
                    debug!(parent: &self.span, probes = self.persist_probes, "zero-window probing gave up");
                    self.fail(self.soft_error.unwrap_or(Error::TimedOut));
                    return;
                }
                self.persist_probes += 1;
                self.probe_pending = true;
                self.backoff = (self.backoff + 1).min(16);
                self.update_persist(now);
            }
            Timer::DelayedAck => {
                if self.segs_since_ack > 0 {
                    self.ack_now = true;
                }
            }
            Timer::Linger => {
                // TIME-WAIT over (RFC 9293 §3.10.8), or an orphan's FIN-WAIT-2 timed out.
                self.close_now();
            }
            Timer::Keepalive => self.on_keepalive_timer(now),
            // Pacing: the next segment may go; the engine polls the output.
            Timer::Pacing => {}
            Timer::Reclaim => self.release_empty_buffers(),
        }
    }

    /// Arms the keepalive timer for the idle time from the last segment received,
    /// or stops it (RFC 1122 §4.2.3.6).
    pub(crate) fn arm_keepalive(&mut self) {
        let at = match self.keepalive {
            Some(ka) if self.state.is_synchronized() && self.state != State::TimeWait => {
                Some(self.last_rcv + ka.idle)
            }
            _ => None,
        };
        if self.state.is_synchronized() {
            self.set_timer(Timer::Keepalive, at);
        }
    }

    /// The keepalive timer fired, or the connect timeout before the handshake.
    fn on_keepalive_timer(&mut self, now: Instant) {
        if !self.state.is_synchronized() {
            if self.connect_deadline.is_some_and(|d| now >= d) {
                debug!(parent: &self.span, "connect timeout");
                self.fail(self.soft_error.unwrap_or(Error::TimedOut));
            }
            return;
        }
        let Some(ka) = self.keepalive else {
            return;
        };
        if !matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait2
        ) {
            return;
        }
        if self.ka_probes == 0 && now < self.last_rcv + ka.idle {
            // Something arrived since the timer was armed: idle counts from there.
            self.set_timer(Timer::Keepalive, Some(self.last_rcv + ka.idle));
            return;
        }
        if self.snd_una != self.snd_max || self.snd_nxt.lt(self.data_end()) {
            // Data is in flight or queued: the retransmission timer (and the user
            // timeout) watch the peer; no probe needed (as Linux).
            self.ka_probes = 0;
            self.set_timer(Timer::Keepalive, Some(now + ka.idle));
            return;
        }
        // With a user timeout, it replaces the probe count: the peer is given up
        // once it has been silent that long and a probe went unanswered (Linux).
        let gone = match self.user_timeout {
            Some(ut) => self.ka_probes > 0 && now - self.last_rcv >= ut,
            None => self.ka_probes >= ka.count,
        };
        if gone {
            // RFC 1122 §4.2.3.6: the peer is gone. Linux resets and reports ETIMEDOUT.
            debug!(parent: &self.span, probes = self.ka_probes, "keepalive: peer dead");
            self.abort();
            self.error = Some(self.soft_error.unwrap_or(Error::TimedOut));
            return;
        }
        // RFC 1122 §4.2.3.6: the probe is SEG.SEQ = SND.NXT-1 with no data, which
        // the peer must answer with an ACK (its sequence number is old).
        self.ka_probes += 1;
        self.probe_pending = true;
        trace!(parent: &self.span, probe = self.ka_probes, "keepalive probe");
        self.set_timer(Timer::Keepalive, Some(now + ka.interval));
    }

    /// RFC 6298 §5.4–5.7: retransmit the earliest unacknowledged segment, back
    /// off, and give up after the configured number of tries.
    fn on_retransmit_timeout(&mut self, now: Instant) {
        let limit = match self.state {
            // RFC 1122 §4.2.3.5: R2 for a SYN at least 3 minutes; a passive
            // open's SYN-ACK is bounded separately (Linux's tcp_synack_retries).
            State::SynReceived if self.passive => self.synack_retries,
            State::SynSent | State::SynReceived => self.cfg.syn_retries,
            _ => self.cfg.data_retries,
        };
        if self.snd_una == self.snd_max {
            return;
        }
        // RFC 5482 / RFC 9293 §3.8.3: the user timeout ends the connection when
        // sent data stayed unacknowledged that long, whatever the retries left.
        if let (Some(ut), Some(since)) = (self.user_timeout, self.unacked_since)
            && now - since >= ut
        {
            debug!(parent: &self.span, "user timeout");
            self.info.timeouts += 1;
            self.fail(self.soft_error.unwrap_or(Error::TimedOut));
            return;
        }
        // The timer may stand for a tail loss probe or RACK's reordering
        // timer (RFC 8985 §6.2, §7) rather than the RTO.
        if self.on_loss_timer(now) {
            return;
        }
        self.retries += 1;
        self.info.timeouts += 1;
        if self.retries > limit {
            debug!(parent: &self.span, retries = self.retries, "giving up");
            self.fail(self.soft_error.unwrap_or(Error::TimedOut));
            return;
        }
        self.backoff = (self.backoff + 1).min(16);
        #[cfg(debug_assertions)]
        {
            self.backoff_since.get_or_insert(now);
        }
        // RFC 5681 §3.1 eq. 4 and Karn's rule (no RTT sample from a retransmission).
        if self.state.is_synchronized() {
            let first = self.rto_is_first();
            self.cc.on_rto(now, self.flight(), first);
            self.on_rto_recovery(now);
        }
        self.recover = None;
        self.dup_acks = 0;
        self.rtt_timing = None;
        self.ts.on_rto(now);
        self.snd_nxt = self.snd_una;
        debug!(parent: &self.span, snd_una = %self.snd_una, backoff = self.backoff, "retransmission timeout");
        self.set_timer(Timer::Retransmit, self.rto_deadline(now));
    }

    // ----- Output -----

    /// The window to advertise, scaled, never shrinking the right edge already offered.
    fn advertise_window(&mut self, syn: bool) -> u16 {
        // Above the stack's memory limit the right edge stays where it was
        // promised (RFC 7323 §2.4: never shrunk, but not moved on either).
        let free = match self.mem_level {
            MemLevel::High => 0,
            _ => self.rcv_buf.window() as u32,
        };
        let mut right = self.rcv_nxt + free;
        if right.lt(self.rcv_adv) {
            right = self.rcv_adv;
        }
        let wnd = (right - self.rcv_nxt).max(0) as u32;
        let (field, shifted) = if syn {
            // RFC 7323 §2.2: windows in SYN segments are not scaled.
            let f = wnd.min(65535);
            (f, f)
        } else {
            let f = (wnd >> self.rcv_wscale).min(65535);
            (f, f << self.rcv_wscale)
        };
        let adv = self.rcv_nxt + shifted;
        if adv.gt(self.rcv_adv) {
            self.rcv_adv = adv;
        }
        field as u16
    }

    /// Whether a segment with an ACK is owed right now.
    pub(crate) fn wants_output(&self) -> bool {
        self.ack_now
            || self.rst_pending.is_some()
            || self.probe_pending
            || self.rtx_pending
            || self.recovery_wants_output()
            || match self.state {
                State::SynSent | State::SynReceived => self.snd_nxt == self.iss,
                State::Established
                | State::CloseWait
                | State::FinWait1
                | State::LastAck
                | State::Closing => self.snd_nxt.lt(self.data_end()) || self.fin_waiting(),
                _ => false,
            }
    }

    /// The next segment to send, if any. Called until it returns `None`.
    pub(crate) fn poll_output(&mut self, now: Instant) -> Option<Outbound> {
        if let Some((seq, ack)) = self.rst_pending.take() {
            return Some(Outbound {
                seq,
                ack,
                ctl: Ctl::Rst,
                window: 0,
                mss: None,
                window_scale: None,
                payload_offset: 0,
                payload_len: 0,
                psh: false,
                timestamp: None,
                sack_permitted: false,
                sack_blocks: [None; crate::tcp::sack::MAX_BLOCKS],
                urgent: None,
            });
        }
        let out = match self.state {
            State::Closed | State::TimeWait => {
                if self.ack_now && self.state == State::TimeWait {
                    Some(self.pure_ack())
                } else {
                    self.ack_now = false;
                    None
                }
            }
            State::SynSent | State::SynReceived => self.output_syn(now),
            _ => self.output_data(now),
        };
        let mut out = out;
        if let Some(out) = &mut out {
            self.finish_output(now, out);
        }
        out
    }

    /// An ACK this connection owes at once (the second full segment, an
    /// out-of-order segment, a quick ACK), taken before the engine processes
    /// the next segment of a batch. RFC 1122 §4.2.3.2 and RFC 5681 §4.2: an
    /// ACK for at least every second full-sized segment and an immediate
    /// duplicate ACK for each out-of-order one, however many segments the
    /// driver hands over between two transmissions; one ACK per batch would
    /// be a stretch ACK (RFC 2525 §2.13), starving the peer's ACK clock, its
    /// duplicate-ACK count and HyStart++'s per-ACK RTT samples (RFC 9406
    /// §4.2).
    pub(crate) fn take_owed_ack(&mut self, now: Instant) -> Option<Outbound> {
        if !self.owes_ack() {
            return None;
        }
        let mut out = self.pure_ack();
        self.finish_output(now, &mut out);
        Some(out)
    }

    /// Whether an ACK is due at once (see [`take_owed_ack`](Tcb::take_owed_ack)).
    pub(crate) fn owes_ack(&self) -> bool {
        self.ack_now && self.rst_pending.is_none() && self.state.is_synchronized()
    }

    /// Whether received data waits past a gap (out of order).
    pub(crate) fn rcv_has_gaps(&self) -> bool {
        self.rcv_buf.has_gaps()
    }

    /// What every outgoing segment gets: options, and the ACK bookkeeping.
    fn finish_output(&mut self, now: Instant, out: &mut Outbound) {
        // RFC 7323 §3.2: once negotiated (or offered, in a SYN), every
        // non-RST segment carries the option, echoing TS.Recent (§4.3 (3)).
        if self.ts.on && out.ctl != Ctl::Rst {
            out.timestamp = Some((self.ts.tsval(now), self.ts.recent));
        }
        if let Some(ack) = out.ack {
            self.ts.last_ack_sent = ack;
        }
        self.add_sack_blocks(out);
        // RFC 9293 §3.8.5: segments before SND.UP carry URG and the pointer
        // to the octet after the urgent data (MUST-62).
        if let Some(up) = self.snd_up
            && matches!(out.ctl, Ctl::None | Ctl::Fin)
            && up.gt(out.seq)
        {
            out.urgent = Some((up - out.seq).min(65535) as u16);
        }
        self.info.segs_out += 1;
        if out.ack.is_some() {
            // Any segment with an ACK acknowledges everything so far.
            self.ack_now = false;
            self.segs_since_ack = 0;
            self.set_timer(Timer::DelayedAck, None);
        }
    }

    fn output_syn(&mut self, now: Instant) -> Option<Outbound> {
        if self.snd_nxt != self.iss {
            // The SYN is out; a pure ACK is all we may say (e.g. to a bad segment).
            if self.ack_now && self.state == State::SynReceived {
                return Some(self.pure_ack());
            }
            self.ack_now = false;
            return None;
        }
        let syn_ack = self.state == State::SynReceived;
        let window = self.advertise_window(true);
        // RFC 7323 §1.3: offer scaling in a SYN when configured; in a SYN-ACK only
        // when it was negotiated (the peer offered it too).
        let wscale = if syn_ack {
            self.wscale_on.then_some(self.rcv_wscale)
        } else {
            self.wscale_ok.then_some(self.rcv_wscale)
        };
        // RFC 2018 §2: likewise SACK-permitted.
        let syn_ack_sack = if syn_ack {
            self.rec.sack_on
        } else {
            self.rec.sack_ok
        };
        if syn_ack {
            debug!(parent: &self.span, iss = %self.iss, ack = %self.rcv_nxt, "SYN-ACK sent");
        } else {
            debug!(parent: &self.span, iss = %self.iss, "SYN sent");
        }
        self.snd_nxt = self.iss + 1u32;
        // Karn (RFC 6298 §3): only the first sending of the SYN is timed, not
        // one resent on a timeout or for the peer's retransmitted SYN.
        let first = self.snd_max.lt(self.snd_nxt);
        if first {
            self.snd_max = self.snd_nxt;
        }
        if first && self.retries == 0 && self.rtt_timing.is_none() {
            self.rtt_timing = Some((self.snd_nxt, now));
            #[cfg(debug_assertions)]
            {
                self.timed_resent = false;
            }
        }
        #[cfg(debug_assertions)]
        if !first && self.rtt_timing.is_some() {
            self.timed_resent = true;
        }
        self.unacked_since.get_or_insert(now);
        if !self.timer_armed(Timer::Retransmit) {
            self.set_timer(Timer::Retransmit, self.rto_deadline(now));
        }
        Some(Outbound {
            seq: self.iss,
            ack: syn_ack.then_some(self.rcv_nxt),
            ctl: Ctl::Syn,
            window,
            mss: Some(self.rcv_mss),
            window_scale: wscale,
            payload_offset: 0,
            payload_len: 0,
            psh: false,
            timestamp: None,
            sack_permitted: syn_ack_sack,
            sack_blocks: [None; crate::tcp::sack::MAX_BLOCKS],
            urgent: None,
        })
    }

    fn pure_ack(&mut self) -> Outbound {
        let window = self.advertise_window(false);
        Outbound {
            // SND.MAX, not SND.NXT: after a timeout SND.NXT falls back to SND.UNA
            // (go-back-N), below what the peer may already have received, and
            // an ACK it finds out of window is dropped unprocessed (RFC 9293
            // §3.10.7.4): two such peers would only trade duplicate ACKs. SND.MAX
            // is the SND.NXT of an implementation that never moves it back
            // (Linux's `tcp_acceptable_seq`). Found by the lossy-link test.
            seq: self.snd_max,
            ack: Some(self.rcv_nxt),
            ctl: Ctl::None,
            window,
            mss: None,
            window_scale: None,
            payload_offset: 0,
            payload_len: 0,
            psh: false,
            timestamp: None,
            sack_permitted: false,
            sack_blocks: [None; crate::tcp::sack::MAX_BLOCKS],
            urgent: None,
        }
    }

    /// A data segment of `len` bytes from `seq`, with a FIN if it reaches the end
    /// of a closed stream.
    fn data_segment(&mut self, seq: Seq, len: usize) -> Outbound {
        #[cfg(debug_assertions)]
        if seq.lt(self.snd_max) && self.rtt_timing.is_some_and(|(end, _)| seq.lt(end)) {
            self.timed_resent = true;
        }
        let data_end = self.data_end();
        let fin = self.fin_queued && seq + len == data_end;
        let window = self.advertise_window(false);
        Outbound {
            seq,
            ack: Some(self.rcv_nxt),
            ctl: if fin { Ctl::Fin } else { Ctl::None },
            window,
            mss: None,
            window_scale: None,
            payload_offset: (seq - self.snd_buf_seq) as usize,
            payload_len: len,
            psh: len > 0 && seq + len == data_end,
            timestamp: None,
            sack_permitted: false,
            sack_blocks: [None; crate::tcp::sack::MAX_BLOCKS],
            urgent: None,
        }
    }

    fn output_data(&mut self, now: Instant) -> Option<Outbound> {
        let data_end = self.data_end();
        let can_send_data = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );

        // A tail loss probe (RFC 8985 §7.3) goes out regardless of cwnd.
        if self.rec_tlp_pending()
            && can_send_data
            && let Some(out) = self.tlp_output(now)
        {
            return Some(out);
        }
        // SACK-based loss recovery (RFC 6675 §5) chooses what goes out.
        let sack_recovery = self.sack_recovery();
        if sack_recovery && can_send_data {
            if let Some(out) = self.sack_output(now) {
                return Some(out);
            }
            self.rtx_pending = false;
        }

        // A fast retransmission of the first unacknowledged segment, outside the window.
        // Only what was sent before: with nothing in flight there is nothing to
        // retransmit, and new data (or a new FIN) sent here would escape SND.MAX
        // and the retransmission timer (found by the lossy-link test: a lost
        // FIN was never sent again).
        if self.rtx_pending && can_send_data && self.snd_una.lt(self.snd_max) {
            self.rtx_pending = false;
            let in_flight = (self.snd_max - self.snd_una) as usize;
            let len = ((data_end - self.snd_una).max(0) as usize)
                .min(self.snd_mss)
                .min(in_flight);
            let fin_sent = self.fin_queued && self.snd_max == data_end + 1u32;
            if len > 0 || fin_sent {
                let out = self.data_segment(self.snd_una, len);
                self.karn_resent(self.snd_una);
                let end = self.snd_una + len + usize::from(out.ctl == Ctl::Fin);
                if self.snd_nxt == self.snd_una {
                    self.snd_nxt = end;
                }
                if self.snd_max.lt(end) {
                    self.snd_max = end;
                }
                self.info.bytes_sent += len as u64;
                self.info.bytes_retrans += len as u64;
                self.on_retransmitted(len);
                return Some(out);
            }
        }
        self.rtx_pending = false;

        // After a timeout, go-back-N skips what the peer SACKed (RFC 6675 §5.1).
        self.skip_sacked();
        if can_send_data && !sack_recovery && self.snd_nxt.lt(data_end) && self.pacing_allows(now) {
            // Back from a long idle spell: the window is what RFC 7661 lets
            // the sender keep (§4.4).
            self.end_of_nvp(now);
            // RFC 5681: send within min(cwnd, rwnd).
            // SACKed bytes have left the network (RFC 6675 §5.1; before
            // recovery this is limited transmit, RFC 3042).
            let mut wnd = (self.snd_wnd as usize).min(self.cwnd() + self.sacked_bytes());
            if self.snd_nxt == self.snd_una && self.snd_una.lt(self.snd_max) {
                // After a timeout the first unacknowledged segment goes out even
                // into a window that looks closed (as Linux's
                // `tcp_retransmit_skb`): a reordered old ACK may have closed it
                // after the peer opened it again, and with data in flight the
                // persist timer is not there to probe (found by the lossy-link test).
                let head = ((self.snd_max - self.snd_una) as usize).min(self.snd_mss);
                wnd = wnd.max(head);
            }
            let wnd_end = self.snd_una + wnd;
            let usable = (wnd_end - self.snd_nxt).max(0) as usize;
            let avail = (data_end - self.snd_nxt) as usize;
            // Room for SACK blocks comes out of the payload (RFC 6691).
            let seg_max = self.seg_max();
            let len = avail
                .min(usable)
                .min(seg_max)
                .min(self.unsacked_run(self.snd_nxt));
            // Nagle (RFC 896, RFC 9293 §3.7.4): hold a small segment while data is
            // unacknowledged, unless disabled. Sender SWS avoidance (§3.8.6.2.1):
            // a window-limited runt goes out only if it is half the peer's largest window.
            let full = len == seg_max;
            let all = len == avail;
            // With nothing in flight a runt goes out too, or a tiny window would stall.
            let idle = self.snd_nxt == self.snd_una;
            // Nagle never holds back a retransmission (data sent before, below SND.MAX).
            let resend = self.snd_nxt.lt(self.snd_max);
            let nagle_ok = self.nodelay || idle || self.fin_queued || resend;
            let sws_ok = len as u32 >= self.max_snd_wnd / 2;
            if len > 0 && (full || (nagle_ok && (all || sws_ok || idle))) {
                let seq = self.snd_nxt;
                let out = self.data_segment(seq, len);
                self.on_sent(now, seq, len, out.ctl == Ctl::Fin);
                return Some(out);
            }
        }
        if can_send_data && self.fin_waiting() {
            // The FIN alone (RFC 9293 §3.10.4): data all sent.
            let seq = self.snd_nxt;
            let out = self.data_segment(seq, 0);
            self.on_sent(now, seq, 0, true);
            return Some(out);
        }
        if self.probe_pending {
            // Zero-window probe: an old sequence number makes the peer answer with
            // its current window (as Linux does).
            self.probe_pending = false;
            let window = self.advertise_window(false);
            return Some(Outbound {
                seq: self.snd_una - 1u32,
                ack: Some(self.rcv_nxt),
                ctl: Ctl::None,
                window,
                mss: None,
                window_scale: None,
                payload_offset: 0,
                payload_len: 0,
                psh: false,
                timestamp: None,
                sack_permitted: false,
                sack_blocks: [None; crate::tcp::sack::MAX_BLOCKS],
                urgent: None,
            });
        }
        if self.ack_now {
            return Some(self.pure_ack());
        }
        None
    }

    /// Karn's rule (RFC 6298 §3, RFC 9293 §3.8.1): data from `seq` is being
    /// sent again; if that reaches into the timed segment, by whatever path
    /// (go-back-N after a timeout, a tail loss probe, SACK or RACK recovery,
    /// F-RTO), its ACK is ambiguous and the timing is dropped.
    pub(crate) fn karn_resent(&mut self, seq: Seq) {
        if self.rtt_timing.is_some_and(|(end, _)| seq.lt(end)) {
            self.rtt_timing = None;
        }
    }

    /// Debug builds: Karn's rule where an ACK of new data may give a sample.
    /// The timed segment was not sent again since it was armed (whatever path
    /// sent it); and a sample that ends a backoff, if from the timed segment
    /// or a timestamp echo, measures a sending made after the timeout that
    /// began the backoff (RFC 6298 §5.5, §5.7; RFC 7323 §4), to the
    /// timestamp clock's millisecond. (A sample from RACK's per-segment
    /// times may be older, if the ACK came before the timeout's
    /// retransmission went out: RACK gives none when the ACK covers any
    /// retransmitted segment.)
    #[cfg(debug_assertions)]
    fn debug_check_sample(&self, now: Instant, timed: Option<Duration>, chosen: Option<Duration>) {
        debug_assert!(
            timed.is_none() || !self.timed_resent,
            "Karn: an RTT sample from a timed segment that was sent again"
        );
        if let (Some(since), Some(r)) = (self.backoff_since, chosen)
            && self.segment_rtt().is_none()
        {
            debug_assert!(
                r <= now - since + Duration::from_millis(1),
                "a {r:?} sample from before the timeout {:?} ago ends the backoff",
                now - since
            );
        }
    }

    /// Bookkeeping after sending `len` bytes (and maybe a FIN) from `seq`.
    fn on_sent(&mut self, now: Instant, seq: Seq, len: usize, fin: bool) {
        let end = seq + len + usize::from(fin);
        let retransmission = seq.lt(self.snd_max);
        self.snd_nxt = end;
        if self.snd_max.lt(end) {
            self.snd_max = end;
        }
        self.info.bytes_sent += len as u64;
        self.unacked_since.get_or_insert(now);
        self.on_sent_recovery(now, seq, len, retransmission);
        if retransmission {
            self.info.bytes_retrans += len.min((self.snd_max - seq) as usize) as u64;
            self.karn_resent(seq);
        } else if self.rtt_timing.is_none() {
            // New data, never retransmitted: a valid sample (Karn, RFC 6298 §3).
            self.rtt_timing = Some((end, now));
            #[cfg(debug_assertions)]
            {
                self.timed_resent = false;
            }
        }
        if !self.timer_armed(Timer::Retransmit) {
            self.set_timer(Timer::Retransmit, self.rto_deadline(now));
        }
        self.set_timer(Timer::Persist, None);
        if fin {
            trace!(parent: &self.span, seq = %seq, "FIN sent");
        }
    }

    // ----- The application's calls -----

    /// Copies `data` into the send buffer (RFC 9293 §3.10.2, SEND).
    pub(crate) fn send(&mut self, now: Instant, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued {
            return Err(Error::BrokenPipe);
        }
        match self.state {
            State::Established | State::CloseWait => {}
            State::SynSent | State::SynReceived => return Err(Error::WouldBlock),
            _ => return Err(Error::BrokenPipe),
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.mem_level == MemLevel::High && self.snd_buf.len() > 0 {
            // Above the stack's memory limit no new data is taken while this
            // connection still has some to deliver; ACKs free memory and wake
            // the writer.
            return Err(Error::WouldBlock);
        }
        let n = self.snd_buf.write(data);
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        self.update_persist(now);
        Ok(n)
    }

    /// Bytes in the send buffer: sent and unacknowledged, or not yet sent.
    pub(crate) fn send_queue(&self) -> usize {
        self.snd_buf.len()
    }

    /// Room left in the send buffer.
    pub(crate) fn send_capacity(&self) -> usize {
        if self.mem_level == MemLevel::High && self.snd_buf.len() > 0 {
            return 0;
        }
        self.snd_buf.free()
    }

    // ----- Memory (tcp/buffer.rs) -----

    /// Bytes of buffer memory this connection holds.
    pub(crate) fn mem_allocated(&self) -> usize {
        self.snd_buf.allocated() + self.rcv_buf.allocated()
    }

    /// Dynamic right-sizing of the receive window (Linux's
    /// `tcp_rcv_space_adjust`): once a round trip has passed since the last
    /// measurement, a window of twice what the application read in it (plus
    /// 16 segments, and more while the sender is still speeding up) lets the
    /// sender keep the pipe full while the reader keeps up. The window only
    /// grows, and not under memory pressure.
    fn rcv_space_adjust(&mut self, now: Instant) {
        if self.rcv_buf.capacity() >= self.rcv_buf.max() {
            return;
        }
        // RTT samples have millisecond resolution; measuring over at least
        // one millisecond only makes the estimate of what is read per round
        // trip larger.
        let Some(rtt) = self.rtt.srtt() else {
            return;
        };
        if now - self.rcvq.time < rtt.max(Duration::from_millis(1)) {
            return;
        }
        let copied = usize::try_from(self.bytes_read - self.rcvq.read).unwrap_or(usize::MAX);
        self.rcvq.time = now;
        self.rcvq.read = self.bytes_read;
        if copied <= self.rcvq.space {
            return;
        }
        let mss = usize::from(self.rcv_mss);
        let mut want = copied.saturating_mul(2).saturating_add(16 * mss);
        // Linux: the sender's rate grew this round (slow start): allow for as
        // much growth again in the next.
        let space = self.rcvq.space.max(1);
        let growth = want.saturating_mul(copied - space) / space;
        want = want.saturating_add(growth.saturating_mul(2));
        self.rcvq.space = copied;
        if self.mem_level == MemLevel::Normal && want > self.rcv_buf.capacity() {
            trace!(parent: &self.span, copied, window = want.min(self.rcv_buf.max()), "receive buffer grows");
            self.rcv_buf.grow_to(want);
        }
    }

    /// The send buffer follows the congestion window (Linux's
    /// `tcp_sndbuf_expand`): room for twice the window, so the application
    /// can queue the next window's data while this one is in flight.
    fn send_space_adjust(&mut self) {
        if self.mem_level == MemLevel::Normal && self.snd_buf.capacity() < self.snd_buf.max() {
            let cwnd = self.cwnd().max(self.snd_mss * 10);
            let before = self.snd_buf.capacity();
            self.snd_buf.grow_to(cwnd.saturating_mul(2));
            if self.snd_buf.capacity() > before {
                self.events |= EV_WRITE;
            }
        }
    }

    /// An emptied buffer gives its memory back: at once if it is small (a
    /// request or a response: allocating it again costs little) or memory is
    /// under pressure; after [`RECLAIM_IDLE`] without new data if it is large,
    /// so a bulk flow that drains its buffer now and then does not allocate
    /// it again each time.
    fn arm_reclaim(&mut self, now: Instant) {
        let eager = self.mem_level != MemLevel::Normal;
        let mut idle_large = false;
        if self.snd_buf.len() == 0 && self.snd_buf.allocated() > 0 {
            if eager || self.snd_buf.allocated() <= RECLAIM_AT_ONCE {
                self.snd_buf.release();
            } else {
                idle_large = true;
            }
        }
        if self.rcv_buf.is_empty() && self.rcv_buf.allocated() > 0 {
            if eager || self.rcv_buf.allocated() <= RECLAIM_AT_ONCE {
                self.rcv_buf.release();
            } else {
                idle_large = true;
            }
        }
        if idle_large && !self.timer_armed(Timer::Reclaim) {
            self.set_timer(Timer::Reclaim, Some(now + RECLAIM_IDLE));
        }
    }

    /// Gives back the memory of every empty buffer.
    fn release_empty_buffers(&mut self) {
        let snd = self.snd_buf.release();
        let rcv = self.rcv_buf.release();
        if snd || rcv {
            trace!(parent: &self.span, snd, rcv, "buffer memory released");
        }
    }

    /// Copies received in-order bytes out (RFC 9293 §3.10.3, RECEIVE). `Ok(0)` is
    /// the end of the stream.
    pub(crate) fn recv(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.rcv_buf.readable() == 0 {
            return if self.at_end_of_stream() {
                Ok(0)
            } else {
                Err(Error::WouldBlock)
            };
        }
        if peek {
            return Ok(self.rcv_buf.peek(buf));
        }
        let n = self.rcv_buf.read(buf);
        self.bytes_read += n as u64;
        self.rcv_space_adjust(now);
        self.arm_reclaim(now);
        // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2), as Linux does it: announce
        // the opened window once it grew by a full segment (half the buffer if
        // that is less) and is at least twice what the peer still believes it
        // has.
        // The step is min(Fr * RCV.BUFF, Eff.snd.MSS) with Fr = 1/2 (RFC 9293
        // §3.8.6.2.2): a buffer smaller than two segments must still reopen
        // the window, or a peer that has stopped probing never learns of it.
        let advertised = (self.rcv_adv - self.rcv_nxt).max(0) as usize;
        let free = self.rcv_buf.window();
        let step = usize::from(self.rcv_mss)
            .min(self.rcv_buf.capacity() / 2)
            .max(1);
        if self.state.is_synchronized()
            && !self.fin_received
            && free.saturating_sub(advertised) >= step
            && free >= 2 * advertised
        {
            self.ack_now = true;
        }
        Ok(n)
    }

    /// No more bytes will come: the peer's FIN arrived or the connection
    /// is closed.
    fn at_end_of_stream(&self) -> bool {
        self.fin_received || self.state == State::Closed
    }

    /// Whether [`recv`](Tcb::recv) into a non-empty buffer would return
    /// `WouldBlock`: no error, nothing readable, not at the end.
    pub(crate) fn recv_would_block(&self) -> bool {
        self.error.is_none() && self.rcv_buf.readable() == 0 && !self.at_end_of_stream()
    }

    /// Bytes ready to read.
    pub(crate) fn recv_queue(&self) -> usize {
        self.rcv_buf.readable()
    }

    /// Whether a read would not block: data, EOF or an error.
    pub(crate) fn readable(&self) -> bool {
        self.rcv_buf.readable() > 0
            || self.fin_received
            || self.error.is_some()
            || self.state == State::Closed
    }

    /// Whether a write would not block.
    pub(crate) fn writable(&self) -> bool {
        self.error.is_some()
            || self.fin_queued
            || match self.state {
                State::Established | State::CloseWait => self.send_capacity() > 0,
                State::SynSent | State::SynReceived => false,
                _ => true,
            }
    }

    /// Closes the sending direction: a FIN follows the data (RFC 9293 §3.10.4).
    pub(crate) fn shutdown_write(&mut self) -> Result<(), Error> {
        if self.fin_queued {
            return Ok(());
        }
        match self.state {
            State::SynSent => {
                self.fin_queued = true;
            }
            State::SynReceived => {
                self.fin_queued = true;
            }
            State::Established => {
                self.fin_queued = true;
                self.set_state(State::FinWait1);
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck);
            }
            State::Closed => {
                return Err(self.error.unwrap_or(Error::NotConnected));
            }
            _ => {}
        }
        Ok(())
    }

    /// The application gives up its handle (RFC 9293 §3.10.4, CLOSE). Unread data
    /// makes it an abort (RFC 2525 §2.17); otherwise a graceful close.
    pub(crate) fn release(&mut self, now: Instant) {
        self.released = true;
        if self.linger == Some(Duration::ZERO) {
            // SO_LINGER with a zero timeout: close is an abort, RST and gone at
            // once (RFC 9293 §3.10.5), as on Linux.
            debug!(parent: &self.span, "zero linger: reset");
            self.abort();
            return;
        }
        if self.state == State::SynSent {
            self.close_now();
            return;
        }
        if self.rcv_buf.readable() > 0 && self.state.is_synchronized() {
            debug!(parent: &self.span, unread = self.rcv_buf.readable(), "closed with unread data: reset");
            self.abort();
            return;
        }
        let _ = self.shutdown_write();
        if self.state == State::FinWait2 {
            self.set_timer(Timer::Linger, Some(now + self.cfg.fin_wait2_timeout));
        }
    }

    /// An ICMP error about a segment of ours that started at `seq`.
    ///
    /// RFC 5927 §4.1: only if `seq` is in flight (SND.UNA <= seq < SND.MAX), so a
    /// blind attacker must guess it. Hard errors (protocol or port unreachable)
    /// abort a connection attempt (RFC 1122 §4.2.3.9); everything else is soft:
    /// remembered, and reported if the connection later times out. A synchronized
    /// connection is never aborted by ICMP (RFC 5927 §4.1, no blind resets).
    /// "Fragmentation needed" lowers the MSS and resends (RFC 1191 §6.1).
    pub(crate) fn on_icmp_error(&mut self, seq: Seq, kind: crate::icmp::IcmpErrorKind) {
        use crate::icmp::IcmpErrorKind;
        if !seq.in_range(self.snd_una, self.snd_max) {
            return;
        }
        match kind {
            IcmpErrorKind::FragmentationNeeded(mtu) => {
                // RFC 1191 §3: 68 is the least MTU; RFC 5927 §7: only ever lower it.
                let options = if self.ts.on {
                    timestamps::OPTION_LEN
                } else {
                    0
                };
                let mss = usize::from(mtu.max(68))
                    .saturating_sub(40 + options)
                    .max(88);
                if mss < self.snd_mss {
                    debug!(parent: &self.span, mtu, mss, "path MTU lowered");
                    self.snd_mss = mss;
                    self.cc.set_mss(mss);
                    self.snd_nxt = self.snd_una;
                    self.rtt_timing = None;
                }
            }
            IcmpErrorKind::Refused if self.state == State::SynSent => {
                self.fail(Error::ConnectionRefused);
            }
            IcmpErrorKind::Refused => self.soft_error = Some(Error::ConnectionRefused),
            // RFC 5461: a soft error rejects a pending connection request.
            IcmpErrorKind::Unreachable
                if self.state == State::SynSent && self.unreachable_fails_connect =>
            {
                self.fail(Error::HostUnreachable);
            }
            IcmpErrorKind::Unreachable => self.soft_error = Some(Error::HostUnreachable),
        }
    }

    /// Aborts: RST to the peer if synchronized, then CLOSED (RFC 9293 §3.10.5).
    pub(crate) fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
        ) {
            self.rst_pending = Some((self.snd_nxt, None));
        }
        self.close_now();
    }

    /// The payload bytes of an outbound segment, copied into `dst`.
    pub(crate) fn copy_payload(&self, out: &Outbound, dst: &mut [u8]) {
        self.snd_buf
            .copy_out(out.payload_offset, &mut dst[..out.payload_len]);
    }

    /// Statistics of this connection.
    pub(crate) fn tcp_info(&self) -> TcpInfo {
        TcpInfo {
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.backed_off(self.backoff),
            cwnd: self.cwnd(),
            ssthresh: self.cc.ssthresh(),
            snd_mss: self.snd_mss,
            bytes_in_flight: self.flight(),
            state: Some(self.state),
            bytes_sent: self.info.bytes_sent,
            bytes_retrans: self.info.bytes_retrans,
            bytes_acked: self.info.bytes_acked,
            bytes_received: self.info.bytes_received,
            segs_out: self.info.segs_out,
            segs_in: self.info.segs_in,
            timeouts: self.info.timeouts,
            fast_retransmits: self.info.fast_retransmits,
            send_buffer: self.snd_buf.capacity(),
            recv_buffer: self.rcv_buf.capacity(),
            buffer_memory: self.mem_allocated(),
            timestamps: self.ts.on,
            wscale: self.wscale_on.then_some((self.snd_wscale, self.rcv_wscale)),
            ..self.recovery_info(TcpInfo::default())
        }
    }

    /// The largest SRTT this connection has had, for tests that bound it.
    #[cfg(test)]
    pub(crate) fn max_srtt(&self) -> Duration {
        self.rtt.max_srtt()
    }

    /// The sequence-space variables, for test diagnostics.
    #[cfg(test)]
    pub(crate) fn summary(&self) -> String {
        format!(
            "{:?} una {} nxt {} max {} data_end {} fin_queued {} rcv_nxt {} rcv_fin {:?} fin_received {} snd_wnd {} timers {:?} flags ack {} rtx {} probe {}",
            self.state,
            self.snd_una,
            self.snd_nxt,
            self.snd_max,
            self.data_end(),
            self.fin_queued,
            self.rcv_nxt,
            self.rcv_fin,
            self.fin_received,
            self.snd_wnd,
            self.timers,
            self.ack_now,
            self.rtx_pending,
            self.probe_pending
        )
    }

    /// Whether the engine may free this connection now.
    pub(crate) fn is_finished(&self) -> bool {
        self.state == State::Closed && self.released && self.rst_pending.is_none()
    }
}
