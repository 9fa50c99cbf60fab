//! Data sources: one tokio task per cluster x source, each sending whole snapshots as events.
//! Nothing here touches the terminal.

pub mod kube;

use std::sync::Arc;

use crate::model::KubeSnapshot;

/// What a source reports about one cluster.
#[derive(Debug, Clone)]
pub enum SourceUpdate {
    /// A complete, current picture (after the initial list of every kind).
    Kube(Arc<KubeSnapshot>),
    /// The source is failing now; the last good snapshot stays on screen, marked stale.
    KubeFailing { reason: String },
}

/// A source's report, tagged with the index of the cluster in the config.
#[derive(Debug, Clone)]
pub struct SourceEvent {
    pub cluster: usize,
    pub update: SourceUpdate,
}
