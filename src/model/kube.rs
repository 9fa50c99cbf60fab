//! Compact summaries of Kubernetes objects and the health rules over them.
//!
//! Sources reduce each Pod, workload and Node to one of these on arrival, so the console never
//! keeps full objects (a real Pod is 4-10 KB of JSON; a summary is a few hundred bytes).

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::findings::{RawFinding, Severity};
use super::{age_secs, format_age};

/// A pod's phase as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// Why a pod is unhealthy: the closed set of reasons in interfaces.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PodReason {
    CrashLoopBackOff,
    ImagePullBackOff,
    ErrImagePull,
    Error,
    #[serde(rename = "OOMKilled")]
    OomKilled,
    Pending,
    NotReady,
    Evicted,
    Unknown,
}

impl PodReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PodReason::CrashLoopBackOff => "CrashLoopBackOff",
            PodReason::ImagePullBackOff => "ImagePullBackOff",
            PodReason::ErrImagePull => "ErrImagePull",
            PodReason::Error => "Error",
            PodReason::OomKilled => "OOMKilled",
            PodReason::Pending => "Pending",
            PodReason::NotReady => "NotReady",
            PodReason::Evicted => "Evicted",
            PodReason::Unknown => "Unknown",
        }
    }

    /// Lower sorts first: the reasons that mean "broken now" before "not there yet".
    fn rank(self) -> u8 {
        match self {
            PodReason::CrashLoopBackOff => 0,
            PodReason::OomKilled => 1,
            PodReason::Error => 2,
            PodReason::ImagePullBackOff | PodReason::ErrImagePull => 3,
            PodReason::Unknown => 4,
            PodReason::NotReady => 5,
            PodReason::Evicted => 6,
            PodReason::Pending => 7,
        }
    }
}

/// What the console keeps of one Pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodSummary {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    pub ready: bool,
    pub crashloop: bool,
    /// `None` for a healthy pod (Running and ready, or Succeeded).
    pub reason: Option<PodReason>,
    pub restarts: u32,
    pub created: Option<Timestamp>,
    pub node: Option<String>,
    pub labels: Vec<(String, String)>,
}

impl PodSummary {
    pub fn from_pod(pod: &Pod) -> PodSummary {
        Self::from_parts(
            &pod.metadata,
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            pod.status.as_ref(),
        )
    }

    /// The summary from the only parts of a Pod it reads (a source may decode just these).
    pub fn from_parts(
        meta: &ObjectMeta,
        node_name: Option<&str>,
        status: Option<&PodStatus>,
    ) -> PodSummary {
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Running") => Phase::Running,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            Some("Unknown") => Phase::Unknown,
            _ => Phase::Pending,
        };
        let containers: Vec<&ContainerStatus> = status
            .map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
                    .collect()
            })
            .unwrap_or_default();
        let restarts = status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
            .unwrap_or(0);
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let waiting = |r: &str| {
            containers.iter().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some(r)
            })
        };
        let terminated_reason = containers.iter().find_map(|c| {
            let t = c.state.as_ref().and_then(|s| s.terminated.as_ref())?;
            (t.exit_code != 0).then(|| t.reason.clone().unwrap_or_else(|| "Error".into()))
        });
        let crashloop = waiting("CrashLoopBackOff");
        let evicted = status.and_then(|s| s.reason.as_deref()) == Some("Evicted");
        let reason = if evicted {
            Some(PodReason::Evicted)
        } else if crashloop {
            Some(PodReason::CrashLoopBackOff)
        } else if waiting("ImagePullBackOff") {
            Some(PodReason::ImagePullBackOff)
        } else if waiting("ErrImagePull") {
            Some(PodReason::ErrImagePull)
        } else if terminated_reason.as_deref() == Some("OOMKilled") {
            Some(PodReason::OomKilled)
        } else if terminated_reason.is_some() && phase != Phase::Succeeded {
            Some(PodReason::Error)
        } else {
            match phase {
                Phase::Failed => Some(PodReason::Error),
                Phase::Unknown => Some(PodReason::Unknown),
                Phase::Pending => Some(PodReason::Pending),
                Phase::Running if !ready => Some(PodReason::NotReady),
                _ => None,
            }
        };
        PodSummary {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            phase,
            ready,
            crashloop,
            reason,
            restarts,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            node: node_name.map(str::to_string),
            labels: meta
                .labels
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn age_s(&self, now: Timestamp) -> Option<i64> {
        self.created.map(|c| age_secs(now, c))
    }
}

/// A Deployment, StatefulSet or DaemonSet, reduced to replicas wanted and available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadSummary {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub desired: i32,
    pub available: i32,
}

impl WorkloadSummary {
    pub fn from_deployment(d: &Deployment) -> WorkloadSummary {
        let desired = d.spec.replicas.unwrap_or(1);
        let available = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        Self::new("Deployment", &d.metadata, desired, available)
    }

    pub fn from_statefulset(s: &StatefulSet) -> WorkloadSummary {
        let desired = s.spec.replicas.unwrap_or(1);
        let st = s.status.as_ref();
        let available = st
            .and_then(|s| s.available_replicas.or(s.ready_replicas))
            .unwrap_or(0);
        Self::new("StatefulSet", &s.metadata, desired, available)
    }

    pub fn from_daemonset(d: &DaemonSet) -> WorkloadSummary {
        let st = d.status.as_ref();
        let desired = st.map(|s| s.desired_number_scheduled).unwrap_or(0);
        let available = st.and_then(|s| s.number_available).unwrap_or(0);
        Self::new("DaemonSet", &d.metadata, desired, available)
    }

    fn new(
        kind: &'static str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        desired: i32,
        available: i32,
    ) -> Self {
        WorkloadSummary {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            desired,
            available,
        }
    }

    pub fn degraded(&self) -> bool {
        self.available < self.desired
    }
}

/// A Node: Ready or not, and which pressure conditions are on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub ready: bool,
    pub pressure: Vec<String>,
}

impl NodeSummary {
    pub fn from_node(n: &Node) -> NodeSummary {
        let conds = n.status.as_ref().and_then(|s| s.conditions.as_ref());
        let is_true = |t: &str| {
            conds
                .into_iter()
                .flatten()
                .any(|c| c.type_ == t && c.status == "True")
        };
        let pressure = ["MemoryPressure", "DiskPressure", "PIDPressure"]
            .into_iter()
            .filter(|t| is_true(t))
            .map(String::from)
            .collect();
        NodeSummary {
            name: n.metadata.name.clone().unwrap_or_default(),
            ready: is_true("Ready"),
            pressure,
        }
    }
}

/// Pod counts as `status --json` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodCounts {
    pub total: usize,
    pub running: usize,
    pub pending: usize,
    pub failed: usize,
    pub succeeded: usize,
    pub ready: usize,
    pub crashloop: usize,
    pub restarts: u64,
}

/// One cluster's Kubernetes picture: a whole snapshot, replaced on every change.
#[derive(Debug, Clone, Default)]
pub struct KubeSnapshot {
    /// Every pod; `unhealthy` indexes into it.
    pub pods: Vec<Arc<PodSummary>>,
    /// Indexes of unhealthy pods, worst first.
    pub unhealthy: Vec<usize>,
    pub counts: PodCounts,
    pub workloads: Vec<WorkloadSummary>,
    pub nodes: Vec<NodeSummary>,
    /// Objects the API served that could not be read: each is one warning, never a
    /// blank cluster.
    pub undecodable: Vec<Undecodable>,
}

/// An object the API server served that opsdeck could not decode: skipped, and named in a
/// warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undecodable {
    /// `Pod`, `Deployment`, ...
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip)]
    pub resource_version: Option<String>,
    /// The decoder's complaint.
    pub reason: String,
}

impl KubeSnapshot {
    /// The same snapshot, with the objects that could not be read.
    pub fn with_undecodable(mut self, mut bad: Vec<Undecodable>) -> Self {
        bad.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
        self.undecodable = bad;
        self
    }

    pub fn new(
        pods: Vec<Arc<PodSummary>>,
        mut workloads: Vec<WorkloadSummary>,
        mut nodes: Vec<NodeSummary>,
    ) -> Self {
        let mut counts = PodCounts {
            total: pods.len(),
            ..PodCounts::default()
        };
        let mut unhealthy = Vec::new();
        for (i, p) in pods.iter().enumerate() {
            match p.phase {
                Phase::Running => counts.running += 1,
                Phase::Pending => counts.pending += 1,
                Phase::Failed => counts.failed += 1,
                Phase::Succeeded => counts.succeeded += 1,
                Phase::Unknown => {}
            }
            counts.ready += usize::from(p.ready);
            counts.crashloop += usize::from(p.crashloop);
            counts.restarts += u64::from(p.restarts);
            if p.reason.is_some() {
                unhealthy.push(i);
            }
        }
        unhealthy.sort_by(|&a, &b| {
            let (a, b) = (&pods[a], &pods[b]);
            let rank = |p: &PodSummary| p.reason.map_or(u8::MAX, PodReason::rank);
            rank(a)
                .cmp(&rank(b))
                .then(b.restarts.cmp(&a.restarts))
                .then(a.namespace.cmp(&b.namespace))
                .then(a.name.cmp(&b.name))
        });
        workloads.sort_by(|a, b| {
            (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
        });
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        KubeSnapshot {
            pods,
            unhealthy,
            counts,
            workloads,
            nodes,
            undecodable: Vec::new(),
        }
    }

    pub fn unhealthy_pods(&self) -> impl Iterator<Item = &PodSummary> {
        self.unhealthy.iter().map(|&i| self.pods[i].as_ref())
    }

    pub fn degraded_workloads(&self) -> impl Iterator<Item = &WorkloadSummary> {
        self.workloads.iter().filter(|w| w.degraded())
    }

    pub fn troubled_nodes(&self) -> impl Iterator<Item = &NodeSummary> {
        self.nodes
            .iter()
            .filter(|n| !n.ready || !n.pressure.is_empty())
    }
}

/// A pod may sit Pending this long while it schedules and pulls before it is a finding.
pub const PENDING_GRACE_S: i64 = 120;
/// A running pod may be not-ready this long (start-up probes) before it is a finding.
pub const NOT_READY_GRACE_S: i64 = 60;

/// The Kubernetes health rules: snapshot in, findings out (source `kubernetes`).
pub fn kube_findings(snap: &KubeSnapshot, now: Timestamp) -> Vec<RawFinding> {
    let mut out = Vec::new();
    for p in snap.unhealthy_pods() {
        let Some(reason) = p.reason else { continue };
        let age = p.age_s(now).unwrap_or(0);
        let severity = match reason {
            PodReason::CrashLoopBackOff
            | PodReason::ImagePullBackOff
            | PodReason::ErrImagePull
            | PodReason::OomKilled
            | PodReason::Unknown => Severity::Crit,
            PodReason::Error if p.phase == Phase::Running => Severity::Crit,
            PodReason::Error | PodReason::Evicted => Severity::Warn,
            PodReason::Pending if age >= PENDING_GRACE_S => Severity::Warn,
            PodReason::NotReady if age >= NOT_READY_GRACE_S => Severity::Warn,
            PodReason::Pending | PodReason::NotReady => continue,
        };
        let mut message = format!("pod {}/{} is {}", p.namespace, p.name, reason.as_str());
        if p.restarts > 0 {
            let s = if p.restarts == 1 { "" } else { "s" };
            message.push_str(&format!(" ({} restart{s})", p.restarts));
        }
        if matches!(reason, PodReason::Pending | PodReason::NotReady) {
            message.push_str(&format!(" for {}", format_age(age)));
        }
        out.push(RawFinding::new(
            severity,
            "kubernetes",
            format!("pod/{}/{}", p.namespace, p.name),
            message,
        ));
    }
    for w in snap.degraded_workloads() {
        let severity = if w.available == 0 {
            Severity::Crit
        } else {
            Severity::Warn
        };
        out.push(RawFinding::new(
            severity,
            "kubernetes",
            format!("{}/{}/{}", w.kind, w.namespace, w.name),
            format!(
                "{} {}/{} has {}/{} replicas available",
                w.kind, w.namespace, w.name, w.available, w.desired
            ),
        ));
    }
    for b in &snap.undecodable {
        let place = if b.namespace.is_empty() {
            b.name.clone()
        } else {
            format!("{}/{}", b.namespace, b.name)
        };
        out.push(RawFinding::new(
            Severity::Warn,
            "kubernetes",
            format!("undecodable/{}/{place}", b.kind),
            format!(
                "{} {place} could not be read and is not shown: {}",
                b.kind, b.reason
            ),
        ));
    }
    for n in &snap.nodes {
        if !n.ready {
            out.push(RawFinding::new(
                Severity::Crit,
                "kubernetes",
                format!("node/{}/ready", n.name),
                format!("node {} is not Ready", n.name),
            ));
        }
        for p in &n.pressure {
            out.push(RawFinding::new(
                Severity::Warn,
                "kubernetes",
                format!("node/{}/{p}", n.name),
                format!("node {} reports {p}", n.name),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodSummary {
        PodSummary::from_pod(&serde_json::from_value(v).unwrap())
    }

    fn now() -> Timestamp {
        "2026-11-25T03:00:00Z".parse().unwrap()
    }

    #[test]
    fn crash_looping_pod_is_crit_with_restarts() {
        let p = pod(json!({
            "metadata": {"name": "iam-service-7c9d-x2", "namespace": "goapps-production", "creationTimestamp": "2026-11-25T02:00:00Z"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 12,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
        }));
        assert_eq!(p.reason, Some(PodReason::CrashLoopBackOff));
        assert!(p.crashloop && !p.ready);
        assert_eq!(p.age_s(now()), Some(3600));
        let snap = KubeSnapshot::new(vec![Arc::new(p)], vec![], vec![]);
        let f = kube_findings(&snap, now());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Crit);
        assert_eq!(
            f[0].message,
            "pod goapps-production/iam-service-7c9d-x2 is CrashLoopBackOff (12 restarts)"
        );
    }

    #[test]
    fn healthy_and_completed_pods_have_no_reason() {
        let running = pod(
            json!({"metadata": {"name": "a"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        let done = pod(
            json!({"metadata": {"name": "b"}, "status": {"phase": "Succeeded",
            "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
        );
        assert_eq!(running.reason, None);
        assert_eq!(done.reason, None);
    }

    #[test]
    fn image_pull_oom_evicted_and_not_ready_are_told_apart() {
        let waiting = |r: &str| {
            pod(
                json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "containerStatuses": [{"name": "c",
                "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": r}}}]}}),
            )
        };
        assert_eq!(
            waiting("ImagePullBackOff").reason,
            Some(PodReason::ImagePullBackOff)
        );
        assert_eq!(
            waiting("ErrImagePull").reason,
            Some(PodReason::ErrImagePull)
        );
        assert_eq!(
            waiting("ContainerCreating").reason,
            Some(PodReason::Pending)
        );
        let oom = pod(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [{"name": "c",
            "image": "i", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}),
        );
        assert_eq!(oom.reason, Some(PodReason::OomKilled));
        let evicted = pod(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Failed", "reason": "Evicted"}}),
        );
        assert_eq!(evicted.reason, Some(PodReason::Evicted));
        let not_ready = pod(
            json!({"metadata": {"name": "p"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert_eq!(not_ready.reason, Some(PodReason::NotReady));
    }

    #[test]
    fn a_pod_that_is_scheduling_is_not_a_finding_until_its_grace_passes() {
        let p = |created: &str| {
            pod(
                json!({"metadata": {"name": "w", "namespace": "load", "creationTimestamp": created}, "status": {"phase": "Pending"}}),
            )
        };
        let young = KubeSnapshot::new(vec![Arc::new(p("2026-11-25T02:59:30Z"))], vec![], vec![]);
        assert!(kube_findings(&young, now()).is_empty());
        let old = KubeSnapshot::new(vec![Arc::new(p("2026-11-25T02:50:00Z"))], vec![], vec![]);
        let f = kube_findings(&old, now());
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].message, "pod load/w is Pending for 10m");
    }

    #[test]
    fn unhealthy_pods_sort_worst_first_and_counts_do_not_overlap() {
        let mk = |name: &str, phase: &str, ready: bool, waiting: Option<&str>, restarts: i32| {
            let mut status = json!({"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]});
            if let Some(w) = waiting {
                status["containerStatuses"] = json!([{"name": "c", "image": "i", "imageID": "", "ready": ready,
                    "restartCount": restarts, "state": {"waiting": {"reason": w}}}]);
            }
            Arc::new(pod(
                json!({"metadata": {"name": name, "namespace": "ns"}, "status": status}),
            ))
        };
        let snap = KubeSnapshot::new(
            vec![
                mk("pending", "Pending", false, None, 0),
                mk("ok", "Running", true, None, 0),
                mk("crash-few", "Running", false, Some("CrashLoopBackOff"), 2),
                mk("crash-many", "Running", false, Some("CrashLoopBackOff"), 9),
                mk("pull", "Pending", false, Some("ImagePullBackOff"), 0),
            ],
            vec![],
            vec![],
        );
        let names: Vec<_> = snap.unhealthy_pods().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["crash-many", "crash-few", "pull", "pending"]);
        let c = &snap.counts;
        assert_eq!(
            (
                c.total,
                c.running,
                c.pending,
                c.ready,
                c.crashloop,
                c.restarts
            ),
            (5, 3, 2, 1, 2, 11)
        );
    }

    #[test]
    fn degraded_workloads_and_troubled_nodes_raise_findings() {
        let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "iam-service", "namespace": "goapps-production"},
            "spec": {"replicas": 2, "selector": {}, "template": {}}, "status": {"availableReplicas": 1}}))
        .unwrap();
        let w = WorkloadSummary::from_deployment(&d);
        assert_eq!((w.desired, w.available), (2, 1));
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "prod-vps"}, "status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}}))
        .unwrap();
        let n = NodeSummary::from_node(&n);
        assert_eq!(n.pressure, ["DiskPressure"]);
        let f = kube_findings(&KubeSnapshot::new(vec![], vec![w], vec![n]), now());
        let msgs: Vec<_> = f.iter().map(|f| (f.severity, f.message.as_str())).collect();
        assert_eq!(
            msgs,
            [
                (
                    Severity::Warn,
                    "Deployment goapps-production/iam-service has 1/2 replicas available"
                ),
                (Severity::Crit, "node prod-vps is not Ready"),
                (Severity::Warn, "node prod-vps reports DiskPressure"),
            ]
        );
    }
}
