//! `miracolix-operator render` as a GitOps pipeline runs it: the binary, files in, YAML out.
//! It admits the DizSite and the releases exactly as the API server does (the same validator,
//! the same CRDs), so what a cluster refuses is never rendered, and a refusal prints nothing on
//! standard output.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_miracolix-operator");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

const RELEASE: &str = "10-release-miracolix-2026.1.yaml";

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "miracolix-render-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn render(site: &Path, release: &Path) -> Output {
    Command::new(BIN)
        .args(["render", "-f", s(site), "--release", s(release)])
        .args(["--trusted-keys", s(&example("trusted-keys"))])
        .output()
        .expect("the operator binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Refused: exit status 2, nothing on standard output, the message on standard error.
fn assert_refused(out: &Output, expect: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(
        out.stdout.is_empty(),
        "a refused render prints nothing on standard output, got:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(out).contains(expect),
        "expected standard error to contain\n  {expect}\nbut it was\n  {}",
        stderr(out)
    );
}

fn site_with(edit: impl FnOnce(&mut String)) -> String {
    let mut text = std::fs::read_to_string(example("22-site-marburg.yaml")).expect("example");
    edit(&mut text);
    text
}

#[test]
fn the_example_sites_render() {
    for site in [
        "20-site-erlangen.yaml",
        "21-site-dresden.yaml",
        "22-site-marburg.yaml",
    ] {
        let out = render(&example(site), &example(RELEASE));
        assert!(out.status.success(), "{site}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("kind: Deployment") || text.contains("kind: StatefulSet"));
    }
}

#[test]
fn a_misspelt_field_is_refused_with_its_path_not_dropped() {
    let dir = TempDir::new("misspelt");
    let site = dir.write(
        "site.yaml",
        &site_with(|t| {
            t.push_str("  maintainanceWindow:\n    schedule: \"0 2 * * 6\"\n    duration: 2h\n");
        }),
    );
    let out = render(&site, &example(RELEASE));
    assert_refused(
        &out,
        "strict decoding error: unknown field \"spec.maintainanceWindow\"",
    );
    assert!(stderr(&out).contains(s(&site)), "names the file");
}

#[test]
fn a_site_the_api_server_refuses_is_not_rendered() {
    let dir = TempDir::new("cel");
    let site = dir.write(
        "site.yaml",
        &site_with(|t| *t = t.replace("siteId: marburg", "siteId: Marburg")),
    );
    assert_refused(
        &render(&site, &example(RELEASE)),
        "DizSite.diz.miracum.org \"marburg\" is invalid: spec.siteId: Invalid value: \"string\": siteId must be a DNS label",
    );
}

#[test]
fn a_release_the_api_server_refuses_is_not_used() {
    let dir = TempDir::new("release");
    let release = std::fs::read_to_string(example(RELEASE)).expect("example");
    let release = dir.write(
        "release.yaml",
        &release.replacen("channel: stable", "channel: beta", 1),
    );
    let out = render(&example("22-site-marburg.yaml"), &release);
    assert_refused(&out, "spec.channel: Unsupported value: \"beta\"");
    assert!(stderr(&out).contains(s(&release)), "names the release file");
}

/// Every refused DizSite example is refused by `render` with the message the API server gives:
/// one validator, not two that drift apart.
#[test]
fn render_refuses_every_invalid_site_example_as_the_api_server_does() {
    let mut checked = 0;
    let dir = repo_root().join("examples/invalid");
    for entry in std::fs::read_dir(&dir).expect("examples/invalid") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        if !text.contains("\nkind: DizSite") {
            continue;
        }
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks '# expect:'", path.display()))
            .trim()
            .to_string();
        let out = render(&path, &example(RELEASE));
        assert_ne!(out.status.code(), Some(0), "{} rendered", path.display());
        assert!(out.stdout.is_empty(), "{}: printed output", path.display());
        assert!(
            stderr(&out).contains(&expect),
            "{}: expected\n  {expect}\nin\n  {}",
            path.display(),
            stderr(&out)
        );
        checked += 1;
    }
    assert!(
        checked >= 10,
        "expected the invalid DizSite examples, found {checked}"
    );
}

/// What CEL cannot express is refused by `render` as by the controller, before anything is
/// printed, with the field to change.
#[test]
fn what_cel_cannot_see_is_refused_before_anything_is_printed() {
    let dir = TempDir::new("beyond-cel");
    for (name, edit, expect) in [
        (
            "backwards.yaml",
            "  maintenanceWindow:\n    schedule: \"5-1 2 * * *\"\n    duration: 2h\n",
            "spec.maintenanceWindow.schedule: schedule field minute (\"5-1\"): range 5-1 runs backwards",
        ),
        (
            "february.yaml",
            "  maintenanceWindow:\n    schedule: \"0 2 31 2 *\"\n    duration: 2h\n",
            "spec.maintenanceWindow.schedule: schedule \"0 2 31 2 *\" never matches",
        ),
    ] {
        let site = dir.write(name, &site_with(|t| t.push_str(edit)));
        assert_refused(&render(&site, &example(RELEASE)), expect);
    }
    // The override passes the CRD (it sets no request), but merged with the preset's request
    // the pod would be invalid.
    let site = dir.write(
        "limit.yaml",
        &site_with(|t| {
            *t = t.replace(
                "    blaze:\n      resources: small\n",
                "    blaze:\n      resources: large\n      resourceOverrides:\n        limits:\n          memory: 1Gi\n",
            )
        }),
    );
    assert_refused(
        &render(&site, &example(RELEASE)),
        "spec.components.blaze.resourceOverrides: the memory limit 1Gi would be below the memory request",
    );
}

/// `render` applies the controller's rollout plan to the site's state: given the release the site
/// runs (`--current`) and a time (`--at`), it prints what the controller would apply then — the
/// running release while the site's wave has not started, the newer one after.
#[test]
fn render_applies_the_rollout_plan_for_the_current_release_and_time() {
    let dir = TempDir::new("plan");
    let signed_path = common::signed_release_2026_2(&dir.0);
    let flare = common::FLARE_2026_1;
    let run = |at: &str| {
        let out = Command::new(BIN)
            .args(["render", "-f", s(&example("22-site-marburg.yaml"))])
            .args([
                "--release",
                s(&example(RELEASE)),
                "--release",
                s(&signed_path),
            ])
            .args(["--trusted-keys", s(&example("trusted-keys"))])
            .args(["--current", "miracolix-2026.1", "--at", at])
            .output()
            .expect("render runs");
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Marburg is in the consortium wave: before it starts it stays on 2026.1 ...
    let before = run("2026-03-05T12:00:00Z");
    assert!(before.contains(flare), "still 2026.1's FLARE");
    assert!(!before.contains(&"b".repeat(64)));
    // ... and after it the controller would upgrade it (Marburg has no maintenance window).
    let after = run("2026-03-10T12:00:00Z");
    assert!(after.contains(&"b".repeat(64)), "2026.2's FLARE");
    // A release name the files do not hold is bad input.
    let out = Command::new(BIN)
        .args(["render", "-f", s(&example("22-site-marburg.yaml"))])
        .args(["--release", s(&example(RELEASE))])
        .args(["--trusted-keys", s(&example("trusted-keys"))])
        .args(["--current", "miracolix-2025.9"])
        .output()
        .expect("render runs");
    assert_refused(&out, "--current miracolix-2025.9");
}
