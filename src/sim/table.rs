//! Server-side printing: `meta.k8s.io/v1` Tables as `kubectl get` asks for them
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns the real
//! API server prints for pods, deployments, nodes, services and leases, and NAME/AGE otherwise.

use serde_json::{Value, json};

use super::store::ResourceKind;

/// What each row's `object` carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn col(name: &str, ty: &str, priority: i32, description: &str) -> Value {
    let mut c = json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

/// The column definitions for a kind.
pub fn columns(kind: &ResourceKind) -> Vec<Value> {
    match kind.plural {
        "pods" => vec![
            col("Name", "string", 0, NAME_DESC),
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            col("Age", "string", 0, AGE_DESC),
            col(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "deployments" => vec![
            col("Name", "string", 0, NAME_DESC),
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            col("Age", "string", 0, AGE_DESC),
            col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            col("Selector", "string", 1, "Label selector for pods."),
        ],
        "statefulsets" => vec![
            col("Name", "string", 0, NAME_DESC),
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col("Age", "string", 0, AGE_DESC),
        ],
        "nodes" => vec![
            col("Name", "string", 0, NAME_DESC),
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            col("Age", "string", 0, AGE_DESC),
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release.",
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node.",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "Container Runtime Version reported by the node.",
            ),
        ],
        "services" => vec![
            col("Name", "string", 0, NAME_DESC),
            col("Type", "string", 0, "The type of the service."),
            col("Cluster-IP", "string", 0, "The cluster IP of the service."),
            col(
                "External-IP",
                "string",
                0,
                "The external IP of the service.",
            ),
            col("Port(s)", "string", 0, "The ports of the service."),
            col("Age", "string", 0, AGE_DESC),
        ],
        "events" => vec![
            col(
                "Last Seen",
                "string",
                0,
                "Time when this Event was last seen",
            ),
            col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            col(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "Count",
                "integer",
                1,
                "The number of times this event has occurred.",
            ),
            col("Name", "string", 1, NAME_DESC),
        ],
        "leases" => vec![
            col("Name", "string", 0, NAME_DESC),
            col(
                "Holder",
                "string",
                0,
                "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
            ),
            col("Age", "string", 0, AGE_DESC),
        ],
        _ => vec![
            col("Name", "string", 0, NAME_DESC),
            col("Age", "string", 0, AGE_DESC),
        ],
    }
}

/// kubectl's human duration (`5m12s`, `26h`, `23d`).
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 730 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

fn age_of(ts: Option<&str>) -> String {
    let Some(ts) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - ts.as_second())
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The STATUS column of a pod, as kubectl computes it.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, &["status", "reason"])
        .or(s(pod, &["status", "phase"]))
        .unwrap_or("Unknown")
        .to_string();
    if let Some(statuses) = pod["status"]["containerStatuses"].as_array() {
        let mut has_running = false;
        for cs in statuses.iter().rev() {
            let st = &cs["state"];
            if let Some(r) = s(st, &["waiting", "reason"]).filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(t) = st.get("terminated") {
                reason = match s(t, &["reason"]).filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None => format!("ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
                };
            } else if st.get("running").is_some() && cs["ready"].as_bool() == Some(true) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if pod["metadata"].get("deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = pod["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses
        .iter()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    let last_restart = statuses
        .iter()
        .filter_map(|c| s(c, &["lastState", "terminated", "finishedAt"]))
        .max();
    let restarts_cell = match (restarts, last_restart) {
        (n, Some(t)) if n > 0 => format!("{n} ({} ago)", age_of(Some(t))),
        (n, _) => n.to_string(),
    };
    vec![
        json!(s(pod, &["metadata", "name"]).unwrap_or("")),
        json!(format!("{ready}/{total}")),
        json!(pod_status(pod)),
        json!(restarts_cell),
        json!(age_of(s(pod, &["metadata", "creationTimestamp"]))),
        json!(s(pod, &["status", "podIP"]).unwrap_or("<none>")),
        json!(s(pod, &["spec", "nodeName"]).unwrap_or("<none>")),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn join_containers(obj: &Value, field: &str) -> String {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c[field].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn cells(kind: &ResourceKind, obj: &Value) -> Vec<Value> {
    let name = json!(s(obj, &["metadata", "name"]).unwrap_or(""));
    let age = json!(age_of(s(obj, &["metadata", "creationTimestamp"])));
    let int = |p: &[&str]| {
        let mut cur = obj;
        for k in p {
            cur = &cur[*k];
        }
        cur.as_i64().unwrap_or(0)
    };
    match kind.plural {
        "pods" => pod_cells(obj),
        "deployments" => {
            let selector = obj["spec"]["selector"]["matchLabels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&["status", "readyReplicas"]),
                    int(&["spec", "replicas"])
                )),
                json!(int(&["status", "updatedReplicas"])),
                json!(int(&["status", "availableReplicas"])),
                age,
                json!(join_containers(obj, "name")),
                json!(join_containers(obj, "image")),
                json!(selector),
            ]
        }
        "statefulsets" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(&["status", "readyReplicas"]),
                int(&["spec", "replicas"])
            )),
            age,
        ],
        "nodes" => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let roles = obj["metadata"]["labels"]
                .as_object()
                .map(|l| {
                    let mut r: Vec<&str> = l
                        .keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect();
                    r.sort_unstable();
                    r.join(",")
                })
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "<none>".into());
            let internal_ip = obj["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str())
                .unwrap_or("<none>");
            let info = &obj["status"]["nodeInfo"];
            vec![
                name,
                json!(ready),
                json!(roles),
                age,
                json!(info["kubeletVersion"].as_str().unwrap_or("")),
                json!(internal_ip),
                json!(info["osImage"].as_str().unwrap_or("")),
                json!(info["kernelVersion"].as_str().unwrap_or("")),
                json!(info["containerRuntimeVersion"].as_str().unwrap_or("")),
            ]
        }
        "services" => {
            let ports = obj["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                                None => format!("{}/{proto}", p["port"]),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let external = if obj["spec"]["type"] == "LoadBalancer" {
                "<pending>"
            } else {
                "<none>"
            };
            vec![
                name,
                json!(s(obj, &["spec", "type"]).unwrap_or("ClusterIP")),
                json!(s(obj, &["spec", "clusterIP"]).unwrap_or("None")),
                json!(external),
                json!(ports),
                age,
            ]
        }
        "events" => {
            let involved = &obj["involvedObject"];
            vec![
                json!(age_of(s(obj, &["lastTimestamp"]))),
                json!(s(obj, &["type"]).unwrap_or("")),
                json!(s(obj, &["reason"]).unwrap_or("")),
                json!(format!(
                    "{}/{}",
                    involved["kind"].as_str().unwrap_or("").to_lowercase(),
                    involved["name"].as_str().unwrap_or("")
                )),
                json!(s(obj, &["message"]).unwrap_or("")),
                json!(int(&["count"])),
                name,
            ]
        }
        "leases" => vec![
            name,
            json!(s(obj, &["spec", "holderIdentity"]).unwrap_or("")),
            age,
        ],
        _ => vec![name, age],
    }
}

/// One Table row for an object.
pub fn row(kind: &ResourceKind, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(kind, obj)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
        }
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table of objects.
pub fn table(
    kind: &ResourceKind,
    objs: &[&Value],
    include: IncludeObject,
    with_columns: bool,
    metadata: Value,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if with_columns { json!(columns(kind)) } else { json!([]) },
        "rows": objs.iter().map(|o| row(kind, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(312), "5m12s");
        assert_eq!(human_duration(3600 * 26), "26h");
        assert_eq!(human_duration(86_400 * 23), "23d");
    }

    #[test]
    fn crashlooping_pod_prints_crashloopbackoff() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&pod), "CrashLoopBackOff");
        let cells = pod_cells(&pod);
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[3], "3");
    }
}
