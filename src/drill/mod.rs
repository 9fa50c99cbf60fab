//! Cluster drill-down (issue 8): everything below the overview that is not drawing.
//!
//! | file | owns |
//! |---|---|
//! | `pods.rs` | the pods table model: sort, filter, namespace scope, selection (pure) |
//! | `pod.rs` | a pod's detail: containers, states, last terminations, probes |
//! | `events.rs` | events of one pod, and the cluster's Warning events deduplicated |
//! | `logs.rs` | the log tail task (follow, previous, tail lines) and its bounded buffer |
//! | `workloads.rs` | Deployments, StatefulSets, DaemonSets and CronJobs as rows |
//! | `actions.rs` | quick actions as data, performing them, and their audit records |
//!
//! Functions that decide are pure (`from_*`, `dedup_*`, the table model); functions that talk
//! to the API are `async` and take a `kube::Client`. Nothing here draws.

pub mod actions;
pub mod events;
pub mod logs;
pub mod pod;
pub mod pods;
pub mod workloads;

pub use actions::{QuickAction, QuickActionKind, WorkloadKind};
pub use events::EventRow;
pub use logs::{LogBuffer, LogEvent, LogRequest};
pub use pod::{ContainerDetail, PodDetail};
pub use pods::{NamespaceScope, PodColumn, PodFilter, PodRow, PodSort, PodTable};
pub use workloads::WorkloadRow;

/// An API call of the drill-down that failed: what was asked, of which object, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct DrillError {
    pub what: String,
    #[source]
    pub source: kube::Error,
}

impl DrillError {
    pub(crate) fn new(what: impl Into<String>) -> impl FnOnce(kube::Error) -> DrillError {
        let what = what.into();
        move |source| DrillError { what, source }
    }
}
