//! Data sources: one tokio task per cluster x source, each sending whole snapshots as events.
//! Nothing here touches the terminal.

pub mod argocd;
pub mod backups;
pub mod kube;
pub mod pgbouncer;
pub mod redis;
pub mod reflect;
pub mod watched;

use std::sync::Arc;

use crate::config::{ClusterConfig, Endpoint};
use crate::model::KubeSnapshot;
use crate::model::argocd::ArgocdSnapshot;

/// Starts every source of every cluster: Kubernetes always, each data panel when configured.
/// All stop when `cancel` fires.
pub fn spawn_all(
    config: &crate::config::Config,
    tx: &tokio::sync::mpsc::UnboundedSender<SourceEvent>,
    cancel: &tokio_util::sync::CancellationToken,
) {
    for (i, c) in config.clusters.iter().enumerate() {
        tokio::spawn(kube::run(i, c.clone(), tx.clone(), cancel.child_token()));
        if pgbouncer::configured(c) {
            tokio::spawn(pgbouncer::run(
                i,
                c.clone(),
                tx.clone(),
                cancel.child_token(),
            ));
        }
        if redis::configured(c) {
            tokio::spawn(redis::run(i, c.clone(), tx.clone(), cancel.child_token()));
        }
        if argocd::configured(c) {
            tokio::spawn(argocd::run(i, c.clone(), tx.clone(), cancel.child_token()));
        }
        if backups::configured(c) {
            tokio::spawn(backups::run(i, c.clone(), tx.clone(), cancel.child_token()));
        }
    }
}

/// The endpoint a client can dial: `service = ...` endpoints become the local address of an
/// internal port-forward into `cluster`; `address` and `url` are returned as they are.
pub async fn reachable_endpoint(
    cluster: &ClusterConfig,
    endpoint: &Endpoint,
) -> Result<Endpoint, String> {
    match endpoint {
        Endpoint::Service {
            namespace,
            name,
            port,
        } => {
            let addr =
                crate::forward::local_addr_for_service(cluster, namespace, name, port).await?;
            Ok(Endpoint::Address {
                host: addr.ip().to_string(),
                port: addr.port(),
            })
        }
        other => Ok(other.clone()),
    }
}

/// The first wait after a failed poll; it doubles with each failure in a row.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);
/// The longest wait between failed polls (and never more than four poll intervals).
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// Reports that a feature of cluster `index` cannot work (e.g. its config table is wrong).
pub(crate) fn report_failure(
    tx: &tokio::sync::mpsc::UnboundedSender<SourceEvent>,
    index: usize,
    feature: Feature,
    reason: String,
) {
    let _ = tx.send(SourceEvent {
        cluster: index,
        update: SourceUpdate::FeatureFailing { feature, reason },
    });
}

/// A polled feature source's state between polls (its connection, its last snapshot).
pub(crate) trait Poller: Send {
    /// Polls once: the feature's whole snapshot, or why it failed.
    fn poll(&mut self) -> impl std::future::Future<Output = Result<FeatureData, String>> + Send;

    /// The longest a whole poll may take; past it the poll is dropped and the panel marked
    /// stale (`no answer within 10s`).
    fn timeout(&self) -> std::time::Duration {
        POLL_TIMEOUT
    }

    /// Forgets connections a dropped poll may have left half-used (called after a timeout).
    fn reset(&mut self) {}
}

/// The default bound of one whole poll of a feature source.
pub const POLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a polled feature source of cluster `index` until `cancel` fires or nobody listens:
/// one `poll` in flight at most; its data is sent as a whole snapshot, a failure once per
/// distinct reason (the last data stays on screen, marked stale), a poll that does not answer
/// within the poller's timeout being one (`no answer within 10s`); the next poll comes after
/// `every`, or after a doubling backoff while polls fail.
pub(crate) async fn poll_loop(
    index: usize,
    feature: Feature,
    every: std::time::Duration,
    tx: &tokio::sync::mpsc::UnboundedSender<SourceEvent>,
    cancel: &tokio_util::sync::CancellationToken,
    mut poller: impl Poller,
) {
    let send = |update| {
        tx.send(SourceEvent {
            cluster: index,
            update,
        })
        .is_ok()
    };
    let mut backoff = FIRST_BACKOFF;
    let mut last_failure: Option<String> = None;
    loop {
        let limit = poller.timeout();
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(limit, poller.poll()) => r,
        };
        let result = result.unwrap_or_else(|_| {
            poller.reset();
            Err(format!("no answer within {}s", limit.as_secs()))
        });
        let wait = match result {
            Ok(data) => {
                last_failure = None;
                backoff = FIRST_BACKOFF;
                if !send(SourceUpdate::Feature(data)) {
                    return;
                }
                every
            }
            Err(reason) => {
                tracing::debug!(cluster = index, ?feature, %reason, "poll failed");
                if last_failure.as_ref() != Some(&reason) {
                    last_failure = Some(reason.clone());
                    if !send(SourceUpdate::FeatureFailing { feature, reason }) {
                        return;
                    }
                }
                let wait = backoff;
                backoff = (backoff * 2)
                    .min(MAX_BACKOFF)
                    .min(every.max(std::time::Duration::from_secs(1)) * 4);
                wait
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What a source reports about one cluster.
#[derive(Debug, Clone)]
pub enum SourceUpdate {
    /// A complete, current picture (after the initial list of every kind).
    Kube(Arc<KubeSnapshot>),
    /// The source is failing now; the last good snapshot stays on screen, marked stale.
    KubeFailing { reason: String },
    /// A feature source's new data: a whole snapshot.
    Feature(FeatureData),
    /// A feature source is failing now; its last data stays on screen, marked stale.
    FeatureFailing { feature: Feature, reason: String },
}

/// The data panels beside Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Pgbouncer,
    Redis,
    Backups,
    Argocd,
}

impl Feature {
    /// The `source` name in findings and the key in `status --json`.
    pub fn key(self) -> &'static str {
        match self {
            Feature::Pgbouncer => "pgbouncer",
            Feature::Redis => "redis",
            Feature::Backups => "backups",
            Feature::Argocd => "argocd",
        }
    }
}

/// One feature's snapshot. Each feature adds its variant.
#[derive(Debug, Clone)]
pub enum FeatureData {
    Pgbouncer(Arc<crate::model::pgbouncer::PgbouncerSnapshot>),
    Redis(Arc<crate::model::redis::RedisSnapshot>),
    Argocd(Arc<ArgocdSnapshot>),
    Backups(Arc<crate::model::backups::BackupsSnapshot>),
}

impl FeatureData {
    pub fn feature(&self) -> Feature {
        match self {
            FeatureData::Pgbouncer(_) => Feature::Pgbouncer,
            FeatureData::Redis(_) => Feature::Redis,
            FeatureData::Argocd(_) => Feature::Argocd,
            FeatureData::Backups(_) => Feature::Backups,
        }
    }
}

/// A source's report, tagged with the index of the cluster in the config.
#[derive(Debug, Clone)]
pub struct SourceEvent {
    pub cluster: usize,
    pub update: SourceUpdate,
}
