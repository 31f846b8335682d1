//! The layering `docs/architecture.md` states holds in `src/`: each top-level module imports
//! (`crate::X`) only modules listed before it in the code map, so there is no import circle.

use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The module order of the doc's code map: "- `name/`" or "- `name.rs`" items.
fn documented_order() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let map = doc
        .split("## Code map")
        .nth(1)
        .expect("a Code map section")
        .split("\n## ")
        .next()
        .unwrap();
    map.lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(|n| n.trim_end_matches('/').trim_end_matches(".rs").to_string())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the top-level modules its code names as `crate::X`.
fn imports() -> BTreeMap<String, Vec<String>> {
    let src = root().join("src");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else {
            files.push(p.clone());
        }
        let mut deps = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + 7..];
                let m: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !m.is_empty() && m != name && !deps.contains(&m) {
                    deps.push(m);
                }
            }
        }
        deps.sort();
        out.insert(name, deps);
    }
    out
}

#[test]
fn modules_import_only_modules_below_them_in_the_documented_order() {
    let order = documented_order();
    let graph = imports();
    for m in graph.keys() {
        assert!(
            order.contains(m),
            "src/{m} is not in docs/architecture.md's code map ({order:?})"
        );
    }
    let rank = |m: &str| order.iter().position(|o| o == m).unwrap();
    let mut violations = Vec::new();
    for (m, deps) in &graph {
        for d in deps {
            if graph.contains_key(d) && rank(d) > rank(m) {
                violations.push(format!("{m} imports {d}, which the code map lists after it (a layer may only import the ones before it)"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}\ngraph: {graph:#?}");
}
