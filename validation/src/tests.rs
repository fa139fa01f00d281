use super::*;

fn errs(schema: Value, obj: Value) -> Vec<FieldError> {
    validate_with_schema(&schema, &obj, None, UnknownFields::Pruning, None)
        .expect_err("object should be rejected")
}

fn ok(schema: Value, obj: Value) -> Value {
    validate_with_schema(&schema, &obj, None, UnknownFields::Pruning, None)
        .expect("object should be accepted")
}

fn spec_schema(spec: Value) -> Value {
    json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object"}, "spec": spec,
    }})
}

fn one(schema: Value, obj: Value) -> String {
    let e = errs(schema, obj);
    assert_eq!(e.len(), 1, "expected exactly one error, got {e:?}");
    e[0].to_string()
}

#[test]
fn type_mismatch_is_reported_like_the_apiserver() {
    let s = spec_schema(json!({"type": "object", "properties": {"replicas": {"type": "integer"}}}));
    assert_eq!(
        one(s.clone(), json!({"spec": {"replicas": "3"}})),
        r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
    );
    assert!(!errs(s.clone(), json!({"spec": {"replicas": 1.5}})).is_empty());
    ok(s, json!({"spec": {"replicas": 3}}));
}

#[test]
fn every_primitive_type_is_checked() {
    for (ty, good, bad) in [
        ("string", json!("a"), json!(1)),
        ("boolean", json!(true), json!("true")),
        ("number", json!(1.5), json!("1")),
        ("array", json!([]), json!({})),
        ("object", json!({}), json!([])),
    ] {
        let s = spec_schema(json!({"type": "object", "properties": {"x": {"type": ty}}}));
        ok(s.clone(), json!({"spec": {"x": good}}));
        assert!(!errs(s, json!({"spec": {"x": bad}})).is_empty(), "{ty}");
    }
}

#[test]
fn null_needs_nullable_and_is_dropped_otherwise() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "a": {"type": "string", "nullable": true},
        "b": {"type": "string", "default": "dflt"},
        "c": {"type": "array", "items": {"type": "string"}},
    }}));
    let out = ok(s.clone(), json!({"spec": {"a": null, "b": null}}));
    assert_eq!(out["spec"]["a"], Value::Null);
    assert_eq!(
        out["spec"]["b"], "dflt",
        "null of a non-nullable field is replaced by its default"
    );
    assert!(!errs(s, json!({"spec": {"c": [null]}})).is_empty());
}

#[test]
fn required_fields() {
    let s = spec_schema(json!({"type": "object", "required": ["siteId"],
        "properties": {"siteId": {"type": "string"}}}));
    assert_eq!(
        one(s.clone(), json!({"spec": {}})),
        "spec.siteId: Required value"
    );
    let root =
        json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}});
    assert_eq!(one(root, json!({})), "spec: Required value");
}

#[test]
fn unknown_fields_are_pruned_or_rejected() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"a": {"type": "string"},
        "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}}}),
    );
    let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
        "spec": {"a": "x", "foo": 1, "list": [{"n": "1", "bar": 2}]}, "extra": true});
    let pruned = ok(s.clone(), obj.clone());
    assert_eq!(pruned["spec"], json!({"a": "x", "list": [{"n": "1"}]}));
    assert!(pruned.get("extra").is_none());
    assert_eq!(
        pruned["metadata"]["labels"]["a"], "b",
        "metadata is never pruned by the schema"
    );
    let strict = validate_with_schema(&s, &obj, None, UnknownFields::Strict, None)
        .expect_err("strict mode rejects unknown fields");
    let rendered: Vec<String> = strict.iter().map(ToString::to_string).collect();
    assert!(
        rendered.contains(&r#"unknown field "spec.foo""#.to_string()),
        "{rendered:?}"
    );
    assert!(
        rendered.contains(&r#"unknown field "spec.list[0].bar""#.to_string()),
        "{rendered:?}"
    );
    assert!(
        rendered.contains(&r#"unknown field "extra""#.to_string()),
        "{rendered:?}"
    );
}

#[test]
fn additional_properties_describe_maps() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "additionalProperties": true},
    }}));
    let out = ok(
        s.clone(),
        json!({"spec": {"env": {"A": "1"}, "free": {"x": {"y": 1}}}}),
    );
    assert_eq!(out["spec"]["env"]["A"], "1");
    assert_eq!(out["spec"]["free"]["x"]["y"], 1);
    assert_eq!(
        one(s, json!({"spec": {"env": {"A": 1}}})),
        r#"spec.env.A: Invalid value: "integer": spec.env.A in body must be of type string: "integer""#
    );
}

#[test]
fn preserve_unknown_fields_keeps_everything() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}));
    let out = ok(s, json!({"spec": {"raw": {"anything": {"deep": [1, 2]}}}}));
    assert_eq!(out["spec"]["raw"]["anything"]["deep"][1], 2);
}

#[test]
fn embedded_resources_keep_their_type_meta() {
    let s = spec_schema(json!({"type": "object", "properties": {"tpl": {
        "type": "object", "x-kubernetes-embedded-resource": true,
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}));
    let out = ok(
        s,
        json!({"spec": {"tpl": {"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"}, "spec": {"x": 1}, "junk": 1}}}),
    );
    assert_eq!(out["spec"]["tpl"]["kind"], "Pod");
    assert_eq!(out["spec"]["tpl"]["metadata"]["name"], "p");
    assert!(out["spec"]["tpl"].get("junk").is_none());
}

#[test]
fn items_are_validated() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"l": {"type": "array",
        "items": {"type": "string", "pattern": "^[a-z]+$"}}}}),
    );
    assert_eq!(
        one(s, json!({"spec": {"l": ["ok", "NO"]}})),
        r#"spec.l[1]: Invalid value: "NO": spec.l[1] in body should match '^[a-z]+$'"#
    );
}

#[test]
fn enums() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"mode": {"type": "string", "enum": ["Retain", "Delete"]}}}),
    );
    ok(s.clone(), json!({"spec": {"mode": "Retain"}}));
    assert_eq!(
        one(s, json!({"spec": {"mode": "Keep"}})),
        r#"spec.mode: Unsupported value: "Keep": supported values: "Retain", "Delete""#
    );
}

#[test]
fn string_lengths() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"s": {"type": "string", "minLength": 2, "maxLength": 3}}}),
    );
    ok(s.clone(), json!({"spec": {"s": "äöü"}}));
    assert_eq!(
        one(s.clone(), json!({"spec": {"s": "abcd"}})),
        "spec.s: Too long: may not be more than 3 bytes"
    );
    assert_eq!(
        one(s, json!({"spec": {"s": "a"}})),
        r#"spec.s: Invalid value: "a": spec.s in body should be at least 2 chars long"#
    );
}

#[test]
fn numeric_bounds() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "a": {"type": "integer", "minimum": 0, "maximum": 10},
        "b": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1, "exclusiveMaximum": true},
        "c": {"type": "integer", "multipleOf": 5},
    }}));
    ok(s.clone(), json!({"spec": {"a": 0, "b": 0.5, "c": 10}}));
    assert_eq!(
        one(s.clone(), json!({"spec": {"a": -1}})),
        "spec.a: Invalid value: -1: spec.a in body should be greater than or equal to 0"
    );
    assert_eq!(
        one(s.clone(), json!({"spec": {"a": 11}})),
        "spec.a: Invalid value: 11: spec.a in body should be less than or equal to 10"
    );
    assert!(one(s.clone(), json!({"spec": {"b": 0}})).contains("should be greater than 0"));
    assert!(one(s.clone(), json!({"spec": {"b": 1}})).contains("should be less than 1"));
    assert!(one(s, json!({"spec": {"c": 7}})).contains("should be a multiple of 5"));
}

#[test]
fn item_and_property_counts() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
        "m": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 1, "maxProperties": 1},
    }}));
    ok(s.clone(), json!({"spec": {"l": [1], "m": {"a": 1}}}));
    assert_eq!(
        one(s.clone(), json!({"spec": {"l": [1, 2, 3]}})),
        "spec.l: Too many: 3: must have at most 2 items"
    );
    assert!(one(s.clone(), json!({"spec": {"l": []}})).contains("should have at least 1 items"));
    assert!(
        one(s.clone(), json!({"spec": {"m": {}}})).contains("should have at least 1 properties")
    );
    assert!(one(s, json!({"spec": {"m": {"a": 1, "b": 2}}})).contains("Too many: 2"));
}

#[test]
fn list_types_reject_duplicates() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}},
    }}));
    ok(
        s.clone(),
        json!({"spec": {"set": ["a", "b"], "map": [{"name": "a"}, {"name": "b"}]}}),
    );
    assert_eq!(
        one(s.clone(), json!({"spec": {"set": ["a", "a"]}})),
        r#"spec.set[1]: Duplicate value: "a""#
    );
    assert!(
        one(
            s,
            json!({"spec": {"map": [{"name": "a", "v": 1}, {"name": "a", "v": 2}]}})
        )
        .starts_with("spec.map[1]: Duplicate value")
    );
}

#[test]
fn date_time_format() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}}}),
    );
    ok(s.clone(), json!({"spec": {"t": "2025-01-02T03:04:05Z"}}));
    assert_eq!(
        one(s, json!({"spec": {"t": "tomorrow"}})),
        r#"spec.t: Invalid value: "tomorrow": spec.t in body must be of type date-time: "tomorrow""#
    );
}

#[test]
fn int_or_string() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true}}}),
    );
    ok(s.clone(), json!({"spec": {"p": 8080}}));
    ok(s.clone(), json!({"spec": {"p": "http"}}));
    assert!(!errs(s, json!({"spec": {"p": true}})).is_empty());
}

#[test]
fn one_of_and_any_of() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "release": {"type": "object", "properties": {"name": {"type": "string"}, "channel": {"type": "string"}},
            "oneOf": [{"required": ["name"]}, {"required": ["channel"]}]},
        "x": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
    }}));
    ok(
        s.clone(),
        json!({"spec": {"release": {"name": "r"}, "x": {"b": "1"}}}),
    );
    assert!(
        one(
            s.clone(),
            json!({"spec": {"release": {"name": "r", "channel": "c"}}})
        )
        .contains("must match exactly one schema in oneOf")
    );
    assert!(one(s.clone(), json!({"spec": {"release": {}}})).contains("oneOf"));
    assert!(
        one(s, json!({"spec": {"x": {}}})).contains("should match at least one schema in anyOf")
    );
}

#[test]
fn defaults_are_applied_before_validation() {
    let s = spec_schema(
        json!({"type": "object", "required": ["policy"], "properties": {
            "policy": {"type": "string", "default": "Retain", "enum": ["Retain", "Delete"]},
            "nested": {"type": "object", "default": {}, "properties": {"n": {"type": "integer", "default": 3}}},
        }}),
    );
    let out = ok(s, json!({"spec": {}}));
    assert_eq!(out["spec"]["policy"], "Retain");
    assert_eq!(out["spec"]["nested"]["n"], 3);
}

fn cel_schema() -> Value {
    spec_schema(json!({"type": "object", "properties": {
        "siteId": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "siteId is immutable"}]},
        "min": {"type": "integer"}, "max": {"type": "integer"},
    }, "x-kubernetes-validations": [
        {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "min must not exceed max"},
        {"rule": "!has(self.max) || self.max < 100", "messageExpression": "'max is ' + string(self.max) + ', above 99'"},
        {"rule": "!has(self.siteId) || self.siteId != 'forbidden'", "message": "no", "reason": "FieldValueForbidden", "fieldPath": ".siteId"},
    ]}))
}

#[test]
fn cel_rules_report_their_message_verbatim() {
    let s = cel_schema();
    assert_eq!(
        one(s.clone(), json!({"spec": {"min": 5, "max": 1}})),
        r#"spec: Invalid value: "object": min must not exceed max"#
    );
    assert_eq!(
        one(s.clone(), json!({"spec": {"max": 150}})),
        r#"spec: Invalid value: "object": max is 150, above 99"#
    );
    assert_eq!(
        one(s, json!({"spec": {"siteId": "forbidden"}})),
        r#"spec.siteId: Forbidden: no"#
    );
}

#[test]
fn cel_transition_rules_use_the_old_object() {
    let s = cel_schema();
    let old = json!({"spec": {"siteId": "erlangen"}});
    let new = json!({"spec": {"siteId": "berlin"}});
    ok(s.clone(), new.clone());
    let e = validate_with_schema(&s, &new, Some(&old), UnknownFields::Pruning, None)
        .expect_err("changing an immutable field is rejected");
    assert_eq!(
        e[0].to_string(),
        r#"spec.siteId: Invalid value: "string": siteId is immutable"#
    );
    validate_with_schema(&s, &old, Some(&old), UnknownFields::Pruning, None)
        .expect("unchanged is fine");
}

#[test]
fn cel_is_skipped_after_type_errors() {
    let e = errs(cel_schema(), json!({"spec": {"min": "a", "max": 1}}));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].kind, FieldErrorKind::TypeInvalid);
    // kube-apiserver's hasBlockingErr says so, at the root.
    assert_eq!(
        e[1].to_string(),
        r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
    );
    // Enum, required and size violations block the rules too.
    let enum_schema = spec_schema(json!({"type": "object", "properties": {
        "mode": {"type": "string", "enum": ["a"]}, "min": {"type": "integer"}, "max": {"type": "integer"},
    }, "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min > max"}]}));
    let e = errs(
        enum_schema,
        json!({"spec": {"mode": "b", "min": 2, "max": 1}}),
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].kind, FieldErrorKind::NotSupported);
    assert_eq!(e[1].path, ROOT_PATH);
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "dizsites.diz.miracum.org"},
        "spec": {"group": "diz.miracum.org", "scope": "Namespaced",
            "names": {"kind": "DizSite", "plural": "dizsites"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": cel_schema()}}]}})
}

#[test]
fn failure_message_matches_kube_apiserver() {
    let obj = json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "erlangen"}, "spec": {"siteId": "b", "min": 5, "max": 1}});
    let old = json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "erlangen"}, "spec": {"siteId": "a"}});
    let f = validate_object(&crd(), &obj, Some(&old)).expect_err("two violations");
    assert_eq!(
        f.message(),
        r#"DizSite.diz.miracum.org "erlangen" is invalid: [spec: Invalid value: "object": min must not exceed max, spec.siteId: Invalid value: "string": siteId is immutable]"#
    );
    let status = f.to_status();
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["causes"][1]["field"], "spec.siteId");
    assert_eq!(
        status["details"]["causes"][1]["message"],
        r#"Invalid value: "string": siteId is immutable"#
    );

    let single = validate_object(
        &crd(),
        &json!({"apiVersion": "diz.miracum.org/v1alpha1",
        "metadata": {"name": "erlangen"}, "spec": {"min": 5, "max": 1}}),
        None,
    )
    .expect_err("one violation");
    assert_eq!(
        single.message(),
        r#"DizSite.diz.miracum.org "erlangen" is invalid: spec: Invalid value: "object": min must not exceed max"#
    );
}

#[test]
fn validate_object_picks_the_version_and_returns_the_stored_form() {
    let obj = json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "erlangen"}, "spec": {"siteId": "a", "unknown": 1}});
    let stored = validate_object(&crd(), &obj, None).expect("valid");
    assert!(stored["spec"].get("unknown").is_none());
    let strict =
        validate_object_with(&crd(), &obj, None, UnknownFields::Strict).expect_err("strict");
    assert_eq!(strict.code(), 400);
    assert_eq!(
        strict.message(),
        r#"strict decoding error: unknown field "spec.unknown""#
    );
    let wrong = json!({"apiVersion": "diz.miracum.org/v9", "metadata": {"name": "x"}});
    assert!(validate_object(&crd(), &wrong, None).is_err());
}

#[test]
fn cel_skips_null_values_as_the_apiserver_does() {
    // The rule of a nullable field set to null is not evaluated; the parent sees the null.
    let s = spec_schema(json!({"type": "object", "properties": {
        "db": {"type": "object", "nullable": true, "properties": {"size": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "has(self.size)", "message": "db needs a size"}]},
    }}));
    let stored = ok(s.clone(), json!({"spec": {"db": null}}));
    assert_eq!(stored["spec"]["db"], Value::Null);
    assert_eq!(
        one(s, json!({"spec": {"db": {}}})),
        r#"spec.db: Invalid value: "object": db needs a size"#
    );
    let parent = spec_schema(json!({"type": "object", "properties": {
        "db": {"type": "object", "nullable": true, "properties": {"size": {"type": "string"}}},
    }, "x-kubernetes-validations": [
        {"rule": "!has(self.db) || self.db != null", "message": "spec.db: give it a value or remove the key", "fieldPath": ".db"},
    ]}));
    assert_eq!(
        one(parent.clone(), json!({"spec": {"db": null}})),
        r#"spec.db: Invalid value: "object": spec.db: give it a value or remove the key"#
    );
    ok(parent, json!({"spec": {"db": {"size": "1Gi"}}}));
}

#[test]
fn cel_root_rules_are_reported_at_nil() {
    let s = json!({"type": "object", "properties": {"spec": {"type": "object"}},
        "x-kubernetes-validations": [{"rule": "size(self.metadata.name) <= 5", "message": "metadata.name is too long"}]});
    let e = errs(s, json!({"metadata": {"name": "far-too-long"}, "spec": {}}));
    assert_eq!(
        e[0].to_string(),
        r#"<nil>: Invalid value: "object": metadata.name is too long"#
    );
}

#[test]
fn cel_old_self_of_list_items_is_correlated_by_map_keys() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "waves": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "size cannot shrink"}]},
            }}},
        "plain": {"type": "array", "items": {"type": "object", "properties": {
                "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "plain cannot shrink"}]},
            }}},
    }}));
    let old = json!({"spec": {"waves": [{"name": "a", "size": 5}, {"name": "b", "size": 1}],
        "plain": [{"size": 5}]}});
    // Reordered: each item is compared with the old item of the same name, not position.
    let reordered = json!({"spec": {"waves": [{"name": "b", "size": 1}, {"name": "a", "size": 5}],
        "plain": [{"size": 1}]}});
    validate_with_schema(&s, &reordered, Some(&old), UnknownFields::Pruning, None)
        .expect("same items, other order; atomic list items have no oldSelf");
    let shrunk = json!({"spec": {"waves": [{"name": "b", "size": 1}, {"name": "a", "size": 4}]}});
    let e = validate_with_schema(&s, &shrunk, Some(&old), UnknownFields::Pruning, None)
        .expect_err("a shrank");
    assert_eq!(
        e[0].to_string(),
        r#"spec.waves[1].size: Invalid value: "integer": size cannot shrink"#
    );
}

#[test]
fn cel_duplicate_and_required_reasons_render_like_field_errors() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "has(self.a)", "message": "a is needed", "reason": "FieldValueRequired", "fieldPath": ".a"},
            {"rule": "false", "message": "ignored", "reason": "FieldValueDuplicate"},
        ]}),
    );
    let e = errs(s, json!({"spec": {}}));
    assert_eq!(e[0].to_string(), "spec.a: Required value: a is needed");
    assert_eq!(e[1].to_string(), r#"spec: Duplicate value: "object""#);
}

mod cost {
    use super::*;
    use crate::cost::{STATIC_ESTIMATED_COST_LIMIT, crd_cost_errors, estimate, rule_costs};

    #[test]
    fn simple_rules_are_cheap() {
        let s = json!({"type": "integer"});
        assert!(estimate("self >= 0", &s, false) <= 3);
    }

    #[test]
    fn regex_cost_follows_string_and_pattern_length() {
        // ceil((100 + 1) * 0.1) * ceil(8 * 0.25) = 11 * 2, plus the receiver and the call.
        let s = json!({"type": "string", "maxLength": 100});
        let c = estimate("self.matches('^[a-z]+')", &s, false);
        assert!((22..=25).contains(&c), "{c}");
        // Without maxLength the string may fill the request.
        let unbounded = estimate("self.matches('^[a-z]+')", &json!({"type": "string"}), false);
        assert!(unbounded > 100 * c, "{unbounded}");
    }

    #[test]
    fn comprehensions_multiply_by_the_range_and_rules_by_their_cardinality() {
        let bounded = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "maxItems": 10,
                "items": {"type": "string", "maxLength": 10,
                    "x-kubernetes-validations": [{"rule": "self.startsWith('a')"}]}},
        }, "x-kubernetes-validations": [{"rule": "self.items.all(i, i.size() > 1)"}]}}});
        let costs = rule_costs(&bounded);
        assert_eq!(costs.len(), 2);
        let all = &costs[0];
        assert_eq!(
            all.path,
            "properties[spec].x-kubernetes-validations[0].rule"
        );
        assert_eq!(all.cardinality, 1);
        assert!(
            all.expression_cost >= 10 && all.expression_cost < 200,
            "{all:?}"
        );
        let item = &costs[1];
        assert_eq!(
            item.path,
            "properties[spec].properties[items].items.x-kubernetes-validations[0].rule"
        );
        assert_eq!(item.cardinality, 10);
    }

    fn crd_with(schema: Value) -> Value {
        json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}})
    }

    #[test]
    fn unbounded_nested_comprehensions_are_refused_as_the_apiserver_refuses_them() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "names": {"type": "array", "items": {"type": "string"}},
        }, "x-kubernetes-validations": [
            {"rule": "self.names.all(a, self.names.exists_one(b, a == b))"},
        ]}}});
        let errors = crd_cost_errors(&crd_with(schema));
        assert!(!errors.is_empty());
        assert_eq!(
            errors[0].0,
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
        );
        assert_eq!(
            errors[0].1,
            "Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        );
        // With bounds, the same rule fits.
        let bounded = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "names": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 63}},
        }, "x-kubernetes-validations": [
            {"rule": "self.names.all(a, self.names.exists_one(b, a == b))"},
        ]}}});
        assert_eq!(crd_cost_errors(&crd_with(bounded.clone())), Vec::new());
        assert!(rule_costs(&bounded)[0].total() < STATIC_ESTIMATED_COST_LIMIT);
    }

    #[test]
    fn the_crd_total_is_limited_too() {
        // Each rule fits on its own (about 4 million for 10,000 items); thirty of them do not.
        let rules: Vec<Value> = (0..30)
            .map(|_| json!({"rule": "self.matches('^[a-z]+$')"}))
            .collect();
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "names": {"type": "array", "maxItems": 10000,
                "items": {"type": "string", "maxLength": 2000, "x-kubernetes-validations": rules}},
        }}}});
        let errors = crd_cost_errors(&crd_with(schema));
        assert!(
            errors
                .iter()
                .all(|e| !e.1.contains("estimated rule cost exceeds")),
            "{errors:?}"
        );
        assert!(
            errors[0]
                .1
                .contains("contributed to estimated rule cost total")
        );
        let last = errors.last().expect("refused");
        assert_eq!(last.0, "spec.versions[0].schema.openAPIV3Schema");
        assert!(
            last.1.starts_with("Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of"),
            "{}",
            last.1
        );
    }

    #[test]
    fn root_rules_see_a_bounded_metadata_name() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let c = estimate("self.metadata.name.matches('^[a-z]+$')", &s, true);
        assert!(c < 300, "{c}");
    }
}

#[test]
fn a_shared_crd_validates_as_the_same_crd_by_value_and_a_changed_one_is_compiled_again() {
    let obj = json!({"apiVersion": "diz.miracum.org/v1alpha1", "kind": "DizSite",
        "metadata": {"name": "erlangen"}, "spec": {"min": 5, "max": 1, "unknown": 1}});
    let shared = Arc::new(crd());
    let by_value = validate_object(&crd(), &obj, None).expect_err("min > max");
    let by_identity = validate_shared_crd_object(&shared, &obj, None, UnknownFields::Pruning)
        .expect_err("min > max");
    assert_eq!(by_identity, by_value);
    // Twice: the second answer comes from the cache.
    let again = validate_shared_crd_object(&shared, &obj, None, UnknownFields::Pruning)
        .expect_err("min > max");
    assert_eq!(again, by_value);
    // A changed CRD is a new `Arc`: its rules (none here) apply, not the cached ones.
    let mut relaxed = crd();
    relaxed["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "min": {"type": "integer"}, "max": {"type": "integer"}}}}});
    let relaxed = Arc::new(relaxed);
    let (stored, pruned) = validate_shared_crd_object(&relaxed, &obj, None, UnknownFields::Pruning)
        .expect("no rule left");
    assert_eq!(stored["spec"], json!({"min": 5, "max": 1}));
    assert_eq!(pruned, vec!["spec.unknown".to_string()]);
    assert_eq!(pruned, unknown_fields(&relaxed, &obj));
}

#[test]
fn a_static_schema_validates_as_the_same_schema_by_value() {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(cel_schema);
    let obj = json!({"spec": {"min": 5, "max": 1, "unknown": 1}});
    let by_value = validate_with_schema(schema, &obj, None, UnknownFields::Pruning, None);
    let mut unknown = Vec::new();
    let by_address = validate_with_static_schema(
        schema,
        &obj,
        None,
        UnknownFields::Pruning,
        None,
        &mut unknown,
    );
    assert_eq!(by_address, by_value);
    assert!(by_value.is_err(), "min > max");
    assert_eq!(unknown, unknown_fields_in(schema, &obj));
}
