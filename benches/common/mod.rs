//! What the benchmarks share: the two tokio runtimes every figure is measured on.

use tokio::runtime::Runtime;

/// A tokio runtime flavour a benchmark runs on.
#[derive(Clone, Copy, PartialEq)]
pub enum Flavor {
    /// Current-thread: the stacks and the application share one thread.
    Current,
    /// Multi-thread with 2 workers (this machine's cores).
    Multi,
}

impl Flavor {
    /// A fresh runtime of this flavour, with time and I/O enabled.
    pub fn runtime(self) -> Runtime {
        match self {
            Flavor::Multi => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
            Flavor::Current => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .expect("tokio runtime")
    }

    /// The name printed in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Multi => "multi-thread, 2 workers",
            Flavor::Current => "current-thread",
        }
    }
}
