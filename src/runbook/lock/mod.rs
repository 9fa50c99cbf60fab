//! One runbook run at a time per cluster, across every user and machine (interfaces.md
//! "Runbook runs"): a flock(2)ed file in `lock_dir` for this machine ([`local`]) and a Lease
//! in the cluster for every other ([`lease`]). [`acquire_run_lock`] takes both, or says why
//! not; the driver holds the [`RunLockSet`] exactly as long as the run is open.
//!
//! | file | owns |
//! |---|---|
//! | `local.rs` | `CLUSTER.lock`: symlink-safe open, flock, the holder's JSON, the shared folder |
//! | `lease.rs` | the `coordination.k8s.io/v1` Lease: take, renew, take over, release |

pub mod lease;
pub mod local;

use std::path::PathBuf;

pub use lease::{LeaseGuard, LeaseHolder, LeaseOutcome};
pub use local::{Holder, LockError, RunLock, acquire, current_holder, usable_dir};

use crate::config::{ClusterConfig, Config};

/// Who holds a cluster's run lock: a run on this machine, or the Lease (another machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldBy {
    Local(Holder),
    Lease(LeaseHolder),
}

impl std::fmt::Display for HeldBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeldBy::Local(h) => h.fmt(f),
            HeldBy::Lease(h) => h.fmt(f),
        }
    }
}

/// Why a run may not start (yet).
#[derive(Debug, thiserror::Error)]
pub enum LockRefusal {
    /// Another run holds the cluster: the engineer may watch, not run (exit 6).
    #[error("{cluster} is locked by {holder}; you may watch, not run")]
    Held { cluster: String, holder: HeldBy },
    /// The cluster's API cannot be reached, so the cross-machine lock cannot be taken. Ask the
    /// engineer to type the cluster's name, then call again with `allow_local_only` (the
    /// node-failure case); without a terminal, refuse (exit 6).
    #[error(
        "the API of cluster {cluster} is unreachable, so the cross-machine lock cannot be taken ({reason})"
    )]
    Unreachable { cluster: String, reason: String },
    /// The lock file is not safe to use (a planted symlink or hard link): refused (exit 6).
    #[error("refused: the lock file {path} is not safe to use: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    /// The lock file could not be used (exit 4).
    #[error("cannot use the lock file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl LockRefusal {
    /// Whether this is a refusal (exit 6) rather than a failure (exit 4).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, LockRefusal::Io { .. })
    }
}

/// A cluster's run lock, held: the local file lock and (unless the API was unreachable and
/// the engineer confirmed) the Lease, renewed in the background.
#[derive(Debug)]
pub struct RunLockSet {
    local: RunLock,
    lease: Option<LeaseGuard>,
    warnings: Vec<String>,
}

impl RunLockSet {
    /// What the engineer should be told (a fallback lock folder, an expired Lease taken
    /// over, no cross-machine lock for a cluster without a kubeconfig).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether the cross-machine lock is held.
    pub fn has_lease(&self) -> bool {
        self.lease.is_some()
    }

    /// Why the Lease is no longer ours, if someone took or deleted it during the run.
    pub fn lease_lost(&self) -> Option<String> {
        self.lease.as_ref().and_then(LeaseGuard::lost)
    }

    pub fn local_path(&self) -> &std::path::Path {
        self.local.path()
    }

    /// Releases both: deletes the Lease (waiting for the API, at most a few seconds), then
    /// unlocks the file. Dropping also releases, but deletes the Lease only in the background.
    pub async fn release(self) {
        if let Some(l) = self.lease {
            l.release().await;
        }
        drop(self.local);
    }
}

/// Takes the run lock of `cluster` for `runbook`: the local lock, then the Lease. With
/// `allow_local_only` (after the engineer confirmed [`LockRefusal::Unreachable`]) an
/// unreachable API leaves the local lock alone.
pub async fn acquire_run_lock(
    config: &Config,
    cluster: &ClusterConfig,
    runbook: &str,
    allow_local_only: bool,
) -> Result<RunLockSet, LockRefusal> {
    let mut warnings = Vec::new();
    let (dir, warning) = usable_dir(&config.lock_dir, &config.fallback_lock_dir());
    warnings.extend(warning);
    let actor = crate::runbook::audit::Actor::current();
    let holder = Holder {
        user: actor.user.clone(),
        host: actor.host.clone(),
        pid: std::process::id(),
        since: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        runbook: runbook.to_string(),
    };
    let local = match acquire(&dir, &cluster.name, &holder) {
        Ok(l) => l,
        Err(LockError::Held { cluster, holder }) => {
            return Err(LockRefusal::Held {
                cluster,
                holder: HeldBy::Local(*holder),
            });
        }
        Err(LockError::Unsafe { path, reason }) => {
            return Err(LockRefusal::Unsafe { path, reason });
        }
        Err(LockError::Io { path, source }) => {
            return Err(LockRefusal::Io {
                path,
                error: source,
            });
        }
    };
    let claim = lease::Claim {
        identity: format!("{}@{}", actor.user, actor.host),
        runbook: runbook.to_string(),
        pid: std::process::id(),
    };
    let lease = match lease::acquire(cluster, &claim).await {
        LeaseOutcome::Acquired(guard) => {
            if let Some(previous) = guard.took_over() {
                warnings.push(format!(
                    "took over the expired run lock of {}: {previous} (not renewed for over {}s)",
                    cluster.name,
                    lease::DURATION_S
                ));
            }
            Some(*guard)
        }
        LeaseOutcome::Held(h) => {
            return Err(LockRefusal::Held {
                cluster: cluster.name.clone(),
                holder: HeldBy::Lease(h),
            });
        }
        LeaseOutcome::Unreachable(reason) if !allow_local_only => {
            return Err(LockRefusal::Unreachable {
                cluster: cluster.name.clone(),
                reason,
            });
        }
        LeaseOutcome::Unreachable(reason) => {
            warnings.push(format!(
                "running with the local lock only: the API of {} is unreachable ({reason}); runs from other machines will not see this one",
                cluster.name
            ));
            None
        }
        LeaseOutcome::NoApi(reason) => {
            warnings.push(format!(
                "no cross-machine lock for {}: {reason}; runs from other machines will not see this one",
                cluster.name
            ));
            None
        }
    };
    Ok(RunLockSet {
        local,
        lease,
        warnings,
    })
}
