//! Checks on the per-cluster feature tables (`[cluster.pgbouncer]`, `.redis`, `.backups`,
//! `.argocd`; issues 4-6). The tables stay raw `toml::Table`s for their features, but a wrong
//! type, an inline secret, a bad Endpoint or duration is caught now, at config-check time.

use std::time::Duration;

use super::duration::parse_duration;
use super::endpoint::{
    ENDPOINT_KEYS, Endpoint, SECRET_SUFFIXES, SecretRef, check_namespace, check_object_name,
    inline_secret_message,
};
use super::source_map::{article, join_index, join_key};
use super::validate::Diagnostics;

/// What a key of a feature table holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Duration,
    /// A local file path; relative ones are resolved against the config file's folder.
    Path,
    /// `namespace/kind/name` of a Kubernetes workload.
    Workload,
    /// The base of `X_env | X_file | X_secret`.
    Secret,
    /// `address | url | service`.
    Endpoint,
    /// `[[cluster.backups.source]]`.
    Sources,
    /// A sub-table checked on its own (`[cluster.pgbouncer.postgres]`).
    Table,
}

const PGBOUNCER: &[(&str, Kind)] = &[
    ("address", Kind::Endpoint),
    ("service", Kind::Endpoint),
    ("user", Kind::Str),
    ("password", Kind::Secret),
    ("poll", Kind::Duration),
    ("wait_warn", Kind::Duration),
    ("wait_crit", Kind::Duration),
    ("postgres", Kind::Table),
];
/// `[cluster.pgbouncer.postgres]`: the Postgres behind PgBouncer, for `pg_stat_activity`.
const PGBOUNCER_POSTGRES: &[(&str, Kind)] = &[
    ("address", Kind::Endpoint),
    ("service", Kind::Endpoint),
    ("user", Kind::Str),
    ("password", Kind::Secret),
    ("database", Kind::Str),
];
const REDIS: &[(&str, Kind)] = &[
    ("address", Kind::Endpoint),
    ("service", Kind::Endpoint),
    ("user", Kind::Str),
    ("password", Kind::Secret),
    ("tls", Kind::Bool),
    ("ca_file", Kind::Path),
    ("workload", Kind::Workload),
    ("poll", Kind::Duration),
];
const BACKUPS: &[(&str, Kind)] = &[
    ("max_age", Kind::Duration),
    ("retention", Kind::Duration),
    ("missing_after", Kind::Duration),
    ("poll", Kind::Duration),
    ("source", Kind::Sources),
];
const BACKUP_SOURCE: &[(&str, Kind)] = &[
    ("kind", Kind::Str),
    ("name", Kind::Str),
    ("namespace", Kind::Str),
    ("prefix", Kind::Str),
    ("selector", Kind::Str),
    ("url", Kind::Endpoint),
    ("service", Kind::Endpoint),
    ("bucket", Kind::Str),
    ("region", Kind::Str),
    ("access_key", Kind::Secret),
    ("secret_key", Kind::Secret),
    ("path", Kind::Str),
    ("pattern", Kind::Str),
    ("host", Kind::Str),
    ("max_age", Kind::Duration),
    ("mirror", Kind::Bool),
];
const ARGOCD: &[(&str, Kind)] = &[
    ("url", Kind::Endpoint),
    ("service", Kind::Endpoint),
    ("ca_file", Kind::Path),
    ("insecure_skip_verify", Kind::Bool),
    ("base_path", Kind::Str),
    ("tls", Kind::Bool),
    ("ci_sync", Kind::Str),
    ("token", Kind::Secret),
    ("user", Kind::Str),
    ("password", Kind::Secret),
    ("poll", Kind::Duration),
];

/// Features whose code exists; the others get a "not built yet" warning so nobody expects a
/// panel that is not there. Add a feature here when it lands.
const BUILT: &[&str] = &["pgbouncer", "redis", "argocd", "backups"];

pub(crate) fn check(feature: &str, table: &mut toml::Table, at: &str, diag: &mut Diagnostics<'_>) {
    let (spec, title) = match feature {
        "pgbouncer" => (PGBOUNCER, "PgBouncer panel"),
        "redis" => (REDIS, "Redis panel"),
        "backups" => (BACKUPS, "Backups panel"),
        _ => (ARGOCD, "ArgoCD panel"),
    };
    if !BUILT.contains(&feature) {
        diag.warn(
            at,
            format!("accepted and checked, but the {title} is not built yet, so this table has no effect"),
        );
    }
    let endpoint_hint = match feature {
        "pgbouncer" => {
            "PgBouncer speaks the Postgres protocol: use address = \"host:port\" or service = \"database/pgbouncer:5432\""
        }
        "redis" => {
            "Redis is not an HTTP server: use address = \"host:port\" or service = \"database/redis:6379\""
        }
        _ => {
            "ArgoCD is an HTTP server: use url = \"http(s)://...\" or service = \"argocd/argocd-server:80\" (plain HTTP on 80, tls = true for HTTPS)"
        }
    };
    let endpoint = check_keys(table, spec, at, endpoint_hint, diag);
    if feature != "backups" && endpoint == EndpointCheck::Absent {
        diag.error(at, format!("needs an endpoint. {endpoint_hint}"));
    }
    if feature == "argocd" {
        check_argocd(table, at, diag);
    }
    if feature == "pgbouncer"
        && let Some(pg) = table
            .get_mut("postgres")
            .and_then(toml::Value::as_table_mut)
    {
        let at = join_key(at, "postgres");
        let hint = "Postgres speaks its own protocol: use address = \"host:port\" or service = \"database/postgres:5432\"";
        if check_keys(pg, PGBOUNCER_POSTGRES, &at, hint, diag) == EndpointCheck::Absent {
            diag.error(&at, format!("needs an endpoint. {hint}"));
        }
    }
    if feature == "pgbouncer" {
        let warn = duration_of(table, "wait_warn");
        let crit = duration_of(table, "wait_crit");
        if let (Some(warn), Some(crit)) = (warn, crit)
            && warn > crit
        {
            diag.error(
                &join_key(at, "wait_warn"),
                "wait_warn is longer than wait_crit; the warning threshold must not exceed the critical one",
            );
        }
    }
    if feature == "backups" {
        check_backup_sources(table, at, diag);
    }
}

/// Checks each key against the spec, resolves paths, and reads the endpoint and secrets.
/// Whether a table's endpoint was given, and if so whether it was usable.
#[derive(Debug, PartialEq, Eq)]
enum EndpointCheck {
    Absent,
    /// Reported already.
    Invalid,
    Valid,
}

fn check_keys(
    table: &mut toml::Table,
    spec: &[(&str, Kind)],
    at: &str,
    endpoint_hint: &str,
    diag: &mut Diagnostics<'_>,
) -> EndpointCheck {
    let endpoint_keys: Vec<&str> = spec
        .iter()
        .filter(|(_, k)| *k == Kind::Endpoint)
        .map(|(n, _)| *n)
        .collect();
    let secret_bases: Vec<&str> = spec
        .iter()
        .filter(|(_, k)| *k == Kind::Secret)
        .map(|(n, _)| *n)
        .collect();
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in &keys {
        let path = join_key(at, key);
        let Some(value) = table.get(key) else {
            continue;
        };
        let kind = spec.iter().find(|(n, _)| n == key).map(|(_, k)| *k);
        match kind {
            Some(Kind::Str) => expect_type(value, "string", "a string", &path, diag),
            Some(Kind::Bool) => {
                expect_type(value, "boolean", "a boolean (true or false)", &path, diag)
            }
            Some(Kind::Duration) => match value.as_str() {
                Some(s) => {
                    if let Err(m) = parse_duration(s) {
                        diag.error(&path, m);
                    }
                }
                None => diag.error(
                    &path,
                    format!(
                        "expected a duration string such as \"2s\" or \"8h30m\", found {}",
                        article(value.type_str())
                    ),
                ),
            },
            Some(Kind::Path) => match value.as_str() {
                Some(s) if !s.trim().is_empty() => {
                    let resolved = diag.resolve_path(s);
                    if !resolved.is_file() {
                        diag.warn(&path, format!("{} does not exist", resolved.display()));
                    }
                    let resolved = resolved.to_string_lossy().into_owned();
                    table.insert(key.clone(), toml::Value::String(resolved));
                }
                _ => diag.error(&path, "expected a path to a file"),
            },
            Some(Kind::Workload) => match value.as_str() {
                Some(s) => {
                    if let Err(m) = check_workload(s) {
                        diag.error(&path, m);
                    }
                }
                None => expect_type(value, "string", "a string", &path, diag),
            },
            // Read as a whole below.
            Some(Kind::Secret) | Some(Kind::Endpoint) | Some(Kind::Sources) => {}
            Some(Kind::Table) => {
                if !value.is_table() {
                    diag.error(&path, format!("expected a table ([{path}])"));
                }
            }
            None => {
                let derived = SECRET_SUFFIXES.iter().any(|suffix| {
                    key.strip_suffix(suffix)
                        .is_some_and(|base| secret_bases.contains(&base))
                });
                if derived {
                    continue;
                }
                if ENDPOINT_KEYS.contains(&key.as_str()) && !endpoint_keys.is_empty() {
                    // Read with the endpoint below, which says which kinds fit here.
                    continue;
                } else if looks_like_inline_secret(key) {
                    diag.error(&path, inline_secret_message(key));
                } else {
                    diag.warn(
                        &path,
                        format!(
                            "unknown key, ignored; known keys here are: {}",
                            valid_keys(spec).join(", ")
                        ),
                    );
                }
            }
        }
    }

    let endpoint = if endpoint_keys.is_empty() {
        EndpointCheck::Absent
    } else {
        match Endpoint::from_table_keyed(table) {
            Ok(None) => EndpointCheck::Absent,
            Ok(Some(e)) => {
                let key = match e {
                    Endpoint::Address { .. } => "address",
                    Endpoint::Url(_) => "url",
                    Endpoint::Service { .. } => "service",
                };
                if endpoint_keys.contains(&key) {
                    EndpointCheck::Valid
                } else {
                    diag.error(
                        &join_key(at, key),
                        format!("not accepted here. {endpoint_hint}"),
                    );
                    EndpointCheck::Invalid
                }
            }
            Err(e) => {
                diag.error(&join_key(at, &e.key), e.message);
                EndpointCheck::Invalid
            }
        }
    };
    for base in secret_bases {
        match SecretRef::from_table_keyed(table, base) {
            Ok(Some(SecretRef::File(file))) => {
                let key = format!("{base}_file");
                let resolved = diag.resolve_path(&file.to_string_lossy());
                check_secret_file(&resolved, &join_key(at, &key), diag);
                let resolved = resolved.to_string_lossy().into_owned();
                table.insert(key, toml::Value::String(resolved));
            }
            Ok(_) => {}
            Err(e) => diag.error(&join_key(at, &e.key), e.message),
        }
    }
    endpoint
}

fn valid_keys(spec: &[(&str, Kind)]) -> Vec<String> {
    spec.iter()
        .flat_map(|(name, kind)| {
            if *kind == Kind::Secret {
                SECRET_SUFFIXES
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect()
            } else {
                vec![name.to_string()]
            }
        })
        .collect()
}

fn expect_type(
    value: &toml::Value,
    kind: &str,
    expected: &str,
    path: &str,
    diag: &mut Diagnostics<'_>,
) {
    if value.type_str() != kind {
        diag.error(
            path,
            format!("expected {expected}, found {}", article(value.type_str())),
        );
    }
}

fn looks_like_inline_secret(key: &str) -> bool {
    [
        "password",
        "token",
        "secret",
        "secret_key",
        "access_key",
        "api_key",
    ]
    .iter()
    .any(|w| key == *w || key.ends_with(&format!("_{w}")))
}

fn duration_of(table: &toml::Table, key: &str) -> Option<Duration> {
    table
        .get(key)?
        .as_str()
        .and_then(|s| parse_duration(s).ok())
}

/// `namespace/deployment|statefulset|daemonset/name`.
fn check_workload(s: &str) -> Result<(), String> {
    let hint = "expected namespace/kind/name with kind deployment, statefulset or daemonset, e.g. \"database/deployment/redis\"";
    let parts: Vec<&str> = s.split('/').collect();
    let [namespace, kind, name] = parts.as_slice() else {
        return Err(format!("{hint}; found {s:?}"));
    };
    if !matches!(*kind, "deployment" | "statefulset" | "daemonset") {
        return Err(format!("{hint}; {kind:?} is not one of them"));
    }
    check_namespace(namespace).map_err(|m| format!("{hint}; {m}"))?;
    check_object_name(name).map_err(|m| format!("{hint}; {m}"))
}

/// A world- or group-readable secret file is readable by more people than the secret is for.
fn check_secret_file(path: &std::path::Path, key: &str, diag: &mut Diagnostics<'_>) {
    match std::fs::metadata(path) {
        Err(_) => diag.warn(
            key,
            format!("{} does not exist or cannot be read", path.display()),
        ),
        #[cfg(unix)]
        Ok(meta) => {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                diag.warn(
                    key,
                    format!(
                        "{} is readable by group or others (mode {mode:04o}); run chmod 600 {}",
                        path.display(),
                        path.display()
                    ),
                );
            }
        }
        #[cfg(not(unix))]
        Ok(_) => {}
    }
}

fn check_argocd(table: &toml::Table, at: &str, diag: &mut Diagnostics<'_>) {
    let has = |base: &str| {
        SECRET_SUFFIXES
            .iter()
            .any(|s| table.contains_key(&format!("{base}{s}")))
    };
    if has("token") && (has("password") || table.contains_key("user")) {
        diag.error(
            &join_key(at, "token_env"),
            "give either a token or user + password, not both",
        );
    } else if has("password") && !table.contains_key("user") {
        diag.error(
            &join_key(at, "user"),
            "a password needs a user (e.g. user = \"admin\")",
        );
    }
    if table
        .get("insecure_skip_verify")
        .and_then(toml::Value::as_bool)
        == Some(true)
    {
        diag.warn(
            &join_key(at, "insecure_skip_verify"),
            "TLS certificates are not checked for this ArgoCD; prefer ca_file = \"PATH\"",
        );
    }
}

fn check_backup_sources(table: &mut toml::Table, at: &str, diag: &mut Diagnostics<'_>) {
    let sources_at = join_key(at, "source");
    let Some(sources) = table.get_mut("source") else {
        diag.error(
            &sources_at,
            "add at least one [[cluster.backups.source]] with kind = \"cronjob\", \"s3\" or \"dir\"",
        );
        return;
    };
    let Some(sources) = sources.as_array_mut() else {
        diag.error(&sources_at, "expected [[cluster.backups.source]] tables");
        return;
    };
    let mut names: Vec<String> = Vec::new();
    for (i, source) in sources.iter_mut().enumerate() {
        let at = join_index(&sources_at, i);
        let Some(source) = source.as_table_mut() else {
            diag.error(
                &at,
                "expected a table with kind = \"cronjob\", \"s3\" or \"dir\"",
            );
            continue;
        };
        let endpoint = check_keys(
            source,
            BACKUP_SOURCE,
            &at,
            "an s3 source is an HTTP server: use url = \"http://...\" or service = \"minio/minio:9000\"",
            diag,
        );
        match source.get("name").and_then(toml::Value::as_str) {
            None => diag.error(&join_key(&at, "name"), "required key is missing"),
            Some(name) if names.iter().any(|n| n == name) => diag.error(
                &join_key(&at, "name"),
                format!("duplicate source name {name:?}; names must be unique within a cluster's backups"),
            ),
            Some(name) => names.push(name.to_string()),
        }
        let require = |key: &str, diag: &mut Diagnostics<'_>| {
            if !source.contains_key(key) {
                diag.error(&join_key(&at, key), "required key is missing");
            }
        };
        match source.get("kind").and_then(toml::Value::as_str) {
            Some("cronjob") => {
                require("namespace", diag);
            }
            Some("s3") => {
                require("bucket", diag);
                if endpoint == EndpointCheck::Absent {
                    diag.error(
                        &at,
                        "an s3 source needs an endpoint: url = \"http://...\" or service = \"minio/minio:9000\"",
                    );
                }
            }
            Some("dir") => require("path", diag),
            Some(other) => diag.error(
                &join_key(&at, "kind"),
                format!("expected \"cronjob\", \"s3\" or \"dir\", found {other:?}"),
            ),
            None => diag.error(
                &join_key(&at, "kind"),
                "required key is missing: kind = \"cronjob\", \"s3\" or \"dir\"",
            ),
        }
    }
}
