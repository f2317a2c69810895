//! Compiles SAGE's migrations (`migrations/postgres`, `migrations/sqlite` at the workspace
//! root) into the crate. Cargo reruns this whenever a file in those directories changes, so
//! the embedded set can never go stale.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut out = String::new();
    for (constant, dir) in [("POSTGRES", "postgres"), ("SQLITE", "sqlite")] {
        let dir = root.join(dir).canonicalize().expect("migrations directory exists");
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("readable migrations directory")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            // schema.sql is the snapshot for reviewers, not a migration.
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
            })
            .collect();
        files.sort();
        writeln!(out, "pub(crate) const {constant}: &[(&str, &str)] = &[").unwrap();
        for path in files {
            let name = path.file_name().unwrap().to_str().expect("UTF-8 file name");
            writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string()).unwrap();
        }
        writeln!(out, "];").unwrap();
        let snapshot = dir.join("schema.json");
        if snapshot.is_file() {
            writeln!(
                out,
                "pub(crate) const {constant}_SNAPSHOT: Option<&str> = Some(include_str!({:?}));",
                snapshot.display().to_string()
            )
            .unwrap();
        } else {
            writeln!(out, "pub(crate) const {constant}_SNAPSHOT: Option<&str> = None;").unwrap();
        }
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_migrations.rs");
    std::fs::write(dest, out).unwrap();
}
