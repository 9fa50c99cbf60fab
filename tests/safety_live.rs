//! "The screen never lies" (issue 21): the Kubernetes source behind a fault-injecting proxy in
//! front of the simulated fleet. A stalled API is marked stale within 20 s and cleared within
//! 10 s of recovery; after 410s, refused connections, cuts and error answers every kind equals
//! a fresh list; one object that does not decode is one warning; errors say what happened.
//!
//! The timing tests run at the console's real timings (a stall takes ~15 s to show); they run
//! in parallel threads of this one binary.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_proxy::{Fault, FaultProxy};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use opsdeck::config::{ClusterConfig, Config};
use opsdeck::model::{KubeSnapshot, NodeSummary, PodSummary, WorkloadSummary};
use opsdeck::sim::{Fleet, SimOptions};
use opsdeck::sources::{SourceEvent, SourceUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The fleet (no churn) and the staging cluster's config pointed at a proxy in front of its
/// API server.
async fn staging_behind_proxy() -> (Fleet, FaultProxy, ClusterConfig, ClusterConfig) {
    install_crypto();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("simulated fleet starts");
    let config: Config = Config::load(fleet.config_path())
        .map_err(|e| format!("{}", e[0]))
        .expect("fleet config loads")
        .config;
    let direct = config.cluster("staging").expect("staging").clone();
    let sim = fleet.cluster("staging").expect("staging sim");
    let proxy = FaultProxy::for_url(&sim.url()).await;
    let mut kc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fleet.kubeconfig_path()).expect("kubeconfig"),
    )
    .expect("kubeconfig is JSON");
    for c in kc["clusters"].as_array_mut().expect("clusters") {
        if c["name"] == "staging" {
            c["cluster"]["server"] = serde_json::Value::String(proxy.url());
        }
    }
    let path = fleet
        .dir()
        .join(format!("kubeconfig-proxy-{}", proxy.addr().port()));
    std::fs::write(&path, kc.to_string()).expect("write kubeconfig");
    let mut via = direct.clone();
    via.kubeconfig = Some(path);
    (fleet, proxy, via, direct)
}

fn spawn_source(
    cluster: &ClusterConfig,
) -> (mpsc::UnboundedReceiver<SourceEvent>, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    tokio::spawn(opsdeck::sources::kube::run(
        0,
        cluster.clone(),
        tx,
        cancel.clone(),
    ));
    (rx, cancel)
}

/// Waits up to `within` for an update satisfying `pred`; panics naming `what` and the last
/// update seen.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&SourceUpdate) -> bool,
) -> SourceUpdate {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                if pred(&ev.update) {
                    return ev.update;
                }
                last = Some(ev.update);
            }
            Ok(None) => panic!("source ended while waiting for {what}"),
            Err(_) => panic!(
                "no {what} within {within:?}; last update: {}",
                last.map(|u| brief(&u)).unwrap_or_else(|| "none".into())
            ),
        }
    }
}

fn brief(u: &SourceUpdate) -> String {
    match u {
        SourceUpdate::Kube(s) => format!(
            "snapshot: {} pods, {} workloads, {} nodes",
            s.pods.len(),
            s.workloads.len(),
            s.nodes.len()
        ),
        SourceUpdate::KubeFailing { reason } => format!("failing: {reason}"),
        other => format!("{other:?}"),
    }
}

/// What a fresh list of every kind says, straight from the server (no proxy).
#[derive(Debug, PartialEq)]
struct Picture {
    pods: BTreeMap<String, PodSummary>,
    workloads: BTreeMap<String, WorkloadSummary>,
    nodes: BTreeMap<String, NodeSummary>,
}

fn picture_of(s: &KubeSnapshot) -> Picture {
    Picture {
        pods: s
            .pods
            .iter()
            .map(|p| (format!("{}/{}", p.namespace, p.name), (**p).clone()))
            .collect(),
        workloads: s
            .workloads
            .iter()
            .map(|w| (format!("{}/{}/{}", w.kind, w.namespace, w.name), w.clone()))
            .collect(),
        nodes: s
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.clone()))
            .collect(),
    }
}

async fn truth(direct: &ClusterConfig) -> Picture {
    let client = opsdeck::sources::kube::client_for(direct)
        .await
        .expect("direct client");
    let lp = kube::api::ListParams::default();
    let pods = kube::Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .expect("pods");
    let deps = kube::Api::<Deployment>::all(client.clone())
        .list(&lp)
        .await
        .expect("deployments");
    let sts = kube::Api::<StatefulSet>::all(client.clone())
        .list(&lp)
        .await
        .expect("statefulsets");
    let ds = kube::Api::<DaemonSet>::all(client.clone())
        .list(&lp)
        .await
        .expect("daemonsets");
    let nodes = kube::Api::<Node>::all(client)
        .list(&lp)
        .await
        .expect("nodes");
    let mut workloads: Vec<WorkloadSummary> = deps
        .items
        .iter()
        .map(WorkloadSummary::from_deployment)
        .collect();
    workloads.extend(sts.items.iter().map(WorkloadSummary::from_statefulset));
    workloads.extend(ds.items.iter().map(WorkloadSummary::from_daemonset));
    picture_of(&KubeSnapshot::new(
        pods.items
            .iter()
            .map(|p| Arc::new(PodSummary::from_pod(p)))
            .collect(),
        workloads,
        nodes.items.iter().map(NodeSummary::from_node).collect(),
    ))
}

/// Waits until the source publishes a snapshot equal to a fresh list of every kind.
async fn converges_to_truth(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    direct: &ClusterConfig,
    within: Duration,
    what: &str,
) -> Arc<KubeSnapshot> {
    let want = truth(direct).await;
    let deadline = tokio::time::Instant::now() + within;
    let mut last: Option<Arc<KubeSnapshot>> = None;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(SourceEvent {
                update: SourceUpdate::Kube(s),
                ..
            })) => {
                if picture_of(&s) == want {
                    return s;
                }
                last = Some(s);
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("source ended"),
            Err(_) => {
                let got = last.as_ref().map(|s| picture_of(s));
                let diff = |a: &Picture, b: &Picture| {
                    let mut d = Vec::new();
                    for (k, v) in &a.pods {
                        if b.pods.get(k) != Some(v) {
                            d.push(format!("pod {k}"));
                        }
                    }
                    for k in b.pods.keys() {
                        if !a.pods.contains_key(k) {
                            d.push(format!("extra pod {k}"));
                        }
                    }
                    for (k, v) in &a.workloads {
                        if b.workloads.get(k) != Some(v) {
                            d.push(format!(
                                "workload {k}: want {v:?} got {:?}",
                                b.workloads.get(k)
                            ));
                        }
                    }
                    for k in b.workloads.keys() {
                        if !a.workloads.contains_key(k) {
                            d.push(format!("extra workload {k}"));
                        }
                    }
                    for (k, v) in &a.nodes {
                        if b.nodes.get(k) != Some(v) {
                            d.push(format!("node {k}"));
                        }
                    }
                    d
                };
                panic!(
                    "{what}: the source never showed what a fresh list shows within {within:?}; differences in the last snapshot: {:?}",
                    got.map(|g| diff(&want, &g))
                );
            }
        }
    }
}

/// Changes something of every kind on the server (each a visible change in its summary).
fn change_every_kind(fleet: &Fleet, round: u64) {
    use opsdeck::sim::store;
    let sim = fleet.cluster("staging").unwrap();
    let s = &sim.shared().store;
    let bump = |kind: &'static store::ResourceKind,
                ns: &str,
                name: &str,
                f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = (*s
            .get(kind, ns, name)
            .unwrap_or_else(|| panic!("{} {ns}/{name}", kind.kind)))
        .clone();
        f(&mut v);
        s.put(kind, v);
    };
    // A pod restarts more; one pod goes, one comes.
    let pods = sim.pods();
    let pod = pods
        .iter()
        .find(|p| p.metadata.namespace.as_deref() == Some("goapps-staging"))
        .unwrap();
    let (ns, name) = (
        pod.metadata.namespace.clone().unwrap(),
        pod.metadata.name.clone().unwrap(),
    );
    sim.modify_pod(&ns, &name, |p| {
        if let Some(cs) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            cs[0].restart_count += 1;
        }
    });
    let mut new = pod.clone();
    new.metadata.name = Some(format!("fault-round-{round}"));
    new.metadata.uid = None;
    new.metadata.resource_version = None;
    sim.upsert_pod(new);
    if round > 0 {
        sim.delete_pod(&ns, &format!("fault-round-{}", round - 1));
    }
    let available = (round % 2) as i64;
    bump(&store::DEPLOYMENTS, "goapps-staging", "frontend", &|v| {
        v["status"]["availableReplicas"] = available.into()
    });
    let sts = s.list(&store::STATEFULSETS, None).1;
    let first = &sts[0];
    let (sns, sname) = (
        first["metadata"]["namespace"].as_str().unwrap().to_string(),
        first["metadata"]["name"].as_str().unwrap().to_string(),
    );
    bump(&store::STATEFULSETS, &sns, &sname, &|v| {
        v["status"]["availableReplicas"] = available.into()
    });
    let ds = s.list(&store::DAEMONSETS, None).1;
    let first = &ds[0];
    let (dns, dname) = (
        first["metadata"]["namespace"].as_str().unwrap().to_string(),
        first["metadata"]["name"].as_str().unwrap().to_string(),
    );
    bump(&store::DAEMONSETS, &dns, &dname, &|v| {
        v["status"]["numberAvailable"] = available.into()
    });
    let nodes = s.list(&store::NODES, None).1;
    let node = nodes[0]["metadata"]["name"].as_str().unwrap().to_string();
    bump(&store::NODES, "", &node, &|v| {
        v["metadata"]["labels"]["fault-round"] = round.to_string().into();
        if let Some(conds) = v["status"]["conditions"].as_array_mut() {
            for c in conds {
                if c["type"] == "DiskPressure" {
                    c["status"] = if round % 2 == 1 { "True" } else { "False" }.into();
                }
            }
        }
    });
}

fn first_snapshot_done(u: &SourceUpdate) -> bool {
    matches!(u, SourceUpdate::Kube(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_watch_is_marked_stale_within_20s_and_cleared_within_10s() {
    let (fleet, proxy, via, direct) = staging_behind_proxy().await;
    let (mut rx, cancel) = spawn_source(&via);
    wait_for(
        &mut rx,
        Duration::from_secs(20),
        "first snapshot",
        first_snapshot_done,
    )
    .await;
    let stalled_at = Instant::now();
    proxy.set(Fault::Stall);
    change_every_kind(&fleet, 1);
    let u = wait_for(&mut rx, Duration::from_secs(20), "a stale mark", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    let SourceUpdate::KubeFailing { reason } = u else {
        unreachable!()
    };
    assert_eq!(reason, "no answer from the API for 15s");
    let took = stalled_at.elapsed();
    assert!(took <= Duration::from_secs(20), "stale after {took:?}");
    // Nothing claims to be current while stalled.
    let quiet = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(SourceEvent {
                update: SourceUpdate::Kube(_),
                ..
            }) = rx.recv().await
            {
                return;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a snapshot was published during the stall");
    let recovered_at = Instant::now();
    proxy.set(Fault::None);
    converges_to_truth(&mut rx, &direct, Duration::from_secs(10), "after the stall").await;
    eprintln!(
        "stale after {took:?}, recovered after {:?}",
        recovered_at.elapsed()
    );
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_before_the_first_list_is_marked_and_recovers() {
    let (fleet, proxy, via, direct) = staging_behind_proxy().await;
    proxy.set(Fault::Stall);
    let (mut rx, cancel) = spawn_source(&via);
    wait_for(&mut rx, Duration::from_secs(20), "a failure mark", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    proxy.set(Fault::None);
    converges_to_truth(
        &mut rx,
        &direct,
        Duration::from_secs(10),
        "after a stall at start",
    )
    .await;
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_on_every_watch_for_12s_keeps_every_kind() {
    let (fleet, proxy, via, direct) = staging_behind_proxy().await;
    let (mut rx, cancel) = spawn_source(&via);
    let first = wait_for(
        &mut rx,
        Duration::from_secs(20),
        "first snapshot",
        first_snapshot_done,
    )
    .await;
    let SourceUpdate::Kube(first) = first else {
        unreachable!()
    };
    let kinds = |s: &KubeSnapshot| {
        let mut k: Vec<&str> = s.workloads.iter().map(|w| w.kind).collect();
        k.sort();
        k.dedup();
        k.join(",")
    };
    assert_eq!(kinds(&first), "DaemonSet,Deployment,StatefulSet");
    // 410 both ways a server says it: as the answer to the watch request, and as an ERROR
    // event on a watch that started (the one that makes a watcher relist), 12 s in all.
    proxy.set(Fault::GoneOnWatch);
    proxy.cut();
    for round in 1..=4 {
        if round == 3 {
            proxy.set(Fault::ExpiredOnWatch);
            proxy.cut();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        change_every_kind(&fleet, round);
    }
    proxy.set(Fault::None);
    let s = converges_to_truth(&mut rx, &direct, Duration::from_secs(10), "after 410s").await;
    assert_eq!(s.workloads.len(), first.workloads.len());
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_at_start_then_every_kind_equals_a_fresh_list() {
    let (fleet, proxy, via, direct) = staging_behind_proxy().await;
    proxy.set(Fault::Refuse);
    let (mut rx, cancel) = spawn_source(&via);
    let u = wait_for(&mut rx, Duration::from_secs(10), "a failure", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    assert!(
        brief(&u).contains("unreachable: connection refused"),
        "{}",
        brief(&u)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Fault::None);
    let s = converges_to_truth(&mut rx, &direct, Duration::from_secs(10), "after refusals").await;
    assert!(
        s.degraded_workloads()
            .any(|w| w.kind == "Deployment" && w.name == "frontend"),
        "the degraded frontend is shown"
    );
    cancel.cancel();
    fleet.shutdown().await;
}

/// Each fault at each phase: during the initial list, mid-watch, and during the relist that
/// follows a 410; every kind changes meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_equals_a_fresh_list_after_faults_at_every_phase() {
    let (fleet, proxy, via, direct) = staging_behind_proxy().await;
    // Initial list: error answers, then a cut while listing resumes.
    proxy.set(Fault::Answer500);
    let (mut rx, cancel) = spawn_source(&via);
    wait_for(&mut rx, Duration::from_secs(10), "a failure", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    change_every_kind(&fleet, 1);
    proxy.set(Fault::None);
    converges_to_truth(
        &mut rx,
        &direct,
        Duration::from_secs(10),
        "fault during the initial list",
    )
    .await;
    // Mid-watch: connections reset while things change.
    change_every_kind(&fleet, 2);
    proxy.cut();
    change_every_kind(&fleet, 3);
    converges_to_truth(&mut rx, &direct, Duration::from_secs(10), "cut mid-watch").await;
    // During the relist: 410 on the watch makes every kind relist; the relists fail (500,
    // then refused) while things change.
    proxy.set(Fault::ExpiredOnWatch);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(Fault::Answer500);
    change_every_kind(&fleet, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set(Fault::Refuse);
    change_every_kind(&fleet, 5);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set(Fault::None);
    converges_to_truth(
        &mut rx,
        &direct,
        Duration::from_secs(10),
        "fault during the relist",
    )
    .await;
    cancel.cancel();
    fleet.shutdown().await;
}

fn far_future_pod(fleet: &Fleet, name: &str) -> (String, String) {
    let sim = fleet.cluster("staging").unwrap();
    let mut pod = sim
        .pods()
        .into_iter()
        .find(|p| p.metadata.namespace.as_deref() == Some("goapps-staging"))
        .unwrap();
    pod.metadata.name = Some(name.to_string());
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    sim.upsert_pod(pod);
    // k8s-openapi cannot write a time jiff cannot hold: edit the stored JSON.
    let s = &sim.shared().store;
    let mut v = (*s
        .get(&opsdeck::sim::store::PODS, "goapps-staging", name)
        .unwrap())
    .clone();
    v["status"]["containerStatuses"][0]["state"] = serde_json::json!({"terminated": {
        "exitCode": 0, "reason": "Completed",
        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "9999-12-31T23:59:59Z"}});
    s.put(&opsdeck::sim::store::PODS, v);
    ("goapps-staging".into(), name.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_that_does_not_decode_is_one_warning_not_a_blank_cluster() {
    let (fleet, _proxy, via, _direct) = staging_behind_proxy().await;
    far_future_pod(&fleet, "far-future-1");
    let (mut rx, cancel) = spawn_source(&via);
    let u = wait_for(
        &mut rx,
        Duration::from_secs(20),
        "first snapshot",
        |u| !matches!(u, SourceUpdate::KubeFailing { reason } if reason.starts_with("no complete")),
    )
    .await;
    let SourceUpdate::Kube(s) = u else {
        panic!("the cluster failed: {}", brief(&u))
    };
    assert!(s.pods.len() > 5);
    assert_eq!(s.undecodable.len(), 1, "{:?}", s.undecodable);
    let b = &s.undecodable[0];
    assert_eq!(
        (b.kind.as_str(), b.namespace.as_str(), b.name.as_str()),
        ("Pod", "goapps-staging", "far-future-1")
    );
    let f = opsdeck::model::kube::kube_findings(&s, jiff::Timestamp::now());
    let finding = f
        .iter()
        .find(|f| f.message.contains("far-future-1"))
        .expect("a finding names the pod");
    assert_eq!(finding.severity, opsdeck::model::Severity::Warn);
    assert!(
        finding
            .message
            .contains("Pod goapps-staging/far-future-1 could not be read"),
        "{}",
        finding.message
    );
    // In a running console, one that turns bad is a bad row too, not silently dropped.
    far_future_pod(&fleet, "far-future-2");
    wait_for(&mut rx, Duration::from_secs(10), "the second bad pod", |u| {
        matches!(u, SourceUpdate::Kube(s) if s.undecodable.iter().any(|b| b.name == "far-future-2"))
    })
    .await;
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_say_what_the_server_answered() {
    let (fleet, proxy, via, _direct) = staging_behind_proxy().await;
    proxy.set(Fault::Answer500);
    let (mut rx, cancel) = spawn_source(&via);
    let u = wait_for(&mut rx, Duration::from_secs(10), "a failure", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    assert_eq!(
        brief(&u),
        "failing: API server answered 500 InternalError: etcdserver: request timed out"
    );
    proxy.set(Fault::Answer401);
    let u = wait_for(
        &mut rx,
        Duration::from_secs(10),
        "a 401",
        |u| matches!(u, SourceUpdate::KubeFailing { reason } if reason.contains("401")),
    )
    .await;
    assert!(
        brief(&u).contains("answered 401 Unauthorized"),
        "{}",
        brief(&u)
    );
    assert!(brief(&u).contains("credentials"), "{}", brief(&u));
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cluster_costs_next_to_no_requests() {
    let (fleet, proxy, via, _direct) = staging_behind_proxy().await;
    let (mut rx, cancel) = spawn_source(&via);
    wait_for(
        &mut rx,
        Duration::from_secs(20),
        "first snapshot",
        first_snapshot_done,
    )
    .await;
    let start = Instant::now();
    let before = proxy.requests().len();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during: Vec<String> = proxy.requests()[before..]
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    eprintln!("idle requests in {:?}: {during:?}", start.elapsed());
    assert!(during.len() <= 3, "{during:?}");
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_gives_a_stalled_cluster_stale_within_its_timeout() {
    let (fleet, proxy, via, _direct) = staging_behind_proxy().await;
    proxy.set(Fault::Stall);
    let loaded = Config::load(fleet.config_path())
        .map_err(|e| format!("{}", e[0]))
        .unwrap();
    let mut config = loaded.config;
    config.clusters.retain(|c| c.name == "staging");
    let mut c = via.clone();
    // Only the Kubernetes source: the others are not behind the proxy.
    c.pgbouncer = None;
    c.redis = None;
    c.argocd = None;
    c.backups = None;
    config.clusters[0] = c;
    let started = Instant::now();
    let state = opsdeck::status::collect(&config, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let j = opsdeck::status::to_json(&state);
    let cl = &j["clusters"][0];
    assert_eq!(cl["reachable"], false, "{cl}");
    assert!(
        cl["stale"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no answer")),
        "{cl}"
    );
    assert!(cl["stale"]["since"].is_string(), "{cl}");
    fleet.shutdown().await;
}

// ---- ArgoCD stream, polled panels, labels, scale sanity, SIGSTOP (issue 21, part 2) ----

use opsdeck::sources::{Feature, FeatureData};

/// The staging cluster with its ArgoCD (plain HTTP in the simulator) behind a proxy.
async fn argocd_behind_proxy() -> (Fleet, FaultProxy, ClusterConfig) {
    install_crypto();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("simulated fleet starts");
    let config: Config = Config::load(fleet.config_path())
        .map_err(|e| format!("{}", e[0]))
        .expect("fleet config loads")
        .config;
    let mut c = config.cluster("staging").expect("staging").clone();
    let url = fleet.argocd("staging").expect("argocd sim").url();
    assert!(url.starts_with("http://"), "{url}");
    let proxy = FaultProxy::for_url(&url).await;
    let table = c.argocd.as_mut().expect("argocd table");
    table.insert("url".into(), toml::Value::String(proxy.url()));
    (fleet, proxy, c)
}

fn argocd_snapshot(u: &SourceUpdate) -> bool {
    matches!(u, SourceUpdate::Feature(FeatureData::Argocd(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argocd_stall_is_marked_stale_within_20s_and_cleared_within_10s_with_few_probes() {
    let (fleet, proxy, cluster) = argocd_behind_proxy().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    tokio::spawn(opsdeck::sources::argocd::run(
        0,
        cluster,
        tx,
        cancel.clone(),
    ));
    wait_for(
        &mut rx,
        Duration::from_secs(20),
        "first ArgoCD snapshot",
        argocd_snapshot,
    )
    .await;
    // Idle: the stream says nothing; one probe per ~12-15 s of silence, no more.
    let idle_from = Instant::now();
    let before = proxy.requests().len();
    tokio::time::sleep(Duration::from_secs(27)).await;
    let idle: Vec<String> = proxy.requests()[before..]
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    eprintln!("idle requests in {:?}: {idle:?}", idle_from.elapsed());
    assert!(idle.len() <= 3, "{idle:?}");
    // Stall: connections open, no bytes.
    let stalled_at = Instant::now();
    proxy.set(Fault::Stall);
    let u = wait_for(
        &mut rx,
        Duration::from_secs(20),
        "an ArgoCD stale mark",
        |u| {
            matches!(
                u,
                SourceUpdate::FeatureFailing {
                    feature: Feature::Argocd,
                    ..
                }
            )
        },
    )
    .await;
    let SourceUpdate::FeatureFailing { reason, .. } = u else {
        unreachable!()
    };
    assert_eq!(reason, "no answer from ArgoCD for 15s");
    assert!(stalled_at.elapsed() <= Duration::from_secs(20));
    let recovered_at = Instant::now();
    proxy.set(Fault::None);
    wait_for(
        &mut rx,
        Duration::from_secs(10),
        "an ArgoCD snapshot after the stall",
        argocd_snapshot,
    )
    .await;
    eprintln!(
        "argocd stale after {:?}, recovered after {:?}",
        recovered_at.duration_since(stalled_at),
        recovered_at.elapsed()
    );
    cancel.cancel();
    fleet.shutdown().await;
}

/// A plain TCP proxy (PgBouncer, Redis) that can stall: connections stay open, nothing flows.
struct TcpStall {
    addr: std::net::SocketAddr,
    stalled: tokio::sync::watch::Sender<bool>,
}

impl TcpStall {
    async fn start(upstream: std::net::SocketAddr) -> TcpStall {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = tokio::sync::watch::Sender::new(false);
        let s = stalled.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let rx = s.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, rx.clone()), pump(sr, cw, rx));
                });
            }
        });
        TcpStall { addr, stalled }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_poll_is_marked_stale_and_recovers() {
    install_crypto();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    let config: Config = Config::load(fleet.config_path())
        .map_err(|e| format!("{}", e[0]))
        .unwrap()
        .config;
    let mut c = config.cluster("staging").unwrap().clone();
    let redis = fleet.data_servers("staging").unwrap().1.addr();
    let proxy = TcpStall::start(redis).await;
    c.redis.as_mut().unwrap().insert(
        "address".into(),
        toml::Value::String(proxy.addr.to_string()),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    tokio::spawn(opsdeck::sources::redis::run(0, c, tx, cancel.clone()));
    let redis_data = |u: &SourceUpdate| matches!(u, SourceUpdate::Feature(FeatureData::Redis(_)));
    wait_for(&mut rx, Duration::from_secs(20), "Redis data", redis_data).await;
    let stalled_at = Instant::now();
    proxy.stalled.send_replace(true);
    let u = wait_for(
        &mut rx,
        Duration::from_secs(20),
        "a Redis stale mark",
        |u| {
            matches!(
                u,
                SourceUpdate::FeatureFailing {
                    feature: Feature::Redis,
                    ..
                }
            )
        },
    )
    .await;
    let SourceUpdate::FeatureFailing { reason, .. } = u else {
        unreachable!()
    };
    assert!(reason.contains("no answer within"), "{reason}");
    assert!(stalled_at.elapsed() <= Duration::from_secs(20));
    proxy.stalled.send_replace(false);
    wait_for(
        &mut rx,
        Duration::from_secs(10),
        "Redis data after the stall",
        redis_data,
    )
    .await;
    cancel.cancel();
    fleet.shutdown().await;
}

#[test]
fn the_header_says_failing_unreachable_or_not_answering_from_the_reason() {
    use opsdeck::ui::api_failing_label;
    assert_eq!(
        api_failing_label(Some(
            "API server answered 500 InternalError: etcdserver: request timed out"
        )),
        "API failing"
    );
    assert_eq!(
        api_failing_label(Some("unreachable: connection refused")),
        "API unreachable"
    );
    assert_eq!(
        api_failing_label(Some("no answer from the API for 15s")),
        "API not answering"
    );
}

/// A 500 from the API server is shown as the server failing, not as unreachable.
#[test]
fn a_500_is_shown_as_api_failing_with_what_the_server_answered() {
    use opsdeck::app::{AppState, Event, update};
    use opsdeck::keymap::{EMBEDDED, Keymap};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    let config = Config {
        clusters: vec![ClusterConfig {
            name: "staging".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let now: jiff::Timestamp = "2026-11-25T03:00:00Z".parse().unwrap();
    let mut s = AppState::new(&config, Keymap::parse(EMBEDDED[0].1).unwrap(), now);
    update(
        &mut s,
        Event::Source(SourceEvent {
            cluster: 0,
            update: SourceUpdate::KubeFailing {
                reason: "API server answered 500 InternalError: etcdserver: request timed out"
                    .into(),
            },
        }),
    );
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    t.draw(|f| opsdeck::ui::render(f, &s, opsdeck::ui::Theme { color: false }))
        .unwrap();
    let screen: String = t
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("API failing"), "{screen}");
    assert!(!screen.contains("API unreachable"), "{screen}");
    assert!(screen.contains("answered 500 InternalError"), "{screen}");
}

mod scale {
    use opsdeck::app::{AppState, Effect, Event, update};
    use opsdeck::config::{ClusterConfig, Config};
    use opsdeck::drill::actions::QuickActionKind;
    use opsdeck::drill::workloads::WorkloadRow;
    use opsdeck::keymap::{EMBEDDED, Keymap};

    fn workloads(replicas: i32, ceiling: Option<u32>) -> AppState {
        let config = Config {
            clusters: vec![ClusterConfig {
                name: "staging".into(),
                ..Default::default()
            }],
            scale_ceiling: ceiling,
            ..Default::default()
        };
        let now: jiff::Timestamp = "2026-11-25T03:00:00Z".parse().unwrap();
        let mut s = AppState::new(&config, Keymap::parse(EMBEDDED[0].1).unwrap(), now);
        press(&mut s, &["W"]);
        update(
            &mut s,
            Event::WorkloadsLoaded {
                cluster: 0,
                result: Ok(vec![WorkloadRow {
                    kind: "Deployment",
                    namespace: "goapps-staging".into(),
                    name: "x".into(),
                    desired: replicas,
                    available: replicas,
                    last_rollout: None,
                    images: vec![],
                    schedule: String::new(),
                }]),
            },
        );
        s
    }

    fn press(s: &mut AppState, seq: &[&str]) -> Vec<Effect> {
        let mut out = Vec::new();
        for k in seq {
            out.extend(update(s, Event::Key(k.parse().unwrap())));
            update(s, Event::Drawn);
        }
        out
    }

    fn digits(s: &mut AppState, n: &str) {
        let keys: Vec<String> = n.chars().map(|c| c.to_string()).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        press(s, &keys);
    }

    fn confirmed_to(s: &AppState) -> Option<i32> {
        let c = s.confirm.as_ref()?;
        match &c.effect {
            Effect::Quick { action, .. } => match action.kind {
                QuickActionKind::Scale { to, .. } => Some(to),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn more_than_10x_asks_again_saying_so() {
        let mut s = workloads(2, None);
        press(&mut s, &["+"]);
        digits(&mut s, "9999");
        press(&mut s, &["enter"]);
        assert!(s.confirm.is_none(), "no confirmation yet");
        let p = s.drill.count.as_ref().expect("the prompt asks again");
        let e = p.error.as_deref().unwrap();
        assert!(
            e.contains("scale deployment/x from 2 to 9999?")
                && e.contains("more than 10x")
                && e.contains("above scale_ceiling 20")
                && e.contains("type the count again to confirm"),
            "{e}"
        );
        // A different count is asked about afresh.
        digits(&mut s, "999");
        press(&mut s, &["enter"]);
        assert!(s.confirm.is_none());
        digits(&mut s, "999");
        press(&mut s, &["enter"]);
        assert_eq!(confirmed_to(&s), Some(999));
    }

    #[test]
    fn above_the_ceiling_asks_again_and_an_ordinary_count_does_not() {
        let mut s = workloads(10, Some(12));
        press(&mut s, &["+"]);
        digits(&mut s, "13");
        press(&mut s, &["enter"]);
        let e = s.drill.count.as_ref().unwrap().error.clone().unwrap();
        assert!(e.contains("above scale_ceiling 12"), "{e}");
        assert!(!e.contains("10x"), "{e}");
        digits(&mut s, "13");
        press(&mut s, &["enter"]);
        assert_eq!(confirmed_to(&s), Some(13));

        let mut s = workloads(2, None);
        press(&mut s, &["+"]);
        digits(&mut s, "5");
        press(&mut s, &["enter"]);
        assert_eq!(confirmed_to(&s), Some(5));
    }

    #[test]
    fn twenty_three_nines_is_an_error_not_a_count() {
        let mut s = workloads(2, None);
        press(&mut s, &["+"]);
        digits(&mut s, &"9".repeat(23));
        press(&mut s, &["enter"]);
        assert!(s.confirm.is_none());
        let e = s.drill.count.as_ref().unwrap().error.clone().unwrap();
        assert!(e.contains("is not a replica count"), "{e}");
        // Typing it again does not make it a count either.
        digits(&mut s, &"9".repeat(23));
        press(&mut s, &["enter"]);
        assert!(s.confirm.is_none());
    }

    #[test]
    fn scale_ceiling_is_a_config_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "scale_ceiling = 7\n[[cluster]]\nname = \"a\"\n").unwrap();
        let c = Config::load(&p)
            .map_err(|e| format!("{}", e[0]))
            .unwrap()
            .config;
        assert_eq!(c.scale_ceiling(), 7);
        std::fs::write(&p, "[[cluster]]\nname = \"a\"\n").unwrap();
        let c = Config::load(&p)
            .map_err(|e| format!("{}", e[0]))
            .unwrap()
            .config;
        assert_eq!(c.scale_ceiling(), 20);
    }
}

/// A real `opsdeck sim` stopped with SIGSTOP for 20 s while the source watches: the cluster is
/// marked stale with the reason; SIGCONT recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_simulator_is_marked_stale_and_recovers_on_sigcont() {
    use std::io::BufRead;
    install_crypto();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["sim", "--pods", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("opsdeck sim starts");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut config_path = None;
    for line in out.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("config: ") {
            config_path = Some(p.to_string());
            break;
        }
    }
    // Keep reading: the simulator goes on printing its endpoints, and a closed pipe would end it.
    std::thread::spawn(move || out.for_each(drop));
    let config: Config = Config::load(std::path::Path::new(&config_path.expect("config line")))
        .map_err(|e| format!("{}", e[0]))
        .unwrap()
        .config;
    let (mut rx, cancel) = spawn_source(config.cluster("staging").unwrap());
    wait_for(
        &mut rx,
        Duration::from_secs(20),
        "first snapshot",
        first_snapshot_done,
    )
    .await;
    let pid = child.id() as i32;
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped_at = Instant::now();
    let u = wait_for(&mut rx, Duration::from_secs(20), "a stale mark", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    assert!(
        matches!(&u, SourceUpdate::KubeFailing { reason } if reason.contains("no answer")),
        "{}",
        brief(&u)
    );
    let left = Duration::from_secs(20).saturating_sub(stopped_at.elapsed());
    tokio::time::sleep(left).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    wait_for(
        &mut rx,
        Duration::from_secs(10),
        "a snapshot after SIGCONT",
        first_snapshot_done,
    )
    .await;
    cancel.cancel();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = child.wait();
}
