//! Deciding whether a child needs a write.
//!
//! A no-op reconcile must not write at all: every write wakes watchers (ours included) and, on a
//! hospital cluster with ten components per site, needless writes add up. A child is left alone
//! when (a) the live object carries the hash of exactly the desired object we would apply, so no
//! field was added to or removed from what we manage, and (b) every desired field still has the
//! desired value in the live object, so nobody edited it (drift). Comparing a subset rather than
//! equality tolerates what the API server adds (defaults, status, managedFields).

use serde_json::Value;

/// Annotation holding the hash of the last applied desired object.
pub const DESIRED_HASH_ANNOTATION: &str = "diz.miracum.org/desired-hash";

/// FNV-1a over the canonical JSON encoding (serde_json sorts object keys). Stable across runs and
/// builds, unlike `std`'s `DefaultHasher`, so an operator restart does not rewrite every child.
pub fn desired_hash(desired: &Value) -> String {
    fnv_hex(desired)
}

/// FNV-1a of a value's JSON encoding, as 16 hex digits. The encoding is hashed as it is written,
/// never held: children and watch events are hashed thousands of times while sites converge.
pub fn fnv_hex(value: &impl serde::Serialize) -> String {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    // Writing to `Fnv` cannot fail; a value that cannot be encoded hashes what was written.
    let _ = serde_json::to_writer(&mut h, value);
    format!("{:016x}", h.0)
}

struct Fnv(u64);

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for b in buf {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether every field in `desired` has the same value in `live`. Arrays are compared element by
/// element in order (the API server never reorders lists); objects may carry extra keys in `live`.
/// Values the server rewrites into a canonical form compare by meaning: numbers by value, and
/// resource quantities by amount (`0.5` is stored as `500m`, `1.5Gi` as `1536Mi`).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    subset(desired, live, Place::default())
}

/// Where a value sits: its own key and the key of the object holding it.
#[derive(Clone, Copy, Default)]
struct Place<'a> {
    key: Option<&'a str>,
    holder: Option<&'a str>,
}

impl Place<'_> {
    /// Resource lists (`resources.requests/limits`, a claim's `resources.requests`) and
    /// `emptyDir.sizeLimit` hold `resource.Quantity` values.
    fn is_quantity(&self) -> bool {
        matches!(self.holder, Some("requests" | "limits")) || self.key == Some("sizeLimit")
    }

    /// kube-apiserver also rounds resource lists up to milli units (`SetDefaults_ResourceList`).
    fn rounds_to_milli(&self) -> bool {
        matches!(self.holder, Some("requests" | "limits"))
    }
}

fn subset(desired: &Value, live: &Value, at: Place<'_>) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| {
            let child = Place {
                key: Some(k),
                holder: at.key,
            };
            l.get(k).is_some_and(|lv| subset(dv, lv, child)) || (dv.is_null() && !l.contains_key(k))
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len()
                && d.iter()
                    .zip(l)
                    .all(|(dv, lv)| subset(dv, lv, Place::default()))
        }
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        _ if at.is_quantity() => same_quantity(desired, live, at.rounds_to_milli()),
        _ => desired == live,
    }
}

/// Two quantities (strings or numbers) with the same amount; what does not parse compares
/// textually.
fn same_quantity(desired: &Value, live: &Value, milli: bool) -> bool {
    let amount = |v: &Value| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let nanos = crate::catalog::quantity_nanos(&text)?;
        Some(if milli {
            // Up, away from zero, to whole millis.
            let m = 1_000_000;
            let r = nanos % m;
            if r == 0 {
                nanos
            } else {
                nanos - r + m * r.signum()
            }
        } else {
            nanos
        })
    };
    match (amount(desired), amount(live)) {
        (Some(d), Some(l)) => d == l,
        _ => desired == live,
    }
}

/// Whether `live` already matches `desired` (whose annotations include the desired hash).
pub fn unchanged(desired: &Value, live: &Value) -> bool {
    let want = desired
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DESIRED_HASH_ANNOTATION));
    let have = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DESIRED_HASH_ANNOTATION));
    want.is_some() && want == have && is_subset(&strip_volatile(desired), live)
}

/// Fields of the desired object that the server owns or rewrites.
fn strip_volatile(desired: &Value) -> Value {
    let mut d = desired.clone();
    if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    if let Some(obj) = d.as_object_mut() {
        obj.remove("status");
    }
    d
}

/// Adds the hash annotation to a desired object (hash computed without the annotation itself).
pub fn with_hash(mut desired: Value) -> Value {
    let hash = desired_hash(&desired);
    if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(DESIRED_HASH_ANNOTATION.to_string(), Value::String(hash));
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_desired_hash_is_fnv1a_of_the_canonical_json() {
        // Written on every child (DESIRED_HASH_ANNOTATION): it must not change between
        // releases of the operator, or an upgrade of the operator rewrites every child.
        // Expected value computed independently (Python) from the bytes `{"a":[1,"x"]}`.
        assert_eq!(desired_hash(&json!({"a": [1, "x"]})), "3651d3dd8fef00f1");
    }

    fn desired() -> Value {
        with_hash(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "erlangen-flare", "labels": {"a": "b"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "flare", "image": "x@sha256:1", "ports": [{"containerPort": 8080}]}
            ]}}}
        }))
    }

    fn live_from(d: &Value) -> Value {
        let mut l = d.clone();
        l["metadata"]["resourceVersion"] = json!("42");
        l["metadata"]["uid"] = json!("u");
        l["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        l["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        l["status"] = json!({"readyReplicas": 1});
        l
    }

    #[test]
    fn server_defaults_do_not_count_as_change() {
        let d = desired();
        assert!(unchanged(&d, &live_from(&d)));
    }

    #[test]
    fn drift_in_a_managed_field_is_a_change() {
        let d = desired();
        let mut l = live_from(&d);
        l["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:latest");
        assert!(!unchanged(&d, &l));
    }

    #[test]
    fn a_field_we_stopped_setting_is_a_change_through_the_hash() {
        let d = desired();
        let live = live_from(&d);
        let mut smaller = d.clone();
        smaller["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations")
            .clear();
        smaller["metadata"]["labels"] = json!({});
        let smaller = with_hash(smaller);
        assert!(!unchanged(&smaller, &live));
    }

    #[test]
    fn missing_live_hash_is_a_change() {
        let d = desired();
        let mut l = live_from(&d);
        l["metadata"]["annotations"] = json!({});
        assert!(!unchanged(&d, &l));
    }

    #[test]
    fn quantities_compare_by_amount_where_the_server_canonicalises_them() {
        let pod = |requests: Value, limits: Value, size: Value| {
            json!({"spec": {"containers": [{"name": "c", "resources": {
                "requests": requests, "limits": limits}}],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": size}}]}})
        };
        // (what the operator wrote, what the server stores, same?)
        let cases = [
            (json!("0.5"), json!("500m"), true),
            (json!("1.5Gi"), json!("1536Mi"), true),
            (json!("1000m"), json!("1"), true),
            (json!("2048Mi"), json!("2Gi"), true),
            (json!("1e3"), json!("1k"), true),
            (json!(0.5), json!("500m"), true),
            (json!("0.0001"), json!("1m"), true),
            (json!("0.5"), json!("501m"), false),
            (json!("1Gi"), json!("1G"), false),
            (json!("garbage"), json!("garbage"), true),
            (json!("garbage"), json!("other"), false),
        ];
        for (written, stored, same) in cases {
            for (d, l) in [
                (
                    pod(json!({"cpu": written}), json!({}), json!("1Gi")),
                    pod(json!({"cpu": stored}), json!({}), json!("1Gi")),
                ),
                (
                    pod(json!({}), json!({"memory": written}), json!("1Gi")),
                    pod(json!({}), json!({"memory": stored}), json!("1Gi")),
                ),
            ] {
                assert_eq!(is_subset(&d, &l), same, "{written} vs {stored}");
            }
        }
        // sizeLimit is a quantity but not rounded to milli units.
        assert!(is_subset(
            &pod(json!({}), json!({}), json!("0.5Gi")),
            &pod(json!({}), json!({}), json!("512Mi"))
        ));
        assert!(!is_subset(
            &pod(json!({}), json!({}), json!("0.0001")),
            &pod(json!({}), json!({}), json!("1m"))
        ));
        // Elsewhere, strings stay strings: an env value "0.5" is not "500m".
        assert!(!is_subset(
            &json!({"env": [{"name": "X", "value": "0.5"}]}),
            &json!({"env": [{"name": "X", "value": "500m"}]})
        ));
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = json!({"b": 1, "a": [1, 2]});
        assert_eq!(desired_hash(&a), desired_hash(&a.clone()));
        assert_ne!(
            desired_hash(&a),
            desired_hash(&json!({"b": 1, "a": [2, 1]}))
        );
    }
}
