//! The opsdeck config file: where it is looked up, how it is parsed into [`Config`], and every
//! check on it, with errors and warnings that name the file, line and key and say what would be
//! valid. Also owns the shapes feature tables share — [`Endpoint`], [`SecretRef`] and durations
//! ([`parse_duration`]) — so features not built yet are already checked (interfaces.md).

mod duration;
mod endpoint;
mod features;
mod forward;
mod kubeconfig;
mod source_map;
mod validate;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub use duration::parse_duration;
pub use endpoint::{Endpoint, PortRef, SecretRef};
pub use forward::{ForwardConfig, ForwardScheme, ForwardTarget, TargetKind};
/// The `host` the simulated fleet's config gives its clusters: no machine has it (`.invalid`
/// is reserved, RFC 2606), so host-level steps never run against the simulator.
pub const SIMULATED_HOST: &str = "simulated-fleet.invalid";

pub use kubeconfig::{kube_context, kubeconfig_files, kubeconfig_value, load_kubeconfig};

/// The whole configuration, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// The file it came from.
    pub source: Option<PathBuf>,
    pub runbooks_dir: Option<PathBuf>,
    /// Default `$XDG_STATE_HOME/opsdeck/audit.jsonl` (`~/.local/state` when unset).
    pub audit_log: PathBuf,
    /// Default `/var/lib/opsdeck/locks`; the fallback when it is not writable lives with the locks.
    pub lock_dir: PathBuf,
    /// `"default"`, `"vim"`, or an absolute path to a keymap file.
    pub keymap: String,
    pub clusters: Vec<ClusterConfig>,
    pub forwards: Vec<ForwardConfig>,
    /// `scale_ceiling`: a scale to more replicas than this asks for the count again
    /// (unset: [`DEFAULT_SCALE_CEILING`]).
    pub scale_ceiling: Option<u32>,
}

/// A scale to more replicas than this asks for the count again, unless `scale_ceiling` says
/// otherwise.
pub const DEFAULT_SCALE_CEILING: u32 = 20;

/// One `[[cluster]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterConfig {
    /// Required, unique, non-empty; used as `CLUSTER/NAME`, so no '/' or spaces.
    pub name: String,
    /// Relative paths are resolved against the config file's folder.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub app_namespace: Option<String>,
    pub protected: bool,
    pub read_only: bool,
    /// The machine this cluster runs on (its hostname, as `hostname` prints it): runbook steps
    /// marked `host=true` (systemctl, df, the backup disk) run only there.
    pub host: Option<String>,
    /// `[cluster.env]`: extra variables for runbook steps; keys are valid variable names.
    pub env: BTreeMap<String, String>,
    // Feature tables stay raw until their features are built; they are checked for inline
    // secrets, Endpoint shape, durations and types, and relative `*_file` paths in them are
    // already resolved against the config file's folder.
    pub pgbouncer: Option<toml::Table>,
    pub redis: Option<toml::Table>,
    pub backups: Option<toml::Table>,
    pub argocd: Option<toml::Table>,
}

/// A problem in the config: an error, or (in [`Loaded::warnings`]) a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; None when the problem is not at one place (a missing file).
    pub line: Option<usize>,
    /// Key path such as `cluster[1].pgbouncer.password`; empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE: KEY: MESSAGE`, leaving out the parts that are not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A config that passed every check, with the warnings found on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// Reads, parses and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) => {
                let message = match e.kind() {
                    std::io::ErrorKind::NotFound => "cannot read the config file: it does not exist; create it (see config.example.toml) or pass --config FILE".to_string(),
                    std::io::ErrorKind::PermissionDenied => "cannot read the config file: permission denied; check its owner and mode".to_string(),
                    std::io::ErrorKind::InvalidData => "cannot read the config file: it is not UTF-8 text".to_string(),
                    _ => format!("cannot read the config file: {e}"),
                };
                Err(vec![ConfigError {
                    file: path.to_path_buf(),
                    line: None,
                    key: String::new(),
                    message,
                }])
            }
        }
    }

    /// Parses and checks config text; `path` names it in messages and anchors relative paths.
    /// Every error is collected, not just the first.
    pub fn parse(text: &str, path: &Path) -> Result<Loaded, Vec<ConfigError>> {
        validate::parse(text, path, &Environment::from_process())
    }

    /// The config file to use: `explicit` (--config), `$OPSDECK_CONFIG`,
    /// `$XDG_CONFIG_HOME/opsdeck/config.toml` (`~/.config` when unset), `/etc/opsdeck/config.toml`.
    /// The first that exists wins; `explicit` and `$OPSDECK_CONFIG` are returned even when
    /// missing, so the error names the file the user asked for.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        locate_with(explicit, &Environment::from_process(), &|p| p.is_file())
    }

    /// A config with no clusters and every default filled in (for commands that work without
    /// a config file, such as `runbook list`).
    pub fn defaults() -> Config {
        let env = Environment::from_process();
        Config {
            audit_log: env.default_audit_log(),
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            keymap: "default".into(),
            ..Config::default()
        }
    }

    /// The `scale_ceiling` in force.
    pub fn scale_ceiling(&self) -> u32 {
        self.scale_ceiling.unwrap_or(DEFAULT_SCALE_CEILING)
    }

    /// Where run locks go when `lock_dir` is not writable: `$XDG_STATE_HOME/opsdeck/locks`.
    pub fn fallback_lock_dir(&self) -> PathBuf {
        Environment::from_process()
            .default_audit_log()
            .with_file_name("locks")
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// The process environment the config depends on, captured so the deciding code is testable
/// without mutating the real environment (which is unsafe with threads).
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub home: Option<PathBuf>,
    pub opsdeck_config: Option<OsString>,
    pub xdg_config_home: Option<OsString>,
    pub xdg_state_home: Option<OsString>,
}

impl Environment {
    fn from_process() -> Self {
        Self {
            home: std::env::home_dir(),
            opsdeck_config: std::env::var_os("OPSDECK_CONFIG"),
            xdg_config_home: std::env::var_os("XDG_CONFIG_HOME"),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME"),
        }
    }

    /// An XDG base directory: the variable when it is an absolute path (the spec says to ignore
    /// relative ones), else `~/<fallback>`.
    fn xdg_dir(&self, var: Option<&OsString>, fallback: &str) -> Option<PathBuf> {
        var.map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| self.home.as_ref().map(|h| h.join(fallback)))
    }

    pub fn default_audit_log(&self) -> PathBuf {
        self.xdg_dir(self.xdg_state_home.as_ref(), ".local/state")
            .unwrap_or_default()
            .join("opsdeck/audit.jsonl")
    }
}

pub(crate) const DEFAULT_LOCK_DIR: &str = "/var/lib/opsdeck/locks";
const SYSTEM_CONFIG: &str = "/etc/opsdeck/config.toml";

fn locate_with(
    explicit: Option<&Path>,
    env: &Environment,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env.opsdeck_config.as_ref().filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let user = env
        .xdg_dir(env.xdg_config_home.as_ref(), ".config")
        .map(|dir| dir.join("opsdeck/config.toml"));
    user.into_iter()
        .chain([PathBuf::from(SYSTEM_CONFIG)])
        .find(|p| exists(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            home: Some("/home/oncall".into()),
            ..Environment::default()
        }
    }

    #[test]
    fn locate_prefers_explicit_then_env_even_when_missing() {
        let mut e = env();
        e.opsdeck_config = Some("/tmp/from-env.toml".into());
        let none = |_: &Path| false;
        assert_eq!(
            locate_with(Some(Path::new("/x/c.toml")), &e, &none),
            Some(PathBuf::from("/x/c.toml"))
        );
        assert_eq!(
            locate_with(None, &e, &none),
            Some(PathBuf::from("/tmp/from-env.toml"))
        );
    }

    #[test]
    fn locate_falls_back_to_xdg_then_etc() {
        let mut e = env();
        let all = |_: &Path| true;
        assert_eq!(
            locate_with(None, &e, &all),
            Some(PathBuf::from("/home/oncall/.config/opsdeck/config.toml"))
        );
        e.xdg_config_home = Some("/cfg".into());
        assert_eq!(
            locate_with(None, &e, &all),
            Some(PathBuf::from("/cfg/opsdeck/config.toml"))
        );
        // A relative XDG_CONFIG_HOME is ignored, per the XDG spec.
        e.xdg_config_home = Some("relative".into());
        assert_eq!(
            locate_with(None, &e, &all),
            Some(PathBuf::from("/home/oncall/.config/opsdeck/config.toml"))
        );
        let only_etc = |p: &Path| p == Path::new(SYSTEM_CONFIG);
        assert_eq!(
            locate_with(None, &e, &only_etc),
            Some(PathBuf::from(SYSTEM_CONFIG))
        );
        assert_eq!(locate_with(None, &e, &|_| false), None);
    }

    #[test]
    fn audit_log_defaults_to_xdg_state_home() {
        let mut e = env();
        assert_eq!(
            e.default_audit_log(),
            PathBuf::from("/home/oncall/.local/state/opsdeck/audit.jsonl")
        );
        e.xdg_state_home = Some("/state".into());
        assert_eq!(
            e.default_audit_log(),
            PathBuf::from("/state/opsdeck/audit.jsonl")
        );
    }

    #[test]
    fn error_display_names_file_line_and_key() {
        let mut e = ConfigError {
            file: "config.toml".into(),
            line: Some(12),
            key: "cluster[1].protected".into(),
            message: "expected a boolean (true or false), found a string".into(),
        };
        assert_eq!(
            e.to_string(),
            "config.toml:12: cluster[1].protected: expected a boolean (true or false), found a string"
        );
        e.line = None;
        e.key.clear();
        e.message = "cannot read".into();
        assert_eq!(e.to_string(), "config.toml: cannot read");
    }
}
