//! From a configured target to the pod and container port a port-forward opens, as kubectl
//! does: a Service's selector (or a Deployment's) picks a Running and Ready pod, and the
//! service port maps to its `targetPort`, looking a named port up in the pod's containers.
//! The choosing is pure ([`pick_pod`], [`service_target`], [`container_port`]); [`resolve`]
//! does the API reads around it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, Client};

use super::ForwardError;
use crate::config::{ForwardTarget, PortRef, TargetKind};

/// Where a forward's connections go right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub pod: String,
    pub port: u16,
}

/// Running, Ready and not being deleted: a pod kubectl would forward to.
pub fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The pod to forward to among `pods` (a selector's matches): the first Ready one by name, so
/// the choice is stable while the set does not change.
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| is_ready(p))
        .min_by(|a, b| a.metadata.name.cmp(&b.metadata.name))
}

/// The container port `port` names in `pod`: a number is taken as is; a name is looked up in
/// the containers' declared ports.
pub fn container_port(pod: &Pod, port: &PortRef) -> Result<u16, String> {
    match port {
        PortRef::Number(n) => Ok(*n),
        PortRef::Name(name) => {
            let declared: Vec<_> = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .collect();
            declared
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    let names: Vec<String> = declared
                        .iter()
                        .map(|p| match &p.name {
                            Some(n) => format!("{n} ({})", p.container_port),
                            None => p.container_port.to_string(),
                        })
                        .collect();
                    format!(
                        "pod {} declares no container port named {name:?} (it has: {})",
                        pod.metadata.name.as_deref().unwrap_or("?"),
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )
                })
        }
    }
}

/// The service port `port` refers to (by its number or its name), as the container port to
/// look up in the chosen pod.
pub fn service_target(svc: &Service, port: &PortRef) -> Result<PortRef, String> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let found = ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == i32::from(*n),
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    });
    let Some(sp) = found else {
        let have: Vec<String> = ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{n} ({})", p.port),
                None => p.port.to_string(),
            })
            .collect();
        return Err(format!(
            "service {} has no port {port} (it has: {})",
            svc.metadata.name.as_deref().unwrap_or("?"),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        ));
    };
    match &sp.target_port {
        None => port_from_i32(sp.port),
        Some(IntOrString::Int(n)) => port_from_i32(*n),
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(n) => port_from_i32(n),
            Err(_) => Ok(PortRef::Name(s.clone())),
        },
    }
}

fn port_from_i32(n: i32) -> Result<PortRef, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .map(PortRef::Number)
        .ok_or_else(|| format!("port {n} is not a port from 1 to 65535"))
}

/// `k=v,k2=v2` from equality labels.
pub fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How long one API exchange (a lookup, a port-forward upgrade) may take: kube-rs has no
/// read timeout of its own, and a stalled API server must show as a problem, not as health.
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `fut`, or `Unreachable` when the cluster does not answer within [`API_TIMEOUT`].
pub async fn in_time<T>(
    cluster: &str,
    fut: impl Future<Output = Result<T, ForwardError>>,
) -> Result<T, ForwardError> {
    tokio::time::timeout(API_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(ForwardError::Unreachable {
                cluster: cluster.to_string(),
                detail: format!(
                    "the API server did not answer within {}s",
                    API_TIMEOUT.as_secs()
                ),
            })
        })
}

/// Looks the target up in the cluster and picks the pod and port to open now.
pub async fn resolve(
    client: &Client,
    cluster: &str,
    target: &ForwardTarget,
) -> Result<Resolved, ForwardError> {
    in_time(cluster, resolve_now(client, cluster, target)).await
}

async fn resolve_now(
    client: &Client,
    cluster: &str,
    target: &ForwardTarget,
) -> Result<Resolved, ForwardError> {
    let ns = target.namespace.as_str();
    let shown = target.to_string();
    let kube_err = |e: kube::Error| ForwardError::from_kube(cluster, &shown, ns, e);
    let port_err = |detail: String| ForwardError::Port {
        cluster: cluster.to_string(),
        target: shown.clone(),
        detail,
    };
    let no_pod = |detail: String| ForwardError::NoReadyPod {
        cluster: cluster.to_string(),
        target: shown.clone(),
        detail,
    };
    let not_found = |what: String| ForwardError::NotFound {
        cluster: cluster.to_string(),
        what,
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match target.kind {
        TargetKind::Pod => {
            let pod = pods
                .get_opt(&target.name)
                .await
                .map_err(kube_err)?
                .ok_or_else(|| not_found(format!("pod {ns}/{}", target.name)))?;
            if !is_running(&pod) {
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Unknown".into());
                return Err(no_pod(format!("the pod is {phase}, not Running")));
            }
            let port = container_port(&pod, &target.port).map_err(port_err)?;
            Ok(Resolved {
                pod: target.name.clone(),
                port,
            })
        }
        TargetKind::Service | TargetKind::Deployment => {
            let (selector, port) = if target.kind == TargetKind::Service {
                let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
                let svc = svcs
                    .get_opt(&target.name)
                    .await
                    .map_err(kube_err)?
                    .ok_or_else(|| not_found(format!("service {ns}/{}", target.name)))?;
                let selector = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .unwrap_or_default();
                if selector.is_empty() {
                    return Err(no_pod(
                        "the service has no selector, so no pods to forward to".into(),
                    ));
                }
                (
                    selector,
                    service_target(&svc, &target.port).map_err(port_err)?,
                )
            } else {
                let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
                let dep = deps
                    .get_opt(&target.name)
                    .await
                    .map_err(kube_err)?
                    .ok_or_else(|| not_found(format!("deployment {ns}/{}", target.name)))?;
                let selector = dep.spec.selector.match_labels.clone().unwrap_or_default();
                if selector.is_empty() {
                    return Err(no_pod(
                        "the deployment's selector has no matchLabels to find its pods by".into(),
                    ));
                }
                (selector, target.port.clone())
            };
            let sel = label_selector(&selector);
            let list = pods
                .list(&ListParams::default().labels(&sel))
                .await
                .map_err(kube_err)?;
            let pod = pick_pod(&list.items).ok_or_else(|| {
                no_pod(format!(
                    "{} pod(s) match {sel}, none is Running and Ready",
                    list.items.len()
                ))
            })?;
            let port = container_port(pod, &port).map_err(port_err)?;
            Ok(Resolved {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                port,
            })
        }
    }
}

/// Whether `pod` still exists and can take connections (Ready for a Service or Deployment
/// target, Running for a Pod target). `Err` when the cluster could not be asked.
pub async fn still_usable(
    client: &Client,
    cluster: &str,
    target: &ForwardTarget,
    pod: &str,
) -> Result<bool, ForwardError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let found = pods
        .get_opt(pod)
        .await
        .map_err(|e| ForwardError::from_kube(cluster, &target.to_string(), &target.namespace, e))?;
    Ok(found.is_some_and(|p| match target.kind {
        TargetKind::Pod => is_running(&p),
        _ => is_ready(&p),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "monitoring"},
            "spec": {"containers": [{"name": "grafana", "ports": [
                {"name": "grafana", "containerPort": 3000},
                {"name": "metrics", "containerPort": 9100}]}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .expect("pod")
    }

    fn svc(ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "grafana", "namespace": "monitoring"},
            "spec": {"selector": {"app": "grafana"}, "ports": ports}
        }))
        .expect("service")
    }

    #[test]
    fn only_running_ready_pods_are_picked() {
        let pods = vec![
            pod("a-crash", "Running", false),
            pod("b-pending", "Pending", false),
            pod("d-ok", "Running", true),
            pod("c-ok", "Running", true),
        ];
        assert_eq!(
            pick_pod(&pods).and_then(|p| p.metadata.name.as_deref()),
            Some("c-ok")
        );
        assert!(pick_pod(&pods[..2]).is_none());
    }

    #[test]
    fn service_ports_map_to_target_ports_by_number_and_name() {
        let s = svc(json!([
            {"name": "http-web", "port": 80, "targetPort": 3000},
            {"name": "named", "port": 81, "targetPort": "grafana"},
            {"name": "same", "port": 9100}
        ]));
        assert_eq!(
            service_target(&s, &PortRef::Number(80)),
            Ok(PortRef::Number(3000))
        );
        assert_eq!(
            service_target(&s, &PortRef::Name("http-web".into())),
            Ok(PortRef::Number(3000))
        );
        let named = service_target(&s, &PortRef::Number(81)).expect("port 81");
        assert_eq!(named, PortRef::Name("grafana".into()));
        assert_eq!(container_port(&pod("g", "Running", true), &named), Ok(3000));
        assert_eq!(
            service_target(&s, &PortRef::Number(9100)),
            Ok(PortRef::Number(9100))
        );
        let err = service_target(&s, &PortRef::Number(8080)).expect_err("no such port");
        assert!(err.contains("has no port 8080"), "{err}");
        assert!(err.contains("http-web (80)"), "{err}");
    }

    #[test]
    fn unknown_named_container_port_lists_the_declared_ones() {
        let err = container_port(&pod("g", "Running", true), &PortRef::Name("web".into()))
            .expect_err("no such name");
        assert!(err.contains("grafana (3000), metrics (9100)"), "{err}");
    }

    #[test]
    fn selectors_render_as_label_queries() {
        let mut m = BTreeMap::new();
        m.insert("app".to_string(), "grafana".to_string());
        m.insert("tier".to_string(), "web".to_string());
        assert_eq!(label_selector(&m), "app=grafana,tier=web");
    }
}
