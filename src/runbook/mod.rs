//! Runbooks: markdown files whose shell fences are steps, run one by one against one chosen
//! cluster with a confirmation each, a per-cluster lock and an audit record (runbooks.md).

pub mod audit;
pub mod driver;
pub mod exec;
pub mod lint;
pub mod lock;
pub mod parse;

pub mod run;
pub mod session;
pub mod vars;

use std::path::Path;
use std::sync::Arc;

pub use parse::{Runbook, Step};

include!(concat!(env!("OUT_DIR"), "/runbooks.rs"));

/// How an embedded runbook is named in messages: its path in the repository.
pub fn embedded_path(name: &str) -> String {
    format!("runbooks/{name}.md")
}

/// Where a runbook came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    File(std::path::PathBuf),
}

/// Every runbook: the embedded ones, overridden or extended by `*.md` in `dir`.
/// A file that does not parse is reported, not fatal.
pub fn catalog(dir: Option<&Path>) -> (Vec<(Arc<Runbook>, Origin)>, Vec<String>) {
    let mut problems = Vec::new();
    let mut out: Vec<(Arc<Runbook>, Origin)> = Vec::new();
    for (name, text) in EMBEDDED {
        match parse::parse_file(name, &embedded_path(name), text) {
            Ok(rb) => out.push((Arc::new(rb), Origin::Embedded)),
            Err(errors) => problems.extend(
                errors
                    .iter()
                    .map(|e| format!("embedded runbook {e}; {name} is not loaded")),
            ),
        }
    }
    if let Some(dir) = dir {
        match std::fs::read_dir(dir) {
            Err(e) => problems.push(format!("runbooks_dir {}: {e}", dir.display())),
            Ok(rd) => {
                let mut paths: Vec<_> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "md"))
                    .collect();
                paths.sort();
                for p in paths {
                    let name = p
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default()
                        .to_string();
                    let file = p.display().to_string();
                    let parsed = std::fs::read_to_string(&p)
                        .map_err(|e| vec![format!("{file}: {e}")])
                        .and_then(|t| {
                            parse::parse_file(&name, &file, &t)
                                .map_err(|errors| errors.iter().map(ToString::to_string).collect())
                        });
                    match parsed {
                        Ok(rb) => {
                            out.retain(|(r, _)| r.name != name);
                            out.push((Arc::new(rb), Origin::File(p)));
                        }
                        // A runbook with an error is not loaded at all (a mistyped attribute
                        // such as `destuctive` must not run as a plain step).
                        Err(errors) => problems.extend(
                            errors
                                .into_iter()
                                .map(|e| format!("{e}; runbook {name} is not loaded")),
                        ),
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    (out, problems)
}
