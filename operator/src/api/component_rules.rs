//! The CEL rules on `spec.components`, generated from the component descriptors: what the
//! catalogue checks when it builds a site and CEL can express is refused at admission too, with
//! the same words, so that a site admin learns it from `kubectl apply` rather than from a
//! stalled site. The catalogue keeps its checks for objects admitted before a rule existed and
//! for `render`, which never sees an API server.
//!
//! Per component, as its descriptor says: a key with no value (`blaze:` alone is stored as
//! null, and would disable the component without a word), a required database that is missing,
//! a database where none is used, a CloudNativePG cluster for a MySQL component, storage for a
//! component that keeps no data on a volume, more replicas than it supports, and the other
//! components it needs. Each rule carries a `fieldPath`, so the refusal names the field.

use serde_json::{Value, json};

use crate::catalog::{Access, Component, DatabaseNeed, DbEngine};

/// One generated rule: CEL text, message, the field it is about (relative to
/// `spec.components`) and the apiserver's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentRule {
    pub rule: String,
    pub message: String,
    pub field_path: String,
    pub reason: Option<&'static str>,
}

impl ComponentRule {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "rule": self.rule,
            "message": self.message,
            "fieldPath": self.field_path,
        });
        if let Some(reason) = self.reason {
            v["reason"] = json!(reason);
        }
        v
    }
}

/// `self.<field>` is set to an object (not absent, not null) and not `enabled: false`.
fn enabled(field: &str) -> String {
    format!("(has(self.{field}) && self.{field} != null && self.{field}.enabled)")
}

/// A nullable object field of the component that is absent or null.
fn unset(field: &str, sub: &str) -> String {
    format!("!has(self.{field}.{sub}) || self.{field}.{sub} == null")
}

/// Every rule for every component in the registry, in registry order.
pub fn rules() -> Vec<ComponentRule> {
    Component::all().flat_map(rules_of).collect()
}

fn rules_of(c: Component) -> Vec<ComponentRule> {
    let d = c.descriptor();
    let f = d.field;
    let on = enabled(f);
    let mut out = vec![ComponentRule {
        rule: format!("!has(self.{f}) || self.{f} != null"),
        message: format!(
            "{f} has no value, so it would be stored as null and nothing would run: write `{f}: {minimal}` to run {description} with the catalogue's defaults, or remove the key",
            minimal = d.minimal,
            description = d.description,
        ),
        field_path: format!(".{f}"),
        reason: None,
    }];
    match d.database {
        DatabaseNeed::Required(db) => {
            let hint = match db.engine {
                DbEngine::PostgreSql => {
                    " or database.cloudNativePG (a cluster run by CloudNativePG)"
                }
                DbEngine::MySql => "",
            };
            out.push(ComponentRule {
                rule: format!("!{on} || (has(self.{f}.database) && self.{f}.database != null)"),
                message: format!(
                    "{f} needs a {engine} database: set database.external (a Secret with host, port, username, password, database){hint}",
                    engine = db.engine.display(),
                ),
                field_path: format!(".{f}.database"),
                reason: Some("FieldValueRequired"),
            });
        }
        DatabaseNeed::None => out.push(ComponentRule {
            rule: format!("!{on} || {}", unset(f, "database")),
            message: format!("{f} uses no database; remove database"),
            field_path: format!(".{f}.database"),
            reason: Some("FieldValueForbidden"),
        }),
        DatabaseNeed::Optional(_) => {}
    }
    if d.database.database().map(|db| db.engine) == Some(DbEngine::MySql) {
        out.push(ComponentRule {
            rule: format!(
                "!{on} || {} || {}",
                unset(f, "database"),
                unset(f, "database.cloudNativePG")
            ),
            message: format!(
                "{f} needs MySQL and CloudNativePG runs PostgreSQL only: use database.external (a Secret with host, port, username, password, database)"
            ),
            field_path: format!(".{f}.database.cloudNativePG"),
            reason: Some("FieldValueForbidden"),
        });
    }
    if !d.storage {
        out.push(ComponentRule {
            rule: format!("!{on} || {}", unset(f, "storage")),
            message: format!("{f} keeps no data on a volume; remove storage"),
            field_path: format!(".{f}.storage"),
            reason: Some("FieldValueForbidden"),
        });
    }
    if let Some(limit) = d.replica_limit {
        let max = limit.max;
        let replica = if max == 1 { "replica" } else { "replicas" };
        out.push(ComponentRule {
            rule: format!("!{on} || !has(self.{f}.replicas) || self.{f}.replicas <= {max}"),
            message: format!("{f} supports at most {max} {replica}: {}", limit.why),
            field_path: format!(".{f}.replicas"),
            reason: None,
        });
    }
    for need in d.needs {
        let providers: Vec<String> = need
            .one_of
            .iter()
            .map(|p| enabled(p.component.field))
            .collect();
        let named: Vec<String> = need
            .one_of
            .iter()
            .map(|p| {
                format!(
                    "spec.components.{} ({})",
                    p.component.field, p.component.description
                )
            })
            .collect();
        out.push(ComponentRule {
            rule: format!("!{on} || {}", providers.join(" || ")),
            message: format!("{f} needs {}: enable {}", need.purpose, named.join(" or ")),
            field_path: format!(".{f}"),
            reason: None,
        });
        // A need met by reading another component's database: the provider that is used (the
        // first enabled) must have one, even where its own database is optional.
        if need.one_of.iter().any(|p| p.access == Access::Database) {
            let mut chain = "true".to_string();
            for p in need.one_of.iter().rev() {
                let pf = p.component.field;
                let ok = if p.access == Access::Database {
                    format!("(has(self.{pf}.database) && self.{pf}.database != null)")
                } else {
                    "true".to_string()
                };
                chain = format!("({} ? {ok} : {chain})", enabled(pf));
            }
            let readers: Vec<String> = need
                .one_of
                .iter()
                .map(|p| format!("spec.components.{}", p.component.field))
                .collect();
            out.push(ComponentRule {
                rule: format!("!{on} || {chain}"),
                message: format!(
                    "{f} reads the database of the first enabled of {}: that component needs database.external or database.cloudNativePG",
                    readers.join(", ")
                ),
                field_path: format!(".{f}"),
                reason: None,
            });
        }
    }
    out
}

/// The schemars transform on [`super::Components`]: appends the generated rules.
pub fn add(schema: &mut schemars::Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let generated: Vec<Value> = rules().iter().map(ComponentRule::to_json).collect();
    match obj
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]))
    {
        Value::Array(list) => list.extend(generated),
        other => *other = Value::Array(generated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;

    #[test]
    fn every_rule_names_a_field_of_the_schema() {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let schema = serde_json::to_value(super::super::Components::json_schema(&mut generator))
            .expect("schema serialises");
        let props = schema["properties"].as_object().expect("properties");
        for c in Component::all() {
            assert!(
                props.contains_key(c.field()),
                "{} is not a property of spec.components",
                c.field()
            );
        }
        let rules = schema["x-kubernetes-validations"]
            .as_array()
            .expect("rules are added");
        assert_eq!(rules.len(), super::rules().len());
        for r in rules {
            let path = r["fieldPath"].as_str().expect("every rule has a fieldPath");
            let first = path
                .trim_start_matches('.')
                .split('.')
                .next()
                .unwrap_or_default();
            assert!(props.contains_key(first), "{path}");
        }
    }

    #[test]
    fn rules_follow_the_descriptors() {
        let all = rules();
        let has = |path: &str| all.iter().any(|r| r.field_path == path);
        for c in Component::all() {
            let f = c.field();
            assert!(has(&format!(".{f}")), "{f}: null is refused");
            match c.database_need() {
                DatabaseNeed::Required(_) | DatabaseNeed::None => {
                    assert!(has(&format!(".{f}.database")), "{f}: database rule")
                }
                DatabaseNeed::Optional(_) => {}
            }
            assert_eq!(
                has(&format!(".{f}.replicas")),
                c.max_replicas().is_some(),
                "{f}: replica limit"
            );
        }
        for mysql in ["gpas", "gics"] {
            assert!(has(&format!(".{mysql}.database.cloudNativePG")), "{mysql}");
        }
    }
}
