//! Installs or upgrades the operator's CustomResourceDefinitions at start-up.
//!
//! Helm installs CRDs from `crds/` once and never upgrades them, so a new operator version with a
//! changed schema would run against the old one. Applying them from the binary keeps schema and
//! code in step. Clusters whose administrators manage CRDs themselves deny the operator the
//! permission, and the operator then carries on with whatever is installed.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{Condition, conditions};

use crate::api::all_crds;

/// The field manager of the operator's own CRD applies (`kubectl get crd -o yaml
/// --show-managed-fields` shows it).
pub const FIELD_MANAGER: &str = "miracolix-operator";

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("cannot apply CustomResourceDefinition {name}: {source}")]
    Apply {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot serialise CustomResourceDefinition {name}: {source}")]
    Encode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("CustomResourceDefinition {name} is not Established after {timeout:?}")]
    NotEstablished { name: String, timeout: Duration },
    #[error("cannot read CustomResourceDefinition {name}: {source}")]
    Wait {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What start-up did about the CRDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrdOutcome {
    /// All applied and Established.
    Applied(Vec<String>),
    /// The operator may not write CRDs (403): the cluster's administrator manages them.
    Forbidden { name: String, message: String },
}

/// Server-side applies every CRD (forcing ownership: the binary's schema is the truth) and waits,
/// up to `timeout` each, until the API server serves them.
pub async fn ensure_crds(client: &Client, timeout: Duration) -> Result<CrdOutcome, CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let body = serde_json::to_value(&crd).map_err(|source| CrdError::Encode {
            name: name.clone(),
            source,
        })?;
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => names.push(name),
            Err(kube::Error::Api(s)) if s.code == 403 => {
                tracing::warn!(
                    crd = %name,
                    message = %s.message,
                    "not allowed to manage CustomResourceDefinitions; continuing with the ones \
                     installed (the cluster administrator must upgrade them with the operator, \
                     or pass --manage-crds=false to silence this)"
                );
                return Ok(CrdOutcome::Forbidden {
                    name,
                    message: s.message,
                });
            }
            Err(source) => return Err(CrdError::Apply { name, source }),
        }
    }
    for name in &names {
        // Polled with `get`, which RBAC can restrict to these names (a watch would need list
        // and watch on every CRD in the cluster).
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let crd = api.get(name).await.map_err(|source| CrdError::Wait {
                name: name.clone(),
                source,
            })?;
            if conditions::is_crd_established().matches_object(Some(&crd)) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CrdError::NotEstablished {
                    name: name.clone(),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tracing::info!(crds = ?names, "CustomResourceDefinitions applied and established");
    Ok(CrdOutcome::Applied(names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// An API server that forbids everything, as one whose administrator keeps CRDs to itself.
    fn forbidding_client() -> Client {
        let service = tower::service_fn(|req: http::Request<kube::client::Body>| async move {
            let body = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                "code": 403,
                "message": format!("customresourcedefinitions is forbidden ({})", req.uri().path()),
            });
            let response = http::Response::builder()
                .status(403)
                .header("content-type", "application/json")
                .body(
                    http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
                        .map_err(|never| match never {}),
                )
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
        });
        Client::new(service, "default")
    }

    #[tokio::test]
    async fn forbidden_crd_writes_are_reported_not_fatal() {
        let out = ensure_crds(&forbidding_client(), Duration::from_secs(1))
            .await
            .expect("a 403 is not an error");
        match out {
            CrdOutcome::Forbidden { name, message } => {
                assert_eq!(name, "componentreleases.diz.miracum.org");
                assert!(message.contains("forbidden"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
