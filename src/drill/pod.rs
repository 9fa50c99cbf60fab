//! A pod's detail: per container its image, state, last termination, restarts and probes,
//! reduced from the full object ([`PodDetail::from_pod`], pure) or fetched ([`get`]).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerState, Pod, Probe};
use kube::Api;

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::DrillError;
use super::actions::WorkloadKind;

/// One container of a pod, as the detail view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetail {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub ready: bool,
    /// `Running`, `Waiting: CrashLoopBackOff`, `Terminated: Completed (0)`, `Unknown`.
    pub state: String,
    /// Since when the current state holds, if known.
    pub state_since: Option<Timestamp>,
    pub restarts: u32,
    /// The last termination's reason and exit code (why it restarted).
    pub last_termination: Option<(String, i32)>,
    pub last_finished: Option<Timestamp>,
    /// `liveness tcp:8080 every 20s, readiness http:/healthz:8080 every 10s`, or empty.
    pub probes: String,
}

/// The pod detail view's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDetail {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub node: Option<String>,
    pub ip: Option<String>,
    pub created: Option<Timestamp>,
    /// `ReplicaSet/iam-service-7d9f`, the controlling owner.
    pub owner: Option<String>,
    pub containers: Vec<ContainerDetail>,
}

fn describe_state(s: Option<&ContainerState>) -> (String, Option<Timestamp>) {
    let Some(s) = s else {
        return ("Unknown".into(), None);
    };
    if let Some(r) = &s.running {
        return ("Running".into(), r.started_at.as_ref().map(|t| t.0));
    }
    if let Some(w) = &s.waiting {
        return (
            format!("Waiting: {}", w.reason.as_deref().unwrap_or("Unknown")),
            None,
        );
    }
    if let Some(t) = &s.terminated {
        return (
            format!(
                "Terminated: {} ({})",
                t.reason.as_deref().unwrap_or("Unknown"),
                t.exit_code
            ),
            t.finished_at.as_ref().map(|t| t.0),
        );
    }
    ("Unknown".into(), None)
}

fn probe_summary(kind: &str, p: Option<&Probe>) -> Option<String> {
    let p = p?;
    let how = if let Some(h) = &p.http_get {
        let port = match &h.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        };
        format!("http:{}:{port}", h.path.as_deref().unwrap_or("/"))
    } else if let Some(t) = &p.tcp_socket {
        match &t.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                format!("tcp:{i}")
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                format!("tcp:{s}")
            }
        }
    } else if let Some(e) = &p.exec {
        format!(
            "exec:{}",
            e.command.as_deref().unwrap_or_default().join(" ")
        )
    } else if p.grpc.is_some() {
        "grpc".into()
    } else {
        "?".into()
    };
    Some(format!(
        "{kind} {how} every {}s",
        p.period_seconds.unwrap_or(10)
    ))
}

impl PodDetail {
    pub fn from_pod(pod: &Pod) -> PodDetail {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut containers = Vec::new();
        let specs = spec
            .into_iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .map(|c| (true, c))
                    .chain(s.containers.iter().map(|c| (false, c)))
            })
            .collect::<Vec<_>>();
        for (init, c) in specs {
            let st = status.and_then(|s| {
                let list = if init {
                    s.init_container_statuses.as_ref()
                } else {
                    s.container_statuses.as_ref()
                };
                list?.iter().find(|cs| cs.name == c.name)
            });
            let (state, state_since) = describe_state(st.and_then(|s| s.state.as_ref()));
            let last = st
                .and_then(|s| s.last_state.as_ref())
                .and_then(|l| l.terminated.as_ref());
            let probes: Vec<String> = [
                probe_summary("liveness", c.liveness_probe.as_ref()),
                probe_summary("readiness", c.readiness_probe.as_ref()),
                probe_summary("startup", c.startup_probe.as_ref()),
            ]
            .into_iter()
            .flatten()
            .collect();
            containers.push(ContainerDetail {
                name: c.name.clone(),
                image: st
                    .map(|s| s.image.clone())
                    .filter(|i| !i.is_empty())
                    .or_else(|| c.image.clone())
                    .unwrap_or_default(),
                init,
                ready: st.is_some_and(|s| s.ready),
                state,
                state_since,
                restarts: st.map_or(0, |s| s.restart_count.max(0) as u32),
                last_termination: last.map(|t| {
                    (
                        t.reason.clone().unwrap_or_else(|| "Unknown".into()),
                        t.exit_code,
                    )
                }),
                last_finished: last.and_then(|t| t.finished_at.as_ref()).map(|t| t.0),
                probes: probes.join(", "),
            });
        }
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{}/{}", o.kind, o.name));
        PodDetail {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".into()),
            node: spec.and_then(|s| s.node_name.clone()),
            ip: status.and_then(|s| s.pod_ip.clone()),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            owner,
            containers,
        }
    }

    /// The container to tail and exec into by default: the first regular one.
    pub fn default_container(&self) -> Option<&str> {
        self.containers
            .iter()
            .find(|c| !c.init)
            .map(|c| c.name.as_str())
    }
}

/// The workload a pod belongs to, by its controller owner: a ReplicaSet's Deployment is
/// the ReplicaSet's name without its pod-template-hash (see [`workload_of`] for the exact one).
pub fn workload_guess(pod: &PodDetail) -> Option<(WorkloadKind, String)> {
    let (kind, name) = pod.owner.as_deref()?.split_once('/')?;
    match kind {
        "ReplicaSet" => name
            .rsplit_once('-')
            .map(|(d, _)| (WorkloadKind::Deployment, d.to_string())),
        "StatefulSet" => Some((WorkloadKind::StatefulSet, name.to_string())),
        "DaemonSet" => Some((WorkloadKind::DaemonSet, name.to_string())),
        _ => None,
    }
}

/// The workload a pod belongs to, asking the API for a ReplicaSet's owner; falls back to
/// [`workload_guess`] when the ReplicaSet cannot be read.
pub async fn workload_of(client: kube::Client, pod: &PodDetail) -> Option<(WorkloadKind, String)> {
    let (kind, name) = pod.owner.as_deref()?.split_once('/')?;
    if kind == "ReplicaSet" {
        let rs = Api::<ReplicaSet>::namespaced(client, &pod.namespace)
            .get(name)
            .await;
        if let Ok(rs) = rs {
            return rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")
                .map(|o| (WorkloadKind::Deployment, o.name.clone()));
        }
    }
    workload_guess(pod)
}

/// Fetches one pod's detail.
pub async fn get(client: kube::Client, ns: &str, name: &str) -> Result<PodDetail, DrillError> {
    let pod = Api::<Pod>::namespaced(client, ns)
        .get(name)
        .await
        .map_err(DrillError::new(format!("reading pod {ns}/{name}")))?;
    Ok(PodDetail::from_pod(&pod))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crashlooping_container_shows_its_last_termination_and_probes() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "iam-1", "namespace": "ns", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "iam-7d", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "iam", "image": "iam:1",
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 20},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "iam", "image": "iam:1", "imageID": "", "ready": false,
                "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
        }))
        .unwrap();
        let d = PodDetail::from_pod(&pod);
        assert_eq!(d.owner.as_deref(), Some("ReplicaSet/iam-7d"));
        let c = &d.containers[0];
        assert_eq!(c.state, "Waiting: CrashLoopBackOff");
        assert_eq!(c.restarts, 7);
        assert_eq!(c.last_termination, Some(("Error".into(), 1)));
        assert_eq!(
            c.probes,
            "liveness tcp:8080 every 20s, readiness http:/healthz:8080 every 10s"
        );
        assert_eq!(d.default_container(), Some("iam"));
        assert_eq!(
            workload_guess(&d),
            Some((WorkloadKind::Deployment, "iam".to_string()))
        );
    }
}
