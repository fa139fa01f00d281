//! Links in what users read resolve: every relative link of `README.md` and `docs/` (and of the
//! other Markdown files they lead to) points to a file or directory of the repository, every
//! `#anchor` to a heading of the target page, and every repository path named in a comment of
//! `examples/` exists. No network: `http(s)://` and `mailto:` links are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
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
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The lines of a Markdown file outside fenced code blocks, with inline code removed: a link
/// shown as an example is not a link.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut kept = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                kept.push(c);
            }
        }
        out.push((i + 1, kept));
    }
    out
}

/// Heading text → GitHub's anchor: lower case, punctuation dropped (letters, digits, `-`, `_`
/// and spaces stay), spaces become `-`; a repeated anchor gets `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let title = link_texts(title);
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// `[text](target)` → `text`, for headings that contain links.
fn link_texts(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) => {
                out.push_str(&after[..close]);
                let tail = &after[close + 2..];
                rest = tail.find(')').map_or("", |end| &tail[end + 1..]);
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of `[text](target)` and `[label]: target` on a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let tail = &rest[i + 2..];
        let end = tail.find(')').unwrap_or(tail.len());
        let target = tail[..end].split_whitespace().next().unwrap_or_default();
        out.push(target.to_string());
        rest = &tail[end..];
    }
    let t = line.trim_start();
    if t.starts_with('[')
        && let Some(i) = t.find("]: ")
    {
        out.push(
            t[i + 3..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    out
}

struct Checker {
    root: PathBuf,
    problems: Vec<String>,
    anchors: BTreeMap<PathBuf, BTreeSet<String>>,
}

impl Checker {
    fn anchors_of(&mut self, page: &Path) -> &BTreeSet<String> {
        self.anchors
            .entry(page.to_path_buf())
            .or_insert_with(|| anchors(&std::fs::read_to_string(page).unwrap_or_default()))
    }

    /// Checks the links of one Markdown file; returns the Markdown files it links to.
    fn markdown(&mut self, file: &Path) -> Vec<PathBuf> {
        let text = std::fs::read_to_string(file).expect("readable");
        let rel = file
            .strip_prefix(&self.root)
            .unwrap_or(file)
            .display()
            .to_string();
        let dir = file.parent().expect("a file has a directory").to_path_buf();
        let mut next = Vec::new();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(&line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let resolved = if path.is_empty() {
                    file.to_path_buf()
                } else {
                    normalize(&dir.join(path))
                };
                if !resolved.starts_with(&self.root) || !resolved.exists() {
                    self.problems
                        .push(format!("{rel}:{n}: {target}: no such file or directory"));
                    continue;
                }
                let is_md = resolved.extension().is_some_and(|x| x == "md");
                if is_md {
                    next.push(resolved.clone());
                }
                if !anchor.is_empty() {
                    if !is_md {
                        self.problems.push(format!(
                            "{rel}:{n}: {target}: an anchor into a non-Markdown file"
                        ));
                    } else if !self.anchors_of(&resolved).contains(anchor) {
                        self.problems
                            .push(format!("{rel}:{n}: {target}: no heading with that anchor"));
                    }
                }
            }
        }
        next
    }

    /// Repository paths named in the comments of a YAML file (`docs/…`, `examples/…`, …).
    fn yaml_comments(&mut self, file: &Path) {
        let text = std::fs::read_to_string(file).expect("readable");
        let rel = file
            .strip_prefix(&self.root)
            .unwrap_or(file)
            .display()
            .to_string();
        const TOP: &[&str] = &[
            "docs/",
            "examples/",
            "crds/",
            "charts/",
            "manifests/",
            "scripts/",
            "operator/",
            "e2e/",
        ];
        for (n, line) in text.lines().enumerate() {
            let Some(comment) = line.find('#').map(|i| &line[i + 1..]) else {
                continue;
            };
            // Only whole-line or trailing comments: a `#` inside a quoted value is not one.
            if line[..line.find('#').unwrap_or(0)].contains('"') {
                continue;
            }
            for word in comment.split(|c: char| {
                c.is_whitespace() || matches!(c, '(' | ')' | ',' | '`' | '\'' | '"')
            }) {
                let word = word.trim_end_matches(['.', ':', ';']);
                if !TOP.iter().any(|t| word.starts_with(t)) {
                    continue;
                }
                let path = word.split('#').next().unwrap_or(word);
                if !self.root.join(path).exists() {
                    self.problems.push(format!(
                        "{rel}:{}: {word}: no such file or directory",
                        n + 1
                    ));
                }
            }
        }
    }
}

#[test]
fn links_in_readme_docs_and_example_comments_resolve() {
    let root = repo_root();
    let mut c = Checker {
        root: root.clone(),
        problems: Vec::new(),
        anchors: BTreeMap::new(),
    };
    let mut queue: Vec<PathBuf> = vec![root.join("README.md")];
    queue.extend(files_with(&root.join("docs"), "md"));
    let mut done = BTreeSet::new();
    while let Some(file) = queue.pop() {
        if !done.insert(file.clone()) {
            continue;
        }
        queue.extend(c.markdown(&file));
    }
    for file in files_with(&root.join("examples"), "yaml") {
        c.yaml_comments(&file);
    }
    assert!(
        done.len() > 10,
        "the check reached only {} Markdown files",
        done.len()
    );
    assert!(
        c.problems.is_empty(),
        "broken links:\n  {}",
        c.problems.join("\n  ")
    );
}

#[test]
fn the_checker_finds_what_it_should() {
    assert_eq!(
        link_targets("see [a](b.md#c) and [d](https://x) [e]: f.md"),
        ["b.md#c", "https://x"]
    );
    assert_eq!(link_targets("[e]: f.md \"title\""), ["f.md"]);
    let a = anchors(
        "# Uninstall — and what happens to patient data\n## `miracolix-operator run`\n## A\n## A\n```\n# not a heading\n```\n## See [x](y.md)",
    );
    for want in [
        "uninstall--and-what-happens-to-patient-data",
        "miracolix-operator-run",
        "a",
        "a-1",
        "see-x",
    ] {
        assert!(a.contains(want), "{want} in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
    assert_eq!(prose_lines("x `[a](b)` y\n```\n[c](d)\n```")[0].1, "x  y");
}
