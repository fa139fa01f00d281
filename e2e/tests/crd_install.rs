//! `run --manage-crds`: the operator applies its CRDs on an empty API server, waits until they
//! are Established, and a second start leaves the schema as it is.

use std::time::Duration;

use miracolix_e2e::TestApiServer;
use miracolix_operator::crd_install::{CrdOutcome, FIELD_MANAGER, ensure_crds};

#[tokio::test]
async fn crds_are_applied_established_and_reapplied_without_change() {
    let server = TestApiServer::new();
    let client = server.client_as("miracolix-operator/crds");
    let first = tokio::time::timeout(
        Duration::from_secs(20),
        ensure_crds(&client, Duration::from_secs(10)),
    )
    .await
    .expect("bounded")
    .expect("applied");
    let CrdOutcome::Applied(mut names) = first else {
        panic!("unexpected outcome {first:?}")
    };
    names.sort();
    assert_eq!(
        names,
        [
            "componentreleases.diz.miracum.org",
            "dizsites.diz.miracum.org",
            "feasibilityendpoints.diz.miracum.org",
            "proposalinboxes.diz.miracum.org",
            "releaserevocations.diz.miracum.org",
        ]
    );
    let applies: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "customresourcedefinitions" && r.verb == "patch")
        .collect();
    assert_eq!(applies.len(), 5);
    assert!(applies.iter().all(|r| r.field_manager == FIELD_MANAGER
        && r.patch_type.contains("apply")
        && r.path.contains("force=true")));

    let again = ensure_crds(&client, Duration::from_secs(10))
        .await
        .expect("applied again");
    assert!(matches!(again, CrdOutcome::Applied(_)));
    // The same schema again is no spec change. (The resourceVersion is no measure here: the test
    // API server restamps the CRD conditions' lastTransitionTime on every write.)
    for name in names {
        let crd = server
            .object(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "",
                &name,
            )
            .expect("crd");
        assert_eq!(crd["metadata"]["generation"], 1, "{name} spec changed");
    }
}
