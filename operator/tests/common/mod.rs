//! Fixtures shared by the catalogue tests: the example release and sites, and small specs.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;

use miracolix_operator::api::{ComponentRelease, DizSite, DizSiteSpec};
use miracolix_operator::catalog::{Child, Component, ResolvedRelease, SiteInput};
use serde_json::Value;

pub const EXAMPLE_SITES: &[&str] = &[
    "20-site-erlangen.yaml",
    "21-site-dresden.yaml",
    "22-site-marburg.yaml",
];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

/// A fresh, empty directory for one test: `<tmp>/miracolix-<tag>-<pid>`.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("miracolix-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn read_example<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = repo_root().join("examples").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut docs: Vec<T> = miracolix_operator::yaml::from_multi_doc(&text)
        .unwrap_or_else(|e| panic!("{path:?} parses: {e}"));
    assert_eq!(docs.len(), 1, "{file} holds one document");
    docs.remove(0)
}

/// The example release 2026.1, resolved.
pub fn release() -> ResolvedRelease {
    let r: ComponentRelease = read_example("10-release-miracolix-2026.1.yaml");
    ResolvedRelease::of(
        &r.metadata.name.clone().expect("release has a name"),
        &r.spec,
    )
}

pub fn example_site(file: &str) -> DizSite {
    read_example(file)
}

/// A fixture site: the DizSite's name, namespace and uid plus a spec.
pub struct Fixture {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub spec: DizSiteSpec,
    pub release: ResolvedRelease,
    pub cnpg_available: bool,
}

impl Fixture {
    pub fn from_site(site: &DizSite) -> Fixture {
        Fixture {
            name: site.metadata.name.clone().expect("site has a name"),
            namespace: site
                .metadata
                .namespace
                .clone()
                .expect("site has a namespace"),
            uid: "0b6f6d1c-5a4e-4c0e-9d55-2a9c1f8e7b21".into(),
            spec: site.spec.clone(),
            release: release(),
            cnpg_available: true,
        }
    }

    pub fn example(file: &str) -> Fixture {
        Fixture::from_site(&example_site(file))
    }

    /// A site named `test` in namespace `diz-test` with the given spec body (YAML of
    /// `spec`, without siteId and release, which are filled in).
    pub fn spec_yaml(body: &str) -> Fixture {
        let yaml = format!("siteId: test\nrelease:\n  name: miracolix-2026.1\n{body}");
        let spec: DizSiteSpec = miracolix_operator::yaml::from_multi_doc(&yaml)
            .expect("spec parses")
            .remove(0);
        Fixture {
            name: "test".into(),
            namespace: "diz-test".into(),
            uid: "11111111-2222-3333-4444-555555555555".into(),
            spec,
            release: release(),
            cnpg_available: true,
        }
    }

    pub fn input(&self) -> SiteInput<'_> {
        SiteInput {
            name: &self.name,
            namespace: &self.namespace,
            uid: &self.uid,
            spec: &self.spec,
            release: &self.release,
            cnpg_available: self.cnpg_available,
        }
    }

    pub fn build(&self) -> Vec<Child> {
        miracolix_operator::catalog::build(&self.input())
            .unwrap_or_else(|e| panic!("site {} builds: {e:#?}", self.name))
    }
}

/// The object as JSON, for assertions by path.
pub fn json(child: &Child) -> Value {
    serde_json::to_value(&child.object).expect("serialises")
}

pub fn find<'a>(children: &'a [Child], kind: &str, name: &str) -> &'a Child {
    children
        .iter()
        .find(|c| c.resource.kind == kind && c.object.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| {
            let have: Vec<_> = children.iter().map(|c| c.key()).collect();
            panic!("no {kind} {name}; have {have:#?}")
        })
}

pub fn of_component(children: &[Child], c: Component) -> Vec<&Child> {
    children
        .iter()
        .filter(|ch| ch.component == Some(c))
        .collect()
}

/// Children rendered as multi-document YAML, the way a snapshot or kubectl sees them.
pub fn to_yaml(children: &[Child]) -> String {
    let objects: Vec<_> = children.iter().map(|c| &c.object).collect();
    miracolix_operator::yaml::to_multi_doc(&objects).expect("renders YAML")
}

/// The registered component called `name`; panics when the registry has none.
pub fn component(name: &str) -> Component {
    Component::named(name).unwrap_or_else(|| panic!("{name} is not in the component registry"))
}

/// FLARE's digest in the example release 2026.1.
pub const FLARE_2026_1: &str = "351161822aced463f3af1350d869ac8cf822bc35b6ed8529f27a893741766b5b";

/// Release 2026.2 of the example, signed with the demo key into `dir`: FLARE's digest becomes
/// `b…b`, it upgrades from 2026.1, and its pilot and consortium waves start in March (a week
/// apart). For the tests of `render`'s rollout plan.
pub fn signed_release_2026_2(dir: &std::path::Path) -> PathBuf {
    let text =
        std::fs::read_to_string(repo_root().join("examples/10-release-miracolix-2026.1.yaml"))
            .expect("example release");
    let unsigned: String = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("signature:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("name: miracolix-2026.1", "name: miracolix-2026.2")
        .replace("version: \"2026.1\"", "version: \"2026.2\"")
        .replace(
            "upgradeFrom: [\"2025.2\", \"2025.2.1\"]",
            "upgradeFrom: [\"2026.1\"]",
        )
        .replace("2026-02-02T06:00:00Z", "2026-03-02T06:00:00Z")
        .replace("2026-02-09T06:00:00Z", "2026-03-09T06:00:00Z");
    assert!(
        unsigned.contains(FLARE_2026_1),
        "the example pins FLARE by this digest"
    );
    let unsigned = unsigned.replace(FLARE_2026_1, &"b".repeat(64));
    let unsigned_path = dir.join("2026.2-unsigned.yaml");
    std::fs::write(&unsigned_path, unsigned).expect("write the unsigned release");
    let signed = dir.join("2026.2.yaml");
    let key = repo_root().join("examples/keys/demo-release-signing.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miracolix-operator"))
        .args(["release", "sign", "-f"])
        .arg(&unsigned_path)
        .arg("--key")
        .arg(&key)
        .args(["--key-id", "miracolix-demo-2026", "-o"])
        .arg(&signed)
        .output()
        .expect("sign runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    signed
}
