//! Watch streams: newline-delimited `{"type","object"}` events from a resourceVersion,
//! replayed from the bounded history, with bookmarks and timeouts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use http_body_util::StreamBody;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::resources::ResourceInfo;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{EventType, Store, StoredEvent, WatchMsg, Watcher};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub struct WatchRequest {
    pub res: ResourceInfo,
    pub namespace: Option<String>,
    pub resource_version: String,
    pub selectors: Selectors,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    pub bookmark_interval: Duration,
    /// `as=PartialObjectMetadata`: events carry only the objects' metadata.
    pub metadata_only: bool,
    /// `as=Table` (`kubectl get -w`): each event carries a one-row Table; `Some(true)` with
    /// `includeObject=Object`.
    pub table: Option<bool>,
}

struct State {
    queue: VecDeque<Value>,
    rx: Option<UnboundedReceiver<WatchMsg>>,
    req: WatchRequest,
    deadline: Option<Instant>,
    next_bookmark: Instant,
    last_rv: u64,
}

fn with_version(obj: &Value, req: &WatchRequest) -> Value {
    if req.metadata_only {
        return json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))});
    }
    let mut o = obj.clone();
    o["apiVersion"] = Value::String(req.res.api_version());
    o["kind"] = Value::String(req.res.kind.clone());
    if let Some(include_object) = req.table {
        let rv = o
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // Column definitions in every event: kubectl prints headers only when they change.
        return super::table::table(&req.res, &[o], &rv, include_object);
    }
    o
}

fn event(type_: &str, obj: Value) -> Value {
    json!({"type": type_, "object": obj})
}

fn expired_event(message: &str) -> Value {
    event("ERROR", ApiError::expired(message).body)
}

/// Translates a stored change into what this watch sees, honouring its selectors.
fn translate(ev: &StoredEvent, req: &WatchRequest) -> Option<Value> {
    let type_ = event_type(ev, req)?;
    Some(event(type_, with_version(&ev.object, req)))
}

/// The line a live watch sends for a stored change. A whole object that already carries the
/// watched apiVersion and kind (nearly every one) is written straight from the store, without
/// the copy `with_version` makes: one copy per event and watch was a visible share of the
/// test API server's CPU (`perf`).
fn translate_line(ev: &StoredEvent, req: &WatchRequest) -> Option<Bytes> {
    let type_ = event_type(ev, req)?;
    let obj = &ev.object;
    let as_stored = !req.metadata_only
        && req.table.is_none()
        && obj.get("apiVersion").and_then(Value::as_str) == Some(&req.res.api_version())
        && obj.get("kind").and_then(Value::as_str) == Some(&req.res.kind);
    if !as_stored {
        return Some(line(&event(type_, with_version(obj, req))));
    }
    let mut s = super::wire::watch_event_to_json(type_, obj);
    s.push('\n');
    Some(Bytes::from(s))
}

/// The event type this watch sees for a stored change (`None`: it sees nothing).
fn event_type(ev: &StoredEvent, req: &WatchRequest) -> Option<&'static str> {
    let now = req.selectors.matches(&ev.object);
    let before = ev.old.as_ref().is_some_and(|o| req.selectors.matches(o));
    let type_ = match ev.type_ {
        EventType::Added if now => "ADDED",
        EventType::Deleted if now => "DELETED",
        EventType::Modified => match (before, now) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
        _ => return None,
    };
    Some(type_)
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event(
        "BOOKMARK",
        json!({"kind": req.res.kind, "apiVersion": req.res.api_version(), "metadata": meta}),
    )
}

/// Starts a watch. Registration and the snapshot of history happen under the same lock, so
/// no event falls between replay and live delivery.
pub fn start(store: &mut Store, req: WatchRequest) -> Body {
    let mut queue = VecDeque::new();
    let rv_param = req.resource_version.as_str();
    let from: u64 = if rv_param.is_empty() || rv_param == "0" {
        0
    } else {
        match rv_param.parse() {
            Ok(n) => n,
            Err(_) => {
                queue.push_back(event(
                    "ERROR",
                    ApiError::bad_request(format!("invalid resource version: {rv_param}")).body,
                ));
                return body(State::closed(queue, req));
            }
        }
    };
    let ns = req.namespace.clone();
    let objects_now = |store: &Store, req: &WatchRequest| -> Vec<Value> {
        store
            .list(&req.res.group, &req.res.plural, ns.as_deref())
            .into_iter()
            .filter(|o| req.selectors.matches(o))
            .map(|o| event("ADDED", with_version(o, req)))
            .collect()
    };
    if from == 0 || req.send_initial_events {
        queue.extend(objects_now(store, &req));
        if req.send_initial_events {
            queue.push_back(bookmark(&req, store.rv, true));
        }
    } else if from < store.compacted {
        queue.push_back(expired_event(&format!(
            "too old resource version: {from} ({})",
            store.compacted
        )));
        return body(State::closed(queue, req));
    } else {
        for ev in store.history.iter().filter(|e| e.rv > from) {
            if ev.key.group == req.res.group
                && ev.key.plural == req.res.plural
                && ns.as_deref().is_none_or(|n| n == ev.key.namespace)
                && let Some(v) = translate(ev, &req)
            {
                queue.push_back(v);
            }
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    store.watchers.push(Watcher {
        group: req.res.group.clone(),
        plural: req.res.plural.clone(),
        namespace: ns,
        tx,
    });
    let now = Instant::now();
    let state = State {
        queue,
        rx: Some(rx),
        deadline: req.timeout.map(|t| now + t),
        next_bookmark: now + req.bookmark_interval,
        last_rv: store.rv,
        req,
    };
    body(state)
}

impl State {
    fn closed(queue: VecDeque<Value>, req: WatchRequest) -> Self {
        let now = Instant::now();
        Self {
            queue,
            rx: None,
            deadline: None,
            next_bookmark: now + req.bookmark_interval,
            last_rv: 0,
            req,
        }
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = super::wire::to_json(v);
    s.push('\n');
    Bytes::from(s)
}

async fn next(mut st: State) -> Option<(Bytes, State)> {
    loop {
        if let Some(v) = st.queue.pop_front() {
            return Some((line(&v), st));
        }
        let rx = st.rx.as_mut()?;
        let deadline = st.deadline;
        let bookmarks = st.req.bookmarks;
        let next_bookmark = st.next_bookmark;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(WatchMsg::Event(ev)) => {
                    st.last_rv = ev.rv;
                    if let Some(l) = translate_line(&ev, &st.req) {
                        return Some((l, st));
                    }
                }
                Some(WatchMsg::Expired) => {
                    st.rx = None;
                    st.queue.push_back(expired_event("the watch history was compacted"));
                }
                None => return None,
            },
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                return None;
            }
            _ = async { if bookmarks { tokio::time::sleep_until(next_bookmark).await } else { std::future::pending().await } } => {
                st.next_bookmark = Instant::now() + st.req.bookmark_interval;
                let b = bookmark(&st.req, st.last_rv, false);
                return Some((line(&b), st));
            }
        }
    }
}

fn body(state: State) -> Body {
    let stream = futures::stream::unfold(state, next).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    StreamBody::new(stream).boxed_unsync()
}
