//! From text to [`Config`]: serde does the shape (`deny_unknown_fields`, types) one table at a
//! time so one bad `[[cluster]]` does not hide another's errors; then the semantic checks run
//! over everything that parsed, collecting every error and warning with its line.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::endpoint::{check_namespace, is_env_var_name};
use super::features;
use super::forward::{ForwardConfig, ForwardScheme, ForwardTarget};
use super::source_map::{SourceMap, join_index, join_key};
use super::{ClusterConfig, Config, ConfigError, DEFAULT_LOCK_DIR, Environment, Loaded};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    runbooks_dir: Option<String>,
    audit_log: Option<String>,
    lock_dir: Option<String>,
    keymap: Option<String>,
    scale_ceiling: Option<u32>,
    // Read element by element below; named here so they count as valid keys and must be arrays.
    #[serde(default)]
    #[allow(dead_code)]
    cluster: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    #[allow(dead_code)]
    forward: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    kubeconfig: Option<String>,
    context: Option<String>,
    app_namespace: Option<String>,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    read_only: bool,
    host: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    pgbouncer: Option<toml::Table>,
    redis: Option<toml::Table>,
    backups: Option<toml::Table>,
    argocd: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    name: String,
    cluster: String,
    target: String,
    #[serde(default)]
    local_port: u16,
    bind: Option<String>,
    scheme: Option<String>,
    key: Option<String>,
    #[serde(default)]
    autostart: bool,
}

/// Errors and warnings found so far, each placed at its key's line.
pub(crate) struct Diagnostics<'a> {
    file: &'a Path,
    map: &'a SourceMap,
    pub base_dir: PathBuf,
    pub home: Option<PathBuf>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Diagnostics<'_> {
    fn at(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: self.map.line_of_path(key),
            key: key.to_string(),
            message,
        }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let e = self.at(key, message.into());
        self.errors.push(e);
    }

    pub fn warn(&mut self, key: &str, message: impl Into<String>) {
        let w = self.at(key, message.into());
        self.warnings.push(w);
    }

    fn serde(&mut self, err: &toml::de::Error) {
        let (line, key, mut message) = self.map.explain(err);
        if matches!(key.as_str(), "cluster" | "forward")
            && message.starts_with("expected an array,")
        {
            message = message.replacen(
                "expected an array",
                &format!("expected [[{key}]] tables (write [[{key}]], not [{key}])"),
                1,
            );
        }
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key,
            message,
        });
    }

    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.map.line_of_path(key)
    }

    /// `~/x` from home, relative from the config file's folder.
    pub fn resolve_path(&self, value: &str) -> PathBuf {
        let home_relative = value
            .strip_prefix("~/")
            .or(if value == "~" { Some("") } else { None });
        match (home_relative, &self.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => self.base_dir.join(value),
        }
    }
}

fn sort_by_line(mut v: Vec<ConfigError>) -> Vec<ConfigError> {
    v.sort_by_key(|e| e.line);
    v
}

pub(crate) fn parse(
    text: &str,
    path: &Path,
    env: &Environment,
) -> Result<Loaded, Vec<ConfigError>> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let (line, key, message) = SourceMap::lines_only(text).explain(&e);
            return Err(vec![ConfigError {
                file: path.to_path_buf(),
                line,
                key,
                message,
            }]);
        }
    };
    let map = SourceMap::new(text, root.get_ref());
    // Without a folder (a bare file name) relative paths stay relative to the working directory,
    // which is the same folder.
    let base_dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut diag = Diagnostics {
        file: path,
        map: &map,
        base_dir,
        home: env.home.clone(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let config = build(&root, path, env, &mut diag);
    if diag.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: sort_by_line(diag.warnings),
        })
    } else {
        Err(sort_by_line(diag.errors))
    }
}

/// The elements of a top-level array of tables, each as its own deserializer input.
fn elements<'i>(root: &toml::Spanned<DeTable<'i>>, key: &str) -> Vec<toml::Spanned<DeValue<'i>>> {
    match root.get_ref().get(key).map(|v| v.get_ref()) {
        Some(DeValue::Array(items)) => items.iter().cloned().collect(),
        _ => Vec::new(),
    }
}

fn build(
    root: &toml::Spanned<DeTable<'_>>,
    path: &Path,
    env: &Environment,
    diag: &mut Diagnostics<'_>,
) -> Config {
    let top = match RawTop::deserialize(toml::de::Deserializer::from(root.clone())) {
        Ok(top) => Some(top),
        Err(e) => {
            diag.serde(&e);
            None
        }
    };

    let mut all_clusters_parsed = true;
    let mut clusters = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in elements(root, "cluster").into_iter().enumerate() {
        match RawCluster::deserialize(ValueDeserializer::from(item)) {
            Ok(raw) => {
                let at = join_index("cluster", i);
                let cluster = check_cluster(raw, &at, diag);
                if let Some(first) = seen.get(&cluster.name) {
                    let first_at = join_index("cluster", *first);
                    let line = diag
                        .line_of(&join_key(&first_at, "name"))
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default();
                    diag.error(
                        &join_key(&at, "name"),
                        format!(
                            "duplicate cluster name {:?}: {first_at}{line} already uses it; cluster names must be unique",
                            cluster.name
                        ),
                    );
                } else {
                    seen.insert(cluster.name.clone(), i);
                }
                clusters.push(cluster);
            }
            Err(e) => {
                all_clusters_parsed = false;
                diag.serde(&e);
            }
        }
    }
    if clusters.is_empty() && all_clusters_parsed {
        diag.warn(
            "cluster",
            "no [[cluster]] is configured, so there is nothing to watch; add one with name = \"...\"",
        );
    }

    let mut forwards = Vec::new();
    let mut forward_at: Vec<String> = Vec::new();
    for (i, item) in elements(root, "forward").into_iter().enumerate() {
        match RawForward::deserialize(ValueDeserializer::from(item)) {
            Ok(raw) => {
                let at = join_index("forward", i);
                // A forward naming a cluster whose table failed to parse would be a false alarm.
                let clusters_known = all_clusters_parsed.then_some(&clusters[..]);
                if let Some(f) = check_forward(raw, &at, clusters_known, diag) {
                    forwards.push(f);
                    forward_at.push(at);
                }
            }
            Err(e) => diag.serde(&e),
        }
    }
    check_forward_clashes(&forwards, &forward_at, diag);

    let top = top.unwrap_or(RawTop {
        runbooks_dir: None,
        audit_log: None,
        lock_dir: None,
        keymap: None,
        scale_ceiling: None,
        cluster: None,
        forward: None,
    });
    let runbooks_dir = top
        .runbooks_dir
        .as_deref()
        .and_then(|v| non_empty_path("runbooks_dir", v, diag));
    if let Some(dir) = &runbooks_dir
        && !dir.is_dir()
    {
        diag.warn(
            "runbooks_dir",
            format!(
                "{} is not a directory; only the embedded runbooks are available",
                dir.display()
            ),
        );
    }
    let audit_log = top
        .audit_log
        .as_deref()
        .and_then(|v| non_empty_path("audit_log", v, diag))
        .unwrap_or_else(|| env.default_audit_log());
    let lock_dir = top
        .lock_dir
        .as_deref()
        .and_then(|v| non_empty_path("lock_dir", v, diag))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR));
    let keymap = check_keymap(top.keymap.as_deref(), diag);
    if top.scale_ceiling == Some(0) {
        diag.error(
            "scale_ceiling",
            "expected a replica count of 1 or more (default 20); leave the key out for the default",
        );
    }

    Config {
        source: Some(path.to_path_buf()),
        runbooks_dir,
        audit_log,
        lock_dir,
        keymap,
        clusters,
        forwards,
        scale_ceiling: top.scale_ceiling,
    }
}

fn non_empty_path(key: &str, value: &str, diag: &mut Diagnostics<'_>) -> Option<PathBuf> {
    if value.trim().is_empty() {
        diag.error(key, "expected a path; leave the key out to use the default");
        None
    } else {
        Some(diag.resolve_path(value))
    }
}

fn check_keymap(value: Option<&str>, diag: &mut Diagnostics<'_>) -> String {
    match value {
        None | Some("default") => "default".to_string(),
        Some("vim") => "vim".to_string(),
        Some(v) if v.contains('/') || v.ends_with(".toml") => {
            let path = diag.resolve_path(v);
            if !path.is_file() {
                diag.warn(
                    "keymap",
                    format!(
                        "{} does not exist; the default keymap is used until it does",
                        path.display()
                    ),
                );
            }
            path.to_string_lossy().into_owned()
        }
        Some(v) => {
            diag.error(
                "keymap",
                format!(
                    "expected \"default\", \"vim\" or a path to a keymap file (e.g. \"~/.config/opsdeck/keymap.toml\"), found {v:?}"
                ),
            );
            "default".to_string()
        }
    }
}

/// Cluster names appear in `CLUSTER/NAME` on the command line and in lock and audit records.
fn check_cluster_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a cluster needs a non-empty name, e.g. name = \"production\"".to_string());
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{name:?} cannot be a cluster name: use letters, digits, '-', '_' or '.' (it is written as CLUSTER/NAME on the command line)"
        ));
    }
    Ok(())
}

fn check_cluster(raw: RawCluster, at: &str, diag: &mut Diagnostics<'_>) -> ClusterConfig {
    if let Err(m) = check_cluster_name(&raw.name) {
        diag.error(&join_key(at, "name"), m);
    }
    let kubeconfig = raw
        .kubeconfig
        .as_deref()
        .and_then(|v| non_empty_path(&join_key(at, "kubeconfig"), v, diag));
    if raw.context.as_deref().is_some_and(str::is_empty) {
        diag.error(
            &join_key(at, "context"),
            "expected a context name from the kubeconfig; leave the key out to use its current context",
        );
    }
    if let Some(ns) = &raw.app_namespace
        && let Err(m) = check_namespace(ns)
    {
        diag.error(&join_key(at, "app_namespace"), m);
    }
    let env_at = join_key(at, "env");
    for name in raw.env.keys() {
        let key = join_key(&env_at, name);
        if !is_env_var_name(name) {
            diag.error(
                &key,
                format!(
                    "{name:?} is not a valid environment variable name: use letters, digits and '_', not starting with a digit"
                ),
            );
        } else if let Err(e) = crate::runbook::vars::check_settable(name) {
            diag.error(
                &key,
                format!(
                    "{e}; [cluster.env] cannot set it (interfaces.md \"Reserved runbook variables\")"
                ),
            );
        } else if looks_secret(name) {
            diag.warn(
                &key,
                format!(
                    "{name} looks like a secret, and [cluster.env] is plain text in this file; runbook steps can read secrets from the environment or a file instead"
                ),
            );
        }
    }
    let mut pgbouncer = raw.pgbouncer;
    let mut redis = raw.redis;
    let mut backups = raw.backups;
    let mut argocd = raw.argocd;
    for (feature, table) in [
        ("pgbouncer", &mut pgbouncer),
        ("redis", &mut redis),
        ("backups", &mut backups),
        ("argocd", &mut argocd),
    ] {
        if let Some(table) = table {
            features::check(feature, table, &join_key(at, feature), diag);
        }
    }
    ClusterConfig {
        name: raw.name,
        kubeconfig,
        context: raw.context,
        app_namespace: raw.app_namespace,
        protected: raw.protected,
        read_only: raw.read_only,
        host: raw.host,
        env: raw.env,
        pgbouncer,
        redis,
        backups,
        argocd,
    }
}

/// A variable that names where a secret is (`PGPASSFILE`, `TOKEN_PATH`) is fine; one that looks
/// like it holds the secret is worth a warning.
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let names_a_place = ["FILE", "PATH", "DIR", "ENV"]
        .iter()
        .any(|s| upper.ends_with(s));
    !names_a_place
        && ["PASSWORD", "PASSWD", "TOKEN", "SECRET"]
            .iter()
            .any(|w| upper.contains(w))
}

fn check_forward(
    raw: RawForward,
    at: &str,
    clusters: Option<&[ClusterConfig]>,
    diag: &mut Diagnostics<'_>,
) -> Option<ForwardConfig> {
    let mut ok = true;
    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        ok = false;
        diag.error(
            &join_key(at, "name"),
            format!(
                "{:?} cannot be a forward name: use letters, digits, '-', '_' or '.' (it is written as CLUSTER/NAME)",
                raw.name
            ),
        );
    }
    if let Some(clusters) = clusters
        && !clusters.iter().any(|c| c.name == raw.cluster)
    {
        ok = false;
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        let valid = if names.is_empty() {
            "none is configured".to_string()
        } else {
            format!("configured: {}", names.join(", "))
        };
        diag.error(
            &join_key(at, "cluster"),
            format!("no [[cluster]] is named {:?}; {valid}", raw.cluster),
        );
    }
    let target = match ForwardTarget::parse(&raw.target) {
        Ok(t) => Some(t),
        Err(m) => {
            diag.error(&join_key(at, "target"), m);
            None
        }
    };
    let bind = match raw.bind.as_deref() {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(b) => match b.parse::<IpAddr>() {
            Ok(ip) => {
                if !ip.is_loopback() {
                    diag.warn(
                        &join_key(at, "bind"),
                        format!(
                            "{ip} is not a loopback address: anyone who can reach this machine can use the forward"
                        ),
                    );
                }
                ip
            }
            Err(_) => {
                ok = false;
                diag.error(
                    &join_key(at, "bind"),
                    format!("expected an IP address such as \"127.0.0.1\" or \"::1\", found {b:?}"),
                );
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        },
    };
    let scheme = match raw.scheme.as_deref() {
        None => None,
        Some("http") => Some(ForwardScheme::Http),
        Some("https") => Some(ForwardScheme::Https),
        Some(s) => {
            ok = false;
            diag.error(
                &join_key(at, "scheme"),
                format!(
                    "expected \"http\" or \"https\" (leave it out for a raw TCP forward), found {s:?}"
                ),
            );
            None
        }
    };
    if raw.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        ok = false;
        diag.error(
            &join_key(at, "key"),
            "expected a key binding such as \"g\"; leave it out for no binding",
        );
    }
    let target = target?;
    ok.then_some(ForwardConfig {
        name: raw.name,
        cluster: raw.cluster,
        target,
        local_port: raw.local_port,
        bind,
        scheme,
        key: raw.key,
        autostart: raw.autostart,
    })
}

/// Names repeat across clusters but not within one; fixed local ports cannot be shared.
fn check_forward_clashes(forwards: &[ForwardConfig], at: &[String], diag: &mut Diagnostics<'_>) {
    let mut names: HashMap<(&str, &str), usize> = HashMap::new();
    let mut ports: HashMap<(IpAddr, u16), usize> = HashMap::new();
    for (i, f) in forwards.iter().enumerate() {
        if let Some(&first) = names.get(&(f.cluster.as_str(), f.name.as_str())) {
            let line = diag
                .line_of(&at[first])
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            diag.error(
                &join_key(&at[i], "name"),
                format!(
                    "duplicate forward {}/{}: {}{line} already uses it; names must be unique within a cluster",
                    f.cluster, f.name, at[first]
                ),
            );
        } else {
            names.insert((&f.cluster, &f.name), i);
        }
        if f.local_port == 0 {
            continue;
        }
        if let Some(&first) = ports.get(&(f.bind, f.local_port)) {
            diag.error(
                &join_key(&at[i], "local_port"),
                format!(
                    "{}:{} is already taken by {}/{}; pick another port or 0 for a free one",
                    f.bind, f.local_port, forwards[first].cluster, forwards[first].name
                ),
            );
        } else {
            ports.insert((f.bind, f.local_port), i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("config.toml"), &Environment::default()) {
            Ok(loaded) => panic!("parsed, warnings {:?}", loaded.warnings),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn errors_from_several_tables_are_all_reported_in_line_order() {
        let errors = parse_errors(
            "[[cluster]]\nname = \"a\"\nprotected = 1\n\n[[cluster]]\nname = \"b\"\nbogus = true\n\n[[cluster]]\nname = \"c\"\n[cluster.env]\n\"X Y\" = \"1\"\n",
        );
        assert_eq!(
            errors,
            [
                "config.toml:3: cluster[0].protected: expected a boolean (true or false), found an integer",
                "config.toml:7: cluster[1].bogus: unknown key; valid keys here are: name, kubeconfig, context, app_namespace, protected, read_only, host, env, pgbouncer, redis, backups, argocd",
                "config.toml:12: cluster[2].env.\"X Y\": \"X Y\" is not a valid environment variable name: use letters, digits and '_', not starting with a digit",
            ]
        );
    }

    #[test]
    fn no_error_ever_contains_a_secret_value() {
        let secret = "Tr0ub4dor-and-3";
        let text = format!(
            "token = \"{secret}\"\n[[cluster]]\nname = \"q\"\n[cluster.env]\nPW = {{ v = \"{secret}\" }}\n[[cluster]]\nname = \"p\"\n[cluster.argocd]\nurl = \"https://a\"\ntoken = \"{secret}\"\napi_token = \"{secret}\"\n[cluster.redis]\naddress = \"r:6379\"\npassword = \"{secret}\"\n[[cluster.backups.source]]\nsecret_key = \"{secret}\"\n"
        );
        let errors = parse_errors(&text);
        assert!(errors.len() >= 4, "{errors:#?}");
        for e in &errors {
            assert!(!e.contains(secret), "{e}");
        }
    }

    #[test]
    fn defaults_apply_when_keys_are_left_out() {
        let env = Environment {
            home: Some("/home/oncall".into()),
            ..Environment::default()
        };
        let loaded = parse(
            "[[cluster]]\nname = \"staging\"\n",
            Path::new("/etc/opsdeck/config.toml"),
            &env,
        )
        .expect("minimal config parses");
        let c = loaded.config;
        assert_eq!(c.keymap, "default");
        assert_eq!(c.lock_dir, PathBuf::from("/var/lib/opsdeck/locks"));
        assert_eq!(
            c.audit_log,
            PathBuf::from("/home/oncall/.local/state/opsdeck/audit.jsonl")
        );
        assert_eq!(c.runbooks_dir, None);
        assert!(c.forwards.is_empty());
        let s = &c.clusters[0];
        assert!(!s.protected && !s.read_only && s.env.is_empty() && s.pgbouncer.is_none());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn home_relative_paths_expand() {
        let env = Environment {
            home: Some("/home/oncall".into()),
            ..Environment::default()
        };
        let loaded = parse(
            "audit_log = \"~/audit.jsonl\"\n[[cluster]]\nname = \"s\"\nkubeconfig = \"~/.kube/s.yaml\"\n",
            Path::new("/etc/opsdeck/config.toml"),
            &env,
        )
        .expect("parses");
        assert_eq!(
            loaded.config.audit_log,
            PathBuf::from("/home/oncall/audit.jsonl")
        );
        assert_eq!(
            loaded.config.clusters[0].kubeconfig,
            Some(PathBuf::from("/home/oncall/.kube/s.yaml"))
        );
    }

    #[test]
    fn cluster_env_cannot_set_reserved_or_shell_variables() {
        let errors = parse_errors(
            "[[cluster]]\nname = \"a\"\n[cluster.env]\nBACKUP_DIR = \"/b\"\nCONTEXT = \"prod\"\nLD_PRELOAD = \"/x.so\"\nOPSDECK_ENV = \"/etc/passwd\"\n",
        );
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with("config.toml:5: cluster[0].env.CONTEXT: CONTEXT is reserved"),
            "{errors:#?}"
        );
        assert!(errors[1].starts_with("config.toml:6: cluster[0].env.LD_PRELOAD:"));
        assert!(errors[2].starts_with("config.toml:7: cluster[0].env.OPSDECK_ENV:"));
    }

    #[test]
    fn a_url_with_a_password_is_an_error_that_does_not_echo_it() {
        let errors = parse_errors(
            "[[cluster]]\nname = \"a\"\n[cluster.argocd]\nurl = \"https://admin:hunter2@argocd.example:8443/x\"\ntoken_env = \"T\"\n",
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("config.toml:4: cluster[0].argocd.url: secrets never inline"),
            "{errors:#?}"
        );
        assert!(!errors[0].contains("hunter2") && !errors[0].contains("admin"));
    }

    #[test]
    fn secret_looking_env_names() {
        assert!(looks_secret("DB_PASSWORD"));
        assert!(looks_secret("ArgoToken"));
        assert!(!looks_secret("PGPASSFILE"));
        assert!(!looks_secret("TOKEN_FILE"));
        assert!(!looks_secret("BACKUP_DIR"));
    }
}
