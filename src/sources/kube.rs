//! The Kubernetes source: watches Pods, Deployments, StatefulSets, DaemonSets and Nodes of one
//! cluster (list + watch per kind, see `reflect.rs`; no polling), reduces every object to a
//! compact summary on arrival and publishes a whole [`KubeSnapshot`] whenever something
//! changed. A silent API server is probed and, past `reflect::STALE_AFTER`, marked stale.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
#[cfg(test)]
use kube::Resource;
use kube::config::KubeConfigOptions;
use kube::runtime::watcher;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::reflect::{self, KindSpec, Signal, Step, Table, Tagged};
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

#[cfg(test)]
fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or("")
    )
}

/// A short, human reason for a kube-runtime watcher failure (the sources that still use
/// kube-runtime's reflector): what the server answered, or why it could not be reached.
pub(crate) fn describe(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => reflect::describe_error(e),
        other => other.to_string(),
    }
}

/// One table change of any of the watched kinds.
#[derive(Debug)]
enum Change {
    Pod(Step<Arc<PodSummary>>),
    Deployment(Step<WorkloadSummary>),
    StatefulSet(Step<WorkloadSummary>),
    DaemonSet(Step<WorkloadSummary>),
    Node(Step<NodeSummary>),
}

/// The kinds, in the order of `ClusterTables::failing`.
const KINDS: usize = 5;

/// Every kind in its own table: a relist of one kind never touches another.
#[derive(Default)]
struct ClusterTables {
    pods: Table<Arc<PodSummary>>,
    deployments: Table<WorkloadSummary>,
    statefulsets: Table<WorkloadSummary>,
    daemonsets: Table<WorkloadSummary>,
    nodes: Table<NodeSummary>,
}

impl ClusterTables {
    fn apply(&mut self, change: Change) -> bool {
        match change {
            Change::Pod(s) => self.pods.apply(s),
            Change::Deployment(s) => self.deployments.apply(s),
            Change::StatefulSet(s) => self.statefulsets.apply(s),
            Change::DaemonSet(s) => self.daemonsets.apply(s),
            Change::Node(s) => self.nodes.apply(s),
        }
    }

    fn complete(&self) -> bool {
        self.pods.complete
            && self.deployments.complete
            && self.statefulsets.complete
            && self.daemonsets.complete
            && self.nodes.complete
    }

    fn snapshot(&self) -> KubeSnapshot {
        let workloads = [&self.deployments, &self.statefulsets, &self.daemonsets]
            .into_iter()
            .flat_map(|t| t.live.values().cloned())
            .collect();
        let bad = self
            .pods
            .bad
            .values()
            .chain(self.deployments.bad.values())
            .chain(self.statefulsets.bad.values())
            .chain(self.daemonsets.bad.values())
            .chain(self.nodes.bad.values())
            .cloned()
            .collect();
        KubeSnapshot::new(
            self.pods.live.values().cloned().collect(),
            workloads,
            self.nodes.live.values().cloned().collect(),
        )
        .with_undecodable(bad)
    }
}

fn spec(kind: &'static str, path: &str) -> KindSpec {
    KindSpec {
        kind,
        path: path.to_string(),
        labels: None,
        fields: None,
    }
}

/// Starts one task per kind; they stop when the returned set is dropped.
fn start_kinds(
    client: &Client,
    out: &UnboundedSender<Tagged<Change>>,
    highest: &Arc<AtomicU64>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(reflect::run_kind::<PodLite, _>(
        client.clone(),
        spec("Pod", "/api/v1/pods"),
        |p| Arc::new(p.summary()),
        reflect::forward(0, Change::Pod, out.clone()),
        highest.clone(),
    ));
    set.spawn(reflect::run_kind::<Deployment, _>(
        client.clone(),
        spec("Deployment", "/apis/apps/v1/deployments"),
        WorkloadSummary::from_deployment,
        reflect::forward(1, Change::Deployment, out.clone()),
        highest.clone(),
    ));
    set.spawn(reflect::run_kind::<StatefulSet, _>(
        client.clone(),
        spec("StatefulSet", "/apis/apps/v1/statefulsets"),
        WorkloadSummary::from_statefulset,
        reflect::forward(2, Change::StatefulSet, out.clone()),
        highest.clone(),
    ));
    set.spawn(reflect::run_kind::<DaemonSet, _>(
        client.clone(),
        spec("DaemonSet", "/apis/apps/v1/daemonsets"),
        WorkloadSummary::from_daemonset,
        reflect::forward(3, Change::DaemonSet, out.clone()),
        highest.clone(),
    ));
    set.spawn(reflect::run_kind::<Node, _>(
        client.clone(),
        spec("Node", "/api/v1/nodes"),
        NodeSummary::from_node,
        reflect::forward(4, Change::Node, out.clone()),
        highest.clone(),
    ));
    set
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
    // What the console was last told was wrong, across rebuilds of the client.
    let mut reported: Option<String> = None;
    loop {
        let client = tokio::select! {
            _ = cancel.cancelled() => return,
            c = client_for(&cluster) => c,
        };
        let client = match client {
            Ok(c) => c,
            Err(reason) => {
                if reported.as_ref() != Some(&reason) {
                    reported = Some(reason.clone());
                    if !send(SourceUpdate::KubeFailing { reason }) {
                        return;
                    }
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
        if !follow(client, &send, &cancel, &mut reported).await {
            return;
        }
        // A rebuild (a stall, a replaced server) starts over with a fresh client and lists.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

type Probe = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<Result<Option<u64>, kube::Error>, tokio::time::error::Elapsed>,
            > + Send,
    >,
>;

/// Follows every kind with one client and watches its liveness; returns false when the
/// console is gone or cancelled, true to start over with a new client (after a stall or when
/// the server was replaced: every kind is then listed afresh).
///
/// Liveness: every page, event and bookmark counts as the server speaking. After
/// `PROBE_AFTER` of silence one small list is sent on the same client; with no word at all
/// for `STALE_AFTER` the cluster is marked stale (`no answer from the API for 15s`), and
/// probed every few seconds; the first answer starts over with fresh lists, which clear the
/// mark. A probe whose resourceVersion is lower than one already seen means the API server
/// was replaced: start over too.
async fn follow(
    client: Client,
    send: &impl Fn(SourceUpdate) -> bool,
    cancel: &CancellationToken,
    reported: &mut Option<String>,
) -> bool {
    use tokio::time::Instant;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Tagged<Change>>();
    let highest = Arc::new(AtomicU64::new(0));
    let _kinds = start_kinds(&client, &tx, &highest);
    drop(tx);
    let mut tables = ClusterTables::default();
    let mut failing: [Option<String>; KINDS] = Default::default();
    let started = Instant::now();
    let mut last_heard = started;
    let mut probe: Option<Probe> = None;
    let mut next_probe = started + reflect::PROBE_AFTER;
    let mut stalled = false;
    let mut probe_failure: Option<String> = None;
    let mut told_initial_silence = false;
    let mut dirty = false;
    loop {
        let probe_at = next_probe.max(last_heard + reflect::PROBE_AFTER);
        tokio::select! {
            _ = cancel.cancelled() => return false,
            m = rx.recv() => {
                let Some(first) = m else { return true };
                let mut batch = vec![first];
                // Drain whatever else is ready so a burst becomes one snapshot.
                while let Ok(m) = rx.try_recv() {
                    batch.push(m);
                }
                for (i, signal) in batch {
                    match signal {
                        Signal::Failed(reason) => {
                            tracing::debug!(kind = i, %reason, "kind failing");
                            failing[i] = Some(reason);
                        }
                        other => {
                            last_heard = Instant::now();
                            probe_failure = None;
                            match other {
                                Signal::Live => failing[i] = None,
                                Signal::Change(change) => dirty |= tables.apply(change),
                                _ => {}
                            }
                        }
                    }
                }
                // The server speaks again after a stall: start over rather than trust
                // connections that hung.
                if stalled && last_heard.elapsed() < Duration::from_secs(1) {
                    return true;
                }
            }
            r = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                probe = None;
                let now = Instant::now();
                next_probe = now + reflect::PROBE_TIMEOUT;
                match r {
                    Ok(Ok(rv)) => {
                        last_heard = now;
                        next_probe = now + reflect::PROBE_AFTER;
                        probe_failure = None;
                        if stalled {
                            return true;
                        }
                        let seen = highest.load(Ordering::SeqCst);
                        if rv.is_some_and(|rv| rv < seen) {
                            tracing::info!(seen, ?rv, "API server's resourceVersion went back: listing again");
                            return true;
                        }
                    }
                    Ok(Err(e)) => probe_failure = Some(reflect::describe_error(&e)),
                    Err(_) => {}
                }
            }
            _ = tokio::time::sleep_until(probe_at), if probe.is_none() => {
                let c = client.clone();
                probe = Some(Box::pin(async move {
                    tokio::time::timeout(reflect::PROBE_TIMEOUT, reflect::probe(&c)).await
                }));
                next_probe = Instant::now() + reflect::PROBE_TIMEOUT;
                continue;
            }
            _ = tokio::time::sleep_until(last_heard + reflect::STALE_AFTER), if !stalled => {
                stalled = true;
            }
            _ = tokio::time::sleep_until(started + INITIAL_SILENCE), if !tables.complete() && !told_initial_silence => {
                told_initial_silence = true;
                if reported.is_none() {
                    let reason = format!("no complete answer from the API server within {}s", INITIAL_SILENCE.as_secs());
                    *reported = Some(reason.clone());
                    if !send(SourceUpdate::KubeFailing { reason }) { return false; }
                }
                continue;
            }
        }
        let failure = if stalled {
            Some(reflect::no_answer_reason())
        } else {
            failing
                .iter()
                .flatten()
                .next()
                .cloned()
                .or(probe_failure.clone())
        };
        if let Some(reason) = failure {
            if reported.as_ref() != Some(&reason) {
                *reported = Some(reason.clone());
                if !send(SourceUpdate::KubeFailing { reason }) {
                    return false;
                }
            }
        } else if tables.complete() && (dirty || reported.is_some()) {
            *reported = None;
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
