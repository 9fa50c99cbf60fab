//! TEMPORARY stub of the config API (replaced by the config branch).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub runbooks_dir: Option<PathBuf>,
    pub audit_log: PathBuf,
    pub lock_dir: PathBuf,
    pub keymap: String,
    pub clusters: Vec<ClusterConfig>,
}
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    pub name: String,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub app_namespace: Option<String>,
    pub protected: bool,
    pub read_only: bool,
    pub env: BTreeMap<String, String>,
    pub pgbouncer: Option<toml::Table>,
    pub redis: Option<toml::Table>,
    pub backups: Option<toml::Table>,
    pub argocd: Option<toml::Table>,
}
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line.unwrap_or(0),
            self.key,
            self.message
        )
    }
}
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}
#[derive(serde::Deserialize)]
struct RawC {
    name: String,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    app_namespace: Option<String>,
    #[serde(default)]
    protected: bool,
}
#[derive(serde::Deserialize)]
struct Raw {
    audit_log: Option<PathBuf>,
    lock_dir: Option<PathBuf>,
    #[serde(default)]
    cluster: Vec<RawC>,
}
impl Config {
    pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
        let err = |m: String| {
            vec![ConfigError {
                file: path.into(),
                line: None,
                key: String::new(),
                message: m,
            }]
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let raw: Raw = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        Ok(Loaded {
            config: Config {
                source: Some(path.into()),
                audit_log: raw.audit_log.unwrap_or_default(),
                lock_dir: raw.lock_dir.unwrap_or_default(),
                keymap: "default".into(),
                clusters: raw
                    .cluster
                    .into_iter()
                    .map(|c| ClusterConfig {
                        name: c.name,
                        kubeconfig: c.kubeconfig,
                        context: c.context,
                        app_namespace: c.app_namespace,
                        protected: c.protected,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            warnings: vec![],
        })
    }
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("OPSDECK_CONFIG").map(PathBuf::from))
    }
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.trim_end_matches('s')
        .parse::<u64>()
        .map(std::time::Duration::from_secs)
        .map_err(|e| e.to_string())
}
