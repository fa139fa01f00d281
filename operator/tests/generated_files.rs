//! Checked-in generated files must match what the code generates: `make crds` (CRDs and every
//! generated page) and `make docs` (the pages) refresh them.

use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = repo_root().join("crds");
    let files = miracolix_operator::cli::crds::rendered_files().expect("CRDs render");
    let mut expected_names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    for (name, content) in files {
        let on_disk = std::fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("crds/{name} missing ({e}); run `make crds`"));
        assert!(
            on_disk == content,
            "crds/{name} is stale: run `make crds` and commit the result"
        );
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    expected_names.sort();
    assert_eq!(
        on_disk, expected_names,
        "crds/ holds files for kinds that no longer exist"
    );
}

#[test]
fn cr_reference_matches_the_schemas() {
    let on_disk = std::fs::read_to_string(repo_root().join("docs/reference.md"))
        .expect("docs/reference.md exists; run `make crds`");
    assert!(
        on_disk == miracolix_operator::cli::reference::markdown(),
        "docs/reference.md is stale: run `make crds` and commit the result"
    );
}

#[test]
fn component_catalogue_matches_the_descriptors() {
    let on_disk = std::fs::read_to_string(repo_root().join("docs/components.md"))
        .expect("docs/components.md exists; run `make crds`");
    assert!(
        on_disk == miracolix_operator::catalog::docs::markdown(),
        "docs/components.md is stale: run `make crds` and commit the result"
    );
}

#[test]
fn generated_pages_match_the_code() {
    use miracolix_operator::cli::docs::{Page, markdown};
    for (page, path) in Page::ALL {
        let on_disk = std::fs::read_to_string(repo_root().join(path))
            .unwrap_or_else(|e| panic!("{path} missing ({e}); run `make docs`"));
        assert!(
            on_disk == markdown(page),
            "{path} is stale: run `make docs` and commit the result"
        );
    }
}

#[test]
fn every_kind_has_status_subresource_printer_columns_and_category() {
    for crd in miracolix_operator::api::all_crds() {
        let kind = &crd.spec.names.kind;
        let v = &crd.spec.versions[0];
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} lacks the status subresource"
        );
        let cols = v
            .additional_printer_columns
            .as_ref()
            .expect("printer columns");
        assert!(
            cols.iter().any(|c| c.name == "Age"),
            "{kind} lacks an Age column"
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["miracum".to_string()][..]),
            "{kind} is not in the miracum category"
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty()),
            "{kind} has no short name"
        );
        let status = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| s.properties.as_ref())
            .and_then(|p| p.get("status"))
            .and_then(|s| s.properties.as_ref())
            .expect("status schema");
        assert!(
            status.contains_key("observedGeneration"),
            "{kind} status lacks observedGeneration"
        );
        assert!(
            status.contains_key("conditions"),
            "{kind} status lacks conditions"
        );
    }
}
