//! Variables for a run: what the console provides for the target cluster, the runbook's declared
//! variables, and what steps hand on through `$OPSDECK_ENV`. They reach commands only as
//! environment variables; secret values are masked wherever text leaves the process.
//!
//! This module decides which names may be given a value ([`check_settable`]) and what a step's
//! process environment is ([`RunVars::env`]); every path that sets a variable goes through
//! [`RunVars::set`], which refuses the names opsdeck owns (interfaces.md "Reserved runbook
//! variables", "Step environment").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::ClusterConfig;

/// Set by opsdeck for every step from the target cluster; nothing else can set them.
pub const RESERVED: [&str; 5] = [
    "CLUSTER",
    "CONTEXT",
    "KUBECONFIG",
    "APP_NAMESPACE",
    "OPSDECK_ENV",
];

/// The only names a step takes from the console's own environment (when set).
pub const FROM_CONSOLE: [&str; 4] = ["PATH", "HOME", "LANG", "TERM"];

/// Names that change how bash or the dynamic loader behave (a `BASH_ENV` gets a file sourced
/// before the step); exact names, then prefixes.
const SHELL_NAMES: [&str; 7] = [
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PATH",
];
const SHELL_PREFIXES: [&str; 2] = ["LD_", "BASH_FUNC_"];

/// Why a variable cannot be given a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("{name} is reserved: opsdeck sets it from the target cluster, nothing else can")]
    Reserved { name: String },
    #[error("{name} is refused: it changes how the shell or the loader behaves")]
    Shell { name: String },
    #[error("{name:?} is not a variable name (letters, digits and _, not starting with a digit)")]
    NotAName { name: String },
}

impl VarError {
    /// The variable refused.
    pub fn name(&self) -> &str {
        match self {
            VarError::Reserved { name }
            | VarError::Shell { name }
            | VarError::NotAName { name } => name,
        }
    }

    /// One word for why: `reserved`, `shell` or `not a name`.
    pub fn reason(&self) -> &'static str {
        match self {
            VarError::Reserved { .. } => "reserved",
            VarError::Shell { .. } => "changes how the shell behaves",
            VarError::NotAName { .. } => "not a variable name",
        }
    }
}

/// Whether a run (through `--var`, front matter, the console's form, `[cluster.env]` or
/// `$OPSDECK_ENV`) may give `name` a value. The one place that decides.
pub fn check_settable(name: &str) -> Result<(), VarError> {
    if !valid_name(name) {
        return Err(VarError::NotAName { name: name.into() });
    }
    if RESERVED.contains(&name) || name.starts_with("OPSDECK_") {
        return Err(VarError::Reserved { name: name.into() });
    }
    if SHELL_NAMES.contains(&name) || SHELL_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(VarError::Shell { name: name.into() });
    }
    Ok(())
}

/// The cluster a run targets, with what its steps need to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// The context the console's client uses: the cluster's `context`, else the merged
    /// kubeconfig's current context.
    pub context: String,
    /// `$KUBECONFIG` as the console resolves it: the cluster's `kubeconfig`, else every file of
    /// the default KUBECONFIG rules, `:`-separated.
    pub kubeconfig: String,
    pub app_namespace: String,
    pub protected: bool,
    pub read_only: bool,
    /// The cluster's own machine (`host` in the config): where `host=true` steps may run.
    pub host: Option<String>,
    pub env: BTreeMap<String, String>,
}

impl Target {
    /// Resolves the kubeconfig and context exactly as the console's client does
    /// ([`crate::config::load_kubeconfig`]).
    pub fn from_config(c: &ClusterConfig) -> Target {
        // An unreadable kubeconfig fails the console's client too; the step's kubectl then
        // fails the same way on `--context "$CONTEXT"`.
        let context = crate::config::kube_context(c).unwrap_or_else(|_| "default".into());
        Target {
            name: c.name.clone(),
            context,
            kubeconfig: crate::config::kubeconfig_value(c),
            app_namespace: c.app_namespace.clone().unwrap_or_default(),
            protected: c.protected,
            read_only: c.read_only,
            host: c.host.clone(),
            env: c.env.clone(),
        }
    }
}

/// What one read of `$OPSDECK_ENV` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandOff {
    /// Names set, in the order they arrived.
    pub set: Vec<String>,
    /// Lines naming a variable a step cannot set: ignored.
    pub ignored: Vec<VarError>,
}

impl HandOff {
    /// One line per ignored name for the step's output, e.g.
    /// `opsdeck: ignored CONTEXT from $OPSDECK_ENV: reserved`.
    pub fn notices(&self) -> Vec<String> {
        self.ignored
            .iter()
            .map(|e| {
                format!(
                    "opsdeck: ignored {} from $OPSDECK_ENV: {}",
                    e.name(),
                    e.reason()
                )
            })
            .collect()
    }
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
    /// The reserved variables for `target`, and the cluster's `[cluster.env]` (whose reserved
    /// names the config already refuses; any that got through are left out here).
    pub fn for_target(target: &Target) -> RunVars {
        let mut v = RunVars::default();
        for (k, val) in &target.env {
            if check_settable(k).is_ok() {
                v.values.insert(k.clone(), val.clone());
            }
        }
        v.values.insert("CLUSTER".into(), target.name.clone());
        v.values.insert("CONTEXT".into(), target.context.clone());
        v.values
            .insert("KUBECONFIG".into(), target.kubeconfig.clone());
        v.values
            .insert("APP_NAMESPACE".into(), target.app_namespace.clone());
        v
    }

    /// Gives a run variable a value. Refuses every name [`check_settable`] refuses, so no path
    /// (`--var`, a declared variable, the form, a hand-off) can retarget a step.
    pub fn set(&mut self, name: &str, value: String, secret: bool) -> Result<(), VarError> {
        check_settable(name)?;
        self.values.insert(name.to_string(), value);
        if secret {
            self.secret.insert(name.to_string());
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The cluster and context exported to the steps: what a confirmation must show.
    pub fn target_shown(&self) -> (&str, &str) {
        (
            self.get("CLUSTER").unwrap_or_default(),
            self.get("CONTEXT").unwrap_or_default(),
        )
    }

    /// The whole environment of a step process (interfaces.md "Step environment"): `PATH`,
    /// `HOME`, `LANG`, `TERM` from the console's environment when set, then the reserved
    /// variables, `[cluster.env]` and the run's variables, and `OPSDECK_ENV`. Nothing else.
    pub fn env(&self, env_file: &Path) -> Vec<(String, String)> {
        self.env_with(env_file, |k| {
            std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// [`RunVars::env`] with the console's environment given (for tests).
    pub fn env_with(
        &self,
        env_file: &Path,
        console: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = FROM_CONSOLE
            .iter()
            .filter_map(|k| console(k).map(|v| (k.to_string(), v)))
            .collect();
        for (k, v) in &self.values {
            env.insert(k.clone(), v.clone());
        }
        env.insert("OPSDECK_ENV".into(), env_file.display().to_string());
        env.into_iter().collect()
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

    /// Reads `NAME=value` lines (`NAME:secret=value` for a masked one) a step appended to
    /// `path`, adds them, and empties the file. Names a step cannot set are ignored and
    /// reported, so the caller can say so in the step's output ([`HandOff::notices`]).
    pub fn take_handed_on(&mut self, path: &Path) -> HandOff {
        let mut out = HandOff::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return out;
        };
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let k = k.trim().trim_start_matches("export ").trim();
            let (k, secret) = match k.strip_suffix(":secret") {
                Some(k) => (k, true),
                None => (k, false),
            };
            if !valid_name(k) {
                continue;
            }
            match self.set(k, v.to_string(), secret) {
                Ok(()) => {
                    self.handed_on.push(k.to_string());
                    out.set.push(k.to_string());
                }
                Err(e) => out.ignored.push(e),
            }
        }
        let _ = std::fs::write(path, "");
        out
    }
}

/// A shell variable name: letters, digits and `_`, not starting with a digit.
pub fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `--var K=V`; a name [`check_settable`] refuses is an error naming it.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--var {s:?}: write it as NAME=value"))?;
    check_settable(k).map_err(|e| format!("--var {k}: {e}"))?;
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
        v.set("PGPASSWORD", "hunter2".into(), true).unwrap();
        assert_eq!(v.take_handed_on(&file).set, ["BACKUP", "REPLICAS"]);
        assert_eq!(v.get("REPLICAS"), Some("2"));
        assert!(v.take_handed_on(&file).set.is_empty());
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
        let e = parse_assignment("CONTEXT=prod").unwrap_err();
        assert!(e.contains("CONTEXT") && e.contains("reserved"), "{e}");
        assert!(parse_assignment("BASH_ENV=/tmp/x").is_err());
    }

    #[test]
    fn reserved_and_shell_names_are_refused_by_the_one_check() {
        for name in [
            "CLUSTER",
            "CONTEXT",
            "KUBECONFIG",
            "APP_NAMESPACE",
            "OPSDECK_ENV",
            "OPSDECK_VAR_X",
            "OPSDECK_",
        ] {
            assert!(
                matches!(check_settable(name), Err(VarError::Reserved { .. })),
                "{name}"
            );
        }
        for name in [
            "BASH_ENV",
            "ENV",
            "SHELLOPTS",
            "BASHOPTS",
            "PS4",
            "IFS",
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_FUNC_x",
        ] {
            assert!(
                matches!(check_settable(name), Err(VarError::Shell { .. })),
                "{name}"
            );
        }
        for name in [
            "BACKUP_DIR",
            "context",
            "HOME",
            "LANG",
            "OPSDECKX",
            "ENVIRONMENT",
        ] {
            assert_eq!(check_settable(name), Ok(()), "{name}");
        }
        let mut v = RunVars::default();
        let e = v.set("CONTEXT", "prod".into(), false).unwrap_err();
        assert_eq!(e.name(), "CONTEXT");
        assert!(e.to_string().contains("reserved"), "{e}");
        assert!(v.set("BASH_ENV", "/tmp/x".into(), false).is_err());
        assert_eq!(v.get("BASH_ENV"), None);
    }

    #[test]
    fn a_hand_off_cannot_retarget_and_says_what_it_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "CONTEXT=prod\nPATH=/tmp/evil\nOPSDECK_ENV=/etc/passwd\nOK=1\nTOKEN:secret=s3cr3t\n",
        )
        .unwrap();
        let target = Target {
            name: "staging".into(),
            context: "staging".into(),
            kubeconfig: "/k".into(),
            app_namespace: String::new(),
            protected: false,
            read_only: false,
            host: None,
            env: BTreeMap::new(),
        };
        let mut v = RunVars::for_target(&target);
        let h = v.take_handed_on(&file);
        assert_eq!(h.set, ["OK", "TOKEN"]);
        assert_eq!(
            h.notices(),
            [
                "opsdeck: ignored CONTEXT from $OPSDECK_ENV: reserved",
                "opsdeck: ignored PATH from $OPSDECK_ENV: changes how the shell behaves",
                "opsdeck: ignored OPSDECK_ENV from $OPSDECK_ENV: reserved",
            ]
        );
        assert_eq!(v.target_shown(), ("staging", "staging"));
        assert_eq!(v.secret_values(), ["s3cr3t"]);
    }

    #[test]
    fn a_step_gets_only_the_allowed_names() {
        let target = Target {
            name: "production".into(),
            context: "prod-ctx".into(),
            kubeconfig: "/a:/b".into(),
            app_namespace: "apps".into(),
            protected: true,
            read_only: false,
            host: None,
            env: [
                ("BACKUP_DIR".to_string(), "/b".to_string()),
                ("CONTEXT".to_string(), "evil".to_string()),
            ]
            .into(),
        };
        let mut v = RunVars::for_target(&target);
        v.set("WHO", "me".into(), false).unwrap();
        let console = |k: &str| match k {
            "PATH" => Some("/usr/bin".to_string()),
            "TERM" => Some("xterm".to_string()),
            "PGBOUNCER_PASSWORD" | "CONTEXT" => Some("leak".to_string()),
            _ => None,
        };
        let env: BTreeMap<_, _> = v
            .env_with(Path::new("/run/env"), console)
            .into_iter()
            .collect();
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "APP_NAMESPACE",
                "BACKUP_DIR",
                "CLUSTER",
                "CONTEXT",
                "KUBECONFIG",
                "OPSDECK_ENV",
                "PATH",
                "TERM",
                "WHO"
            ]
        );
        assert_eq!(env["CONTEXT"], "prod-ctx");
        assert_eq!(env["KUBECONFIG"], "/a:/b");
        assert_eq!(env["OPSDECK_ENV"], "/run/env");
    }
}
