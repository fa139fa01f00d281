//! The site's one Ingress.
//!
//! Which parts are published, at which path and on what condition is each part's
//! [`Exposure`](super::Exposure), declared in its component's descriptor (the generated table
//! in `docs/components.md` lists them).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::{
    CatalogError, Child, Component, Exposure, Part, SiteInput, enabled_components, login_proxy,
    site_meta,
};
use crate::api::IssuerKind;

fn has_oidc(site: &SiteInput) -> bool {
    site.spec.auth.as_ref().is_some_and(|a| a.oidc.is_some())
}

/// Whether a part gets a path on the site's Ingress: the site has one, and the part has a login
/// (its own, or the site's OIDC through itself or the login proxy).
pub fn is_exposed(site: &SiteInput, part: &Part) -> bool {
    if site.spec.ingress.is_none() {
        return false;
    }
    match part.exposure {
        Exposure::Never => false,
        Exposure::WithOidc(_) | Exposure::BehindLoginProxy(_) => has_oidc(site),
        Exposure::OwnLogin(_) => true,
    }
}

/// Exposed parts of the enabled components, in catalogue order.
pub fn exposed_parts(site: &SiteInput) -> Vec<&'static Part> {
    enabled_components(site)
        .into_iter()
        .flat_map(|c| c.parts())
        .filter(|p| is_exposed(site, p))
        .collect()
}

/// Parts the site would publish on its Ingress if it had a login for them: the site has an
/// ingress but no `spec.auth.oidc`, and the part is published only with it. They run, reachable
/// inside the cluster only; the DizSite's `Published` condition names them.
pub fn unpublished(site: &SiteInput) -> Vec<(Component, &'static Part)> {
    if site.spec.ingress.is_none() || has_oidc(site) {
        return Vec::new();
    }
    enabled_components(site)
        .into_iter()
        .flat_map(|c| c.parts().iter().map(move |p| (c, p)))
        .filter(|(_, p)| p.exposure.needs_oidc())
        .collect()
}

/// `<site>-tls` when cert-manager issues the certificate.
pub fn tls_secret_name(site: &str) -> String {
    format!("{site}-tls")
}

pub(crate) fn build(site: &SiteInput) -> Result<Vec<Child>, CatalogError> {
    let Some(spec) = &site.spec.ingress else {
        return Ok(Vec::new());
    };
    let parts = exposed_parts(site);
    // An Ingress without paths would be rejected by some controllers and serve nothing.
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let paths = parts
        .iter()
        .filter_map(|p| {
            let path = p.exposure.path()?;
            // Behind the login proxy the Ingress reaches the proxy's port, never the service's.
            let port = login_proxy::published_port(site, p)?;
            Some(HTTPIngressPath {
                path: Some(path.to_string()),
                path_type: "Prefix".to_string(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: format!("{}-{}", site.name, p.name),
                        port: Some(ServiceBackendPort {
                            name: Some(port.name.to_string()),
                            number: None,
                        }),
                    }),
                    ..IngressBackend::default()
                },
            })
        })
        .collect();
    let mut meta = site_meta(site, site.name.to_string(), "ingress");
    let secret_name = match (&spec.tls.secret_name, &spec.tls.issuer_ref) {
        (Some(secret), _) => secret.clone(),
        (None, Some(issuer)) => {
            let key = match issuer.kind {
                IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
                IssuerKind::Issuer => "cert-manager.io/issuer",
            };
            meta.annotations = Some(BTreeMap::from([(key.to_string(), issuer.name.clone())]));
            tls_secret_name(site.name)
        }
        // The schema demands one of the two; fall back to the name cert-manager would use.
        (None, None) => tls_secret_name(site.name),
    };
    let ingress = Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![spec.host.clone()]),
                secret_name: Some(secret_name),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    };
    Ok(vec![Child::from_typed(ingress, None)?])
}
