//! Image contracts: what an upstream image demands of the pod that runs it, as data, each fact
//! with the upstream source it was read from.
//!
//! A contract is the outside truth a builder is checked against: the numeric user the image runs
//! as, the paths it writes (which must be volumes under a read-only root filesystem), the
//! settings without which its entrypoint exits, the health endpoints it really serves and how its
//! JVM sizes the heap. The test API server enforces contracts the way a kubelet and the process
//! would fail (`miracolix_e2e::kubelet`), so "Ready" in the demo means "would start"; they are
//! handed to it as JSON ([`contracts_json`]), which keeps the server generic.

use serde::Serialize;

/// Where a fact comes from: `repository@tag:path[:lines]`, e.g.
/// `samply/blaze@v0.30.2:Dockerfile:13`.
pub type Cite = &'static str;

/// The user an image's process runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUser {
    /// The image's `USER` as written: a number, or a name the kubelet cannot check against
    /// `runAsNonRoot`.
    pub declared: &'static str,
    /// The numeric uid behind it, when upstream publishes it (what the pod must set as
    /// `runAsUser` when `declared` is a name, and who owns the image's own directories). `None`
    /// when it is not known: then the pod must run as a fixed uid with every path the image
    /// writes on a volume.
    pub uid: Option<i64>,
    /// The numeric gid owning the image's writable directories, if it matters.
    pub gid: Option<i64>,
    pub cite: Cite,
}

/// How a path is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteKind {
    /// A directory the process creates files in: needs a writable volume under a read-only root.
    Dir,
    /// A file the entrypoint rewrites in place (sed, envsubst, a template): a read-only mount over
    /// it (a ConfigMap file) breaks the start just like a read-only root.
    RewrittenFile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Write {
    pub path: &'static str,
    pub kind: WriteKind,
    /// What the process does there.
    pub why: &'static str,
    pub cite: Cite,
}

/// A setting without which the process does not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Required {
    /// The environment variable.
    pub name: &'static str,
    /// It is a credential or key: it must come from a Secret (`secretKeyRef`), never a plain value
    /// or a ConfigMap.
    pub secret: bool,
    /// What the entrypoint prints before it exits, as upstream writes it.
    pub message: &'static str,
    pub cite: Cite,
}

/// An HTTP endpoint the image serves, and the setting it needs to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub path: &'static str,
    pub port: i32,
    /// `(variable, value)` that must be set for the endpoint to exist.
    pub needs: Option<(&'static str, &'static str)>,
    pub cite: Cite,
}

/// How a JVM image sizes its heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Jvm {
    /// The fixed maximum heap the image sets by default, in MiB (`-Xmx4g` → 4096); `None` when
    /// the JVM derives it from the container limit.
    pub default_heap_mib: Option<u64>,
    /// The variable whose JVM flags replace the image's default heap: `JAVA_TOOL_OPTIONS` when
    /// the image sets its heap there, else the one its start script passes on the command line
    /// (`JAVA_OPTS`, `CATALINA_OPTS`), since command-line flags win over `JAVA_TOOL_OPTIONS`.
    pub options_env: &'static str,
    /// Where the default comes from and how the image takes JVM options.
    pub cite: Cite,
}

/// Which of an image's programs a contract describes, for an image that runs several (one per
/// subcommand, like the operator image: `run`, `gate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Program {
    /// The leading container args that select this program.
    pub args: &'static [&'static str],
    /// The image's `CMD`: the args when the container sets neither `command` nor `args`.
    pub image_default_args: &'static [&'static str],
    /// What the entrypoint prints and exits with when the args select none of the image's
    /// programs.
    pub unknown_args_message: &'static str,
    pub cite: Cite,
}

/// A file the process reads at start, at the path an environment variable names: it must be
/// there (a mounted ConfigMap or Secret key, or a volume), or the process exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    /// The variable holding the path; the read happens only when it is set.
    pub env: &'static str,
    /// Fields of that file (JSON) that name further files read at start, as `a.b` or `a[].b`
    /// (every element of the list `a`).
    pub references: &'static [&'static str],
    /// What the entrypoint prints when the file is missing, before the path.
    pub message: &'static str,
    pub cite: Cite,
}

/// What one image demands of its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageContract {
    /// The release image key.
    pub image: &'static str,
    /// The image repository as published (how the test API server recognises the image).
    pub repository: &'static str,
    /// `repository@tag` of the source the facts were read at.
    pub source: &'static str,
    /// The program of a multi-program image this contract is about; `None`: the image runs one.
    pub program: Option<Program>,
    /// Files read at start from paths in the environment.
    pub reads: &'static [Read],
    pub user: ImageUser,
    pub writes: &'static [Write],
    pub required: &'static [Required],
    /// Container ports the process listens on.
    pub ports: &'static [i32],
    pub endpoints: &'static [Endpoint],
    pub jvm: Option<Jvm>,
}

/// Every contract of the registered components, in registry order, each image once (the login
/// proxy's contract is listed by every component that can run it), then the project's own image
/// (the operator and the feasibility gate).
pub fn all() -> Vec<&'static ImageContract> {
    let mut out: Vec<&'static ImageContract> = Vec::new();
    for c in super::Component::all()
        .flat_map(|c| c.descriptor().contracts.iter())
        .chain(super::own_image::CONTRACTS.iter())
    {
        if !out
            .iter()
            .any(|o| o.image == c.image && o.program == c.program)
        {
            out.push(c);
        }
    }
    out
}

/// The contracts as the test API server reads them.
pub fn contracts_json() -> String {
    serde_json::to_string_pretty(&all()).unwrap_or_else(|_| "[]".to_string())
}
