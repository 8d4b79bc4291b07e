//! Core's modules import one another without cycles: a module that two others need lives
//! where both can depend on it. The graph is read from the sources: each `crate::a::b` (and
//! `super::…`) path outside test code is an edge to the deepest module it names; a module and
//! its own submodules are one unit here (a parent declaring and re-exporting its children is
//! not a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

fn modules(root: &Path, dir: &Path, out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut name: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(name.last().map(String::as_str), Some("mod" | "lib")) {
                name.pop();
            }
            let source = std::fs::read_to_string(&path).unwrap();
            // Test modules may reach anywhere.
            let source = source.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            out.insert(name, source);
        }
    }
}

/// The deepest known module a path names.
fn resolve(modules: &BTreeMap<Module, String>, path: &[String]) -> Option<Module> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m))
}

/// Paths after `prefix` (`crate::`, `super::`), with braces opened one level:
/// `crate::{a::B, c}` gives `a::B` and `c`.
fn paths_after(source: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in source.match_indices(prefix) {
        if source[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &source[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for part in inner.split(',') {
                out.push(segments(part.trim()));
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

fn segments(text: &str) -> Vec<String> {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
    text[..end].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[test]
fn core_modules_import_one_another_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    modules(&root, &root, &mut sources);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in &sources {
        let mut targets = BTreeSet::new();
        for path in paths_after(source, "crate::") {
            targets.extend(resolve(&sources, &path));
        }
        let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
        for path in paths_after(source, "super::") {
            let full: Vec<String> = parent.iter().cloned().chain(path).collect();
            targets.extend(resolve(&sources, &full));
        }
        targets.retain(|t| !related(module, t));
        graph.insert(module.clone(), targets);
    }
    // A cycle exists when some module reaches itself.
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(Module, Vec<Module>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((module, trail)) = stack.pop() {
            for next in &graph[&module] {
                if next == start {
                    let names: Vec<String> = trail.iter().chain([start]).map(|m| m.join("/")).collect();
                    panic!("import cycle in core: {}", names.join(" → "));
                }
                if seen.insert(next.clone()) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(graph.len() > 20, "read {} modules: is the source root right?", graph.len());
}
