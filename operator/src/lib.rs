//! miracolix-operator: deploys and runs the MIRACUM data integration centre (DIZ) stack.

pub mod admission;
pub mod api;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod crd_install;
pub mod feed;
pub mod leader;
pub mod release;
pub mod report;
pub mod telemetry;
pub mod yaml;
