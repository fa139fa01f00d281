//! Command-line interface: one subcommand per module.
//!
//! Exit status, for every subcommand: 0 success; 1 a check answered "no" (`release verify`: the
//! release is not certified); 2 the command could not do its work (unreadable input, bad key,
//! usage error, as clap also uses 2). Scripts can tell "not certified" from "broken input".
//! `release status` adds 3: a kubeconfig context or the hub could not be reached, so the report
//! is incomplete (`release_status::EXIT_UNREACHABLE`).

pub mod contracts;
pub mod crds;
pub mod docs;
pub mod hub;
pub mod reference;
pub mod release;
pub mod release_status;
pub mod render;
pub mod report;
pub mod run;

use clap::{Parser, Subcommand};

/// Exit status when a check answered "no".
pub const EXIT_NOT_CERTIFIED: u8 = 1;
/// Exit status when a command failed.
pub const EXIT_ERROR: u8 = 2;
// `gate` and `hub` live in their own crates and keep the same convention.
const _: () = assert!(EXIT_ERROR == miracolix_gate::cli::EXIT_ERROR);
const _: () = assert!(EXIT_ERROR == miracolix_hub::cli::EXIT_ERROR);

#[derive(Debug, Parser)]
#[command(
    name = "miracolix-operator",
    // The git revision comes from operator/build.rs (`unknown` in dev builds and without .git).
    version = concat!(env!("CARGO_PKG_VERSION"), " (rev ", env!("MIRACOLIX_GIT_REVISION"), ")"),
    about = "Runs the MIRACUM DIZ stack on Kubernetes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (or write one file per kind).
    Crds(crds::CrdsArgs),
    /// Print the custom resource reference (Markdown) generated from the CRD schemas.
    Reference,
    /// Print the component catalogue (Markdown) generated from the component descriptors.
    Components,
    /// Print the image contracts of the catalogue, and of the components the given releases
    /// define, as JSON (what the test API server enforces).
    Contracts(contracts::ContractsArgs),
    /// Print a page of the documentation that is generated from the code (Markdown): the
    /// condition reasons, the metrics or this command-line reference.
    Docs(docs::DocsArgs),
    /// Release certification: canonical form, signing, verification.
    Release(release::ReleaseArgs),
    /// Print the objects the operator would apply for a DizSite (for GitOps pipelines).
    Render(render::RenderArgs),
    /// Run the controllers.
    Run(run::RunArgs),
    /// Run the feasibility privacy gate in front of a site's FLARE (what a FeasibilityEndpoint's
    /// gate Deployment runs; docs/feasibility.md).
    Gate(miracolix_gate::cli::GateArgs),
    /// Run the consortium hub: the signed release feed, site reports, the release matrix and
    /// the Data Map (docs/consortium.md).
    Hub(miracolix_hub::cli::HubArgs),
    /// Run a site's proposal inbox: signed intake from the central office, DIZ check, UAC votes,
    /// the signed decision posted back, notifications, the web page (what a ProposalInbox's
    /// Deployment runs; docs/proposals.md).
    Inbox(miracolix_inbox::cli::InboxArgs),
    /// Send the site's signed report (release, component health, obfuscated Data Map counts)
    /// to the consortium hub (what the CronJob of a DizSite with `spec.reporting` runs), or
    /// generate the site's report key once (`report keygen`). docs/consortium.md.
    Report(report::ReportArgs),
}
