//! TCP: connections, listeners, buffers, RTT estimation and congestion control.

pub(crate) mod buffer;
pub(crate) mod congestion;
pub(crate) mod connection;
pub(crate) mod listener;
pub(crate) mod rtt;
pub(crate) mod timestamps;
