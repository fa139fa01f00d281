//! Controllers, one module per kind, sharing the apply machinery and the context.

pub mod apply;
pub mod certification;
pub mod component_release;
pub mod diff;
pub mod dizsite;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};

use crate::api::{ComponentRelease, DizSite};
use crate::clock::Clock;
use certification::Certifier;

/// Per-object exponential backoff for failed reconciles: 1 s, 2 s, 4 s … capped at 5 minutes, so
/// a broken site neither hammers the API server nor waits long after the cause is fixed.
#[derive(Debug, Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    pub const MAX: Duration = Duration::from_secs(300);

    pub fn next(&self, key: &str) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        let delay = Duration::from_secs(1u64 << (*n).min(9)).min(Self::MAX);
        *n = n.saturating_add(1);
        delay
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub certifier: Arc<dyn Certifier>,
    pub clock: Arc<dyn Clock>,
    pub backoff: Backoff,
}

impl Context {
    pub fn new(client: Client, certifier: Arc<dyn Certifier>, clock: Arc<dyn Clock>) -> Self {
        let reporter = Reporter {
            controller: "miracolix-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            certifier,
            clock,
            backoff: Backoff::default(),
        }
    }
}

/// Which namespaces to watch.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    #[default]
    AllNamespaces,
    Namespace(String),
}

fn api_for<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::AllNamespaces => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// Runs the DizSite controller until `shutdown` resolves.
pub async fn run_dizsite(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let sites: Api<DizSite> = api_for(&client, &scope);
    let wc = watcher::Config::default();
    let controller = Controller::new(sites, wc.clone());
    let store = controller.store();
    controller
        .owns(api_for::<Deployment>(&client, &scope), wc.clone())
        .owns(api_for::<StatefulSet>(&client, &scope), wc.clone())
        // A release changing (new one on a channel, a signature fixed) concerns every site.
        .watches(
            Api::<ComponentRelease>::all(client.clone()),
            wc,
            move |_release| {
                store
                    .state()
                    .into_iter()
                    .map(|s| ObjectRef::from_obj(&*s))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(dizsite::reconcile, dizsite::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(site = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::default();
        let got: Vec<u64> = (0..12).map(|_| b.next("a").as_secs()).collect();
        assert_eq!(&got[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(*got.last().expect("non-empty"), 300);
        assert_eq!(b.next("other").as_secs(), 1);
        b.reset("a");
        assert_eq!(b.next("a").as_secs(), 1);
    }
}
