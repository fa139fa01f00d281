//! URL and query parsing.

use std::collections::HashMap;

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources { group: String, version: String },
    OpenApiV2,
    OpenApiV3,
    OpenApiV3GroupVersion(String),
    Resource(ResourcePath),
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3GroupVersion(rest.join("/")),
        ["api", "v1"] => Route::Resources {
            group: String::new(),
            version: "v1".to_string(),
        },
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::Resources {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["api", "v1", rest @ ..] => resource("", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Route::Unknown,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let (namespace, rest) = match rest {
        // `namespaces/<ns>/<plural>...` addresses namespaced objects; `namespaces/<ns>` and
        // `namespaces/<ns>/status` address the namespace itself.
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (p, None, None),
        [p, n] => (p, Some(n.to_string()), None),
        [p, n, s] => (p, Some(n.to_string()), Some(s.to_string())),
        _ => return Route::Unknown,
    };
    Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        namespace,
        name,
        subresource: sub,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse("/api/v1/namespaces/default/configmaps/x"),
            Route::Resource(ResourcePath {
                group: String::new(),
                version: "v1".into(),
                plural: "configmaps".into(),
                namespace: Some("default".into()),
                name: Some("x".into()),
                subresource: None
            })
        );
        assert_eq!(
            parse("/api/v1/namespaces/default"),
            Route::Resource(ResourcePath {
                group: String::new(),
                version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: Some("default".into()),
                subresource: None
            })
        );
        assert!(
            matches!(parse("/apis/apps/v1/namespaces/a/deployments/d/status"),
            Route::Resource(ResourcePath { subresource: Some(s), .. }) if s == "status")
        );
        assert_eq!(
            query(Some("labelSelector=app%3Dx%2Ctier+in+(a)"))["labelSelector"],
            "app=x,tier in (a)"
        );
    }
}
