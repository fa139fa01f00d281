//! `docs/components.md`, generated from the component descriptors (`make crds` writes it; a test
//! fails when the checked-in file is stale). Nothing here knows a component by name.

use std::fmt::Write as _;

use super::{Component, DatabaseNeed, Exposure};

/// The whole page.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Components\n\n\
         <!-- Generated from the component descriptors in operator/src/catalog/ by `make crds`; \
         do not edit. -->\n\n\
         Every component the operator can deploy, as its descriptor in `operator/src/catalog/` \
         declares it, with the image contract of each image: what it demands of the pod, read \
         from the image's upstream source at the pinned version (details and what could not be \
         verified: [upstream/](upstream/)). The test API server's kubelet enforces the contracts. Enable one under `spec.components.<field>` of a DizSite. How to add a \
         component: [adding-a-component.md](adding-a-component.md).\n\n",
    );
    out.push_str(
        "| component | `spec.components.` | what | images | database | replicas | storage |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for c in Component::all() {
        let d = c.descriptor();
        let images = c
            .images()
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| [{name}](#{name}) | `{field}` | {what} | {images} | {db} | {replicas} | {storage} |",
            name = d.name,
            field = d.field,
            what = d.description,
            db = database(d.database),
            replicas = d
                .replica_limit
                .map_or_else(|| "any".to_string(), |l| format!("at most {}", l.max)),
            storage = if d.storage { "yes" } else { "no" },
        );
    }
    for c in Component::all() {
        section(&mut out, c);
    }
    out
}

fn database(need: DatabaseNeed) -> String {
    match need {
        DatabaseNeed::None => "none".to_string(),
        DatabaseNeed::Optional(d) => format!("{} (optional)", d.engine.display()),
        DatabaseNeed::Required(d) => d.engine.display().to_string(),
    }
}

fn exposure(e: Exposure) -> String {
    match e {
        Exposure::Never => "never".to_string(),
        Exposure::WithOidc(p) => format!("`{p}`, only with `spec.auth.oidc`"),
        Exposure::OwnLogin(p) => format!("`{p}` (its own login)"),
        Exposure::BehindLoginProxy(p) => format!(
            "`{p}`, only with `spec.auth.oidc`, behind the login proxy (`oauth2-proxy`; no login of its own)"
        ),
    }
}

fn section(out: &mut String, c: Component) {
    let d = c.descriptor();
    let _ = writeln!(out, "\n## {}\n\n{}.", d.name, capitalise(d.description));
    if let Some(limit) = d.replica_limit {
        let _ = writeln!(out, "\nAt most {} replica: {}.", limit.max, limit.why);
    }
    if let Some(db) = d.database.database() {
        let _ = writeln!(
            out,
            "\nDatabase: {} (`spec.components.{}.database`); a CloudNativePG cluster gets the \
             database and owner `{}`.",
            database(d.database),
            d.field,
            db.name
        );
    }
    out.push_str(
        "\n| part | image | ports | ingress | entry point | calls |\n|---|---|---|---|---|---|\n",
    );
    for p in d.parts {
        let ports = p
            .ports
            .iter()
            .map(|p| format!("{} {}", p.name, p.port))
            .collect::<Vec<_>>()
            .join(", ");
        let calls = p
            .calls
            .iter()
            .map(|(part, ports)| format!("{part} {ports:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            p.name,
            p.image,
            if ports.is_empty() {
                "—".into()
            } else {
                ports
            },
            exposure(p.exposure),
            if p.entry_point {
                format!("yes (`diz.miracum.org/access-{}`)", p.name)
            } else {
                "no".into()
            },
            if calls.is_empty() {
                "—".into()
            } else {
                calls
            },
        );
    }
    if !d.needs.is_empty() {
        out.push_str("\nNeeds:\n");
        for need in d.needs {
            let options = need
                .one_of
                .iter()
                .map(|p| format!("`{}`", p.component.field))
                .collect::<Vec<_>>()
                .join(" or ");
            let _ = writeln!(out, "- {}: {options}", need.purpose);
        }
    }
    for c in d.contracts {
        contract(out, c);
    }
    if !d.security_exceptions.is_empty() {
        out.push_str("\nExceptions to the restricted Pod Security profile:\n");
        for e in d.security_exceptions {
            let _ = writeln!(out, "- {}: {}", e.part, e.text);
        }
    }
}

/// An image contract: what the image demands of its pod, each fact with its source.
fn contract(out: &mut String, c: &super::contract::ImageContract) {
    let _ = writeln!(
        out,
        "\nImage contract of `{}` (`{}`, read at `{}`):\n",
        c.image, c.repository, c.source
    );
    let uid = c
        .user
        .uid
        .map_or_else(|| "not published".to_string(), |u| u.to_string());
    let _ = writeln!(
        out,
        "- user `{}` (uid {uid}{}) — {}",
        c.user.declared,
        c.user.gid.map(|g| format!(", gid {g}")).unwrap_or_default(),
        c.user.cite
    );
    for w in c.writes {
        let kind = match w.kind {
            super::contract::WriteKind::Dir => "writes",
            super::contract::WriteKind::RewrittenFile => "rewrites at start",
        };
        let _ = writeln!(out, "- {kind} `{}`: {} — {}", w.path, w.why, w.cite);
    }
    for r in c.required {
        let secret = if r.secret { ", from a Secret" } else { "" };
        let message = if r.message.is_empty() {
            String::new()
        } else {
            format!("; without it: \"{}\"", r.message)
        };
        let _ = writeln!(out, "- requires `{}`{secret}{message} — {}", r.name, r.cite);
    }
    if !c.ports.is_empty() {
        let ports = c
            .ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "- listens on {ports}");
    }
    for e in c.endpoints {
        let needs = e
            .needs
            .map(|(k, v)| format!(" (with `{k}={v}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- serves `{}` on {}{needs} — {}",
            e.path, e.port, e.cite
        );
    }
    if let Some(j) = &c.jvm {
        let heap = j.default_heap_mib.map_or_else(
            || "sized by the JVM from the limit".to_string(),
            |h| format!("fixed at {h} MiB"),
        );
        let _ = writeln!(
            out,
            "- JVM heap {heap}; replaced through `{}` — {}",
            j.options_env, j.cite
        );
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(f) => f.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
