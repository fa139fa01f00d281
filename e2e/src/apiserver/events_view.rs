//! core/v1 Events and events.k8s.io/v1 Events are one stored object on kube-apiserver: both
//! groups' REST storage is the same etcd key, and each group converts the internal `core.Event`
//! to its own shape (kubernetes pkg/apis/events/v1/conversion.go). So an Event the operator
//! writes through `events.k8s.io` is what `kubectl describe` and `kubectl events` list under
//! `/api/v1/namespaces/N/events`, and the other way round.
//!
//! Here every write of one group's Event also writes its twin in the other group, converted,
//! with the same metadata (uid, resourceVersion, managedFields) and under the same
//! resourceVersion; deleting one deletes both. Watches on either group see the change once.

use serde_json::{Map, Value};

use super::store::ObjKey;

pub const CORE: &str = "";
pub const EVENTS: &str = "events.k8s.io";

/// Field renames between core/v1 (left) and events.k8s.io/v1 (right); fields of the same name
/// in both (`metadata`, `eventTime`, `series`, `reportingInstance`, `action`, `reason`,
/// `related`, `type`) are copied. From `Convert_v1_Event_To_core_Event` and back, with the JSON
/// names of the Go fields: core's `ReportingController` is `reportingComponent` in JSON.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

/// The other group's key and object for an Event key; `None` for anything else.
pub fn twin(key: &ObjKey, obj: &Value) -> Option<(ObjKey, Value)> {
    if key.plural != "events" {
        return None;
    }
    let (to_group, api_version) = match key.group.as_str() {
        CORE => (EVENTS, "events.k8s.io/v1"),
        EVENTS => (CORE, "v1"),
        _ => return None,
    };
    let twin_key = ObjKey {
        group: to_group.to_string(),
        ..key.clone()
    };
    Some((twin_key, convert(obj, to_group == EVENTS, api_version)))
}

/// The key of the other group's copy of an Event, for deletes.
pub fn twin_key(key: &ObjKey) -> Option<ObjKey> {
    twin(key, &Value::Null).map(|(k, _)| k)
}

fn convert(obj: &Value, to_events: bool, api_version: &str) -> Value {
    let Some(src) = obj.as_object() else {
        return Value::Null;
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.to_string()));
    out.insert("kind".into(), Value::String("Event".to_string()));
    for f in SHARED {
        if let Some(v) = src.get(*f) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    for (core, events) in RENAMES {
        let (from, to) = if to_events {
            (core, events)
        } else {
            (events, core)
        };
        // An empty string is the zero value Go's encoder writes for core's
        // `reportingComponent`; the events.k8s.io field is omitempty.
        if let Some(v) = src.get(*from).filter(|v| v.as_str() != Some("")) {
            out.insert((*to).to_string(), v.clone());
        }
    }
    // The object reference is a struct, never omitted by Go's encoder.
    let reference = if to_events {
        "regarding"
    } else {
        "involvedObject"
    };
    out.entry(reference)
        .or_insert_with(|| Value::Object(Map::new()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(group: &str) -> ObjKey {
        ObjKey {
            group: group.into(),
            plural: "events".into(),
            namespace: "ns".into(),
            name: "e".into(),
        }
    }

    #[test]
    fn an_events_k8s_io_event_reads_as_a_core_event() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns", "uid": "u"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Warning", "reason": "Stalled",
            "action": "Reconcile", "note": "why", "reportingController": "miracolix",
            "reportingInstance": "pod-1", "series": {"count": 3, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "regarding": {"kind": "DizSite", "name": "s", "namespace": "ns", "uid": "x"}});
        let (k, core) = twin(&key(EVENTS), &ev).expect("an event");
        assert_eq!(k, key(CORE));
        assert_eq!(
            core,
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns", "uid": "u"},
                "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Warning", "reason": "Stalled",
                "action": "Reconcile", "message": "why", "reportingComponent": "miracolix",
                "reportingInstance": "pod-1",
                "series": {"count": 3, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
                "involvedObject": {"kind": "DizSite", "name": "s", "namespace": "ns", "uid": "x"}})
        );
        // And back: the same object.
        let (_, back) = twin(&key(CORE), &core).expect("an event");
        assert_eq!(back, ev);
    }

    #[test]
    fn a_core_event_keeps_its_legacy_fields_under_their_deprecated_names() {
        let ev = json!({"metadata": {"name": "e"}, "message": "m", "count": 2,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:05Z",
            "source": {"component": "kubelet", "host": "n"}, "reportingComponent": ""});
        let (_, v) = twin(&key(CORE), &ev).expect("an event");
        assert_eq!(
            v,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                "note": "m", "deprecatedCount": 2,
                "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
                "deprecatedLastTimestamp": "2026-01-01T00:00:05Z",
                "deprecatedSource": {"component": "kubelet", "host": "n"}, "regarding": {}})
        );
    }

    #[test]
    fn only_events_have_twins() {
        let cm = ObjKey {
            plural: "configmaps".into(),
            ..key(CORE)
        };
        assert!(twin(&cm, &json!({})).is_none());
        let other = ObjKey {
            group: "example.org".into(),
            ..key(CORE)
        };
        assert!(twin_key(&other).is_none());
    }
}
