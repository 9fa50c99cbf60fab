//! Endpoints (`address` | `url` | `service`) and secret references (`X_env` | `X_file` |
//! `X_secret`): the two shapes every feature table shares (interfaces.md), parsed from raw
//! TOML tables so features not built yet are checked the same way as the ones that are.

use std::fmt;
use std::path::PathBuf;

/// Where a server opsdeck talks to lives. One type, one connector (interfaces.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `address = "host:port"`: reached directly.
    Address { host: String, port: u16 },
    /// `url = "http(s)://..."`: an HTTP server.
    Url(String),
    /// `service = "namespace/name:port"`: a Service reached through a port-forward.
    Service {
        namespace: String,
        name: String,
        port: PortRef,
    },
}

/// A Kubernetes port given by number or by name (as a Service or container declares it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// Where a secret comes from. The value itself never appears in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `X_env = "VAR"`
    Env(String),
    /// `X_file = "PATH"`; relative paths are resolved against the config file's folder by
    /// [`crate::config::Config::parse`].
    File(PathBuf),
    /// `X_secret = "namespace/name:key"`, read through the cluster's Kubernetes API.
    Kube {
        namespace: String,
        name: String,
        key: String,
    },
}

/// An error tied to one key of a table, so the caller can name the key and find its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub key: String,
    pub message: String,
}

impl FieldError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

pub(crate) const ENDPOINT_KEYS: [&str; 3] = ["address", "url", "service"];
pub(crate) const SECRET_SUFFIXES: [&str; 3] = ["_env", "_file", "_secret"];

impl Endpoint {
    /// Reads the endpoint of a feature table: exactly one of `address`, `url` or `service`;
    /// `Ok(None)` when the table has none of them. The error starts with the offending key.
    pub fn from_table(t: &toml::Table) -> Result<Option<Endpoint>, String> {
        Self::from_table_keyed(t).map_err(|e| e.to_string())
    }

    pub(crate) fn from_table_keyed(t: &toml::Table) -> Result<Option<Endpoint>, FieldError> {
        let present: Vec<&str> = ENDPOINT_KEYS
            .into_iter()
            .filter(|k| t.contains_key(*k))
            .collect();
        let key = match present.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            [first, .., last] => {
                return Err(FieldError::new(
                    *last,
                    format!(
                        "an endpoint is exactly one of address, url or service; found both {first} and {last}"
                    ),
                ));
            }
        };
        let value = t.get(key).and_then(toml::Value::as_str).ok_or_else(|| {
            FieldError::new(
                key,
                format!(
                    "expected a string such as {}",
                    match key {
                        "address" => "\"10.43.0.15:5432\"",
                        "url" => "\"https://argocd.example:443\"",
                        _ => "\"database/pgbouncer:5432\"",
                    }
                ),
            )
        })?;
        let parsed = match key {
            "address" => parse_address(value),
            "url" => parse_url(value),
            _ => parse_service(value),
        };
        parsed.map(Some).map_err(|m| FieldError::new(key, m))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Address { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Address { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Url(url) => f.write_str(&redact_url(url)),
            Endpoint::Service {
                namespace,
                name,
                port,
            } => write!(f, "{namespace}/{name}:{port}"),
        }
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

fn parse_address(s: &str) -> Result<Endpoint, String> {
    let hint = "expected host:port, e.g. \"10.43.0.15:5432\" or \"[::1]:6379\"";
    // IPv6 literals carry colons of their own, so they must be bracketed.
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, rest) = rest
            .split_once(']')
            .ok_or_else(|| format!("{hint}; found {s:?}"))?;
        let port = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("{hint}; found {s:?}"))?;
        (host, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{hint}; {s:?} has no port"))?;
        if host.contains(':') {
            return Err(format!("{hint}; put an IPv6 address in brackets"));
        }
        (host, port)
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("{hint}; found {s:?}"));
    }
    let port = parse_port_number(port).map_err(|m| format!("{m} in {s:?}"))?;
    Ok(Endpoint::Address {
        host: host.to_string(),
        port,
    })
}

/// The authority of a URL (`user:pass@host:port`), when it has a scheme.
fn authority(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once("://")?;
    rest.split(['/', '?', '#']).next()
}

/// `s` without the `user:password@` part of its authority: what may be printed anywhere.
pub fn redact_url(s: &str) -> String {
    match authority(s).and_then(|a| a.rfind('@').map(|at| (a, at))) {
        Some((a, at)) => {
            let start = s.len() - s.split_once("://").map_or(0, |(_, r)| r.len());
            format!("{}{}{}", &s[..start], &a[at + 1..], &s[start + a.len()..])
        }
        None => s.to_string(),
    }
}

pub(crate) const URL_USERINFO_MESSAGE: &str = "secrets never inline: a URL must not carry user:password@; give the user as `user` and the credential as X_env, X_file or X_secret (e.g. password_env, token_env)";

fn parse_url(s: &str) -> Result<Endpoint, String> {
    // Checked first, so no message below ever echoes the credential.
    if authority(s).is_some_and(|a| a.contains('@')) {
        return Err(URL_USERINFO_MESSAGE.to_string());
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "expected a URL starting with http:// or https://, found {:?}",
                redact_url(s)
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "expected a URL such as \"https://argocd.example\", found {s:?}"
        ));
    }
    Ok(Endpoint::Url(s.to_string()))
}

fn parse_service(s: &str) -> Result<Endpoint, String> {
    let hint =
        "expected namespace/name:port, e.g. \"database/pgbouncer:5432\" (port by number or name)";
    let (namespace, rest) = s
        .split_once('/')
        .ok_or_else(|| format!("{hint}; found {s:?}"))?;
    let (name, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{hint}; {s:?} has no port"))?;
    check_namespace(namespace).map_err(|m| format!("{hint}; {m}"))?;
    check_object_name(name).map_err(|m| format!("{hint}; {m}"))?;
    let port = parse_port_ref(port).map_err(|m| format!("{hint}; {m}"))?;
    Ok(Endpoint::Service {
        namespace: namespace.to_string(),
        name: name.to_string(),
        port,
    })
}

/// A port number 1..=65535.
pub(crate) fn parse_port_number(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port to connect to".to_string()),
        Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("port {s:?} is not a number from 1 to 65535")),
    }
}

/// A port number, or a port name as Kubernetes allows it (IANA service name).
pub(crate) fn parse_port_ref(s: &str) -> Result<PortRef, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_port_number(s).map(PortRef::Number);
    }
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(PortRef::Name(s.to_string()))
    } else {
        Err(format!(
            "port {s:?} is neither a number from 1 to 65535 nor a port name (lowercase letters, digits, '-', at most 15)"
        ))
    }
}

/// A namespace: a DNS-1123 label.
pub(crate) fn check_namespace(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "namespace {s:?} is not a Kubernetes namespace (lowercase letters, digits and '-')"
        ))
    }
}

/// A Service, Pod, Deployment or Secret name: a DNS-1123 subdomain.
pub(crate) fn check_object_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {s:?} is not a Kubernetes object name (lowercase letters, digits, '-' and '.')"
        ))
    }
}

/// A portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_var_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl SecretRef {
    /// Reads the secret `base` of a table: exactly one of `{base}_env`, `{base}_file` or
    /// `{base}_secret`; `Ok(None)` when none is given. An inline `{base}` is an error that names
    /// the three. Errors start with the offending key and never contain a secret value.
    pub fn from_table(t: &toml::Table, base: &str) -> Result<Option<SecretRef>, String> {
        Self::from_table_keyed(t, base).map_err(|e| e.to_string())
    }

    pub(crate) fn from_table_keyed(
        t: &toml::Table,
        base: &str,
    ) -> Result<Option<SecretRef>, FieldError> {
        if t.contains_key(base) {
            return Err(FieldError::new(base, inline_secret_message(base)));
        }
        let present: Vec<String> = SECRET_SUFFIXES
            .iter()
            .map(|suffix| format!("{base}{suffix}"))
            .filter(|k| t.contains_key(k))
            .collect();
        let key = match present.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            [first, .., last] => {
                return Err(FieldError::new(
                    last.clone(),
                    format!(
                        "give only one of {base}_env, {base}_file or {base}_secret; found both {first} and {last}"
                    ),
                ));
            }
        };
        let Some(value) = t.get(&key).and_then(toml::Value::as_str) else {
            return Err(FieldError::new(
                key,
                "expected a string naming where the secret is (not the secret itself)",
            ));
        };
        let parsed = if key.ends_with("_env") {
            if is_env_var_name(value) {
                Ok(SecretRef::Env(value.to_string()))
            } else {
                Err(format!(
                    "expected an environment variable name (letters, digits, '_'), found {value:?}"
                ))
            }
        } else if key.ends_with("_file") {
            if value.trim().is_empty() {
                Err("expected a path to a file holding the secret".to_string())
            } else {
                Ok(SecretRef::File(PathBuf::from(value)))
            }
        } else {
            parse_kube_secret(value)
        };
        parsed.map(Some).map_err(|m| FieldError::new(key, m))
    }

    /// Reads a secret that lives on this machine (environment or file); the trailing newline
    /// of a file is dropped. A Kubernetes secret needs the cluster API and is refused here.
    pub fn resolve_local(&self) -> Result<String, String> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if v.is_empty() => Err(format!("environment variable {var} is empty")),
                Ok(v) => Ok(v),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {var} is not set"))
                }
                // VarError::NotUnicode carries the value; never let it reach a message.
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {var} is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    let value = text.trim_end_matches(['\n', '\r']);
                    if value.is_empty() {
                        Err(format!("secret file {} is empty", path.display()))
                    } else {
                        Ok(value.to_string())
                    }
                }
                Err(e) => Err(format!("cannot read secret file {}: {e}", path.display())),
            },
            SecretRef::Kube {
                namespace,
                name,
                key,
            } => Err(format!(
                "secret {namespace}/{name}:{key} needs the cluster API; read it through the cluster's Kubernetes client"
            )),
        }
    }
}

impl fmt::Display for SecretRef {
    /// Where the secret is, never what it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => write!(f, "${var}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
            SecretRef::Kube {
                namespace,
                name,
                key,
            } => write!(f, "secret {namespace}/{name}:{key}"),
        }
    }
}

pub(crate) fn inline_secret_message(base: &str) -> String {
    format!(
        "secrets are never written inline; use {base}_env = \"VAR\", {base}_file = \"PATH\" or {base}_secret = \"namespace/name:key\""
    )
}

fn parse_kube_secret(s: &str) -> Result<SecretRef, String> {
    let hint = "expected namespace/name:key, e.g. \"database/pgbouncer-admin:password\"";
    let (namespace, rest) = s
        .split_once('/')
        .ok_or_else(|| format!("{hint}; found {s:?}"))?;
    let (name, key) = rest
        .split_once(':')
        .ok_or_else(|| format!("{hint}; {s:?} names no key"))?;
    check_namespace(namespace).map_err(|m| format!("{hint}; {m}"))?;
    check_object_name(name).map_err(|m| format!("{hint}; {m}"))?;
    let key_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !key_ok {
        return Err(format!(
            "{hint}; key {key:?} is not a Secret data key (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(SecretRef::Kube {
        namespace: namespace.to_string(),
        name: name.to_string(),
        key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn urls_are_never_shown_with_their_userinfo() {
        assert_eq!(
            redact_url("https://u:p@host:8443/a?b#c"),
            "https://host:8443/a?b#c"
        );
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
        assert_eq!(redact_url("no scheme"), "no scheme");
        let e = Endpoint::from_table(&table(r#"url = "https://u:s3cr3t@host""#)).unwrap_err();
        assert!(
            e.starts_with("url: secrets never inline") && !e.contains("s3cr3t"),
            "{e}"
        );
        let shown = Endpoint::Url("https://u:s3cr3t@host/x".into()).to_string();
        assert_eq!(shown, "https://host/x");
    }

    #[test]
    fn endpoint_address_url_and_service_parse() {
        assert_eq!(
            Endpoint::from_table(&table(r#"address = "10.43.0.15:5432""#)),
            Ok(Some(Endpoint::Address {
                host: "10.43.0.15".into(),
                port: 5432
            }))
        );
        assert_eq!(
            Endpoint::from_table(&table(r#"address = "[::1]:6379""#)),
            Ok(Some(Endpoint::Address {
                host: "::1".into(),
                port: 6379
            }))
        );
        assert_eq!(
            Endpoint::from_table(&table(r#"url = "https://argocd.example:30080/""#)),
            Ok(Some(Endpoint::Url("https://argocd.example:30080/".into())))
        );
        assert_eq!(
            Endpoint::from_table(&table(r#"service = "argocd/argocd-server:https""#)),
            Ok(Some(Endpoint::Service {
                namespace: "argocd".into(),
                name: "argocd-server".into(),
                port: PortRef::Name("https".into())
            }))
        );
        assert_eq!(Endpoint::from_table(&table(r#"user = "x""#)), Ok(None));
    }

    #[test]
    fn endpoint_display_round_trips() {
        for s in ["database/pgbouncer:5432", "argocd/argocd-server:https"] {
            let e = parse_service(s).expect("valid service");
            assert_eq!(e.to_string(), s);
        }
        let e = parse_address("[::1]:6379").expect("valid address");
        assert_eq!(e.to_string(), "[::1]:6379");
    }

    #[test]
    fn endpoint_with_two_kinds_is_refused() {
        let err = Endpoint::from_table(&table(
            "address = \"10.0.0.1:5432\"\nservice = \"database/pgbouncer:5432\"",
        ))
        .expect_err("two kinds");
        assert!(err.starts_with("service: "), "{err}");
        assert!(
            err.contains("exactly one of address, url or service"),
            "{err}"
        );
    }

    #[test]
    fn bad_endpoints_say_what_is_valid() {
        let cases = [
            (r#"address = "10.0.0.1""#, "has no port"),
            (r#"address = "10.0.0.1:99999""#, "from 1 to 65535"),
            (r#"address = "::1:5432""#, "brackets"),
            (r#"url = "argocd.example""#, "http:// or https://"),
            (r#"url = "https://""#, "expected a URL"),
            (r#"service = "pgbouncer:5432""#, "namespace/name:port"),
            (r#"service = "database/pgbouncer""#, "has no port"),
            (
                r#"service = "Database/pgbouncer:5432""#,
                "not a Kubernetes namespace",
            ),
            (r#"service = "database/pgbouncer:Not_A_Port""#, "port name"),
            ("address = 5432", "expected a string"),
        ];
        for (text, needle) in cases {
            let err = Endpoint::from_table(&table(text)).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn secret_ref_forms_parse() {
        assert_eq!(
            SecretRef::from_table(&table(r#"password_env = "PGB_PASS""#), "password"),
            Ok(Some(SecretRef::Env("PGB_PASS".into())))
        );
        assert_eq!(
            SecretRef::from_table(&table(r#"token_file = "/run/secrets/t""#), "token"),
            Ok(Some(SecretRef::File("/run/secrets/t".into())))
        );
        assert_eq!(
            SecretRef::from_table(
                &table(r#"password_secret = "database/pgbouncer-admin:password""#),
                "password"
            ),
            Ok(Some(SecretRef::Kube {
                namespace: "database".into(),
                name: "pgbouncer-admin".into(),
                key: "password".into()
            }))
        );
        assert_eq!(
            SecretRef::from_table(&table(r#"user = "u""#), "password"),
            Ok(None)
        );
    }

    #[test]
    fn inline_secret_is_refused_without_echoing_it() {
        let err = SecretRef::from_table(&table(r#"password = "hunter2-s3cret""#), "password")
            .expect_err("inline secret");
        assert_eq!(
            err,
            "password: secrets are never written inline; use password_env = \"VAR\", password_file = \"PATH\" or password_secret = \"namespace/name:key\""
        );
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn secret_errors_never_contain_the_value() {
        let cases = [
            r#"password = "hunter2-s3cret""#,
            "password = 12345678",
            "password_env = 12345678",
            "password_env = \"A\"\npassword_file = \"hunter2-s3cret\"",
        ];
        for text in cases {
            let err = SecretRef::from_table(&table(text), "password").expect_err(text);
            assert!(
                !err.contains("hunter2") && !err.contains("12345678"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_secret_refs_say_what_is_valid() {
        let cases = [
            (r#"password_env = "MY-VAR""#, "environment variable name"),
            (r#"password_secret = "database/pgbouncer""#, "names no key"),
            (
                r#"password_secret = "pgbouncer:password""#,
                "namespace/name:key",
            ),
            (
                "password_env = \"A\"\npassword_secret = \"a/b:c\"",
                "only one of",
            ),
        ];
        for (text, needle) in cases {
            let err = SecretRef::from_table(&table(text), "password").expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn resolve_local_reads_files_and_refuses_kube() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-value\n").expect("write");
        assert_eq!(
            SecretRef::File(path.clone()).resolve_local(),
            Ok("s3cret-value".to_string())
        );
        std::fs::write(&path, "\n").expect("write");
        let err = SecretRef::File(path).resolve_local().expect_err("empty");
        assert!(err.contains("is empty"), "{err}");
        let missing = SecretRef::File(dir.path().join("nope")).resolve_local();
        assert!(missing.is_err_and(|e| e.contains("cannot read secret file")));
        let kube = SecretRef::Kube {
            namespace: "database".into(),
            name: "pg".into(),
            key: "password".into(),
        };
        assert!(
            kube.resolve_local()
                .is_err_and(|e| e.contains("needs the cluster API"))
        );
    }

    #[test]
    fn resolve_local_reports_an_unset_variable_by_name() {
        let var = "OPSDECK_TEST_SURELY_UNSET_VARIABLE_7f3a";
        let err = SecretRef::Env(var.into())
            .resolve_local()
            .expect_err("unset");
        assert_eq!(err, format!("environment variable {var} is not set"));
    }

    #[test]
    fn port_refs() {
        assert_eq!(parse_port_ref("5432"), Ok(PortRef::Number(5432)));
        assert_eq!(
            parse_port_ref("http-web"),
            Ok(PortRef::Name("http-web".into()))
        );
        assert!(parse_port_ref("0").is_err());
        assert!(parse_port_ref("65536").is_err());
        assert!(parse_port_ref("+80").is_err());
        assert!(parse_port_ref("a-very-long-port-name").is_err());
    }
}
