//! The ArgoCD source and actions against the simulated ArgoCD over loopback HTTP: the list,
//! live changes on the stream, refresh/sync/rollback reflected, a rejected token reported and
//! recovered, a dropped stream, 500s, and the polling fallback.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opsdeck::config::{ClusterConfig, Config};
use opsdeck::model::Severity;
use opsdeck::model::argocd::{
    ArgocdSnapshot, FollowMode, Health, OperationPhase, SyncStatus, findings,
};
use opsdeck::sim::argocd::{ArgoFault, ArgoSim};
use opsdeck::sim::seed::Env;
use opsdeck::sim::{Fleet, SimOptions};
use opsdeck::sources::argocd::{self as source, ArgocdClient};
use opsdeck::sources::{Feature, FeatureData, SourceEvent, SourceUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A simulated ArgoCD of `env` and a cluster config pointing at it with a token file.
async fn sim(env: Env) -> (ArgoSim, ClusterConfig, tempfile::TempDir) {
    install_crypto();
    let argo = ArgoSim::start(env, false).await.expect("sim starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    write_private(&token, &format!("{}\n", argo.token()));
    let mut table = toml::Table::new();
    table.insert("url".into(), argo.api_url().into());
    table.insert("token_file".into(), token.display().to_string().into());
    table.insert("poll".into(), "1s".into());
    let cluster = ClusterConfig {
        name: env.name().into(),
        protected: env == Env::Production,
        argocd: Some(table),
        ..ClusterConfig::default()
    };
    (argo, cluster, dir)
}

struct Running {
    rx: mpsc::UnboundedReceiver<SourceEvent>,
    cancel: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn start(cluster: &ClusterConfig) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    tokio::spawn(source::run(0, cluster.clone(), tx, cancel.clone()));
    Running { rx, cancel }
}

enum Seen {
    Snap(Arc<ArgocdSnapshot>),
    Failing(String),
}

async fn next(r: &mut Running) -> Seen {
    let ev = tokio::time::timeout(WAIT, r.rx.recv())
        .await
        .expect("an update within the wait")
        .expect("source alive");
    match ev.update {
        SourceUpdate::Feature(FeatureData::Argocd(s)) => Seen::Snap(s),
        SourceUpdate::FeatureFailing { feature, reason } => {
            assert_eq!(feature, Feature::Argocd);
            Seen::Failing(reason)
        }
        other => panic!("unexpected update {other:?}"),
    }
}

/// The first snapshot satisfying `pred`.
async fn snapshot_where(
    r: &mut Running,
    what: &str,
    pred: impl Fn(&ArgocdSnapshot) -> bool,
) -> Arc<ArgocdSnapshot> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "never saw: {what}");
        if let Seen::Snap(s) = next(r).await
            && pred(&s)
        {
            return s;
        }
    }
}

async fn failing_where(r: &mut Running, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "never saw: {what}");
        if let Seen::Failing(reason) = next(r).await
            && pred(&reason)
        {
            return reason;
        }
    }
}

#[tokio::test]
async fn fleet_config_lists_every_application_of_production_with_its_findings() {
    install_crypto();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    let loaded = Config::load(fleet.config_path()).expect("fleet config is valid");
    assert!(
        loaded.warnings.iter().all(|w| !w.key.contains("argocd")),
        "{:?}",
        loaded.warnings
    );
    assert!(
        fleet
            .endpoints()
            .iter()
            .any(|(k, v)| k == "argocd-production" && v.starts_with("http://127.0.0.1:"))
    );
    let prod = loaded
        .config
        .cluster("production")
        .expect("production")
        .clone();
    let mut client = ArgocdClient::connect(&prod).await.expect("client");
    let list = client.list().await.expect("list");
    let names: Vec<&str> = list.apps.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "finance-service-production",
            "frontend-production",
            "iam-service-production",
            "infra-backup",
            "infra-database",
            "infra-minio"
        ]
    );
    let iam = &list.apps["iam-service-production"];
    assert_eq!(iam.health, Health::Degraded);
    assert!(!iam.auto_sync);
    assert_eq!(iam.revision.len(), 40);
    assert_eq!(iam.history.len(), 3);
    assert!(
        iam.resources
            .iter()
            .any(|r| r.kind == "Deployment" && r.health == "Degraded")
    );
    assert_eq!(list.apps["frontend-production"].sync, SyncStatus::OutOfSync);

    let snap = ArgocdSnapshot {
        ci_sync: String::new(),
        endpoint: client.base_url().into(),
        insecure: false,
        mode: FollowMode::Stream,
        apps: list.apps.values().cloned().collect(),
    };
    let f = findings(&snap, jiff::Timestamp::now(), prod.protected);
    let crit: Vec<_> = f.iter().filter(|f| f.severity == Severity::Crit).collect();
    assert_eq!(crit.len(), 1, "{f:?}");
    assert!(
        crit[0]
            .message
            .contains("iam-service-production is Degraded")
    );
    assert!(
        f.iter()
            .any(|f| f.message.contains("frontend-production is OutOfSync")
                && f.message.contains("auto-sync is off"))
    );
    assert!(
        f.iter()
            .any(|f| { f.message.contains("infra-backup runs minio/mc:latest") })
    );

    let staging = loaded.config.cluster("staging").expect("staging").clone();
    let mut client = ArgocdClient::connect(&staging).await.expect("client");
    let list = client.list().await.expect("list");
    assert!(list.apps.contains_key("frontend-staging"));
    assert!(list.apps.values().all(|a| a.auto_sync));
    fleet.shutdown().await;
}

#[tokio::test]
async fn stream_carries_a_change_to_the_snapshot() {
    let (argo, cluster, _dir) = sim(Env::Production).await;
    let mut r = start(&cluster);
    let first = snapshot_where(&mut r, "first list", |_| true).await;
    assert_eq!(first.apps.len(), 6);
    assert_eq!(first.mode, FollowMode::Stream);
    assert!(argo.set_health("infra-minio", "Missing", "minio Deployment is gone"));
    let s = snapshot_where(&mut r, "infra-minio Missing", |s| {
        s.app("infra-minio")
            .is_some_and(|a| a.health == Health::Missing)
    })
    .await;
    assert_eq!(s.apps.len(), 6);
    assert_eq!(s.mode, FollowMode::Stream);
}

#[tokio::test]
async fn sync_runs_an_operation_that_ends_synced_on_the_stream() {
    let (argo, cluster, _dir) = sim(Env::Production).await;
    let mut r = start(&cluster);
    snapshot_where(&mut r, "drifted frontend", |s| {
        s.app("frontend-production")
            .is_some_and(|a| a.sync == SyncStatus::OutOfSync)
    })
    .await;
    source::sync(&cluster, "frontend-production", false)
        .await
        .expect("sync accepted");
    snapshot_where(&mut r, "operation running", |s| {
        s.app("frontend-production").is_some_and(|a| {
            a.health == Health::Progressing
                && a.operation.as_ref().map(|o| o.phase) == Some(OperationPhase::Running)
        })
    })
    .await;
    let s = snapshot_where(&mut r, "synced", |s| {
        s.app("frontend-production").is_some_and(|a| {
            a.sync == SyncStatus::Synced
                && a.operation.as_ref().map(|o| o.phase) == Some(OperationPhase::Succeeded)
        })
    })
    .await;
    let app = s.app("frontend-production").expect("app");
    assert_eq!(app.history.len(), 4);
    assert_eq!(
        app.history.last().map(|h| h.revision.clone()),
        Some(app.revision.clone())
    );
    // A second sync while none runs is fine; one while running is refused by the server.
    assert!(argo.app("frontend-production").is_some());
}

#[tokio::test]
async fn refresh_hard_and_normal_reach_the_server() {
    let (argo, cluster, _dir) = sim(Env::Staging).await;
    source::refresh(&cluster, "iam-service-staging", true)
        .await
        .expect("refresh");
    source::refresh(&cluster, "iam-service-staging", false)
        .await
        .expect("refresh");
    assert_eq!(
        argo.refreshes(),
        vec![
            ("iam-service-staging".to_string(), "hard".to_string()),
            ("iam-service-staging".to_string(), "normal".to_string())
        ]
    );
    let err = source::refresh(&cluster, "no-such-app", false)
        .await
        .expect_err("missing app");
    assert!(err.contains("(403)"), "{err}");
}

#[tokio::test]
async fn rollback_changes_the_revision_and_is_refused_with_auto_sync() {
    let (_argo, cluster, _dir) = sim(Env::Production).await;
    let mut client = ArgocdClient::connect(&cluster).await.expect("client");
    let before = client.get("finance-service-production").await.expect("get");
    let target = before.history[0].clone();
    assert_ne!(target.revision, before.revision);
    source::rollback(&cluster, "finance-service-production", target.id)
        .await
        .expect("rollback accepted");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = client.get("finance-service-production").await.expect("get");
        if a.revision == target.revision {
            assert_eq!(a.sync, SyncStatus::OutOfSync);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollback never landed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = source::rollback(&cluster, "finance-service-production", 99)
        .await
        .expect_err("unknown id");
    assert!(err.contains("does not have deployment with id 99"), "{err}");

    let (_s, staging, _d) = sim(Env::Staging).await;
    let err = source::rollback(&staging, "finance-service-staging", 1)
        .await
        .expect_err("auto-sync");
    assert!(
        err.contains("refused to roll back finance-service-staging to history id 1 (400)")
            && err.contains("auto-sync is enabled"),
        "{err}"
    );
}

#[tokio::test]
async fn rejected_sync_says_why() {
    let (argo, cluster, _dir) = sim(Env::Production).await;
    argo.reject_syncs(Some("sync window is closed"));
    let err = source::sync(&cluster, "frontend-production", true)
        .await
        .expect_err("refused");
    assert!(
        err.contains("refused to sync frontend-production (prune) (400): sync window is closed"),
        "{err}"
    );
    argo.reject_syncs(None);
    source::sync(&cluster, "frontend-production", false)
        .await
        .expect("accepted");
    let again = source::sync(&cluster, "frontend-production", false)
        .await
        .expect_err("already running");
    assert!(
        again.contains("another operation is already in progress"),
        "{again}"
    );
}

#[tokio::test]
async fn rejected_token_is_reported_then_recovers_with_a_new_token() {
    let (argo, cluster, dir) = sim(Env::Production).await;
    argo.set_token("rotated-token-0001");
    let mut r = start(&cluster);
    let reason = failing_where(&mut r, "401", |m| m.contains("rejected the token (401)")).await;
    let token_path = dir.path().join("token");
    assert!(
        reason.contains(&token_path.display().to_string()),
        "names the file to fix: {reason}"
    );
    assert!(!reason.contains("rotated-token-0001"));
    let f = opsdeck::model::argocd::failing_finding(&reason);
    assert_eq!(f.severity, Severity::Crit);
    write_private(&token_path, "rotated-token-0001\n");
    let s = snapshot_where(&mut r, "recovery", |_| true).await;
    assert_eq!(s.apps.len(), 6);
}

#[tokio::test]
async fn login_session_is_renewed_after_it_expires() {
    let (argo, mut cluster, dir) = sim(Env::Staging).await;
    let pw = dir.path().join("password");
    write_private(&pw, &argo.password());
    let t = cluster.argocd.as_mut().expect("table");
    t.remove("token_file");
    t.insert("user".into(), "admin".into());
    t.insert("password_file".into(), pw.display().to_string().into());
    let mut client = ArgocdClient::connect(&cluster).await.expect("client");
    assert_eq!(client.list().await.expect("list").apps.len(), 6);
    argo.expire_sessions();
    assert_eq!(
        client.list().await.expect("list after expiry").apps.len(),
        6
    );
    write_private(&pw, "wrong-password");
    argo.expire_sessions();
    let err = client.list().await.expect_err("bad password").to_string();
    assert!(
        err.contains("rejected the token (401)") && err.contains("user \"admin\""),
        "{err}"
    );
}

#[tokio::test]
async fn dropped_stream_reconnects_without_duplicate_rows() {
    let (argo, cluster, _dir) = sim(Env::Staging).await;
    let mut r = start(&cluster);
    snapshot_where(&mut r, "first", |_| true).await;
    argo.drop_streams();
    argo.set_health("infra-database", "Degraded", "postgres-0 not ready");
    let s = snapshot_where(&mut r, "change after reconnect", |s| {
        s.app("infra-database")
            .is_some_and(|a| a.health == Health::Degraded)
    })
    .await;
    assert_eq!(s.apps.len(), 6);
    argo.drop_streams();
    argo.set_health("infra-database", "Healthy", "");
    let s = snapshot_where(&mut r, "healthy again", |s| {
        s.app("infra-database")
            .is_some_and(|a| a.health == Health::Healthy)
    })
    .await;
    let mut names: Vec<_> = s.apps.iter().map(|a| a.name.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 6);
}

#[tokio::test]
async fn server_errors_mark_stale_with_the_reason_and_recover() {
    let (argo, cluster, _dir) = sim(Env::Production).await;
    let mut r = start(&cluster);
    snapshot_where(&mut r, "first", |_| true).await;
    argo.set_fault(ArgoFault::Error500);
    let reason = failing_where(&mut r, "500", |m| m.contains("500")).await;
    assert!(
        reason.contains("answered 500 to the application list: simulated fault"),
        "{reason}"
    );
    argo.set_fault(ArgoFault::None);
    let s = snapshot_where(&mut r, "back", |_| true).await;
    assert_eq!(s.apps.len(), 6);
}

#[tokio::test]
async fn unavailable_stream_falls_back_to_polling() {
    let (argo, cluster, _dir) = sim(Env::Production).await;
    argo.set_fault(ArgoFault::NoStream);
    let mut r = start(&cluster);
    snapshot_where(&mut r, "polling mode", |s| s.mode == FollowMode::Polling).await;
    argo.set_health("infra-minio", "Missing", "");
    let s = snapshot_where(&mut r, "change seen by polling", |s| {
        s.app("infra-minio")
            .is_some_and(|a| a.health == Health::Missing)
    })
    .await;
    assert_eq!(s.mode, FollowMode::Polling);
}

/// ArgoCD as the goapps fleet runs it: `server.insecure=true` and `--rootpath=/argocd`, so the
/// API is plain HTTP under `/argocd` and only `/healthz` answers at the root. A small proxy
/// mounts the simulator's API under `/argocd` (everything else is 404).
async fn rootpath_proxy(upstream: String) -> String {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;
    async fn forward(State(up): State<Arc<(reqwest::Client, String)>>, req: Request) -> Response {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let not_found = || {
            Response::builder()
                .status(404)
                .body(Body::from("404 page not found"))
                .expect("response")
        };
        let Some(rest) = pq.strip_prefix("/argocd") else {
            return not_found();
        };
        if !rest.starts_with('/') {
            return not_found();
        }
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        let mut headers = parts.headers.clone();
        headers.remove(http::header::HOST);
        let resp =
            up.0.request(parts.method, format!("{}{rest}", up.1))
                .headers(headers)
                .body(body)
                .send()
                .await
                .expect("upstream");
        let mut out = Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        out.body(Body::from_stream(resp.bytes_stream()))
            .expect("response")
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(Arc::new((reqwest::Client::new(), upstream)));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

#[tokio::test]
async fn plain_http_under_the_argocd_rootpath_is_found_and_followed() {
    let (argo, mut cluster, _dir) = sim(Env::Production).await;
    let addr = rootpath_proxy(argo.api_url()).await;
    let table = cluster.argocd.as_mut().expect("table");
    table.remove("url");
    // An address on a port other than 80 needs `tls = false` to be plain HTTP; the rootpath
    // is found by probing `/api/version` (404 at the root, an answer under `/argocd`).
    table.insert("address".into(), addr.clone().into());
    table.insert("tls".into(), false.into());
    let mut client = ArgocdClient::connect(&cluster).await.expect("client");
    assert_eq!(client.base_url(), format!("http://{addr}/argocd"));
    let list = client.list().await.expect("list under /argocd");
    assert!(!list.apps.is_empty());
    // The same with the rootpath configured, through the running source (list + stream).
    let table = cluster.argocd.as_mut().expect("table");
    table.insert("base_path".into(), "/argocd/".into());
    let mut running = start(&cluster);
    let snap = snapshot_where(&mut running, "apps under /argocd", |s| !s.apps.is_empty()).await;
    assert_eq!(snap.endpoint, format!("http://{addr}/argocd"));
}
