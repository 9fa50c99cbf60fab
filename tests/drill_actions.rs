//! Quick actions against the simulated fleet through kube-rs: restart, delete, scale and
//! trigger change what a watch or list sees, and every one leaves an `action` audit record.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use opsdeck::drill::actions::{self, QuickAction, QuickActionKind, WorkloadKind};
use opsdeck::runbook::audit::{Actor, AuditLog};
use opsdeck::sim::{Fleet, SimCluster, SimOptions};

const WAIT: Duration = Duration::from_secs(30);
const NS: &str = "goapps-staging";
const APP: &str = "finance-service";

async fn fleet() -> Fleet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet starts")
}

fn client(cluster: &SimCluster) -> Client {
    let cfg = Config::new(cluster.url().parse().expect("url"));
    Client::try_from(cfg).expect("client")
}

fn action(kind: QuickActionKind) -> QuickAction {
    QuickAction {
        kind,
        cluster: "staging".into(),
    }
}

async fn app_pods(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn names(pods: &[Pod]) -> Vec<String> {
    let mut v: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    v.sort();
    v
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Polls `f` until it returns Some, within [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn delete_removes_the_pod_and_a_watch_shows_its_replacement() {
    let fleet = fleet().await;
    let c = client(fleet.cluster("staging").expect("staging"));
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let before = app_pods(&pods, APP).await;
    let victim = before[0].metadata.name.clone().expect("name");
    let rv = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = Box::pin(
        pods.watch(&WatchParams::default().timeout(25), &rv)
            .await
            .expect("watch"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let a = action(QuickActionKind::DeletePod {
        ns: NS.into(),
        name: victim.clone(),
    });
    let msg = actions::perform_and_record(c.clone(), &a, &audit, &Actor::current(), "key")
        .await
        .expect("delete works");
    assert!(msg.contains(&victim), "{msg}");

    use futures::StreamExt;
    let (mut deleted, mut added) = (false, None::<String>);
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            match ev.expect("watch event") {
                WatchEvent::Deleted(p) if p.metadata.name.as_deref() == Some(&victim) => {
                    deleted = true
                }
                WatchEvent::Added(p) => added = p.metadata.name.clone(),
                _ => {}
            }
            if deleted && added.is_some() {
                break;
            }
        }
    })
    .await
    .expect("watch saw the delete and the replacement");
    let replacement = added.expect("a replacement pod");
    assert_ne!(replacement, victim);
    let after = eventually("the replacement to run", || async {
        let ps = app_pods(&pods, APP).await;
        (ps.len() == before.len() && ps.iter().all(running)).then_some(ps)
    })
    .await;
    assert!(names(&after).contains(&replacement));
    assert!(!names(&after).contains(&victim));

    // End records (`action`); each has an `action_started` start record before it.
    let records: Vec<_> = audit
        .read_all()
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "action")
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event, "action");
    assert_eq!(records[0].action.as_deref(), Some("pod.delete"));
    assert_eq!(
        records[0].target.as_deref(),
        Some(format!("staging/{NS}/pod/{victim}").as_str())
    );
    assert_eq!(records[0].result.as_deref(), Some("ok"));
}

#[tokio::test]
async fn restart_stamps_the_template_and_replaces_every_pod() {
    let fleet = fleet().await;
    let c = client(fleet.cluster("staging").expect("staging"));
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let deps: Api<Deployment> = Api::namespaced(c.clone(), NS);
    let before = names(&app_pods(&pods, APP).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let a = action(QuickActionKind::Restart {
        kind: WorkloadKind::Deployment,
        ns: NS.into(),
        name: APP.into(),
    });
    actions::perform_and_record(c.clone(), &a, &audit, &Actor::current(), "typed")
        .await
        .expect("restart works");
    let d = deps.get(APP).await.expect("deployment");
    let stamp = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt"))
        .cloned()
        .expect("restartedAt on the template");
    let after = eventually("every pod replaced", || async {
        let ps = app_pods(&pods, APP).await;
        let n = names(&ps);
        (ps.len() == before.len()
            && ps.iter().all(running)
            && n.iter().all(|x| !before.contains(x)))
        .then_some(ps)
    })
    .await;
    for p in &after {
        let ann = p.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(ann.get("kubectl.kubernetes.io/restartedAt"), Some(&stamp));
    }
    // End records (`action`); each has an `action_started` start record before it.
    let records: Vec<_> = audit
        .read_all()
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "action")
        .collect();
    assert_eq!(records[0].action.as_deref(), Some("workload.restart"));
    assert_eq!(records[0].confirmation.as_deref(), Some("typed"));
}

#[tokio::test]
async fn scale_changes_replicas_and_the_pod_count() {
    let fleet = fleet().await;
    let c = client(fleet.cluster("staging").expect("staging"));
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let deps: Api<Deployment> = Api::namespaced(c.clone(), NS);
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let up = action(QuickActionKind::Scale {
        kind: WorkloadKind::Deployment,
        ns: NS.into(),
        name: APP.into(),
        from: 1,
        to: 4,
    });
    actions::perform_and_record(c.clone(), &up, &audit, &Actor::current(), "key")
        .await
        .expect("scale up");
    assert_eq!(
        deps.get_scale(APP)
            .await
            .expect("scale")
            .spec
            .and_then(|s| s.replicas),
        Some(4)
    );
    eventually("four running pods", || async {
        let ps = app_pods(&pods, APP).await;
        (ps.len() == 4 && ps.iter().all(running)).then_some(())
    })
    .await;
    eventually("the Deployment to report four available", || async {
        let d = deps.get(APP).await.ok()?;
        (d.status?.available_replicas == Some(4)).then_some(())
    })
    .await;

    // A stale `from` is refused, and the refusal is recorded too.
    let stale = action(QuickActionKind::Scale {
        kind: WorkloadKind::Deployment,
        ns: NS.into(),
        name: APP.into(),
        from: 2,
        to: 1,
    });
    let err = actions::perform_and_record(c.clone(), &stale, &audit, &Actor::current(), "key")
        .await
        .expect_err("stale count refused");
    assert!(err.contains("changed from 2 to 4"), "{err}");

    let down = action(QuickActionKind::Scale {
        kind: WorkloadKind::Deployment,
        ns: NS.into(),
        name: APP.into(),
        from: 4,
        to: 1,
    });
    actions::perform_and_record(c.clone(), &down, &audit, &Actor::current(), "key")
        .await
        .expect("scale down");
    eventually("one pod left", || async {
        (app_pods(&pods, APP).await.len() == 1).then_some(())
    })
    .await;

    // StatefulSets scale by ordinal.
    let sts: Api<StatefulSet> = Api::namespaced(c.clone(), "database");
    let rabbit = action(QuickActionKind::Scale {
        kind: WorkloadKind::StatefulSet,
        ns: "database".into(),
        name: "rabbitmq".into(),
        from: sts
            .get_scale("rabbitmq")
            .await
            .expect("scale")
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(1),
        to: 3,
    });
    let sts_audit = AuditLog::new(dir.path().join("sts-audit.jsonl"));
    actions::perform_and_record(c.clone(), &rabbit, &sts_audit, &Actor::current(), "key")
        .await
        .expect("scale sts");
    let db: Api<Pod> = Api::namespaced(c.clone(), "database");
    let sts_pods = eventually("rabbitmq-0..2", || async {
        let n = names(&app_pods(&db, "rabbitmq").await);
        (n.len() == 3).then_some(n)
    })
    .await;
    assert_eq!(sts_pods, ["rabbitmq-0", "rabbitmq-1", "rabbitmq-2"]);

    // End records (`action`); each has an `action_started` start record before it.
    let records: Vec<_> = audit
        .read_all()
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "action")
        .collect();
    let results: Vec<_> = records
        .iter()
        .map(|r| r.result.clone().unwrap_or_default())
        .collect();
    assert_eq!(records.len(), 3, "{results:?}");
    assert!(
        records
            .iter()
            .all(|r| r.action.as_deref() == Some("workload.scale"))
    );
    assert_eq!(results[0], "ok");
    assert!(results[1].contains("changed from 2 to 4"));
}

#[tokio::test]
async fn trigger_creates_a_job_from_the_cronjob_that_completes() {
    let fleet = fleet().await;
    let c = client(fleet.cluster("production").expect("production"));
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let a = QuickAction {
        kind: QuickActionKind::TriggerJob {
            ns: "database".into(),
            cronjob: "postgres-backup-morning".into(),
        },
        cluster: "production".into(),
    };
    let msg = actions::perform_and_record(c.clone(), &a, &audit, &Actor::current(), "typed")
        .await
        .expect("trigger works");
    let jobs: Api<Job> = Api::namespaced(c.clone(), "database");
    let job = jobs
        .list(&ListParams::default())
        .await
        .expect("jobs")
        .items
        .into_iter()
        .find(|j| {
            j.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("postgres-backup-morning-manual-"))
        })
        .expect("the manual job");
    let name = job.metadata.name.clone().expect("name");
    assert!(msg.contains(&name), "{msg}");
    let ann = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get("cronjob.kubernetes.io/instantiate")
            .map(String::as_str),
        Some("manual")
    );
    let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "postgres-backup-morning")
    );
    eventually("the job to complete", || async {
        let j = jobs.get(&name).await.ok()?;
        (j.status?.succeeded == Some(1)).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "database");
    let job_pods = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await
        .expect("job pods")
        .items;
    assert_eq!(job_pods.len(), 1);
    assert_eq!(
        job_pods[0].status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    // End records (`action`); each has an `action_started` start record before it.
    let records: Vec<_> = audit
        .read_all()
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "action")
        .collect();
    assert_eq!(records[0].action.as_deref(), Some("job.trigger"));
    assert_eq!(
        records[0].target.as_deref(),
        Some("production/database/cronjob/postgres-backup-morning")
    );
}
