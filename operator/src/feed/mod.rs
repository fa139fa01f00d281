//! The release feed follower (`run --feed-url`): fetches the consortium hub's signed feed
//! (`GET /feed/v1`, the hub's own document type [`miracolix_hub::feed::ReleaseFeed`]) on an
//! interval with `If-None-Match`, and server-side applies every ComponentRelease and
//! ReleaseRevocation in it that verifies with the operator's trusted keys.
//!
//! - **Only what verifies** ([`plan`]): an entry whose signatures do not verify is skipped, with
//!   a Warning Event `FeedEntryNotVerified` on every DizSite the operator watches (what a site
//!   admin reads: `kubectl describe dizsite`) and `miracolix_feed_entries_total{outcome=
//!   "not-verified"}`. Nothing of it is applied.
//! - **Never someone else's object**: an object of the same kind and name without the
//!   [`plan::FEED_LABEL`] label is never written (`FeedEntryConflict`); the apply is not forced,
//!   so a field another manager owns is not taken either. The follower deletes nothing.
//! - **Last good state**: when the feed is unreachable or serves something else, nothing is
//!   changed; the next try comes after a backoff ([`plan::next_delay`]). After `304 Not Modified`
//!   the last good feed is planned again, so an object deleted by hand comes back and a
//!   conflict that was resolved is applied.
//! - **Visible**: the `ReleaseFeed` condition on every watched DizSite (written with the site's
//!   status, so only on change), and the `miracolix_feed_*` metrics.
//!
//! Only the leader follows the feed: `run` starts it with the controllers.

pub mod fetch;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use miracolix_hub::feed::ReleaseFeed;

use crate::api::conditions::{DesiredCondition, RELEASE_FEED};
use crate::api::{ComponentRelease, ReleaseRevocation, reasons};
use crate::catalog::FIELD_MANAGER;
use crate::controller::Context;
use fetch::{FeedClient, FetchError, Fetched};
use plan::{Decision, Entry, Kind, Live};

/// The follower's settings (`run --feed-url --feed-interval --feed-ca`).
#[derive(Clone, Debug)]
pub struct FeedConfig {
    pub url: String,
    pub interval: Duration,
    pub ca: Option<std::path::PathBuf>,
}

/// The `ReleaseFeed` condition every watched DizSite carries, shared between the follower
/// (which sets it) and the DizSite reconcile (which writes it with the site's status).
#[derive(Clone, Debug, Default)]
pub struct ConditionSlot {
    condition: Arc<Mutex<Option<DesiredCondition>>>,
    /// Whether this operator follows a feed (`run --feed-url`).
    followed: bool,
}

/// What a site's status write does with the `ReleaseFeed` condition.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedConditionUpdate {
    /// Set it to the follower's last round.
    Set(DesiredCondition),
    /// Leave it as it is: the feed is followed but no round ended yet since the start, so the
    /// condition of the previous process is the best there is.
    Keep,
    /// Remove it: this operator follows no feed (started without `--feed-url`), so a condition
    /// left by an earlier run would tell of a feed nobody follows.
    Remove,
}

impl ConditionSlot {
    /// The slot of an operator that follows a feed.
    pub fn followed() -> Self {
        Self {
            followed: true,
            ..Self::default()
        }
    }

    pub fn get(&self) -> Option<DesiredCondition> {
        self.condition
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets it; whether it changed.
    pub fn set(&self, c: DesiredCondition) -> bool {
        let mut slot = self.condition.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref() == Some(&c) {
            return false;
        }
        *slot = Some(c);
        true
    }

    /// What the next status write does with the condition. A round that ended counts even when
    /// the slot was not marked followed (a follower built on any context sets it).
    pub fn update(&self) -> FeedConditionUpdate {
        match (self.get(), self.followed) {
            (Some(c), _) => FeedConditionUpdate::Set(c),
            (None, true) => FeedConditionUpdate::Keep,
            (None, false) => FeedConditionUpdate::Remove,
        }
    }
}

/// How one round ended.
#[derive(Debug)]
pub enum Round {
    /// Fetched (or not modified) and every entry decided; counts of the feed planned.
    Synced(Counts),
    /// The fetch failed; nothing changed.
    FetchFailed(FetchError),
    /// Some entries that verified could not be applied (API errors), each named.
    ApplyFailed { counts: Counts, failed: Vec<String> },
}

/// What the last planned feed held, and what was skipped of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub releases: usize,
    pub revocations: usize,
    pub skipped: usize,
}

/// The `ReleaseFeed` condition after a round. Pure. `last_success`: the last round that
/// fetched the feed (shown while it is unreachable).
pub fn condition(round: &Round, url: &str, last_success: Option<Timestamp>) -> DesiredCondition {
    let since = match last_success {
        Some(t) => format!("the releases of the last good feed (fetched {t}) stay"),
        None => "nothing was fetched from it yet".to_string(),
    };
    match round {
        Round::Synced(c) if c.skipped == 0 => DesiredCondition::new(
            RELEASE_FEED,
            true,
            reasons::FEED_SYNCED,
            format!(
                "following {url}: {} releases and {} revocations applied",
                c.releases, c.revocations
            ),
        ),
        Round::Synced(c) => DesiredCondition::new(
            RELEASE_FEED,
            true,
            reasons::FEED_ENTRIES_SKIPPED,
            format!(
                "following {url}: {} releases and {} revocations in the feed, {} of them not \
                 applied (not verified or in conflict; see the Warning Events)",
                c.releases, c.revocations, c.skipped
            ),
        ),
        Round::FetchFailed(e @ FetchError::Invalid { .. }) => DesiredCondition::new(
            RELEASE_FEED,
            false,
            reasons::FEED_INVALID,
            format!("{e}; {since}"),
        ),
        Round::FetchFailed(e) => DesiredCondition::new(
            RELEASE_FEED,
            false,
            reasons::FEED_UNREACHABLE,
            format!("{e}; {since}"),
        ),
        Round::ApplyFailed { failed, .. } => DesiredCondition::new(
            RELEASE_FEED,
            false,
            reasons::FEED_APPLY_FAILED,
            format!(
                "following {url}: cannot apply {}; retried with the next round",
                failed.join("; ")
            ),
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Client(#[from] fetch::ClientError),
}

#[derive(Debug, Default)]
struct State {
    etag: Option<String>,
    /// The last feed that was fetched and parsed.
    last_good: Option<ReleaseFeed>,
    failures: u32,
    last_success: Option<Timestamp>,
    /// Entries skipped in the last planned round, each announced by an Event once: (kind, name,
    /// why). An entry that is fixed and breaks again is announced again.
    announced: BTreeSet<(Kind, String, String)>,
}

/// Follows one feed for one operator.
pub struct Follower {
    ctx: Arc<Context>,
    client: FeedClient,
    feed: String,
    interval: Duration,
    state: tokio::sync::Mutex<State>,
}

impl Follower {
    pub fn new(ctx: Arc<Context>, config: &FeedConfig) -> Result<Self, FollowError> {
        Ok(Self::with_client(
            ctx,
            FeedClient::new(&config.url, config.ca.as_deref())?,
            config.interval,
        ))
    }

    /// A follower with a client built earlier (`run` builds it before connecting, so a bad
    /// `--feed-url` or `--feed-ca` stops the start).
    pub fn with_client(ctx: Arc<Context>, client: FeedClient, interval: Duration) -> Self {
        Self {
            feed: plan::feed_id(client.url()),
            client,
            interval,
            ctx,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Follows until `shutdown` resolves: a round, then the interval (or the backoff after a
    /// failure).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(url = %self.client.url(), interval = ?self.interval, "following the release feed");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let round = self.step().await;
            let failures = self.state.lock().await.failures;
            let delay = plan::next_delay(self.interval, failures);
            if !matches!(round, Round::Synced(_)) {
                tracing::warn!(url = %self.client.url(), ?round, retry_in = ?delay, "release feed round failed");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One round: fetch, plan, apply, report. Tests drive the follower with this.
    pub async fn step(&self) -> Round {
        let mut state = self.state.lock().await;
        let metrics = &self.ctx.metrics;
        let fetched = self.client.fetch(state.etag.as_deref()).await;
        let feed = match fetched {
            Ok(Fetched::NotModified) => {
                metrics.feed_fetched("not-modified");
                state.last_good.clone()
            }
            Ok(Fetched::Feed { feed, etag }) => {
                metrics.feed_fetched("full");
                state.etag = etag;
                state.last_good = Some(feed.clone());
                Some(feed)
            }
            Err(e) => {
                metrics.feed_fetch_failed(e.kind());
                state.failures = state.failures.saturating_add(1);
                let round = Round::FetchFailed(e);
                self.report(&round, state.last_success);
                return round;
            }
        };
        let Some(feed) = feed else {
            // 304 to a first request cannot happen (no ETag was sent); treat as empty.
            state.etag = None;
            return Round::Synced(Counts::default());
        };
        let round = self.apply_feed(&feed, &mut state).await;
        if let Round::ApplyFailed { .. } = round {
            state.failures = state.failures.saturating_add(1);
            // Fetch the whole feed again next time rather than trusting a 304.
            state.etag = None;
        } else {
            state.failures = 0;
            let now = self.ctx.clock.now();
            state.last_success = Some(now);
            metrics.feed_succeeded(now.as_second());
        }
        self.report(&round, state.last_success);
        round
    }

    async fn apply_feed(&self, feed: &ReleaseFeed, state: &mut State) -> Round {
        let url = self.client.url();
        let certifier = self.ctx.certifier.as_ref();
        let entries: Vec<Entry> = feed
            .releases
            .iter()
            .map(|m| plan::examine(Kind::Release, m, certifier, &self.feed, url))
            .chain(
                feed.revocations
                    .iter()
                    .map(|m| plan::examine(Kind::Revocation, m, certifier, &self.feed, url)),
            )
            .collect();
        let mut counts = Counts {
            releases: feed.releases.len(),
            revocations: feed.revocations.len(),
            skipped: 0,
        };
        let live = match self.live().await {
            Ok(l) => l,
            Err(e) => {
                return Round::ApplyFailed {
                    counts,
                    failed: vec![format!(
                        "cannot list ComponentReleases/ReleaseRevocations: {e}"
                    )],
                };
            }
        };
        let decisions = plan::plan(&entries, &live);
        let mut failed = Vec::new();
        let mut skipped_now = BTreeSet::new();
        for (entry, decision) in entries.iter().zip(decisions) {
            // A 409: another field manager owns a field the entry sets (someone edited the
            // feed's object by hand); the apply is not forced, so it stays theirs.
            let mut owned_by_others = None;
            let decision = match (&decision, &entry.object) {
                (Decision::Apply, Ok(object)) => match self.apply(entry, object).await {
                    Ok(()) => decision,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        owned_by_others = Some(s.message);
                        Decision::Conflict
                    }
                    Err(e) => {
                        failed.push(format!("{} {}: {e}", entry.kind.as_str(), entry.name));
                        self.ctx.metrics.feed_entry("apply-failed");
                        continue;
                    }
                },
                _ => decision,
            };
            self.ctx.metrics.feed_entry(decision.outcome());
            let refusal = match &decision {
                Decision::NotVerified { reason, message } => Some((
                    reasons::FEED_ENTRY_NOT_VERIFIED,
                    reason.clone(),
                    format!(
                        "{} {} from the release feed {url} is not applied: {reason}: {message}",
                        entry.kind.as_str(),
                        entry.name
                    ),
                )),
                Decision::Conflict => Some((
                    reasons::FEED_ENTRY_CONFLICT,
                    "Conflict".to_string(),
                    match &owned_by_others {
                        None => format!(
                            "{} {} from the release feed {url} is not applied: an object of \
                             that name exists and was not created by the feed (no label {}); \
                             it is never overwritten",
                            entry.kind.as_str(),
                            entry.name,
                            plan::FEED_LABEL
                        ),
                        Some(api) => format!(
                            "{} {} from the release feed {url} is not applied: fields of it \
                             were set by someone else and are not taken over ({api})",
                            entry.kind.as_str(),
                            entry.name
                        ),
                    },
                )),
                _ => None,
            };
            if let Some((event_reason, why, note)) = refusal {
                counts.skipped += 1;
                let key = (entry.kind, entry.name.clone(), why);
                skipped_now.insert(key.clone());
                if !state.announced.contains(&key) {
                    tracing::warn!(entry = %entry.name, kind = entry.kind.as_str(), reason = event_reason, "{note}");
                    self.warn_sites(event_reason, &note).await;
                }
            } else if matches!(decision, Decision::Apply) {
                tracing::info!(entry = %entry.name, kind = entry.kind.as_str(), url, "applied from the release feed");
            }
        }
        state.announced = skipped_now;
        if failed.is_empty() {
            Round::Synced(counts)
        } else {
            Round::ApplyFailed { counts, failed }
        }
    }

    /// The ComponentReleases and ReleaseRevocations there are now (read from the API server,
    /// not a cache: the conflict check must see an object created a moment ago).
    async fn live(&self) -> Result<BTreeMap<(Kind, String), Live>, kube::Error> {
        let client = &self.ctx.client;
        let mut out = BTreeMap::new();
        let live_of = |meta: &kube::core::ObjectMeta, spec: serde_json::Value| Live {
            from_feed: meta
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(plan::FEED_LABEL)),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            spec,
        };
        for r in Api::<ComponentRelease>::all(client.clone())
            .list(&ListParams::default())
            .await?
        {
            let spec = serde_json::to_value(&r.spec).unwrap_or_default();
            out.insert((Kind::Release, r.name_any()), live_of(&r.metadata, spec));
        }
        for r in Api::<ReleaseRevocation>::all(client.clone())
            .list(&ListParams::default())
            .await?
        {
            let spec = serde_json::to_value(&r.spec).unwrap_or_default();
            out.insert((Kind::Revocation, r.name_any()), live_of(&r.metadata, spec));
        }
        Ok(out)
    }

    /// Server-side apply under the operator's field manager, not forced: a field someone else
    /// owns makes it a conflict (409), never an overwrite.
    async fn apply(&self, entry: &Entry, object: &serde_json::Value) -> Result<(), kube::Error> {
        let params = PatchParams::apply(FIELD_MANAGER);
        let client = self.ctx.client.clone();
        match entry.kind {
            Kind::Release => {
                Api::<ComponentRelease>::all(client)
                    .patch(&entry.name, &params, &Patch::Apply(object))
                    .await?;
            }
            Kind::Revocation => {
                Api::<ReleaseRevocation>::all(client)
                    .patch(&entry.name, &params, &Patch::Apply(object))
                    .await?;
            }
        }
        Ok(())
    }

    /// A Warning Event on every watched DizSite: the feed concerns them all, and their
    /// namespaces are where site admins look (and where the operator may write Events).
    async fn warn_sites(&self, reason: &str, note: &str) {
        let sites = match self.ctx.list_dizsites().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list DizSites for the feed's Event");
                return;
            }
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "FollowFeed".into(),
            secondary: None,
        };
        for site in sites {
            if let Err(e) = self.ctx.recorder.publish(&ev, &site.object_ref(&())).await {
                tracing::warn!(error = %e, "cannot publish event");
            }
        }
    }

    /// Sets the `ReleaseFeed` condition; on a change, every site is reconciled to write it.
    fn report(&self, round: &Round, last_success: Option<Timestamp>) {
        let c = condition(round, self.client.url(), last_success);
        if self.ctx.feed_condition.set(c) {
            self.ctx.cache().trigger_all_sites();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{FALSE, TRUE};

    /// Without a feed the condition goes; with one it is kept until the first round, then set.
    #[test]
    fn the_status_keeps_the_feed_condition_only_while_a_feed_is_followed() {
        let synced = DesiredCondition::new(RELEASE_FEED, true, reasons::FEED_SYNCED, "ok");
        let off = ConditionSlot::default();
        assert_eq!(off.update(), FeedConditionUpdate::Remove);
        let on = ConditionSlot::followed();
        assert_eq!(on.update(), FeedConditionUpdate::Keep);
        assert!(on.set(synced.clone()));
        assert!(!on.set(synced.clone()), "the same condition is no change");
        assert_eq!(on.update(), FeedConditionUpdate::Set(synced.clone()));
        // A follower built on a context whose slot was not marked still sets it.
        assert!(off.set(synced.clone()));
        assert_eq!(off.update(), FeedConditionUpdate::Set(synced));
    }

    #[test]
    fn the_condition_says_what_the_round_did() {
        let url = "https://hub.example/feed/v1";
        let t: Timestamp = "2026-02-03T01:00:00Z".parse().expect("time");
        let counts = |skipped| Counts {
            releases: 2,
            revocations: 1,
            skipped,
        };
        let unreachable = || {
            Round::FetchFailed(FetchError::Unreachable {
                url: url.into(),
                message: "connection refused".into(),
            })
        };
        let rows: Vec<(Round, Option<Timestamp>, &str, &str, &str)> = vec![
            (
                Round::Synced(counts(0)),
                Some(t),
                TRUE,
                reasons::FEED_SYNCED,
                "2 releases and 1 revocations applied",
            ),
            (
                Round::Synced(counts(1)),
                Some(t),
                TRUE,
                reasons::FEED_ENTRIES_SKIPPED,
                "1 of them not applied",
            ),
            (
                unreachable(),
                Some(t),
                FALSE,
                reasons::FEED_UNREACHABLE,
                "last good feed (fetched 2026-02-03T01:00:00Z) stay",
            ),
            (
                unreachable(),
                None,
                FALSE,
                reasons::FEED_UNREACHABLE,
                "nothing was fetched",
            ),
            (
                Round::FetchFailed(FetchError::Status {
                    url: url.into(),
                    status: 503,
                }),
                Some(t),
                FALSE,
                reasons::FEED_UNREACHABLE,
                "HTTP 503",
            ),
            (
                Round::FetchFailed(FetchError::Invalid {
                    url: url.into(),
                    message: "expected value".into(),
                }),
                Some(t),
                FALSE,
                reasons::FEED_INVALID,
                "did not serve a release feed",
            ),
            (
                Round::ApplyFailed {
                    counts: counts(0),
                    failed: vec!["ComponentRelease r: forbidden".into()],
                },
                Some(t),
                FALSE,
                reasons::FEED_APPLY_FAILED,
                "cannot apply ComponentRelease r: forbidden",
            ),
        ];
        for (round, last, status, reason, message) in rows {
            let c = condition(&round, url, last);
            assert_eq!(c.type_, RELEASE_FEED);
            assert_eq!((c.status, c.reason.as_str()), (status, reason), "{round:?}");
            assert!(c.message.contains(message), "{round:?}: {}", c.message);
        }
    }

    #[test]
    fn the_slot_reports_only_changes() {
        let slot = ConditionSlot::default();
        let c = DesiredCondition::new(RELEASE_FEED, true, reasons::FEED_SYNCED, "x");
        assert!(slot.set(c.clone()));
        assert!(!slot.set(c.clone()));
        assert_eq!(slot.get(), Some(c));
    }
}
