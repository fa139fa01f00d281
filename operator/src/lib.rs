//! miracolix-operator: deploys and runs the MIRACUM data integration centre (DIZ) stack.

pub mod api;
pub mod cli;
pub mod release;
pub mod yaml;
