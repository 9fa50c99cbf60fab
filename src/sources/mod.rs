//! Data sources: one tokio task per cluster x source, each sending whole snapshots as events.
//! Nothing here touches the terminal.

pub mod argocd;
pub mod backups;
pub mod kube;
pub mod pgbouncer;
pub mod redis;
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
