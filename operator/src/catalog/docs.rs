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
         declares it. Enable one under `spec.components.<field>` of a DizSite. How to add a \
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
        Exposure::Unauthenticated(p) => {
            format!("`{p}`, **without login** (known gap, see the security notes)")
        }
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
    if !d.security_exceptions.is_empty() {
        out.push_str("\nExceptions to the restricted Pod Security profile:\n");
        for e in d.security_exceptions {
            let _ = writeln!(out, "- {}: {}", e.part, e.text);
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(f) => f.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
