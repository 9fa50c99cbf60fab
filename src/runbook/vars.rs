//! Variables for a run: what the console provides for the target cluster, the runbook's declared
//! variables, and what steps hand on through `$OPSDECK_ENV`. They reach commands only as
//! environment variables; secret values are masked wherever text leaves the process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::ClusterConfig;

/// The cluster a run targets, with what its steps need to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub context: String,
    pub kubeconfig: PathBuf,
    pub app_namespace: String,
    pub protected: bool,
    pub read_only: bool,
    pub env: BTreeMap<String, String>,
}

impl Target {
    /// Resolves the kubeconfig path and context the way the console's client does.
    pub fn from_config(c: &ClusterConfig) -> Target {
        let kubeconfig = c.kubeconfig.clone().unwrap_or_else(default_kubeconfig);
        let context = c.context.clone().unwrap_or_else(|| {
            kube::config::Kubeconfig::read_from(&kubeconfig)
                .ok()
                .and_then(|k| k.current_context)
                .unwrap_or_else(|| "default".into())
        });
        Target {
            name: c.name.clone(),
            context,
            kubeconfig,
            app_namespace: c.app_namespace.clone().unwrap_or_default(),
            protected: c.protected,
            read_only: c.read_only,
            env: c.env.clone(),
        }
    }
}

fn default_kubeconfig() -> PathBuf {
    if let Some(first) =
        std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).next())
    {
        return first;
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".kube/config")
}

/// Every variable of a run.
#[derive(Debug, Clone, Default)]
pub struct RunVars {
    values: BTreeMap<String, String>,
    secret: BTreeSet<String>,
    /// Names set by steps through `$OPSDECK_ENV`, in the order they arrived.
    pub handed_on: Vec<String>,
}

impl RunVars {
    /// The console's own variables for `target`, then the cluster's `[cluster.env]`.
    pub fn for_target(target: &Target) -> RunVars {
        let mut v = RunVars::default();
        for (k, val) in &target.env {
            v.values.insert(k.clone(), val.clone());
        }
        v.values.insert("CLUSTER".into(), target.name.clone());
        v.values.insert("CONTEXT".into(), target.context.clone());
        v.values
            .insert("KUBECONFIG".into(), target.kubeconfig.display().to_string());
        v.values
            .insert("APP_NAMESPACE".into(), target.app_namespace.clone());
        v
    }

    pub fn set(&mut self, name: &str, value: String, secret: bool) {
        self.values.insert(name.to_string(), value);
        if secret {
            self.secret.insert(name.to_string());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The environment for a step process, including `OPSDECK_ENV`.
    pub fn env(&self, env_file: &Path) -> Vec<(String, String)> {
        let mut env: Vec<_> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("OPSDECK_ENV".into(), env_file.display().to_string()));
        env
    }

    /// Secret values, for masking.
    pub fn secret_values(&self) -> Vec<String> {
        self.secret
            .iter()
            .filter_map(|k| self.values.get(k))
            .filter(|v| !v.is_empty())
            .cloned()
            .collect()
    }

    /// Values fit to show or record: secrets as `***`.
    pub fn shown(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if self.secret.contains(k) {
                        "***".to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    }

    /// Reads `NAME=value` lines a step appended to `path`, adds them, and empties the file.
    /// Returns the names that were set.
    pub fn take_handed_on(&mut self, path: &Path) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return vec![];
        };
        let mut names = Vec::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let k = k.trim().trim_start_matches("export ").trim();
            if valid_name(k) {
                self.values.insert(k.to_string(), v.to_string());
                self.handed_on.push(k.to_string());
                names.push(k.to_string());
            }
        }
        let _ = std::fs::write(path, "");
        names
    }
}

/// A shell variable name: letters, digits and `_`, not starting with a digit.
pub fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `--var K=V`.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--var {s:?}: write it as NAME=value"))?;
    if !valid_name(k) {
        return Err(format!(
            "--var {s:?}: {k:?} is not a variable name (letters, digits, _)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_on_values_are_read_once_and_secrets_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "BACKUP=backup_1.sql.gz\nnot a line\n1BAD=x\nexport REPLICAS=2\n",
        )
        .unwrap();
        let mut v = RunVars::default();
        v.set("PGPASSWORD", "hunter2".into(), true);
        assert_eq!(v.take_handed_on(&file), ["BACKUP", "REPLICAS"]);
        assert_eq!(v.get("REPLICAS"), Some("2"));
        assert!(v.take_handed_on(&file).is_empty());
        assert_eq!(v.shown()["PGPASSWORD"], "***");
        assert_eq!(v.secret_values(), ["hunter2"]);
    }

    #[test]
    fn var_assignments_are_checked() {
        assert_eq!(
            parse_assignment("A=b=c").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert!(parse_assignment("A").is_err());
        assert!(parse_assignment("9A=x").is_err());
    }
}
