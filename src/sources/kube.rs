//! The Kubernetes source: watches Pods, Deployments, StatefulSets, DaemonSets and Nodes of one
//! cluster (kube-runtime watchers, no polling), reduces every object to a compact summary on
//! arrival and publishes a whole [`KubeSnapshot`] whenever something changed.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream::BoxStream};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::config::KubeConfigOptions;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::{SourceEvent, SourceUpdate};
use crate::config::ClusterConfig;
use crate::model::{KubeSnapshot, NodeSummary, PodSummary, WorkloadSummary};

/// How long a cluster may stay silent during its initial list before it is reported as failing.
pub const INITIAL_SILENCE: Duration = Duration::from_secs(10);

/// Builds a client for one cluster: its own kubeconfig file (K3s names every context `default`,
/// so files are never merged) or the default KUBECONFIG rules, and its context.
pub async fn client_for(cluster: &ClusterConfig) -> Result<Client, String> {
    // The same resolution as runbook steps' KUBECONFIG and CONTEXT (config::kubeconfig_files).
    let kubeconfig = crate::config::load_kubeconfig(cluster)?;
    let options = KubeConfigOptions {
        context: cluster.context.clone(),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            format!(
                "kubeconfig context {:?}: {e}",
                cluster.context.as_deref().unwrap_or("(current)")
            )
        })?;
    config.connect_timeout = Some(Duration::from_secs(5));
    Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

/// One summarised object change from any of the watched kinds.
enum Change {
    Pod(WatchStep<Arc<PodSummary>>),
    Workload(WatchStep<WorkloadSummary>),
    Node(WatchStep<NodeSummary>),
}

enum WatchStep<T> {
    Restart,
    Put(String, T),
    Delete(String),
    InitDone,
    Failed(String),
}

/// The parts of a Pod the console reads: metadata without `managedFields`, annotations and
/// owners, `spec.nodeName` and the status. The initial list of a big cluster is mostly
/// container specs, env and volumes; decoding them into full `k8s-openapi` Pods only to drop
/// them took most of the time to first screen and most of the memory (BENCHMARKS.md). serde
/// skips what is not named here without building anything.
#[derive(Clone, Debug, serde::Deserialize)]
struct PodLite {
    #[serde(deserialize_with = "lite_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpecLite>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpecLite {
    #[serde(default)]
    node_name: Option<String>,
}

fn lite_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MetaLite {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
        labels: Option<std::collections::BTreeMap<String, String>>,
    }
    let m = <MetaLite as serde::Deserialize>::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        labels: m.labels,
        ..ObjectMeta::default()
    })
}

impl k8s_openapi::Resource for PodLite {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for PodLite {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl PodLite {
    fn summary(&self) -> PodSummary {
        PodSummary::from_parts(
            &self.metadata,
            self.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            self.status.as_ref(),
        )
    }
}

fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or("")
    )
}

/// Objects asked for per page of the initial list.
const PAGE_SIZE: u32 = 250;

/// A watcher on `api`, each object reduced by `summarise` the moment it arrives.
fn watch<K, T>(
    api: Api<K>,
    tag: &'static str,
    summarise: impl Fn(&K) -> T + Send + 'static,
    wrap: fn(WatchStep<T>) -> Change,
) -> BoxStream<'static, Change>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    T: Send + 'static,
{
    // Pages of 250 objects: a page of heavy pods is ~1.7 MB of JSON, decoded while the next
    // is asked for; the allocator keeps the peak of a page per cluster, so smaller pages
    // keep the resident set down (500: 57 MiB, see BENCHMARKS.md).
    watcher(api, watcher::Config::default().page_size(PAGE_SIZE))
        .default_backoff()
        .filter_map(move |ev| {
            let step = match ev {
                Ok(watcher::Event::Init) => Some(WatchStep::Restart),
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                    Some(WatchStep::Put(key_of(&o), summarise(&o)))
                }
                Ok(watcher::Event::Delete(o)) => Some(WatchStep::Delete(key_of(&o))),
                Ok(watcher::Event::InitDone) => Some(WatchStep::InitDone),
                // A too-old resourceVersion is routine: the watcher re-lists by itself.
                Err(watcher::Error::WatchError(s)) if s.code == 410 => None,
                Err(e) => {
                    tracing::debug!(kind = tag, error = %e, "watch error");
                    Some(WatchStep::Failed(describe(&e)))
                }
            };
            futures::future::ready(step.map(wrap))
        })
        .boxed()
}

/// A short, human reason for a watch failure.
pub(crate) fn describe(e: &watcher::Error) -> String {
    let inner = match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        other => return other.to_string(),
    };
    match inner {
        kube::Error::Api(s) => {
            format!("API server answered {} {}: {}", s.code, s.reason, s.message)
        }
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                msg = s.to_string();
                src = s.source();
            }
            if msg.contains("Connection refused") {
                "connection refused".to_string()
            } else {
                msg
            }
        }
    }
}

/// Objects of one kind, with the initial list buffered until it is complete.
struct Table<T> {
    live: HashMap<String, T>,
    pending: Option<HashMap<String, T>>,
    complete: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            live: HashMap::new(),
            pending: None,
            complete: false,
        }
    }
}

impl<T> Table<T> {
    /// Applies one step; returns true when the visible contents changed.
    fn apply(&mut self, step: WatchStep<T>, failure: &mut Option<String>) -> bool {
        match step {
            WatchStep::Restart => {
                self.pending = Some(HashMap::new());
                false
            }
            WatchStep::Put(k, v) => {
                *failure = None;
                match &mut self.pending {
                    Some(p) => {
                        p.insert(k, v);
                        false
                    }
                    None => {
                        self.live.insert(k, v);
                        true
                    }
                }
            }
            WatchStep::Delete(k) => {
                *failure = None;
                self.live.remove(&k).is_some()
            }
            WatchStep::InitDone => {
                *failure = None;
                if let Some(p) = self.pending.take() {
                    self.live = p;
                }
                self.complete = true;
                true
            }
            WatchStep::Failed(reason) => {
                *failure = Some(reason);
                false
            }
        }
    }
}

#[derive(Default)]
struct ClusterTables {
    pods: Table<Arc<PodSummary>>,
    workloads: Table<WorkloadSummary>,
    nodes: Table<NodeSummary>,
}

impl ClusterTables {
    fn apply(&mut self, change: Change, failure: &mut Option<String>) -> bool {
        match change {
            Change::Pod(s) => self.pods.apply(s, failure),
            Change::Workload(s) => self.workloads.apply(s, failure),
            Change::Node(s) => self.nodes.apply(s, failure),
        }
    }

    fn complete(&self) -> bool {
        self.pods.complete && self.workloads.complete && self.nodes.complete
    }

    fn snapshot(&self) -> KubeSnapshot {
        KubeSnapshot::new(
            self.pods.live.values().cloned().collect(),
            self.workloads.live.values().cloned().collect(),
            self.nodes.live.values().cloned().collect(),
        )
    }
}

fn streams(client: Client) -> BoxStream<'static, Change> {
    futures::stream::select_all([
        watch(
            Api::<PodLite>::all(client.clone()),
            "pods",
            |p| Arc::new(p.summary()),
            Change::Pod,
        ),
        watch(
            Api::<Deployment>::all(client.clone()),
            "deployments",
            WorkloadSummary::from_deployment,
            Change::Workload,
        ),
        watch(
            Api::<StatefulSet>::all(client.clone()),
            "statefulsets",
            WorkloadSummary::from_statefulset,
            Change::Workload,
        ),
        watch(
            Api::<DaemonSet>::all(client.clone()),
            "daemonsets",
            WorkloadSummary::from_daemonset,
            Change::Workload,
        ),
        watch(
            Api::<Node>::all(client),
            "nodes",
            NodeSummary::from_node,
            Change::Node,
        ),
    ])
    .boxed()
}

/// Runs the Kubernetes source of cluster `index` until `cancel` fires.
pub async fn run(
    index: usize,
    cluster: ClusterConfig,
    tx: UnboundedSender<SourceEvent>,
    cancel: CancellationToken,
) {
    let send = |update| {
        tx.send(SourceEvent {
            cluster: index,
            update,
        })
        .is_ok()
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let client = tokio::select! {
            _ = cancel.cancelled() => return,
            c = client_for(&cluster) => c,
        };
        let client = match client {
            Ok(c) => c,
            Err(reason) => {
                if !send(SourceUpdate::KubeFailing { reason }) {
                    return;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        if !follow(client, &send, &cancel).await {
            return;
        }
    }
}

/// How often a failing cluster is probed (`GET /version`) to notice it is back even when its
/// watches resume without a change to report.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Follows the watches; returns false when the console is gone or cancelled, true to rebuild.
async fn follow(
    client: Client,
    send: &impl Fn(SourceUpdate) -> bool,
    cancel: &CancellationToken,
) -> bool {
    let mut changes = streams(client.clone());
    let mut tables = ClusterTables::default();
    let mut failure: Option<String> = None;
    let mut last_error = tokio::time::Instant::now();
    let mut reported_failure: Option<String> = None;
    let mut dirty = false;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            n = changes.next() => {
                let Some(change) = n else { return true };
                dirty |= tables.apply(change, &mut failure);
                // Drain whatever else is ready so a burst becomes one snapshot.
                while let Some(Some(change)) = changes.next().now_or_never() {
                    dirty |= tables.apply(change, &mut failure);
                }
                if failure.is_some() {
                    last_error = tokio::time::Instant::now();
                }
            }
            _ = tokio::time::sleep(INITIAL_SILENCE), if !tables.complete() => {
                let reason = format!("no complete answer from the API server within {}s", INITIAL_SILENCE.as_secs());
                if reported_failure.as_ref() != Some(&reason) {
                    reported_failure = Some(reason.clone());
                    if !send(SourceUpdate::KubeFailing { reason }) { return false; }
                }
                continue;
            }
            _ = probe.tick(), if failure.is_some() => {
                let answered = tokio::time::timeout(PROBE_EVERY, client.apiserver_version()).await.is_ok_and(|r| r.is_ok());
                // Back only when it answers and the watches have stopped failing for a while.
                if answered && last_error.elapsed() >= PROBE_EVERY {
                    failure = None;
                }
            }
        }
        if let Some(reason) = &failure {
            if reported_failure.as_ref() != Some(reason) {
                reported_failure = Some(reason.clone());
                if !send(SourceUpdate::KubeFailing {
                    reason: reason.clone(),
                }) {
                    return false;
                }
            }
        } else if tables.complete() && (dirty || reported_failure.is_some()) {
            reported_failure = None;
            dirty = false;
            if !send(SourceUpdate::Kube(Arc::new(tables.snapshot()))) {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_pod_summarises_like_the_full_one() {
        let v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "iam-service-7c9d-x2", "namespace": "goapps-production",
                "uid": "u1", "resourceVersion": "42", "creationTimestamp": "2026-11-25T02:00:00Z",
                "labels": {"app": "iam-service", "tier": "web"},
                "annotations": {"a": "b"},
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {".": {}}}}]},
            "spec": {"nodeName": "prod-vps", "containers": [{"name": "app", "image": "i",
                "env": [{"name": "A", "value": "1"}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 12, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        });
        let full: Pod = serde_json::from_value(v.clone()).unwrap();
        let lite: PodLite = serde_json::from_value(v).unwrap();
        assert_eq!(lite.summary(), PodSummary::from_pod(&full));
        assert_eq!(lite.metadata.resource_version.as_deref(), Some("42"));
        assert!(lite.metadata.managed_fields.is_none());
        assert_eq!(key_of(&lite), "goapps-production/iam-service-7c9d-x2");
    }
}
