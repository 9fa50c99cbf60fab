//! The drill-down's read side against the simulator: a log line arrives in a followed tail,
//! pod detail and events of the crash-looping pod, Warning events, and workloads.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, Config};
use opsdeck::drill::logs::{self, LogBuffer, LogEvent, LogRequest};
use opsdeck::drill::{events, pod, workloads};
use opsdeck::sim::{Fleet, SimOptions};

const WAIT: Duration = Duration::from_secs(30);

async fn setup() -> (Fleet, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet starts");
    let cfg = Config::new(
        fleet
            .cluster("production")
            .expect("production")
            .url()
            .parse()
            .expect("url"),
    );
    (fleet, Client::try_from(cfg).expect("client"))
}

async fn crashlooping(client: &Client) -> Pod {
    Api::<Pod>::namespaced(client.clone(), "goapps-production")
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .find(|p| {
            opsdeck::model::PodSummary::from_pod(p).reason
                == Some(opsdeck::model::PodReason::CrashLoopBackOff)
        })
        .expect("a crash-looping pod in production")
}

#[tokio::test]
async fn a_followed_tail_receives_a_new_line() {
    let (_fleet, client) = setup().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let req = LogRequest {
        tail_lines: Some(3),
        ..LogRequest::follow("database", "postgres-0", Some("postgres"))
    };
    let (cancel, task) = logs::spawn_tail(client.clone(), req, tx);
    let mut buf = LogBuffer::new(5);
    // The three tail lines, then at least one line written while following.
    tokio::time::timeout(WAIT, async {
        while buf.len() < 4 {
            match rx.recv().await.expect("tail still running") {
                LogEvent::Line(l) => buf.push(l),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("a followed line arrived");
    assert!(
        buf.iter().all(|l| l.contains("checkpoint")),
        "{:?}",
        buf.iter().collect::<Vec<_>>()
    );
    assert_eq!(buf.search("checkpoint").len(), 4);
    cancel.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("tail stops on cancel")
        .expect("no panic");
}

#[tokio::test]
async fn previous_log_of_the_crashing_pod_ends() {
    let (_fleet, client) = setup().await;
    let p = crashlooping(&client).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let req = LogRequest {
        previous: true,
        ..LogRequest::follow(
            "goapps-production",
            p.metadata.name.as_deref().unwrap_or(""),
            None,
        )
    };
    let (_cancel, _task) = logs::spawn_tail(client.clone(), req, tx);
    let mut lines = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(LogEvent::Line(l)) => lines.push(l),
                Some(LogEvent::Ended) | None => break,
                Some(LogEvent::Error(e)) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("previous log ends");
    assert!(!lines.is_empty());
}

#[tokio::test]
async fn detail_and_events_of_the_crashing_pod() {
    let (_fleet, client) = setup().await;
    let p = crashlooping(&client).await;
    let name = p.metadata.name.clone().expect("name");
    let d = pod::get(client.clone(), "goapps-production", &name)
        .await
        .expect("detail");
    assert_eq!(
        pod::workload_of(client.clone(), &d).await,
        Some((
            opsdeck::drill::WorkloadKind::Deployment,
            "iam-service".to_string()
        ))
    );
    let c = &d.containers[0];
    assert_eq!(c.state, "Waiting: CrashLoopBackOff");
    assert_eq!(c.last_termination, Some(("Error".to_string(), 1)));
    assert!(c.probes.contains("liveness tcp:"), "{}", c.probes);
    let evs = events::for_pod(client.clone(), "goapps-production", &name)
        .await
        .expect("events");
    assert!(evs.iter().any(|e| e.reason == "BackOff"), "{evs:?}");
    assert!(evs.iter().all(|e| e.object == format!("Pod/{name}")));
    let warns = events::warnings(client.clone()).await.expect("warnings");
    assert!(warns.iter().all(|w| w.is_warning()));
    assert!(
        warns
            .iter()
            .any(|w| w.reason == "BackOff" && w.object == format!("Pod/{name}"))
    );
    assert!(warns.windows(2).all(|w| w[0].last_seen >= w[1].last_seen));
}

#[tokio::test]
async fn workloads_list_every_kind_degraded_first() {
    let (_fleet, client) = setup().await;
    let rows = workloads::list(client.clone(), None)
        .await
        .expect("workloads");
    for kind in ["Deployment", "StatefulSet", "DaemonSet", "CronJob"] {
        assert!(rows.iter().any(|r| r.kind == kind), "no {kind}");
    }
    assert!(rows[0].degraded(), "{:?}", rows[0]);
    let cj = rows
        .iter()
        .find(|r| r.name == "postgres-backup-morning")
        .expect("cronjob");
    assert_eq!(cj.schedule, "0 6 * * *");
    assert!(cj.last_rollout.is_some());
    assert!(rows.iter().all(|r| !r.images.is_empty()));
}
