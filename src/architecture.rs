//! The layering the README's Design section promises, checked on the sources: each module
//! imports only modules below it, and only `connection/` names rumqttc's types.

use std::path::{Path, PathBuf};

/// Top to bottom. A module may use those after it in this list, never those before it.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["commands"],
    &["output"],
    &["profile"],
    &["connection"],
    &["payload", "signals"],
    &["topic", "duration", "secret", "logging"],
    &["exit"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under src/ belongs to; None for the crate root, the binaries'
/// entry points and the test-only modules, which sit above everything.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "bin" | "proptests" | "architecture"))
        .then(|| name.to_string())
}

/// The code of a file without its comments and its `#[cfg(test)]` module (tests may reach
/// anywhere): a rough cut, enough for `use` lines and paths.
fn code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module named after `crate::`, in `crate::a::b` and in `crate::{a, b::c}`.
fn crate_uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or_default();
                if !name.is_empty() {
                    found.push(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn modules_import_only_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let own = rank(&module).unwrap_or_else(|| panic!("{module} is in no layer: add it"));
        let text = std::fs::read_to_string(file).expect("a readable source");
        for used in crate_uses(&code(&text)) {
            let theirs = rank(&used).unwrap_or_else(|| panic!("{used} is in no layer: add it"));
            if used != module && theirs <= own {
                wrong.push(format!("{} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_connection_names_rumqttc() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|f| module_of(&src, f).is_some_and(|m| m != "connection"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("a readable source");
            code(&text).contains("rumqttc::")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "rumqttc named outside connection/: {outside:?}"
    );
}

#[test]
fn the_checker_sees_both_forms_of_use() {
    let uses = crate_uses("use crate::{duration, exit::fail};\nlet x = crate::topic::parse(y);");
    assert_eq!(uses, ["duration", "exit", "topic"]);
    assert_eq!(
        code("a // crate::cli\n#[cfg(test)]\nmod tests { crate::cli }"),
        "a "
    );
}
