//! The registry is the one list of components: a component module that is not registered, a
//! `spec.components` field without a component, or a component without its API field fails here,
//! fast, before any other test would notice.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use miracolix_operator::catalog::Component;

fn catalog_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/catalog")
}

/// Module files in `catalog/` that declare a component descriptor.
fn modules_with_a_descriptor() -> BTreeSet<String> {
    std::fs::read_dir(catalog_dir())
        .expect("operator/src/catalog is readable")
        .filter_map(|e| {
            let path = e.expect("dir entry").path();
            let text = std::fs::read_to_string(&path).ok()?;
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            text.contains("pub static COMPONENT: Descriptor")
                .then_some(stem)
        })
        .collect()
}

#[test]
fn every_component_module_is_registered() {
    let registry = std::fs::read_to_string(catalog_dir().join("registry.rs"))
        .expect("catalog/registry.rs exists");
    let modules = modules_with_a_descriptor();
    assert!(modules.len() >= Component::all().count(), "{modules:?}");
    for module in &modules {
        assert!(
            registry.contains(&format!("&{module}::COMPONENT")),
            "catalog/{module}.rs declares a component, but catalog/registry.rs does not list \
             `&{module}::COMPONENT`: add it to REGISTRY"
        );
    }
    assert_eq!(
        modules.len(),
        Component::all().count(),
        "the registry lists a component twice or one outside catalog/"
    );
}

#[test]
fn api_fields_and_registry_agree() {
    let crd = miracolix_operator::api::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "DizSite")
        .expect("the DizSite CRD");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema");
    let fields: BTreeSet<String> = schema.properties.as_ref().expect("properties")["spec"]
        .properties
        .as_ref()
        .expect("spec properties")["components"]
        .properties
        .as_ref()
        .expect("components properties")
        .keys()
        // The list of components the site's release defines, not a component.
        .filter(|k| *k != "fromRelease")
        .cloned()
        .collect();
    let registered: BTreeSet<String> = Component::all().map(|c| c.field().to_string()).collect();
    assert_eq!(
        fields, registered,
        "spec.components fields (left) and registered components (right) differ: every \
         component needs its API field in api/diz_site.rs and its descriptor in the registry"
    );
}

#[test]
fn every_need_names_a_registered_component_and_a_real_part() {
    for c in Component::all() {
        for need in c.descriptor().needs {
            for provider in need.one_of {
                let p = Component::named(provider.component.name).unwrap_or_else(|| {
                    panic!(
                        "{c} needs {}, which is not registered",
                        provider.component.name
                    )
                });
                if let miracolix_operator::catalog::Access::Service { part, ports } =
                    provider.access
                {
                    let target = p
                        .parts()
                        .iter()
                        .find(|x| x.name == part)
                        .unwrap_or_else(|| panic!("{c} calls {p}'s part {part}, which {p} lacks"));
                    for port in ports {
                        assert!(
                            target.ports.iter().any(|x| x.port == *port),
                            "{c} calls {part} on port {port}, which {part} does not serve"
                        );
                    }
                }
            }
        }
        for part in c.parts() {
            for (to, ports) in part.calls {
                let target = c
                    .parts()
                    .iter()
                    .find(|x| x.name == *to)
                    .unwrap_or_else(|| panic!("{} calls {to}, not a part of {c}", part.name));
                for port in *ports {
                    assert!(target.ports.iter().any(|x| x.port == *port), "{to}:{port}");
                }
            }
        }
    }
}

#[test]
fn every_component_has_a_minimal_site_that_builds() {
    for c in Component::all() {
        let yaml = miracolix_operator::catalog::minimal_components_yaml(c);
        let f = common::Fixture::spec_yaml(&yaml);
        let children = f.build();
        assert!(
            !common::of_component(&children, c).is_empty(),
            "{c}: nothing built from\n{yaml}"
        );
    }
}
