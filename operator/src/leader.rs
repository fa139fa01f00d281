//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! runs the controllers: two writers would fight over every child object and Event.
//!
//! The algorithm is client-go's: a candidate takes the Lease when it has no holder or when its
//! record has not changed for a whole lease duration *as measured on the candidate's own clock*
//! since the candidate first saw that record. Comparing our clock with the holder's `renewTime`
//! would turn clock skew between nodes into either split brain or needless failovers. Every
//! write carries the resourceVersion it read, so of two candidates racing for an expired Lease
//! one gets 409 Conflict and stays standby.
//!
//! A leader that cannot renew for `renew_deadline` (shorter than the lease duration, so it stops
//! before anybody may take over) or finds another holder stops its controllers and reports
//! [`LeaderError::Lost`]; the process then exits non-zero and Kubernetes restarts it as a fresh
//! candidate. Continuing as a standby would need every controller to be restartable with clean
//! caches; a restart is simpler and obviously safe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::clock::Clock;

/// The Lease's name: one operator installation per cluster, one Lease.
pub const LEASE_NAME: &str = "miracolix-operator";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Who we are in `holderIdentity`; unique per replica (the pod name).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal, written into the Lease.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often a leader renews.
    pub renew_period: Duration,
    /// How often a standby checks whether it can take over, and how soon a failed renewal is
    /// retried.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, renew every 5 s, retry every 2 s.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: LEASE_NAME.to_string(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_period: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The orderings that make a single leader possible: a leader must give up (renew deadline)
    /// before others may take over (lease duration), and must try to renew more than once in
    /// between.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |why: &str| Err(LeaderError::Config(why.to_string()));
        if self.identity.is_empty() {
            return bad("the identity is empty");
        }
        if self.namespace.is_empty() {
            return bad("the namespace is empty");
        }
        if self.retry_period.is_zero() || self.renew_period.is_zero() {
            return bad("renew and retry periods must be positive");
        }
        if self.renew_deadline >= self.lease_duration {
            return bad("the renew deadline must be shorter than the lease duration");
        }
        if self.renew_period >= self.renew_deadline {
            return bad("the renew period must be shorter than the renew deadline");
        }
        if self.lease_duration.as_secs() < 1 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return bad("the lease duration must be at least one second");
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid leader election settings: {0}")]
    Config(String),
    #[error("lost the leader Lease {lease}: {why}")]
    Lost { lease: String, why: String },
    #[error("Lease {lease}: {source}")]
    Api {
        lease: String,
        #[source]
        source: kube::Error,
    },
    #[error("Lease {lease}: no answer from the API server within {timeout:?}")]
    Timeout { lease: String, timeout: Duration },
}

/// Where this replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Has not read the Lease yet.
    Candidate,
    /// Another replica holds the Lease (or just won a race for it).
    Standby,
    Leader,
}

/// Whether a record first seen at `seen_at` (our clock) has expired at `now`. Pure.
pub fn expired(seen_at: Timestamp, lease_duration: Duration, now: Timestamp) -> bool {
    let d = SignedDuration::try_from(lease_duration).unwrap_or(SignedDuration::MAX);
    match seen_at.checked_add(d) {
        Ok(valid_until) => valid_until <= now,
        Err(_) => false,
    }
}

/// Whether a leader whose last successful renewal was at `last_renew` must give up. Pure.
pub fn renew_overdue(last_renew: Timestamp, renew_deadline: Duration, now: Timestamp) -> bool {
    expired(last_renew, renew_deadline, now)
}

/// The Lease record as seen last, and when it changed as far as we know.
#[derive(Debug, Clone)]
struct Observed {
    lease: Lease,
    seen_at: Timestamp,
}

#[derive(Debug, Default)]
struct State {
    observed: Option<Observed>,
    last_renew: Option<Timestamp>,
}

/// Resolves once the holder of a [`Stop`] must stop (leadership lost or shutdown).
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub async fn stopped(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    role: watch::Sender<Role>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("cfg", &self.cfg)
            .field("role", &*self.role.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    pub fn new(
        client: Client,
        cfg: LeaseConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LeaderError> {
        cfg.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            clock,
            state: Mutex::new(State::default()),
            role: watch::channel(Role::Candidate).0,
        })
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Follows role changes (for readiness and for tests).
    pub fn watch_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_role(&self, role: Role) {
        self.role.send_if_modified(|r| {
            let changed = *r != role;
            *r = role;
            changed
        });
    }

    fn err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            lease: self.lease_ref(),
            source,
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.cfg.namespace, self.cfg.name)
    }

    /// Remembers a Lease read or written; the expiry clock restarts only when the record
    /// changed (a renewal by the holder changes `renewTime`).
    fn observe(&self, lease: Lease, now: Timestamp) {
        let mut st = self.state();
        let changed = st
            .observed
            .as_ref()
            .is_none_or(|o| o.lease.spec != lease.spec);
        let seen_at = match (&st.observed, changed) {
            (Some(o), false) => o.seen_at,
            _ => now,
        };
        st.observed = Some(Observed { lease, seen_at });
    }

    fn won(&self, lease: Lease, now: Timestamp) -> Role {
        self.observe(lease, now);
        self.state().last_renew = Some(now);
        self.set_role(Role::Leader);
        Role::Leader
    }

    fn holder_spec(&self, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let ours = previous
            .and_then(|p| p.holder_identity.as_deref())
            .is_some_and(|h| h == self.cfg.identity);
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.lease_seconds()),
            acquire_time: if ours {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..LeaseSpec::default()
        }
    }

    /// Writes `spec` over `lease` with the resourceVersion it was read with. `Ok(None)` is a
    /// conflict: the Lease changed since, somebody else wrote it.
    async fn write(&self, lease: &Lease, spec: LeaseSpec) -> Result<Option<Lease>, LeaderError> {
        let mut next = lease.clone();
        next.spec = Some(spec);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &next)
            .await
        {
            Ok(l) => Ok(Some(l)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// One round: renew when leading, otherwise take the Lease if it is free or expired.
    pub async fn try_acquire_or_renew(&self) -> Result<Role, LeaderError> {
        let now = self.clock.now();
        // A leader renews from its copy without reading first: one request per period, and a
        // conflict is exactly the sign that somebody else wrote the Lease.
        let cached = self.state().observed.as_ref().map(|o| o.lease.clone());
        if self.role() == Role::Leader
            && let Some(lease) = cached
        {
            let spec = self.holder_spec(now, lease.spec.as_ref());
            if let Some(l) = self.write(&lease, spec).await? {
                return Ok(self.won(l, now));
            }
            tracing::info!(lease = %self.lease_ref(), "leader Lease changed under us; re-reading it");
        }
        let Some(lease) = self
            .api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.holder_spec(now, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(l) => Ok(self.won(l, now)),
                // Created by another candidate a moment ago: read it next round.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.standby()),
                Err(e) => Err(self.err(e)),
            };
        };
        self.observe(lease.clone(), now);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let free = if holder == self.cfg.identity || holder.is_empty() {
            true
        } else {
            let seen_at = self.state().observed.as_ref().map_or(now, |o| o.seen_at);
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.cfg.lease_duration, Duration::from_secs);
            expired(seen_at, duration, now)
        };
        if !free {
            return Ok(self.standby());
        }
        if holder != self.cfg.identity {
            tracing::info!(lease = %self.lease_ref(), previous = holder, "taking over the leader Lease");
        }
        match self
            .write(&lease, self.holder_spec(now, Some(&spec)))
            .await?
        {
            Some(l) => Ok(self.won(l, now)),
            None => Ok(self.standby()),
        }
    }

    fn standby(&self) -> Role {
        self.set_role(Role::Standby);
        Role::Standby
    }

    /// Gives the Lease up so a standby takes over at once instead of after a lease duration.
    /// Only the holder's own copy is written: if somebody else changed it, it is not ours.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let cached = self.state().observed.as_ref().map(|o| o.lease.clone());
        let Some(lease) = cached.filter(|_| self.role() == Role::Leader) else {
            return Ok(());
        };
        self.set_role(Role::Standby);
        let now = self.clock.now();
        let spec = LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(now)),
            ..lease.spec.clone().unwrap_or_default()
        };
        if let Some(l) = self.write(&lease, spec).await? {
            self.observe(l, now);
            tracing::info!(lease = %self.lease_ref(), "leader Lease released");
        }
        Ok(())
    }

    /// A round bounded in real time: an API server that accepts the connection and never answers
    /// must not keep a leader from noticing that its deadline passed.
    async fn round(&self, limit: Duration) -> Result<Role, LeaderError> {
        tokio::time::timeout(limit, self.try_acquire_or_renew())
            .await
            .unwrap_or_else(|_| {
                Err(LeaderError::Timeout {
                    lease: self.lease_ref(),
                    timeout: limit,
                })
            })
    }

    /// Waits for the Lease, then runs `work` while holding it.
    ///
    /// Returns `work`'s output once it ended, on its own or because `shutdown` resolved (the
    /// Lease is released then); `None` when `shutdown` came before the Lease. Returns
    /// [`LeaderError::Lost`] when the Lease was lost, after telling `work` to stop and giving it
    /// until the Lease could expire for the others.
    pub async fn run<W, F, T>(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
        work: W,
    ) -> Result<Option<T>, LeaderError>
    where
        W: FnOnce(Stop) -> F,
        F: std::future::Future<Output = T>,
    {
        tokio::pin!(shutdown);
        let cfg = &self.cfg;
        loop {
            match self.round(cfg.renew_deadline).await {
                Ok(Role::Leader) => break,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot check the leader Lease"),
            }
            tokio::select! {
                () = &mut shutdown => return Ok(None),
                () = tokio::time::sleep(cfg.retry_period) => {}
            }
        }
        tracing::info!(lease = %self.lease_ref(), identity = %cfg.identity, "became the leader");

        let (stop_tx, stop_rx) = watch::channel(false);
        let work = work(Stop(stop_rx));
        tokio::pin!(work);
        let mut output = None;
        let mut wait = cfg.renew_period;
        let lost = loop {
            tokio::select! {
                () = &mut shutdown => break None,
                out = &mut work => {
                    output = Some(out);
                    break None;
                }
                () = tokio::time::sleep(wait) => {}
            }
            match self.round(cfg.renew_deadline).await {
                Ok(Role::Leader) => wait = cfg.renew_period,
                Ok(_) => break Some("another replica holds the Lease".to_string()),
                Err(e) => {
                    let last = self.state().last_renew.unwrap_or(Timestamp::UNIX_EPOCH);
                    if renew_overdue(last, cfg.renew_deadline, self.clock.now()) {
                        break Some(format!("no renewal for {:?}: {e}", cfg.renew_deadline));
                    }
                    tracing::warn!(error = %e, "cannot renew the leader Lease; retrying");
                    wait = cfg.retry_period;
                }
            }
        };
        let _ = stop_tx.send(true);
        match lost {
            Some(why) => {
                self.set_role(Role::Standby);
                tracing::error!(lease = %self.lease_ref(), %why, "lost the leader Lease; stopping the controllers");
                // Others may take over once the lease duration has passed since our last
                // renewal, which is at least this long from now.
                let grace = cfg.lease_duration.saturating_sub(cfg.renew_deadline);
                if output.is_none() && tokio::time::timeout(grace, &mut work).await.is_err() {
                    tracing::error!("the controllers did not stop in time");
                }
                Err(LeaderError::Lost {
                    lease: self.lease_ref(),
                    why,
                })
            }
            None => {
                let output = match output {
                    Some(out) => out,
                    None => work.await,
                };
                // A failed release only delays the next leader by one lease duration.
                if let Err(e) = self.release().await {
                    tracing::warn!(error = %e, "cannot release the leader Lease");
                }
                Ok(Some(output))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("timestamp")
    }

    #[test]
    fn a_record_expires_a_lease_duration_after_it_was_seen() {
        let d = Duration::from_secs(15);
        assert!(!expired(at(100), d, at(100)));
        assert!(!expired(at(100), d, at(114)));
        assert!(expired(at(100), d, at(115)));
        assert!(expired(at(100), d, at(200)));
        // A clock that went backwards never expires a lease early.
        assert!(!expired(at(100), d, at(50)));
        assert!(!expired(Timestamp::MAX, d, Timestamp::MAX));
    }

    #[test]
    fn a_leader_gives_up_after_the_renew_deadline() {
        let d = Duration::from_secs(10);
        assert!(!renew_overdue(at(0), d, at(9)));
        assert!(renew_overdue(at(0), d, at(10)));
    }

    #[test]
    fn defaults_are_client_go_and_valid() {
        let c = LeaseConfig::new("ops", "pod-a");
        assert_eq!(c.name, "miracolix-operator");
        assert_eq!(c.lease_seconds(), 15);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn settings_that_allow_two_leaders_are_refused() {
        let mut c = LeaseConfig::new("ops", "pod-a");
        c.renew_deadline = Duration::from_secs(20);
        assert!(matches!(c.validate(), Err(LeaderError::Config(_))));
        let mut c = LeaseConfig::new("ops", "pod-a");
        c.renew_period = Duration::from_secs(10);
        assert!(c.validate().is_err());
        assert!(LeaseConfig::new("ops", "").validate().is_err());
        let mut c = LeaseConfig::new("ops", "pod-a");
        c.lease_duration = Duration::from_millis(500);
        c.renew_deadline = Duration::from_millis(300);
        c.renew_period = Duration::from_millis(100);
        assert!(c.validate().is_err(), "Lease durations are whole seconds");
    }
}
