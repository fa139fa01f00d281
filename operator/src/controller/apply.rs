//! Server-side apply of desired children under one field manager, skipping unchanged ones, and
//! removal of children that are no longer desired.

use std::collections::BTreeSet;

use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};

use super::cache::{Cache, LIVE_HASH, child_key};
use super::diff::{self, DESIRED_HASH_ANNOTATION};
use crate::api::reasons;
use crate::catalog::{Child, FIELD_MANAGER, MANAGED_BY, SITE_LABEL};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read {kind} {name}: {source}")]
    Read {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list {kind} to find leftovers: {source}")]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot encode {kind} {name}: {source}")]
    Encode {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ApplyError {
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Apply { .. } => reasons::APPLY_FAILED,
            ApplyError::Read { .. } | ApplyError::List { .. } => reasons::READ_FAILED,
            ApplyError::Delete { .. } => reasons::DELETE_FAILED,
            ApplyError::Encode { .. } => reasons::INTERNAL_ERROR,
        }
    }
}

/// What one apply pass did, for status, events and tests.
#[derive(Debug, Default, Clone)]
pub struct ApplyOutcome {
    /// Live state of every desired child after the pass.
    pub live: Vec<(ApiResource, DynamicObject)>,
    pub applied: Vec<String>,
    pub deleted: Vec<String>,
}

/// Writes `status` of `name` with server-side apply under the operator's field manager (forced:
/// the status is the operator's alone). One place for every kind the operator reports on.
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The exact object applied for a child: its JSON with the desired-hash annotation. `render`
/// prints the same, so GitOps pipelines get what the controller would apply.
pub fn rendered(child: &Child) -> Result<serde_json::Value, serde_json::Error> {
    Ok(diff::with_hash(serde_json::to_value(&child.object)?))
}

fn api_for(client: &Client, ns: &str, ar: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, ar)
}

fn name_of(obj: &DynamicObject) -> String {
    obj.metadata.name.clone().unwrap_or_default()
}

/// Applies every child that differs from its live object, as the cache knows it.
///
/// A child is left alone without any request when the cached object carries the desired hash
/// and its live content is the content last seen to match that desired object
/// ([`super::cache::Verified`]). A cached child with the desired hash but content not seen
/// before (someone edited it, or the operator restarted) is read once and compared field by
/// field ([`diff::unchanged`]); only a difference is written.
pub async fn apply_children(
    client: &Client,
    cache: &Cache,
    namespace: &str,
    children: &[Child],
) -> Result<ApplyOutcome, ApplyError> {
    let mut out = ApplyOutcome::default();
    for child in children {
        let kind = child.resource.kind.clone();
        let name = name_of(&child.object);
        let api = api_for(client, namespace, &child.resource);
        let key = child_key(&child.resource, namespace, &name);
        let desired = rendered(child).map_err(|source| ApplyError::Encode {
            kind: kind.clone(),
            name: name.clone(),
            source,
        })?;
        let want = desired
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(cached) = cache.child(&child.resource, namespace, &name) {
            let annotation = |k: &str| {
                cached
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .cloned()
                    .unwrap_or_default()
            };
            if annotation(DESIRED_HASH_ANNOTATION) == want {
                if cache
                    .verified()
                    .matches(&key, &want, &annotation(LIVE_HASH))
                {
                    out.live.push((child.resource.clone(), (*cached).clone()));
                    continue;
                }
                let live = api
                    .get_opt(&name)
                    .await
                    .map_err(|source| ApplyError::Read {
                        kind: kind.clone(),
                        name: name.clone(),
                        source,
                    })?;
                if let Some(live) = live {
                    let live_json =
                        serde_json::to_value(&live).map_err(|source| ApplyError::Encode {
                            kind: kind.clone(),
                            name: name.clone(),
                            source,
                        })?;
                    if diff::unchanged(&desired, &live_json) {
                        let (live, hash) = trimmed(live);
                        cache.verified().record(key, want, hash);
                        out.live.push((child.resource.clone(), live));
                        continue;
                    }
                }
            }
        }
        // Force: the operator is the authority over its children; a field someone changed by hand
        // is taken back, which is what restores drift.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|source| ApplyError::Apply {
                kind: kind.clone(),
                name: name.clone(),
                source,
            })?;
        let (applied, hash) = trimmed(applied);
        cache.verified().record(key, want, hash);
        out.applied.push(format!("{kind}/{name}"));
        out.live.push((child.resource.clone(), applied));
    }
    Ok(out)
}

/// The answer trimmed as the cache trims children: the status reads the same few fields from
/// either, and a site's full answers (managed fields, pod templates) would otherwise be held
/// until its reconcile ends, for every site converging at once. With its [`LIVE_HASH`], which
/// trimming computed: each answer is hashed once.
fn trimmed(mut obj: DynamicObject) -> (DynamicObject, String) {
    super::cache::trim_child(&mut obj);
    let hash = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LIVE_HASH))
        .cloned()
        .unwrap_or_default();
    (obj, hash)
}

/// Label selector of everything the operator manages for one site.
pub fn site_selector(site: &str) -> String {
    format!("{SITE_LABEL}={site},{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// Deletes objects of the given kinds that carry the site's labels but are not desired (as the
/// cache knows them).
pub async fn delete_orphans(
    client: &Client,
    cache: &Cache,
    namespace: &str,
    site: &str,
    kinds: &[ApiResource],
    desired: &[Child],
    out: &mut ApplyOutcome,
) -> Result<(), ApplyError> {
    let keep: BTreeSet<(String, String)> = desired
        .iter()
        .map(|c| (c.resource.kind.clone(), name_of(&c.object)))
        .collect();
    for ar in kinds {
        let api = api_for(client, namespace, ar);
        for item in cache.site_children(ar, namespace, site) {
            let name = item.metadata.name.clone().unwrap_or_default();
            if keep.contains(&(ar.kind.clone(), name.clone())) {
                continue;
            }
            delete_one(&api, &ar.kind, &name).await?;
            out.deleted.push(format!("{}/{name}", ar.kind));
        }
    }
    Ok(())
}

/// Deletes every object of the given kinds that carries the site's labels.
pub async fn delete_all(
    client: &Client,
    cache: &Cache,
    namespace: &str,
    site: &str,
    kinds: &[ApiResource],
) -> Result<Vec<String>, ApplyError> {
    let mut out = ApplyOutcome::default();
    delete_orphans(client, cache, namespace, site, kinds, &[], &mut out).await?;
    Ok(out.deleted)
}

/// Deletes one object the operator built earlier and no longer wants, if the cache holds it (so
/// a reconcile where it is already gone makes no request).
pub async fn delete_if_present(
    client: &Client,
    cache: &Cache,
    namespace: &str,
    resource: &ApiResource,
    name: &str,
) -> Result<bool, ApplyError> {
    if cache.child(resource, namespace, name).is_none() {
        return Ok(false);
    }
    delete_one(&api_for(client, namespace, resource), &resource.kind, name).await?;
    Ok(true)
}

async fn delete_one(api: &Api<DynamicObject>, kind: &str, name: &str) -> Result<(), ApplyError> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            kind: kind.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}
