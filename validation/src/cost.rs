//! Static CEL cost estimation, as kube-apiserver checks it when a CRD is written.
//!
//! kube-apiserver estimates the worst-case cost of every `x-kubernetes-validations` rule from the
//! schema's bounds (`maxLength`, `maxItems`, `maxProperties`; unbounded ones from the 3 MiB
//! request limit), multiplies it by how often the rule can run (the product of the bounds of
//! the lists and maps above it), and refuses the CRD when one rule exceeds
//! [`STATIC_ESTIMATED_COST_LIMIT`] or all of them together exceed
//! [`STATIC_ESTIMATED_CRD_COST_LIMIT`] (`k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/
//! validation/validation.go`). The estimator here follows cel-go's `checker.CostEstimator` and
//! Kubernetes' library cost functions in their main terms: string traversal at 0.1 per
//! character, regular expressions at (string length × 0.1) × (pattern length × 0.25), list
//! membership linear in the list, comprehensions multiplied by the size of their range, list
//! literals at 10 plus their elements. It does not type-check, and it rounds where cel-go keeps
//! ranges, so it is an approximation that errs on the high side for our rules; the runtime
//! limits (`PerCallLimit` 1,000,000 per rule and `RuntimeCELCostBudget` 10,000,000 per object)
//! are not enforced (see docs/testing.md).

use std::sync::LazyLock;

use kube::core::cel::cel::Program;
use kube::core::cel::cel::common::ast::{Expr, IdedExpr, LiteralValue};
use serde_json::{Value, json};

/// Largest estimated cost of one rule, times its cardinality (`StaticEstimatedCostLimit`).
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Largest estimated cost of all rules of a CRD version (`StaticEstimatedCRDCostLimit`).
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;
/// kube-apiserver's request size limit, from which unbounded sizes are estimated.
const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;

const STRING_TRAVERSAL_COST_FACTOR: f64 = 0.1;
const REGEX_STRING_LENGTH_COST_FACTOR: f64 = 0.25;
const LIST_CREATE_BASE_COST: u64 = 10;
const MAP_CREATE_BASE_COST: u64 = 30;
const STRUCT_CREATE_BASE_COST: u64 = 40;

/// The estimated cost of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCost {
    /// Where the rule is, as kube-apiserver names it below `openAPIV3Schema`:
    /// `properties[spec].properties[x].x-kubernetes-validations[0].rule`.
    pub path: String,
    pub rule: String,
    /// The cost of one evaluation.
    pub expression_cost: u64,
    /// How many times it can run for one object.
    pub cardinality: u64,
}

impl RuleCost {
    /// What kube-apiserver compares with [`STATIC_ESTIMATED_COST_LIMIT`].
    pub fn total(&self) -> u64 {
        self.expression_cost.saturating_mul(self.cardinality)
    }
}

/// The estimated cost of every rule of a structural schema.
pub fn rule_costs(schema: &Value) -> Vec<RuleCost> {
    let mut out = Vec::new();
    walk(schema, "", 1, true, &mut out);
    out
}

fn child_path(base: &str, child: &str) -> String {
    if base.is_empty() {
        child.to_string()
    } else {
        format!("{base}.{child}")
    }
}

fn walk(schema: &Value, path: &str, cardinality: u64, root: bool, out: &mut Vec<RuleCost>) {
    for (i, rule) in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        let mut cost = estimate(text, schema, root);
        // A messageExpression is evaluated when the rule fails, and counts.
        if let Some(m) = rule.get("messageExpression").and_then(Value::as_str) {
            cost = cost.saturating_add(estimate(m, schema, root));
        }
        out.push(RuleCost {
            path: child_path(path, &format!("x-kubernetes-validations[{i}].rule")),
            rule: text.to_string(),
            expression_cost: cost,
            cardinality,
        });
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let embedded = child
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            walk(
                child,
                &child_path(path, &format!("properties[{name}]")),
                cardinality,
                embedded,
                out,
            );
        }
    }
    if let Some(items) = schema.get("items") {
        let n = max_items(schema);
        walk(
            items,
            &child_path(path, "items"),
            cardinality.saturating_mul(n),
            false,
            out,
        );
    }
    if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let n = max_properties(schema);
        walk(
            values,
            &child_path(path, "additionalProperties"),
            cardinality.saturating_mul(n),
            false,
            out,
        );
    }
}

/// The smallest serialisation of a value of this schema, from which kube-apiserver estimates
/// how many fit into a request.
fn min_serialized_size(schema: &Value) -> u64 {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => 2,
        Some("integer") | Some("number") => 1,
        Some("boolean") => 4,
        _ => 2,
    }
}

fn max_items(schema: &Value) -> u64 {
    schema
        .get("maxItems")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| {
            let item = schema.get("items").map_or(2, min_serialized_size);
            // Items are separated by commas, inside the brackets.
            (MAX_REQUEST_SIZE_BYTES - 2) / (item + 1)
        })
}

fn max_properties(schema: &Value) -> u64 {
    schema
        .get("maxProperties")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| {
            let value = schema
                .get("additionalProperties")
                .map_or(2, min_serialized_size);
            // `"":v,` at least, per entry.
            (MAX_REQUEST_SIZE_BYTES - 2) / (value + 4)
        })
}

fn max_length(schema: &Value) -> u64 {
    if let Some(n) = schema.get("maxLength").and_then(Value::as_u64) {
        return n;
    }
    match schema.get("format").and_then(Value::as_str) {
        // The apiserver's fixed sizes for these formats (apiservercel.MaxDatetimeSizeJSON etc.).
        Some("date-time") => 32,
        Some("date") => 12,
        Some("duration") => 64,
        _ => MAX_REQUEST_SIZE_BYTES - 2,
    }
}

/// What the estimator knows about a subexpression: where it is in the schema, if anywhere,
/// and its largest size (characters of a string, items of a list, entries of a map).
#[derive(Clone, Copy)]
struct Known<'a> {
    schema: Option<&'a Value>,
    size: u64,
    is_string: bool,
}

impl<'a> Known<'a> {
    fn scalar() -> Self {
        Known {
            schema: None,
            size: 1,
            is_string: false,
        }
    }

    fn of(schema: &'a Value) -> Self {
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => Known {
                schema: Some(schema),
                size: max_length(schema),
                is_string: true,
            },
            Some("array") => Known {
                schema: Some(schema),
                size: max_items(schema),
                is_string: false,
            },
            Some("object")
                if schema
                    .get("additionalProperties")
                    .is_some_and(Value::is_object) =>
            {
                Known {
                    schema: Some(schema),
                    size: max_properties(schema),
                    is_string: false,
                }
            }
            _ => Known {
                schema: Some(schema),
                size: 1,
                is_string: false,
            },
        }
    }

    fn field(&self, name: &str, root: bool) -> Known<'a> {
        if root && name == "metadata" {
            return Known::of(&ROOT_METADATA);
        }
        let Some(s) = self.schema else {
            return Known::scalar();
        };
        if let Some(child) = s.get("properties").and_then(|p| p.get(name)) {
            return Known::of(child);
        }
        match s.get("additionalProperties").filter(|a| a.is_object()) {
            Some(values) => Known::of(values),
            None => Known::scalar(),
        }
    }

    /// An element of a list or a value of a map; for a comprehension over a map, its key.
    fn element(&self) -> Known<'a> {
        let Some(s) = self.schema else {
            return Known::scalar();
        };
        if let Some(items) = s.get("items") {
            return Known::of(items);
        }
        if s.get("additionalProperties").is_some_and(Value::is_object) {
            // Map keys: strings bounded only by the request.
            return Known {
                schema: None,
                size: MAX_REQUEST_SIZE_BYTES - 2,
                is_string: true,
            };
        }
        Known::scalar()
    }
}

/// At the root of a resource CEL sees `metadata.name` and `metadata.generateName` only, as
/// strings of at most 253 characters.
static ROOT_METADATA: LazyLock<Value> = LazyLock::new(|| {
    json!({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 253},
        "generateName": {"type": "string", "maxLength": 253},
    }})
});

struct Scope<'s, 'a> {
    vars: Vec<(&'s str, Known<'a>)>,
    node: &'a Value,
    root: bool,
}

impl<'s, 'a> Scope<'s, 'a> {
    fn lookup(&self, name: &str) -> Known<'a> {
        if let Some((_, k)) = self.vars.iter().rev().find(|(n, _)| *n == name) {
            return *k;
        }
        match name {
            "self" | "oldSelf" => Known::of(self.node),
            _ => Known::scalar(),
        }
    }
}

/// The estimated cost of one evaluation of `rule` on a node of schema `node`. A rule that does
/// not parse costs nothing here (the validator reports it).
pub fn estimate(rule: &str, node: &Value, root: bool) -> u64 {
    let Ok(program) = Program::compile(rule) else {
        return 0;
    };
    let mut scope = Scope {
        vars: Vec::new(),
        node,
        root,
    };
    cost(program.expression(), &mut scope).0
}

fn ceil_factor(n: u64, factor: f64) -> u64 {
    (n as f64 * factor).ceil() as u64
}

/// (cost, what the result is).
fn cost<'s, 'a>(e: &'s IdedExpr, scope: &mut Scope<'s, 'a>) -> (u64, Known<'a>) {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => (
            0,
            Known {
                schema: None,
                size: s.inner().chars().count() as u64,
                is_string: true,
            },
        ),
        Expr::Literal(_) | Expr::Unspecified => (0, Known::scalar()),
        Expr::Ident(name) => (1, scope.lookup(name)),
        Expr::Select(sel) => {
            let (c, operand) = cost(&sel.operand, scope);
            let root_select = scope.root
                && matches!(&sel.operand.expr, Expr::Ident(n) if n == "self" || n == "oldSelf");
            let result = if sel.test {
                Known::scalar()
            } else {
                operand.field(&sel.field, root_select)
            };
            (c + 1, result)
        }
        Expr::List(list) => {
            let elements: u64 = list.elements.iter().map(|x| cost(x, scope).0).sum();
            (
                LIST_CREATE_BASE_COST + elements,
                Known {
                    schema: None,
                    size: list.elements.len() as u64,
                    is_string: false,
                },
            )
        }
        Expr::Map(map) => {
            let mut total = MAP_CREATE_BASE_COST;
            for entry in &map.entries {
                if let kube::core::cel::cel::common::ast::EntryExpr::MapEntry(m) = &entry.expr {
                    total += cost(&m.key, scope).0 + cost(&m.value, scope).0;
                }
            }
            (total, Known::scalar())
        }
        Expr::Struct(_) => (STRUCT_CREATE_BASE_COST, Known::scalar()),
        Expr::Comprehension(c) => {
            let (range_cost, range) = cost(&c.iter_range, scope);
            let (init_cost, _) = cost(&c.accu_init, scope);
            scope.vars.push((c.iter_var.as_str(), range.element()));
            if let Some(v2) = &c.iter_var2 {
                scope.vars.push((v2.as_str(), range.element()));
            }
            let (cond_cost, _) = cost(&c.loop_cond, scope);
            let (step_cost, step) = cost(&c.loop_step, scope);
            if c.iter_var2.is_some() {
                scope.vars.pop();
            }
            scope.vars.pop();
            let (result_cost, _) = cost(&c.result, scope);
            let per_item = cond_cost.saturating_add(step_cost);
            let total = range_cost
                .saturating_add(init_cost)
                .saturating_add(range.size.saturating_mul(per_item))
                .saturating_add(result_cost);
            // map/filter build a list as long as the range at most.
            let result = Known {
                schema: None,
                size: range.size.max(step.size),
                is_string: false,
            };
            (total, result)
        }
        Expr::Call(call) => call_cost(call, scope),
    }
}

fn call_cost<'s, 'a>(
    call: &'s kube::core::cel::cel::common::ast::CallExpr,
    scope: &mut Scope<'s, 'a>,
) -> (u64, Known<'a>) {
    let target = call.target.as_deref().map(|t| cost(t, scope));
    let args: Vec<(u64, Known<'a>)> = call.args.iter().map(|a| cost(a, scope)).collect();
    let arg_sum: u64 = target
        .iter()
        .chain(args.iter())
        .map(|(c, _)| *c)
        .fold(0, u64::saturating_add);
    // The receiver of a member call, or the first argument of a global one.
    let subject = target.map(|(_, k)| k).or(args.first().map(|(_, k)| *k));
    let arg = |i: usize| args.get(i).map(|(_, k)| *k);
    let traversal =
        |k: Option<Known<'a>>| k.map_or(1, |k| ceil_factor(k.size, STRING_TRAVERSAL_COST_FACTOR));
    let name = call.func_name.as_str();
    let own = match name {
        "_&&_" | "_||_" => 0,
        "_?_:_" => {
            // Only one branch runs.
            let branches = args
                .get(1)
                .map_or(0, |a| a.0)
                .max(args.get(2).map_or(0, |a| a.0));
            let cond = args.first().map_or(0, |a| a.0);
            return (
                cond.saturating_add(branches),
                args.get(1).map_or(Known::scalar(), |a| a.1),
            );
        }
        "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
            let l = arg(0).unwrap_or(Known::scalar());
            let r = arg(1).unwrap_or(Known::scalar());
            if l.is_string || r.is_string || l.size > 1 || r.size > 1 {
                ceil_factor(l.size.max(r.size), STRING_TRAVERSAL_COST_FACTOR).max(1)
            } else {
                1
            }
        }
        "@in" => arg(1).map_or(1, |k| k.size.max(1)),
        "matches" | "find" | "findAll" => {
            let string = subject.map_or(1, |k| k.size);
            let pattern = if target.is_some() { arg(0) } else { arg(1) };
            let pattern = pattern.map_or(1, |k| k.size);
            ceil_factor(string.saturating_add(1), STRING_TRAVERSAL_COST_FACTOR)
                .saturating_mul(ceil_factor(pattern, REGEX_STRING_LENGTH_COST_FACTOR))
        }
        "startsWith" | "endsWith" => traversal(arg(0)),
        "contains" => traversal(subject).saturating_mul(traversal(arg(0))),
        "isURL" | "url" | "isQuantity" | "quantity" | "lowerAscii" | "upperAscii" | "trim"
        | "substring" | "split" | "replace" | "indexOf" | "lastIndexOf" | "charAt" | "join"
        | "isIP" | "ip" | "isCIDR" | "cidr" | "isSemver" | "semver" | "format" => {
            traversal(subject)
        }
        _ => 1,
    };
    let result = match name {
        "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" => subject
            .map(|k| Known {
                schema: None,
                size: k.size,
                is_string: true,
            })
            .unwrap_or(Known::scalar()),
        "_[_]" => arg(0).map_or(Known::scalar(), |k| k.element()),
        _ => Known::scalar(),
    };
    (arg_sum.saturating_add(own), result)
}

/// kube-apiserver's wording (`getCostErrorMessage`).
fn exceeds(what: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{what} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

/// What kube-apiserver refuses in a CRD for CEL cost: (field path, `Forbidden: ...` message) for
/// each version's schema.
pub fn crd_cost_errors(crd: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, version) in versions.iter().enumerate() {
        let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
            continue;
        };
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        let costs = rule_costs(schema);
        let mut total: u64 = 0;
        for c in &costs {
            total = total.saturating_add(c.total());
            if c.total() > STATIC_ESTIMATED_COST_LIMIT {
                errors.push((
                    child_path(&base, &c.path),
                    format!(
                        "Forbidden: {}",
                        exceeds(
                            "estimated rule cost",
                            c.total(),
                            STATIC_ESTIMATED_COST_LIMIT
                        )
                    ),
                ));
            }
        }
        if total > STATIC_ESTIMATED_CRD_COST_LIMIT {
            let mut expensive: Vec<&RuleCost> = costs.iter().collect();
            expensive.sort_by_key(|c| std::cmp::Reverse(c.total()));
            for c in expensive.iter().take(4) {
                errors.push((
                    child_path(&base, &c.path),
                    "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema".to_string(),
                ));
            }
            errors.push((
                base.clone(),
                format!(
                    "Forbidden: {}",
                    exceeds(
                        "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                        total,
                        STATIC_ESTIMATED_CRD_COST_LIMIT
                    )
                ),
            ));
        }
    }
    errors
}
