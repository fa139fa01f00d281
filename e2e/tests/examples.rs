//! Every example is accepted and every invalid example refused with its message, by the CRD schema
//! and CEL rules as checked in under `crds/` (the same validator the test API server uses).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miracolix_e2e::validation::{
    ROOT_PATH, UnknownFields, ValidationFailure, validate_object_with,
};
use miracolix_operator::api::{ComponentRelease, DizSite};
use miracolix_operator::cli::render;
use miracolix_operator::release::TrustStore;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

fn read_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    miracolix_operator::yaml::from_multi_doc(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// CRDs by kind, from `crds/`.
fn crds() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crds")).expect("crds/ exists") {
        let path = entry.expect("entry").path();
        for crd in read_yaml(&path) {
            let kind = crd
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .expect("CRD has a kind")
                .to_string();
            out.insert(kind, crd);
        }
    }
    assert_eq!(out.len(), 5, "expected the five kinds in crds/");
    out
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(
    crds: &BTreeMap<String, Value>,
    doc: &Value,
    old: Option<&Value>,
) -> Result<Value, String> {
    validate_failure(crds, doc, old).map_err(|f| f.message())
}

fn validate_failure(
    crds: &BTreeMap<String, Value>,
    doc: &Value,
    old: Option<&Value>,
) -> Result<Value, ValidationFailure> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let crd = crds
        .get(kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    validate_object_with(crd, doc, old, UnknownFields::Strict)
}

#[test]
fn every_example_is_accepted() {
    let crds = crds();
    let mut checked = 0;
    for path in yaml_files(&root().join("examples")) {
        for doc in read_yaml(&path) {
            let api_version = doc
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !api_version.starts_with("diz.miracum.org/") {
                continue;
            }
            if let Err(message) = validate(&crds, &doc, None) {
                panic!("{} is refused: {message}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "expected at least six custom resources in examples/, found {checked}"
    );
}

/// Unusual but valid input is admitted, and the sites among it render with the example release:
/// no rule refuses what a site admin may legitimately write.
#[test]
fn every_unusual_valid_example_is_admitted_and_renders() {
    let crds = crds();
    let releases: Vec<ComponentRelease> =
        read_yaml(&root().join("examples/10-release-miracolix-2026.1.yaml"))
            .into_iter()
            .map(|d| serde_json::from_value(d).expect("example release"))
            .collect();
    let trust = TrustStore::from_dir(&root().join("examples/trusted-keys")).expect("demo key");
    let files = yaml_files(&root().join("examples/valid"));
    assert!(
        files.len() >= 5,
        "expected the valid examples, found {}",
        files.len()
    );
    let mut kinds = std::collections::BTreeSet::new();
    for path in files {
        for doc in read_yaml(&path) {
            let stored = validate(&crds, &doc, None)
                .unwrap_or_else(|m| panic!("{} is refused: {m}", path.display()));
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if kind == "DizSite" {
                let site: DizSite = serde_json::from_value(stored).expect("decodes");
                let rendered = render::render(&site, &releases, &trust, true)
                    .unwrap_or_else(|e| panic!("{} does not render: {e}", path.display()));
                let replicas_set = site.spec.components.blaze.as_ref().and_then(|b| b.replicas);
                if replicas_set == Some(0) {
                    // Parked: the workloads exist with no pods.
                    assert!(rendered.iter().any(|d| d["spec"]["replicas"] == 0));
                }
            }
            kinds.insert(kind);
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "ComponentRelease",
            "DizSite",
            "FeasibilityEndpoint",
            "ProposalInbox"
        ],
        "every kind has unusual valid examples"
    );
}

/// `# expect: <field path>: <message>`: the refusal must name that field (`<nil>` for a rule on
/// the whole object, as kube-apiserver prints it) and carry that message.
fn parse_expect(path: &Path, text: &str) -> (String, String) {
    let expect = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| {
            panic!(
                "{} lacks a '# expect: <field>: <message>' line",
                path.display()
            )
        })
        .trim();
    let (field, message) = expect.split_once(": ").unwrap_or_else(|| {
        panic!(
            "{}: '# expect:' must start with the field path, e.g. 'spec.siteId: Invalid value'",
            path.display()
        )
    });
    let named = field == ROOT_PATH
        || field == "spec"
        || field.starts_with("spec.")
        || field.starts_with("metadata.");
    assert!(
        named,
        "{}: '{field}' is not a field path (spec..., metadata... or {ROOT_PATH})",
        path.display()
    );
    (field.to_string(), message.to_string())
}

#[test]
fn every_invalid_example_is_refused_with_its_field_and_message() {
    let crds = crds();
    let files = yaml_files(&root().join("examples/invalid"));
    assert!(
        files.len() >= 60,
        "expected the invalid examples, found {}",
        files.len()
    );
    let mut problems = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let (field, message) = parse_expect(&path, &text);
        let docs = read_yaml(&path);
        assert_eq!(
            docs.len(),
            1,
            "{}: one document per invalid example",
            path.display()
        );
        match validate_failure(&crds, &docs[0], None) {
            Ok(_) => problems.push(format!("{} was accepted", path.display())),
            Err(failure) => {
                let found = failure
                    .errors
                    .iter()
                    .any(|e| e.path == field && e.to_string().contains(&message));
                if !found {
                    problems.push(format!(
                        "{}: expected an error at {field} containing\n    {message}\n  but got\n    {}",
                        path.display(),
                        failure
                            .errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Transition rules (`self == oldSelf`) only fire on update, so they are checked with an old object.
#[test]
fn site_id_cannot_change() {
    let crds = crds();
    let site = read_yaml(&root().join("examples/20-site-erlangen.yaml")).remove(0);
    let stored = validate(&crds, &site, None).expect("example is valid");
    let mut renamed = stored.clone();
    renamed["spec"]["siteId"] = Value::String("nuernberg".into());
    let message = validate(&crds, &renamed, Some(&stored)).expect_err("siteId change refused");
    assert!(message.contains("siteId is immutable"), "{message}");
    // An unrelated change is still fine.
    let mut paused = stored.clone();
    paused["spec"]["paused"] = Value::Bool(true);
    validate(&crds, &paused, Some(&stored)).expect("unrelated update accepted");
}

#[test]
fn release_version_cannot_change() {
    let crds = crds();
    let rel = read_yaml(&root().join("examples/10-release-miracolix-2026.1.yaml")).remove(0);
    let stored = validate(&crds, &rel, None).expect("example is valid");
    let mut changed = stored.clone();
    changed["spec"]["version"] = Value::String("2026.2".into());
    let message = validate(&crds, &changed, Some(&stored)).expect_err("version change refused");
    assert!(message.contains("version is immutable"), "{message}");
}

/// A release is its signed content: none of it changes in place (the API server refuses); the
/// signatures and the unsigned notes may. Delete + create is caught by the rollout plan.
#[test]
fn the_signed_content_of_a_release_is_immutable() {
    let crds = crds();
    let rel = read_yaml(&root().join("examples/10-release-miracolix-2026.1.yaml")).remove(0);
    let stored = validate(&crds, &rel, None).expect("example is valid");
    type Change = fn(&mut Value);
    let refused: [(&str, Change); 7] = [
        ("digest", |r| {
            r["spec"]["components"]["flare"]["digest"] =
                Value::String(format!("sha256:{}", "0".repeat(64)))
        }),
        ("channel", |r| r["spec"]["channel"] = "candidate".into()),
        ("pilot wave dropped", |r| {
            if let Some(w) = r["spec"]["rollout"]["waves"].as_array_mut() {
                w.remove(0);
            }
        }),
        ("progress deadline", |r| {
            r["spec"]["rollout"]["progressDeadline"] = "1s".into()
        }),
        ("rollout removed", |r| {
            if let Some(spec) = r["spec"].as_object_mut() {
                spec.remove("rollout");
            }
        }),
        ("upgrade path", |r| {
            r["spec"]["compatibility"]["upgradeFrom"] = serde_json::json!(["2020.1"])
        }),
        ("expiry added", |r| {
            r["spec"]["notAfter"] = "2030-01-01T00:00:00Z".into()
        }),
    ];
    for (what, change) in refused {
        let mut changed = stored.clone();
        change(&mut changed);
        let message =
            validate(&crds, &changed, Some(&stored)).expect_err(&format!("{what}: change refused"));
        assert!(message.contains("immutable"), "{what}: {message}");
    }
    let mut resigned = stored.clone();
    resigned["spec"]["signature"]["value"] = "AAAA".into();
    resigned["spec"]["compatibility"]["notes"] = "corrected".into();
    validate(&crds, &resigned, Some(&stored)).expect("signatures and notes may change");
}

#[test]
fn defaults_are_applied_as_the_api_server_would() {
    let crds = crds();
    let site = read_yaml(&root().join("examples/22-site-marburg.yaml")).remove(0);
    let stored = validate(&crds, &site, None).expect("valid");
    assert_eq!(
        stored["spec"]["deletionPolicy"], "Retain",
        "patient data is retained by default"
    );
    assert_eq!(stored["spec"]["paused"], false);
    assert_eq!(stored["spec"]["components"]["blaze"]["enabled"], true);
    assert_eq!(
        stored["spec"]["components"]["mainzelliste"]["database"]["cloudNativePG"]["storageSize"],
        "10Gi"
    );
}

#[test]
fn unknown_fields_are_refused_in_strict_mode() {
    let crds = crds();
    let mut site = read_yaml(&root().join("examples/22-site-marburg.yaml")).remove(0);
    site["spec"]["siteID"] = Value::String("typo".into());
    let message = validate(&crds, &site, None).expect_err("unknown field refused");
    assert!(message.contains("siteID"), "{message}");
}

/// Every rule of the operator's CRDs stays within kube-apiserver's estimated cost budgets (per
/// rule and per CRD), so a real cluster accepts the CRDs; the largest are printed for review.
#[test]
fn the_crds_fit_the_cel_cost_budget() {
    use miracolix_e2e::validation::cost::{
        STATIC_ESTIMATED_COST_LIMIT, STATIC_ESTIMATED_CRD_COST_LIMIT, crd_cost_errors, rule_costs,
    };
    for (kind, crd) in crds() {
        assert_eq!(crd_cost_errors(&crd), Vec::new(), "{kind}");
        let schema = crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema")
            .expect("schema");
        let mut costs = rule_costs(schema);
        costs.sort_by_key(|c| std::cmp::Reverse(c.total()));
        let total: u64 = costs.iter().map(|c| c.total()).sum();
        println!(
            "{kind}: {} rules, estimated total {total} (limit {STATIC_ESTIMATED_CRD_COST_LIMIT})",
            costs.len()
        );
        for c in costs.iter().take(3) {
            println!(
                "  {} x {} = {} (limit {STATIC_ESTIMATED_COST_LIMIT}) at {}",
                c.expression_cost,
                c.cardinality,
                c.total(),
                c.path
            );
        }
        assert!(total < STATIC_ESTIMATED_CRD_COST_LIMIT, "{kind}");
    }
}
