//! Whether a reconcile must render the site again, or may report on what it applied last.
//!
//! While a site converges its pods and workloads change dozens of times, and each change
//! triggers a reconcile. Rendering the site (17–30 ms) and hashing every child again gives the
//! same children each time: what the render reads did not change. So after a successful apply
//! the reconcile remembers what it read ([`Inputs`]) and what it applied ([`LastApplied`]), and
//! [`decide`] lets the next reconcile skip the render and the apply, computing only the status,
//! when all of these hold (rules checked in this order; the first that fails names why):
//!
//! 1. a previous apply of this site is remembered (none after a restart, or after the site's
//!    apply failed);
//! 2. the render's inputs are the same: the site's uid and spec, the release it deploys (name
//!    and fingerprint, i.e. its signed content), whether CloudNativePG is installed;
//! 3. every child applied last is still in the cache, with the desired hash applied last and
//!    the live content last seen to match it (nobody changed it: no drift, nothing deleted);
//! 4. the cache holds no other child of the site of a kind the orphan sweep removes (someone
//!    labelled an object as the site's, or a removal has not been seen yet).
//!
//! The rollout record is not an input. What it decides for the render, the release deployed,
//! is (rule 2); a record that moves on without changing that release (an install or an upgrade
//! completing, a halt) changes no child. Rendering on every record write was the second render
//! of every site while it converged (half the operator's renders).
//!
//! Anything else renders and applies as before, which repairs drift and recreates what was
//! deleted; the apply's own per-child checks ([`crate::controller::apply`]) are unchanged.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use kube::core::{ApiResource, DynamicObject};

use crate::api::DizSiteSpec;
use crate::api::conditions::DesiredCondition;
use crate::api::diz_site::ReportingSpec;
use crate::catalog::reporter::NotDeployable;
use crate::controller::cache::LIVE_HASH;
use crate::controller::diff::DESIRED_HASH_ANNOTATION;

/// What the render of a site reads, besides its name and namespace (which key the memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs {
    pub uid: String,
    /// FNV-1a of the spec's JSON encoding (the spec alone, so a status write changes nothing).
    pub spec: u64,
    pub release_name: String,
    /// The signed content's fingerprint: a release is its content.
    pub release_fingerprint: String,
    pub cnpg_available: bool,
}

impl Inputs {
    pub fn new(
        uid: &str,
        spec: &DizSiteSpec,
        release_name: &str,
        release_fingerprint: &str,
        cnpg_available: bool,
    ) -> Self {
        Self {
            uid: uid.to_string(),
            spec: fnv(&serde_json::to_vec(spec).unwrap_or_default()),
            release_name: release_name.to_string(),
            release_fingerprint: release_fingerprint.to_string(),
            cnpg_available,
        }
    }
}

/// One child as applied: its kind (an index into [`kinds`]), name, the hash of the desired
/// object and the hash of the live content seen to match it. Hashes as numbers and kinds as an
/// index keep the memory of 200 sites' ~30 children each under half a MiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedChild {
    pub kind: u8,
    pub name: String,
    pub desired: u64,
    pub live: u64,
}

/// The two hashes a cached child carries (see [`crate::controller::cache::trim_child`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashes {
    pub desired: u64,
    pub live: u64,
}

impl Hashes {
    /// From a trimmed child's annotations; `None` when either hash is missing.
    pub fn of(obj: &DynamicObject) -> Option<Self> {
        let a = obj.metadata.annotations.as_ref()?;
        Some(Self {
            desired: parse_hash(a.get(DESIRED_HASH_ANNOTATION)?)?,
            live: parse_hash(a.get(LIVE_HASH)?)?,
        })
    }
}

/// What a successful apply of a site leaves for the next reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct LastApplied {
    pub inputs: Inputs,
    pub children: Vec<AppliedChild>,
    /// `(kind, name)` of the objects the orphan sweep kept: the children and the rollout record.
    pub kept: BTreeSet<(u8, String)>,
    /// What the render said besides the children, reported again on a skip.
    pub notices: Vec<DesiredCondition>,
    pub reporting: Result<Option<ReportingSpec>, NotDeployable>,
}

impl LastApplied {
    /// From the apply's outcome (`live`: every desired child as the cache now trims it) and the
    /// names the orphan sweep kept. `None` when a child's kind or hashes are unknown: then the
    /// next reconcile renders.
    pub fn new(
        inputs: Inputs,
        live: &[(ApiResource, DynamicObject)],
        kept: impl IntoIterator<Item = (ApiResource, String)>,
        notices: Vec<DesiredCondition>,
        reporting: Result<Option<ReportingSpec>, NotDeployable>,
    ) -> Option<Self> {
        let mut children = Vec::with_capacity(live.len());
        for (ar, obj) in live {
            let h = Hashes::of(obj)?;
            children.push(AppliedChild {
                kind: kind_index(ar)?,
                name: obj.metadata.name.clone()?,
                desired: h.desired,
                live: h.live,
            });
        }
        let kept = kept
            .into_iter()
            .map(|(ar, name)| Some((kind_index(&ar)?, name)))
            .collect::<Option<BTreeSet<_>>>()?;
        Some(Self {
            inputs,
            children,
            kept,
            notices,
            reporting,
        })
    }
}

/// Why a reconcile renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Render {
    /// Nothing the render reads changed and the children are as applied: status only.
    Skip,
    FirstApply,
    InputsChanged,
    ChildChanged(String),
    ChildMissing(String),
    Unexpected(String),
}

/// The decision, from what was applied last, the render's inputs now, a child's hashes as cached (`None`: not cached), and the site's cached children
/// of the orphan sweep's kinds. Rules in the module docs.
pub fn decide(
    last: Option<&LastApplied>,
    now: &Inputs,
    cached: impl Fn(&AppliedChild) -> Option<Hashes>,
    present: &[(u8, String)],
) -> Render {
    let Some(last) = last else {
        return Render::FirstApply;
    };
    if last.inputs != *now {
        return Render::InputsChanged;
    }
    for child in &last.children {
        match cached(child) {
            None => return Render::ChildMissing(child.name.clone()),
            Some(h) if h.desired != child.desired || h.live != child.live => {
                return Render::ChildChanged(child.name.clone());
            }
            Some(_) => {}
        }
    }
    if let Some((_, name)) = present.iter().find(|p| !last.kept.contains(p)) {
        return Render::Unexpected(name.clone());
    }
    Render::Skip
}

/// The kinds a site's children can have: the orphan sweep's, then the data kinds (CNPG
/// `Cluster` last). A child's kind is stored as its index here.
pub fn kinds() -> &'static [ApiResource] {
    static KINDS: OnceLock<Vec<ApiResource>> = OnceLock::new();
    KINDS.get_or_init(|| {
        let mut k = super::workload_kinds();
        k.extend(super::data_kinds(true));
        k
    })
}

pub fn kind_index(ar: &ApiResource) -> Option<u8> {
    kinds()
        .iter()
        .position(|k| k.group == ar.group && k.kind == ar.kind)
        .and_then(|i| u8::try_from(i).ok())
}

/// What each site applied last, by `<namespace>/<name>`.
#[derive(Default)]
pub struct Memory(Mutex<HashMap<String, Arc<LastApplied>>>);

impl Memory {
    pub fn get(&self, key: &str) -> Option<Arc<LastApplied>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Remembers `last`, or forgets the site when there is nothing to remember.
    pub fn set(&self, key: &str, last: Option<LastApplied>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(l) => {
                m.insert(key.to_string(), Arc::new(l));
            }
            None => {
                m.remove(key);
            }
        }
    }
}

fn parse_hash(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// FNV-1a, as [`crate::controller::diff::desired_hash`].
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn inputs() -> Inputs {
        Inputs {
            uid: "u1".into(),
            spec: 7,
            release_name: "2026.2".into(),
            release_fingerprint: "f1".into(),
            cnpg_available: true,
        }
    }

    fn child(kind: u8, name: &str, desired: u64, live: u64) -> AppliedChild {
        AppliedChild {
            kind,
            name: name.into(),
            desired,
            live,
        }
    }

    fn last() -> LastApplied {
        LastApplied {
            inputs: inputs(),
            children: vec![child(0, "blaze", 1, 2), child(3, "blaze", 3, 4)],
            kept: [
                (0, "blaze".into()),
                (3, "blaze".into()),
                (4, "record".into()),
            ]
            .into(),
            notices: Vec::new(),
            reporting: Ok(None),
        }
    }

    /// What was applied, inputs now, cache, site children present, decision.
    type Case<'a> = (
        Option<&'a LastApplied>,
        Inputs,
        &'a BTreeMap<(u8, &'a str), Hashes>,
        &'a [(u8, String)],
        Render,
    );

    #[test]
    fn renders_unless_inputs_and_children_are_as_applied() {
        let as_applied: BTreeMap<(u8, &str), Hashes> = [
            (
                (0, "blaze"),
                Hashes {
                    desired: 1,
                    live: 2,
                },
            ),
            (
                (3, "blaze"),
                Hashes {
                    desired: 3,
                    live: 4,
                },
            ),
        ]
        .into();
        let mut drifted = as_applied.clone();
        drifted.insert(
            (3, "blaze"),
            Hashes {
                desired: 3,
                live: 99,
            },
        );
        let mut stale = as_applied.clone();
        stale.insert(
            (0, "blaze"),
            Hashes {
                desired: 8,
                live: 2,
            },
        );
        let mut deleted = as_applied.clone();
        deleted.remove(&(3, "blaze"));
        let with = |f: fn(&mut Inputs)| {
            let mut i = inputs();
            f(&mut i);
            i
        };
        let kept: Vec<(u8, String)> = vec![(0, "blaze".into()), (4, "record".into())];
        let extra: Vec<(u8, String)> = vec![(0, "blaze".into()), (1, "stray".into())];
        let last = last();
        // (what was applied, inputs now, cache, site children present, decision)
        let cases: Vec<Case<'_>> = vec![
            (Some(&last), inputs(), &as_applied, &kept, Render::Skip),
            (None, inputs(), &as_applied, &kept, Render::FirstApply),
            (
                Some(&last),
                with(|i| i.spec = 8),
                &as_applied,
                &kept,
                Render::InputsChanged,
            ),
            (
                Some(&last),
                with(|i| i.uid = "u2".into()),
                &as_applied,
                &kept,
                Render::InputsChanged,
            ),
            (
                Some(&last),
                with(|i| i.release_fingerprint = "f2".into()),
                &as_applied,
                &kept,
                Render::InputsChanged,
            ),
            (
                Some(&last),
                with(|i| i.release_name = "2026.3".into()),
                &as_applied,
                &kept,
                Render::InputsChanged,
            ),
            (
                Some(&last),
                with(|i| i.cnpg_available = false),
                &as_applied,
                &kept,
                Render::InputsChanged,
            ),
            (
                Some(&last),
                inputs(),
                &drifted,
                &kept,
                Render::ChildChanged("blaze".into()),
            ),
            (
                Some(&last),
                inputs(),
                &stale,
                &kept,
                Render::ChildChanged("blaze".into()),
            ),
            (
                Some(&last),
                inputs(),
                &deleted,
                &kept,
                Render::ChildMissing("blaze".into()),
            ),
            (
                Some(&last),
                inputs(),
                &as_applied,
                &extra,
                Render::Unexpected("stray".into()),
            ),
            // The first rule that fails names the cause.
            (
                Some(&last),
                with(|i| i.spec = 8),
                &deleted,
                &extra,
                Render::InputsChanged,
            ),
        ];
        for (i, (last, now, cache, present, want)) in cases.into_iter().enumerate() {
            let got = decide(
                last,
                &now,
                |c| cache.get(&(c.kind, c.name.as_str())).copied(),
                present,
            );
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn last_applied_reads_the_hashes_of_trimmed_children() {
        let ar = ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
        let mut obj = DynamicObject::new("blaze", &ar);
        obj.metadata.annotations = Some(BTreeMap::from([
            (
                DESIRED_HASH_ANNOTATION.to_string(),
                "00000000000000ff".to_string(),
            ),
            (LIVE_HASH.to_string(), "0000000000000010".to_string()),
        ]));
        let got = LastApplied::new(
            inputs(),
            &[(ar.clone(), obj.clone())],
            [(ar.clone(), "blaze".to_string())],
            Vec::new(),
            Ok(None),
        )
        .expect("known kind and hashes");
        let service = kind_index(&ar).expect("Service is a child kind");
        assert_eq!(got.children, [child(service, "blaze", 255, 16)]);
        assert!(got.kept.contains(&(service, "blaze".to_string())));
        // Without its live hash the child cannot be checked later: nothing is remembered.
        obj.metadata.annotations = Some(BTreeMap::from([(
            DESIRED_HASH_ANNOTATION.to_string(),
            "ff".to_string(),
        )]));
        assert_eq!(
            LastApplied::new(inputs(), &[(ar, obj)], [], Vec::new(), Ok(None)),
            None
        );
    }

    #[test]
    fn the_spec_hash_changes_with_the_spec() {
        let spec: DizSiteSpec = serde_json::from_value(serde_json::json!({
            "siteId": "erlangen", "release": {"name": "2026.2"}, "components": {}
        }))
        .expect("spec");
        let mut other = spec.clone();
        other.paused = !other.paused;
        let a = Inputs::new("u", &spec, "r", "f", false);
        assert_eq!(a, Inputs::new("u", &spec, "r", "f", false));
        assert_ne!(a, Inputs::new("u", &other, "r", "f", false));
    }
}
