//! Supply chain (docs/dependencies-supply-chain.md): the image's SBOM lists exactly the crates
//! compiled into the operator, with the checksums Cargo.lock pins, and the Debian packages whose
//! files the image holds (static glibc, CA bundle); every Dockerfile base is pinned by digest.

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
            "x86_64-unknown-linux-gnu",
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

#[test]
fn the_sbom_lists_exactly_the_crates_compiled_into_the_operator_with_their_lock_checksums() {
    let bom = sbom();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["metadata"]["component"]["name"], "miracolix-operator");
    let lock = lock();
    let mut listed = BTreeSet::new();
    for c in bom["components"].as_array().expect("components") {
        if !c["purl"]
            .as_str()
            .unwrap_or_default()
            .starts_with("pkg:cargo/")
        {
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

/// The version dpkg reports for a Debian package of the build machine.
fn dpkg_version(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .expect("dpkg-query runs (the image is built on Debian)");
    assert!(out.status.success(), "{package} is not installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_sbom_names_the_debian_packages_whose_files_are_in_the_image() {
    let bom = sbom();
    let components = bom["components"].as_array().expect("components");
    for (package, source) in [
        ("libc6-dev", "glibc"),
        ("ca-certificates", "ca-certificates"),
    ] {
        let c = components
            .iter()
            .find(|c| c["name"] == package)
            .unwrap_or_else(|| panic!("{package} is not in the SBOM"));
        let version = dpkg_version(package);
        assert_eq!(c["version"], version.as_str(), "{package}");
        let purl = c["purl"].as_str().expect("purl");
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{package}@")),
            "{purl}"
        );
        assert_eq!(c["properties"][0]["value"], source, "{package}");
    }
    // The operator depends on them, so a scanner walking the graph from the root reaches them.
    let root = bom["metadata"]["component"]["bom-ref"].clone();
    let depends_on = bom["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["ref"] == root)
        .expect("the operator's dependencies");
    for package in ["libc6-dev", "ca-certificates"] {
        assert!(
            depends_on["dependsOn"]
                .as_array()
                .expect("dependsOn")
                .iter()
                .any(|r| r
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("/{package}@"))),
            "{package}"
        );
    }
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
    assert_eq!(
        bases.last(),
        Some(&"scratch"),
        "the runtime stage starts empty"
    );
    // `scratch` is not an image but the empty start of one: nothing to pin.
    for base in bases.into_iter().filter(|b| *b != "scratch") {
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
