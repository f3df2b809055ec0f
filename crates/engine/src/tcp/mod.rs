//! TCP: connections, listeners, buffers, RTT estimation, congestion control
//! and loss recovery.

pub(crate) mod buffer;
pub(crate) mod cc;
pub(crate) mod connection;
pub(crate) mod listener;
pub(crate) mod rack;
pub(crate) mod rtt;
pub(crate) mod sack;
pub(crate) mod syncookie;
pub(crate) mod timestamps;
mod wire;

mod calls;
mod input;
mod output;
