//! Supply chain (docs/dependencies-supply-chain.md): the image's SBOM lists exactly the crates
//! compiled into the operator, with the checksums Cargo.lock pins, and the base image by digest;
//! every Dockerfile base is pinned by digest.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::repo_root;
use serde_json::Value;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn sbom() -> Value {
    let out = Command::new("python3")
        .arg(repo_root().join("scripts/sbom.py"))
        .env("CARGO", cargo())
        .current_dir(repo_root())
        .output()
        .expect("python3 runs scripts/sbom.py (make tools installs python3)");
    assert!(
        out.status.success(),
        "scripts/sbom.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the SBOM is JSON")
}

/// (name, version) → checksum of every package in Cargo.lock.
fn lock() -> BTreeMap<(String, String), Option<String>> {
    let text = std::fs::read_to_string(repo_root().join("Cargo.lock")).expect("Cargo.lock");
    let mut out = BTreeMap::new();
    for block in text.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(&format!("{key} = \""))
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_string)
            })
        };
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            continue;
        };
        out.insert((name, version), field("checksum"));
    }
    out
}

/// What cargo itself says is compiled into the operator for the image's target: the normal
/// dependency tree, host-compiled proc macros included.
fn cargo_tree() -> BTreeSet<(String, String)> {
    let out = Command::new(cargo())
        .args([
            "tree",
            "-p",
            "miracolix-operator",
            "-e",
            "normal",
            "--target",
            "x86_64-unknown-linux-musl",
            "--prefix",
            "none",
            "--locked",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            (name != "miracolix-operator").then(|| (name.to_string(), version.to_string()))
        })
        .collect()
}

fn final_base() -> String {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .next()
        .expect("a FROM line")
}

#[test]
fn the_sbom_lists_exactly_the_crates_compiled_into_the_operator_with_their_lock_checksums() {
    let bom = sbom();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["metadata"]["component"]["name"], "miracolix-operator");
    let lock = lock();
    let mut listed = BTreeSet::new();
    for c in bom["components"].as_array().expect("components") {
        if c["type"] != "library" {
            continue;
        }
        let name = c["name"].as_str().expect("name").to_string();
        let version = c["version"].as_str().expect("version").to_string();
        let key = (name.clone(), version.clone());
        let Some(checksum) = lock.get(&key) else {
            panic!("{name} {version} is in the SBOM but not in Cargo.lock");
        };
        assert_eq!(
            c["hashes"][0]["content"].as_str(),
            checksum.as_deref(),
            "{name} {version}: the SBOM's SHA-256 is Cargo.lock's checksum"
        );
        assert_eq!(c["purl"], format!("pkg:cargo/{name}@{version}"));
        listed.insert(key);
    }
    let compiled = cargo_tree();
    let missing: Vec<_> = compiled.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&compiled).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the SBOM and `cargo tree` disagree: missing {missing:?}, extra {extra:?}"
    );
    // The crates a security review asks about first are there.
    for core in [
        "kube-client",
        "k8s-openapi",
        "rustls",
        "ring",
        "tokio",
        "hyper",
    ] {
        assert!(listed.iter().any(|(n, _)| n == core), "{core}");
    }
    // Not the test API server, which only the tests use.
    assert!(!listed.iter().any(|(n, _)| n == "miracolix-e2e"));
}

#[test]
fn the_sbom_names_the_base_image_by_its_pinned_digest() {
    let bom = sbom();
    let base = final_base();
    let (name, digest) = base
        .split_once('@')
        .expect("the final FROM is pinned by digest");
    let container = bom["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["type"] == "container")
        .expect("the base image is a component");
    assert_eq!(
        container["name"],
        name.rsplit_once(':').map_or(name, |(n, _)| n)
    );
    assert_eq!(
        container["hashes"][0]["content"],
        digest.trim_start_matches("sha256:")
    );
}

#[test]
fn every_dockerfile_base_is_pinned_by_digest() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let bases: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(bases.len() >= 2, "{bases:?}");
    for base in bases {
        let digest = base
            .split_once("@sha256:")
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("{base} is not pinned by digest"));
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{base}: not a sha256 digest"
        );
    }
}
