//! Choosing a script's Python runtime from its imports, read statically by the host.
//!
//! `kvrun run train.py` runs a script in the scientific runtime when the script, or a local
//! module it imports (transitively, in the directories its views show), imports a package
//! that only that runtime has ([`SCIENTIFIC_ONLY`]). The host reads `import` and `from`
//! statements as text; nothing is executed and no Python of the host runs. Imports made at
//! run time (`importlib.import_module`, `__import__`) are not seen:
//! `--python-runtime standard|scientific` decides explicitly.

use super::Script;
use crate::error::Result;
use crate::sandbox::PythonKind;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Top-level packages only the scientific runtime has (compiled in, or pure Python shipped
/// with it): a script importing one needs it.
pub const SCIENTIFIC_ONLY: &[&str] = &[
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "statsmodels",
    "matplotlib",
    "mpl_toolkits",
    "pylab",
    "seaborn",
    "PIL",
    "lxml",
    "kiwisolver",
    "contourpy",
    "yaml",
    "regex",
    "patsy",
    "formulaic",
    "sympy",
    "mpmath",
    "networkx",
    "joblib",
    "threadpoolctl",
    "openpyxl",
    "xlsxwriter",
    "xlrd",
    "pypdf",
    "bs4",
    "html5lib",
    "defusedxml",
    "xmltodict",
    "tomli_w",
    "jinja2",
    "markupsafe",
    "tabulate",
    "charset_normalizer",
    "dateutil",
    "tzdata",
    "fontTools",
    "cycler",
    "pyparsing",
    "reportlab",
    "narwhals",
    "cloudpickle",
    "toolz",
    "tlz",
    "tqdm",
    "wrapt",
];

/// How many local modules the scan reads at most.
const MAX_FILES: usize = 2000;

/// The runtime `script` needs: [`PythonKind::Scientific`] when it or a local module it
/// imports imports a package in [`SCIENTIFIC_ONLY`] that no local module shadows.
pub fn runtime_for(script: &Script) -> Result<PythonKind> {
    let (_, dir) = script.location()?;
    let roots: Vec<PathBuf> = std::iter::once(dir)
        .chain(script.python_paths.iter().cloned())
        .chain(script.site_packages.iter().cloned())
        .collect();
    let mut seen = HashSet::new();
    let mut queue = vec![script.path.clone()];
    while let Some(file) = queue.pop() {
        if seen.len() >= MAX_FILES || !seen.insert(file.clone()) {
            continue;
        }
        let Ok(source) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (level, module) in imported_modules(&source) {
            let relative_root;
            let search: &[PathBuf] = if level == 0 {
                &roots
            } else {
                let mut dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                for _ in 1..level {
                    dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
                }
                relative_root = [dir];
                &relative_root
            };
            match local_module(search, &module) {
                None if level > 0 => {}
                Some(local) => queue.extend(local),
                None => {
                    let top = module.split('.').next().unwrap_or_default();
                    if SCIENTIFIC_ONLY.contains(&top) {
                        return Ok(PythonKind::Scientific);
                    }
                }
            }
        }
    }
    Ok(PythonKind::Standard)
}

/// The files of the local module `module` (and of the packages on its way), if it is one: a
/// `.py` file or a package directory under one of `roots`, with no hidden component.
fn local_module(roots: &[PathBuf], module: &str) -> Option<Vec<PathBuf>> {
    let parts: Vec<&str> = module.split('.').collect();
    if parts.iter().any(|p| p.is_empty() || p.starts_with('.')) {
        return None;
    }
    roots.iter().find_map(|root| {
        let mut files = Vec::new();
        let mut at = root.clone();
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let package = at.join(part);
            if package.join("__init__.py").is_file() {
                files.push(package.join("__init__.py"));
                at = package;
            } else if last && package.with_extension("py").is_file() {
                files.push(package.with_extension("py"));
            } else if index > 0 {
                // A submodule that is not a file (a name imported from a package): the
                // package's own files were read.
                return Some(files);
            } else {
                return None;
            }
        }
        Some(files)
    })
}

/// The modules `source` imports, with their level (0 for `import a.b, c as d` and
/// `from a.b import x`; the number of dots for a relative import: `from . import x` →
/// `(1, x)`, `from ..m import y` → `(2, m)`). A name imported from a module may be a
/// submodule, so `from a import b` gives `a` and `a.b`.
pub fn imported_modules(source: &str) -> Vec<(usize, String)> {
    let mut modules = Vec::new();
    for statement in statements(source) {
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.first().copied() {
            Some("import") => {
                let rest = statement.trim_start()["import".len()..].to_string();
                for item in rest.split(',') {
                    if let Some(name) = item.split_whitespace().next() {
                        if is_dotted_name(name) {
                            modules.push((0, name.to_string()));
                        }
                    }
                }
            }
            Some("from") if words.len() >= 4 && words[2] == "import" => {
                let from = words[1];
                let relative = from.trim_start_matches('.');
                let level = from.len() - relative.len();
                let names: Vec<&str> = statement
                    .split_once(" import ")
                    .map_or("", |(_, n)| n)
                    .trim_matches(|c| c == '(' || c == ')' || c == ' ')
                    .split(',')
                    .filter_map(|item| item.split_whitespace().next())
                    .filter(|name| is_dotted_name(name))
                    .collect();
                if relative.is_empty() {
                    modules.extend(names.iter().map(|name| (level, name.to_string())));
                } else if is_dotted_name(relative) {
                    // `from a import b` may import the submodule `a.b`.
                    modules.push((level, relative.to_string()));
                    modules.extend(
                        names
                            .iter()
                            .map(|name| (level, format!("{relative}.{name}"))),
                    );
                }
            }
            _ => {}
        }
    }
    modules
}

fn is_dotted_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c == '_' || c.is_alphanumeric())
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// The logical lines of `source` that start a statement, joined over backslashes and open
/// parentheses, outside strings and comments; `;`-separated statements apart.
fn statements(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = source.chars().peekable();
    let mut in_string: Option<(char, bool)> = None;
    while let Some(c) = chars.next() {
        if let Some((quote, triple)) = in_string {
            if c == '\\' {
                chars.next();
            } else if c == quote {
                if !triple {
                    in_string = None;
                } else if chars.peek() == Some(&quote) {
                    chars.next();
                    if chars.peek() == Some(&quote) {
                        chars.next();
                        in_string = None;
                    }
                }
            } else if c == '\n' && !triple {
                in_string = None;
            }
            continue;
        }
        match c {
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '\'' | '"' => {
                let triple = chars.peek() == Some(&c) && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.peek() == Some(&c)
                };
                if triple {
                    chars.next();
                    chars.next();
                }
                in_string = Some((c, triple));
                current.push_str(" \"\" ");
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                current.push(' ');
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            '\n' if depth > 0 => current.push(' '),
            '\n' | ';' => out.push(std::mem::take(&mut current)),
            ':' if depth == 0 => {
                // `try: import numpy` and `if x: import y` put a statement after a colon.
                out.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_in_their_forms() {
        let source = r#"
import os, numpy as np
from pandas import (DataFrame,
    read_csv)
from sklearn.linear_model import LinearRegression  # a comment: import torch
try: import scipy.stats
except ImportError: pass
def f():
    import matplotlib.pyplot as plt; import json
x = "import yaml"
y = """
import statsmodels
"""
from . import helpers
from .lib.util import thing
import a.b \
    as c
"#;
        let read = imported_modules(source);
        let read: Vec<(usize, &str)> = read.iter().map(|(l, m)| (*l, m.as_str())).collect();
        assert_eq!(
            read,
            [
                (0, "os"),
                (0, "numpy"),
                (0, "pandas"),
                (0, "pandas.DataFrame"),
                (0, "pandas.read_csv"),
                (0, "sklearn.linear_model"),
                (0, "sklearn.linear_model.LinearRegression"),
                (0, "scipy.stats"),
                (0, "matplotlib.pyplot"),
                (0, "json"),
                (1, "helpers"),
                (1, "lib.util"),
                (1, "lib.util.thing"),
                (0, "a.b")
            ]
        );
    }

    #[test]
    fn the_runtime_follows_local_modules_and_lets_them_shadow() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("plain.py", "import json\nimport helpers\n");
        write("helpers.py", "import os\n");
        write("deep.py", "from pkg import features\n");
        write("pkg/__init__.py", "");
        write("pkg/features.py", "from .model import fit\n");
        write("pkg/model.py", "import sklearn.linear_model\n");
        write("shadow.py", "import yaml\n");
        write("yaml.py", "print('my own yaml')\n");
        write(
            "dynamic.py",
            "import importlib\nimportlib.import_module('numpy')\n",
        );
        let kind = |name: &str| runtime_for(&Script::new(dir.path().join(name))).unwrap();
        assert_eq!(kind("plain.py"), PythonKind::Standard);
        assert_eq!(kind("deep.py"), PythonKind::Scientific);
        assert_eq!(kind("shadow.py"), PythonKind::Standard);
        assert_eq!(kind("dynamic.py"), PythonKind::Standard);
    }
}
