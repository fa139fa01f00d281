//! Liveness and readiness as the probe endpoints report them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` answers from. Cheap to clone; all clones share the flags.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Flags>);

#[derive(Debug, Default)]
struct Flags {
    api_reachable: AtomicBool,
    controllers_started: AtomicBool,
    standby: AtomicBool,
    leading: AtomicBool,
}

/// The answer of `/readyz`: ready or not, and a line for a person reading `kubectl describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub message: &'static str,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_api_reachable(&self) {
        self.0.api_reachable.store(true, Ordering::SeqCst);
    }

    pub fn set_controllers_started(&self, started: bool) {
        self.0.controllers_started.store(started, Ordering::SeqCst);
    }

    /// Marks this replica as a leader-election candidate: it is healthy without running
    /// controllers, because the Lease, not the Service, decides who works.
    pub fn set_standby(&self, standby: bool) {
        self.0.standby.store(standby, Ordering::SeqCst);
    }

    pub fn set_leading(&self, leading: bool) {
        self.0.leading.store(leading, Ordering::SeqCst);
    }

    pub fn is_leading(&self) -> bool {
        self.0.leading.load(Ordering::SeqCst)
    }

    pub fn readiness(&self) -> Readiness {
        let f = &self.0;
        let (ready, message) = if !f.api_reachable.load(Ordering::SeqCst) {
            (false, "the Kubernetes API server has not been reached yet")
        } else if f.controllers_started.load(Ordering::SeqCst) {
            (true, "ok: controllers running")
        } else if f.standby.load(Ordering::SeqCst) {
            (true, "ok: standby, another replica holds the leader Lease")
        } else {
            (false, "the controllers have not started yet")
        };
        Readiness { ready, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_the_api_and_either_controllers_or_standby() {
        let h = Health::new();
        assert!(!h.readiness().ready);
        h.set_controllers_started(true);
        assert!(!h.readiness().ready, "API not reached yet");
        h.set_api_reachable();
        assert!(h.readiness().ready);
        h.set_controllers_started(false);
        assert!(!h.readiness().ready);
        h.clone().set_standby(true);
        assert_eq!(
            h.readiness(),
            Readiness {
                ready: true,
                message: "ok: standby, another replica holds the leader Lease"
            }
        );
    }
}
