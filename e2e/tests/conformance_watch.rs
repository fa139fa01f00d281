//! Watches: replay from a resourceVersion, 410 on expired history, bookmarks, selectors,
//! and kube-runtime's watcher recovering from expiry and dropped connections.

mod common;

use std::time::Duration;

use common::{api_error, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use miracolix_e2e::{Config, TestApiServer, WorkloadTiming};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("cm")
}

fn server_with(history: usize, bookmarks: Duration) -> (TestApiServer, kube::Client) {
    let s = TestApiServer::with_config(Config {
        workload_timing: WorkloadTiming::Immediate,
        history_limit: history,
        bookmark_interval: bookmarks,
        ..Config::default()
    });
    let c = s.client();
    (s, c)
}

#[tokio::test]
async fn watch_replays_changes_after_the_given_resource_version() {
    let (_s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    api.delete("a", &Default::default()).await.expect("delete");
    let rv = a.metadata.resource_version.expect("rv");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match within("replayed event", stream.try_next())
            .await
            .expect("ok")
            .expect("event")
        {
            WatchEvent::Added(c) => {
                seen.push(format!("ADDED {}", c.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(c) => {
                seen.push(format!("DELETED {}", c.metadata.name.unwrap_or_default()))
            }
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(seen, ["ADDED b", "DELETED a"]);
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410() {
    let (s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    s.expire_watches();
    let rv = a.metadata.resource_version.expect("rv");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    match within("error event", stream.try_next())
        .await
        .expect("ok")
        .expect("event")
    {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    let err = api_error(
        api.list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .expect_err("410"),
    );
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn bounded_history_expires_old_versions() {
    let (_s, client) = server_with(3, Duration::from_secs(60));
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    for n in ["b", "c", "d", "e"] {
        api.create(&PostParams::default(), &cm(n, json!({})))
            .await
            .expect("create");
    }
    let mut stream = api
        .watch(
            &WatchParams::default(),
            &a.metadata.resource_version.expect("rv"),
        )
        .await
        .expect("watch")
        .boxed();
    match within("error event", stream.try_next())
        .await
        .expect("ok")
        .expect("event")
    {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_are_sent_when_allowed() {
    let (_s, client) = server_with(100, Duration::from_millis(50));
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("rv");
    let mut stream = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            },
            &rv,
        )
        .await
        .expect("watch")
        .boxed();
    match within("bookmark", stream.try_next())
        .await
        .expect("ok")
        .expect("event")
    {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_timeout_ends_the_stream() {
    let (_s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watch")
        .boxed();
    let end = within("stream end after timeoutSeconds", stream.try_next())
        .await
        .expect("ok");
    assert!(end.is_none());
}

#[tokio::test]
async fn selector_watch_sees_objects_leave_and_enter() {
    let (_s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let a = api
        .create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .expect("a");
    let rv = a.metadata.resource_version.expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().labels("app=x"), &rv)
        .await
        .expect("watch")
        .boxed();
    let p = json!({"metadata": {"labels": {"app": "y"}}});
    api.patch("a", &Default::default(), &kube::api::Patch::Merge(&p))
        .await
        .expect("relabel");
    match within("leave", stream.try_next())
        .await
        .expect("ok")
        .expect("event")
    {
        WatchEvent::Deleted(_) => {}
        other => panic!("an object leaving the selector is DELETED for the watch, got {other:?}"),
    }
    let p = json!({"metadata": {"labels": {"app": "x"}}});
    api.patch("a", &Default::default(), &kube::api::Patch::Merge(&p))
        .await
        .expect("relabel back");
    match within("enter", stream.try_next())
        .await
        .expect("ok")
        .expect("event")
    {
        WatchEvent::Added(_) => {}
        other => panic!("an object entering the selector is ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn send_initial_events_ends_with_the_marked_bookmark() {
    let (_s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .applied_objects()
        .boxed();
    let first = within("streaming list", stream.try_next())
        .await
        .expect("ok")
        .expect("object");
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
}

/// Drives a kube-runtime watcher in a task, so the test can act while it is watching.
fn spawn_watcher(
    api: Api<ConfigMap>,
) -> tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<ConfigMap>, watcher::Error>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    rx
}

async fn wait_for_watch(s: &TestApiServer) {
    within("the watcher to open its watch", async {
        while s.watch_count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// kube-runtime's watcher relists after a 410 and keeps delivering changes.
#[tokio::test]
async fn runtime_watcher_recovers_from_forced_expiry() {
    let (s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    let mut events = spawn_watcher(api.clone());
    loop {
        if let Ok(watcher::Event::InitDone) = within("initial list", events.recv())
            .await
            .expect("stream open")
        {
            break;
        }
    }
    wait_for_watch(&s).await;
    s.expire_watches();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    // The watch ends with 410, surfaced as an error; the watcher relists and reports b.
    let (mut saw_410, mut relisted, mut saw_b) = (false, false, false);
    while !(saw_410 && relisted && saw_b) {
        match within("relist after 410", events.recv())
            .await
            .expect("stream open")
        {
            Err(watcher::Error::WatchError(e)) if e.code == 410 => saw_410 = true,
            Err(other) => panic!("unexpected watcher error {other:?}"),
            Ok(watcher::Event::Init) => relisted = true,
            Ok(watcher::Event::InitApply(c) | watcher::Event::Apply(c))
                if c.metadata.name.as_deref() == Some("b") =>
            {
                saw_b = true
            }
            Ok(_) => {}
        }
    }
    // And it keeps watching afterwards.
    wait_for_watch(&s).await;
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .expect("c");
    loop {
        if let Ok(watcher::Event::Apply(c)) = within("live event after recovery", events.recv())
            .await
            .expect("stream open")
            && c.metadata.name.as_deref() == Some("c")
        {
            break;
        }
    }
}

/// A dropped connection is resumed from the last resourceVersion without a relist.
#[tokio::test]
async fn runtime_watcher_resumes_after_dropped_watch() {
    let (s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut events = spawn_watcher(api.clone());
    loop {
        if let Ok(watcher::Event::InitDone) = within("initial list", events.recv())
            .await
            .expect("stream open")
        {
            break;
        }
    }
    wait_for_watch(&s).await;
    s.drop_watches();
    api.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .expect("create");
    loop {
        match within("event after reconnect", events.recv())
            .await
            .expect("stream open")
        {
            Ok(watcher::Event::Apply(c)) if c.metadata.name.as_deref() == Some("late") => break,
            Ok(watcher::Event::Init) => panic!("a dropped watch must resume, not relist"),
            _ => {}
        }
    }
    let watches = s
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch")
        .count();
    assert!(
        watches >= 2,
        "the watcher reconnected ({watches} watch requests)"
    );
}

/// Metadata-only requests (`as=PartialObjectMetadata[List]`): what kube's `*_metadata`
/// calls and kube-runtime's `metadata_watcher` send.
#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let (s, client) = common::server();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut data = cm("a", json!({"app": "x"}));
    data.data = Some([("secret".to_string(), "payload".to_string())].into());
    api.create(&PostParams::default(), &data)
        .await
        .expect("create");

    let meta = api.get_metadata("a").await.expect("get_metadata");
    let types = meta.types.as_ref().expect("type meta");
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    assert_eq!(meta.metadata.labels.as_ref().expect("labels")["app"], "x");

    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list_metadata");
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);

    // The raw answers carry no data: only metadata crosses the wire.
    let raw = |accept: &'static str, path: &str| {
        http::Request::get(path.to_string())
            .header("Accept", accept)
            .body(Vec::new())
            .expect("request")
    };
    let body: serde_json::Value = client
        .request(raw(
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "/api/v1/namespaces/default/configmaps/a",
        ))
        .await
        .expect("raw get");
    assert!(body.get("data").is_none(), "{body}");
    let body: serde_json::Value = client
        .request(raw(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            "/api/v1/namespaces/default/configmaps",
        ))
        .await
        .expect("raw list");
    assert_eq!(body["items"][0]["kind"], "PartialObjectMetadata");
    assert!(body["items"][0].get("data").is_none(), "{body}");

    let rv = s.resource_version().to_string();
    let mut events = api
        .watch_metadata(&WatchParams::default(), &rv)
        .await
        .expect("watch_metadata")
        .boxed();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("create b");
    match within("metadata watch event", events.try_next())
        .await
        .expect("watch ok")
        .expect("event")
    {
        WatchEvent::Added(o) => {
            assert_eq!(o.metadata.name.as_deref(), Some("b"));
            assert_eq!(
                o.types.map(|t| t.kind).as_deref(),
                Some("PartialObjectMetadata")
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // kube-runtime's watcher on `Api<PartialObjectMeta<_>>` (what `metadata_watcher` became)
    // lists and watches the same way.
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(client.clone());
    let mut stream = watcher(meta_api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut names = Vec::new();
    while names.len() < 2 {
        let o = within("metadata_watcher objects", stream.try_next())
            .await
            .expect("watcher ok")
            .expect("object");
        names.push(o.metadata.name.unwrap_or_default());
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);
}
