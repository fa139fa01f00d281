//! Protobuf request bodies of the review APIs and TokenRequest, read into the JSON shape of
//! their objects. kubectl sends these in protobuf (`auth can-i`, `auth whoami`,
//! `create token`), and client-go does not fall back to JSON for them. Only the request
//! fields the server reads are decoded; field numbers are those of
//! `k8s.io/api/{authorization,authentication}/v1/generated.proto` (1.33).
//!
//! The body is kube-apiserver's protobuf envelope: the magic `k8s\0`, then a
//! `runtime.Unknown` whose field 2 (`raw`) holds the object.

use serde_json::{Map, Value, json};

use super::status::ApiError;

const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Strs,
    Int,
    Msg(&'static [F]),
    /// `map<string, ExtraValue>` (entries: 1 key, 2 value with `repeated string items = 1`).
    Extra,
}

/// A field: number, JSON name, type.
struct F(u32, &'static str, Ty);

const META: &[F] = &[F(1, "name", Ty::Str), F(3, "namespace", Ty::Str)];
const RESOURCE_ATTRIBUTES: &[F] = &[
    F(1, "namespace", Ty::Str),
    F(2, "verb", Ty::Str),
    F(3, "group", Ty::Str),
    F(4, "version", Ty::Str),
    F(5, "resource", Ty::Str),
    F(6, "subresource", Ty::Str),
    F(7, "name", Ty::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[F] = &[F(1, "path", Ty::Str), F(2, "verb", Ty::Str)];
const SELF_ACCESS_SPEC: &[F] = &[
    F(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    F(2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const ACCESS_SPEC: &[F] = &[
    F(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    F(2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
    F(3, "user", Ty::Str),
    F(4, "groups", Ty::Strs),
    F(5, "extra", Ty::Extra),
    F(6, "uid", Ty::Str),
];
const RULES_SPEC: &[F] = &[F(1, "namespace", Ty::Str)];
const BOUND_OBJECT: &[F] = &[
    F(1, "kind", Ty::Str),
    F(2, "apiVersion", Ty::Str),
    F(3, "name", Ty::Str),
    F(4, "uid", Ty::Str),
];
const TOKEN_REQUEST_SPEC: &[F] = &[
    F(1, "audiences", Ty::Strs),
    F(3, "boundObjectRef", Ty::Msg(BOUND_OBJECT)),
    F(4, "expirationSeconds", Ty::Int),
];
const TOKEN_REVIEW_SPEC: &[F] = &[F(1, "token", Ty::Str), F(2, "audiences", Ty::Strs)];
const NO_SPEC: &[F] = &[];

/// The spec's fields of the object a request to `plural` (or `token`) sends.
fn spec_of(plural: &str) -> &'static [F] {
    match plural {
        "selfsubjectaccessreviews" => SELF_ACCESS_SPEC,
        "subjectaccessreviews" | "localsubjectaccessreviews" => ACCESS_SPEC,
        "selfsubjectrulesreviews" => RULES_SPEC,
        "tokenreviews" => TOKEN_REVIEW_SPEC,
        "token" => TOKEN_REQUEST_SPEC,
        _ => NO_SPEC,
    }
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf body: {what}"))
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &mut &[u8]) -> Result<u64, ApiError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or_else(|| bad("truncated varint"))?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("varint too long"))
}

/// The fields of one message, in order.
fn fields(mut b: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, ApiError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let number = u32::try_from(key >> 3).map_err(|_| bad("field number"))?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(&mut b)?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or_else(|| bad("truncated fixed field"))?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut b)?).map_err(|_| bad("length"))?;
                let (data, rest) = (
                    b.get(..len).ok_or_else(|| bad("truncated field"))?,
                    b.get(len..).unwrap_or_default(),
                );
                b = rest;
                Wire::Bytes(data)
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((number, wire));
    }
    Ok(out)
}

fn text(data: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(data.to_vec()).map_err(|_| bad("invalid UTF-8"))
}

fn message(data: &[u8], schema: &[F]) -> Result<Value, ApiError> {
    let mut obj = Map::new();
    for (number, wire) in fields(data)? {
        let Some(F(_, name, ty)) = schema.iter().find(|f| f.0 == number) else {
            continue;
        };
        match (ty, wire) {
            (Ty::Str, Wire::Bytes(d)) => {
                obj.insert((*name).to_string(), json!(text(d)?));
            }
            (Ty::Strs, Wire::Bytes(d)) => {
                let list = obj.entry(*name).or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(text(d)?));
                }
            }
            (Ty::Int, Wire::Varint(v)) => {
                // int64 is two's complement in a varint.
                obj.insert((*name).to_string(), json!(v as i64));
            }
            (Ty::Msg(inner), Wire::Bytes(d)) => {
                obj.insert((*name).to_string(), message(d, inner)?);
            }
            (Ty::Extra, Wire::Bytes(d)) => {
                let (mut key, mut items) = (String::new(), Vec::new());
                for (n, w) in fields(d)? {
                    match (n, w) {
                        (1, Wire::Bytes(k)) => key = text(k)?,
                        (2, Wire::Bytes(v)) => {
                            for (m, item) in fields(v)? {
                                if let (1, Wire::Bytes(s)) = (m, item) {
                                    items.push(json!(text(s)?));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                let extra = obj.entry(*name).or_insert_with(|| json!({}));
                extra[key] = Value::Array(items);
            }
            _ => return Err(bad(&format!("field {name} has the wrong wire type"))),
        }
    }
    Ok(Value::Object(obj))
}

/// The object in a protobuf request body to `plural` (`token` for TokenRequest): its
/// metadata and spec.
pub fn decode(body: &[u8], plural: &str) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let raw = fields(envelope)?
        .into_iter()
        .find_map(|(n, w)| match (n, w) {
            (2, Wire::Bytes(raw)) => Some(raw),
            _ => None,
        })
        .unwrap_or_default();
    let top = [
        F(1, "metadata", Ty::Msg(META)),
        F(2, "spec", Ty::Msg(spec_of(plural))),
    ];
    let mut obj = message(raw, &top)?;
    if plural == "selfsubjectreviews" {
        // Field 2 of a SelfSubjectReview is its status, which the client does not set.
        if let Some(o) = obj.as_object_mut() {
            o.remove("spec");
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u32, data: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(number << 3 | 2).expect("small"),
            u8::try_from(data.len()).expect("short"),
        ];
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_a_self_subject_access_review() {
        let attrs = [
            field(1, b"ns"),
            field(2, b"patch"),
            field(3, b"apps"),
            field(5, b"deployments"),
        ]
        .concat();
        let spec = field(1, &attrs);
        let raw = field(2, &spec);
        let body = [MAGIC, &field(2, &raw)[..]].concat();
        let obj = decode(&body, "selfsubjectaccessreviews").expect("decoded");
        assert_eq!(
            obj,
            json!({"spec": {"resourceAttributes": {"namespace": "ns", "verb": "patch",
                "group": "apps", "resource": "deployments"}}})
        );
    }

    #[test]
    fn reads_a_token_request() {
        let spec = [field(1, b"api"), vec![4 << 3, 0x90, 0x1c]].concat();
        let body = [MAGIC, &field(2, &field(2, &spec))[..]].concat();
        let obj = decode(&body, "token").expect("decoded");
        assert_eq!(
            obj,
            json!({"spec": {"audiences": ["api"], "expirationSeconds": 3600}})
        );
    }
}
