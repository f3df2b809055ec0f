//! Per-connection options for the front end: keepalive (RFC 1122 §4.2.3.6),
//! linger, the user timeout (RFC 9293 §3.8.3, RFC 5482), quick ACKs, the
//! connect timeout, the IP type of service (RFC 1122 §4.2.4.2) and urgent data. Each mirrors the Linux socket option of the same name.

use std::time::Duration;

use crate::{Engine, Error, Instant, SocketHandle};

/// Keepalive settings (Linux's `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe. RFC 1122 §4.2.3.6: at least two hours by default.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped with [`Error::TimedOut`].
    pub count: u32,
}

impl Default for Keepalive {
    /// Linux's defaults: 7200 s idle, 75 s interval, 9 probes.
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

impl Engine {
    /// Turns keepalive on with these settings, or off with `None` (the default,
    /// RFC 1122 §4.2.3.6). The idle time counts from the last segment received.
    /// A zero idle time, interval or probe count is [`Error::InvalidInput`].
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        h: SocketHandle,
        keepalive: Option<Keepalive>,
    ) -> Result<(), Error> {
        if keepalive.is_some_and(|k| k.idle.is_zero() || k.interval.is_zero() || k.count == 0) {
            return Err(Error::InvalidInput);
        }
        let tcb = self.tcb_mut(h)?;
        tcb.keepalive = keepalive;
        tcb.arm_keepalive();
        self.after(now, h);
        Ok(())
    }

    /// The keepalive settings, `None` when off.
    pub fn keepalive(&self, h: SocketHandle) -> Result<Option<Keepalive>, Error> {
        Ok(self.tcb(h)?.keepalive)
    }

    /// `SO_LINGER`: `Some(Duration::ZERO)` makes [`close`](Engine::close) reset
    /// the connection and free it at once; `None` or any other time closes
    /// gracefully (the engine never blocks, so the time itself is only stored).
    pub fn set_linger(&mut self, h: SocketHandle, linger: Option<Duration>) -> Result<(), Error> {
        self.tcb_mut(h)?.linger = linger;
        Ok(())
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self, h: SocketHandle) -> Result<Option<Duration>, Error> {
        Ok(self.tcb(h)?.linger)
    }

    /// `TCP_USER_TIMEOUT` (RFC 5482, RFC 9293 §3.8.3): when sent data (or the
    /// SYN) stays unacknowledged this long, the connection fails with
    /// [`Error::TimedOut`], however many retransmissions are left. `None` (or
    /// zero) turns it off.
    pub fn set_user_timeout(
        &mut self,
        h: SocketHandle,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        self.tcb_mut(h)?.user_timeout = timeout.filter(|t| !t.is_zero());
        Ok(())
    }

    /// The user timeout, `None` when off.
    pub fn user_timeout(&self, h: SocketHandle) -> Result<Option<Duration>, Error> {
        Ok(self.tcb(h)?.user_timeout)
    }

    /// `TCP_QUICKACK`: acknowledge every data segment at once (`true`) or
    /// delay ACKs as usual (RFC 1122 §4.2.3.2). Unlike Linux, the switch stays
    /// where it is set.
    pub fn set_quickack(&mut self, h: SocketHandle, quickack: bool) -> Result<(), Error> {
        self.tcb_mut(h)?.quickack = quickack;
        Ok(())
    }

    /// Whether quick ACKs are on.
    pub fn quickack(&self, h: SocketHandle) -> Result<bool, Error> {
        Ok(self.tcb(h)?.quickack)
    }

    /// Sends `data` as urgent data (RFC 9293 §3.8.5, `MSG_OOB`): like
    /// [`send`](Engine::send), and the urgent pointer marks the end of what was
    /// written. The data stays in the stream; the peer learns where it ends.
    pub fn send_urgent(
        &mut self,
        now: Instant,
        h: SocketHandle,
        data: &[u8],
    ) -> Result<usize, Error> {
        let n = self.send(now, h, data)?;
        if n > 0 {
            self.tcb_mut(h)?.mark_urgent();
        }
        Ok(n)
    }

    /// How many bytes from the read position to the end of the peer's urgent
    /// data (RFC 9293 §3.8.5), or `None` when no urgent data is pending. The
    /// urgent bytes stay in the stream (as with `SO_OOBINLINE`); a new mark
    /// raises a readable event.
    pub fn urgent_mark(&self, h: SocketHandle) -> Result<Option<usize>, Error> {
        Ok(self.tcb(h)?.urgent_mark())
    }

    /// `IP_TOS`: the type-of-service byte of the connection's datagrams (RFC 1122
    /// §4.2.4.2: passed to IP unchanged; may change during the connection),
    /// or of a listener's SYN-ACKs and the connections it accepts. As on
    /// Linux, the two ECN bits are not the application's and are cleared.
    pub fn set_tos(&mut self, h: SocketHandle, tos: u8) -> Result<(), Error> {
        let tos = tos & !0x03;
        if let Ok(l) = self.listener_mut(h) {
            l.options.tos = tos;
            return Ok(());
        }
        self.tcb_mut(h)?.tos = tos;
        Ok(())
    }

    /// The type-of-service byte of the socket's datagrams.
    pub fn tos(&self, h: SocketHandle) -> Result<u8, Error> {
        if let Some(crate::Socket::Listener(l)) = self.slot(h).and_then(|s| s.socket.as_ref()) {
            return Ok(l.options.tos);
        }
        Ok(self.tcb(h)?.tos)
    }

    /// Gives a connection attempt at most `timeout` from now before it fails with
    /// [`Error::TimedOut`] (`None`: only the SYN retries bound it). Overrides
    /// [`Config::connect_timeout`](crate::Config::connect_timeout); has no effect
    /// once the connection is established.
    pub fn set_connect_timeout(
        &mut self,
        now: Instant,
        h: SocketHandle,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        let tcb = self.tcb_mut(h)?;
        if tcb.state.is_synchronized() || tcb.state == crate::State::Closed {
            return Ok(());
        }
        tcb.set_connect_deadline(timeout.map(|t| now + t));
        self.after(now, h);
        Ok(())
    }
}
