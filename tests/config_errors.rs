//! Every config under `tests/fixtures/config/invalid/` must fail with exactly the messages in its
//! sibling `NAME.expected`; every config under `valid/` (and the repo's `config.example.toml`)
//! must load, with exactly the warnings in `NAME.warnings` (none when that file is absent).
//! Adding a case is adding files; no code.
//!
//! Paths in messages are shown relative to the fixture folder. To (re)write the expectation
//! files after a deliberate change, run with `OPSDECK_BLESS=1` and review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use opsdeck::config::{Config, ConfigError};

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind)
}

fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Messages as a user sees them, with the fixture folder cut from every path.
fn render(problems: &[ConfigError], dir: &Path) -> String {
    let prefix = format!("{}/", dir.display());
    problems
        .iter()
        .map(|p| p.to_string().replace(&prefix, "") + "\n")
        .collect()
}

/// Compares against the expectation file, or writes it when blessing. Returns a failure report.
fn check_expectation(actual: &str, expected_path: &Path) -> Option<String> {
    if std::env::var_os("OPSDECK_BLESS").is_some() {
        if actual.is_empty() {
            let _ = fs::remove_file(expected_path);
        } else {
            fs::write(expected_path, actual).expect("write expectation");
        }
        return None;
    }
    let expected = fs::read_to_string(expected_path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            expected_path.display()
        )
    })
}

#[test]
fn invalid_configs_fail_with_the_expected_messages() {
    let dir = fixtures("invalid");
    let files = tomls(&dir);
    assert!(files.len() >= 12, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let expected_path = file.with_extension("expected");
        match Config::load(file) {
            Ok(loaded) => failures.push(format!(
                "{} loaded, but should have failed (warnings: {:?})",
                file.display(),
                loaded.warnings
            )),
            Err(errors) => {
                if std::env::var_os("OPSDECK_BLESS").is_none() && !expected_path.exists() {
                    failures.push(format!("{} has no .expected file", file.display()));
                    continue;
                }
                failures.extend(check_expectation(&render(&errors, &dir), &expected_path));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn valid_configs_load_with_only_the_expected_warnings() {
    let dir = fixtures("valid");
    let mut files = tomls(&dir);
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"));
    let mut failures = Vec::new();
    for file in &files {
        let folder = file.parent().expect("fixture has a folder");
        match Config::load(file) {
            Ok(loaded) => {
                let warnings_path = file.with_extension("warnings");
                failures.extend(check_expectation(
                    &render(&loaded.warnings, folder),
                    &warnings_path,
                ));
            }
            Err(errors) => failures.push(format!(
                "{} should load, but:\n{}",
                file.display(),
                render(&errors, folder)
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    let errors = Config::load(&path).expect_err("missing file");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, path);
    assert_eq!(errors[0].line, None);
    assert!(
        errors[0].to_string().starts_with(&format!(
            "{}: cannot read the config file: it does not exist",
            path.display()
        )),
        "{}",
        errors[0]
    );
}

#[test]
fn example_config_describes_the_fleet() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path).expect("example loads").config;
    let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["staging", "production"]);
    let production = config.cluster("production").expect("production");
    assert!(production.protected);
    assert_eq!(production.context.as_deref(), Some("default"));
    assert_eq!(
        production.env.get("BACKUP_DIR").map(String::as_str),
        Some("/goapps-backup/postgres")
    );
    assert!(!config.cluster("staging").expect("staging").protected);
    assert!(
        config
            .forwards
            .iter()
            .any(|f| f.cluster == "production" && f.name == "grafana")
    );
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    fs::write(
        &path,
        "[[cluster]]\nname = \"staging\"\nkubeconfig = \"kube/staging.yaml\"\n",
    )
    .expect("write config");
    let config = Config::load(&path).expect("loads").config;
    assert_eq!(
        config.clusters[0].kubeconfig.as_deref(),
        Some(dir.path().join("kube/staging.yaml").as_path())
    );
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
}

#[cfg(unix)]
#[test]
fn group_readable_secret_file_is_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("pgbouncer.pw");
    fs::write(&secret, "s3cret\n").expect("write secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).expect("chmod");
    let path = dir.path().join("config.toml");
    fs::write(
        &path,
        "[[cluster]]\nname = \"production\"\n[cluster.pgbouncer]\naddress = \"127.0.0.1:6432\"\npassword_file = \"pgbouncer.pw\"\n",
    )
    .expect("write config");
    let loaded = Config::load(&path).expect("loads");
    let warnings = render(&loaded.warnings, dir.path());
    assert!(
        warnings.contains("config.toml:5: cluster[0].pgbouncer.password_file: pgbouncer.pw is readable by group or others (mode 0640); run chmod 600 pgbouncer.pw"),
        "{warnings}"
    );
    assert!(!warnings.contains("s3cret"));
    // The raw table now holds the resolved path, so the feature can read it from anywhere.
    let table = loaded.config.clusters[0].pgbouncer.as_ref().expect("table");
    assert_eq!(
        table.get("password_file").and_then(|v| v.as_str()),
        Some(secret.to_string_lossy().as_ref())
    );

    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let loaded = Config::load(&path).expect("loads");
    assert!(
        !render(&loaded.warnings, dir.path()).contains("readable by group"),
        "{:?}",
        loaded.warnings
    );
}
