//! The simulated fleet's ArgoCD applications (target-environment.md) and the JSON builders
//! that keep them in the shape argocd-server sends: Go `encoding/json` (int64 as numbers,
//! empty fields left out, RFC 3339 times).

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::sim::seed::{Env, hash64};

pub const REPO_URL: &str = "https://github.com/mutugading/goapps-infra.git";
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// ArgoCD keeps this many history entries by default (`spec.revisionHistoryLimit`).
pub const HISTORY_LIMIT: usize = 10;

/// A 40-hex-digit commit SHA derived from `seed`.
pub fn sha(seed: &str) -> String {
    format!(
        "{:016x}{:016x}{:08x}",
        hash64(seed),
        hash64(&format!("{seed}/1")),
        hash64(&format!("{seed}/2")) as u32
    )
}

pub fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One managed resource: kind, namespace, name, and its health when it has one.
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// None for kinds ArgoCD reports no health for (ConfigMap, CronJob...).
    pub healthy: Option<bool>,
    /// Pods of a Deployment/StatefulSet, for the resource tree.
    pub replicas: u32,
}

/// The simulator's own record of an application, beside its JSON.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub name: String,
    pub project: &'static str,
    pub path: String,
    pub namespace: String,
    pub auto_sync: bool,
    pub images: Vec<String>,
    pub resources: Vec<Resource>,
    /// Health the app returns to after an operation (iam-service-production stays Degraded:
    /// its pod crash-loops whatever is synced).
    pub health: (&'static str, String),
}

fn res(
    group: &'static str,
    kind: &'static str,
    ns: &str,
    name: &str,
    healthy: Option<bool>,
    replicas: u32,
) -> Resource {
    Resource {
        group,
        version: "v1",
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
        healthy,
        replicas,
    }
}

fn service_app(env: Env, service: &str, image: &str) -> AppSpec {
    let ns = env.app_namespace();
    let mut resources = vec![
        res("", "ConfigMap", ns, &format!("{service}-config"), None, 0),
        res("", "Service", ns, service, Some(true), 0),
        res(
            "apps",
            "Deployment",
            ns,
            service,
            Some(true),
            if env == Env::Staging { 1 } else { 2 },
        ),
        // HPAs: `finance-service-hpa`, `iam-service-hpa`, and `frontend`.
        res(
            "autoscaling",
            "HorizontalPodAutoscaler",
            ns,
            &if service == "frontend" {
                service.to_string()
            } else {
                format!("{service}-hpa")
            },
            Some(true),
            0,
        ),
    ];
    resources[3].version = "v2";
    AppSpec {
        name: format!("{service}-{}", env.name()),
        project: "goapps",
        path: format!("services/{service}/overlays/{}", env.name()),
        namespace: ns.to_string(),
        auto_sync: env == Env::Staging,
        images: vec![image.to_string()],
        resources,
        health: ("Healthy", String::new()),
    }
}

/// An `infra-*` app: no environment suffix, automated (prune + selfHeal) on both clusters.
fn infra_app(
    _env: Env,
    component: &str,
    path: String,
    ns: &str,
    images: &[&str],
    resources: Vec<Resource>,
) -> AppSpec {
    AppSpec {
        name: format!("infra-{component}"),
        project: "goapps",
        path,
        namespace: ns.to_string(),
        auto_sync: true,
        images: images.iter().map(|s| s.to_string()).collect(),
        resources,
        health: ("Healthy", String::new()),
    }
}

/// The applications of one cluster's ArgoCD (target-environment.md, "Applications"):
/// `<service>-<env>` for the app services (staging automated, production manual) and
/// `infra-database`, `infra-backup`, `infra-minio` without a suffix (automated on both).
pub fn specs(env: Env) -> Vec<AppSpec> {
    use crate::sim::seed::{FINANCE_TAG, FRONTEND_TAG, GHCR};
    let iam_tag = match env {
        Env::Staging => "main",
        Env::Production => "latest",
    };
    let cj = |name: &str| res("batch", "CronJob", "database", name, None, 0);
    let mut v = vec![
        service_app(
            env,
            "finance-service",
            &format!("{GHCR}/finance-service:{FINANCE_TAG}"),
        ),
        service_app(env, "iam-service", &format!("{GHCR}/iam-service:{iam_tag}")),
        service_app(env, "frontend", &format!("{GHCR}/frontend:{FRONTEND_TAG}")),
        infra_app(
            env,
            "database",
            "base/database".into(),
            "database",
            &[
                "postgres:18-alpine",
                "edoburu/pgbouncer:v1.25.1-p0",
                "redis:7-alpine",
                "rabbitmq:3-management-alpine",
                "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
            ],
            vec![
                res("", "ConfigMap", "database", "pgbouncer-config", None, 0),
                res("", "Service", "database", "postgres", Some(true), 0),
                res(
                    "",
                    "Service",
                    "database",
                    "postgres-headless",
                    Some(true),
                    0,
                ),
                res("apps", "StatefulSet", "database", "postgres", Some(true), 1),
                res("", "Service", "database", "pgbouncer", Some(true), 0),
                res("apps", "Deployment", "database", "pgbouncer", Some(true), 1),
                res("", "Service", "database", "redis", Some(true), 0),
                res("apps", "Deployment", "database", "redis", Some(true), 1),
                res("", "Service", "database", "rabbitmq", Some(true), 0),
                res("apps", "StatefulSet", "database", "rabbitmq", Some(true), 1),
                res(
                    "",
                    "Service",
                    "database",
                    "postgres-exporter",
                    Some(true),
                    0,
                ),
                res(
                    "apps",
                    "Deployment",
                    "database",
                    "postgres-exporter",
                    Some(true),
                    1,
                ),
            ],
        ),
        // The backup uploads with the MinIO client on its `latest` tag.
        infra_app(
            env,
            "backup",
            format!("overlays/{}/backup", env.name()),
            "database",
            &["postgres:18-alpine", "minio/mc:latest"],
            vec![
                res("", "ConfigMap", "database", "backup-scripts", None, 0),
                cj("postgres-backup-morning"),
                cj("postgres-backup-afternoon"),
                cj("postgres-backup-night"),
                cj("minio-backup-to-disk"),
            ],
        ),
        infra_app(
            env,
            "minio",
            format!("overlays/{}/minio", env.name()),
            "minio",
            &["minio/minio:latest"],
            vec![
                res(
                    "",
                    "PersistentVolumeClaim",
                    "minio",
                    "minio-data",
                    Some(true),
                    0,
                ),
                res("", "Service", "minio", "minio", Some(true), 0),
                res("", "Service", "minio", "minio-nodeport", Some(true), 0),
                res("apps", "Deployment", "minio", "minio", Some(true), 1),
            ],
        ),
    ];
    for a in &mut v {
        if env == Env::Production && a.name == "iam-service-production" {
            a.health = (
                "Degraded",
                "Deployment \"iam-service\" exceeded its progress deadline".into(),
            );
        }
        if env == Env::Staging && a.name == "frontend-staging" {
            // Matches the staging pod stuck in ImagePullBackOff on the release candidate.
            a.images.push(format!(
                "{}/frontend:{}",
                crate::sim::seed::GHCR,
                crate::sim::seed::FRONTEND_MISSING_TAG
            ));
            a.health = (
                "Progressing",
                "Waiting for rollout to finish: 1 of 2 updated replicas are available...".into(),
            );
        }
    }
    v
}

/// `spec.source` of an app.
pub fn source(spec: &AppSpec) -> Value {
    json!({"repoURL": REPO_URL, "path": spec.path, "targetRevision": "main"})
}

/// `status.resources[]`, every resource with `sync` and, where it has one, the app's health.
pub fn resources_json(spec: &AppSpec, sync: &str, health: &str, message: &str) -> Value {
    spec.resources
        .iter()
        .map(|r| {
            let mut v = json!({"version": r.version, "kind": r.kind, "namespace": r.namespace, "name": r.name, "status": sync});
            if !r.group.is_empty() {
                v["group"] = json!(r.group);
            }
            if let Some(ok) = r.healthy {
                // The workload carries the app's trouble; Services and HPAs stay Healthy.
                let h = if ok && matches!(r.kind, "Deployment" | "StatefulSet") && health != "Healthy" {
                    let mut h = json!({"status": health});
                    if !message.is_empty() {
                        h["message"] = json!(message);
                    }
                    h
                } else {
                    json!({"status": "Healthy"})
                };
                v["health"] = h;
            }
            v
        })
        .collect()
}

/// One `status.history[]` entry.
pub fn history_entry(
    spec: &AppSpec,
    id: i64,
    revision: &str,
    at: Timestamp,
    automated: bool,
) -> Value {
    let initiated = if automated {
        json!({"automated": true})
    } else {
        json!({"username": "admin"})
    };
    json!({
        "id": id,
        "revision": revision,
        "deployedAt": time(at),
        "deployStartedAt": time(at - SignedDuration::from_secs(12)),
        "source": source(spec),
        "initiatedBy": initiated,
    })
}

/// A finished operation state.
pub fn operation_state(
    revision: &str,
    prune: bool,
    started: Timestamp,
    finished: Option<Timestamp>,
    automated: bool,
) -> Value {
    let initiated = if automated {
        json!({"automated": true})
    } else {
        json!({"username": "admin"})
    };
    let mut v = json!({
        "operation": {"sync": {"revision": revision, "prune": prune, "syncStrategy": {"hook": {}}}, "initiatedBy": initiated, "retry": {}},
        "startedAt": time(started),
    });
    match finished {
        Some(f) => {
            v["phase"] = json!("Succeeded");
            v["message"] = json!("successfully synced (all tasks run)");
            v["finishedAt"] = json!(time(f));
            v["syncResult"] = json!({"revision": revision, "source": {"repoURL": REPO_URL, "targetRevision": "main"}});
        }
        None => {
            v["phase"] = json!("Running");
            v["message"] = json!("one or more tasks are running");
        }
    }
    v
}

/// The initial Application object and the commit `main` points at for it.
pub fn application(env: Env, spec: &AppSpec, now: Timestamp, index: usize) -> (Value, String) {
    let head = sha(&format!("{}/{}/head", env.name(), spec.name));
    // Production's app services are behind main: Image Updater writes tags back to `main`,
    // production syncs only by hand, so they go OutOfSync after every build.
    let drifted = env == Env::Production && !spec.name.starts_with("infra-");
    let deployed = if drifted {
        sha(&format!("{}/{}/previous", env.name(), spec.name))
    } else {
        head.clone()
    };
    let sync = if drifted { "OutOfSync" } else { "Synced" };
    let last = now - SignedDuration::from_secs(3600 * (3 + index as i64));
    let mut history = Vec::new();
    for i in 0..3i64 {
        let rev = if i == 2 {
            deployed.clone()
        } else {
            sha(&format!("{}/{}/old{i}", env.name(), spec.name))
        };
        let at = last - SignedDuration::from_secs(86_400 * (2 - i));
        history.push(history_entry(spec, i + 1, &rev, at, spec.auto_sync));
    }
    let (health, message) = (spec.health.0, spec.health.1.as_str());
    let mut health_json = json!({"status": health, "lastTransitionTime": time(last)});
    if !message.is_empty() {
        health_json["message"] = json!(message);
    }
    let mut spec_json = json!({
        "project": spec.project,
        "source": source(spec),
        "destination": {"server": IN_CLUSTER, "namespace": spec.namespace},
        "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
    });
    if spec.auto_sync {
        spec_json["syncPolicy"]["automated"] = json!({"prune": true, "selfHeal": true});
    }
    let mut resources = resources_json(spec, "Synced", health, message);
    if drifted && let Some(arr) = resources.as_array_mut() {
        for r in arr.iter_mut().filter(|r| r["kind"] == "Deployment") {
            r["status"] = json!("OutOfSync");
        }
    }
    let obj = json!({
        "metadata": {
            "name": spec.name,
            "namespace": "argocd",
            "uid": crate::sim::seed::uid(&format!("argocd/{}/{}", env.name(), spec.name)),
            "resourceVersion": "1",
            "generation": 3,
            "creationTimestamp": time(now - SignedDuration::from_secs(86_400 * 40)),
            "labels": {"app.kubernetes.io/part-of": spec.project},
        },
        "spec": spec_json,
        "status": {
            "resources": resources,
            "sync": {
                "status": sync,
                "revision": deployed,
                "comparedTo": {"source": source(spec), "destination": {"server": IN_CLUSTER, "namespace": spec.namespace}},
            },
            "health": health_json,
            "history": history,
            "reconciledAt": time(now - SignedDuration::from_secs(60)),
            "operationState": operation_state(&deployed, false, last - SignedDuration::from_secs(12), Some(last), spec.auto_sync),
            "sourceType": "Kustomize",
            "summary": {"images": spec.images},
            "controllerNamespace": "argocd",
        },
    });
    (obj, head)
}

/// `v1alpha1ApplicationTree` for an app: its resources plus the ReplicaSets and Pods under
/// each Deployment and the Pods under each StatefulSet, with ResourceRef fields flattened.
pub fn resource_tree(env: Env, spec: &AppSpec, obj: &Value) -> Value {
    let health_of = |kind: &str, name: &str| -> Option<Value> {
        obj["status"]["resources"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .and_then(|r| r.get("health").cloned())
    };
    let mut nodes = Vec::new();
    for r in &spec.resources {
        let uid = crate::sim::seed::uid(&format!(
            "{}/{}/{}/{}",
            env.name(),
            r.kind,
            r.namespace,
            r.name
        ));
        let mut n = json!({"version": r.version, "kind": r.kind, "namespace": r.namespace, "name": r.name, "uid": uid, "resourceVersion": "1"});
        if !r.group.is_empty() {
            n["group"] = json!(r.group);
        }
        if let Some(h) = health_of(r.kind, &r.name) {
            n["health"] = h;
        }
        nodes.push(n);
        let pod_parent = match r.kind {
            "Deployment" => {
                let rs = format!(
                    "{}-{}",
                    r.name,
                    &sha(&format!("{}/{}", env.name(), r.name))[..10]
                );
                let rs_uid = crate::sim::seed::uid(&format!("{}/rs/{rs}", env.name()));
                nodes.push(json!({"group": "apps", "version": "v1", "kind": "ReplicaSet", "namespace": r.namespace, "name": rs, "uid": rs_uid,
                    "parentRefs": [{"group": "apps", "kind": "Deployment", "namespace": r.namespace, "name": r.name, "uid": uid}],
                    "health": {"status": "Healthy"}, "info": [{"name": "Revision", "value": "Rev:3"}]}));
                Some(("ReplicaSet", rs, rs_uid, "apps"))
            }
            "StatefulSet" => Some(("StatefulSet", r.name.clone(), uid.clone(), "apps")),
            _ => None,
        };
        if let Some((pkind, pname, puid, pgroup)) = pod_parent {
            for i in 0..r.replicas {
                let pod = if pkind == "StatefulSet" {
                    format!("{pname}-{i}")
                } else {
                    format!("{pname}-{}", &sha(&format!("{pname}/{i}"))[..5])
                };
                let images: Vec<&String> = spec.images.iter().take(1).collect();
                nodes.push(json!({"version": "v1", "kind": "Pod", "namespace": r.namespace, "name": pod,
                    "uid": crate::sim::seed::uid(&format!("{}/pod/{pod}", env.name())),
                    "parentRefs": [{"group": pgroup, "kind": pkind, "namespace": r.namespace, "name": pname, "uid": puid}],
                    "images": images, "health": {"status": "Healthy"}, "info": [{"name": "Status Reason", "value": "Running"}]}));
            }
        }
    }
    json!({"nodes": nodes, "hosts": [{"name": env.node()}]})
}
