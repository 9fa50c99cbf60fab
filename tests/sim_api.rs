//! The simulated fleet against a real Kubernetes client (kube-rs): paging, watch,
//! 410 Expired recovery, kill/restart, faults and churn.

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use opsdeck::sim::{Fault, Fleet, SimCluster, SimOptions};

/// Bound for anything a test waits on.
const WAIT: Duration = Duration::from_secs(30);

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn fleet(pods: usize) -> Fleet {
    install_crypto();
    Fleet::start(SimOptions { pods, churn: false })
        .await
        .expect("fleet starts")
}

fn client(cluster: &SimCluster) -> Client {
    let mut cfg = Config::new(cluster.url().parse().expect("url"));
    cfg.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(cfg).expect("client")
}

async fn client_from_kubeconfig(fleet: &Fleet, context: &str) -> Client {
    let kc = kube::config::Kubeconfig::read_from(fleet.kubeconfig_path()).expect("kubeconfig");
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let cfg = Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("config from kubeconfig");
    Client::try_from(cfg).expect("client")
}

fn name(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

#[tokio::test]
async fn paged_list_returns_every_pod_exactly_once() {
    let fleet = fleet(120).await;
    let cluster = fleet.cluster("staging").expect("staging");
    let api: Api<Pod> = Api::all(client_from_kubeconfig(&fleet, "staging").await);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut list_rv = None;
    loop {
        let mut lp = ListParams::default().limit(7);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        // Every page of one list reports the snapshot's resourceVersion.
        let rv = page.metadata.resource_version.clone();
        assert!(rv.is_some());
        if list_rv.is_none() {
            list_rv = rv.clone();
            // A change between pages must not disturb the snapshot.
            let victim = cluster.pods()[60].clone();
            assert!(cluster.delete_pod(
                victim.metadata.namespace.as_deref().unwrap_or(""),
                victim.metadata.name.as_deref().unwrap_or("")
            ));
        }
        assert_eq!(rv, list_rv);
        seen.extend(page.items.iter().map(name));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert!(pages >= 120 / 7);
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a pod was listed twice");
    assert_eq!(seen.len(), 120);
    fleet.shutdown().await;
}

#[tokio::test]
async fn selectors_filter_lists() {
    let fleet = fleet(0).await;
    let c = client(fleet.cluster("production").expect("production"));
    let pods: Api<Pod> = Api::namespaced(c.clone(), "goapps-production");
    let iam = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=iam-service"))
        .await
        .expect("list");
    assert_eq!(iam.items.len(), 2);
    let all: Api<Pod> = Api::all(c.clone());
    let pg = all
        .list(&ListParams::default().fields("metadata.name=postgres-0"))
        .await
        .expect("list");
    assert_eq!(pg.items.len(), 1);
    assert_eq!(pg.items[0].metadata.namespace.as_deref(), Some("database"));
    let deps: Api<Deployment> = Api::namespaced(c, "goapps-production");
    let iam_dep = deps.get("iam-service").await.expect("deployment");
    let status = iam_dep.status.expect("status");
    assert_eq!(status.available_replicas, Some(1));
    let missing = pods.get("no-such-pod").await.expect_err("not found");
    assert!(matches!(missing, kube::Error::Api(s) if s.code == 404));
    fleet.shutdown().await;
}

/// Next watcher event matching `want`, within [`WAIT`].
async fn next_matching<S>(
    stream: &mut S,
    mut want: impl FnMut(&watcher::Event<Pod>) -> bool,
) -> watcher::Event<Pod>
where
    S: futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.next().await {
                Some(Ok(ev)) if want(&ev) => return ev,
                Some(_) => continue,
                None => panic!("watcher ended"),
            }
        }
    })
    .await
    .expect("watcher event in time")
}

#[tokio::test]
async fn watcher_sees_modification_and_deletion() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("production").expect("production");
    let api: Api<Pod> = Api::all(client(cluster));
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    next_matching(&mut stream, |e| matches!(e, watcher::Event::InitDone)).await;

    assert!(cluster.modify_pod("database", "postgres-0", |p| {
        p.metadata
            .labels
            .get_or_insert_default()
            .insert("touched".into(), "yes".into());
    }));
    let ev = next_matching(&mut stream, |e| matches!(e, watcher::Event::Apply(p) if p.metadata.name.as_deref() == Some("postgres-0"))).await;
    let watcher::Event::Apply(p) = ev else {
        unreachable!()
    };
    assert_eq!(
        p.metadata
            .labels
            .unwrap_or_default()
            .get("touched")
            .map(String::as_str),
        Some("yes")
    );

    assert!(cluster.delete_pod("database", "postgres-0"));
    next_matching(&mut stream, |e| matches!(e, watcher::Event::Delete(p) if p.metadata.name.as_deref() == Some("postgres-0"))).await;
    assert!(!cluster.delete_pod("database", "postgres-0"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn old_resource_version_gets_410_and_watcher_relists() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("staging").expect("staging");
    let api: Api<Pod> = Api::all(client(cluster));
    let old_rv = cluster.resource_version().to_string();

    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    next_matching(&mut stream, |e| matches!(e, watcher::Event::InitDone)).await;
    cluster.compact_history();

    // A raw watch from before the compaction is told its version expired.
    let mut raw = api
        .watch(&WatchParams::default().timeout(10), &old_rv)
        .await
        .expect("watch")
        .boxed();
    let first = tokio::time::timeout(WAIT, raw.try_next())
        .await
        .expect("event in time")
        .expect("decodes")
        .expect("one event");
    assert!(
        matches!(first, WatchEvent::Error(ref e) if e.code == 410),
        "got {first:?}"
    );

    // The watcher's stream was cut; it reconnects, gets 410, re-lists...
    next_matching(&mut stream, |e| matches!(e, watcher::Event::Init)).await;
    next_matching(&mut stream, |e| matches!(e, watcher::Event::InitDone)).await;
    // ...and still sees later changes.
    assert!(cluster.modify_pod("database", "rabbitmq-0", |p| {
        p.metadata
            .annotations
            .get_or_insert_default()
            .insert("after".into(), "compaction".into());
    }));
    next_matching(&mut stream, |e| {
        matches!(e, watcher::Event::Apply(p) if p.metadata.annotations.as_ref().and_then(|a| a.get("after")).is_some())
    })
    .await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn kill_refuses_and_restart_serves_same_url_and_state() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("production").expect("production");
    let url = cluster.url();
    let api: Api<Pod> = Api::all(client(cluster));
    let before = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .len();
    let rv = cluster.resource_version();

    cluster.kill().await;
    assert!(
        api.list(&ListParams::default()).await.is_err(),
        "killed server still answers"
    );
    cluster.restart().await.expect("restart");
    assert_eq!(cluster.url(), url);
    let after = api
        .list(&ListParams::default())
        .await
        .expect("list after restart");
    assert_eq!(after.items.len(), before);
    assert_eq!(after.metadata.resource_version, Some(rv.to_string()));

    cluster.set_fault(Fault::Refuse);
    let fresh: Api<Pod> = Api::all(client(cluster));
    assert!(
        fresh.list(&ListParams::default()).await.is_err(),
        "refusing server answers"
    );
    cluster.set_fault(Fault::None);
    assert!(fresh.list(&ListParams::default()).await.is_ok());
    fleet.shutdown().await;
}

#[tokio::test]
async fn error500_fault_answers_500() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("staging").expect("staging");
    let api: Api<Pod> = Api::all(client(cluster));
    cluster.set_fault(Fault::Error500);
    let err = api.list(&ListParams::default()).await.expect_err("500");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500),
        "got {err:?}"
    );
    cluster.set_fault(Fault::None);
    assert!(api.list(&ListParams::default()).await.is_ok());
    fleet.shutdown().await;
}

#[tokio::test]
async fn stall_fault_never_answers() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("staging").expect("staging");
    let api: Api<Pod> = Api::all(client(cluster));
    cluster.set_fault(Fault::Stall);
    let res =
        tokio::time::timeout(Duration::from_millis(500), api.list(&ListParams::default())).await;
    assert!(res.is_err(), "stalled server answered");
    cluster.set_fault(Fault::None);
    assert!(api.list(&ListParams::default()).await.is_ok());
    fleet.shutdown().await;
}

fn crashlooping(cluster: &SimCluster) -> Option<(String, i32)> {
    cluster.pods().into_iter().find_map(|p| {
        let cs = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        let waiting = cs.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
        (waiting == "CrashLoopBackOff").then(|| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                cs.restart_count,
            )
        })
    })
}

#[tokio::test]
async fn crashlooping_iam_pod_restarts_as_churn_runs() {
    let fleet = fleet(0).await;
    let prod = fleet.cluster("production").expect("production");
    let (name, restarts) = crashlooping(prod).expect("a crash-looping pod in production");
    assert!(name.starts_with("iam-service-"), "{name}");
    assert!(crashlooping(fleet.cluster("staging").expect("staging")).is_none());
    let rv = prod.resource_version();
    let pods_before = prod.pods().len();
    prod.churn_step();
    prod.churn_step();
    let (name2, restarts2) = crashlooping(prod).expect("still crash-looping");
    assert_eq!(name2, name);
    assert_eq!(restarts2, restarts + 2);
    assert!(prod.resource_version() > rv);
    // Replacements keep the pod count; one Pending-then-scheduled pod is added.
    assert_eq!(prod.pods().len(), pods_before + 1);
    // Deployment status stays consistent with its pods.
    let deps: Api<Deployment> = Api::all(client(prod));
    for d in deps
        .list(&ListParams::default())
        .await
        .expect("deployments")
        .items
    {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let dname = d.metadata.name.clone().unwrap_or_default();
        let pods = prod
            .pods()
            .into_iter()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(&ns)
                    && p.metadata.labels.as_ref().and_then(|l| l.get("app")) == Some(&dname)
            })
            .count() as i32;
        assert_eq!(
            d.status.and_then(|s| s.replicas),
            Some(pods),
            "{ns}/{dname}"
        );
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn five_thousand_pods_per_cluster() {
    let fleet = fleet(5000).await;
    for c in fleet.clusters() {
        let api: Api<Pod> = Api::all(client(c));
        let list = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), 5000, "{}", c.name());
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn drop_watches_ends_open_watch_streams() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("staging").expect("staging");
    let api: Api<Pod> = Api::all(client(cluster));
    let rv = cluster.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .expect("watch")
        .boxed();
    cluster.set_fault(Fault::DropWatches);
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(end.is_ok(), "watch stream stayed open");
    cluster.set_fault(Fault::None);
    fleet.shutdown().await;
}

#[tokio::test]
async fn watch_with_bookmarks_gets_a_bookmark() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("production").expect("production");
    let api: Api<Pod> = Api::namespaced(client(cluster), "database");
    let rv = cluster.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .expect("watch")
        .boxed();
    let bookmark = tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            if let Ok(WatchEvent::Bookmark(b)) = ev {
                return Some(b.metadata.resource_version);
            }
        }
        None
    })
    .await
    .expect("bookmark in time")
    .expect("bookmark before the stream ended");
    assert!(bookmark.parse::<u64>().expect("numeric rv") >= rv.parse::<u64>().expect("numeric rv"));
    fleet.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_state_then_changes() {
    let fleet = fleet(0).await;
    let cluster = fleet.cluster("staging").expect("staging");
    let api: Api<Pod> = Api::namespaced(client(cluster), "database");
    let mut stream = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = 0;
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitApply(_)) => initial += 1,
                Ok(watcher::Event::InitDone) => break,
                _ => {}
            }
        }
    })
    .await
    .expect("initial events end in time");
    assert_eq!(
        initial,
        cluster
            .pods()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some("database"))
            .count()
    );
    assert!(cluster.delete_pod("database", "postgres-0"));
    next_matching(&mut stream, |e| matches!(e, watcher::Event::Delete(p) if p.metadata.name.as_deref() == Some("postgres-0"))).await;
    fleet.shutdown().await;
}

/// With churn paused nothing in the fleet moves, down to the simulated PgBouncer's queue and
/// Redis's uptime and change counter; resuming churn starts their clock again.
#[tokio::test]
async fn paused_fleet_data_servers_answer_the_same_figures() {
    use opsdeck::config::Endpoint;
    use opsdeck::sources::pgbouncer::Console;
    use opsdeck::sources::redis::{RedisConfig, RedisConn};
    install_crypto();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    let (bouncer, redis) = fleet.data_servers("production").expect("data servers");
    let console = Console::connect(
        &Endpoint::Address {
            host: "127.0.0.1".into(),
            port: bouncer.addr().port(),
        },
        opsdeck::sim::pgbouncer::USER,
        Some(opsdeck::sim::pgbouncer::PASSWORD),
    )
    .await
    .expect("console");
    let mut t = toml::Table::new();
    t.insert("address".into(), redis.addr().to_string().into());
    let mut conn = RedisConn::connect(&RedisConfig::from_table(&t).expect("cfg"), None)
        .await
        .expect("redis");
    let pools = console.show("POOLS").await.expect("pools").rows;
    let info = conn.info("all").await.expect("info");
    assert!(info.contains_key("uptime_in_seconds"), "{info:?}");
    // Both move every second while the clock runs.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(console.show("POOLS").await.expect("pools").rows, pools);
    assert_eq!(conn.info("all").await.expect("info"), info);

    fleet.cluster("production").expect("prod").set_churn(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let moved = conn.info("all").await.expect("info");
    assert_ne!(
        moved["uptime_in_seconds"], info["uptime_in_seconds"],
        "the clock runs again with churn"
    );
    fleet.shutdown().await;
}

/// A killed (or refusing) simulated API server serves nothing more, not even over a
/// keep-alive connection a client opened before: the request fails to connect or gets 503.
#[tokio::test]
async fn a_killed_server_serves_nothing_over_old_connections() {
    install_crypto();
    for fault in [true, false] {
        let fleet = Fleet::start(SimOptions {
            pods: 0,
            churn: false,
        })
        .await
        .expect("fleet");
        let cluster = fleet.cluster("production").expect("prod");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let url = format!("{}/api/v1/namespaces/database/pods", cluster.url());
        let ok = http.get(&url).send().await.expect("first request");
        assert_eq!(ok.status(), 200);
        ok.bytes().await.expect("body");
        if fault {
            cluster.set_fault(Fault::Refuse);
        } else {
            cluster.kill().await;
        }
        match http.get(&url).send().await {
            Ok(r) => assert_eq!(r.status(), 503, "served after the kill (fault: {fault})"),
            Err(e) => assert!(e.is_connect() || e.is_request(), "{e:?}"),
        }
        fleet.shutdown().await;
    }
}
