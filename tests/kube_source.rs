//! The Kubernetes source against the simulated fleet, over loopback HTTP: watches (not polls)
//! carry changes, a dead API server marks only its own cluster stale, and `status` returns
//! within its timeout with a dead cluster beside a live one.

use std::time::Duration;

use opsdeck::config::Config;
use opsdeck::sim::{Fault, Fleet, SimOptions};
use opsdeck::sources::{SourceEvent, SourceUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn fleet() -> (Fleet, Config) {
    install_crypto();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("simulated fleet starts");
    let config = Config::load(fleet.config_path())
        .map_err(|e| format!("{}", e[0]))
        .expect("fleet config loads")
        .config;
    (fleet, config)
}

/// Waits for the first event of `cluster` that satisfies `pred`.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    cluster: usize,
    what: &str,
    pred: impl Fn(&SourceUpdate) -> bool,
) -> SourceUpdate {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("source channel open");
        if ev.cluster == cluster && pred(&ev.update) {
            return ev.update;
        }
    }
}

fn spawn_sources(config: &Config) -> (mpsc::UnboundedReceiver<SourceEvent>, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    for (i, c) in config.clusters.iter().enumerate() {
        tokio::spawn(opsdeck::sources::kube::run(
            i,
            c.clone(),
            tx.clone(),
            cancel.clone(),
        ));
    }
    (rx, cancel)
}

fn index(config: &Config, name: &str) -> usize {
    config.clusters.iter().position(|c| c.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_snapshot_through_the_watch() {
    let (fleet, config) = fleet().await;
    let prod = index(&config, "production");
    let (mut rx, cancel) = spawn_sources(&config);
    let first = wait_for(&mut rx, prod, "first snapshot", |u| {
        matches!(u, SourceUpdate::Kube(_))
    })
    .await;
    let SourceUpdate::Kube(snap) = first else {
        unreachable!()
    };
    let crash = snap
        .unhealthy_pods()
        .find(|p| p.name.starts_with("iam-service-"))
        .expect("the crash-looping pod is listed");
    assert_eq!(crash.reason.map(|r| r.as_str()), Some("CrashLoopBackOff"));
    let before = crash.restarts;
    let (ns, name) = (crash.namespace.clone(), crash.name.clone());

    let sim = fleet.cluster("production").unwrap();
    assert!(sim.modify_pod(&ns, &name, |p| {
        let cs = p
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap();
        cs[0].restart_count += 5;
    }));
    let update = wait_for(&mut rx, prod, "the restart count to rise", |u| match u {
        SourceUpdate::Kube(s) => s
            .pods
            .iter()
            .any(|p| p.name == name && p.restarts >= before + 5),
        _ => false,
    })
    .await;
    let SourceUpdate::Kube(s) = update else {
        unreachable!()
    };
    assert_eq!(
        s.counts.total, snap.counts.total,
        "a modification is not a new pod"
    );

    assert!(sim.delete_pod(&ns, &name));
    wait_for(&mut rx, prod, "the deleted pod to go", |u| match u {
        SourceUpdate::Kube(s) => !s.pods.iter().any(|p| p.name == name),
        _ => false,
    })
    .await;
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_api_server_marks_only_its_cluster_stale_then_recovers() {
    let (fleet, config) = fleet().await;
    let (staging, prod) = (index(&config, "staging"), index(&config, "production"));
    let (mut rx, cancel) = spawn_sources(&config);
    // Both first snapshots, in whichever order they come.
    let mut seen = [false, false];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(seen[staging] && seen[prod]) {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("both clusters answer")
            .unwrap();
        if matches!(ev.update, SourceUpdate::Kube(_)) {
            seen[ev.cluster] = true;
        }
    }

    fleet.cluster("staging").unwrap().kill().await;
    let failing = wait_for(&mut rx, staging, "staging to fail", |u| {
        matches!(u, SourceUpdate::KubeFailing { .. })
    })
    .await;
    let SourceUpdate::KubeFailing { reason } = failing else {
        unreachable!()
    };
    assert!(!reason.is_empty());

    // Production keeps flowing at full speed while staging is down.
    let psim = fleet.cluster("production").unwrap();
    let victim = psim
        .pods()
        .into_iter()
        .find(|p| p.metadata.namespace.as_deref() == Some("database"))
        .unwrap();
    let vname = victim.metadata.name.clone().unwrap();
    assert!(psim.delete_pod("database", &vname));
    let mut saw_prod_failure = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("production change arrives")
            .unwrap();
        if ev.cluster == prod {
            match &ev.update {
                SourceUpdate::KubeFailing { .. } => saw_prod_failure = true,
                SourceUpdate::Kube(s) if !s.pods.iter().any(|p| p.name == vname) => break,
                SourceUpdate::Kube(_) => {}
                SourceUpdate::Feature(_) | SourceUpdate::FeatureFailing { .. } => {}
            }
        }
    }
    assert!(
        !saw_prod_failure,
        "a dead staging API must not mark production failing"
    );

    fleet
        .cluster("staging")
        .unwrap()
        .restart()
        .await
        .expect("staging comes back");
    wait_for(&mut rx, staging, "staging to recover", |u| {
        matches!(u, SourceUpdate::Kube(_))
    })
    .await;
    cancel.cancel();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_a_dead_cluster_beside_a_live_one_within_its_timeout() {
    let (fleet, config) = fleet().await;
    fleet.cluster("staging").unwrap().set_fault(Fault::Stall);
    // The outer timeout only turns a hang into a failure; it is no speed budget.
    let state = tokio::time::timeout(
        Duration::from_secs(60),
        opsdeck::status::collect(&config, Duration::from_secs(3)),
    )
    .await
    .expect("status gives up on a stalled cluster instead of hanging");
    let json = opsdeck::status::to_json(&state);
    let clusters = json["clusters"].as_array().unwrap();
    let staging = clusters.iter().find(|c| c["name"] == "staging").unwrap();
    let prod = clusters.iter().find(|c| c["name"] == "production").unwrap();
    assert_eq!(staging["reachable"], false);
    assert!(
        staging.get("pods").is_none(),
        "an unreachable cluster has no pods key"
    );
    assert!(staging["findings"].as_array().unwrap().iter().any(|f| {
        f["severity"] == "crit"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("no answer within 3s")
    }));
    assert_eq!(prod["reachable"], true);
    assert!(prod["pods"]["total"].as_u64().unwrap() > 20);
    assert!(
        prod["pods"]["unhealthy"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["reason"] == "CrashLoopBackOff")
    );
    assert_eq!(opsdeck::status::exit_code(&state), 2);
    fleet.cluster("staging").unwrap().set_fault(Fault::None);
    fleet.shutdown().await;
}
