//! The runner: one script against one [`Engine`], in virtual time.
//!
//! For each event the runner moves the clock to the event's time, firing the
//! timers due on the way ([`Engine::poll_timeout`], [`Engine::handle_timeout`])
//! and collecting what the engine sends ([`Engine::poll_transmit`]). Then:
//!
//! - an inbound segment is built with the script's relative sequence numbers
//!   mapped onto absolute ones and given to [`Engine::handle_packet`]; the
//!   remote ISN is the runner's ([`REMOTE_ISN`]), the local one is learned
//!   from the engine's SYN or SYN-ACK;
//! - an outbound segment must be the next one the engine sends, within the
//!   script's tolerance of the expected time, with the same flags, sequence
//!   and acknowledgement numbers, length and options (by meaning: the order
//!   and `nop`/`eol` padding are not compared; TSval is not compared, TSecr
//!   is), the window only if the [`Profile`] says so;
//! - a system call is mapped onto the engine's calls, its return value and
//!   errno compared with the kernel's; a call that would block on a blocking
//!   socket waits (in virtual time) while later events go on, and must return
//!   at the time the script says;
//! - `sysctl -w` commands change the engine's [`Config`] through the profile.
//!
//! Segments the engine sends that the script does not expect before its next
//! inbound packet or system call are a failure.
//!
//! The stack is at [`LOCAL_IP`], the scripted peer at [`REMOTE_IP`] port
//! [`REMOTE_PORT`]; sockets bind to port [`LOCAL_PORT`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use smoltcp::wire::{Ipv4Packet, TcpPacket};
use synack_engine::{
    Config, Engine, Error, Instant, Interface, Keepalive, Reuse, SocketHandle, SocketOptions,
    SocketState, State,
};

use crate::parse::{
    self, Direction, Event, EventKind, Expr, Icmp, Packet, PacketBody, Script, Segment, Syscall,
    TcpOption, Time,
};
use crate::profile::{Profile, Sysctl};

/// The stack's address.
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The scripted peer's address.
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The port `bind` gives a socket (packetdrill's `...` address).
pub const LOCAL_PORT: u16 = 8080;
/// The scripted peer's port.
pub const REMOTE_PORT: u16 = 40_000;
/// The scripted peer's initial sequence number: relative 0.
pub const REMOTE_ISN: u32 = 1_000_000;

/// packetdrill's default tolerance, microseconds.
const DEFAULT_TOLERANCE: i64 = 4_000;
/// How long an outbound segment at time `*` is waited for, microseconds.
const ANY_TIME_HORIZON: i64 = 600_000_000;

/// The result of one script.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every event happened as the script says.
    Pass,
    /// The first event that did not.
    Fail(Failure),
    /// The script needs what synack (or the runner) does not have.
    Unsupported(String),
    /// The script could not be read.
    ParseError(parse::ParseError),
}

impl Outcome {
    /// A short name: `pass`, `fail`, `unsupported`, `parse-error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Unsupported(_) => "unsupported",
            Outcome::ParseError(_) => "parse-error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("pass"),
            Outcome::Fail(x) => write!(f, "fail: {x}"),
            Outcome::Unsupported(why) => write!(f, "unsupported: {why}"),
            Outcome::ParseError(e) => write!(f, "parse error: {e}"),
        }
    }
}

/// Where and how a script failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The script line of the event that failed.
    pub line: usize,
    /// Its text.
    pub expected: String,
    /// What happened instead.
    pub actual: String,
    /// Virtual time of the failure, microseconds since the script's start.
    pub time_us: i64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} at {:.6}s: expected `{}`, got {}",
            self.line,
            self.time_us as f64 / 1e6,
            self.expected,
            self.actual
        )
    }
}

/// Why a run stopped early.
enum Stop {
    Fail(Failure),
    Unsupported(String),
}

type Step<T = ()> = Result<T, Stop>;

/// Reads, parses and runs the script at `path`.
pub fn run_file(path: &Path, profile: &Profile) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Outcome::Unsupported(format!("cannot read {}: {e}", path.display())),
    };
    match parse::parse(&text, profile.defines) {
        Ok(script) => run(&script, profile),
        Err(e) => Outcome::ParseError(e),
    }
}

/// Runs a parsed script.
pub fn run(script: &Script, profile: &Profile) -> Outcome {
    execute(script, profile, &[]).outcome
}

/// Runs a parsed script and returns, with the outcome, a log of every event
/// run and every segment sent or injected (for debugging a failure).
pub fn run_traced(script: &Script, profile: &Profile) -> (Outcome, Vec<String>) {
    let r = execute(script, profile, &[]);
    (r.outcome, r.log)
}

/// A run of one script.
#[derive(Debug, Clone)]
pub struct Run {
    /// How it ended.
    pub outcome: Outcome,
    /// Every event run and every segment sent, with its time.
    pub log: Vec<String>,
    /// The mismatches at tolerated lines, passed over.
    pub tolerated: Vec<Failure>,
}

/// Runs a parsed script, passing over a mismatch at one of the `tolerate`
/// lines (a known difference: the segment the engine sent instead is taken
/// as that line's, a call's result is accepted) so that the rest of the
/// script is still checked; the mismatches are returned in
/// [`Run::tolerated`].
pub fn execute(script: &Script, profile: &Profile, tolerate: &[usize]) -> Run {
    if let Some(why) = unsupported(script) {
        return Run {
            outcome: Outcome::Unsupported(why),
            log: Vec::new(),
            tolerated: Vec::new(),
        };
    }
    let mut r = match Runner::new(script, profile) {
        Ok(r) => r,
        Err(why) => {
            return Run {
                outcome: Outcome::Unsupported(why),
                log: Vec::new(),
                tolerated: Vec::new(),
            };
        }
    };
    r.tolerate = tolerate.to_vec();
    let outcome = match r.run() {
        Ok(()) => Outcome::Pass,
        Err(Stop::Fail(f)) => Outcome::Fail(f),
        Err(Stop::Unsupported(why)) => Outcome::Unsupported(why),
    };
    Run {
        outcome,
        log: r.log,
        tolerated: r.tolerated,
    }
}

/// The reason a script cannot run at all, found before running it.
fn unsupported(script: &Script) -> Option<String> {
    match script.option("ip_version") {
        None | Some("ipv4") => {}
        Some(v) => return Some(format!("IPv6 (--ip_version={v}): synack speaks IPv4 only")),
    }
    if let Some(v) = script.option("udp_encapsulation") {
        return Some(format!("UDP encapsulation (--udp_encapsulation={v})"));
    }
    if script.option("tcp_md5_secret").is_some() {
        return Some("TCP-MD5 (RFC 2385)".into());
    }
    for ev in &script.events {
        match &ev.kind {
            EventKind::Packet(p) => {
                if p.udp.is_some() {
                    return Some(format!("UDP encapsulation (line {})", ev.line));
                }
                if p.ecn.as_deref().is_some_and(|e| e != "noecn") {
                    return Some(format!(
                        "ECN (RFC 3168): synack lacks it; ECN codepoints (line {})",
                        ev.line
                    ));
                }
                match &p.body {
                    PacketBody::Icmp(i) => {
                        if p.direction == Direction::Outbound {
                            return Some(format!("runner gap: outbound ICMP (line {})", ev.line));
                        }
                        if let Err(why) = icmp_type_code(i) {
                            return Some(format!("{why} (line {})", ev.line));
                        }
                    }
                    PacketBody::Tcp(s) => {
                        if s.has('U') || s.urg.is_some() {
                            return Some(format!("runner gap: URG segments (line {})", ev.line));
                        }
                        for o in s.options.iter().flatten() {
                            match o {
                                TcpOption::Md5(_) => return Some("TCP-MD5 (RFC 2385)".into()),
                                TcpOption::FastOpen(_) => {
                                    return Some("TCP Fast Open (RFC 7413)".into());
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            EventKind::Code(code) => {
                if assertion(code).is_none() {
                    return Some(format!(
                        "runner gap: %{{ }}% Python block other than `assert tcpi_state == ...` or `assert tcpi_options == ...` (line {})",
                        ev.line
                    ));
                }
            }
            EventKind::Command(c) => {
                let cmd = c.split_whitespace().next().unwrap_or("");
                if !matches!(cmd, "sysctl" | "sockstat") {
                    return Some(format!("shell command `{cmd}` (line {})", ev.line));
                }
            }
            EventKind::Syscall(s) => {
                if !matches!(
                    s.name.as_str(),
                    "socket"
                        | "fcntl"
                        | "setsockopt"
                        | "getsockopt"
                        | "bind"
                        | "listen"
                        | "accept"
                        | "connect"
                        | "read"
                        | "write"
                        | "send"
                        | "sendto"
                        | "recv"
                        | "shutdown"
                        | "close"
                ) {
                    return Some(format!(
                        "runner gap: system call {} (line {})",
                        s.name, ev.line
                    ));
                }
            }
        }
    }
    None
}

/// What a file descriptor of the script names.
#[derive(Debug, Clone, Copy)]
enum Sock {
    /// Made by `socket`, not yet listening or connecting.
    Fresh,
    /// A listener.
    Listener(SocketHandle),
    /// A connection.
    Conn(SocketHandle),
}

#[derive(Debug, Clone)]
struct Fd {
    sock: Sock,
    nonblocking: bool,
    opts: SocketOptions,
    bound: Option<(SocketAddrV4, Reuse)>,
    tos: Option<u8>,
    connect_timeout: Option<Duration>,
    /// `TCP_KEEPIDLE`/`TCP_KEEPINTVL`/`TCP_KEEPCNT`, used when `SO_KEEPALIVE`
    /// turns keepalive on (Linux keeps them apart from the switch).
    keepalive: Keepalive,
}

/// A system call waiting for the engine.
struct Blocked {
    event: Event,
    call: Syscall,
    /// When it must return: (earliest, latest), microseconds.
    window: (i64, i64),
    /// Bytes still to write, for a blocking write.
    remaining: usize,
}

struct Runner<'a> {
    script: &'a Script,
    profile: &'a Profile,
    tolerance: i64,
    mtu: usize,
    config: Config,
    /// A sysctl changed the configuration after the engine was made.
    config_changed: Option<String>,
    engine: Option<Engine>,
    /// The clock, microseconds.
    now: i64,
    fds: BTreeMap<i32, Fd>,
    local_isn: Option<u32>,
    local_port: u16,
    /// Actual TSval minus the script's, learned from the first outbound timestamp.
    ts_offset: Option<u32>,
    /// Segments sent and not yet matched, with their time.
    sent: VecDeque<(i64, Vec<u8>)>,
    blocked: Option<Blocked>,
    /// What happened, for [`run_traced`].
    log: Vec<String>,
    /// Lines whose mismatch is recorded and passed over.
    tolerate: Vec<usize>,
    /// The mismatches passed over.
    tolerated: Vec<Failure>,
}

impl<'a> Runner<'a> {
    fn new(script: &'a Script, profile: &'a Profile) -> Result<Runner<'a>, String> {
        let tolerance = match script.option("tolerance_usecs") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("bad --tolerance_usecs={v}"))?,
            None => DEFAULT_TOLERANCE,
        };
        let mtu = match script.option("mtu") {
            Some(v) => v.parse().map_err(|_| format!("bad --mtu={v}"))?,
            None => 1500,
        };
        Ok(Runner {
            script,
            profile,
            tolerance,
            mtu,
            config: profile.base_config(),
            config_changed: None,
            engine: None,
            now: 0,
            fds: BTreeMap::new(),
            local_isn: None,
            local_port: LOCAL_PORT,
            ts_offset: None,
            sent: VecDeque::new(),
            blocked: None,
            log: Vec::new(),
            tolerate: Vec::new(),
            tolerated: Vec::new(),
        })
    }

    fn run(&mut self) -> Step {
        // The script time of the previous event: the base of relative times.
        let mut last = 0i64;
        for ev in &self.script.events {
            let (lo, hi) = match ev.time {
                Time::Absolute(t) => (t, t),
                Time::Relative(d) => (last + d, last + d),
                Time::Any => (self.now, self.now + ANY_TIME_HORIZON),
                Time::Range { lo, hi, relative } => {
                    let base = if relative { last } else { 0 };
                    (base + lo, base + hi)
                }
            };
            let exact = matches!(ev.time, Time::Absolute(_) | Time::Relative(_));
            self.log.push(format!(
                "{:>11.6} line {:>3}: {}",
                lo as f64 / 1e6,
                ev.line,
                ev.text
            ));
            let actual = match &ev.kind {
                EventKind::Packet(p) if p.direction == Direction::Outbound => {
                    self.expect_outbound(ev, p, lo, hi, exact)?
                }
                EventKind::Packet(p) => {
                    self.advance_before(lo)?;
                    self.no_unexpected(ev)?;
                    self.inject(p)?;
                    self.settle()?;
                    lo
                }
                EventKind::Syscall(s) => {
                    self.advance_before(lo)?;
                    self.no_unexpected(ev)?;
                    let end = match ev.end {
                        None => None,
                        Some(Time::Absolute(t)) => Some((t, t)),
                        Some(Time::Relative(d)) => Some((lo + d, lo + d)),
                        Some(Time::Range {
                            lo: a,
                            hi: b,
                            relative,
                        }) => {
                            let base = if relative { lo } else { 0 };
                            Some((base + a, base + b))
                        }
                        Some(Time::Any) => Some((lo, lo + ANY_TIME_HORIZON)),
                    };
                    self.syscall(ev, s, end.unwrap_or((lo, lo)))?;
                    self.settle()?;
                    lo
                }
                EventKind::Command(c) => {
                    self.advance_to(lo)?;
                    self.command(ev, c)?;
                    lo
                }
                EventKind::Code(code) => {
                    self.advance_to(lo)?;
                    self.no_unexpected(ev)?;
                    self.assert_state(ev, code)?;
                    lo
                }
            };
            last = if exact { lo } else { actual };
        }
        // A call still blocked must return when the script says.
        if let Some(b) = &self.blocked {
            let until = b.window.1 + self.tolerance;
            let line = b.event.line;
            let text = b.event.text.clone();
            self.advance_to(until)?;
            if self.blocked.is_some() {
                return Err(self.fail_at(line, &text, "the call still blocked".into()));
            }
        }
        Ok(())
    }

    // ----- Time -----

    fn engine(&mut self) -> &mut Engine {
        if self.engine.is_none() {
            let iface = Interface::new(LOCAL_IP, 24, self.mtu);
            self.engine = Some(Engine::new(self.config.clone(), iface, [0x5eed, 0xd1ce]));
        }
        self.engine.as_mut().expect("made above")
    }

    fn instant(us: i64) -> Instant {
        Instant::from_nanos(us.max(0) as u64 * 1000)
    }

    /// Collects what the engine sends now.
    fn drain(&mut self) {
        let now = Self::instant(self.now);
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while let Some(n) = engine.poll_transmit(now, &mut buf) {
            got.push(buf[..n].to_vec());
        }
        for p in got {
            let d = self.describe(&p);
            self.log
                .push(format!("{:>11.6}   sent {d}", self.now as f64 / 1e6));
            self.sent.push_back((self.now, p));
        }
    }

    /// Lets a blocked call retry, and collects output.
    fn settle(&mut self) -> Step {
        self.drain();
        self.retry_blocked()?;
        self.drain();
        Ok(())
    }

    /// The next timer deadline, microseconds (rounded up).
    fn next_timer(&self) -> Option<i64> {
        self.engine
            .as_ref()?
            .poll_timeout()
            .map(|t| t.as_nanos().div_ceil(1000) as i64)
    }

    /// Moves the clock to `target`, firing timers on the way.
    fn advance_to(&mut self, target: i64) -> Step {
        self.advance(target, true)
    }

    /// Moves the clock to `target`, firing the timers due before it: a
    /// packet or call at `target` comes first, as it does on a real host,
    /// whose timers fire on a tick after their deadline.
    fn advance_before(&mut self, target: i64) -> Step {
        self.advance(target, false)
    }

    fn advance(&mut self, target: i64, inclusive: bool) -> Step {
        self.settle()?;
        while let Some(t) = self
            .next_timer()
            .filter(|&t| t < target || inclusive && t == target)
        {
            self.now = self.now.max(t);
            let now = Self::instant(self.now);
            self.engine().handle_timeout(now);
            self.settle()?;
        }
        self.now = self.now.max(target);
        self.settle()
    }

    /// The next segment the engine sends, waiting until `deadline` at most.
    fn next_sent(&mut self, deadline: i64) -> Step<Option<(i64, Vec<u8>)>> {
        loop {
            self.settle()?;
            if let Some(p) = self.sent.pop_front() {
                return Ok(Some(p));
            }
            match self.next_timer() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    let now = Self::instant(self.now);
                    self.engine().handle_timeout(now);
                }
                _ => {
                    self.now = self.now.max(deadline);
                    self.settle()?;
                    return Ok(self.sent.pop_front());
                }
            }
        }
    }

    fn fail_at(&self, line: usize, expected: &str, actual: String) -> Stop {
        Stop::Fail(Failure {
            line,
            expected: expected.to_string(),
            actual,
            time_us: self.now,
        })
    }

    fn fail(&self, ev: &Event, actual: String) -> Stop {
        self.fail_at(ev.line, &ev.text, actual)
    }

    /// A mismatch at `ev`: a failure, unless its line is tolerated.
    fn mismatch(&mut self, ev: &Event, actual: String) -> Step {
        let Stop::Fail(f) = self.fail(ev, actual) else {
            unreachable!("fail makes a failure")
        };
        if self.tolerate.contains(&ev.line) {
            self.log.push(format!("tolerated: {f}"));
            self.tolerated.push(f);
            Ok(())
        } else {
            Err(Stop::Fail(f))
        }
    }

    /// Fails if the engine sent a segment the script did not expect.
    fn no_unexpected(&mut self, ev: &Event) -> Step {
        if let Some((t, p)) = self.sent.front() {
            let desc = self.describe(p);
            let msg = format!(
                "an unexpected segment first, at {:.6}s: {desc}",
                *t as f64 / 1e6
            );
            self.mismatch(ev, msg)?;
            self.sent.clear();
        }
        Ok(())
    }

    // ----- Packets -----

    fn expect_outbound(
        &mut self,
        ev: &Event,
        p: &Packet,
        lo: i64,
        hi: i64,
        exact: bool,
    ) -> Step<i64> {
        let PacketBody::Tcp(seg) = &p.body else {
            return Err(Stop::Unsupported("runner gap: outbound ICMP".into()));
        };
        let tol = if exact {
            self.tolerance
        } else {
            self.tolerance.max(0)
        };
        let Some((at, bytes)) = self.next_sent(hi + tol)? else {
            self.mismatch(ev, "no segment".into())?;
            return Ok(lo);
        };
        if at < lo - tol {
            let desc = self.describe(&bytes);
            self.mismatch(ev, format!("{desc} too early, at {:.6}s", at as f64 / 1e6))?;
            return Ok(at);
        }
        if let Err(why) = self.check(p, seg, &bytes) {
            let desc = self.describe(&bytes);
            self.mismatch(ev, format!("{desc} ({why}) at {:.6}s", at as f64 / 1e6))?;
        }
        Ok(at)
    }

    /// Compares a segment the engine sent with the script's.
    fn check(&mut self, p: &Packet, seg: &Segment, bytes: &[u8]) -> Result<(), String> {
        let ip = Ipv4Packet::new_checked(bytes).map_err(|e| format!("bad IPv4: {e}"))?;
        let tcp = TcpPacket::new_checked(ip.payload()).map_err(|e| format!("bad TCP: {e}"))?;
        let seq = tcp.seq_number().0 as u32;
        if seg.has('S') && tcp.syn() && !seg.absolute && seg.start == 0 {
            self.local_isn = Some(seq);
        }
        if let Some(ttl) = p.ttl
            && ip.hop_limit() != ttl
        {
            return Err(format!("ttl {} instead of {ttl}", ip.hop_limit()));
        }
        if let Some(tos) = p.tos {
            let got = (ip.dscp() << 2) | ip.ecn();
            if got != tos {
                return Err(format!("tos {got:#04x} instead of {tos:#04x}"));
            }
        }
        let flags = flag_string(&tcp);
        if sorted(&flags) != sorted(&seg.flags) {
            return Err(format!("flags {flags} instead of {}", seg.flags));
        }
        let want = if seg.absolute {
            seg.start
        } else {
            self.local_isn.unwrap_or(0).wrapping_add(seg.start)
        };
        if seq != want && !seg.any_seq {
            return Err(format!(
                "seq {} instead of {}",
                seq.wrapping_sub(self.local_isn.unwrap_or(0)),
                seg.start
            ));
        }
        let len = tcp.payload().len() as u32;
        if len != seg.len {
            return Err(format!("length {len} instead of {}", seg.len));
        }
        if seg.has('.')
            && let Some(a) = seg.ack
        {
            let got = (tcp.ack_number().0 as u32).wrapping_sub(REMOTE_ISN);
            if got != a {
                return Err(format!("ack {got} instead of {a}"));
            }
        }
        if self.profile.check_window
            && let Some(w) = seg.win
            && u32::from(tcp.window_len()) != w
        {
            return Err(format!("win {} instead of {w}", tcp.window_len()));
        }
        let got = read_options(tcp.options())?;
        let expected = seg.options.clone().unwrap_or_default();
        if expected.contains(&TcpOption::Any) {
            return Ok(());
        }
        // TSval: learn the offset from the first one; TSecr is the peer's.
        for o in &got {
            if let TcpOption::Timestamp { val, .. } = o
                && let Some(TcpOption::Timestamp { val: sv, .. }) = expected
                    .iter()
                    .find(|o| matches!(o, TcpOption::Timestamp { .. }))
                && self.ts_offset.is_none()
            {
                self.ts_offset = Some(val.wrapping_sub(*sv));
            }
        }
        let norm = |opts: &[TcpOption], isn: u32| -> Vec<String> {
            let mut v: Vec<String> = opts
                .iter()
                .filter_map(|o| match o {
                    TcpOption::Nop | TcpOption::Eol => None,
                    TcpOption::Timestamp { ecr, .. } => Some(format!("TS ecr {ecr}")),
                    TcpOption::Sack(blocks) => Some(format!(
                        "sack {}",
                        blocks
                            .iter()
                            .map(|(a, b)| format!(
                                "{}:{}",
                                a.wrapping_sub(isn),
                                b.wrapping_sub(isn)
                            ))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )),
                    other => Some(option_text(other)),
                })
                .collect();
            v.sort();
            v
        };
        let g = norm(&got, REMOTE_ISN);
        let e = norm(&expected, 0);
        if g != e {
            return Err(format!(
                "options [{}] instead of [{}]",
                g.join(", "),
                e.join(", ")
            ));
        }
        Ok(())
    }

    /// A segment the engine sent, in script form with relative numbers.
    fn describe(&self, bytes: &[u8]) -> String {
        let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
            return format!("{} bytes that are not IPv4", bytes.len());
        };
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
            return format!("an IPv4 packet of protocol {}", ip.next_header());
        };
        let isn = self.local_isn.unwrap_or(0);
        let seq = (tcp.seq_number().0 as u32).wrapping_sub(isn);
        let len = tcp.payload().len() as u32;
        let mut s = format!(
            "`> {} {}:{}({})",
            flag_string(&tcp),
            seq,
            seq.wrapping_add(len),
            len
        );
        if tcp.ack() {
            s += &format!(
                " ack {}",
                (tcp.ack_number().0 as u32).wrapping_sub(REMOTE_ISN)
            );
        }
        s += &format!(" win {}", tcp.window_len());
        if let Ok(opts) = read_options(tcp.options())
            && !opts.is_empty()
        {
            let t: Vec<String> = opts
                .iter()
                .map(|o| match o {
                    TcpOption::Sack(b) => format!(
                        "sack {}",
                        b.iter()
                            .map(|(x, y)| format!(
                                "{}:{}",
                                x.wrapping_sub(REMOTE_ISN),
                                y.wrapping_sub(REMOTE_ISN)
                            ))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    o => option_text(o),
                })
                .collect();
            s += &format!(" <{}>", t.join(","));
        }
        s.push('`');
        s
    }

    /// Builds an ICMP error about the segment the script quotes (our
    /// segment: from us to the peer, its sequence number relative to our
    /// ISN) and gives it to the engine.
    fn inject_icmp(&mut self, p: &Packet, icmp: &Icmp) -> Step {
        let (kind, code) = icmp_type_code(icmp).map_err(Stop::Unsupported)?;
        let (start, _, len) = icmp.quoted.unwrap_or((0, 0, 0));
        let seq = self.local_isn.unwrap_or(0).wrapping_add(start);
        // The quoted datagram: its IPv4 header and the first 8 bytes of TCP
        // (RFC 792), as a router sends them.
        let mut quoted = Vec::with_capacity(28);
        quoted.extend([0x45, 0]);
        quoted.extend(((40 + len) as u16).to_be_bytes());
        quoted.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
        quoted.extend(LOCAL_IP.octets());
        quoted.extend(REMOTE_IP.octets());
        let sum = checksum(&quoted);
        quoted[10..12].copy_from_slice(&sum.to_be_bytes());
        quoted.extend(self.local_port.to_be_bytes());
        quoted.extend(REMOTE_PORT.to_be_bytes());
        quoted.extend(seq.to_be_bytes());
        let mut msg = vec![kind, code, 0, 0];
        // The rest of the header: the next-hop MTU of "fragmentation needed".
        let mtu = icmp.mtu.unwrap_or(0) as u16;
        msg.extend([0, 0]);
        msg.extend(mtu.to_be_bytes());
        msg.extend(&quoted);
        let sum = checksum(&msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        let total = 20 + msg.len();
        let mut ip = Vec::with_capacity(total);
        ip.extend([0x45, p.tos.unwrap_or(0)]);
        ip.extend((total as u16).to_be_bytes());
        ip.extend([0, 0, 0, 0, p.ttl.unwrap_or(64), 1, 0, 0]);
        ip.extend(REMOTE_IP.octets());
        ip.extend(LOCAL_IP.octets());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend(msg);
        let now = Self::instant(self.now);
        self.engine().handle_packet(now, &ip);
        Ok(())
    }

    /// Builds a segment from the script's line and gives it to the engine.
    fn inject(&mut self, p: &Packet) -> Step {
        let seg = match &p.body {
            PacketBody::Tcp(seg) => seg,
            PacketBody::Icmp(icmp) => return self.inject_icmp(p, icmp),
        };
        let local_isn = self.local_isn.unwrap_or(0);
        let seq = if seg.absolute {
            seg.start
        } else {
            REMOTE_ISN.wrapping_add(seg.start)
        };
        let ack = seg.ack.map(|a| local_isn.wrapping_add(a)).unwrap_or(0);
        let mut opts = Vec::new();
        for o in seg.options.iter().flatten() {
            match *o {
                TcpOption::Nop => opts.push(1),
                TcpOption::Eol => opts.push(0),
                TcpOption::Mss(m) => opts.extend([2, 4, (m >> 8) as u8, m as u8]),
                TcpOption::WindowScale(s) => opts.extend([3, 3, s]),
                TcpOption::SackPermitted => opts.extend([4, 2]),
                TcpOption::Sack(ref blocks) => {
                    opts.extend([5, 2 + 8 * blocks.len() as u8]);
                    for &(a, b) in blocks {
                        opts.extend(local_isn.wrapping_add(a).to_be_bytes());
                        opts.extend(local_isn.wrapping_add(b).to_be_bytes());
                    }
                }
                TcpOption::Timestamp { val, ecr } => {
                    let ecr = if ecr == 0 {
                        0
                    } else {
                        ecr.wrapping_add(self.ts_offset.unwrap_or(0))
                    };
                    opts.extend([8, 10]);
                    opts.extend(val.to_be_bytes());
                    opts.extend(ecr.to_be_bytes());
                }
                TcpOption::Md5(_) | TcpOption::FastOpen(_) | TcpOption::Any => {
                    return Err(Stop::Unsupported(format!(
                        "inbound option {}",
                        option_text(o)
                    )));
                }
            }
        }
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let mut flags = 0u8;
        for (c, bit) in [
            ('F', 0x01),
            ('S', 0x02),
            ('R', 0x04),
            ('P', 0x08),
            ('.', 0x10),
            ('U', 0x20),
            ('E', 0x40),
            ('W', 0x80),
        ] {
            if seg.has(c) {
                flags |= bit;
            }
        }
        let tcp_len = 20 + opts.len() + seg.len as usize;
        let mut tcp = Vec::with_capacity(tcp_len);
        tcp.extend(REMOTE_PORT.to_be_bytes());
        tcp.extend(self.local_port.to_be_bytes());
        tcp.extend(seq.to_be_bytes());
        tcp.extend(ack.to_be_bytes());
        tcp.push((((20 + opts.len()) / 4) as u8) << 4);
        tcp.push(flags);
        tcp.extend((seg.win.unwrap_or(65535).min(65535) as u16).to_be_bytes());
        tcp.extend([0, 0]); // checksum
        tcp.extend((seg.urg.unwrap_or(0) as u16).to_be_bytes());
        tcp.extend(&opts);
        tcp.resize(tcp_len, 0);
        let mut pseudo = Vec::with_capacity(12 + tcp.len());
        pseudo.extend(REMOTE_IP.octets());
        pseudo.extend(LOCAL_IP.octets());
        pseudo.extend([0, 6]);
        pseudo.extend((tcp.len() as u16).to_be_bytes());
        pseudo.extend(&tcp);
        let sum = checksum(&pseudo);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let total = 20 + tcp.len();
        let mut ip = Vec::with_capacity(total);
        ip.extend([0x45, p.tos.unwrap_or(0)]);
        ip.extend((total as u16).to_be_bytes());
        ip.extend([0, 0, 0x40, 0]); // id, DF
        ip.extend([p.ttl.unwrap_or(64), 6, 0, 0]);
        ip.extend(REMOTE_IP.octets());
        ip.extend(LOCAL_IP.octets());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend(tcp);
        let now = Self::instant(self.now);
        self.engine().handle_packet(now, &ip);
        Ok(())
    }

    // ----- Commands -----

    fn command(&mut self, ev: &Event, cmd: &str) -> Step {
        let mut words = cmd.split_whitespace();
        match words.next() {
            Some("sysctl") => {
                for w in words {
                    let Some((name, value)) = w.split_once('=') else {
                        continue;
                    };
                    let before = format!("{:?}", self.config);
                    match self.profile.sysctl(&mut self.config, name, value) {
                        Sysctl::Unsupported(why) => return Err(Stop::Unsupported(why)),
                        Sysctl::Ignored => {}
                        Sysctl::Config => {
                            if self.engine.is_some() && format!("{:?}", self.config) != before {
                                self.config_changed = Some(format!("{name}={value}"));
                            }
                        }
                    }
                }
                Ok(())
            }
            Some("sockstat") => self.sockstat(ev, cmd),
            _ => Err(Stop::Unsupported(format!("shell command `{cmd}`"))),
        }
    }

    /// `sockstat ... | grep -c STATE | grep N`: N connections in STATE.
    fn sockstat(&mut self, ev: &Event, cmd: &str) -> Step {
        let parts: Vec<&str> = cmd.split('|').map(str::trim).collect();
        let state = parts
            .iter()
            .find_map(|p| p.strip_prefix("grep -c "))
            .map(str::trim);
        let want = parts
            .last()
            .and_then(|p| p.strip_prefix("grep "))
            .and_then(|n| n.trim().parse::<usize>().ok());
        let (Some(state), Some(want)) = (state, want) else {
            return Err(Stop::Unsupported(format!("shell command `{cmd}`")));
        };
        let counts = self
            .engine
            .as_ref()
            .map(|e| e.stats().states)
            .unwrap_or_default();
        let got = match state {
            "SYN_SENT" => counts.syn_sent,
            "SYN_RCVD" => counts.syn_received,
            "ESTABLISHED" => counts.established,
            "FIN_WAIT_1" => counts.fin_wait1,
            "FIN_WAIT_2" => counts.fin_wait2,
            "CLOSE_WAIT" => counts.close_wait,
            "CLOSING" => counts.closing,
            "LAST_ACK" => counts.last_ack,
            "TIME_WAIT" => counts.time_wait,
            "CLOSED" => counts.closed,
            _ => return Err(Stop::Unsupported(format!("sockstat state {state}"))),
        };
        if got != want {
            return self.mismatch(ev, format!("{got} connections in {state}"));
        }
        Ok(())
    }

    /// `%{ assert tcpi_state == TCPI_X }%`: the state of the connection with
    /// the scripted peer (packetdrill's socket under test), else LISTEN if a
    /// listener holds the port, else CLOSED.
    fn assert_state(&mut self, ev: &Event, code: &str) -> Step {
        let want = match assertion(code) {
            Some(Assertion::State(name)) => name,
            Some(Assertion::Options(want)) => return self.assert_options(ev, want),
            None => "",
        };
        let remote = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT);
        let port = self.local_port;
        let sockets = self
            .engine
            .as_ref()
            .map(Engine::sockets)
            .unwrap_or_default();
        let conn = sockets
            .iter()
            .find(|s| s.remote == Some(remote) && s.local.port() == port)
            .map(|s| s.state);
        let got = match conn {
            Some(SocketState::Tcp(state)) => tcpi_name(state),
            _ if sockets
                .iter()
                .any(|s| s.state == SocketState::Listen && s.local.port() == port) =>
            {
                "TCPI_LISTEN"
            }
            _ => "TCPI_CLOSED",
        };
        if got != want {
            return self.mismatch(ev, format!("tcpi_state {got}"));
        }
        Ok(())
    }

    /// `assert tcpi_options == ...`: the options the connection negotiated,
    /// as TCP_INFO's bits.
    fn assert_options(&mut self, ev: &Event, want: u8) -> Step {
        let remote = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT);
        let port = self.local_port;
        let h = self.fds.values().find_map(|f| match f.sock {
            Sock::Conn(h) => Some(h),
            _ => None,
        });
        let info = h.and_then(|h| {
            let e = self.engine.as_ref()?;
            let ok = e
                .sockets()
                .iter()
                .any(|s| s.remote == Some(remote) && s.local.port() == port);
            ok.then(|| e.tcp_info(h).ok()).flatten()
        });
        let Some(info) = info else {
            return self.mismatch(ev, "no connection for tcpi_options".into());
        };
        let got = [
            (info.timestamps, TCPI_OPT_TIMESTAMPS),
            (info.sack, TCPI_OPT_SACK),
            (info.wscale.is_some(), TCPI_OPT_WSCALE),
        ]
        .iter()
        .filter(|&&(on, _)| on)
        .fold(0, |bits, &(_, bit)| bits | bit);
        if got != want {
            return self.mismatch(ev, format!("tcpi_options {}", options_names(got)));
        }
        Ok(())
    }

    // ----- System calls -----

    fn fd(&self, ev: &Event, s: &Syscall) -> Step<i32> {
        let fd = s.args.first().and_then(Expr::int).unwrap_or(-1) as i32;
        if self.fds.contains_key(&fd) {
            Ok(fd)
        } else {
            Err(self.fail(ev, format!("fd {fd} is not open")))
        }
    }

    fn syscall(&mut self, ev: &Event, s: &Syscall, window: (i64, i64)) -> Step {
        let result = match s.name.as_str() {
            "socket" => self.socket(ev, s)?,
            "fcntl" => self.fcntl(ev, s)?,
            "setsockopt" => self.setsockopt(ev, s)?,
            "getsockopt" => self.getsockopt(ev, s)?,
            "bind" => self.bind(ev, s)?,
            "listen" => self.listen(ev, s)?,
            "close" => self.close(ev, s)?,
            "shutdown" => self.shutdown(ev, s)?,
            "accept" | "connect" | "read" | "recv" | "write" | "send" | "sendto" => {
                let fd = self.fd(ev, s)?;
                let remaining = s.args.get(2).and_then(Expr::int).unwrap_or(0).max(0) as usize;
                let tried = if s.name == "connect" {
                    self.connect(ev, fd)?
                } else {
                    let peek = peek_flag(s)?;
                    self.attempt(fd, &s.name, remaining, peek)?
                };
                let tried = match tried {
                    None if self.fds.get(&fd).is_some_and(|e| e.nonblocking) => {
                        Some(Err(Error::WouldBlock))
                    }
                    other => other,
                };
                match tried {
                    Some(r) => Some(self.map_io(&s.name, r)),
                    None => {
                        self.blocked = Some(Blocked {
                            event: ev.clone(),
                            call: s.clone(),
                            window,
                            remaining,
                        });
                        None
                    }
                }
            }
            other => {
                return Err(Stop::Unsupported(format!(
                    "runner gap: system call {other}"
                )));
            }
        };
        if let Some((ret, errno)) = result {
            self.compare(ev, s, ret, errno.as_deref())?;
        }
        Ok(())
    }

    /// A result as the kernel reports it: EINPROGRESS for a connect that
    /// would block, EAGAIN for anything else.
    fn map_io(&self, name: &str, r: Result<i64, Error>) -> (i64, Option<String>) {
        match r {
            Ok(n) => (n, None),
            Err(Error::WouldBlock) if name == "connect" => (-1, Some("EINPROGRESS".into())),
            Err(e) => (-1, Some(errno(e).into())),
        }
    }

    fn compare(&mut self, ev: &Event, s: &Syscall, ret: i64, errno: Option<&str>) -> Step {
        let same_errno = match (errno, s.errno.as_deref()) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b || same_errno(a, b),
            (Some(_), None) | (None, Some(_)) => ret != -1 && s.ret != -1,
        };
        if ret != s.ret || !same_errno {
            let got = match errno {
                Some(e) => format!("= {ret} {e}"),
                None => format!("= {ret}"),
            };
            return self.mismatch(ev, got);
        }
        Ok(())
    }

    /// One try of a call that may block: `None` if it would block.
    fn attempt(
        &mut self,
        fd: i32,
        name: &str,
        len: usize,
        peek: bool,
    ) -> Step<Option<Result<i64, Error>>> {
        let now = Self::instant(self.now);
        let sock = self.fds[&fd].sock;
        let r = match (name, sock) {
            ("accept", Sock::Listener(l)) => match self.engine().accept(l) {
                Ok(c) => {
                    let new = self.alloc_fd();
                    let mut entry = self.fds[&fd].clone();
                    entry.sock = Sock::Conn(c);
                    entry.bound = None;
                    if let Some(tos) = entry.tos {
                        let _ = self.engine().set_tos(c, tos);
                    }
                    self.fds.insert(new, entry);
                    Ok(i64::from(new))
                }
                Err(e) => Err(e),
            },
            ("read" | "recv", Sock::Conn(c)) => {
                let mut buf = vec![0u8; len];
                if peek {
                    self.engine().peek(c, &mut buf).map(|n| n as i64)
                } else {
                    self.engine().recv(now, c, &mut buf).map(|n| n as i64)
                }
            }
            ("write" | "send" | "sendto", Sock::Conn(c)) => {
                let data = vec![0u8; len];
                self.engine().send(now, c, &data).map(|n| n as i64)
            }
            (_, Sock::Fresh) if name != "accept" => Err(Error::NotConnected),
            _ => Err(Error::InvalidInput),
        };
        Ok(match r {
            Err(Error::WouldBlock) => None,
            other => Some(other),
        })
    }

    /// Retries a blocked call; checks its result and time when it returns.
    fn retry_blocked(&mut self) -> Step {
        let Some(b) = self.blocked.take() else {
            return Ok(());
        };
        let fd = b.call.args.first().and_then(Expr::int).unwrap_or(-1) as i32;
        if !self.fds.contains_key(&fd) {
            return Err(self.fail(&b.event, format!("fd {fd} closed while blocked")));
        }
        let r = if b.call.name == "connect" {
            let Sock::Conn(h) = self.fds[&fd].sock else {
                return Err(self.fail(&b.event, "connect on a socket with no connection".into()));
            };
            match self.engine().connect_result(h) {
                Ok(false) => None,
                Ok(true) => Some(Ok(0)),
                Err(e) => Some(Err(e)),
            }
        } else {
            let peek = peek_flag(&b.call)?;
            self.attempt(fd, &b.call.name, b.remaining, peek)?
        };
        let Some(r) = r else {
            self.blocked = Some(b);
            return Ok(());
        };
        let (ret, errno) = self.map_io(&b.call.name, r);
        let (lo, hi) = b.window;
        if self.now < lo - self.tolerance || self.now > hi + self.tolerance {
            self.mismatch(
                &b.event,
                format!(
                    "the call returned at {:.6}s (= {ret}{})",
                    self.now as f64 / 1e6,
                    errno
                        .as_deref()
                        .map(|e| format!(" {e}"))
                        .unwrap_or_default()
                ),
            )?;
        }
        self.compare(&b.event, &b.call, ret, errno.as_deref())
    }

    fn alloc_fd(&self) -> i32 {
        (3..).find(|f| !self.fds.contains_key(f)).unwrap_or(3)
    }

    fn socket(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        if s.args.get(1).and_then(Expr::name) != Some("SOCK_STREAM") {
            return Err(Stop::Unsupported(format!(
                "a socket other than TCP (line {})",
                ev.line
            )));
        }
        if let Some(change) = self.config_changed.take() {
            let busy = self.engine.as_ref().is_some_and(|e| e.socket_count() > 0);
            if busy {
                return Err(Stop::Unsupported(format!(
                    "runner gap: sysctl {change} changed the configuration while sockets were open"
                )));
            }
            self.engine = None;
        }
        self.engine();
        let fd = self.alloc_fd();
        self.fds.insert(
            fd,
            Fd {
                sock: Sock::Fresh,
                nonblocking: false,
                opts: SocketOptions::default(),
                bound: None,
                tos: None,
                connect_timeout: None,
                keepalive: self.config.keepalive,
            },
        );
        Ok(Some((i64::from(fd), None)))
    }

    fn fcntl(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let entry = self.fds.get_mut(&fd).expect("checked");
        match s.args.get(1).and_then(Expr::name) {
            Some("F_GETFL") => Ok(Some((2 | if entry.nonblocking { 4 } else { 0 }, None))),
            Some("F_SETFL") => {
                let names = names(s.args.get(2));
                entry.nonblocking = names.iter().any(|n| n == "O_NONBLOCK");
                Ok(Some((0, None)))
            }
            other => Err(Stop::Unsupported(format!("fcntl {other:?}"))),
        }
    }

    fn setsockopt(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let name = s.args.get(2).and_then(Expr::name).unwrap_or("").to_string();
        let value = s.args.get(3);
        let int = value.and_then(Expr::int);
        let now = Self::instant(self.now);
        let sock = self.fds[&fd].sock;
        let conn = match sock {
            Sock::Conn(h) => Some(h),
            _ => None,
        };
        let mut r: Result<(), Error> = Ok(());
        match name.as_str() {
            "SO_REUSEADDR" => self.entry(fd).opts.reuseaddr = int.unwrap_or(0) != 0,
            "SO_REUSEPORT" => self.entry(fd).opts.reuseport = int.unwrap_or(0) != 0,
            "SO_RCVBUF" | "SO_SNDBUF" if matches!(sock, Sock::Fresh) => {
                let n = int.unwrap_or(0).max(0) as usize;
                let e = self.entry(fd);
                if name == "SO_RCVBUF" {
                    e.opts.recv_buffer = Some(n);
                } else {
                    e.opts.send_buffer = Some(n);
                }
            }
            "TCP_NODELAY" => {
                let on = int.unwrap_or(0) != 0;
                self.entry(fd).opts.nodelay = on;
                if let Some(h) = conn {
                    r = self.engine().set_nodelay(h, on);
                }
            }
            "IP_TTL" => {
                let ttl = int.unwrap_or(64).clamp(0, 255) as u8;
                self.entry(fd).opts.ttl = Some(ttl);
                if let Some(h) = conn {
                    r = self.engine().set_ttl(h, ttl);
                }
            }
            "IP_TOS" => {
                let tos = match value.and_then(Expr::name) {
                    Some(n) => tos_value(n)
                        .ok_or_else(|| Stop::Unsupported(format!("IP_TOS value {n}")))?,
                    None => int.unwrap_or(0).clamp(0, 255) as u8,
                };
                self.entry(fd).tos = Some(tos);
                self.entry(fd).opts.tos = tos;
                match sock {
                    // A listener's SYN-ACKs carry it too.
                    Sock::Conn(h) | Sock::Listener(h) => r = self.engine().set_tos(h, tos),
                    _ => {}
                }
            }
            "SO_KEEPALIVE" => {
                let on = int.unwrap_or(0) != 0;
                let e = self.entry(fd);
                e.opts.keepalive = on.then_some(e.keepalive);
                let k = e.opts.keepalive;
                if let Some(h) = conn {
                    r = self.engine().set_keepalive(now, h, k);
                }
            }
            "TCP_KEEPIDLE" | "TCP_KEEPINTVL" | "TCP_KEEPCNT" => {
                let n = int.unwrap_or(0);
                let linux = self.profile.name == "linux";
                let e = self.entry(fd);
                let on = e.opts.keepalive.is_some();
                if !on && !linux {
                    return Err(Stop::Unsupported(format!(
                        "{name} without SO_KEEPALIVE (FreeBSD's keepalive timers for idle connections)"
                    )));
                }
                if n < 1 {
                    // Linux: EINVAL for a value below 1 (as the engine's
                    // set_keepalive for a zero setting).
                    r = Err(Error::InvalidInput);
                } else {
                    let n = n as u64;
                    let k = &mut e.keepalive;
                    match name.as_str() {
                        "TCP_KEEPIDLE" => k.idle = Duration::from_secs(n),
                        "TCP_KEEPINTVL" => k.interval = Duration::from_secs(n),
                        _ => k.count = u32::try_from(n).unwrap_or(u32::MAX),
                    }
                    let k = *k;
                    if on {
                        e.opts.keepalive = Some(k);
                        if let Some(h) = conn {
                            r = self.engine().set_keepalive(now, h, Some(k));
                        }
                    }
                }
            }
            "SO_LINGER" => {
                let (on, secs) = match value {
                    Some(Expr::Struct(f)) => {
                        let get =
                            |k: &str| f.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.int());
                        (
                            get("l_onoff").unwrap_or(0) != 0,
                            get("l_linger").unwrap_or(0),
                        )
                    }
                    _ => return Err(Stop::Unsupported("SO_LINGER value".into())),
                };
                let linger = on.then(|| Duration::from_secs(secs.max(0) as u64));
                self.entry(fd).opts.linger = linger;
                if let Some(h) = conn {
                    r = self.engine().set_linger(h, linger);
                }
            }
            "TCP_KEEPINIT" => {
                let t = Duration::from_secs(int.unwrap_or(0).max(0) as u64);
                self.entry(fd).connect_timeout = Some(t);
                if let Some(h) = conn {
                    r = self.engine().set_connect_timeout(now, h, Some(t));
                }
            }
            // FreeBSD's TCP_NOOPT has no equivalent (Linux has none either),
            // and synack has no TCP-MD5 (RFC 2385): refused as a kernel
            // without them refuses an option it does not know.
            "TCP_NOOPT" | "TCP_MD5SIG" => {
                return Ok(Some((-1, Some("ENOPROTOOPT".into()))));
            }
            other => {
                return Err(Stop::Unsupported(format!(
                    "socket option {other} (FreeBSD-only or not mapped)"
                )));
            }
        }
        Ok(Some(match r {
            Ok(()) => (0, None),
            Err(e) => (-1, Some(errno(e).into())),
        }))
    }

    fn entry(&mut self, fd: i32) -> &mut Fd {
        self.fds.get_mut(&fd).expect("fd checked")
    }

    fn getsockopt(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let name = s.args.get(2).and_then(Expr::name).unwrap_or("").to_string();
        let want = s.args.get(3);
        let sock = self.fds[&fd].sock;
        match name.as_str() {
            "SO_ERROR" => {
                let got = match sock {
                    Sock::Conn(h) | Sock::Listener(h) => self.engine().take_error(h).ok().flatten(),
                    Sock::Fresh => None,
                };
                let got_name = got.map(errno).unwrap_or("0");
                let want_name = match want {
                    Some(w) => match (w.int(), w.name()) {
                        (Some(0), _) => "0".to_string(),
                        (_, Some(n)) => n.to_string(),
                        _ => "?".to_string(),
                    },
                    None => "0".to_string(),
                };
                if got_name != want_name && !same_errno(got_name, &want_name) {
                    self.mismatch(ev, format!("SO_ERROR {got_name}"))?;
                }
                Ok(Some((0, None)))
            }
            "SO_RCVBUF" | "SO_SNDBUF" if !self.profile.check_buffer_sizes => Ok(Some((0, None))),
            "TCP_NODELAY" => {
                let on = self.fds[&fd].opts.nodelay;
                if want.and_then(Expr::int).map(|v| v != 0) != Some(on) {
                    self.mismatch(ev, format!("TCP_NODELAY {}", u8::from(on)))?;
                }
                Ok(Some((0, None)))
            }
            "TCP_KEEPIDLE" | "TCP_KEEPINTVL" | "TCP_KEEPCNT" | "TCP_KEEPINIT" => {
                let e = &self.fds[&fd];
                let k = e.opts.keepalive.unwrap_or(e.keepalive);
                let got = match name.as_str() {
                    "TCP_KEEPIDLE" => Some(k.idle.as_secs()),
                    "TCP_KEEPINTVL" => Some(k.interval.as_secs()),
                    "TCP_KEEPCNT" => Some(u64::from(k.count)),
                    // FreeBSD's connection-establishment timeout.
                    _ => e
                        .connect_timeout
                        .or(self.config.connect_timeout)
                        .map(|t| t.as_secs()),
                };
                let want = want.and_then(Expr::int);
                if got.map(|g| g as i64) != want {
                    self.mismatch(ev, format!("{name} {got:?}"))?;
                }
                Ok(Some((0, None)))
            }
            other => Err(Stop::Unsupported(format!(
                "getsockopt {other} (FreeBSD-only or not mapped)"
            ))),
        }
    }

    fn bind(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let reuse = self.fds[&fd].opts.reuse();
        let r = self
            .engine()
            .bind(SocketAddrV4::new(LOCAL_IP, LOCAL_PORT), reuse);
        Ok(Some(match r {
            Ok(a) => {
                self.entry(fd).bound = Some((a, reuse));
                (0, None)
            }
            Err(e) => (-1, Some(errno(e).into())),
        }))
    }

    fn listen(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let backlog = s.args.get(1).and_then(Expr::int).unwrap_or(1).max(0) as usize;
        let e = self.fds[&fd].clone();
        let local = match e.bound {
            Some((a, reuse)) => {
                self.engine().unbind(a.port(), reuse);
                a
            }
            None => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        };
        let r = self.engine().listen_with(local, backlog, e.opts);
        Ok(Some(match r {
            Ok(h) => {
                let e = self.entry(fd);
                e.sock = Sock::Listener(h);
                e.bound = None;
                self.local_port = local.port();
                (0, None)
            }
            Err(err) => {
                if let Some((a, reuse)) = e.bound {
                    let _ = self.engine().bind(a, reuse);
                }
                (-1, Some(errno(err).into()))
            }
        }))
    }

    /// Starts a connect; `Some` when it finished (or failed) at once.
    fn connect(&mut self, ev: &Event, fd: i32) -> Step<Option<Result<i64, Error>>> {
        let e = self.fds[&fd].clone();
        if !matches!(e.sock, Sock::Fresh) {
            return Err(Stop::Unsupported(format!(
                "runner gap: connect on a connected or listening socket (line {})",
                ev.line
            )));
        }
        let local = match e.bound {
            Some((a, reuse)) => {
                self.engine().unbind(a.port(), reuse);
                a
            }
            None => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        };
        let now = Self::instant(self.now);
        let remote = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT);
        let h = match self.engine().connect_with(now, local, remote, e.opts) {
            Ok(h) => h,
            Err(err) => return Ok(Some(Err(err))),
        };
        if let Some(tos) = e.tos {
            let _ = self.engine().set_tos(h, tos);
        }
        if let Some(t) = e.connect_timeout {
            let _ = self.engine().set_connect_timeout(now, h, Some(t));
        }
        self.local_port = self.engine().local_addr(h).map(|a| a.port()).unwrap_or(0);
        let entry = self.entry(fd);
        entry.sock = Sock::Conn(h);
        entry.bound = None;
        Ok(match self.engine().connect_result(h) {
            Ok(true) => Some(Ok(0)),
            Ok(false) => None,
            Err(err) => Some(Err(err)),
        })
    }

    fn shutdown(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let how = s.args.get(1).and_then(Expr::name).unwrap_or("");
        let now = Self::instant(self.now);
        let r = match (self.fds[&fd].sock, how) {
            (Sock::Conn(_), "SHUT_RD") => Ok(()),
            (Sock::Conn(h), "SHUT_WR" | "SHUT_RDWR") => self.engine().shutdown(now, h),
            (Sock::Conn(_), other) => {
                return Err(Stop::Unsupported(format!("shutdown {other}")));
            }
            _ => Err(Error::NotConnected),
        };
        Ok(Some(match r {
            Ok(()) => (0, None),
            Err(e) => (-1, Some(errno(e).into())),
        }))
    }

    fn close(&mut self, ev: &Event, s: &Syscall) -> Step<Option<(i64, Option<String>)>> {
        let fd = self.fd(ev, s)?;
        let e = self.fds.remove(&fd).expect("checked");
        let now = Self::instant(self.now);
        match e.sock {
            Sock::Conn(h) | Sock::Listener(h) => self.engine().close(now, h),
            Sock::Fresh => {
                if let Some((a, reuse)) = e.bound {
                    self.engine().unbind(a.port(), reuse);
                }
            }
        }
        Ok(Some((0, None)))
    }
}

/// ICMPv4 type and code of a script's ICMP line (RFC 792, RFC 1812 §5.2.7.1).
fn icmp_type_code(icmp: &Icmp) -> Result<(u8, u8), String> {
    let code = icmp.code.as_deref().unwrap_or("");
    let unreachable = [
        "net_unreachable",
        "host_unreachable",
        "protocol_unreachable",
        "port_unreachable",
        "frag_needed",
        "source_route_failed",
        "net_unknown",
        "host_unknown",
        "source_host_isolated",
        "net_prohibited",
        "host_prohibited",
        "net_unreachable_for_tos",
        "host_unreachable_for_tos",
        "packet_filtered",
        "precedence_violation",
        "precedence_cutoff",
    ];
    let numbered = |prefix: &str| code.strip_prefix(prefix).and_then(|n| n.parse::<u8>().ok());
    let r = match icmp.kind.as_str() {
        "unreachable" => unreachable
            .iter()
            .position(|&c| c == code)
            .map(|n| (3, n as u8)),
        "source_quench" if code.is_empty() => Some((4, 0)),
        "redirect" if code.is_empty() => Some((5, 0)),
        "time_exceeded" => match code {
            "ttl_exceeded_in_transit" => Some((11, 0)),
            "frag_reass_exceeded" => Some((11, 1)),
            _ => None,
        },
        "parameter_problem" => numbered("code_").map(|n| (12, n)),
        _ => None,
    };
    r.ok_or_else(|| format!("ICMPv4 has no `{} {code}` (an ICMPv6 name?)", icmp.kind))
}

/// The Python blocks the runner understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assertion<'a> {
    /// `assert tcpi_state == TCPI_X`.
    State(&'a str),
    /// `assert tcpi_options == (TCPI_OPT_A | TCPI_OPT_B ...)`: the bits.
    Options(u8),
}

/// TCP_INFO's `tcpi_options` bits (Linux's and FreeBSD's values).
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;
const TCPI_OPT_ECN: u8 = 8;
const TCPI_OPTS: [(&str, u8); 4] = [
    ("TCPI_OPT_TIMESTAMPS", TCPI_OPT_TIMESTAMPS),
    ("TCPI_OPT_SACK", TCPI_OPT_SACK),
    ("TCPI_OPT_WSCALE", TCPI_OPT_WSCALE),
    ("TCPI_OPT_ECN", TCPI_OPT_ECN),
];

/// `bits` as the script writes them.
fn options_names(bits: u8) -> String {
    let names: Vec<&str> = TCPI_OPTS
        .iter()
        .filter(|&&(_, b)| bits & b != 0)
        .map(|&(n, _)| n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        format!("({})", names.join(" | "))
    }
}

/// A Python block the runner can check, if it is one.
fn assertion(code: &str) -> Option<Assertion<'_>> {
    let rest = code.trim().strip_prefix("assert")?.trim();
    if let Some(rest) = rest.strip_prefix("tcpi_state") {
        let name = rest.trim().strip_prefix("==")?.trim();
        return (name.starts_with("TCPI_")
            && name[5..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
        .then_some(Assertion::State(name));
    }
    let expr = rest
        .strip_prefix("tcpi_options")?
        .trim()
        .strip_prefix("==")?
        .trim();
    let expr = expr
        .strip_prefix('(')
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or(expr);
    let mut bits = 0;
    for name in expr.split('|').map(str::trim) {
        bits |= if name == "0" {
            0
        } else {
            TCPI_OPTS.iter().find(|&&(n, _)| n == name)?.1
        };
    }
    Some(Assertion::Options(bits))
}

/// FreeBSD's `tcpi_state` name of a state.
fn tcpi_name(state: State) -> &'static str {
    match state {
        State::SynSent => "TCPI_SYN_SENT",
        State::SynReceived => "TCPI_SYN_RECEIVED",
        State::Established => "TCPI_ESTABLISHED",
        State::FinWait1 => "TCPI_FIN_WAIT_1",
        State::FinWait2 => "TCPI_FIN_WAIT_2",
        State::CloseWait => "TCPI_CLOSE_WAIT",
        State::Closing => "TCPI_CLOSING",
        State::LastAck => "TCPI_LAST_ACK",
        State::TimeWait => "TCPI_TIME_WAIT",
        State::Closed => "TCPI_CLOSED",
    }
}

/// Whether a `recv`/`send` call's flags (its fourth argument) ask for
/// `MSG_PEEK`; flags the runner does not map make the script unsupported.
fn peek_flag(s: &Syscall) -> Step<bool> {
    if !matches!(s.name.as_str(), "recv" | "send" | "sendto") {
        return Ok(false);
    }
    match s.args.get(3) {
        None => Ok(false),
        Some(e) if e.int() == Some(0) => Ok(false),
        Some(e) => {
            let flags = names(Some(e));
            if s.name == "recv" && flags == ["MSG_PEEK"] {
                Ok(true)
            } else {
                Err(Stop::Unsupported(format!(
                    "runner gap: {} flags {flags:?}",
                    s.name
                )))
            }
        }
    }
}

/// The names in an `A | B` argument.
fn names(e: Option<&Expr>) -> Vec<String> {
    match e {
        Some(Expr::Name(n)) => vec![n.clone()],
        Some(Expr::Or(v)) => v.iter().flat_map(|x| names(Some(x))).collect(),
        _ => Vec::new(),
    }
}

/// `IPTOS_DSCP_CSn` and friends.
fn tos_value(name: &str) -> Option<u8> {
    if let Some(n) = name.strip_prefix("IPTOS_DSCP_CS") {
        return n.parse::<u8>().ok().filter(|&n| n < 8).map(|n| n << 5);
    }
    match name {
        "IPTOS_DSCP_EF" => Some(0xb8),
        "IPTOS_LOWDELAY" => Some(0x10),
        "IPTOS_THROUGHPUT" => Some(0x08),
        "IPTOS_RELIABILITY" => Some(0x04),
        _ => None,
    }
}

/// The errno a kernel gives for an engine error.
fn errno(e: Error) -> &'static str {
    match e {
        Error::WouldBlock => "EAGAIN",
        Error::InvalidHandle => "EBADF",
        Error::InvalidInput => "EINVAL",
        Error::AddrInUse => "EADDRINUSE",
        Error::AddrNotAvailable => "EADDRNOTAVAIL",
        Error::ConnectionRefused => "ECONNREFUSED",
        Error::ConnectionReset => "ECONNRESET",
        Error::ConnectionAborted => "ECONNABORTED",
        Error::TimedOut => "ETIMEDOUT",
        Error::BrokenPipe => "EPIPE",
        Error::HostUnreachable => "EHOSTUNREACH",
        Error::NetworkUnreachable => "ENETUNREACH",
        Error::NotConnected => "ENOTCONN",
        Error::PermissionDenied => "EACCES",
        Error::MessageTooLong => "EMSGSIZE",
    }
}

/// Names for the same errno value.
fn same_errno(a: &str, b: &str) -> bool {
    let canon = |e: &str| if e == "EWOULDBLOCK" { "EAGAIN" } else { e }.to_string();
    canon(a) == canon(b)
}

/// The flags of a segment in script letters.
fn flag_string(tcp: &TcpPacket<&[u8]>) -> String {
    let mut s = String::new();
    for (on, c) in [
        (tcp.syn(), 'S'),
        (tcp.fin(), 'F'),
        (tcp.rst(), 'R'),
        (tcp.psh(), 'P'),
        (tcp.urg(), 'U'),
        (tcp.ece(), 'E'),
        (tcp.cwr(), 'W'),
        (tcp.ack(), '.'),
    ] {
        if on {
            s.push(c);
        }
    }
    s
}

fn sorted(s: &str) -> Vec<char> {
    let mut v: Vec<char> = s.chars().collect();
    v.sort_unstable();
    v
}

/// The options of a segment.
fn read_options(mut b: &[u8]) -> Result<Vec<TcpOption>, String> {
    let mut out = Vec::new();
    while let Some(&kind) = b.first() {
        match kind {
            0 => {
                out.push(TcpOption::Eol);
                b = &b[1..];
                continue;
            }
            1 => {
                out.push(TcpOption::Nop);
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let len = *b.get(1).ok_or("truncated option")? as usize;
        if len < 2 || len > b.len() {
            return Err(format!("bad option length {len}"));
        }
        let d = &b[2..len];
        let be32 = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
        out.push(match (kind, d.len()) {
            (2, 2) => TcpOption::Mss(u16::from_be_bytes([d[0], d[1]])),
            (3, 1) => TcpOption::WindowScale(d[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 => TcpOption::Sack(
                d.chunks(8)
                    .map(|c| (be32(&c[..4]), be32(&c[4..])))
                    .collect(),
            ),
            (8, 8) => TcpOption::Timestamp {
                val: be32(&d[..4]),
                ecr: be32(&d[4..]),
            },
            _ => return Err(format!("option kind {kind} length {len}")),
        });
        b = &b[len..];
    }
    Ok(out)
}

/// An option in script form.
fn option_text(o: &TcpOption) -> String {
    match o {
        TcpOption::Nop => "nop".into(),
        TcpOption::Eol => "eol".into(),
        TcpOption::Mss(m) => format!("mss {m}"),
        TcpOption::WindowScale(s) => format!("wscale {s}"),
        TcpOption::SackPermitted => "sackOK".into(),
        TcpOption::Sack(b) => format!(
            "sack {}",
            b.iter()
                .map(|(x, y)| format!("{x}:{y}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        TcpOption::Timestamp { val, ecr } => format!("TS val {val} ecr {ecr}"),
        TcpOption::Md5(s) => format!("md5 {s}"),
        TcpOption::FastOpen(c) => format!("FO {}", c.as_deref().unwrap_or("")),
        TcpOption::Any => "...".into(),
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A passive open, ten bytes in (their ACK delayed, as FreeBSD does), a
    /// close from our side: our own script.
    const PASSIVE: &str = "\
--tolerance_usecs=10000
0.000 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0.1 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+0 fcntl(4, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0 read(4, ..., 100) = -1 EAGAIN (Resource temporarily unavailable)
+0.1 < P. 1:11(10) ack 1 win 65535
+0.04 > . 1:1(0) ack 11
+0 read(4, ..., 100) = 10
+0 close(4) = 0
+0 > F. 1:1(0) ack 11
+0.1 < F. 11:11(0) ack 2 win 65535
+0 > . 2:2(0) ack 12
";

    fn outcome(text: &str) -> Outcome {
        let profile = Profile::freebsd();
        let script = parse::parse(text, profile.defines).expect("parses");
        let (outcome, log) = run_traced(&script, &profile);
        for l in log {
            println!("{l}");
        }
        outcome
    }

    fn failure_line(o: Outcome) -> usize {
        match o {
            Outcome::Fail(f) => f.line,
            other => panic!("expected a failure, got {other}"),
        }
    }

    #[test]
    fn a_correct_script_passes() {
        assert_eq!(outcome(PASSIVE), Outcome::Pass);
    }

    #[test]
    fn a_wrong_ack_fails_at_its_line() {
        let bad = PASSIVE.replace("+0.04 > . 1:1(0) ack 11", "+0.04 > . 1:1(0) ack 12");
        assert_eq!(failure_line(outcome(&bad)), 13);
    }

    #[test]
    fn a_wrong_return_value_fails() {
        let bad = PASSIVE.replace("read(4, ..., 100) = 10", "read(4, ..., 100) = 9");
        assert_eq!(failure_line(outcome(&bad)), 14);
    }

    #[test]
    fn a_segment_the_script_does_not_expect_fails() {
        let bad = PASSIVE.replace("+0 > F. 1:1(0) ack 11\n", "");
        // The FIN is still queued when the peer's FIN comes.
        assert_eq!(failure_line(outcome(&bad)), 16);
    }

    #[test]
    fn a_late_segment_fails() {
        let bad = PASSIVE.replace("+0 > F. 1:1(0) ack 11", "+0.5 > F. 1:1(0) ack 11");
        assert_eq!(failure_line(outcome(&bad)), 16);
    }

    #[test]
    fn wrong_options_fail() {
        let bad = PASSIVE.replace(
            "> S. 0:0(0) ack 1 <mss 1460>",
            "> S. 0:0(0) ack 1 <mss 1400>",
        );
        assert_eq!(failure_line(outcome(&bad)), 7);
    }

    #[test]
    fn tcpi_state_is_checked() {
        let with = |state: &str| {
            PASSIVE.replace(
                "+0 accept(3, ..., ...) = 4\n",
                &format!("+0 accept(3, ..., ...) = 4\n+0 %{{ assert tcpi_state == {state} }}%\n"),
            )
        };
        assert_eq!(outcome(&with("TCPI_ESTABLISHED")), Outcome::Pass);
        assert_eq!(failure_line(outcome(&with("TCPI_CLOSE_WAIT"))), 10);
    }

    #[test]
    fn a_tolerated_line_is_passed_over_and_the_rest_checked() {
        let profile = Profile::freebsd();
        let bad = PASSIVE.replace("+0.04 > . 1:1(0) ack 11", "+0.04 > . 1:1(0) ack 12");
        let script = parse::parse(&bad, profile.defines).expect("parses");
        let r = execute(&script, &profile, &[13]);
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.tolerated.iter().map(|f| f.line).collect::<Vec<_>>(), [13]);
        // A second difference after it still fails.
        let worse = bad.replace("read(4, ..., 100) = 10", "read(4, ..., 100) = 9");
        let script = parse::parse(&worse, profile.defines).expect("parses");
        let r = execute(&script, &profile, &[13]);
        assert!(
            matches!(r.outcome, Outcome::Fail(ref f) if f.line == 14),
            "{}",
            r.outcome
        );
    }

    /// Keep-alive settings before `SO_KEEPALIVE`, as Linux allows.
    const KEEPALIVE: &str = "\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+0 setsockopt(4, IPPROTO_TCP, TCP_KEEPIDLE, [5], 4) = 0
+0 setsockopt(4, IPPROTO_TCP, TCP_KEEPINTVL, [2], 4) = 0
+0 setsockopt(4, IPPROTO_TCP, TCP_KEEPCNT, [1], 4) = 0
+0 setsockopt(4, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0
+5 > . 0:0(0) ack 1
+2 > R 1:1(0)
";

    fn linux_outcome(text: &str) -> Outcome {
        let profile = Profile::linux();
        let script = parse::parse(text, profile.defines).expect("parses");
        let (outcome, log) = run_traced(&script, &profile);
        for l in log {
            println!("{l}");
        }
        outcome
    }

    #[test]
    fn python_assertions_the_runner_reads() {
        assert_eq!(
            assertion("assert tcpi_options == (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK)"),
            Some(Assertion::Options(3))
        );
        assert_eq!(
            assertion(" assert tcpi_options == TCPI_OPT_WSCALE "),
            Some(Assertion::Options(4))
        );
        assert_eq!(
            assertion("assert tcpi_state == TCPI_LISTEN"),
            Some(Assertion::State("TCPI_LISTEN"))
        );
        assert_eq!(assertion("assert tcpi_options == TCPI_OPT_BOGUS"), None);
        assert_eq!(assertion("assert tcpi_rtt > 0"), None);
        assert_eq!(
            options_names(TCPI_OPT_SACK | TCPI_OPT_ECN),
            "(TCPI_OPT_SACK | TCPI_OPT_ECN)"
        );
    }

    #[test]
    fn linux_keepalive_settings_wait_for_so_keepalive() {
        assert_eq!(linux_outcome(KEEPALIVE), Outcome::Pass);
        // The settings are used: a probe at the default 7200 s would fail.
        let late = KEEPALIVE.replace("+5 > .", "+6 > .");
        assert_eq!(failure_line(linux_outcome(&late)), 12);
        // Without SO_KEEPALIVE there is no probe at all.
        let off = KEEPALIVE.replace("SO_KEEPALIVE, [1]", "SO_KEEPALIVE, [0]");
        assert_eq!(failure_line(linux_outcome(&off)), 12);
        // A zero setting is EINVAL, as on Linux.
        let zero = KEEPALIVE.replace("TCP_KEEPCNT, [1], 4) = 0", "TCP_KEEPCNT, [0], 4) = 0");
        assert_eq!(failure_line(linux_outcome(&zero)), 10);
        let einval = KEEPALIVE.replace(
            "TCP_KEEPCNT, [1], 4) = 0",
            "TCP_KEEPCNT, [1], 4) = 0\n+0 setsockopt(4, IPPROTO_TCP, TCP_KEEPCNT, [0], 4) = -1 EINVAL (Invalid argument)",
        );
        assert_eq!(linux_outcome(&einval), Outcome::Pass);
        // FreeBSD's profile still calls the settings without SO_KEEPALIVE unsupported.
        assert!(
            matches!(outcome(KEEPALIVE), Outcome::Unsupported(ref why) if why.contains("TCP_KEEPIDLE")),
            "{}",
            outcome(KEEPALIVE)
        );
    }

    #[test]
    fn the_linux_profile_checks_windows() {
        let s = "\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,nop,wscale 7>
+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 3>
";
        assert_eq!(linux_outcome(s), Outcome::Pass);
        let wrong = s.replace("ack 1 win 65535", "ack 1 win 1000");
        assert_eq!(failure_line(linux_outcome(&wrong)), 5);
        // FreeBSD's profile does not.
        assert_eq!(outcome(&wrong), Outcome::Pass);
    }

    #[test]
    fn ipv6_is_unsupported() {
        let o = outcome(&format!("--ip_version=ipv6\n{PASSIVE}"));
        assert!(
            matches!(o, Outcome::Unsupported(ref why) if why.contains("IPv6")),
            "{o}"
        );
    }

    #[test]
    fn a_blocking_connect_returns_when_the_handshake_completes() {
        let s = "\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0...0.2 connect(3, ..., ...) = 0
+0 > S 0:0(0) <...>
+0.2 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 > . 1:1(0) ack 1
";
        assert_eq!(outcome(s), Outcome::Pass);
        let early = s.replace("+0...0.2", "+0...0.1");
        assert_eq!(failure_line(outcome(&early)), 2);
    }
}
