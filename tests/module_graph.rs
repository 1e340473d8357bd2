//! The engine's module graph has no cycles, and its layering rules hold.
//!
//! Reads every file under `src/`, finds the top-level module each `crate::` (or `super::`
//! reaching the crate root) path names, and builds the graph of top-level modules (a module's
//! files are `src/<name>.rs` and `src/<name>/**`). Comments and `#[cfg(test)]` modules are left
//! out: unit tests may use anything, the library may not. The test prints the modules in
//! dependency order (leaves first), which is the order in which to read the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Modules each module may use at most (besides the shared leaves in [`LEAVES`]): the
/// sequential reference depends on nothing above it, and nothing below the builder knows it.
const ALLOWED: &[(&str, &[&str])] = &[
    ("sequential", &["evm", "rules", "state_cache"]),
    ("rules", &[]),
    ("state_cache", &[]),
    ("evm", &[]),
];

/// Vocabulary every module may use.
const LEAVES: &[&str] = &["block", "error", "output", "sync", "types", "stress"];

/// Modules that only the builder and the alloy-evm adapter may use (they sit above the engine).
const TOP: &[(&str, &[&str])] = &[("builder", &[]), ("alloy_evm", &[])];

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The module path of a file below `src/`: `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    parts
}

/// `source` without comments, string literals' contents, and `#[cfg(test)]` items.
fn library_code(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        if source[i..].starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if source[i..].starts_with("/*") {
            let end = source[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |end| i + 2 + end + 2);
            i = end;
        } else if source[i..].starts_with("'\"'") {
            i += 3; // the character literal '"'
        } else if source[i..].starts_with("r#\"") {
            i = source[i + 3..]
                .find("\"#")
                .map_or(bytes.len(), |end| i + 3 + end + 2);
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            // Skip the literal (raw strings in this crate hold no `"` that would end it early).
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if source[i..].starts_with("#[cfg(test)]") {
            // Skip the attribute and the item it guards: up to the end of its first block,
            // or to the `;` of a declaration without one (or the `,`/`}` after a field).
            i += "#[cfg(test)]".len();
            let mut depth = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' | b'(' | b'[' => depth += 1,
                    b'}' | b')' | b']' if depth == 0 => break,
                    b',' if depth == 0 => break,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b')' | b']' => depth -= 1,
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let ch = source[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_at(code: &str) -> Option<&str> {
    let end = code
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(code.len());
    (end > 0).then(|| &code[..end])
}

/// The first segment of each path in a `{...}` group starting at `code` (just after `{`).
fn group_heads(code: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expect_head = true;
    for (offset, ch) in code.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expect_head = true,
            c if expect_head && depth == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                heads.push(ident_at(&code[offset..]).unwrap().to_owned());
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

/// The top-level modules that `code`, the library code of a file in module `module`, uses.
fn used_modules(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(['c', 's']) {
        let tail = &rest[at..];
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if boundary && tail.starts_with("crate::") {
            let path = &tail["crate::".len()..];
            if let Some(group) = path.strip_prefix('{') {
                used.extend(group_heads(group));
            } else if let Some(head) = ident_at(path) {
                used.insert(head.to_owned());
            }
        } else if boundary && tail.starts_with("super::") {
            // Climb: each `super` leaves one module; at the root, the next segment is a
            // top-level module.
            let mut depth = module.len();
            let mut path = tail;
            while let Some(next) = path.strip_prefix("super::") {
                depth = depth.saturating_sub(1);
                path = next;
            }
            if depth == 0 {
                if let Some(group) = path.strip_prefix('{') {
                    used.extend(group_heads(group));
                } else if let Some(head) = ident_at(path) {
                    used.insert(head.to_owned());
                }
            }
        }
        rest = &rest[at + 1..];
    }
    used
}

fn engine_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top_level: BTreeSet<String> = files
        .iter()
        .filter_map(|file| {
            module_path(file.strip_prefix(&src).unwrap())
                .first()
                .cloned()
        })
        .collect();
    // Modules that lib.rs compiles for unit tests only.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let test_only: BTreeSet<String> = lib
        .split("#[cfg(test)]")
        .skip(1)
        .filter_map(|after| after.trim_start().strip_prefix("mod "))
        .filter_map(|rest| ident_at(rest).map(str::to_owned))
        .collect();
    // Items lib.rs re-exports (`crate::Block` is a use of `block`).
    let mut reexported: BTreeMap<String, String> = BTreeMap::new();
    for statement in library_code(&lib).split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',').filter_map(|item| ident_at(item.trim())) {
            reexported.insert(item.to_owned(), module.to_owned());
        }
    }
    let mut graph = Graph::new();
    for file in &files {
        let module = module_path(file.strip_prefix(&src).unwrap());
        let Some(top) = module.first() else {
            continue; // lib.rs: the crate root re-exports everything
        };
        if test_only.contains(top) {
            continue;
        }
        let code = library_code(&std::fs::read_to_string(file).unwrap());
        let uses = used_modules(&code, &module)
            .into_iter()
            .map(|used| reexported.get(&used).cloned().unwrap_or(used));
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(uses.filter(|used| used != top && top_level.contains(used)));
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g str) {
        let number = state.index.len();
        state.index.insert(node, number);
        state.low.insert(node, number);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            loop {
                let member = state.stack.pop().unwrap();
                state.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The modules leaves first: each after every module it uses.
fn layers(graph: &Graph) -> Vec<Vec<String>> {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < graph.len() {
        let layer: Vec<String> = graph
            .iter()
            .filter(|(module, uses)| {
                !placed.contains(module.as_str())
                    && uses
                        .iter()
                        .all(|used| placed.contains(used.as_str()) || !graph.contains_key(used))
            })
            .map(|(module, _)| module.clone())
            .collect();
        assert!(!layer.is_empty(), "a cycle is left: {graph:?}");
        placed.extend(
            graph
                .keys()
                .filter(|m| layer.contains(m))
                .map(String::as_str),
        );
        layers.push(layer);
    }
    layers
}

#[test]
fn the_engine_modules_form_no_cycle() {
    let graph = engine_graph();
    assert!(
        graph.len() > 10,
        "the scan found the engine's modules: {graph:?}"
    );
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "module cycles (each group imports itself through the others): {found:?}\ngraph: {graph:#?}"
    );
    for (depth, layer) in layers(&graph).iter().enumerate() {
        println!("layer {depth}: {}", layer.join(", "));
    }
}

#[test]
fn the_layering_rules_hold() {
    let graph = engine_graph();
    for (module, allowed) in ALLOWED {
        let uses = graph
            .get(*module)
            .unwrap_or_else(|| panic!("no module {module}"));
        let extra: Vec<_> = uses
            .iter()
            .filter(|used| !allowed.contains(&used.as_str()) && !LEAVES.contains(&used.as_str()))
            .collect();
        assert!(extra.is_empty(), "`{module}` may not use {extra:?}");
    }
    for (module, _) in TOP {
        let users: Vec<_> = graph
            .iter()
            .filter(|(user, uses)| {
                uses.contains(*module) && !TOP.iter().any(|(top, _)| top == &user.as_str())
            })
            .map(|(user, _)| user)
            .collect();
        assert!(
            users.is_empty(),
            "the engine below `{module}` uses it: {users:?}"
        );
    }
}

#[test]
fn the_scanner_sees_groups_super_paths_and_skips_tests_and_comments() {
    let code = library_code(
        "use crate::{a::X, b::{Y, Z}, c};\n// use crate::commented;\n\
         let s = \"crate::in_string\";\nfn f() { super::super::d::g(); }\n\
         #[cfg(test)]\nmod tests { use crate::only_in_tests; }\n/* crate::block_comment */\n\
         #[cfg(test)]\nfn helper(a: u8, b: crate::test_only::T) -> u8 { a }\n\
         struct S { #[cfg(test)]\n field: crate::test_field::T, kept: crate::e::T }",
    );
    let used = used_modules(&code, &["m".to_owned(), "n".to_owned()]);
    let expected: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(str::to_owned).into();
    assert_eq!(used, expected);
    let mut cyclic = Graph::new();
    cyclic.insert("x".into(), ["y".to_owned()].into());
    cyclic.insert("y".into(), ["x".to_owned()].into());
    cyclic.insert("z".into(), ["x".to_owned()].into());
    assert_eq!(cycles(&cyclic), vec![vec!["x".to_owned(), "y".to_owned()]]);
}
