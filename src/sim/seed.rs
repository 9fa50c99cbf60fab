//! The contents of a simulated cluster: the fleet described in
//! `target-environment.md` (namespaces, workloads with their ReplicaSets and heavy pods,
//! services, PVCs, the node, backup CronJobs and Jobs) and the pod builders churn reuses.
//!
//! Objects are written as JSON and round-tripped through the `k8s_openapi` types, so every
//! object served is a valid, fully typed Kubernetes object.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::store::{self, ResourceKind, Store};

/// Which of the two clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    Staging,
    Production,
}

impl Env {
    pub fn name(self) -> &'static str {
        match self {
            Env::Staging => "staging",
            Env::Production => "production",
        }
    }
    pub fn app_namespace(self) -> &'static str {
        match self {
            Env::Staging => "goapps-staging",
            Env::Production => "goapps-production",
        }
    }
    pub fn node(self) -> &'static str {
        match self {
            Env::Staging => "staging-vps",
            Env::Production => "prod-vps",
        }
    }
    fn node_ip(self) -> &'static str {
        match self {
            Env::Staging => "10.10.0.11",
            Env::Production => "10.10.0.21",
        }
    }
    /// A small number distinguishing the clusters (uids differ between them).
    pub fn tag(self) -> u64 {
        match self {
            Env::Staging => 1,
            Env::Production => 2,
        }
    }
}

/// How a workload runs its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// The state a pod is built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    Running,
    /// Restarting: last terminated with Error, now waiting in CrashLoopBackOff.
    CrashLoop {
        restarts: i32,
    },
    ImagePullBackOff,
    /// Not yet scheduled.
    Unscheduled,
    /// Scheduled, containers being created.
    ContainerCreating,
    Succeeded,
}

/// A Service: name, type (`ClusterIP`, `NodePort`, `LoadBalancer`, or `Headless` for a
/// ClusterIP `None` Service), and ports as (port name, port, targetPort, nodePort; 0 = none
/// or picked by the cluster).
pub type ServiceSpec = (String, &'static str, Vec<(&'static str, i32, i32, i32)>);

/// One workload of the fleet and everything needed to build its pods.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    pub replicas: i32,
    pub image: String,
    pub ports: Vec<(&'static str, i32)>,
    pub component: &'static str,
    /// `app.kubernetes.io/part-of`; empty for none (only the goapps backends carry one).
    pub part_of: &'static str,
    /// Extra volumes (JSON `Volume`s) and their mount paths.
    pub volumes: Vec<(Value, &'static str)>,
    /// The Services selecting this workload.
    pub services: Vec<ServiceSpec>,
    /// The container's `imagePullPolicy`.
    pub pull_policy: &'static str,
    pub cpu: &'static str,
    pub memory: &'static str,
    pub pod_template_hash: String,
}

impl AppSpec {
    fn new(ns: &str, name: &str, kind: WorkloadKind, image: &str) -> AppSpec {
        AppSpec {
            namespace: ns.to_string(),
            name: name.to_string(),
            kind,
            replicas: 1,
            image: image.to_string(),
            ports: Vec::new(),
            component: "server",
            part_of: "goapps",
            volumes: Vec::new(),
            services: Vec::new(),
            pull_policy: "IfNotPresent",
            cpu: "100m",
            memory: "128Mi",
            pod_template_hash: template_hash(&format!("{ns}/{name}/{image}")),
        }
    }
    fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }
    fn ports(mut self, p: &[(&'static str, i32)]) -> Self {
        self.ports = p.to_vec();
        self
    }
    fn part_of(mut self, p: &'static str, component: &'static str) -> Self {
        self.part_of = p;
        self.component = component;
        self
    }
    fn service(mut self, name: &str, ty: &'static str, ports: &[(&'static str, i32, i32)]) -> Self {
        let ports = ports.iter().map(|&(n, p, t)| (n, p, t, 0)).collect();
        self.services.push((name.to_string(), ty, ports));
        self
    }
    fn node_port_service(mut self, name: &str, ports: &[(&'static str, i32, i32, i32)]) -> Self {
        self.services
            .push((name.to_string(), "NodePort", ports.to_vec()));
        self
    }
    fn pull_always(mut self) -> Self {
        self.pull_policy = "Always";
        self
    }
    fn volume(mut self, v: Value, mount: &'static str) -> Self {
        self.volumes.push((v, mount));
        self
    }
    fn resources(mut self, cpu: &'static str, memory: &'static str) -> Self {
        self.cpu = cpu;
        self.memory = memory;
        self
    }
    /// The name of the ReplicaSet owning this Deployment's pods.
    pub fn replicaset_name(&self) -> String {
        format!("{}-{}", self.name, self.pod_template_hash)
    }
    /// Labels selecting this workload's pods: `app: <name>`, as every manifest of the fleet
    /// selects (the Services too).
    pub fn selector(&self) -> Value {
        json!({"app": self.name})
    }
    /// The workload's own labels and its pod template's: `app`, the kustomize-added
    /// `app.kubernetes.io/name` and `component`, and `part-of` where the manifests set it.
    pub fn labels(&self) -> Value {
        let mut l = json!({"app": self.name, "app.kubernetes.io/name": self.name, "app.kubernetes.io/component": self.component});
        if !self.part_of.is_empty() {
            l["app.kubernetes.io/part-of"] = json!(self.part_of);
        }
        l
    }
}

/// A stable pseudo-random u64 from a string.
pub fn hash64(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn encode(mut n: u64, len: usize) -> String {
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        out.push(ALNUM[(n % ALNUM.len() as u64) as usize] as char);
        n /= ALNUM.len() as u64;
        if n == 0 {
            n = hash64(&out);
        }
    }
    out
}

/// A pod-template-hash like `7c9d8f6b5d`.
pub fn template_hash(seed: &str) -> String {
    encode(hash64(seed), 10)
}

/// A 5-character pod name suffix like `x2k9p`.
pub fn name_suffix(seed: &str) -> String {
    encode(hash64(seed), 5)
}

/// The 5-character suffix of replica `i` of a workload: distinct for every `i` below
/// 27^5 (a bijection of `i`), so thousands of filler pods never collide.
pub fn replica_suffix(seed: &str, i: usize) -> String {
    const SPACE: u64 = 27 * 27 * 27 * 27 * 27;
    let mut n = (hash64(seed) % SPACE + (i as u64 % SPACE) * 7_654_321) % SPACE;
    let mut out = String::with_capacity(5);
    for _ in 0..5 {
        out.push(ALNUM[(n % 27) as usize] as char);
        n /= 27;
    }
    out
}

/// A uid derived from a name, stable across runs.
pub fn uid(seed: &str) -> String {
    let a = hash64(seed);
    let b = hash64(&format!("{seed}#"));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn ago(seconds: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now - seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| store::now_rfc3339())
}

/// Round-trips JSON through a `k8s_openapi` type, so only valid objects are served.
pub fn typed<T: DeserializeOwned + Serialize>(v: Value) -> Value {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => serde_json::to_value(t).unwrap_or(v),
        Err(e) => {
            // A builder bug, not input: make it loud in tests.
            debug_assert!(false, "sim: object does not fit its type: {e}");
            tracing::error!("sim: object does not fit its type: {e}");
            v
        }
    }
}

/// The workloads of one cluster (base fleet, without filler): target-environment.md,
/// "Workloads (per cluster)", upstream snapshot (`mutugading/goapps-infra` at `5cad4f3`).
pub fn apps(env: Env) -> Vec<AppSpec> {
    use WorkloadKind::*;
    let app_ns = env.app_namespace();
    // Staging runs one replica of each app service, production two (overlays/*/patches/replicas.yaml).
    let app_replicas = match env {
        Env::Staging => 1,
        Env::Production => 2,
    };
    // Upstream's tags: iam-service production on `latest` (the rollback trap), staging on `main`.
    let iam_tag = match env {
        Env::Staging => "main",
        Env::Production => "latest",
    };
    let argocd_image = "quay.io/argoproj/argocd:v2.13.1";
    let mut v = vec![
        AppSpec::new(app_ns, "finance-service", Deployment, &format!("{GHCR}/finance-service:{FINANCE_TAG}"))
            .replicas(app_replicas)
            .ports(&[("grpc", 50051), ("http", 8080), ("metrics", 8090)])
            .service("finance-service", "ClusterIP", &[("grpc", 50051, 50051), ("http", 8080, 8080), ("metrics", 8090, 8090)])
            .part_of("goapps", "api")
            .pull_always()
            .resources("250m", "256Mi"),
        AppSpec::new(app_ns, "iam-service", Deployment, &format!("{GHCR}/iam-service:{iam_tag}"))
            .replicas(app_replicas)
            .ports(&[("grpc", 50052), ("http", 8081), ("metrics", 8091)])
            .service("iam-service", "ClusterIP", &[("grpc", 50052, 50052), ("http", 8081, 8081), ("metrics", 8091, 8091)])
            .part_of("goapps", "api")
            .pull_always()
            .resources("250m", "256Mi"),
        AppSpec::new(app_ns, "frontend", Deployment, &format!("{GHCR}/frontend:{FRONTEND_TAG}"))
            .replicas(app_replicas)
            .ports(&[("http", 3000)])
            .service("frontend", "ClusterIP", &[("http", 80, 3000)])
            .part_of("", "web"),
        AppSpec::new("database", "postgres", StatefulSet, "postgres:18-alpine")
            .ports(&[("postgres", 5432)])
            .service("postgres", "ClusterIP", &[("postgres", 5432, 5432)])
            .service("postgres-headless", "Headless", &[("postgres", 5432, 5432)])
            .part_of("", "database")
            .volume(json!({"name": "postgres-data", "persistentVolumeClaim": {"claimName": "postgres-data-postgres-0"}}), "/var/lib/postgresql/data")
            .resources("500m", "1Gi"),
        AppSpec::new("database", "pgbouncer", Deployment, "edoburu/pgbouncer:v1.25.1-p0")
            .ports(&[("postgresql", 5432)])
            .service("pgbouncer", "ClusterIP", &[("postgresql", 5432, 5432)])
            .part_of("", "pooler"),
        AppSpec::new("database", "redis", Deployment, "redis:7-alpine")
            .ports(&[("redis", 6379)])
            .service("redis", "ClusterIP", &[("redis", 6379, 6379)])
            .part_of("", "cache")
            .volume(json!({"name": "redis-data", "emptyDir": {}}), "/data"),
        AppSpec::new("database", "rabbitmq", StatefulSet, "rabbitmq:3-management-alpine")
            .ports(&[("amqp", 5672), ("management", 15672)])
            .service("rabbitmq", "ClusterIP", &[("amqp", 5672, 5672), ("management", 15672, 15672)])
            .part_of("", "broker")
            .volume(json!({"name": "rabbitmq-data", "persistentVolumeClaim": {"claimName": "rabbitmq-data-rabbitmq-0"}}), "/var/lib/rabbitmq")
            .resources("200m", "512Mi"),
        AppSpec::new("database", "postgres-exporter", Deployment, "quay.io/prometheuscommunity/postgres-exporter:v0.15.0")
            .ports(&[("metrics", 9187)])
            .service("postgres-exporter", "ClusterIP", &[("metrics", 9187, 9187)])
            .part_of("", "exporter"),
        AppSpec::new("minio", "minio", Deployment, "minio/minio:latest")
            .ports(&[("api", 9000), ("console", 9001)])
            .service("minio", "ClusterIP", &[("api", 9000, 9000), ("console", 9001, 9001)])
            .node_port_service("minio-nodeport", &[("api", 9000, 9000, 30091), ("console", 9001, 9001, 30090)])
            .part_of("", "storage")
            .volume(json!({"name": "data", "persistentVolumeClaim": {"claimName": "minio-data"}}), "/data")
            .volume(json!({"name": "certs", "secret": {"secretName": "minio-tls", "defaultMode": 420}}), "/root/.minio/certs"),
        AppSpec::new("monitoring", "prometheus-grafana", Deployment, "docker.io/grafana/grafana:11.3.1")
            .ports(&[("grafana", 3000)])
            .service("prometheus-grafana", "ClusterIP", &[("http-web", 80, 3000)])
            .part_of("", "grafana"),
        AppSpec::new("monitoring", "prometheus-prometheus-kube-prometheus-prometheus", StatefulSet, "quay.io/prometheus/prometheus:v2.55.1")
            .ports(&[("http-web", 9090)])
            .service("prometheus-kube-prometheus-prometheus", "ClusterIP", &[("http-web", 9090, 9090)])
            .part_of("", "prometheus")
            .resources("500m", "2Gi"),
        AppSpec::new("monitoring", "alertmanager-prometheus-kube-prometheus-alertmanager", StatefulSet, "quay.io/prometheus/alertmanager:v0.27.0")
            .ports(&[("http-web", 9093)])
            .service("prometheus-kube-prometheus-alertmanager", "ClusterIP", &[("http-web", 9093, 9093)])
            .part_of("", "alertmanager"),
        AppSpec::new("monitoring", "loki", StatefulSet, "grafana/loki:2.9.3")
            .ports(&[("http-metrics", 3100)])
            .service("loki", "ClusterIP", &[("http-metrics", 3100, 3100)])
            .part_of("", "loki"),
        AppSpec::new("monitoring", "loki-promtail", DaemonSet, "docker.io/grafana/promtail:2.9.3")
            .ports(&[("http-metrics", 3101)])
            .part_of("", "promtail")
            .volume(json!({"name": "varlog", "hostPath": {"path": "/var/log", "type": ""}}), "/var/log"),
        AppSpec::new("observability", "jaeger", Deployment, "jaegertracing/all-in-one:1.55")
            .ports(&[("query", 16686), ("grpc", 14250), ("http", 14268)])
            .service("jaeger-query", "ClusterIP", &[("query", 16686, 16686)])
            .service("jaeger-collector", "ClusterIP", &[("grpc", 14250, 14250), ("http", 14268, 14268)])
            .part_of("", "all-in-one"),
        // `server.insecure=true`, `--rootpath=/argocd`: both Service ports reach plain HTTP on 8080.
        AppSpec::new("argocd", "argocd-server", Deployment, argocd_image)
            .ports(&[("server", 8080), ("metrics", 8083)])
            .service("argocd-server", "ClusterIP", &[("http", 80, 8080), ("https", 443, 8080)])
            .part_of("argocd", "server"),
        AppSpec::new("argocd", "argocd-repo-server", Deployment, argocd_image)
            .ports(&[("repo-server", 8081), ("metrics", 8084)])
            .service("argocd-repo-server", "ClusterIP", &[("tcp-repo-server", 8081, 8081)])
            .part_of("argocd", "repo-server"),
        AppSpec::new("argocd", "argocd-application-controller", StatefulSet, argocd_image)
            .ports(&[("metrics", 8082)])
            .part_of("argocd", "application-controller")
            .resources("250m", "512Mi"),
        AppSpec::new("argocd", "argocd-redis", Deployment, "public.ecr.aws/docker/library/redis:7.4.1-alpine")
            .ports(&[("redis", 6379)])
            .service("argocd-redis", "ClusterIP", &[("tcp-redis", 6379, 6379)])
            .part_of("argocd", "redis"),
        AppSpec::new("argocd", "argocd-image-updater", Deployment, "quay.io/argoprojlabs/argocd-image-updater:v0.15.1")
            .part_of("argocd", "image-updater"),
        AppSpec::new("ingress-nginx", "ingress-nginx-controller", Deployment, "registry.k8s.io/ingress-nginx/controller:v1.12.0")
            .ports(&[("http", 80), ("https", 443), ("metrics", 10254)])
            .service("ingress-nginx-controller", "LoadBalancer", &[("http", 80, 80), ("https", 443, 443)])
            .part_of("ingress-nginx", "controller"),
        AppSpec::new("kube-system", "coredns", Deployment, "rancher/mirrored-coredns-coredns:1.12.0")
            .ports(&[("dns", 53), ("dns-tcp", 53), ("metrics", 9153)])
            .service("kube-dns", "ClusterIP", &[("dns", 53, 53), ("dns-tcp", 53, 53), ("metrics", 9153, 9153)])
            .part_of("k3s", "dns"),
        AppSpec::new("kube-system", "local-path-provisioner", Deployment, "rancher/local-path-provisioner:v0.0.31")
            .part_of("k3s", "storage"),
        AppSpec::new("kube-system", "metrics-server", Deployment, "rancher/mirrored-metrics-server:v0.7.2")
            .ports(&[("https", 10250)])
            .service("metrics-server", "ClusterIP", &[("https", 443, 10250)])
            .part_of("k3s", "metrics"),
    ];
    for a in &mut v {
        a.pod_template_hash = template_hash(&format!("{}/{}/{}", a.namespace, a.name, a.image));
    }
    v
}

/// The registry of the app images (`ghcr.io/mutugading/*`, pull secret `ghcr-secret`).
pub const GHCR: &str = "ghcr.io/mutugading";
/// Upstream's finance-service tag (services/finance-service/overlays/*/kustomization.yaml).
pub const FINANCE_TAG: &str = "2754734";
/// Upstream's frontend tag.
pub const FRONTEND_TAG: &str = "sha-7e3bcd5";
/// The tag staging's frontend rollout is stuck pulling (it was never pushed).
pub const FRONTEND_MISSING_TAG: &str = "sha-9f41c0a";

/// A Job-owned workload (short-lived batch pods).
pub fn job_app(ns: &str, name: &str) -> AppSpec {
    let mut a = AppSpec::new(
        ns,
        name,
        WorkloadKind::Deployment,
        "ghcr.io/mutugading/report-generator:v0.8.2",
    )
    .part_of("goapps", "batch");
    a.ports = vec![("metrics", 9102)];
    a
}

/// The filler workload that brings a cluster up to `SimOptions::pods`.
pub fn filler_app(replicas: i32) -> AppSpec {
    AppSpec::new(
        "load",
        "load-generator",
        WorkloadKind::Deployment,
        "ghcr.io/mutugading/load-generator:v0.3.0",
    )
    .replicas(replicas)
    .ports(&[("http", 8080), ("metrics", 8090)])
    .part_of("load", "worker")
}

fn env_vars(env: Env, app: &AppSpec) -> Value {
    let port = |i: usize| {
        app.ports
            .get(i)
            .map(|p| p.1.to_string())
            .unwrap_or_else(|| "8080".into())
    };
    json!([
        {"name": "APP_ENV", "value": env.name()},
        {"name": "APP_NAME", "value": app.name},
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "LOG_FORMAT", "value": "json"},
        {"name": "TZ", "value": "Asia/Jakarta"},
        {"name": "PRIMARY_PORT", "value": port(0)},
        {"name": "SECONDARY_PORT", "value": port(1)},
        {"name": "DB_HOST", "value": "pgbouncer.database.svc.cluster.local"},
        {"name": "DB_PORT", "value": "5432"},
        {"name": "DB_NAME", "value": "goapps"},
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": format!("{}-db", app.name), "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": format!("{}-db", app.name), "key": "password"}}},
        {"name": "REDIS_ADDR", "value": "redis.database.svc.cluster.local:6379"},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://jaeger-collector.observability.svc.cluster.local:4317"},
        {"name": "OTEL_SERVICE_NAME", "value": app.name},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"containerName": app.name, "divisor": "0", "resource": "limits.cpu"}}}
    ])
}

/// Where a pod sits: its name, owner, IP and age.
pub struct PodPlacement {
    pub name: String,
    pub owner_kind: &'static str,
    pub owner_name: String,
    pub ip: String,
    pub age_s: i64,
}

/// The pod IP for the n-th pod of a cluster.
pub fn pod_ip(n: usize) -> String {
    format!("10.42.{}.{}", (n / 250) % 256, n % 250 + 2)
}

fn container_id(seed: &str) -> String {
    format!(
        "containerd://{:016x}{:016x}{:016x}{:016x}",
        hash64(seed),
        hash64(&format!("{seed}1")),
        hash64(&format!("{seed}2")),
        hash64(&format!("{seed}3"))
    )
}

fn image_id(image: &str) -> String {
    let repo = image.split(':').next().unwrap_or(image);
    format!(
        "{repo}@sha256:{:016x}{:016x}{:016x}{:016x}",
        hash64(image),
        hash64(&format!("{image}a")),
        hash64(&format!("{image}b")),
        hash64(&format!("{image}c"))
    )
}

/// Builds a heavy, realistic pod of `app` in `state`.
pub fn build_pod(env: Env, app: &AppSpec, at: &PodPlacement, state: PodState) -> Value {
    let created = ago(at.age_s);
    let started = ago((at.age_s - 4).max(0));
    let mut labels = app.labels();
    match app.kind {
        WorkloadKind::Deployment => labels["pod-template-hash"] = json!(app.pod_template_hash),
        WorkloadKind::StatefulSet => {
            labels["controller-revision-hash"] =
                json!(format!("{}-{}", app.name, &app.pod_template_hash[..8]));
            labels["statefulset.kubernetes.io/pod-name"] = json!(at.name);
        }
        WorkloadKind::DaemonSet => {
            labels["controller-revision-hash"] = json!(&app.pod_template_hash[..9]);
            labels["pod-template-generation"] = json!("1");
        }
    }
    let owner_uid = uid(&format!(
        "{}/{}/{}/{}",
        env.name(),
        at.owner_kind,
        app.namespace,
        at.owner_name
    ));
    let owner_api = if at.owner_kind == "Job" {
        "batch/v1"
    } else {
        "apps/v1"
    };
    let ports: Vec<Value> = app
        .ports
        .iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": if n.starts_with("dns") && !n.ends_with("tcp") {"UDP"} else {"TCP"}}))
        .collect();
    let probe_port = app.ports.first().map(|p| p.1).unwrap_or(8080);
    let mut volumes = vec![
        json!({"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}}),
        json!({"name": "config", "configMap": {"name": format!("{}-config", app.name), "defaultMode": 420}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}),
    ];
    let mut mounts = vec![
        json!({"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}),
        json!({"name": "config", "mountPath": "/etc/app", "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    for (vol, path) in &app.volumes {
        volumes.push(vol.clone());
        mounts.push(json!({"name": vol["name"], "mountPath": path}));
    }
    let image = app.image.clone();
    let cid = container_id(&format!(
        "{}/{}",
        at.name,
        match state {
            PodState::CrashLoop { restarts } => restarts,
            _ => 0,
        }
    ));
    let scheduled = !matches!(state, PodState::Unscheduled);
    let (phase, ready, container_state, last_state, restarts, started_flag, ready_reason) =
        match state {
            PodState::Running => (
                "Running",
                true,
                json!({"running": {"startedAt": started}}),
                json!({}),
                0,
                Some(true),
                None,
            ),
            PodState::CrashLoop { restarts } => (
                "Running",
                false,
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container={} pod={}_{}({})", app.name, at.name, app.namespace, uid(&at.name))}}),
                json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ago(40), "finishedAt": ago(38), "containerID": container_id(&format!("{}/{}", at.name, restarts - 1))}}),
                restarts,
                Some(false),
                Some("ContainersNotReady"),
            ),
            PodState::ImagePullBackOff => (
                "Pending",
                false,
                json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\": ErrImagePull: failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found")}}),
                json!({}),
                0,
                Some(false),
                Some("ContainersNotReady"),
            ),
            PodState::ContainerCreating => (
                "Pending",
                false,
                json!({"waiting": {"reason": "ContainerCreating"}}),
                json!({}),
                0,
                Some(false),
                Some("ContainersNotReady"),
            ),
            PodState::Unscheduled => ("Pending", false, Value::Null, Value::Null, 0, None, None),
            PodState::Succeeded => (
                "Succeeded",
                false,
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": ago((at.age_s - 60).max(0)), "containerID": cid}}),
                json!({}),
                0,
                Some(false),
                Some("PodCompleted"),
            ),
        };
    let running = matches!(
        state,
        PodState::Running | PodState::CrashLoop { .. } | PodState::Succeeded
    );
    let mut conditions = vec![
        json!({"type": "PodScheduled", "status": if scheduled {"True"} else {"False"}, "lastTransitionTime": created,
        "reason": if scheduled { Value::Null } else { json!("Unschedulable") },
        "message": if scheduled { Value::Null } else { json!("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.") }}),
    ];
    if scheduled {
        let rs = if ready { "True" } else { "False" };
        conditions.push(json!({"type": "PodReadyToStartContainers", "status": if matches!(state, PodState::ContainerCreating) {"False"} else {"True"}, "lastTransitionTime": started}));
        conditions
            .push(json!({"type": "Initialized", "status": "True", "lastTransitionTime": created}));
        conditions.push(json!({"type": "ContainersReady", "status": rs, "lastTransitionTime": started, "reason": ready_reason}));
        conditions.push(json!({"type": "Ready", "status": rs, "lastTransitionTime": started, "reason": ready_reason}));
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "qosClass": "Burstable",
    });
    if scheduled {
        status["hostIP"] = json!(env.node_ip());
        status["hostIPs"] = json!([{"ip": env.node_ip()}]);
        status["startTime"] = json!(created);
        if !matches!(state, PodState::ContainerCreating) {
            status["podIP"] = json!(at.ip);
            status["podIPs"] = json!([{"ip": at.ip}]);
        }
        let mut cs = json!({
            "name": app.name,
            "image": image,
            "imageID": if matches!(state, PodState::ImagePullBackOff | PodState::ContainerCreating) { json!("") } else { json!(image_id(&app.image)) },
            "ready": ready,
            "restartCount": restarts,
            "started": started_flag,
            "state": container_state,
            "lastState": last_state,
            "volumeMounts": mounts.iter().map(|m| json!({"name": m["name"], "mountPath": m["mountPath"], "readOnly": m.get("readOnly").cloned().unwrap_or(json!(false))})).collect::<Vec<_>>(),
        });
        if running {
            cs["containerID"] = json!(cid);
        }
        status["containerStatuses"] = json!([cs]);
    }
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": at.name,
            "namespace": app.namespace,
            "uid": uid(&format!("{}/pod/{}/{}", env.name(), app.namespace, at.name)),
            "creationTimestamp": created,
            "generateName": format!("{}-", at.name.rsplit_once('-').map(|x| x.0).unwrap_or(&at.name)),
            "labels": labels,
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": ago(at.age_s + 86_400),
                "prometheus.io/scrape": "true",
                "prometheus.io/port": probe_port.to_string(),
                "checksum/config": format!("{:016x}{:016x}", hash64(&app.name), hash64(&app.image)),
            },
            "ownerReferences": [{"apiVersion": owner_api, "kind": at.owner_kind, "name": at.owner_name, "uid": owner_uid, "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "k3s", "operation": "Update", "apiVersion": "v1", "time": created, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:checksum/config": {}, "f:kubectl.kubernetes.io/restartedAt": {}},
                   "f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:app.kubernetes.io/name": {}},
                   "f:ownerReferences": {".": {}, format!("k:{{\"uid\":\"{owner_uid}\"}}"): {}}},
                   "f:spec": {"f:containers": {format!("k:{{\"name\":\"{}\"}}", app.name): {".": {}, "f:env": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:livenessProbe": {}, "f:name": {}, "f:ports": {}, "f:readinessProbe": {}, "f:resources": {}, "f:volumeMounts": {}}},
                   "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}, "f:volumes": {}}}},
                {"manager": "k3s", "operation": "Update", "apiVersion": "v1", "time": started, "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                   "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                   "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {".": {}, "k:{\"ip\":\"10.42.0.0\"}": {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "containers": [{
                "name": app.name,
                "image": app.image,
                "imagePullPolicy": app.pull_policy,
                "ports": ports,
                "env": env_vars(env, app),
                "resources": {"requests": {"cpu": app.cpu, "memory": app.memory}, "limits": {"cpu": "1", "memory": app.memory}},
                "livenessProbe": {"tcpSocket": {"port": probe_port}, "initialDelaySeconds": 15, "periodSeconds": 20, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "readinessProbe": {"tcpSocket": {"port": probe_port}, "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "volumeMounts": mounts,
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}
            }],
            "volumes": volumes,
            "restartPolicy": if at.owner_kind == "Job" { "OnFailure" } else { "Always" },
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app.name,
            "serviceAccount": app.name,
            "securityContext": {"fsGroup": 1000, "runAsUser": 1000, "runAsGroup": 1000},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]
        },
        "status": status
    });
    if scheduled {
        pod["spec"]["nodeName"] = json!(env.node());
    }
    if app.kind == WorkloadKind::StatefulSet {
        pod["spec"]["hostname"] = json!(at.name);
        pod["spec"]["subdomain"] = json!(app.name);
    }
    typed::<Pod>(pod)
}

/// A pod's placement for replica `i` of `app`.
pub fn placement(env: Env, app: &AppSpec, i: usize, ip_index: usize, age_s: i64) -> PodPlacement {
    let (name, owner_kind, owner_name) = match app.kind {
        WorkloadKind::Deployment => (
            format!(
                "{}-{}",
                app.replicaset_name(),
                replica_suffix(&format!("{}/{}", env.name(), app.name), i)
            ),
            "ReplicaSet",
            app.replicaset_name(),
        ),
        WorkloadKind::StatefulSet => (format!("{}-{i}", app.name), "StatefulSet", app.name.clone()),
        WorkloadKind::DaemonSet => (
            format!(
                "{}-{}",
                app.name,
                name_suffix(&format!("{}/{}/{i}", env.name(), app.name))
            ),
            "DaemonSet",
            app.name.clone(),
        ),
    };
    PodPlacement {
        name,
        owner_kind,
        owner_name,
        ip: pod_ip(ip_index),
        age_s,
    }
}

fn meta(env: Env, kind: &str, ns: &str, name: &str, labels: Value, age_s: i64) -> Value {
    let mut m = json!({"name": name, "uid": uid(&format!("{}/{kind}/{ns}/{name}", env.name())), "labels": labels, "creationTimestamp": ago(age_s)});
    if !ns.is_empty() {
        m["namespace"] = json!(ns);
    }
    m
}

/// The workload objects (Deployment/ReplicaSet, StatefulSet, DaemonSet) of `app`, with
/// status reflecting `ready` ready pods of `total`.
pub fn workload_objects(
    env: Env,
    app: &AppSpec,
    total: i32,
    ready: i32,
) -> Vec<(&'static ResourceKind, Value)> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    let age = 86_400 * 23;
    let labels = app.labels();
    let template = json!({
        "metadata": {"labels": app.labels()},
        "spec": {"containers": [{"name": app.name, "image": app.image, "imagePullPolicy": app.pull_policy, "ports": app.ports.iter().map(|(n, p)| json!({"name": n, "containerPort": p})).collect::<Vec<_>>()}]}
    });
    let mut out = Vec::new();
    match app.kind {
        WorkloadKind::Deployment => {
            let mut dm = meta(
                env,
                "Deployment",
                &app.namespace,
                &app.name,
                labels.clone(),
                age,
            );
            dm["annotations"] = json!({"deployment.kubernetes.io/revision": "3", "argocd.argoproj.io/tracking-id": format!("{}-{}:apps/Deployment:{}/{}", app.name, env.name(), app.namespace, app.name)});
            dm["generation"] = json!(3);
            let available = ready;
            let mut conds = vec![
                json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{}\" has successfully progressed.", app.replicaset_name()), "lastUpdateTime": ago(age), "lastTransitionTime": ago(age)}),
            ];
            conds.insert(0, if available >= app.replicas {
                json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": ago(3600), "lastTransitionTime": ago(3600)})
            } else {
                json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability.", "lastUpdateTime": ago(3600), "lastTransitionTime": ago(3600)})
            });
            let dep = json!({
                "metadata": dm,
                "spec": {"replicas": app.replicas, "selector": {"matchLabels": app.selector()}, "template": template,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
                "status": {"observedGeneration": 3, "replicas": total, "updatedReplicas": total, "readyReplicas": ready, "availableReplicas": available,
                    "unavailableReplicas": (total - available).max(0), "conditions": conds}
            });
            out.push((&store::DEPLOYMENTS, typed::<Deployment>(dep)));
            let mut rl = app.labels();
            rl["pod-template-hash"] = json!(app.pod_template_hash);
            let mut rsel = app.selector();
            rsel["pod-template-hash"] = json!(app.pod_template_hash);
            let mut rm = meta(
                env,
                "ReplicaSet",
                &app.namespace,
                &app.replicaset_name(),
                rl.clone(),
                age,
            );
            rm["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": app.name, "uid": uid(&format!("{}/Deployment/{}/{}", env.name(), app.namespace, app.name)), "controller": true, "blockOwnerDeletion": true}]);
            rm["annotations"] = json!({"deployment.kubernetes.io/desired-replicas": app.replicas.to_string(), "deployment.kubernetes.io/max-replicas": (app.replicas + 1).to_string(), "deployment.kubernetes.io/revision": "3"});
            let mut rtemplate = template.clone();
            rtemplate["metadata"]["labels"] = rl.clone();
            let rs = json!({
                "metadata": rm,
                "spec": {"replicas": app.replicas, "selector": {"matchLabels": rsel}, "template": rtemplate},
                "status": {"replicas": total, "readyReplicas": ready, "availableReplicas": available, "fullyLabeledReplicas": total, "observedGeneration": 1}
            });
            out.push((&store::REPLICASETS, typed::<ReplicaSet>(rs)));
        }
        WorkloadKind::StatefulSet => {
            let sts = json!({
                "metadata": meta(env, "StatefulSet", &app.namespace, &app.name, labels, age),
                "spec": {"replicas": app.replicas, "serviceName": app.name, "selector": {"matchLabels": app.selector()}, "template": template, "podManagementPolicy": "OrderedReady",
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
                "status": {"replicas": total, "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": total, "updatedReplicas": total, "observedGeneration": 1,
                    "currentRevision": format!("{}-{}", app.name, &app.pod_template_hash[..8]), "updateRevision": format!("{}-{}", app.name, &app.pod_template_hash[..8]), "collisionCount": 0}
            });
            out.push((&store::STATEFULSETS, typed::<StatefulSet>(sts)));
        }
        WorkloadKind::DaemonSet => {
            let ds = json!({
                "metadata": meta(env, "DaemonSet", &app.namespace, &app.name, labels, age),
                "spec": {"selector": {"matchLabels": app.selector()}, "template": template, "updateStrategy": {"type": "RollingUpdate"}},
                "status": {"currentNumberScheduled": total, "desiredNumberScheduled": total, "numberAvailable": ready, "numberMisscheduled": 0, "numberReady": ready, "updatedNumberScheduled": total, "observedGeneration": 1}
            });
            out.push((&store::DAEMONSETS, typed::<DaemonSet>(ds)));
        }
    }
    out
}

fn node(env: Env) -> Value {
    use k8s_openapi::api::core::v1::Node;
    let (cpu, mem, alloc_mem) = match env {
        Env::Staging => ("4", "8131288Ki", "8131288Ki"),
        Env::Production => ("8", "16374584Ki", "16374584Ki"),
    };
    let hb = ago(12);
    let cond = |t: &str, s: &str, r: &str, m: &str| json!({"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": hb, "lastTransitionTime": ago(86_400 * 40)});
    let mut m = meta(
        env,
        "Node",
        "",
        env.node(),
        json!({
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": env.node(),
            "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true", "node.kubernetes.io/instance-type": "k3s"
        }),
        86_400 * 40,
    );
    m["annotations"] = json!({"k3s.io/node-args": "[\"server\",\"--disable\",\"traefik\"]", "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"});
    typed::<Node>(json!({
        "metadata": m,
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": format!("k3s://{}", env.node())},
        "status": {
            "capacity": {"cpu": cpu, "memory": mem, "ephemeral-storage": "157274036Ki", "pods": "110", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": cpu, "memory": alloc_mem, "ephemeral-storage": "152995974165", "pods": "110", "hugepages-2Mi": "0"},
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": env.node_ip()}, {"type": "Hostname", "address": env.node()}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": format!("{:016x}", hash64(env.node())), "systemUUID": uid(env.node()), "bootID": uid(&format!("{}boot", env.node())),
                "kernelVersion": "6.8.0-59-generic", "osImage": "Ubuntu 24.04.2 LTS", "containerRuntimeVersion": "containerd://2.0.4-k3s2",
                "kubeletVersion": "v1.32.4+k3s1", "kubeProxyVersion": "v1.32.4+k3s1", "operatingSystem": "linux", "architecture": "amd64"}
        }
    }))
}

/// The Services of `app`; `idx` spreads their cluster IPs.
fn services(env: Env, app: &AppSpec, idx: usize) -> Vec<Value> {
    use k8s_openapi::api::core::v1::Service;
    let mut out = Vec::new();
    for (si, (name, ty, ports)) in app.services.iter().enumerate() {
        let headless = *ty == "Headless";
        let ty = if headless { "ClusterIP" } else { *ty };
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p, t, np)| {
                let mut v = json!({"name": n, "port": p, "targetPort": t, "protocol": if *n == "dns" {"UDP"} else {"TCP"}});
                if ty == "NodePort" || ty == "LoadBalancer" {
                    v["nodePort"] = json!(if *np > 0 { *np } else { 31000 + *p % 1000 });
                }
                v
            })
            .collect();
        let cluster_ip = if headless {
            "None".to_string()
        } else {
            format!("10.43.{}.{}", idx / 50, (idx % 50) * 4 + si + 10)
        };
        let mut svc = json!({
            "metadata": meta(env, "Service", &app.namespace, name, app.labels(), 86_400 * 23),
            "spec": {"type": ty, "selector": app.selector(), "ports": ports, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "sessionAffinity": "None",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}
        });
        if ty != "ClusterIP" {
            svc["spec"]["externalTrafficPolicy"] = json!("Cluster");
        }
        out.push(typed::<Service>(svc));
    }
    out
}

fn pvc(env: Env, ns: &str, name: &str, size: &str) -> Value {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let mut m = meta(
        env,
        "PersistentVolumeClaim",
        ns,
        name,
        json!({"app.kubernetes.io/name": name}),
        86_400 * 40,
    );
    m["annotations"] = json!({"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/selected-node": env.node(), "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path"});
    m["finalizers"] = json!(["kubernetes.io/pvc-protection"]);
    typed::<PersistentVolumeClaim>(json!({
        "metadata": m,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, "storageClassName": "local-path",
            "volumeMode": "Filesystem", "volumeName": format!("pvc-{}", uid(&format!("{}/pv/{ns}/{name}", env.name())))},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}
    }))
}

/// The four CronJobs of `infra-backup` in `database` (target-environment.md, "Backups"), each
/// with its newest Job and pod: `timeZone: Asia/Jakarta`, `concurrencyPolicy: Forbid`, history
/// limits 3, the label `app.kubernetes.io/part-of: goapps-backup` and no `app=` label.
/// Production's last afternoon run failed; staging's newest dump is empty yet its Job says
/// Complete (see `s3.rs`).
fn backups(
    env: Env,
    apps_out: &mut Vec<(&'static ResourceKind, Value)>,
    pods: &mut Vec<Value>,
    ip_index: &mut usize,
) {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    let now = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Asia/Jakarta").unwrap_or(jiff::tz::TimeZone::UTC));
    let disk = super::s3::disk_dir(env);
    let disk_root = disk.trim_end_matches("/postgres");
    let pg_script = "/scripts/backup.sh";
    for (name, hour) in [
        ("postgres-backup-morning", 6),
        ("postgres-backup-afternoon", 14),
        ("postgres-backup-night", 22),
        ("minio-backup-to-disk", 3),
    ] {
        let mirror = name == "minio-backup-to-disk";
        // Most recent past run of this schedule.
        let today = now.date().at(hour, 0, 0, 0);
        let mut last = today
            .to_zoned(now.time_zone().clone())
            .unwrap_or_else(|_| now.clone());
        if last > now {
            last = last.checked_sub(jiff::Span::new().days(1)).unwrap_or(last);
        }
        let age_s = (now.timestamp().as_second() - last.timestamp().as_second()).max(60);
        let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/component": "backup", "app.kubernetes.io/part-of": "goapps-backup"});
        let (container, volumes) = if mirror {
            (
                json!({"name": "minio-backup", "image": "minio/mc:latest", "command": ["/bin/sh", "-c", "/scripts/minio-backup.sh"],
                    "env": [{"name": "ENVIRONMENT", "value": env.name()},
                            {"name": "MINIO_ROOT_USER", "valueFrom": {"secretKeyRef": {"name": "minio-secret", "key": "MINIO_ROOT_USER"}}},
                            {"name": "MINIO_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "minio-secret", "key": "MINIO_ROOT_PASSWORD"}}}],
                    "volumeMounts": [{"name": "backup-scripts", "mountPath": "/scripts"}, {"name": "backup-host", "mountPath": "/backup"}]}),
                json!([{"name": "backup-scripts", "configMap": {"name": "backup-scripts", "defaultMode": 493}},
                       {"name": "backup-host", "hostPath": {"path": format!("{disk_root}/minio"), "type": "DirectoryOrCreate"}}]),
            )
        } else {
            let opt = |key: &str| json!({"name": key, "valueFrom": {"secretKeyRef": {"name": "s3-cloud-credentials", "key": key, "optional": true}}});
            (
                json!({"name": "postgres-backup", "image": "postgres:18-alpine", "command": ["/bin/sh", "-c", pg_script],
                    "env": [{"name": "ENVIRONMENT", "value": env.name()},
                            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-secret", "key": "POSTGRES_PASSWORD"}}},
                            {"name": "MINIO_ROOT_USER", "valueFrom": {"secretKeyRef": {"name": "minio-secret", "key": "MINIO_ROOT_USER"}}},
                            {"name": "MINIO_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "minio-secret", "key": "MINIO_ROOT_PASSWORD"}}},
                            opt("S3_ENDPOINT"), opt("S3_BUCKET"), opt("AWS_ACCESS_KEY_ID"), opt("AWS_SECRET_ACCESS_KEY")],
                    "volumeMounts": [{"name": "backup-scripts", "mountPath": "/scripts"}, {"name": "backup-host", "mountPath": "/backup"}]}),
                json!([{"name": "backup-scripts", "configMap": {"name": "backup-scripts", "defaultMode": 493}},
                       {"name": "backup-host", "hostPath": {"path": disk, "type": "DirectoryOrCreate"}}]),
            )
        };
        let pod_spec =
            json!({"restartPolicy": "OnFailure", "containers": [container], "volumes": volumes});
        let job_name = format!("{name}-{}", last.timestamp().as_second() / 60);
        // Production's last afternoon run failed (MinIO refused the upload): the Backups
        // panel shows the failed Job with its reason.
        let failed = env == Env::Production && name == "postgres-backup-afternoon";
        let cj = json!({
            "metadata": meta(env, "CronJob", "database", name, labels.clone(), 86_400 * 30),
            "spec": {"schedule": format!("0 {hour} * * *"), "timeZone": "Asia/Jakarta", "concurrencyPolicy": "Forbid", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                "jobTemplate": {"metadata": {"labels": labels}, "spec": {"template": {"metadata": {"labels": labels}, "spec": pod_spec}}}},
            "status": {"lastScheduleTime": last.timestamp().to_string(),
                "lastSuccessfulTime": if failed { ago(age_s + 86_400 - 94) } else { ago(age_s - 94) },
                "active": null}
        });
        apps_out.push((&store::CRONJOBS, typed::<CronJob>(cj)));
        let mut jl = labels.clone();
        jl["batch.kubernetes.io/job-name"] = json!(job_name);
        jl["job-name"] = json!(job_name);
        let mut jm = meta(env, "Job", "database", &job_name, jl.clone(), age_s);
        jm["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": uid(&format!("{}/CronJob/database/{name}", env.name())), "controller": true, "blockOwnerDeletion": true}]);
        let failed_status = json!({"failed": 7, "startTime": ago(age_s), "ready": 0, "terminating": 0,
            "conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": ago(age_s - 301), "lastTransitionTime": ago(age_s - 301)},
                           {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": ago(age_s - 301), "lastTransitionTime": ago(age_s - 301)}]});
        let mut job = json!({
            "metadata": jm,
            "spec": {"backoffLimit": 6, "completions": 1, "parallelism": 1, "template": {"metadata": {"labels": jl}, "spec": pod_spec}},
            "status": {"succeeded": 1, "startTime": ago(age_s), "completionTime": ago(age_s - 94), "ready": 0, "terminating": 0,
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": ago(age_s - 94), "lastTransitionTime": ago(age_s - 94)},
                               {"type": "Complete", "status": "True", "lastProbeTime": ago(age_s - 94), "lastTransitionTime": ago(age_s - 94)}]}
        });
        if failed {
            job["status"] = failed_status;
        }
        apps_out.push((&store::JOBS, typed::<Job>(job)));
        let (cname, image) = if mirror {
            ("minio-backup", "minio/mc:latest")
        } else {
            ("postgres-backup", "postgres:18-alpine")
        };
        let mut app = AppSpec::new("database", cname, WorkloadKind::Deployment, image)
            .part_of("goapps-backup", "backup");
        app.ports = Vec::new();
        let at = PodPlacement {
            name: format!("{job_name}-{}", name_suffix(&job_name)),
            owner_kind: "Job",
            owner_name: job_name.clone(),
            ip: pod_ip(*ip_index),
            age_s,
        };
        *ip_index += 1;
        let mut pod = build_pod(env, &app, &at, PodState::Succeeded);
        if let Some(l) = pod["metadata"]["labels"].as_object_mut() {
            // Job pods carry the template's labels and the Job's, no `app=`.
            l.clear();
            if let Some(m) = labels.as_object() {
                l.extend(m.clone());
            }
            l.insert("batch.kubernetes.io/job-name".into(), json!(job_name));
            l.insert("job-name".into(), json!(job_name));
        }
        pods.push(pod);
    }
}

/// A core/v1 Event about a pod, as the kubelet or scheduler records it. The name is
/// stable per (pod, reason), so recording it again updates the count.
pub fn pod_event(
    env: Env,
    pod: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    count: i64,
    first_ago_s: i64,
) -> Value {
    use k8s_openapi::api::core::v1::Event;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let ev_name = format!(
        "{name}.{:016x}",
        hash64(&format!("{name}/{reason}/{message}"))
    );
    let component = if reason == "Scheduled" {
        "default-scheduler"
    } else {
        "kubelet"
    };
    typed::<Event>(json!({
        "metadata": {"name": ev_name, "namespace": ns, "uid": uid(&format!("{}/event/{ns}/{ev_name}", env.name()))},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": pod["metadata"]["uid"], "apiVersion": "v1",
            "resourceVersion": pod["metadata"]["resourceVersion"], "fieldPath": format!("spec.containers{{{}}}", pod["spec"]["containers"][0]["name"].as_str().unwrap_or(""))},
        "reason": reason,
        "message": message,
        "source": {"component": component, "host": env.node()},
        "firstTimestamp": ago(first_ago_s),
        "lastTimestamp": ago(0),
        "count": count,
        "type": kind,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": env.node(),
    }))
}

/// Events for a pod in an unhealthy state (what `kubectl describe` shows).
fn events_for(env: Env, pod: &Value) -> Vec<Value> {
    let cs = &pod["status"]["containerStatuses"][0];
    let container = cs["name"].as_str().unwrap_or("");
    let image = cs["image"].as_str().unwrap_or("");
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    match cs["state"]["waiting"]["reason"].as_str() {
        Some("CrashLoopBackOff") => {
            let restarts = cs["restartCount"].as_i64().unwrap_or(1);
            vec![
                pod_event(
                    env,
                    pod,
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                    restarts + 1,
                    90_000,
                ),
                pod_event(
                    env,
                    pod,
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {container} in pod {pod_name}_{ns}({})",
                        pod["metadata"]["uid"].as_str().unwrap_or("")
                    ),
                    restarts * 20,
                    89_000,
                ),
            ]
        }
        Some("ImagePullBackOff") => vec![
            pod_event(
                env,
                pod,
                "Warning",
                "Failed",
                &format!(
                    "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
                ),
                302,
                90_000,
            ),
            pod_event(
                env,
                pod,
                "Warning",
                "Failed",
                "Error: ImagePullBackOff",
                6_000,
                90_000,
            ),
            pod_event(
                env,
                pod,
                "Normal",
                "BackOff",
                &format!("Back-off pulling image \"{image}\""),
                6_000,
                90_000,
            ),
        ],
        _ => Vec::new(),
    }
}

/// Everything in one cluster, ready for `Store::seed`.
pub struct Seeded {
    pub apps: Vec<AppSpec>,
    /// The next free pod IP index.
    pub next_ip: usize,
}

/// Fills `store` with the fleet of `env`, with at least `min_pods` pods.
pub fn seed(env: Env, store: &Store, min_pods: usize) -> Seeded {
    use k8s_openapi::api::core::v1::Namespace;
    let mut apps = apps(env);
    let base: usize = apps.iter().map(|a| a.replicas as usize).sum::<usize>() + 4; // + the pods of the four backup Jobs
    if min_pods > base {
        apps.push(filler_app((min_pods - base) as i32));
    }
    let mut namespaces: Vec<&str> = vec![
        env.app_namespace(),
        "database",
        "minio",
        "monitoring",
        "argocd",
        "observability",
        "ingress-nginx",
        "kubernetes-dashboard",
        "kube-system",
        "default",
        "kube-public",
        "kube-node-lease",
    ];
    if min_pods > base {
        namespaces.push("load");
    }
    let ns_objs = namespaces
        .iter()
        .map(|ns| {
            typed::<Namespace>(json!({
                "metadata": meta(env, "Namespace", "", ns, json!({"kubernetes.io/metadata.name": ns}), 86_400 * 40),
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
            }))
        })
        .collect();
    store.seed(&store::NAMESPACES, ns_objs);
    store.seed(&store::NODES, vec![node(env)]);

    let mut pods = Vec::new();
    let mut others: Vec<(&'static ResourceKind, Value)> = Vec::new();
    let mut ip_index = 0usize;
    let mut services = Vec::new();
    for (ai, app) in apps.iter().enumerate() {
        let mut ready = 0;
        let filler = app.namespace == "load";
        let template = if filler {
            Some(build_pod(
                env,
                app,
                &placement(env, app, 0, 0, 3600 * 5),
                PodState::Running,
            ))
        } else {
            None
        };
        for i in 0..app.replicas as usize {
            let state = if env == Env::Production && app.name == "iam-service" && i == 1 {
                PodState::CrashLoop { restarts: 12 }
            } else if env == Env::Staging && app.name == "frontend" && i == 0 {
                PodState::ImagePullBackOff
            } else {
                PodState::Running
            };
            if state == PodState::Running {
                ready += 1;
            }
            let age = 3600 * 26 - (ai as i64) * 300 - i as i64 * 7;
            let at = placement(env, app, i, ip_index, age);
            ip_index += 1;
            let pod = match &template {
                Some(t) => filler_pod(t, &at),
                None => {
                    let mut app = app.clone();
                    if state == PodState::ImagePullBackOff {
                        app.image = format!("{GHCR}/frontend:{FRONTEND_MISSING_TAG}");
                    }
                    build_pod(env, &app, &at, state)
                }
            };
            pods.push(pod);
        }
        for (kind, obj) in workload_objects(env, app, app.replicas, ready) {
            others.push((kind, obj));
        }
        services.extend(self::services(env, app, ai));
    }
    backups(env, &mut others, &mut pods, &mut ip_index);
    services.extend(external_services(env));
    store.seed(&store::SERVICES, services);
    store.seed(&store::SECRETS, secrets(env));
    store.seed(
        &store::PVCS,
        vec![
            pvc(env, "database", "postgres-data-postgres-0", "20Gi"),
            pvc(env, "database", "rabbitmq-data-rabbitmq-0", "5Gi"),
            pvc(env, "minio", "minio-data", "50Gi"),
            pvc(env, "monitoring", "prometheus-grafana", "10Gi"),
            pvc(env, "monitoring", "prometheus-prometheus-kube-prometheus-prometheus-db-prometheus-prometheus-kube-prometheus-prometheus-0", "20Gi"),
            pvc(env, "monitoring", "storage-loki-0", "10Gi"),
        ],
    );
    for kind in store::KINDS {
        let objs: Vec<Value> = others
            .iter()
            .filter(|(k, _)| std::ptr::eq(*k, *kind))
            .map(|(_, o)| o.clone())
            .collect();
        if !objs.is_empty() {
            store.seed(kind, objs);
        }
    }
    let events: Vec<Value> = pods.iter().flat_map(|p| events_for(env, p)).collect();
    store.seed(&store::EVENTS, events);
    store.seed(&store::PODS, pods);
    Seeded {
        apps,
        next_ip: ip_index,
    }
}

/// Standard base64 (for Secret `data`).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The user name in `postgres-secret`: staging's is `stgapps` (fork runbook), production's is
/// not recorded, so the deployment guide's `goapps_admin`.
pub fn postgres_user(env: Env) -> &'static str {
    match env {
        Env::Staging => "stgapps",
        Env::Production => "goapps_admin",
    }
}

/// The fake B2 endpoint and bucket in `s3-cloud-credentials` (the deployment guide's example).
pub const B2_ENDPOINT: &str = "s3.us-west-004.backblazeb2.com";
pub const B2_BUCKET: &str = "goapps-backups";

/// A Secret: namespace, name, type and `(key, value)` pairs.
type SecretSpec = (
    String,
    &'static str,
    &'static str,
    Vec<(&'static str, String)>,
);

/// The Secrets of target-environment.md, by name and keys, with fake values. The MinIO and
/// B2 keys are the simulated S3 store's own, so a client reading them from the cluster can list
/// the simulated buckets.
pub fn secrets(env: Env) -> Vec<Value> {
    use k8s_openapi::api::core::v1::Secret;
    let fake_crt = "-----BEGIN CERTIFICATE-----\nMIIFAKEopsdeckSimulatedWildcardMutugadingCom\n-----END CERTIFICATE-----\n";
    let fake_key =
        "-----BEGIN PRIVATE KEY-----\nMIIFAKEopsdeckSimulatedKey\n-----END PRIVATE KEY-----\n";
    let mut list: Vec<SecretSpec> = vec![
        (
            "database".into(),
            "postgres-secret",
            "Opaque",
            vec![
                ("POSTGRES_USER", postgres_user(env).into()),
                (
                    "POSTGRES_PASSWORD",
                    format!("sim-{}-pg-password", env.name()),
                ),
                ("POSTGRES_DB", "goapps".into()),
            ],
        ),
        (
            "database".into(),
            "minio-secret",
            "Opaque",
            vec![
                ("MINIO_ROOT_USER", super::s3::ACCESS_KEY.into()),
                ("MINIO_ROOT_PASSWORD", super::s3::SECRET_KEY.into()),
            ],
        ),
        (
            "minio".into(),
            "minio-secret",
            "Opaque",
            vec![
                ("MINIO_ROOT_USER", super::s3::ACCESS_KEY.into()),
                ("MINIO_ROOT_PASSWORD", super::s3::SECRET_KEY.into()),
            ],
        ),
        (
            "database".into(),
            "s3-cloud-credentials",
            "Opaque",
            vec![
                ("S3_ENDPOINT", B2_ENDPOINT.into()),
                ("S3_BUCKET", B2_BUCKET.into()),
                ("AWS_ACCESS_KEY_ID", super::s3::ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY", super::s3::SECRET_KEY.into()),
            ],
        ),
        (
            "database".into(),
            "rabbitmq-secret",
            "Opaque",
            vec![
                ("RABBITMQ_USER", "goapps".into()),
                (
                    "RABBITMQ_PASSWORD",
                    format!("sim-{}-rabbitmq-password", env.name()),
                ),
            ],
        ),
        (
            "minio".into(),
            "minio-tls",
            "Opaque",
            vec![
                ("public.crt", super::s3::TLS_CERT.into()),
                ("private.key", super::s3::TLS_KEY.into()),
            ],
        ),
        (
            "argocd".into(),
            "argocd-initial-admin-secret",
            "Opaque",
            vec![("password", format!("sim-{}-argocd-admin", env.name()))],
        ),
        (
            env.app_namespace().into(),
            "ghcr-secret",
            "kubernetes.io/dockerconfigjson",
            vec![(
                ".dockerconfigjson",
                r#"{"auths":{"ghcr.io":{"auth":"c2ltOmZha2U="}}}"#.into(),
            )],
        ),
    ];
    for ns in [
        "ingress-nginx",
        env.app_namespace(),
        "monitoring",
        "argocd",
        "minio",
        "kubernetes-dashboard",
    ] {
        list.push((
            ns.into(),
            "goapps-tls",
            "kubernetes.io/tls",
            vec![
                ("tls.crt", fake_crt.to_string()),
                ("tls.key", fake_key.to_string()),
            ],
        ));
    }
    list.into_iter()
        .map(|(ns, name, ty, data)| {
            let data: serde_json::Map<String, Value> = data
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(base64(v.as_bytes()))))
                .collect();
            typed::<Secret>(json!({
                "metadata": meta(env, "Secret", &ns, name, json!({}), 86_400 * 40),
                "type": ty,
                "data": data,
            }))
        })
        .collect()
}

/// The ExternalName Services `oracle-rnd` and `oracle-prod` in `database`.
fn external_services(env: Env) -> Vec<Value> {
    use k8s_openapi::api::core::v1::Service;
    [
        ("oracle-rnd", "oracle-rnd.mutugading.internal"),
        ("oracle-prod", "oracle-prod.mutugading.internal"),
    ]
    .into_iter()
    .map(|(name, host)| {
        typed::<Service>(json!({
            "metadata": meta(env, "Service", "database", name, json!({"app": name}), 86_400 * 40),
            "spec": {"type": "ExternalName", "externalName": host, "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}
        }))
    })
    .collect()
}

/// A filler pod: the template with this pod's identity patched in (cheap at 5,000 pods).
fn filler_pod(template: &Value, at: &PodPlacement) -> Value {
    let mut p = template.clone();
    p["metadata"]["name"] = json!(at.name);
    p["metadata"]["uid"] = json!(uid(&format!("filler/{}", at.name)));
    p["status"]["podIP"] = json!(at.ip);
    p["status"]["podIPs"] = json!([{"ip": at.ip}]);
    if let Some(cs) = p["status"]["containerStatuses"].get_mut(0) {
        cs["containerID"] = json!(container_id(&at.name));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_as_heavy_as_real_ones() {
        let store = Store::new(1, 100);
        seed(Env::Production, &store, 0);
        let (_, pods) = store.list(&store::PODS, None);
        assert!(pods.len() >= 25, "only {} pods", pods.len());
        for p in &pods {
            let size = serde_json::to_vec(&**p).map(|v| v.len()).unwrap_or(0);
            assert!(
                (4_000..=10_000).contains(&size),
                "{} is {size} bytes",
                p["metadata"]["name"]
            );
        }
    }

    #[test]
    fn production_has_one_crashlooping_iam_pod_and_degraded_deployment() {
        let store = Store::new(1, 100);
        seed(Env::Production, &store, 0);
        let (_, pods) = store.list(&store::PODS, Some("goapps-production"));
        let crash: Vec<_> = pods
            .iter()
            .filter(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
            })
            .collect();
        assert_eq!(crash.len(), 1);
        assert!(
            crash[0]["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("iam-service-"))
        );
        let dep = store
            .get(&store::DEPLOYMENTS, "goapps-production", "iam-service")
            .expect("iam deployment");
        assert_eq!(dep["spec"]["replicas"], 2);
        assert_eq!(dep["status"]["availableReplicas"], 1);
    }

    #[test]
    fn filler_brings_pod_count_up_to_the_minimum() {
        let store = Store::new(1, 100);
        seed(Env::Staging, &store, 500);
        let (_, pods) = store.list(&store::PODS, None);
        assert_eq!(pods.len(), 500);
        let many: std::collections::HashSet<String> =
            (0..20_000).map(|i| replica_suffix("x", i)).collect();
        assert_eq!(many.len(), 20_000);
        let redis = store.list(&store::PODS, Some("database")).1;
        assert!(
            redis
                .iter()
                .any(|p| p["spec"]["volumes"].as_array().is_some_and(|v| v
                    .iter()
                    .any(|v| v["name"] == "redis-data" && v.get("emptyDir").is_some())))
        );
    }
}
