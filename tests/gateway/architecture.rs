//! The module map holds (README, "Architecture"): no two files import each other, and no module
//! imports one above it in the layer order. Read from the sources, so a change that breaks the
//! map fails here instead of in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules from the request's edge down to plain data. A module may import only
/// modules below it (or its own submodules). `config` is pure data every layer reads.
const ORDER: &[&str] = &[
    "startup",
    "server",
    "api",
    "call",
    "state",
    "runtime",
    "providers",
    "responses",
    "anthropic",
    "control",
    "upload",
    "routing",
    "cache",
    "sse",
    "sessions",
    "usage",
    "tokens",
    "limits",
    "redis",
    "db",
    "request",
    "error",
    "body",
    "trace",
    "metrics",
    "stats",
    "logs",
    "config",
    "secret",
    "tls",
    "clock",
    "hex",
    "json",
];

#[test]
fn no_two_files_import_each_other_and_no_module_imports_upward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    let known: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &files {
        let targets = imports(module, text, &known);
        edges.insert(module, targets);
    }

    let mut circles = Vec::new();
    let mut upward = Vec::new();
    for (a, targets) in &edges {
        for b in targets {
            if edges.get(b.as_str()).is_some_and(|back| back.contains(*a)) && *a < b.as_str() {
                circles.push(format!("{a} <-> {b}"));
            }
            let (top_a, top_b) = (top(a), top(b));
            if top_a == top_b {
                continue;
            }
            let rank = |m: &str| ORDER.iter().position(|o| *o == m);
            match (rank(top_a), rank(top_b)) {
                (Some(ra), Some(rb)) if rb < ra => upward.push(format!("{a} -> {b}")),
                (None, _) | (_, None) => upward.push(format!(
                    "{a} -> {b}: add both to ORDER and docs/architecture.md"
                )),
                _ => {}
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files importing each other: {circles:#?}"
    );
    assert!(
        upward.is_empty(),
        "imports against the layer order: {upward:#?}"
    );
    // The check sees what it should: a few known arrows.
    let sees = |a: &str, b: &str| edges.get(a).is_some_and(|t| t.contains(b));
    assert!(sees("call::dispatch", "providers"), "{edges:#?}");
    assert!(sees("api::chat", "call::pipeline"));
    assert!(sees("providers", "providers::openai"));
}

/// Every library file by module path (`call::outcome`), with its test module cut off.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let file = parts.last().cloned().unwrap_or_default();
            if path.extension().is_none_or(|e| e != "rs")
                || file == "main"
                || file == "tests"
                || file.ends_with("_tests")
            {
                continue;
            }
            if file == "mod" || file == "lib" {
                parts.pop();
            }
            let mut text = std::fs::read_to_string(&path).unwrap();
            if let Some(cut) = text.find("#[cfg(test)]\nmod tests {") {
                text.truncate(cut);
            }
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The modules a file's code names: `crate::…`, `super::…`, `self::…` paths (use trees
/// included) and, in a file that declares submodules, paths through them. Each resolves to the
/// longest known module prefix.
fn imports(module: &str, text: &str, known: &BTreeSet<&str>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let children: BTreeSet<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub ").unwrap_or(l.trim());
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.to_owned())
        })
        .collect();
    let join = |base: &str, rest: &str| match base.is_empty() {
        true => rest.to_owned(),
        false => format!("{base}::{rest}"),
    };
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let absolute = |path: &[&str]| -> Option<String> {
        let (head, rest) = path.split_first()?;
        let rest = rest.join("::");
        match *head {
            "crate" => Some(rest),
            "super" => Some(join(parent, &rest)),
            "self" => Some(join(module, &rest)),
            // A submodule named by a path (a bare name may be a variable or field).
            child if children.contains(child) && path.len() > 1 => {
                Some(join(module, &path.join("::")))
            }
            _ => None,
        }
    };
    let resolve = |path: &str| {
        let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        while !parts.is_empty() && !known.contains(parts.join("::").as_str()) {
            parts.pop();
        }
        parts.join("::")
    };

    let mut out = BTreeSet::new();
    let tokens = tokenize(&code);
    // Use trees: a stack of prefixes opened by `path::{` (`None` for any other brace).
    let mut prefixes: Vec<Option<Vec<&str>>> = Vec::new();
    // Inline modules (`mod defaults { … }`) open at these brace depths: `super` inside one
    // names the file's own module.
    let mut inline: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if t == "}" {
            prefixes.pop();
            if inline.last() == Some(&prefixes.len()) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        if t == "mod" && tokens.get(i + 2) == Some(&"{") {
            inline.push(prefixes.len());
            prefixes.push(None);
            i += 3;
            continue;
        }
        if !is_ident(t) || (i > 0 && tokens[i - 1] == "::") {
            if t == "{" {
                prefixes.push(None);
            }
            i += 1;
            continue;
        }
        let mut path = vec![t];
        let mut j = i + 1;
        while j + 1 < tokens.len() && tokens[j] == "::" && is_ident(tokens[j + 1]) {
            path.push(tokens[j + 1]);
            j += 2;
        }
        let full: Vec<&str> = match prefixes.last() {
            Some(Some(prefix)) => prefix.iter().copied().chain(path.iter().copied()).collect(),
            _ => path.clone(),
        };
        let opens_tree = tokens.get(j) == Some(&"::") && tokens.get(j + 1) == Some(&"{");
        let glob = tokens.get(j) == Some(&"::") && !opens_tree;
        if opens_tree {
            prefixes.push(Some(full.clone()));
            i = j + 2;
        } else {
            i = j;
        }
        // A bare `super`/`self`/`crate` (as in `pub(super)`) names nothing; `super::*` does.
        let bare = full.len() == 1 && !glob && !opens_tree;
        let in_inline = !inline.is_empty() && matches!(full.first(), Some(&"super"));
        if bare || in_inline {
            continue;
        }
        if let Some(abs) = absolute(&full) {
            let target = resolve(&abs);
            if !target.is_empty() && target != module {
                out.insert(target);
            }
        }
    }
    out
}

fn tokenize(code: &str) -> Vec<&str> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &code[start..i];
            if matches!(word, "r" | "br") && matches!(bytes.get(i), Some(b'#' | b'"')) {
                // A raw string: skip to its closing quote and as many `#`.
                let hashes = bytes[i..].iter().take_while(|&&c| c == b'#').count();
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + hashes + 1;
                i = code[body.min(code.len())..]
                    .find(&close)
                    .map_or(bytes.len(), |at| body + at + close.len());
                continue;
            }
            out.push(word);
        } else if b == b'\'' {
            // A char literal ('x', '\n', '\'') is skipped; a lifetime ('a) is one quote.
            i += match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(b'\\'), _) => {
                    let rest = bytes.get(i + 3..).unwrap_or_default();
                    3 + rest.iter().position(|&c| c == b'\'').map_or(0, |p| p + 1)
                }
                (Some(_), Some(b'\'')) => 3,
                _ => 1,
            };
        } else if b == b':' && bytes.get(i + 1) == Some(&b':') {
            out.push("::");
            i += 2;
        } else if b == b'"' {
            // Skip string literals (paths in messages are not imports).
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            if matches!(b, b'{' | b'}' | b',') {
                out.push(&code[i..i + 1]);
            }
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The binary users run carries no debug info (it was 78 MB with line tables; 24 MB without).
/// Profiling builds get line tables from their own profile.
#[test]
fn the_release_binary_carries_no_debug_info() {
    let manifest = include_str!("../../Cargo.toml");
    let section = |name: &str| -> String {
        let start = manifest
            .find(&format!("[{name}]\n"))
            .unwrap_or_else(|| panic!("no [{name}] in Cargo.toml"));
        let body = &manifest[start + name.len() + 3..];
        body[..body.find("\n[").unwrap_or(body.len())].to_owned()
    };
    let release = section("profile.release");
    assert!(release.contains("debug = false"), "{release}");
    assert!(release.contains("strip = \"debuginfo\""), "{release}");
    let profiling = section("profile.profiling");
    assert!(profiling.contains("inherits = \"release\""), "{profiling}");
    assert!(
        profiling.contains("debug = \"line-tables-only\""),
        "{profiling}"
    );
}
