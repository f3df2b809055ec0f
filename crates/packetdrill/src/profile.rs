//! Profiles: how to read the settings of the stack a suite was written for,
//! and what of its exact behaviour not to check.

use std::time::Duration;

use synack_engine::{Config, CongestionAlgorithm, SynCookies};

/// How a suite's scripts are read and checked.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile's name.
    pub name: &'static str,
    /// Check the window field of outbound segments. Off for FreeBSD, whose
    /// exact windows (`win 65535`, `win 1027` after scaling) follow from its
    /// buffer sizing, not from the protocol.
    pub check_window: bool,
    /// Check `SO_RCVBUF`/`SO_SNDBUF` read back by `getsockopt`. Off for
    /// FreeBSD, which rounds the receive buffer up to a multiple of the MSS
    /// (65536 reads back as 65700).
    pub check_buffer_sizes: bool,
    /// The `#ifdef` names defined: which variant of a script runs.
    pub defines: &'static [&'static str],
}

/// What a `sysctl -w` line means for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sysctl {
    /// The configuration was changed (or already meant this).
    Config,
    /// No meaning for synack and no effect on the outcome (a cache flush, a
    /// value that is synack's behaviour anyway, a knob of a feature the
    /// script then does not use).
    Ignored,
    /// A setting synack cannot honour; the script is unsupported for this reason.
    Unsupported(String),
}

impl Profile {
    /// FreeBSD (NPLab's packetdrill and the freebsd-net tcp-testsuite): its
    /// `sysctl -w net.inet.tcp.*` lines are mapped onto [`Config`], windows
    /// and buffer sizes are not checked, and the `STANDARD` (RFC) variant of
    /// an `#ifdef` runs rather than the `FreeBSD` one.
    pub fn freebsd() -> Profile {
        Profile {
            name: "freebsd",
            check_window: false,
            check_buffer_sizes: false,
            defines: &["STANDARD"],
        }
    }

    /// Linux, and synack's own scripts (`scripts/`): synack's defaults, which
    /// follow Linux's (IW10, RTO min 200 ms, initial RTO 1 s, delayed ACK
    /// 40 ms, window scale from the largest receive buffer, quick-ACK mode at
    /// the start of a connection, CUBIC, SACK and timestamps on). Windows are
    /// checked; buffer sizes read back are not (Linux doubles them).
    /// `sysctl -w net.ipv4.tcp_*` lines are mapped onto [`Config`]; the
    /// `Linux` variant of an `#ifdef` runs.
    pub fn linux() -> Profile {
        Profile {
            name: "linux",
            check_window: true,
            check_buffer_sizes: false,
            defines: &["Linux"],
        }
    }

    /// The configuration a script starts from: the engine's defaults, with
    /// FreeBSD's hard-coded constants where the engine has the knob and a
    /// script depends on it: a SYN is sent 11 times in all
    /// (`snd-syn-rtx-max-number`: 10 retransmissions) and the RTO is at
    /// most 64 s (`TCPTV_REXMTMAX`); there is no quick-ACK mode at the start
    /// of a connection (Linux's; FreeBSD delays the first ACK like the others).
    pub fn base_config(&self) -> Config {
        let mut c = Config::default();
        if self.name == "freebsd" {
            c.syn_retries = 10;
            c.max_rto = Duration::from_secs(64);
            // FreeBSD delays the ACK of in-order data from the first segment:
            // no quick-ACK mode at the start of a connection.
            c.initial_quickacks = 0;
        }
        c
    }

    /// Applies `name=value` to `config`.
    pub fn sysctl(&self, config: &mut Config, name: &str, value: &str) -> Sysctl {
        if self.name == "linux" {
            return linux_sysctl(config, name, value);
        }
        let unsupported = |why: &str| Sysctl::Unsupported(format!("sysctl {name}={value}: {why}"));
        let Ok(n) = value.trim().parse::<u64>() else {
            return unsupported("not a number");
        };
        let ms = Duration::from_millis(n);
        match name {
            // RFC 7323: 1 both, 2 window scaling only, 3 timestamps only.
            "net.inet.tcp.rfc1323" => {
                config.window_scaling = matches!(n, 1 | 2);
                config.timestamps = matches!(n, 1 | 3);
            }
            "net.inet.tcp.sack.enable" => config.sack = n != 0,
            "net.inet.tcp.rexmit_initial" => config.initial_rto = ms,
            "net.inet.tcp.rexmit_min" => config.min_rto = ms,
            "net.inet.tcp.delacktime" => config.delayed_ack = ms,
            "net.inet.tcp.recvspace" => {
                config.recv_buffer_initial = n as usize;
                config.recv_buffer = config.recv_buffer.max(n as usize);
            }
            "net.inet.tcp.sendspace" => {
                config.send_buffer_initial = n as usize;
                config.send_buffer = config.send_buffer.max(n as usize);
            }
            // The largest socket buffer, which also sets FreeBSD's window scale.
            "kern.ipc.maxsockbuf" => {
                config.recv_buffer = n as usize;
                config.send_buffer = n as usize;
                config.recv_buffer_initial = config.recv_buffer_initial.min(n as usize);
                config.send_buffer_initial = config.send_buffer_initial.min(n as usize);
            }
            // The time a connection may take to be established.
            "net.inet.tcp.keepinit" => {
                config.connect_timeout = Some(ms);
                config.syn_received_timeout = Some(ms);
            }
            // ICMP unreachable may reset a connection in SYN-SENT (RFC 5461).
            "net.inet.tcp.icmp_may_rst" => config.unreachable_fails_connect = n != 0,
            "net.inet.tcp.insecure_rst" | "net.inet.tcp.insecure_syn" => {
                if n != 0 {
                    return unsupported(
                        "the RFC 793 (insecure) variant; synack always applies RFC 5961",
                    );
                }
            }
            "net.inet.tcp.blackhole" => {
                if n != 0 {
                    return unsupported("synack always answers segments for no socket with RST");
                }
                return Sysctl::Ignored;
            }
            // 0 off, 1 ask for it, 2 (the default) only when the peer asks.
            // synack does not negotiate ECN (RFC 3168): it never asks and
            // never agrees; a script's ECN lines differ, each recorded in
            // an expectation file.
            "net.inet.tcp.ecn.enable" => return Sysctl::Ignored,
            "net.inet.tcp.ecn.maxretries" => return Sysctl::Ignored,
            // Whether FreeBSD drops its SYN options after the third
            // retransmission: synack keeps them (as Linux); the script shows
            // the difference, recorded in an expectation file.
            "net.inet.tcp.rexmit_drop_options" => return Sysctl::Ignored,
            // FreeBSD's slop added to the RTO: the timing it causes is checked
            // by the script and shows up as a difference when it matters.
            "net.inet.tcp.rexmit_slop" => return Sysctl::Ignored,
            // synack keeps no host cache.
            "net.inet.tcp.hostcache.purgenow" => return Sysctl::Ignored,
            // Whether SYN+FIN segments are dropped: the script checks what happens.
            "net.inet.tcp.drop_synfin" => return Sysctl::Ignored,
            "net.inet.tcp.udp_tunneling_port" | "net.inet.tcp.udp_tunneling_overhead" => {
                if n != 0 {
                    return unsupported("TCP over UDP (FreeBSD's UDP tunneling)");
                }
                return Sysctl::Ignored;
            }
            // SYN cookies (RFC 4987 §3.6): on overflow (synack's default), always, or never.
            "net.inet.tcp.syncookies" => {
                config.syn_cookies = if n == 0 {
                    SynCookies::Off
                } else if config.syn_cookies == SynCookies::Off {
                    SynCookies::OnOverflow
                } else {
                    config.syn_cookies
                };
            }
            "net.inet.tcp.syncookies_only" => {
                if n != 0 {
                    config.syn_cookies = SynCookies::Always;
                } else if config.syn_cookies == SynCookies::Always {
                    config.syn_cookies = SynCookies::OnOverflow;
                }
            }
            // The MSS assumed without an MSS option: synack's is RFC 9293's 536.
            "net.inet.tcp.mssdflt" => {
                if n != 536 {
                    return unsupported("synack assumes RFC 9293's 536 bytes");
                }
                return Sysctl::Ignored;
            }
            // RFC 7323 §3.2: synack drops a segment without timestamps once
            // they are negotiated, as FreeBSD does with 0.
            "net.inet.tcp.tolerate_missing_ts" => {
                if n != 0 {
                    return unsupported("synack drops segments missing timestamps (RFC 7323 §3.2)");
                }
                return Sysctl::Ignored;
            }
            // The keepalive settings new sockets start from (in ms; a count).
            "net.inet.tcp.keepidle" => config.keepalive.idle = ms,
            "net.inet.tcp.keepintvl" => config.keepalive.interval = ms,
            "net.inet.tcp.keepcnt" => config.keepalive.count = n as u32,
            _ if name.starts_with("net.inet.tcp.fastopen") => {
                return unsupported("TCP Fast Open (RFC 7413)");
            }
            _ => return unsupported("no meaning in synack"),
        }
        Sysctl::Config
    }
}

/// A Linux `sysctl -w net.ipv4.*` line.
fn linux_sysctl(config: &mut Config, name: &str, value: &str) -> Sysctl {
    let unsupported = |why: &str| Sysctl::Unsupported(format!("sysctl {name}={value}: {why}"));
    let value = value.trim();
    if name == "net.ipv4.tcp_congestion_control" {
        config.congestion = match value {
            "cubic" => CongestionAlgorithm::Cubic,
            "reno" => CongestionAlgorithm::NewReno,
            _ => return unsupported("synack has CUBIC and NewReno (`reno`) only"),
        };
        return Sysctl::Config;
    }
    let Ok(n) = value.parse::<u64>() else {
        return unsupported("not a number");
    };
    match name {
        "net.ipv4.tcp_sack" => config.sack = n != 0,
        "net.ipv4.tcp_timestamps" => config.timestamps = n != 0,
        "net.ipv4.tcp_window_scaling" => config.window_scaling = n != 0,
        // RFC 5961 §7: challenge ACKs per second, stack-wide.
        "net.ipv4.tcp_challenge_ack_limit" => {
            config.challenge_ack_limit = u32::try_from(n).unwrap_or(u32::MAX);
        }
        "net.ipv4.tcp_syn_retries" => config.syn_retries = u32::try_from(n).unwrap_or(u32::MAX),
        "net.ipv4.tcp_synack_retries" => {
            config.synack_retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        "net.ipv4.tcp_retries2" => config.data_retries = u32::try_from(n).unwrap_or(u32::MAX),
        "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => {
            return unsupported(
                "keepalive settings are per socket in synack, with no stack-wide default to inherit",
            );
        }
        _ => return unsupported("no meaning in synack"),
    }
    Sysctl::Config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freebsd_sysctls() {
        let p = Profile::freebsd();
        let mut c = p.base_config();
        assert_eq!(
            p.sysctl(&mut c, "net.inet.tcp.rfc1323", "0"),
            Sysctl::Config
        );
        assert!(!c.timestamps && !c.window_scaling);
        assert_eq!(
            p.sysctl(&mut c, "net.inet.tcp.rexmit_initial", "3000"),
            Sysctl::Config
        );
        assert_eq!(c.initial_rto, Duration::from_secs(3));
        assert_eq!(
            p.sysctl(&mut c, "net.inet.tcp.hostcache.purgenow", "1"),
            Sysctl::Ignored
        );
        assert!(matches!(
            p.sysctl(&mut c, "net.inet.tcp.insecure_rst", "1"),
            Sysctl::Unsupported(_)
        ));
        assert!(matches!(
            p.sysctl(&mut c, "net.inet.tcp.nonsense", "1"),
            Sysctl::Unsupported(_)
        ));
    }

    #[test]
    fn linux_is_synacks_defaults() {
        let p = Profile::linux();
        let c = p.base_config();
        let d = Config::default();
        assert_eq!(c.initial_window_segments, 10);
        assert_eq!(c.min_rto, Duration::from_millis(200));
        assert_eq!(c.initial_rto, Duration::from_secs(1));
        assert!(c.initial_quickacks > 0);
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
        assert!(p.check_window);
    }

    #[test]
    fn linux_sysctls() {
        let p = Profile::linux();
        let mut c = p.base_config();
        assert_eq!(
            p.sysctl(&mut c, "net.ipv4.tcp_challenge_ack_limit", "3"),
            Sysctl::Config
        );
        assert_eq!(c.challenge_ack_limit, 3);
        assert_eq!(
            p.sysctl(&mut c, "net.ipv4.tcp_congestion_control", "reno"),
            Sysctl::Config
        );
        assert_eq!(c.congestion, CongestionAlgorithm::NewReno);
        assert_eq!(p.sysctl(&mut c, "net.ipv4.tcp_sack", "0"), Sysctl::Config);
        assert!(!c.sack);
        assert!(matches!(
            p.sysctl(&mut c, "net.ipv4.tcp_congestion_control", "bbr"),
            Sysctl::Unsupported(_)
        ));
        // FreeBSD's names mean nothing here.
        assert!(matches!(
            p.sysctl(&mut c, "net.inet.tcp.sack.enable", "0"),
            Sysctl::Unsupported(_)
        ));
        assert!(matches!(
            p.sysctl(&mut c, "net.ipv4.tcp_keepalive_time", "10"),
            Sysctl::Unsupported(_)
        ));
    }
}
