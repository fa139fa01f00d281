//! The structured query (CCDL / "SQ" JSON) as the gate sees it: checked enough to refuse garbage
//! with a reason, and fingerprinted so that the same query in another key order or spacing is
//! recognised as the same query (otherwise reformatting would buy a fresh noise draw).
//!
//! The gate does not interpret criteria: FLARE does (and answers 400 for unknown terms). What the
//! gate checks is what FLARE v2.8.0 requires before it translates anything
//! (`model/sq/StructuredQuery.java`, `fromJson`): a JSON object whose `inclusionCriteria` is a
//! non-empty list of non-empty lists; `exclusionCriteria`, when present, a list of lists.

use serde_json::Value;

/// Largest query body accepted. Real queries are a few KiB; the bound keeps a caller from making
/// the gate buffer arbitrary data.
pub const MAX_QUERY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("the structured query is not valid JSON: {0}")]
    NotJson(String),
    #[error("the structured query must be a JSON object")]
    NotObject,
    #[error("inclusionCriteria is missing or empty")]
    NoInclusion,
    #[error("{0} must be a list of lists of criteria")]
    NotListOfLists(&'static str),
}

/// A checked query: the bytes to forward and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub body: bytes::Bytes,
    /// Hex SHA-256 of the canonical JSON (keys sorted, no insignificant whitespace).
    pub fingerprint: String,
}

pub fn parse(body: bytes::Bytes) -> Result<Query, QueryError> {
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| QueryError::NotJson(e.to_string()))?;
    let object = value.as_object().ok_or(QueryError::NotObject)?;
    match object.get("inclusionCriteria") {
        Some(Value::Array(groups)) if !groups.is_empty() => {
            list_of_lists(groups, "inclusionCriteria")?;
            if groups
                .iter()
                .all(|g| g.as_array().is_some_and(Vec::is_empty))
            {
                return Err(QueryError::NoInclusion);
            }
        }
        None | Some(Value::Null) => return Err(QueryError::NoInclusion),
        Some(Value::Array(_)) => return Err(QueryError::NoInclusion),
        Some(_) => return Err(QueryError::NotListOfLists("inclusionCriteria")),
    }
    match object.get("exclusionCriteria") {
        None | Some(Value::Null) => {}
        Some(Value::Array(groups)) => list_of_lists(groups, "exclusionCriteria")?,
        Some(_) => return Err(QueryError::NotListOfLists("exclusionCriteria")),
    }
    let fingerprint = fingerprint(&value);
    Ok(Query { body, fingerprint })
}

fn list_of_lists(groups: &[Value], field: &'static str) -> Result<(), QueryError> {
    if groups.iter().all(Value::is_array) {
        Ok(())
    } else {
        Err(QueryError::NotListOfLists(field))
    }
}

/// SHA-256 over the canonical serialisation.
pub fn fingerprint(value: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Objects with keys in byte order, whatever map type serde_json was built with (another crate of
/// the workspace may turn on `preserve_order`).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<Query, QueryError> {
        parse(bytes::Bytes::copy_from_slice(s.as_bytes()))
    }

    const DIABETES: &str = r#"{"version":"http://to_be_decided.com/draft-1/schema#","inclusionCriteria":[[{"termCodes":[{"code":"E11","system":"http://fhir.de/CodeSystem/bfarm/icd-10-gm","display":"Diabetes"}],"context":{"code":"Diagnose","system":"fdpg.mii.cds","display":"Diagnose"}}]]}"#;

    #[test]
    fn same_query_reformatted_has_the_same_fingerprint() {
        let reordered = r#"{
          "inclusionCriteria": [[{"context": {"display":"Diagnose","system":"fdpg.mii.cds","code":"Diagnose"},
            "termCodes": [{"display":"Diabetes","system":"http://fhir.de/CodeSystem/bfarm/icd-10-gm","code":"E11"}]}]],
          "version": "http://to_be_decided.com/draft-1/schema#"
        }"#;
        let a = q(DIABETES).expect("valid");
        let b = q(reordered).expect("valid");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 64);
        let other = q(&DIABETES.replace("E11", "E10")).expect("valid");
        assert_ne!(a.fingerprint, other.fingerprint);
    }

    #[test]
    fn malformed_queries_are_refused_with_the_reason() {
        let rows: &[(&str, QueryError)] = &[
            ("{", QueryError::NotJson(String::new())),
            ("[]", QueryError::NotObject),
            ("{}", QueryError::NoInclusion),
            (r#"{"inclusionCriteria":[]}"#, QueryError::NoInclusion),
            (r#"{"inclusionCriteria":[[]]}"#, QueryError::NoInclusion),
            (
                r#"{"inclusionCriteria":"E11"}"#,
                QueryError::NotListOfLists("inclusionCriteria"),
            ),
            (
                r#"{"inclusionCriteria":[{"termCodes":[]}]}"#,
                QueryError::NotListOfLists("inclusionCriteria"),
            ),
            (
                r#"{"inclusionCriteria":[[{}]],"exclusionCriteria":{}}"#,
                QueryError::NotListOfLists("exclusionCriteria"),
            ),
        ];
        for (body, want) in rows {
            let got = q(body).expect_err(body);
            match (want, &got) {
                (QueryError::NotJson(_), QueryError::NotJson(_)) => {}
                _ => assert_eq!(&got, want, "{body}"),
            }
        }
        assert!(q(r#"{"inclusionCriteria":[[{}]],"exclusionCriteria":null}"#).is_ok());
    }
}
