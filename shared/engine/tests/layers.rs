//! The engine's modules form layers: no module reaches, directly or through others, back
//! to itself (a port never depends on a use case, a run frame on a deployment).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The engine modules each module's code (comments and unit tests left out) names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // A module is `name.rs`, or a folder `name/` with its `mod.rs`; a folder's files all
    // count as the module's code.
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if e.path().is_dir() {
                e.path().join("mod.rs").exists().then_some(name)
            } else {
                name.strip_suffix(".rs").map(str::to_string)
            }
        })
        .filter(|m| m != "lib" && m != "store_contract")
        .collect();
    let mut out = BTreeMap::new();
    // Only the code before a file's unit tests counts, without its comments.
    let code_of = |path: &Path| -> String {
        let text = std::fs::read_to_string(path).unwrap();
        text.split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for m in &modules {
        let mut files = vec![src.join(format!("{m}.rs"))];
        let sub = src.join(m);
        if sub.is_dir() {
            files.extend(std::fs::read_dir(sub).unwrap().map(|e| e.unwrap().path()));
        }
        let code: String = files
            .iter()
            .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "rs"))
            .map(|f| code_of(f))
            .collect::<Vec<_>>()
            .join("\n");
        let deps: BTreeSet<String> = code
            .match_indices("crate::")
            .map(|(i, _)| {
                code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect::<String>()
            })
            .filter(|d| d != m && modules.contains(d))
            .collect();
        out.insert(m.clone(), deps);
    }
    out
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let deps = dependencies();
    assert!(deps.len() > 10, "the modules were found: {deps:?}");
    for start in deps.keys() {
        let mut stack = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            for next in &deps[path.last().unwrap()] {
                assert!(
                    next != start,
                    "import cycle: {} -> {next}",
                    path.join(" -> ")
                );
                if !path.contains(next) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push(p);
                }
            }
        }
    }
}

#[test]
fn ports_and_stores_depend_on_no_use_case() {
    let deps = dependencies();
    let use_cases = [
        "run", "sweep", "planner", "worker", "frame", "pass", "retry",
    ];
    for port in ["ports", "store", "chunk", "objects", "report"] {
        for u in use_cases {
            assert!(
                !deps[port].contains(u),
                "{port} depends on the use case {u}"
            );
        }
    }
}
