//! A tower layer on the kube client that counts every request to the API server by verb,
//! resource and status code (`miracolix_api_requests_total`), so "zero requests at steady
//! state" can be watched on a dashboard rather than believed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower::{Layer, Service};

use super::Metrics;

/// Wraps the client's HTTP service; see [`classify`] for the labels.
#[derive(Clone)]
pub struct RequestMetricsLayer(pub Metrics);

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, RB> Service<Request<B>> for RequestMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, resource) = classify(req.method(), req.uri().path(), req.uri().query());
        let metrics = self.metrics.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = res.as_ref().map_or(0, |r| r.status().as_u16());
            metrics.request(verb, &resource, code);
            res
        })
    }
}

/// The verb and resource of a request as kube-apiserver's request info names them:
/// `/api/v1/namespaces/x/pods` is `list pods`, with `?watch=true` `watch pods`,
/// `/apis/apps/v1/namespaces/x/deployments/y/status` is `<method> deployments/status`.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Skip /api/v1 or /apis/<group>/<version>.
    let rest: &[&str] = match parts.first() {
        Some(&"api") if parts.len() >= 2 => &parts[2..],
        Some(&"apis") if parts.len() >= 3 => &parts[3..],
        _ => {
            let verb = match *method {
                Method::GET => "GET",
                Method::POST => "POST",
                Method::PUT => "PUT",
                Method::PATCH => "PATCH",
                Method::DELETE => "DELETE",
                _ => "OTHER",
            };
            return (verb, String::new());
        }
    };
    // namespaces/<ns>/<resource>... (but `namespaces` and `namespaces/<ns>` name namespaces)
    let rest = if rest.len() >= 3 && rest[0] == "namespaces" {
        &rest[2..]
    } else {
        rest
    };
    let (resource, named, sub) = match rest {
        [] => (String::new(), false, None),
        [r] => ((*r).to_string(), false, None),
        [r, _name] => ((*r).to_string(), true, None),
        [r, _name, sub, ..] => ((*r).to_string(), true, Some(*sub)),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method, named) {
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, false) => "deletecollection",
        (&Method::DELETE, true) => "delete",
        _ => "other",
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource,
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_as_the_api_server_names_them() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                None,
                "list",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                Some("watch=true&labelSelector=x"),
                "watch",
                "pods",
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/a/deployments/d",
                None,
                "get",
                "deployments",
            ),
            (
                Method::PATCH,
                "/apis/diz.miracum.org/v1alpha1/namespaces/a/dizsites/s/status",
                Some("fieldManager=m"),
                "patch",
                "dizsites/status",
            ),
            (
                Method::GET,
                "/apis/diz.miracum.org/v1alpha1/componentreleases",
                None,
                "list",
                "componentreleases",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a",
                None,
                "get",
                "namespaces",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps/c",
                None,
                "delete",
                "configmaps",
            ),
            (Method::GET, "/version", None, "GET", ""),
        ];
        for (m, path, q, verb, resource) in cases {
            assert_eq!(
                classify(&m, path, q),
                (verb, resource.to_string()),
                "{path}"
            );
        }
    }
}
