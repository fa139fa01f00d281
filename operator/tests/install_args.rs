//! The install (kustomize base; `scripts/chart-test.sh` checks the Helm chart renders the same
//! container) starts the operator with arguments the binary really accepts.

use clap::Parser;
use miracolix_operator::cli::{Cli, Command};

#[test]
fn the_deployment_arguments_parse() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("parent")
        .to_path_buf();
    let text =
        std::fs::read_to_string(root.join("manifests/base/deployment.yaml")).expect("deployment");
    let docs: Vec<serde_json::Value> =
        miracolix_operator::yaml::from_multi_doc(&text).expect("yaml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let container = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "operator"))
        .expect("container `operator`");
    let mut argv = vec!["miracolix-operator".to_string()];
    argv.extend(
        container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string()),
    );
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"));
    let Command::Run(run) = cli.command else {
        panic!("the install must start `run`, got {argv:?}");
    };
    assert!(run.leader_elect, "the install runs with leader election");
    assert_eq!(
        run.trusted_keys,
        std::path::PathBuf::from("/etc/miracolix/trusted-keys")
    );
    // The namespaced default: the operator watches exactly the namespaces it has a Role in.
    let rbac = std::fs::read_to_string(root.join("manifests/base/rbac-namespaced.yaml"))
        .expect("rbac-namespaced.yaml");
    let roles: Vec<serde_json::Value> =
        miracolix_operator::yaml::from_multi_doc(&rbac).expect("yaml");
    let mut with_role: Vec<String> = roles
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == "miracolix-operator")
        .filter_map(|d| d["metadata"]["namespace"].as_str().map(str::to_string))
        .collect();
    let mut watched = run.namespaces.clone();
    with_role.sort();
    watched.sort();
    assert!(!watched.is_empty(), "the default install is namespaced");
    assert_eq!(watched, with_role, "--namespace list and Roles differ");
}
