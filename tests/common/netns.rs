//! Test support: throwaway Linux network namespaces.
//!
//! Tests that need root (TUN interfaces, namespaces) first call [`can_run`] and
//! skip with a printed reason when it fails:
//!
//! ```ignore
//! if let Err(reason) = netns::can_run() {
//!     netns::skip(&reason);
//!     return;
//! }
//! let ns = netns::NetNs::new("mytest")?;
//! ```
//!
//! Every namespace made by [`NetNs::new`] is deleted when its guard drops, also
//! when the test panics. Inside namespaces only the documentation prefixes
//! 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 may be used
//! ([`NetNs::addr_add`] refuses anything else), so no test traffic can leak out.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};

/// Where `ip netns` keeps its namespace handles.
const NETNS_DIR: &str = "/var/run/netns";

/// The prefixes tests may put inside namespaces (RFC 5737 documentation ranges).
pub const ALLOWED_PREFIXES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 0),
    Ipv4Addr::new(198, 51, 100, 0),
    Ipv4Addr::new(203, 0, 113, 0),
];

/// Checks that network-namespace tests can run here: running as root,
/// `/dev/net/tun` present and openable, `ip` on the `PATH`.
/// Returns the reason they cannot, otherwise.
pub fn can_run() -> Result<(), String> {
    match effective_uid() {
        Ok(0) => {}
        Ok(uid) => return Err(format!("needs root (effective uid is {uid})")),
        Err(e) => return Err(format!("cannot tell the effective uid: {e}")),
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    if let Err(e) = File::options().read(true).write(true).open("/dev/net/tun") {
        return Err(format!("cannot open /dev/net/tun: {e}"));
    }
    if find_on_path("ip").is_none() {
        return Err("`ip` (iproute2) is not on the PATH".into());
    }
    Ok(())
}

/// Prints that the current test is skipped, and why, to stderr and stdout.
///
/// With `SYNACK_REQUIRE_NETNS=1` in the environment (`.ci/run` sets it where
/// it runs as root with `/dev/net/tun`), a skip is a failure instead: there the
/// namespace tests must really run.
pub fn skip(reason: &str) {
    if std::env::var_os("SYNACK_REQUIRE_NETNS").is_some_and(|v| v == "1") {
        panic!("cannot run, but SYNACK_REQUIRE_NETNS=1: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    println!("SKIPPED: {reason}");
}

/// [`can_run`], printing the skip message when it fails: `if !netns::can_run_or_skip() { return; }`.
pub fn can_run_or_skip() -> bool {
    match can_run() {
        Ok(()) => true,
        Err(reason) => {
            skip(&reason);
            false
        }
    }
}

/// The effective uid, from `/proc/self/status` (no `unsafe`, no extra nix feature).
/// The namespace tests' runtime: multi-thread with 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A fresh namespace named after `prefix`, or `None` (printing `SKIPPED:` and
/// why, see [`skip`]) when namespace tests cannot run here. With `RUST_LOG`
/// set, also installs a tracing subscriber writing to the test's output.
pub fn start(prefix: &str) -> Option<NetNs> {
    if let Err(reason) = can_run() {
        skip(&reason);
        return None;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    Some(NetNs::new(prefix).expect("creating a network namespace"))
}

/// A TUN interface name unique to this process and call: `prefix` (two
/// letters per test file), `tag`, the pid and a counter (IFNAMSIZ: at most 15).
pub fn tun_name(prefix: &str, tag: char) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{tag}{}n{n}", std::process::id());
    assert!(name.len() <= 15, "{name} too long for an interface name");
    name
}

fn effective_uid() -> io::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| io::Error::other("no Uid line in /proc/self/status"))
}

fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs a command, returning its stdout, or an error carrying its stderr if it fails.
fn run(command: &mut Command) -> io::Result<String> {
    let output = command.output()?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Checks that `cidr` (`a.b.c.d/len`) lies inside one of the [`ALLOWED_PREFIXES`].
pub fn check_allowed_cidr(cidr: &str) -> io::Result<()> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{cidr}: {why}"));
    let (addr, len) = cidr
        .split_once('/')
        .ok_or_else(|| invalid("not a.b.c.d/len"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
    let len: u8 = len.parse().map_err(|_| invalid("bad prefix length"))?;
    let [a, b, c, _] = addr.octets();
    let net = Ipv4Addr::new(a, b, c, 0);
    if !(24..=32).contains(&len) || !ALLOWED_PREFIXES.contains(&net) {
        return Err(invalid(
            "only 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 are allowed in tests",
        ));
    }
    Ok(())
}

/// A network namespace that exists as long as this guard does.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace named `synack-<prefix>-<pid>-<counter>` with `lo` up.
    pub fn new(prefix: &str) -> io::Result<NetNs> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("synack-{prefix}-{}-{n}", std::process::id());
        if let Err(e) = run(Command::new("ip").args(["netns", "add", &name])) {
            if !e.to_string().contains("File exists") {
                return Err(e);
            }
            // Left over by a crashed run whose pid we now have: replace it.
            let _ = run(Command::new("ip").args(["netns", "del", &name]));
            run(Command::new("ip").args(["netns", "add", &name]))?;
        }
        // From here on, the guard deletes the namespace whatever happens.
        let ns = NetNs { name };
        ns.link_up("lo")?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip netns exec NAME args...` and returns its output, whatever its exit status.
    pub fn exec<I, S>(&self, args: I) -> io::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
    }

    /// Runs `ip -n NAME args...`; returns its stdout, or an error with its stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Moves interface `ifname` from the caller's namespace into this one
    /// (`ip link set IF netns NAME`). This takes the interface down.
    pub fn move_link(&self, ifname: &str) -> io::Result<()> {
        run(Command::new("ip").args(["link", "set", ifname, "netns", &self.name])).map(drop)
    }

    /// Adds address `cidr` (e.g. `192.0.2.1/24`) to `ifname` inside the namespace.
    /// Refuses addresses outside the documentation prefixes.
    pub fn addr_add(&self, ifname: &str, cidr: &str) -> io::Result<()> {
        check_allowed_cidr(cidr)?;
        self.ip(&["addr", "add", cidr, "dev", ifname]).map(drop)
    }

    /// Brings `ifname` up inside the namespace.
    pub fn link_up(&self, ifname: &str) -> io::Result<()> {
        self.ip(&["link", "set", ifname, "up"]).map(drop)
    }

    fn open(&self) -> io::Result<File> {
        File::open(Path::new(NETNS_DIR).join(&self.name))
    }

    /// Runs `f` on a fresh thread that has entered the namespace, and returns its
    /// result; a panic in `f` is propagated. Sockets created in `f` belong to the
    /// namespace, and keep doing so after `f` returns.
    pub fn in_ns<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let handle = self
            .open()
            .unwrap_or_else(|e| panic!("cannot open namespace {}: {e}", self.name));
        let name = &self.name;
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("netns-{name}"))
                .spawn_scoped(scope, move || {
                    enter(&handle, name);
                    f()
                })
                .expect("spawning a thread");
            match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Like [`in_ns`](NetNs::in_ns), for long-running work (a server): spawns the
    /// thread and returns its handle. The thread may outlive the guard; the
    /// namespace then lives on, unnamed, until the thread ends.
    pub fn spawn_in_ns<F, R>(&self, f: F) -> io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let handle = self.open()?;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                enter(&handle, &name);
                f()
            })
    }
}

/// Moves the calling thread into the namespace behind `handle`.
fn enter(handle: &File, name: &str) {
    setns(handle, CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns into namespace {name}: {e}"));
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("netns: deleting {}: {e}", self.name);
        }
    }
}
