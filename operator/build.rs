//! Embeds the git revision the binary is built from, for `miracolix-operator --version`
//! (`0.1.0 (rev 1a2b3c4d5e6f)`), so an image in a hospital's registry can be traced to its commit.
//!
//! Where the revision comes from, first match wins:
//! 1. `MIRACOLIX_GIT_REVISION` in the environment: set by `make image` (scripts/image.sh), the
//!    Dockerfile (`--build-arg GIT_REVISION=…`) and the release workflow, which know the commit
//!    even where the sources carry no `.git` (a Docker build context, a source tarball);
//! 2. `git rev-parse` of the checkout, in release-like profiles only (`release`, `image`);
//! 3. otherwise `unknown`: a fresh clone without `.git` or without git still builds.
//!
//! Why not `git` in dev builds too: following HEAD means re-running this script, and so
//! recompiling the operator crate and relinking every test binary, on every commit; the dev loop
//! on 2-core machines pays for that and gains nothing. Dev builds say `rev unknown`.

use std::path::PathBuf;
use std::process::Command;

const ENV: &str = "MIRACOLIX_GIT_REVISION";

fn main() {
    println!("cargo:rerun-if-env-changed={ENV}");
    let revision = match std::env::var(ENV) {
        Ok(rev) if !rev.trim().is_empty() => Some(rev.trim().to_string()),
        _ if std::env::var("PROFILE").as_deref() == Ok("release") => git_revision(),
        _ => None,
    };
    let revision = revision.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MIRACOLIX_GIT_REVISION={revision}");
}

/// The short revision of HEAD, and which files to watch so a new commit re-runs this script.
fn git_revision() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    // Only this repository's own history: sources unpacked inside some other checkout must not
    // borrow its revision.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let repo = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?).join("..");
    if top.canonicalize().ok()? != repo.canonicalize().ok()? {
        return None;
    }
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names a branch; the branch's ref file (or packed-refs) moves on commit. Paths from
    // git itself, so worktrees (where .git is a file) work too.
    // Only files that exist: cargo re-runs a build script on every build for a missing one.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for path in watch {
        if let Some(p) = git(&["rev-parse", "--git-path", &path]).map(absolute)
            && p.exists()
        {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    Some(revision)
}

fn absolute(path: String) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|d| d.join(&path))
            .unwrap_or(path)
    }
}
