//! Per-socket congestion control: [`Engine::set_congestion`] and
//! [`Engine::congestion`], Linux's `TCP_CONGESTION` socket option.

use crate::tcp::cc::{CongestionAlgorithm, new_controller};
use crate::{Engine, Error, SocketHandle};

impl Engine {
    /// Switches a connection to congestion control algorithm `alg`. The new
    /// controller takes over the present window and slow-start threshold (as
    /// Linux's `TCP_CONGESTION` does), so a switch mid-transfer does not stall it.
    ///
    /// Errors: [`Error::InvalidHandle`] for a stale handle,
    /// [`Error::NotConnected`] for a listener.
    pub fn set_congestion(
        &mut self,
        h: SocketHandle,
        alg: CongestionAlgorithm,
    ) -> Result<(), Error> {
        let iw = self.config().initial_window_segments;
        let tcb = self.tcb_mut(h)?;
        if tcb.congestion() != alg {
            let cc = new_controller(alg, tcb.snd_mss, iw);
            tcb.replace_controller(cc);
        }
        Ok(())
    }

    /// Turns pacing on or off for a connection: new data goes out spread
    /// over the round trip at the controller's pacing rate (as Linux with the
    /// `fq` qdisc) rather than in bursts.
    ///
    /// Errors: [`Error::InvalidHandle`] for a stale handle,
    /// [`Error::NotConnected`] for a listener.
    pub fn set_pacing(&mut self, h: SocketHandle, on: bool) -> Result<(), Error> {
        self.tcb_mut(h)?.set_pacing(on);
        Ok(())
    }

    /// Whether a connection paces its data.
    pub fn pacing(&self, h: SocketHandle) -> Result<bool, Error> {
        Ok(self.tcb(h)?.pacing())
    }

    /// The congestion control algorithm of a connection.
    pub fn congestion(&self, h: SocketHandle) -> Result<CongestionAlgorithm, Error> {
        Ok(self.tcb(h)?.congestion())
    }
}
