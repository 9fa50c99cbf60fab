//! Embeds every `runbooks/*.md` in the binary: adding a runbook file needs no code change.

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=runbooks");
    // Read at run time: a build script compiled for another checkout must not embed its files.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = std::path::Path::new(&manifest).join("runbooks");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut out = String::from(
        "/// Runbooks embedded at build time: (name, markdown).\npub const EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for p in entries {
        println!("cargo:rerun-if-changed={}", p.display());
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({stem:?}, include_str!({:?})),",
            p.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("runbooks.rs");
    std::fs::write(dest, out).unwrap_or_else(|e| panic!("writing the embedded runbook list: {e}"));
}
