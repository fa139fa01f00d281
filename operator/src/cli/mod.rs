//! Command-line interface: one subcommand per module.

pub mod crds;
pub mod reference;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "miracolix-operator", version, about = "Runs the MIRACUM DIZ stack on Kubernetes")]
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
}
