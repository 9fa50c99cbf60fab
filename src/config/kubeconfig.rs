//! Which kubeconfig and context a cluster is reached through. One resolution for every part of
//! opsdeck — the console's client, `config check` and the runbook steps (`KUBECONFIG`,
//! `CONTEXT`) — so a step can never target another cluster than the one on screen.

use std::path::PathBuf;

use kube::config::Kubeconfig;

use super::ClusterConfig;

/// The cluster's kubeconfig files, in order: its `kubeconfig`, else every non-empty entry of
/// `$KUBECONFIG` (kube-rs and kubectl merge them, first wins), else `~/.kube/config`.
pub fn kubeconfig_files(cluster: &ClusterConfig) -> Vec<PathBuf> {
    if let Some(path) = &cluster.kubeconfig {
        return vec![path.clone()];
    }
    let from_env: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !from_env.is_empty() {
        return from_env;
    }
    std::env::home_dir()
        .map(|h| vec![h.join(".kube").join("config")])
        .unwrap_or_default()
}

/// The merged kubeconfig of [`kubeconfig_files`], read the way kube-rs reads it.
pub fn load_kubeconfig(cluster: &ClusterConfig) -> Result<Kubeconfig, String> {
    match &cluster.kubeconfig {
        Some(path) => {
            Kubeconfig::read_from(path).map_err(|e| format!("kubeconfig {}: {e}", path.display()))
        }
        None => Kubeconfig::read().map_err(|e| format!("kubeconfig: {e}")),
    }
}

/// The context the cluster targets: its `context`, else the merged kubeconfig's current context.
pub fn kube_context(cluster: &ClusterConfig) -> Result<String, String> {
    if let Some(c) = &cluster.context {
        return Ok(c.clone());
    }
    load_kubeconfig(cluster)?
        .current_context
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "the kubeconfig names no current context; set context = \"...\"".into())
}

/// `$KUBECONFIG` for a process that must see what the console sees (kubectl merges the list
/// the same way).
pub fn kubeconfig_value(cluster: &ClusterConfig) -> String {
    let files = kubeconfig_files(cluster);
    std::env::join_paths(&files)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|_| {
            files
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":")
        })
}
