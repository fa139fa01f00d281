//! The example sites build, deterministically, without duplicates, and match the snapshot.

mod common;

use common::{EXAMPLE_SITES, Fixture, repo_root, to_yaml};
use miracolix_operator::catalog::{self, duplicate_keys};

#[test]
fn every_example_site_builds() {
    for file in EXAMPLE_SITES {
        let f = Fixture::example(file);
        let children = f.build();
        assert!(!children.is_empty(), "{file} builds children");
        assert!(catalog::validate(&f.input()).is_ok());
    }
}

#[test]
fn building_twice_gives_identical_output() {
    for file in EXAMPLE_SITES {
        let f = Fixture::example(file);
        assert_eq!(f.build(), f.build(), "{file}");
        assert_eq!(to_yaml(&f.build()), to_yaml(&f.build()), "{file}");
    }
}

#[test]
fn no_two_children_share_api_version_kind_and_name() {
    for file in EXAMPLE_SITES {
        let children = Fixture::example(file).build();
        assert_eq!(duplicate_keys(&children), Vec::new(), "{file}");
    }
}

#[test]
fn every_child_is_namespaced_in_the_site_namespace() {
    for file in EXAMPLE_SITES {
        let f = Fixture::example(file);
        for c in f.build() {
            assert_eq!(
                c.object.metadata.namespace.as_deref(),
                Some(f.namespace.as_str()),
                "{file}: {:?}",
                c.key()
            );
        }
    }
}

/// `UPDATE_SNAPSHOTS=1 cargo test -p miracolix-operator --test catalog_examples` rewrites them.
#[test]
fn example_sites_match_their_snapshots() {
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for file in EXAMPLE_SITES {
        let f = Fixture::example(file);
        let rendered = to_yaml(&f.build());
        let path = repo_root().join("operator/tests/snapshots").join(format!(
            "catalog-{}",
            file.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
        ));
        if update {
            std::fs::write(&path, &rendered).expect("writes snapshot");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == rendered => {}
            Ok(on_disk) => {
                let first = on_disk
                    .lines()
                    .zip(rendered.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(on_disk.lines().count().min(rendered.lines().count()));
                stale.push(format!(
                    "{path:?} differs from line {}:\n  snapshot: {:?}\n  now:      {:?}",
                    first + 1,
                    on_disk.lines().nth(first),
                    rendered.lines().nth(first)
                ));
            }
            Err(e) => stale.push(format!("{path:?} missing ({e})")),
        }
    }
    assert!(
        stale.is_empty(),
        "catalogue snapshots are stale; review the change and run \
         `UPDATE_SNAPSHOTS=1 cargo test -p miracolix-operator --test catalog_examples`:\n{}",
        stale.join("\n")
    );
}
