//! The README and `docs/`: every relative link resolves, to a file that exists and, with a
//! `#fragment`, to a heading of that file (GitHub's anchors: lower case, punctuation dropped,
//! spaces as hyphens). Code blocks are not read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The markdown files the links are checked in: the README and every file of `docs/`.
fn documents() -> Vec<PathBuf> {
    // Relative to the package root, where test binaries run (not the path the binary was built
    // at: a shared target dir may hold a build made in another checkout).
    let root = Path::new(".");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    prose(&text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.split_once(' ').map(|(_, heading)| anchor(heading)))
        .collect()
}

/// Every `](target)` of a file's prose (a link's text may span lines).
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_owned());
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = match path {
                "" => file.clone(),
                path => file.parent().unwrap().join(path),
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
            } else if !fragment.is_empty()
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&resolved).contains(fragment)
            {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn the_readme_stays_a_first_read() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.lines().count() < 250,
        "the reference belongs in docs/"
    );
    for must in [
        "cargo run --release",
        "scripts/test",
        "curl",
        "from openai import OpenAI",
        "ANTHROPIC_BASE_URL",
        "docs/README.md",
    ] {
        assert!(readme.contains(must), "the README shows {must}");
    }
}
