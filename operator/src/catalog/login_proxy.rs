//! The login proxy: oauth2-proxy in front of a component that has no login of its own.
//!
//! A part whose exposure is [`Exposure::BehindLoginProxy`] is published on the site's Ingress
//! only when the site sets `spec.auth.oidc`, and then only through an oauth2-proxy container in
//! the same pod: the Ingress and the NetworkPolicy open the proxy's port
//! ([`PORT`]), never the service's. The proxy sends every request without a valid session
//! cookie to the site's identity provider and passes authenticated requests to the service on
//! `127.0.0.1`. Without OIDC the part stays inside the cluster (see
//! [`super::ingress::unpublished`] for how the site says so).
//!
//! oauth2-proxy is the login proxy of the Kubernetes ecosystem (ingress-nginx's external-auth
//! examples and most charts use it). Its image is a release image like every other
//! ([`IMAGE`]), pinned by digest in the signed ComponentRelease; the facts below were read at
//! oauth2-proxy/oauth2-proxy `v7.15.3` (details: docs/upstream/oauth2-proxy.md).
//!
//! How the container is configured (environment variables are its flags with the prefix
//! `OAUTH2_PROXY_`, docs/docs/configuration/overview.md:330-346):
//! - `provider=oidc` with the site's issuer, client id and client secret (from the Secret the
//!   site names; the OIDC provider refuses to start without one, pkg/validation/providers.go:98-118,
//!   so a published part needs `clientSecretRef`);
//! - the cookie secret from the Secret the site names (`spec.auth.oidc.cookieSecretRef`): it
//!   encrypts the session cookie, and the proxy refuses to start without it
//!   (pkg/validation/cookie.go:53-55);
//! - `proxy-prefix=<path>/oauth2`, so the callback (`<path>/oauth2/callback`, to register at the
//!   identity provider) lies under the part's path, which is all the Ingress routes to the proxy;
//!   the cookie is limited to that path, so it is not sent to the site's other services;
//! - `reverse-proxy` (it runs behind the ingress controller, whose `X-Forwarded-*` headers say
//!   which URL to return to; only the ingress controller's namespace reaches the port, by
//!   NetworkPolicy), `skip-provider-button` (straight to the provider, no intermediate page),
//!   `email-domain=*` (who may log in is decided at the identity provider, by who can get a
//!   token for the client);
//! - the upstream `http://127.0.0.1:<port>/`: the request path is passed on unchanged
//!   (pkg/upstream/http.go:45-50), and the service already serves at the part's path.

use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar};

use super::component::Exposure;
use super::contract::{Endpoint, ImageContract, ImageUser, Required};
use super::database::secret_env;
use super::pod::{self, RunAs, Security};
use super::{CatalogError, Component, Ctx, Part, Port, SiteInput, ingress};

/// The release image key of the login proxy.
pub const IMAGE: &str = "oauth2-proxy";

/// The proxy's port on the part's Service: what the Ingress and the ingress controller's
/// NetworkPolicy rule point at.
pub const PORT: Port = Port {
    name: "login",
    port: 4180,
};

/// The distroless `nonroot` user the image runs as.
const UID: i64 = 65532;

const SOURCE: &str = "oauth2-proxy/oauth2-proxy@v7.15.3";

/// What the oauth2-proxy image demands, read at oauth2-proxy v7.15.3 and its base image.
pub const CONTRACT: ImageContract = ImageContract {
    image: IMAGE,
    repository: "quay.io/oauth2-proxy/oauth2-proxy",
    source: SOURCE,
    program: None,
    reads: &[],
    user: ImageUser {
        // The published image (no `-alpine` suffix) is built FROM gcr.io/distroless/static:nonroot
        // and sets no USER of its own, so it inherits the base's numeric user 65532.
        declared: "65532",
        uid: Some(UID),
        gid: Some(UID),
        cite: "oauth2-proxy/oauth2-proxy@v7.15.3:Makefile:61,82-83 (RUNTIME_IMAGE gcr.io/distroless/static:nonroot); Dockerfile:59-74 (no USER); GoogleContainerTools/distroless@cd08076:static/static.bzl:11,63 (user \"65532\" for nonroot)",
    },
    // The cookie session store keeps everything in the browser's cookie: nothing is written.
    writes: &[],
    required: &[
        Required {
            name: "OAUTH2_PROXY_COOKIE_SECRET",
            secret: true,
            message: "missing setting: cookie-secret or cookie-secret-file",
            cite: "oauth2-proxy/oauth2-proxy@v7.15.3:pkg/validation/cookie.go:53-55; pkg/validation/options.go:99-101 (\"invalid configuration:\" before each message); main.go:66-68",
        },
        Required {
            name: "OAUTH2_PROXY_CLIENT_ID",
            secret: false,
            message: "provider missing setting: client-id",
            cite: "oauth2-proxy/oauth2-proxy@v7.15.3:pkg/validation/providers.go:63-65",
        },
        Required {
            name: "OAUTH2_PROXY_CLIENT_SECRET",
            secret: true,
            message: "missing setting: client-secret or client-secret-file",
            cite: "oauth2-proxy/oauth2-proxy@v7.15.3:pkg/validation/providers.go:98-118",
        },
        Required {
            name: "OAUTH2_PROXY_EMAIL_DOMAINS",
            secret: false,
            message: "missing setting for email validation: email-domain or authenticated-emails-file required.",
            cite: "oauth2-proxy/oauth2-proxy@v7.15.3:pkg/validation/options.go:50-53",
        },
        Required {
            name: "OAUTH2_PROXY_OIDC_ISSUER_URL",
            secret: false,
            message: "missing required setting: issuer-url",
            cite: "oauth2-proxy/oauth2-proxy@v7.15.3:pkg/providers/oidc/provider_verifier.go:62-67",
        },
    ],
    // The default `http-address` is 127.0.0.1:4180 (pkg/apis/options/legacy_options.go:494),
    // unreachable from the ingress controller: the container sets 0.0.0.0:4180.
    ports: &[4180],
    endpoints: &[Endpoint {
        path: "/ping",
        port: 4180,
        // Answered by the health-check middleware before authentication and logging.
        needs: None,
        cite: "oauth2-proxy/oauth2-proxy@v7.15.3:oauthproxy.go:372-393; pkg/apis/options/options.go:105,147; docs/docs/features/endpoints.md:9",
    }],
    jvm: None,
};

/// Small and fixed: the proxy holds no state (sessions live in the encrypted cookie).
const RESOURCES: pod::Presets = pod::Presets {
    small: PROXY_RES,
    medium: PROXY_RES,
    large: PROXY_RES,
};

const PROXY_RES: pod::Res = pod::Res {
    cpu: "25m",
    memory: "64Mi",
    cpu_limit: "250m",
};

/// Whether the part is published, and therefore runs the login proxy.
pub fn runs(site: &SiteInput, part: &Part) -> bool {
    matches!(part.exposure, Exposure::BehindLoginProxy(_)) && ingress::is_exposed(site, part)
}

/// Whether any part of the component runs the login proxy on this site (its image is needed).
pub fn runs_for(site: &SiteInput, component: Component) -> bool {
    component.parts().iter().any(|p| runs(site, p))
}

/// The settings the proxy cannot start without, checked before anything is built.
pub(crate) fn check(site: &SiteInput, component: Component) -> Vec<CatalogError> {
    if !runs_for(site, component) {
        return Vec::new();
    }
    let Some(oidc) = site.spec.auth.as_ref().and_then(|a| a.oidc.as_ref()) else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    if oidc.client_secret_ref.is_none() {
        missing.push("spec.auth.oidc.clientSecretRef (the login proxy is a confidential client)");
    }
    if oidc.cookie_secret_ref.is_none() {
        missing.push(
            "spec.auth.oidc.cookieSecretRef (a Secret key with 32 random bytes that encrypts the session cookie)",
        );
    }
    if missing.is_empty() {
        return Vec::new();
    }
    vec![CatalogError::UnsupportedCombination {
        component,
        field: component.field(),
        detail: format!(
            "it has no login of its own and is published on spec.ingress only behind the login proxy (oauth2-proxy), which needs {}; set them, or remove spec.ingress",
            missing.join(" and ")
        ),
    }]
}

fn value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// The proxy container for a published part, `None` when the part does not run one.
pub(crate) fn container(ctx: &Ctx, part: &Part) -> Result<Option<Container>, CatalogError> {
    if !runs(ctx.site, part) {
        return Ok(None);
    }
    let (Exposure::BehindLoginProxy(path), Some(oidc), Some(base), Some(upstream)) = (
        part.exposure,
        ctx.oidc(),
        ctx.public_base(),
        part.ports.first(),
    ) else {
        return Ok(None);
    };
    let incomplete = |what: &str| CatalogError::UnsupportedCombination {
        component: ctx.component,
        field: ctx.component.field(),
        detail: format!("the login proxy needs {what}"),
    };
    let client_secret = oidc
        .client_secret_ref
        .as_ref()
        .ok_or_else(|| incomplete("spec.auth.oidc.clientSecretRef"))?;
    let cookie_secret = oidc
        .cookie_secret_ref
        .as_ref()
        .ok_or_else(|| incomplete("spec.auth.oidc.cookieSecretRef"))?;
    let image = ctx.image(IMAGE)?;
    let prefix = format!("{}/oauth2", path.trim_end_matches('/'));
    let env = vec![
        value("OAUTH2_PROXY_PROVIDER", "oidc"),
        value("OAUTH2_PROXY_OIDC_ISSUER_URL", oidc.issuer_url.clone()),
        value("OAUTH2_PROXY_CLIENT_ID", oidc.client_id.clone()),
        secret_env(
            "OAUTH2_PROXY_CLIENT_SECRET",
            &client_secret.name,
            &client_secret.key,
        ),
        secret_env(
            "OAUTH2_PROXY_COOKIE_SECRET",
            &cookie_secret.name,
            &cookie_secret.key,
        ),
        value(
            "OAUTH2_PROXY_HTTP_ADDRESS",
            format!("0.0.0.0:{}", PORT.port),
        ),
        value(
            "OAUTH2_PROXY_UPSTREAMS",
            format!("http://127.0.0.1:{}/", upstream.port),
        ),
        value("OAUTH2_PROXY_PROXY_PREFIX", prefix.clone()),
        value(
            "OAUTH2_PROXY_REDIRECT_URL",
            format!("{base}{prefix}/callback"),
        ),
        value("OAUTH2_PROXY_COOKIE_PATH", path),
        value("OAUTH2_PROXY_COOKIE_SECURE", "true"),
        value("OAUTH2_PROXY_REVERSE_PROXY", "true"),
        value("OAUTH2_PROXY_SKIP_PROVIDER_BUTTON", "true"),
        value("OAUTH2_PROXY_EMAIL_DOMAINS", "*"),
        value("OAUTH2_PROXY_SILENCE_PING_LOGGING", "true"),
    ];
    let probe = pod::http_probe("/ping", PORT.name);
    // Its own user, whatever the pod's: the image's numeric user, the restricted profile.
    let security = Security {
        run_as: RunAs::User(UID),
        read_only_root: true,
    };
    Ok(Some(Container {
        name: "login-proxy".to_string(),
        image: Some(super::image_ref(image)),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT.name.into()),
            container_port: PORT.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        resources: Some(pod::resources(ctx, &RESOURCES, false)),
        security_context: Some(pod::container_security(security)),
        readiness_probe: Some(probe.clone()),
        liveness_probe: Some(probe),
        ..Container::default()
    }))
}

/// The ports of a part's Service: its own, its sidecars', and the proxy's when it runs one.
pub fn service_ports(site: &SiteInput, part: &Part) -> Vec<Port> {
    let mut ports = part.ports.to_vec();
    ports.extend(part.sidecars.iter().map(|s| s.port));
    if runs(site, part) {
        ports.push(PORT);
    }
    ports
}

/// The port the Ingress (and the ingress controller's NetworkPolicy rule) uses for a published
/// part: the proxy's when it runs one, else the part's first.
pub fn published_port(site: &SiteInput, part: &Part) -> Option<Port> {
    if runs(site, part) {
        Some(PORT)
    } else {
        part.ports.first().copied()
    }
}
