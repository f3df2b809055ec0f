//! Our own parser for the TCP subset of packetdrill's script language, written
//! from the language's description (google/packetdrill's `syntax.md`) and the
//! FreeBSD suite's scripts; no code or grammar of packetdrill is used.
//!
//! A script is a list of option lines (`--name=value`) and events, one per
//! line (backtick commands and `%{ }%` blocks may span lines). An event has an
//! optional time (`0.10`, `+0.10`, `*`, a range `0.1~0.2`, a blocking interval
//! `1.0...6.0`) and a body: an inbound (`<`) or outbound (`>`) packet, a
//! system call with its expected result, a shell command in backticks, or a
//! `%{ }%` block of Python (kept as text, never run). `#ifdef NAME` /
//! `#endif` sections are kept when `NAME` is among the defines given.

use std::fmt;

/// A parse error: the 1-based line of the script and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line the statement starts on.
    pub line: usize,
    /// What could not be read.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A parsed script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    /// Option lines (`--tolerance_usecs=25000` gives `("tolerance_usecs", Some("25000"))`).
    pub options: Vec<(String, Option<String>)>,
    /// The events, in script order.
    pub events: Vec<Event>,
}

impl Script {
    /// The value of option `name`, if the script sets it.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// One timed statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The 1-based line it starts on.
    pub line: usize,
    /// Its text as written (trimmed, comments removed).
    pub text: String,
    /// When it happens.
    pub time: Time,
    /// For a blocking call written `start...end`: when it returns.
    pub end: Option<Time>,
    /// What happens.
    pub kind: EventKind,
}

/// An event's time, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// Since the start of the script.
    Absolute(i64),
    /// Since the previous event.
    Relative(i64),
    /// Any time (`*`).
    Any,
    /// Between two times, both absolute or both relative (`0.1~0.2`, `+0.1~+0.2`).
    Range {
        /// The earliest.
        lo: i64,
        /// The latest.
        hi: i64,
        /// Relative to the previous event.
        relative: bool,
    },
}

/// What an event does.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A packet in (`<`) or out (`>`).
    Packet(Packet),
    /// A system call and its expected result.
    Syscall(Syscall),
    /// A shell command (the text between backticks).
    Command(String),
    /// A `%{ }%` block (Python in packetdrill), as text.
    Code(String),
}

/// The direction of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Injected into the stack under test (`<`).
    Inbound,
    /// Expected from the stack under test (`>`).
    Outbound,
}

/// A packet line.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// In or out.
    pub direction: Direction,
    /// An ECN codepoint in brackets (`[noecn]`, `[ect0]`, `[ect1]`, `[ce]`).
    pub ecn: Option<String>,
    /// IP type of service (`(tos 0x28)`).
    pub tos: Option<u8>,
    /// IP time to live (`(ttl 3)`).
    pub ttl: Option<u8>,
    /// UDP encapsulation ports (`/udp(1 > 9811)`): source, destination.
    pub udp: Option<(u16, u16)>,
    /// TCP segment or ICMP message.
    pub body: PacketBody,
}

/// The transport part of a packet line.
#[derive(Debug, Clone, PartialEq)]
pub enum PacketBody {
    /// A TCP segment.
    Tcp(Segment),
    /// An ICMP message about a TCP segment.
    Icmp(Icmp),
}

/// A TCP segment as a script writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Flag letters as written: `S`, `F`, `R`, `P`, `.` (ACK), `E`, `W`, `U`.
    pub flags: String,
    /// First sequence number, relative to the sender's ISN (unless `absolute`).
    pub start: u32,
    /// Sequence number after the data.
    pub end: u32,
    /// Payload length.
    pub len: u32,
    /// The `!` mark: the sequence number is absolute, not relative to an ISN.
    pub absolute: bool,
    /// `...(len)`: any sequence number.
    pub any_seq: bool,
    /// `ack N`, relative to the receiver's ISN.
    pub ack: Option<u32>,
    /// `win N`: the window field.
    pub win: Option<u32>,
    /// `urg N`: the urgent pointer.
    pub urg: Option<u32>,
    /// TCP options between `<` and `>`; `None` when the line has none.
    pub options: Option<Vec<TcpOption>>,
}

impl Segment {
    /// Whether flag letter `c` is set.
    pub fn has(&self, c: char) -> bool {
        self.flags.contains(c)
    }
}

/// A TCP option as a script writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption {
    /// `nop`.
    Nop,
    /// `eol`.
    Eol,
    /// `mss N`.
    Mss(u16),
    /// `wscale N`.
    WindowScale(u8),
    /// `sackOK`.
    SackPermitted,
    /// `sack a:b c:d ...`, relative to the data sender's ISN.
    Sack(Vec<(u32, u32)>),
    /// `TS val x ecr y`.
    Timestamp {
        /// TSval.
        val: u32,
        /// TSecr.
        ecr: u32,
    },
    /// `md5 valid` / `md5 invalid` (RFC 2385; not supported by the runner).
    Md5(String),
    /// `FO` / `FO cookie` (TCP Fast Open, RFC 7413; not supported by the runner).
    FastOpen(Option<String>),
    /// `...`: any options (packetdrill's wildcard).
    Any,
}

/// An ICMP message line: `icmp unreachable port_unreachable [0:0(0)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    /// The type name (`unreachable`, `time_exceeded`, `parameter_problem`, ...).
    pub kind: String,
    /// The code name, if any (`port_unreachable`, `frag_needed`, ...).
    pub code: Option<String>,
    /// The `mtu N` of a "fragmentation needed" or "packet too big".
    pub mtu: Option<u32>,
    /// The quoted TCP segment's `start:end(len)`.
    pub quoted: Option<(u32, u32, u32)>,
}

/// A system call line: `connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// The call's name.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// The expected return value.
    pub ret: i64,
    /// The expected errno name, for a return of -1.
    pub errno: Option<String>,
}

/// An argument of a system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A number.
    Int(i64),
    /// `...`: anything (packetdrill fills it in).
    Ellipsis,
    /// A symbolic constant (`SOCK_STREAM`, `O_NONBLOCK`).
    Name(String),
    /// A string literal.
    Str(String),
    /// `A | B | ...`.
    Or(Vec<Expr>),
    /// `[x, ...]`: a pointer to values.
    List(Vec<Expr>),
    /// `{name=value, ...}`: a structure.
    Struct(Vec<(String, Expr)>),
}

impl Expr {
    /// The value of a number, or of a one-element list holding a number.
    pub fn int(&self) -> Option<i64> {
        match self {
            Expr::Int(n) => Some(*n),
            Expr::List(v) if v.len() == 1 => v[0].int(),
            _ => None,
        }
    }

    /// The name of a symbolic constant, or of a one-element list holding one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Expr::Name(n) => Some(n),
            Expr::List(v) if v.len() == 1 => v[0].name(),
            _ => None,
        }
    }
}

/// Parses a script, keeping the `#ifdef` sections whose name is in `defines`.
pub fn parse(text: &str, defines: &[&str]) -> Result<Script, ParseError> {
    let mut script = Script::default();
    for (line, stmt) in statements(text, defines)? {
        let err = |message: String| ParseError { line, message };
        if let Some(opt) = stmt.strip_prefix("--") {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (opt.trim().to_string(), None),
            };
            script.options.push((name, value));
            continue;
        }
        let mut c = Cursor::new(&stmt);
        let (time, end) = c.time().map_err(err)?;
        c.ws();
        let body = c.rest().to_string();
        let kind = if let Some(cmd) = body.strip_prefix('`') {
            let cmd = cmd
                .strip_suffix('`')
                .ok_or_else(|| err("unterminated backtick command".into()))?;
            EventKind::Command(cmd.trim().to_string())
        } else if let Some(code) = body.strip_prefix("%{") {
            let code = code
                .strip_suffix("}%")
                .ok_or_else(|| err("unterminated %{ }% block".into()))?;
            EventKind::Code(code.trim().to_string())
        } else if body.starts_with('<') || body.starts_with('>') {
            EventKind::Packet(packet(&body).map_err(err)?)
        } else {
            EventKind::Syscall(syscall(&body).map_err(err)?)
        };
        script.events.push(Event {
            line,
            text: stmt.trim().to_string(),
            time,
            end,
            kind,
        });
    }
    Ok(script)
}

/// Splits a script into statements with their first line number: comments
/// removed, `#ifdef` applied, multi-line commands and blocks joined.
fn statements(text: &str, defines: &[&str]) -> Result<Vec<(usize, String)>, ParseError> {
    let mut out = Vec::new();
    // Each open #ifdef: whether its section is kept.
    let mut conds: Vec<bool> = Vec::new();
    // A statement still open (a backtick command or code block), with its line.
    let mut open: Option<(usize, String)> = None;
    let mut in_comment = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if let Some((start, mut acc)) = open.take() {
            acc.push('\n');
            acc.push_str(raw);
            if complete(&acc) {
                out.push((start, acc.trim().to_string()));
            } else {
                open = Some((start, acc));
            }
            continue;
        }
        let mut s = strip_comment(raw, &mut in_comment);
        let t = s.trim();
        if let Some(name) = t.strip_prefix("#ifdef") {
            conds.push(defines.contains(&name.trim()));
            continue;
        }
        if let Some(name) = t.strip_prefix("#ifndef") {
            conds.push(!defines.contains(&name.trim()));
            continue;
        }
        if t.starts_with("#else") {
            if let Some(c) = conds.last_mut() {
                *c = !*c;
            }
            continue;
        }
        if t.starts_with("#endif") {
            if conds.pop().is_none() {
                return Err(ParseError {
                    line,
                    message: "#endif without #ifdef".into(),
                });
            }
            continue;
        }
        if t.is_empty() || conds.iter().any(|c| !c) {
            continue;
        }
        s = t.to_string();
        if complete(&s) {
            out.push((line, s));
        } else {
            open = Some((line, s));
        }
    }
    if let Some((line, _)) = open {
        return Err(ParseError {
            line,
            message: "unterminated command or block".into(),
        });
    }
    if !conds.is_empty() {
        return Err(ParseError {
            line: text.lines().count(),
            message: "#ifdef without #endif".into(),
        });
    }
    Ok(out)
}

/// Whether a statement's backticks and `%{ }%` are closed.
fn complete(s: &str) -> bool {
    if let Some(i) = s.find("%{") {
        return s[i..].contains("}%");
    }
    s.matches('`').count().is_multiple_of(2)
}

/// A line without its `//` and `/* */` comments (not inside backticks or quotes).
fn strip_comment(raw: &str, in_comment: &mut bool) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let b: Vec<char> = raw.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        let next = b.get(i + 1).copied();
        if *in_comment {
            if ch == '*' && next == Some('/') {
                *in_comment = false;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        match quote {
            Some(q) => {
                if ch == q {
                    quote = None;
                }
            }
            None => {
                if ch == '`' || ch == '"' {
                    quote = Some(ch);
                } else if ch == '/' && next == Some('/') {
                    break;
                } else if ch == '/' && next == Some('*') {
                    *in_comment = true;
                    i += 2;
                    continue;
                }
            }
        }
        out.push(ch);
        i += 1;
    }
    // A backtick command open at the end of the line continues on the next.
    out
}

/// A reading position in one statement.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.rest().is_empty()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.rest().starts_with(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &str) -> Result<(), String> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(format!("expected `{t}` at `{}`", self.rest()))
        }
    }

    /// A run of characters satisfying `f` (after whitespace).
    fn take(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        self.ws();
        let r = self.rest();
        let n = r.find(|c: char| !f(c)).unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }

    fn word(&mut self) -> &'a str {
        self.take(|c| !c.is_whitespace())
    }

    fn ident(&mut self) -> &'a str {
        self.take(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// A non-negative decimal or hexadecimal integer.
    fn uint(&mut self) -> Result<u64, String> {
        let t = self.take(|c| c.is_ascii_alphanumeric());
        parse_uint(t).ok_or_else(|| format!("expected a number, found `{t}`"))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let n = self.uint()?;
        u32::try_from(n).map_err(|_| format!("{n} does not fit 32 bits"))
    }

    /// A time in seconds (`1`, `0.25`, `.5`) as microseconds.
    fn seconds(&mut self) -> Result<i64, String> {
        self.ws();
        let r = self.rest();
        let mut n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if r[n..].starts_with('.') && !r[n..].starts_with("...") {
            n += 1;
            n += r[n..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(r.len() - n);
        }
        self.pos += n;
        let t = &r[..n];
        seconds(t).ok_or_else(|| format!("expected a time, found `{t}`"))
    }

    /// One time: `*`, `N`, `+N`, `N~N`, `+N~+N`; the cursor stays put if the
    /// statement has no time.
    fn time_one(&mut self) -> Result<Option<Time>, String> {
        self.ws();
        if self.eat("*") {
            return Ok(Some(Time::Any));
        }
        let relative = if self.rest().starts_with('+') {
            self.pos += 1;
            true
        } else {
            false
        };
        self.ws();
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == '.' && !self.rest().starts_with("..."))
        {
            if relative {
                return Err("expected a time after `+`".into());
            }
            return Ok(None);
        }
        let lo = self.seconds()?;
        let save = self.pos;
        if self.eat("~") {
            self.eat("+");
            let hi = self.seconds()?;
            return Ok(Some(Time::Range { lo, hi, relative }));
        }
        self.pos = save;
        Ok(Some(if relative {
            Time::Relative(lo)
        } else {
            Time::Absolute(lo)
        }))
    }

    /// The time prefix of a statement and the end of a blocking interval.
    fn time(&mut self) -> Result<(Time, Option<Time>), String> {
        let start = self.time_one()?.unwrap_or(Time::Relative(0));
        // `start...end`, the dots written right after the start.
        if self.rest().starts_with("...") {
            self.pos += 3;
            let end = self
                .time_one()?
                .ok_or("expected the end time of a blocking call")?;
            return Ok((start, Some(end)));
        }
        Ok((start, None))
    }
}

/// A non-negative decimal or `0x` hexadecimal integer.
fn parse_uint(t: &str) -> Option<u64> {
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// Seconds written in decimal as microseconds, without floating point.
fn seconds(t: &str) -> Option<i64> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 6 || frac.contains('.') {
        return None;
    }
    let int: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        f *= 10;
    }
    Some(int * 1_000_000 + f)
}

/// A packet line (after the time).
fn packet(body: &str) -> Result<Packet, String> {
    let mut c = Cursor::new(body);
    let direction = if c.eat("<") {
        Direction::Inbound
    } else {
        c.expect(">")?;
        Direction::Outbound
    };
    let mut ecn = None;
    if c.eat("[") {
        ecn = Some(c.ident().to_string());
        c.expect("]")?;
    }
    let (mut tos, mut ttl) = (None, None);
    while c.eat("(") {
        loop {
            let name = c.ident();
            let value = c.uint()?;
            let v = u8::try_from(value).map_err(|_| format!("{name} {value} is too large"))?;
            match name {
                // IPv6's names for the same fields.
                "tos" | "class" => tos = Some(v),
                "ttl" | "hlim" => ttl = Some(v),
                _ => return Err(format!("unknown IP attribute `{name}`")),
            }
            if !c.eat(",") {
                break;
            }
        }
        c.expect(")")?;
    }
    c.ws();
    let body = if c.rest().starts_with("icmp") {
        c.pos += 4;
        PacketBody::Icmp(icmp(&mut c)?)
    } else {
        PacketBody::Tcp(segment(&mut c)?)
    };
    let mut udp = None;
    if c.eat("/udp(") {
        let src = c.uint()?;
        c.expect(">")?;
        let dst = c.uint()?;
        c.expect(")")?;
        udp = Some((src as u16, dst as u16));
    }
    if !c.at_end() {
        return Err(format!("unexpected `{}`", c.rest()));
    }
    Ok(Packet {
        direction,
        ecn,
        tos,
        ttl,
        udp,
        body,
    })
}

/// `start:end(len)`, with an optional `!`.
fn seq_range(c: &mut Cursor) -> Result<(u32, u32, u32, bool), String> {
    let start = c.u32()?;
    c.expect(":")?;
    let end = c.u32()?;
    c.expect("(")?;
    let len = c.u32()?;
    c.expect(")")?;
    if end.wrapping_sub(start) != len {
        return Err(format!("{start}:{end} is not {len} bytes long"));
    }
    let absolute = c.eat("!");
    Ok((start, end, len, absolute))
}

fn icmp(c: &mut Cursor) -> Result<Icmp, String> {
    let kind = c.ident().to_string();
    if kind.is_empty() {
        return Err("expected an ICMP type".into());
    }
    let mut code = None;
    let mut mtu = None;
    let mut quoted = None;
    loop {
        c.ws();
        if c.eat("[") {
            let (s, e, l, _) = seq_range(c)?;
            quoted = Some((s, e, l));
            // The quoted segment's UDP encapsulation, if any.
            if c.eat("/udp(") {
                c.take(|ch| ch != ')');
                c.expect(")")?;
            }
            c.expect("]")?;
            break;
        }
        if c.rest().starts_with("mtu") {
            c.pos += 3;
            mtu = Some(c.u32()?);
            continue;
        }
        let w = c.ident();
        if w.is_empty() {
            break;
        }
        code = Some(w.to_string());
    }
    Ok(Icmp {
        kind,
        code,
        mtu,
        quoted,
    })
}

fn segment(c: &mut Cursor) -> Result<Segment, String> {
    let mut flags = c.take(|ch| "SFRP.EWU".contains(ch)).to_string();
    if flags.is_empty() {
        return Err(format!("expected TCP flags at `{}`", c.rest()));
    }
    // `F  .`: the ACK flag written apart.
    c.ws();
    if c.rest().starts_with(". ") {
        c.pos += 1;
        flags.push('.');
    }
    let any_seq = c.eat("...");
    let (start, end, len, absolute) = if any_seq {
        c.expect("(")?;
        let len = c.u32()?;
        c.expect(")")?;
        (0, len, len, false)
    } else {
        seq_range(c)?
    };
    let mut seg = Segment {
        flags,
        start,
        end,
        len,
        absolute,
        any_seq,
        ack: None,
        win: None,
        urg: None,
        options: None,
    };
    loop {
        c.ws();
        let r = c.rest();
        if r.starts_with("ack") {
            c.pos += 3;
            seg.ack = Some(c.u32()?);
        } else if r.starts_with("win") {
            c.pos += 3;
            seg.win = Some(c.u32()?);
        } else if r.starts_with("urg") {
            c.pos += 3;
            seg.urg = Some(c.u32()?);
        } else if r.starts_with('<') {
            c.pos += 1;
            let inner = c.take(|ch| ch != '>');
            c.expect(">")?;
            seg.options = Some(tcp_options(inner)?);
        } else {
            break;
        }
    }
    Ok(seg)
}

/// The options between `<` and `>`.
fn tcp_options(inner: &str) -> Result<Vec<TcpOption>, String> {
    let mut out = Vec::new();
    for part in inner.split(',') {
        let mut c = Cursor::new(part.trim());
        if c.at_end() {
            return Err("empty TCP option".into());
        }
        if c.eat("...") {
            out.push(TcpOption::Any);
            continue;
        }
        let name = c.ident();
        let opt = match name {
            "nop" => TcpOption::Nop,
            "eol" => TcpOption::Eol,
            "sackOK" => TcpOption::SackPermitted,
            "mss" => TcpOption::Mss(
                u16::try_from(c.uint()?).map_err(|_| "mss does not fit 16 bits".to_string())?,
            ),
            "wscale" => TcpOption::WindowScale(
                u8::try_from(c.uint()?).map_err(|_| "wscale does not fit 8 bits".to_string())?,
            ),
            "sack" => {
                let mut blocks = Vec::new();
                while !c.at_end() {
                    let a = c.u32()?;
                    c.expect(":")?;
                    let b = c.u32()?;
                    blocks.push((a, b));
                }
                TcpOption::Sack(blocks)
            }
            "TS" => {
                c.ws();
                if c.ident() != "val" {
                    return Err("expected `TS val`".into());
                }
                let val = c.u32()?;
                c.ws();
                if c.ident() != "ecr" {
                    return Err("expected `ecr`".into());
                }
                let ecr = c.u32()?;
                TcpOption::Timestamp { val, ecr }
            }
            "md5" => TcpOption::Md5(c.word().to_string()),
            "FO" => {
                let w = c.word();
                TcpOption::FastOpen((!w.is_empty()).then(|| w.to_string()))
            }
            other => return Err(format!("unknown TCP option `{other}`")),
        };
        if !c.at_end() {
            return Err(format!("unexpected `{}` in option `{name}`", c.rest()));
        }
        out.push(opt);
    }
    Ok(out)
}

/// A system call line: `name(args) = ret [ERRNO] [(text)]`.
fn syscall(body: &str) -> Result<Syscall, String> {
    let mut c = Cursor::new(body);
    let name = c.ident().to_string();
    if name.is_empty() {
        return Err(format!("expected a system call at `{body}`"));
    }
    c.expect("(")?;
    let mut args = Vec::new();
    if !c.eat(")") {
        loop {
            args.push(expr(&mut c)?);
            if c.eat(")") {
                break;
            }
            c.expect(",")?;
        }
    }
    c.expect("=")?;
    let neg = c.eat("-");
    let ret = c.uint()? as i64;
    let ret = if neg { -ret } else { ret };
    c.ws();
    let mut errno = None;
    if c.peek().is_some_and(|ch| ch.is_ascii_uppercase()) {
        errno = Some(c.ident().to_string());
    }
    // A note in parentheses: the errno's text, or `(flags O_RDWR)`.
    if c.eat("(") {
        let mut depth = 1;
        while depth > 0 {
            match c.rest().chars().next() {
                None => return Err("unterminated note".into()),
                Some(ch) => {
                    c.pos += ch.len_utf8();
                    match ch {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
        }
    }
    if !c.at_end() {
        return Err(format!("unexpected `{}`", c.rest()));
    }
    Ok(Syscall {
        name,
        args,
        ret,
        errno,
    })
}

/// An argument: terms joined by `|`.
fn expr(c: &mut Cursor) -> Result<Expr, String> {
    let first = term(c)?;
    let mut terms = vec![first];
    while c.eat("|") {
        terms.push(term(c)?);
    }
    Ok(if terms.len() == 1 {
        terms.pop().unwrap_or(Expr::Ellipsis)
    } else {
        Expr::Or(terms)
    })
}

fn term(c: &mut Cursor) -> Result<Expr, String> {
    c.ws();
    if c.eat("...") {
        return Ok(Expr::Ellipsis);
    }
    if c.eat("[") {
        let mut items = Vec::new();
        if !c.eat("]") {
            loop {
                items.push(expr(c)?);
                if c.eat("]") {
                    break;
                }
                c.expect(",")?;
            }
        }
        return Ok(Expr::List(items));
    }
    if c.eat("{") {
        let mut fields = Vec::new();
        if !c.eat("}") {
            loop {
                let name = c.ident().to_string();
                c.expect("=")?;
                fields.push((name, expr(c)?));
                if c.eat("}") {
                    break;
                }
                c.expect(",")?;
            }
        }
        return Ok(Expr::Struct(fields));
    }
    if c.eat("\"") {
        let s = c.take(|ch| ch != '"').to_string();
        c.expect("\"")?;
        return Ok(Expr::Str(s));
    }
    if c.eat("-") {
        return Ok(Expr::Int(-(c.uint()? as i64)));
    }
    match c.peek() {
        Some(ch) if ch.is_ascii_digit() => Ok(Expr::Int(c.uint()? as i64)),
        Some(ch) if ch.is_ascii_alphabetic() || ch == '_' => Ok(Expr::Name(c.ident().to_string())),
        _ => Err(format!("unexpected `{}` in arguments", c.rest())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Event {
        let s = parse(line, &[]).unwrap();
        assert_eq!(s.events.len(), 1, "{line}");
        s.events[0].clone()
    }

    fn seg(line: &str) -> (Packet, Segment) {
        match one(line).kind {
            EventKind::Packet(p) => match p.body.clone() {
                PacketBody::Tcp(s) => (p, s),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn times() {
        assert_eq!(one("0.00 close(3) = 0").time, Time::Absolute(0));
        assert_eq!(one("+0.10 close(3) = 0").time, Time::Relative(100_000));
        assert_eq!(one("+ 0.00 close(3) = 0").time, Time::Relative(0));
        assert_eq!(one("* > S 0:0(0)").time, Time::Any);
        assert_eq!(
            one("0.1~0.25 > S 0:0(0)").time,
            Time::Range {
                lo: 100_000,
                hi: 250_000,
                relative: false
            }
        );
        let e = one(" 1.00...6.00 connect(3, ..., ...) = -1 ETIMEDOUT (Operation timed out)");
        assert_eq!(e.time, Time::Absolute(1_000_000));
        assert_eq!(e.end, Some(Time::Absolute(6_000_000)));
    }

    #[test]
    fn options_lines_and_comments() {
        let s = parse(
            "// a comment\n--ip_version=ipv4\n--tolerance_usecs=25000\n--non_fatal=syscall\n\
             0.00 close(3) = 0 // trailing\n/* block\ncomment */ +0 close(4) = 0\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.option("ip_version"), Some("ipv4"));
        assert_eq!(s.option("tolerance_usecs"), Some("25000"));
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[1].line, 7);
    }

    #[test]
    fn segments() {
        let (p, s) =
            seg("+0.00 > S 0:0(0) win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0>");
        assert_eq!(p.direction, Direction::Outbound);
        assert_eq!(s.flags, "S");
        assert_eq!(s.win, Some(65535));
        assert_eq!(
            s.options.unwrap(),
            vec![
                TcpOption::Mss(1460),
                TcpOption::Nop,
                TcpOption::WindowScale(6),
                TcpOption::SackPermitted,
                TcpOption::Timestamp { val: 100, ecr: 0 }
            ]
        );
        let (_, s) = seg("+0.10 < P. 1:1461(1460) ack 1 win 32767");
        assert_eq!((s.start, s.end, s.len, s.ack), (1, 1461, 1460, Some(1)));
        assert!(s.has('P') && s.has('.') && s.options.is_none());
        let (_, s) = seg("+0.00 > R. 0:0(0)! ack 1 win 0");
        assert!(s.absolute);
        let (_, s) = seg("+0 < . 1:1(0) ack 2921 win 32767 <sack 4381:5841 5841:7301, nop, nop>");
        assert_eq!(
            s.options.unwrap()[0],
            TcpOption::Sack(vec![(4381, 5841), (5841, 7301)])
        );
        let (p, s) = seg("+0.10 < (ttl 3) F. 1:1(0) ack 1 win 32767/udp(1 > 9811)");
        assert_eq!((p.ttl, p.udp), (Some(3), Some((1, 9811))));
        assert_eq!(s.flags, "F.");
        let (p, s) = seg("+0 <[noecn] SEW 0:0(0) win 1000");
        assert_eq!(p.ecn.as_deref(), Some("noecn"));
        assert_eq!(s.flags, "SEW");
        assert!(parse("+0 > S 0:5(4)", &[]).is_err());
    }

    #[test]
    fn icmp_lines() {
        match one("+0.00 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]").kind {
            EventKind::Packet(Packet {
                body: PacketBody::Icmp(i),
                ..
            }) => {
                assert_eq!(i.kind, "unreachable");
                assert_eq!(i.code.as_deref(), Some("frag_needed"));
                assert_eq!(i.mtu, Some(1200));
                assert_eq!(i.quoted, Some((1, 1461, 1460)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syscalls() {
        match one("+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0").kind {
            EventKind::Syscall(s) => {
                assert_eq!(s.name, "fcntl");
                assert_eq!(
                    s.args[2],
                    Expr::Or(vec![
                        Expr::Name("O_RDWR".into()),
                        Expr::Name("O_NONBLOCK".into())
                    ])
                );
            }
            other => panic!("{other:?}"),
        }
        match one("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)").kind {
            EventKind::Syscall(s) => {
                assert_eq!((s.ret, s.errno.as_deref()), (-1, Some("EINPROGRESS")));
            }
            other => panic!("{other:?}"),
        }
        match one("+0 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)").kind {
            EventKind::Syscall(s) => assert_eq!((s.ret, s.errno), (2, None)),
            other => panic!("{other:?}"),
        }
        match one("+0 getsockopt(4, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0").kind {
            EventKind::Syscall(s) => assert_eq!(s.args[3].name(), Some("ECONNRESET")),
            other => panic!("{other:?}"),
        }
        match one(
            "+0 setsockopt(3, IPPROTO_TCP, TCP_FUNCTION_BLK, {function_set_name=\"freebsd\", pcbcnt=0}, 36) = 0",
        )
        .kind
        {
            EventKind::Syscall(s) => assert!(matches!(s.args[3], Expr::Struct(_))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_blocks_and_ifdef() {
        let s = parse(
            "0 `sysctl -w a=1`\n  `echo 'x ;\n y' | setkey -c`\n+0 %{ assert tcpi_state == 1 }%\n\
             #ifdef STANDARD\n+0 close(3) = 0\n#endif\n#ifdef FreeBSD\n+0 close(4) = 0\n#endif\n",
            &["STANDARD"],
        )
        .unwrap();
        assert_eq!(s.events.len(), 4);
        assert_eq!(s.events[0].kind, EventKind::Command("sysctl -w a=1".into()));
        assert_eq!(s.events[1].time, Time::Relative(0));
        assert!(matches!(s.events[2].kind, EventKind::Code(_)));
        assert_eq!(s.events[3].text, "+0 close(3) = 0");
    }
}
