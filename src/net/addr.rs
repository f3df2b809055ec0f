//! `ToSocketAddrs`: the address types `synack::net` takes, as tokio's, resolved
//! against a stack's host table instead of the system resolver.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::stack::Stack;

/// Converts or resolves to one or more `SocketAddr` values, like
/// `tokio::net::ToSocketAddrs`, for the same types: `SocketAddr`,
/// `SocketAddrV4`, `SocketAddrV6`, `(IpAddr, u16)`, `(Ipv4Addr, u16)`,
/// `(Ipv6Addr, u16)`, `(&str, u16)`, `(String, u16)`, `&str`, `String`,
/// `&[SocketAddr]`, and `&T` for any of them.
///
/// IP literals stand for themselves. Names are looked up in the stack's host
/// table ([`StackBuilder::host`](crate::StackBuilder::host),
/// [`Stack::add_host`]); `"localhost"` is 127.0.0.1. A name not
/// in the table is an error of kind `NotFound`.
///
/// This trait is sealed: it cannot be implemented outside synack.
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    use crate::stack::Stack;

    /// The resolving half of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait ToSocketAddrsPriv {
        /// Resolves against `stack`'s host table.
        fn resolve(&self, stack: &Stack) -> io::Result<Vec<SocketAddr>>;
    }
}

use sealed::ToSocketAddrsPriv;

/// Resolves `addr` against `stack`: at least one address, or an error.
pub(crate) fn resolve<A: ToSocketAddrs + ?Sized>(
    stack: &Stack,
    addr: &A,
) -> io::Result<Vec<SocketAddr>> {
    addr.resolve(stack)
}

/// The error for an address list that came out empty, worded as tokio's.
pub(crate) fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}

fn resolve_name(stack: &Stack, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match stack.resolve_host(host) {
        Some(ip) => Ok(vec![SocketAddr::V4(SocketAddrV4::new(ip, port))]),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "failed to lookup address information: {host:?} is not in the stack's host table"
            ),
        )),
    }
}

fn resolve_str(stack: &Stack, s: &str) -> io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "invalid socket address");
    let (host, port) = s.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    resolve_name(stack, host, port)
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrsPriv for &T {
    fn resolve(&self, stack: &Stack) -> io::Result<Vec<SocketAddr>> {
        (**self).resolve(stack)
    }
}

macro_rules! literal {
    ($($t:ty => |$x:ident| $e:expr;)*) => {$(
        impl ToSocketAddrs for $t {}
        impl ToSocketAddrsPriv for $t {
            fn resolve(&self, _stack: &Stack) -> io::Result<Vec<SocketAddr>> {
                let $x = self;
                Ok(vec![$e])
            }
        }
    )*};
}

literal! {
    SocketAddr => |a| *a;
    SocketAddrV4 => |a| SocketAddr::V4(*a);
    SocketAddrV6 => |a| SocketAddr::V6(*a);
    (IpAddr, u16) => |a| SocketAddr::new(a.0, a.1);
    (Ipv4Addr, u16) => |a| SocketAddr::new(IpAddr::V4(a.0), a.1);
    (Ipv6Addr, u16) => |a| SocketAddr::new(IpAddr::V6(a.0), a.1);
}

impl ToSocketAddrs for &[SocketAddr] {}
impl ToSocketAddrsPriv for &[SocketAddr] {
    fn resolve(&self, _stack: &Stack) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl ToSocketAddrs for str {}
impl ToSocketAddrsPriv for str {
    fn resolve(&self, stack: &Stack) -> io::Result<Vec<SocketAddr>> {
        resolve_str(stack, self)
    }
}

impl ToSocketAddrs for String {}
impl ToSocketAddrsPriv for String {
    fn resolve(&self, stack: &Stack) -> io::Result<Vec<SocketAddr>> {
        resolve_str(stack, self)
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl ToSocketAddrsPriv for (&str, u16) {
    fn resolve(&self, stack: &Stack) -> io::Result<Vec<SocketAddr>> {
        resolve_name(stack, self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl ToSocketAddrsPriv for (String, u16) {
    fn resolve(&self, stack: &Stack) -> io::Result<Vec<SocketAddr>> {
        resolve_name(stack, &self.0, self.1)
    }
}

/// Resolves `host` to socket addresses, like `tokio::net::lookup_host`, against
/// the current stack's host table (see [`Stack::enter`]).
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::{Stack, net::lookup_host};
/// use synack::device::{MemoryLink, MemoryLinkConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, _b) = MemoryLink::pair(MemoryLinkConfig::default());
/// let stack = Stack::builder(a, Ipv4Addr::new(192, 0, 2, 1), 24)
///     .host("db", Ipv4Addr::new(192, 0, 2, 7))
///     .build();
/// let _g = stack.enter();
/// let addrs: Vec<_> = lookup_host("db:5432").await?.collect();
/// assert_eq!(addrs, ["192.0.2.7:5432".parse().unwrap()]);
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: nothing is held between polls.
pub async fn lookup_host<T: ToSocketAddrs>(
    host: T,
) -> io::Result<impl Iterator<Item = SocketAddr>> {
    let stack = Stack::current()?;
    lookup_host_on(&stack, host).await
}

/// [`lookup_host`] against a given stack.
///
/// # Cancel safety
///
/// Cancel safe: nothing is held between polls.
pub async fn lookup_host_on<T: ToSocketAddrs>(
    stack: &Stack,
    host: T,
) -> io::Result<impl Iterator<Item = SocketAddr> + use<T>> {
    Ok(resolve(stack, &host)?.into_iter())
}
