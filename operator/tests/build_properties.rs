//! Property test of admission + validate + build with arbitrary DizSite specs: whatever a site
//! admin writes, the operator never panics, and either the API server's schema refuses it with a
//! message, or `catalog::build` returns children, or it returns errors that each name a reason and
//! say what is wrong. Specs are generated from the example sites' component settings, mixed and
//! mutated (replicas, presets, sizes, databases, ingress, policies), so most of them reach
//! `build` rather than being refused by the schema.

mod common;

use std::collections::BTreeMap;

use common::{EXAMPLE_SITES, release, repo_root};
use miracolix_operator::api::DizSite;
use miracolix_operator::catalog::{self, SiteInput};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Every component setting the example sites use, by component name.
fn example_components() -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for file in EXAMPLE_SITES {
        let text =
            std::fs::read_to_string(repo_root().join("examples").join(file)).expect("example");
        let docs: Vec<Value> = miracolix_operator::yaml::from_multi_doc(&text).expect("yaml");
        for d in docs {
            if let Some(components) = d["spec"]["components"].as_object() {
                for (name, v) in components {
                    out.entry(name.clone()).or_default().push(v.clone());
                }
            }
        }
    }
    out
}

/// The ingress settings of the example sites.
fn example_ingresses() -> Vec<Value> {
    EXAMPLE_SITES
        .iter()
        .flat_map(|file| {
            let text =
                std::fs::read_to_string(repo_root().join("examples").join(file)).expect("example");
            miracolix_operator::yaml::from_multi_doc::<Value>(&text).expect("yaml")
        })
        .filter_map(|d| d["spec"].get("ingress").cloned())
        .collect()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9-]{0,12}",
        "[A-Za-z0-9 ._/:@-]{0,20}",
        ".{0,8}",
    ]
}

fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => Just(json!("1Gi")),
        6 => Just(json!("64Gi")),
        1 => Just(json!("0")),
        1 => Just(json!("-1Gi")),
        1 => Just(json!("lots")),
        1 => text().prop_map(Value::String),
        1 => any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (-3i64..12).prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => text().prop_map(Value::String),
    ]
}

/// A mutation of one component's settings.
fn mutate(base: Value) -> impl Strategy<Value = Value> {
    // Each setting is changed with a small probability, so most specs pass the schema and the
    // property is about `build`, not about the schema.
    let p = 0.04;
    (
        prop::option::weighted(p, any::<bool>()),
        prop::option::weighted(p, integer()),
        prop::option::weighted(
            p,
            prop_oneof![
                Just(json!("small")),
                Just(json!("medium")),
                Just(json!("large")),
                text().prop_map(Value::String)
            ],
        ),
        prop::option::weighted(p, quantity()),
        prop::option::weighted(
            p,
            prop_oneof![
                (integer(), quantity()).prop_map(
                    |(i, s)| json!({"cloudNativePG": {"instances": i, "storageSize": s}})
                ),
                text().prop_map(|n| json!({"external": {"name": n}})),
                Just(json!({})),
            ],
        ),
        prop::option::weighted(p, prop::collection::vec(("[A-Z][A-Z_]{0,8}", text()), 0..3)),
    )
        .prop_map(move |(enabled, replicas, resources, size, database, env)| {
            let mut v = base.clone();
            if !v.is_object() {
                v = json!({});
            }
            if let Some(e) = enabled {
                v["enabled"] = json!(e);
            }
            if let Some(r) = replicas {
                v["replicas"] = r;
            }
            if let Some(r) = resources {
                v["resources"] = r;
            }
            if let Some(s) = size {
                v["storage"] = json!({"size": s});
            }
            if let Some(d) = database {
                v["database"] = d;
            }
            if let Some(env) = env {
                v["env"] = env
                    .into_iter()
                    .map(|(n, val)| json!({"name": n, "value": val}))
                    .collect();
            }
            v
        })
}

fn spec() -> impl Strategy<Value = Value> {
    let examples = example_components();
    let components: Vec<BoxedStrategy<(String, Option<Value>)>> = examples
        .into_iter()
        .map(|(name, settings)| {
            let pick = prop::sample::select(settings).prop_flat_map(mutate);
            (Just(name), prop::option::weighted(0.5, pick)).boxed()
        })
        .collect();
    let ingresses = example_ingresses();
    (
        components,
        prop_oneof![8 => "[a-z][a-z0-9]{0,10}", 1 => text()],
        prop::option::of((
            prop::sample::select(ingresses),
            prop::option::weighted(0.15, text()),
        )),
        prop::option::of(prop_oneof![
            5 => Just("Retain".to_string()),
            5 => Just("Delete".to_string()),
            1 => text()
        ]),
        prop::option::weighted(0.1, any::<bool>()),
    )
        .prop_map(|(components, site_id, ingress, policy, paused)| {
            let mut spec = json!({
                "siteId": site_id,
                "release": {"name": "miracolix-2026.1"},
                "components": components
                    .into_iter()
                    .filter_map(|(n, v)| v.map(|v| (n, v)))
                    .collect::<serde_json::Map<_, _>>(),
            });
            if let Some(p) = paused {
                spec["paused"] = json!(p);
            }
            if let Some((mut ingress, host)) = ingress {
                if let Some(h) = host {
                    ingress["host"] = json!(h);
                }
                spec["ingress"] = ingress;
            }
            if let Some(p) = policy {
                spec["deletionPolicy"] = json!(p);
            }
            spec
        })
}

/// Outcomes so far: refused by the schema, built, build errors.
static OUTCOMES: [std::sync::atomic::AtomicUsize; 3] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

fn count(i: usize) {
    OUTCOMES[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// One case: refused with a message, or builds, or every error names its reason and says why.
fn check(spec: Value, cnpg: bool) -> Result<(), TestCaseError> {
    let doc = json!({
        "apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "prop", "namespace": "diz-prop"},
        "spec": spec,
    });
    let admitted = match miracolix_operator::admission::admit(&doc) {
        Ok(a) => a,
        Err(e) => {
            // The API server refuses it: with a message naming what is wrong.
            prop_assert!(
                !e.to_string().trim().is_empty(),
                "refused without a message"
            );
            if std::env::var_os("PROP_DEBUG").is_some() {
                eprintln!("refused: {e}");
            }
            count(0);
            return Ok(());
        }
    };
    let site: DizSite = serde_json::from_value(admitted.clone()).map_err(|e| {
        TestCaseError::fail(format!("admitted but not decodable: {e}\n{admitted:#}"))
    })?;
    let resolved = release();
    let input = SiteInput {
        name: "prop",
        namespace: "diz-prop",
        uid: "11111111-2222-3333-4444-555555555555",
        spec: &site.spec,
        release: &resolved,
        cnpg_available: cnpg,
    };
    match catalog::build(&input) {
        Ok(children) => {
            count(1);
            for c in &children {
                prop_assert!(
                    c.object
                        .metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| !n.is_empty())
                );
                prop_assert_eq!(c.object.metadata.namespace.as_deref(), Some("diz-prop"));
            }
        }
        Err(errors) => {
            count(2);
            prop_assert!(
                !errors.is_empty(),
                "an error result names at least one error"
            );
            for e in &errors {
                prop_assert!(!e.reason().is_empty());
                prop_assert!(!e.to_string().trim().is_empty(), "{:?}", e);
            }
        }
    }
    Ok(())
}

/// 256 specs from a fixed seed (deterministic in `make test`). On a thread with an 8 MiB stack:
/// in debug builds the recursive schema + CEL validation of some generated specs needs more than
/// the 2 MiB of a test thread (4 MiB suffice; release builds use far smaller frames).
#[test]
fn any_spec_is_refused_with_a_message_or_builds_or_names_its_errors() {
    use proptest::test_runner::{Config, TestRng, TestRunner};
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            let config = Config {
                cases: 256,
                failure_persistence: None,
                ..Config::default()
            };
            let rng = TestRng::deterministic_rng(config.rng_algorithm);
            let mut runner = TestRunner::new_with_rng(config, rng);
            runner
                .run(&(spec(), any::<bool>()), |(spec, cnpg)| check(spec, cnpg))
                .unwrap_or_else(|e| panic!("{e}"));
        })
        .expect("test thread")
        .join()
        .expect("the property holds");
    let [refused, built, errors] = OUTCOMES
        .each_ref()
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed));
    eprintln!("specs refused by the schema: {refused}, built: {built}, build errors: {errors}");
    // Most specs must get past the schema, or the property says little about build.
    assert!(
        built >= 16 && errors >= 16,
        "too few specs reached build: refused {refused}, built {built}, errors {errors}"
    );
}
