//! No import circles in any crate of the workspace, at any level of folders: within each
//! folder (a crate's `src/`, or a module folder such as `src/upstream/`), the direct children
//! (files and sub-folders) reference each other without a cycle, so each part can be read and
//! tested without the ones above it. A reference is a `crate::…`, `super::…` or `self::…`
//! path in code (comments left out), resolved to the deepest module file it names; a child's
//! reference to its parent (`super::Thing` in a module folder) or a parent's to its child is
//! not an edge between siblings. A cycle is reported with its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates checked, by their source folder.
const CRATES: &[&str] = &[
    "src",
    "auth/src",
    "pac/src",
    "tls/src",
    "testsupport/src",
    "fuzz/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path: `upstream/auth.rs` -> [upstream, auth], `upstream/mod.rs` ->
/// [upstream], `lib.rs` -> []. `bin/` targets are crate roots of their own: None.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.trim_end_matches(".rs");
    if !(parts.is_empty() && matches!(stem, "lib" | "main")) && stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

/// The paths a line of code names through `crate::`, `super::` or `self::`, as absolute
/// segment lists (braces expanded one level), resolved against `module` (the file's module
/// path: `super` is its parent, `self` itself).
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut i = 0;
    while i < code.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let preceded = i > 0 && (ident(bytes[i - 1] as char) || bytes[i - 1] == b':');
        let (mut base, skip) = if preceded {
            (None, 1)
        } else if rest.starts_with("crate::") {
            (Some(Vec::new()), "crate::".len())
        } else if rest.starts_with("self::") {
            (Some(module.to_vec()), "self::".len())
        } else if rest.starts_with("super::") {
            let mut b = module.to_vec();
            b.pop();
            (Some(b), "super::".len())
        } else {
            (None, 1)
        };
        i += skip;
        let Some(mut path) = base.take() else {
            continue;
        };
        // more `super::`
        while code[i..].starts_with("super::") {
            path.pop();
            i += "super::".len();
        }
        let tail = &code[i..];
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| {
                        s.trim()
                            .chars()
                            .take_while(|c| ident(*c))
                            .collect::<String>()
                    })
                    .take_while(|s| !s.is_empty())
                    .collect();
                let mut p = path.clone();
                p.extend(segs);
                out.push(p);
            }
            continue;
        }
        let segs: Vec<String> = tail
            .split("::")
            .map(|s| s.chars().take_while(|c| ident(*c)).collect::<String>())
            .take_while(|s| !s.is_empty())
            .collect();
        path.extend(segs);
        out.push(path);
    }
    out
}

/// For each folder (module path), its children's edges: child -> children it references,
/// and for each edge one file that makes it (for the report).
type FolderGraphs = BTreeMap<Vec<String>, BTreeMap<String, BTreeMap<String, String>>>;

fn folder_graphs(crate_dir: &str) -> FolderGraphs {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(crate_dir);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    for f in &files {
        if let Some(m) = module_of(f.strip_prefix(&src).unwrap()) {
            modules.insert(m, f.clone());
        }
    }
    let mut graphs: FolderGraphs = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for r in references(code, module) {
                // the deepest module the reference names
                let target = (0..=r.len())
                    .rev()
                    .map(|n| r[..n].to_vec())
                    .find(|p| modules.contains_key(p))
                    .unwrap_or_default();
                let common = module
                    .iter()
                    .zip(&target)
                    .take_while(|(a, b)| a == b)
                    .count();
                if common == module.len() || common == target.len() {
                    continue; // an ancestor or a descendant: not between siblings
                }
                let folder = module[..common].to_vec();
                let rel = file.strip_prefix(&src).unwrap().display().to_string();
                graphs
                    .entry(folder)
                    .or_default()
                    .entry(module[common].clone())
                    .or_default()
                    .entry(target[common].clone())
                    .or_insert(rel);
            }
        }
    }
    graphs
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, g, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// The groups of nodes that reach each other (strongly connected components of two or more,
/// Tarjan's algorithm): every circle lies within one.
fn tangles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn strong<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                strong(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                t.out.push(group);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            strong(&mut t, v);
        }
    }
    t.out
}

/// Every circle in the workspace, one line each: crate, folder, the circle and a file per edge.
fn circles() -> Vec<String> {
    let mut found = Vec::new();
    for crate_dir in CRATES {
        for (folder, edges) in folder_graphs(crate_dir) {
            let g: BTreeMap<String, BTreeSet<String>> = edges
                .iter()
                .map(|(k, v)| (k.clone(), v.keys().cloned().collect()))
                .collect();
            for group in tangles(&g) {
                let sub: BTreeMap<String, BTreeSet<String>> = group
                    .iter()
                    .map(|n| {
                        (
                            n.clone(),
                            g[n].iter().filter(|d| group.contains(d)).cloned().collect(),
                        )
                    })
                    .collect();
                let cycle = find_cycle(&sub).unwrap_or_default();
                let files: Vec<String> = cycle
                    .windows(2)
                    .map(|w| edges[&w[0]][&w[1]].clone())
                    .collect();
                found.push(format!(
                    "{crate_dir}/{}: {{{}}} entangled, e.g. {} (by {})",
                    folder.join("/"),
                    group.join(", "),
                    cycle.join(" -> "),
                    files.join(", ")
                ));
            }
        }
    }
    found
}

#[test]
fn no_crate_has_an_import_circle_at_any_level_of_folders() {
    let graphs = folder_graphs("src");
    assert!(
        graphs[&Vec::new()].len() > 10,
        "the scan found too few modules: {graphs:?}"
    );
    let found = circles();
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap().join(" -> "), "a -> b -> c -> a");
}

#[test]
fn references_resolve_crate_super_self_and_groups() {
    let m = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let file = m(&["upstream", "auth"]);
    assert_eq!(
        references("use super::{dialer::Dialer, pool::Pooled};", &file),
        vec![
            m(&["upstream", "dialer", "Dialer"]),
            m(&["upstream", "pool", "Pooled"])
        ]
    );
    assert_eq!(
        references("let x = crate::error::ProxyError::new();", &file),
        vec![m(&["error", "ProxyError", "new"])]
    );
    assert_eq!(
        references("use super::super::app::App;", &file),
        vec![m(&["app", "App"])]
    );
    assert_eq!(
        references("mycrate::x; not_super::y", &file),
        Vec::<Vec<String>>::new()
    );
}

#[test]
fn config_imports_no_runtime_module() {
    let graphs = folder_graphs("src");
    let top = &graphs[&Vec::new()];
    let runtime = [
        "autoproxy",
        "route",
        "router",
        "wpad",
        "upstream",
        "app",
        "proxy",
    ];
    let config: BTreeSet<&String> = top
        .get("config")
        .map(|e| e.keys().collect())
        .unwrap_or_default();
    for r in runtime {
        assert!(
            !config.iter().any(|c| *c == r),
            "config imports {r}: {config:?}"
        );
    }
}
