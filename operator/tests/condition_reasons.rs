//! The reasons of `api::reasons` against the code that sets them and the tests that check them.
//! `docs/conditions.md` is generated from that list (see `generated_files.rs`), so these two
//! tests are what make the documentation true:
//!
//! * [`every_documented_reason_is_asserted_by_a_test`]: a reason users read about is one some
//!   test makes the operator produce and checks;
//! * [`reasons_are_set_only_through_the_constants`]: a reason the operator writes is one in the
//!   list (and so in the documentation). Conditions are also checked at run time:
//!   `DesiredCondition::new` refuses an unlisted reason in debug builds, so every test that runs
//!   a reconcile checks the reasons it produces.
//!
//! Both read the project's Rust sources with `syn` rather than grepping lines, so an assertion
//! spread over several lines or a reason behind a constant counts the same as a one-liner.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use miracolix_operator::api::reasons::{self, ReasonInfo};
use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).expect("readable source");
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg")
            && a.parse_args::<syn::Path>()
                .is_ok_and(|p| p.is_ident("test")))
            || a.path().is_ident("test")
            || a.path().segments.last().is_some_and(|s| s.ident == "test")
    })
}

fn attrs_of(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Mod(m) => &m.attrs,
        syn::Item::Fn(f) => &f.attrs,
        syn::Item::Impl(i) => &i.attrs,
        _ => &[],
    }
}

/// What the assertions of the test code mention: string literals and identifiers (the last
/// segment of a path such as `reasons::COMPONENTS_FAILING`).
#[derive(Default)]
struct Asserted {
    literals: BTreeSet<String>,
    idents: BTreeSet<String>,
    /// > 0 inside an assertion.
    depth: usize,
}

impl Asserted {
    /// Every literal and identifier in a macro's tokens (assertions are macros; their
    /// arguments need not parse as expressions, e.g. the pattern of `matches!`).
    fn tokens(&mut self, tokens: TokenStream) {
        for t in tokens {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(i) => {
                    self.idents.insert(i.to_string());
                }
                TokenTree::Literal(l) => {
                    if let Ok(s) = syn::parse_str::<syn::LitStr>(&l.to_string()) {
                        self.literals.insert(s.value());
                    }
                }
                TokenTree::Punct(_) => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Asserted {
    /// `assert!`, `assert_eq!`, `assert_matches!`, `debug_assert…!` and `matches!` are
    /// assertions; `assert_ne!` is not (it says what a reason is *not*). Other macros (`vec!`,
    /// `format!`) are looked into when their arguments are expressions.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let name = m
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let asserting = (name.starts_with("assert") || name.starts_with("debug_assert"))
            && !name.ends_with("_ne")
            || name == "matches";
        if asserting {
            self.tokens(m.tokens.clone());
            return;
        }
        use syn::parse::Parser;
        let args = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(exprs) = args.parse2(m.tokens.clone()) {
            for e in &exprs {
                self.visit_expr(e);
            }
        }
    }

    /// `a == b` compares: the wait loops of the end-to-end tests look for a reason this way
    /// (`if c.reason == "ComponentsFailing" { break }`). `!=` is not counted.
    fn visit_expr_binary(&mut self, b: &'ast syn::ExprBinary) {
        let compares = matches!(b.op, syn::BinOp::Eq(_));
        if compares {
            self.depth += 1;
        }
        visit::visit_expr_binary(self, b);
        if compares {
            self.depth -= 1;
        }
    }

    fn visit_lit_str(&mut self, l: &'ast syn::LitStr) {
        if self.depth > 0 {
            self.literals.insert(l.value());
        }
    }

    fn visit_ident(&mut self, i: &'ast proc_macro2::Ident) {
        if self.depth > 0 {
            self.idents.insert(i.to_string());
        }
    }
}

/// The test code of a source file: the whole file for integration tests, else the items
/// marked `#[cfg(test)]` or `#[test]`, at any depth of inline modules.
fn visit_test_items(items: &[syn::Item], whole: bool, v: &mut Asserted) {
    for item in items {
        if whole || is_cfg_test(attrs_of(item)) {
            v.visit_item(item);
        } else if let syn::Item::Mod(syn::ItemMod {
            content: Some((_, inner)),
            ..
        }) = item
        {
            visit_test_items(inner, false, v);
        }
    }
}

/// A documented reason is "asserted by a test" when, in test code (every file under
/// `operator/tests` and `e2e/tests`, and the `#[cfg(test)]` items of `operator/src` and
/// `e2e/src`), its string (`"ComponentsFailing"`) or its constant
/// (`reasons::COMPONENTS_FAILING`) appears inside an assertion macro (`assert!`,
/// `assert_eq!`, `matches!`, …, not `assert_ne!`) or on either side of `==`. That is how tests
/// check a reason the operator produced: `assert_eq!(c.reason, "Paused")`, or a wait loop
/// `if c.reason == "ComponentsFailing"` in the end-to-end suite. A mention elsewhere (a
/// fixture, a comment, an argument to a helper) does not count. The check is syntactic: it
/// proves a test compares the reason with something, and the reviewer of that test that the
/// something is what the operator produced.
#[test]
fn every_documented_reason_is_asserted_by_a_test() {
    let root = repo_root();
    let mut asserted = Asserted::default();
    for (dir, whole) in [
        ("operator/tests", true),
        ("e2e/tests", true),
        ("operator/src", false),
        ("e2e/src", false),
    ] {
        for file in rust_files(&root.join(dir)) {
            visit_test_items(&parse(&file).items, whole, &mut asserted);
        }
    }
    let missing: Vec<&ReasonInfo> = reasons::ALL
        .iter()
        .filter(|r| !r.seen.is_empty())
        .filter(|r| !asserted.literals.contains(r.name) && !asserted.idents.contains(r.constant))
        .collect();
    assert!(
        missing.is_empty(),
        "documented reasons no test asserts (write a test that makes the operator produce each \
         and asserts it, e.g. `assert_eq!(condition.reason, reasons::X)`):\n{}",
        missing
            .iter()
            .map(|r| format!("  {} (reasons::{})", r.name, r.constant))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Where the operator's code hands over a reason: the function (last path segment, or the
/// method name) and the position of the reason among its arguments.
const REASON_ARGUMENTS: &[(&str, usize)] = &[
    ("publish", 3),
    ("publish_if_new", 3),
    ("stall", 3),
    ("stalled_conditions", 0),
    ("retrying_conditions", 0),
];

/// Finds string literals in places where the operator sets a reason.
#[derive(Default)]
struct LiteralReasons {
    file: String,
    /// The name of the function being visited.
    function: Vec<String>,
    /// The name of the type whose impl is being visited.
    impl_of: Vec<String>,
    found: Vec<String>,
}

/// Collects the string literals of a piece of syntax.
struct Lits(Vec<String>);

impl<'ast> Visit<'ast> for Lits {
    fn visit_lit_str(&mut self, l: &'ast syn::LitStr) {
        self.0.push(l.value());
    }
}

impl LiteralReasons {
    fn report(&mut self, lits: Lits, place: &str) {
        for l in lits.0 {
            self.found.push(format!("{}: {place}: \"{l}\"", self.file));
        }
    }
}

impl<'ast> Visit<'ast> for LiteralReasons {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        if is_cfg_test(attrs_of(i)) {
            return;
        }
        visit::visit_item(self, i);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let name = match i.self_ty.as_ref() {
            syn::Type::Path(p) => p
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        self.impl_of.push(name);
        visit::visit_item_impl(self, i);
        self.impl_of.pop();
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let name = f.sig.ident.to_string();
        // `fn reason(&self) -> &'static str` maps errors and verdicts to reasons;
        // `Reason::as_str` names the certification reasons.
        let maps_reasons = name == "reason"
            || (name == "as_str" && self.impl_of.last().is_some_and(|t| t == "Reason"));
        if maps_reasons {
            let mut lits = Lits(Vec::new());
            lits.visit_block(&f.block);
            self.report(lits, &format!("fn {name}"));
            return;
        }
        self.function.push(name);
        visit::visit_impl_item_fn(self, f);
        self.function.pop();
    }

    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = c.func.as_ref() {
            let segs: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let last = segs.last().cloned().unwrap_or_default();
            let at = if segs.ends_with(&["DesiredCondition".into(), "new".into()]) {
                Some(2)
            } else {
                REASON_ARGUMENTS
                    .iter()
                    .find(|(f, _)| *f == last)
                    .map(|(_, i)| *i)
            };
            if let Some(arg) = at.and_then(|i| c.args.iter().nth(i)) {
                let mut lits = Lits(Vec::new());
                lits.visit_expr(arg);
                self.report(lits, &format!("{last}(…) reason argument"));
            }
        }
        visit::visit_expr_call(self, c);
    }

    fn visit_expr_struct(&mut self, s: &'ast syn::ExprStruct) {
        let is_event = s.path.segments.last().is_some_and(|x| x.ident == "Event");
        if is_event {
            for f in &s.fields {
                if let syn::Member::Named(n) = &f.member
                    && n == "reason"
                {
                    let mut lits = Lits(Vec::new());
                    lits.visit_expr(&f.expr);
                    self.report(lits, "Event { reason }");
                }
            }
        }
        visit::visit_expr_struct(self, s);
    }
}

/// The code of `operator/src` (tests excluded) never writes a reason as a string literal:
/// not as the reason of `DesiredCondition::new`, not in a `fn reason` mapping, not as the
/// reason of an Event (`Event { reason }`, `publish`, `publish_if_new`), and not to the helpers
/// that build stalled or retrying conditions. Reasons come from `api::reasons`, whose list is
/// the documentation; a literal would be a reason nobody documented.
#[test]
fn reasons_are_set_only_through_the_constants() {
    let root = repo_root();
    let mut v = LiteralReasons::default();
    for file in rust_files(&root.join("operator/src")) {
        if file.ends_with("api/reasons.rs") {
            continue;
        }
        v.file = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        v.visit_file(&parse(&file));
    }
    assert!(
        v.found.is_empty(),
        "reasons written as string literals; add them to operator/src/api/reasons.rs (with \
         what they mean and what to do) and use the constant:\n  {}",
        v.found.join("\n  ")
    );
}

/// The names are CamelCase words (Kubernetes' rule for condition and Event reasons) and unique,
/// and every reason that shows up somewhere says what to do.
#[test]
fn reasons_are_camel_case_unique_and_actionable() {
    let mut seen = BTreeSet::new();
    for r in reasons::ALL {
        assert!(
            r.name.starts_with(|c: char| c.is_ascii_uppercase())
                && r.name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{} is not CamelCase",
            r.name
        );
        assert!(seen.insert(r.name), "{} is listed twice", r.name);
        assert!(
            r.seen.is_empty() || (!r.meaning.is_empty() && !r.action.is_empty()),
            "{} lacks its meaning or what to do",
            r.name
        );
    }
}

// Reasons whose cause the end-to-end suites cannot provoke through an API server (a field the
// schema already refuses, content that cannot be encoded, a bug), or that pure functions
// decide: asserted on the functions that produce them.

fn example_release() -> miracolix_operator::api::ComponentRelease {
    let text =
        std::fs::read_to_string(repo_root().join("examples/10-release-miracolix-2026.1.yaml"))
            .expect("example release");
    miracolix_operator::yaml::from_multi_doc(&text)
        .expect("parses")
        .remove(0)
}

fn trust() -> miracolix_operator::release::TrustStore {
    miracolix_operator::release::TrustStore::from_dir(&repo_root().join("examples/trusted-keys"))
        .expect("demo key")
}

#[test]
fn signatures_that_cannot_be_checked_name_their_fault() {
    use miracolix_operator::api::SignatureAlgorithm;
    use miracolix_operator::release::verify;
    let good = example_release().spec;
    assert_eq!(verify(&good, &trust()).reason(), reasons::VERIFIED);

    let mut other_algorithm = good.clone();
    if let Some(s) = other_algorithm.signature.as_mut() {
        s.algorithm = SignatureAlgorithm::EcdsaP256Sha256;
    }
    assert_eq!(
        verify(&other_algorithm, &trust()).reason(),
        reasons::ALGORITHM_MISMATCH
    );

    let mut garbled = good.clone();
    if let Some(s) = garbled.signature.as_mut() {
        s.value = "AAAA".into();
    }
    assert_eq!(
        verify(&garbled, &trust()).reason(),
        reasons::MALFORMED_SIGNATURE
    );

    let mut not_ascii = good;
    not_ascii.version = "2026.1\u{2011}1".into();
    assert_eq!(
        verify(&not_ascii, &trust()).reason(),
        reasons::NOT_CANONICAL
    );
}

#[test]
fn a_release_reference_without_name_or_channel_is_invalid() {
    use miracolix_operator::api::ReleaseRef;
    use miracolix_operator::controller::dizsite::select::select;
    let err = select(&ReleaseRef::default(), &[example_release()], &trust())
        .expect_err("neither name nor channel");
    assert_eq!(err.reason(), reasons::INVALID_SPEC);
}

#[test]
fn rollout_gates_that_cannot_be_evaluated_block_with_their_reason() {
    use miracolix_operator::api::MaintenanceWindow;
    use miracolix_operator::release::rollout::{SiteFacts, gate};
    let now = "2026-03-02T10:00:00Z".parse().expect("time");
    let labels = Default::default();
    let never = MaintenanceWindow {
        schedule: "0 0 31 2 *".into(),
        duration: "1h".into(),
        time_zone: "Europe/Berlin".into(),
    };
    let site = SiteFacts {
        site_id: "giessen",
        labels: &labels,
        window: Some(&never),
    };
    assert_eq!(
        gate(&example_release(), &site, now).reason(),
        reasons::INVALID_MAINTENANCE_WINDOW
    );

    let mut rel = example_release();
    rel.spec.rollout = Some(
        serde_json::from_value(serde_json::json!(
            {"waves": [{"name": "all", "sites": ["giessen"], "notBefore": "soon"}]}
        ))
        .expect("rollout"),
    );
    let site = SiteFacts {
        site_id: "giessen",
        labels: &labels,
        window: None,
    };
    assert_eq!(gate(&rel, &site, now).reason(), reasons::INVALID_ROLLOUT);
}

#[test]
fn a_site_on_another_release_than_its_spec_is_pending() {
    use miracolix_operator::controller::dizsite::rollout::up_to_date_condition;
    use miracolix_operator::release::upgrade::{Decision, RolloutStatus};
    let after = RolloutStatus {
        current: Some("miracolix-2026.1".into()),
        ..RolloutStatus::default()
    };
    let stay = Decision::Stay {
        on: "miracolix-2026.1".into(),
        waiting: None,
    };
    let c = up_to_date_condition(&stay, &after, "miracolix-2026.2");
    assert_eq!((c.status, c.reason.as_str()), ("False", reasons::PENDING));
}

#[test]
fn bugs_have_reasons_of_their_own() {
    use miracolix_operator::catalog::{CatalogError, Component};
    use miracolix_operator::controller::apply::ApplyError;
    use miracolix_operator::controller::dizsite::Error;
    let encode = ApplyError::Encode {
        kind: "Deployment".into(),
        name: "x".into(),
        source: serde_json::from_str::<serde_json::Value>("{").expect_err("not JSON"),
    };
    assert_eq!(encode.reason(), reasons::INTERNAL_ERROR);
    assert_eq!(Error::NoNamespace.reason(), reasons::INVALID_OBJECT);
    assert_eq!(
        CatalogError::Serialize("x".into()).reason(),
        reasons::SERIALIZATION_FAILED
    );
    let blaze = Component::all().next().expect("a component");
    let combination = CatalogError::UnsupportedCombination {
        component: blaze,
        field: "blaze",
        detail: "x".into(),
    };
    assert_eq!(combination.reason(), reasons::UNSUPPORTED_COMBINATION);
}
