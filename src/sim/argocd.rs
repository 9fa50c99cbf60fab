//! A simulated ArgoCD API server per cluster, faithful to the swagger
//! (`shared/reference/argocd-swagger.json`) for what opsdeck uses: session login, list/get
//! (with `?refresh=normal|hard`), resource-tree, the newline-delimited application stream,
//! sync and rollback. Bearer-token auth, runtimeError bodies with gRPC codes, operations that
//! go Running -> Succeeded with stream events, and fault switches for the tests.
//!
//! | file | owns |
//! |---|---|
//! | `argocd.rs` | [`ArgoSim`]: lifecycle, auth, routes, operations, churn |
//! | `argocd/apps.rs` | the fleet's applications and their JSON |

pub mod apps;

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::seed::Env;
use apps::AppSpec;

/// A fault the simulated ArgoCD can be switched into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoFault {
    None,
    /// Every API request answers 500 (gRPC Internal).
    Error500,
    /// The stream endpoint answers 404, as behind a proxy that does not pass it.
    NoStream,
}

/// One application: its JSON as served and what the simulator needs beside it.
struct SimApp {
    spec: AppSpec,
    obj: Value,
    /// The commit `main` points at for this app's path.
    head: String,
    running: bool,
}

struct ArgoState {
    apps: BTreeMap<String, SimApp>,
    rv: u64,
    api_token: String,
    password: String,
    sessions: HashSet<String>,
    fault: ArgoFault,
    reject_sync: Option<String>,
    /// Every refresh asked for: (app, "normal" | "hard").
    refreshes: Vec<(String, String)>,
    commits: u64,
}

struct ArgoShared {
    env: Env,
    state: Mutex<ArgoState>,
    /// (app name, stream line) for every change.
    events: broadcast::Sender<(String, Bytes)>,
    /// Bumped to end every open stream.
    cut: watch::Sender<u64>,
    op_delay: Duration,
}

impl ArgoShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ArgoState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One cluster's simulated ArgoCD.
pub struct ArgoSim {
    shared: Arc<ArgoShared>,
    addr: SocketAddr,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

impl ArgoSim {
    /// Serves the cluster's applications on a free loopback port. With `churn`, commits land
    /// on main now and then: staging auto-syncs them, production drifts OutOfSync.
    pub async fn start(env: Env, churn: bool) -> anyhow::Result<ArgoSim> {
        let now = Timestamp::now();
        let mut apps_map = BTreeMap::new();
        for (i, spec) in apps::specs(env).into_iter().enumerate() {
            let (obj, head) = apps::application(env, &spec, now, i);
            apps_map.insert(
                spec.name.clone(),
                SimApp {
                    spec,
                    obj,
                    head,
                    running: false,
                },
            );
        }
        let (events, _) = broadcast::channel(1024);
        let (cut, _) = watch::channel(0);
        let shared = Arc::new(ArgoShared {
            env,
            state: Mutex::new(ArgoState {
                apps: apps_map,
                rv: 1,
                api_token: random_hex(32),
                password: random_hex(16),
                sessions: HashSet::new(),
                fault: ArgoFault::None,
                reject_sync: None,
                refreshes: Vec::new(),
                commits: 0,
            }),
            events,
            cut,
            op_delay: Duration::from_millis(1200),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let mut tasks = vec![server];
        if churn {
            tasks.push(tokio::spawn(churn_loop(shared.clone())));
        }
        Ok(ArgoSim {
            shared,
            addr,
            shutdown: Mutex::new(Some(tx)),
            tasks: Mutex::new(tasks),
        })
    }

    /// `http://127.0.0.1:PORT`: the server's root, where only `/healthz` answers.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/argocd`: the base of the UI and the REST API ([`ROOT_PATH`]).
    pub fn api_url(&self) -> String {
        format!("http://{}{ROOT_PATH}", self.addr)
    }

    pub fn cluster(&self) -> &'static str {
        self.shared.env.name()
    }

    /// The API token the fleet's config names (via `token_file`).
    pub fn token(&self) -> String {
        self.shared.lock().api_token.clone()
    }

    /// Replaces the API token: the old one is rejected from now on.
    pub fn set_token(&self, token: &str) {
        self.shared.lock().api_token = token.to_string();
    }

    /// The `admin` password for `POST /api/v1/session`.
    pub fn password(&self) -> String {
        self.shared.lock().password.clone()
    }

    /// Ends every login session, as if they had expired.
    pub fn expire_sessions(&self) {
        self.shared.lock().sessions.clear();
    }

    pub fn set_fault(&self, fault: ArgoFault) {
        self.shared.lock().fault = fault;
        if fault != ArgoFault::None {
            self.drop_streams();
        }
    }

    /// Ends every open stream now (clients should reconnect).
    pub fn drop_streams(&self) {
        self.shared.cut.send_modify(|g| *g += 1);
    }

    /// Refuses every sync with `message` (FailedPrecondition), or accepts them again (`None`).
    pub fn reject_syncs(&self, message: Option<&str>) {
        self.shared.lock().reject_sync = message.map(str::to_string);
    }

    /// The refreshes asked for so far: (app, "normal" | "hard").
    pub fn refreshes(&self) -> Vec<(String, String)> {
        self.shared.lock().refreshes.clone()
    }

    /// An application as served.
    pub fn app(&self, name: &str) -> Option<Value> {
        self.shared.lock().apps.get(name).map(|a| a.obj.clone())
    }

    /// A new commit on main for `app`: it turns OutOfSync (and auto-syncs on staging).
    pub fn push_commit(&self, app: &str) -> bool {
        push_commit(&self.shared, app)
    }

    /// Sets an app's health (and the workload's) and announces it on the stream.
    pub fn set_health(&self, app: &str, status: &str, message: &str) -> bool {
        let mut st = self.shared.lock();
        let Some(a) = st.apps.get_mut(app) else {
            return false;
        };
        let status: &'static str = match status {
            "Healthy" => "Healthy",
            "Progressing" => "Progressing",
            "Degraded" => "Degraded",
            "Suspended" => "Suspended",
            "Missing" => "Missing",
            _ => "Unknown",
        };
        a.spec.health = (status, message.to_string());
        set_app_health(a, status, message);
        drop(st);
        announce(&self.shared, app, "MODIFIED");
        true
    }

    pub async fn shutdown(&self) {
        let tx = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
        self.drop_streams();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in tasks {
            t.abort();
        }
    }
}

fn set_app_health(a: &mut SimApp, status: &str, message: &str) {
    let mut h = json!({"status": status, "lastTransitionTime": apps::time(Timestamp::now())});
    if !message.is_empty() {
        h["message"] = json!(message);
    }
    a.obj["status"]["health"] = h;
    let sync = a.obj["status"]["sync"]["status"]
        .as_str()
        .unwrap_or("Synced")
        .to_string();
    let mut resources = apps::resources_json(&a.spec, "Synced", status, message);
    if sync != "Synced"
        && let Some(arr) = resources.as_array_mut()
    {
        for r in arr.iter_mut().filter(|r| r["kind"] == "Deployment") {
            r["status"] = json!(sync);
        }
    }
    a.obj["status"]["resources"] = resources;
}

/// Bumps the resourceVersion of `app` and sends a stream event for it.
fn announce(shared: &ArgoShared, app: &str, kind: &str) {
    let line = {
        let mut st = shared.lock();
        st.rv += 1;
        let rv = st.rv;
        let Some(a) = st.apps.get_mut(app) else {
            return;
        };
        a.obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let mut bytes =
            serde_json::to_vec(&json!({"result": {"type": kind, "application": a.obj}}))
                .unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    };
    // No subscriber is fine: nobody is watching.
    let _ = shared.events.send((app.to_string(), line));
}

fn push_commit(shared: &Arc<ArgoShared>, app: &str) -> bool {
    let auto = {
        let mut st = shared.lock();
        st.commits += 1;
        let n = st.commits;
        let env = shared.env.name();
        let Some(a) = st.apps.get_mut(app) else {
            return false;
        };
        a.head = apps::sha(&format!("{env}/{app}/commit{n}"));
        let deployed = a.obj["status"]["sync"]["revision"].as_str().unwrap_or("");
        if deployed != a.head {
            a.obj["status"]["sync"]["status"] = json!("OutOfSync");
            if let Some(arr) = a.obj["status"]["resources"].as_array_mut() {
                for r in arr.iter_mut().filter(|r| r["kind"] == "Deployment") {
                    r["status"] = json!("OutOfSync");
                }
            }
        }
        a.obj["status"]["reconciledAt"] = json!(apps::time(Timestamp::now()));
        a.spec.auto_sync
    };
    announce(shared, app, "MODIFIED");
    if auto {
        let shared = shared.clone();
        let app = app.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = start_operation(&shared, &app, None, false, true);
        });
    }
    true
}

async fn churn_loop(shared: Arc<ArgoShared>) {
    let services = ["finance-service", "iam-service", "frontend"];
    let every = match shared.env {
        Env::Staging => Duration::from_secs(60),
        Env::Production => Duration::from_secs(180),
    };
    let mut i = 0usize;
    loop {
        tokio::time::sleep(every).await;
        let app = format!("{}-{}", services[i % services.len()], shared.env.name());
        push_commit(&shared, &app);
        i += 1;
    }
}

/// Starts a sync (to `revision`, or main's head) and finishes it after the operation delay.
/// Returns the app JSON as answered, or a gRPC code and message.
fn start_operation(
    shared: &Arc<ArgoShared>,
    app: &str,
    revision: Option<String>,
    prune: bool,
    automated: bool,
) -> Result<Value, (u16, String)> {
    let obj = {
        let mut st = shared.lock();
        if !automated && let Some(msg) = st.reject_sync.clone() {
            return Err((9, msg));
        }
        let Some(a) = st.apps.get_mut(app) else {
            return Err((7, "permission denied".into()));
        };
        if a.running {
            return Err((9, "another operation is already in progress".into()));
        }
        a.running = true;
        let rev = revision.unwrap_or_else(|| a.head.clone());
        let op = apps::operation_state(&rev, prune, Timestamp::now(), None, automated);
        a.obj["operation"] = op["operation"].clone();
        a.obj["status"]["operationState"] = op;
        let msg = "Waiting for rollout to finish: 0 of 2 updated replicas are available...";
        set_app_health(a, "Progressing", msg);
        a.obj.clone()
    };
    announce(shared, app, "MODIFIED");
    let shared2 = shared.clone();
    let app = app.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(shared2.op_delay).await;
        finish_operation(&shared2, &app);
    });
    Ok(obj)
}

fn finish_operation(shared: &ArgoShared, app: &str) {
    {
        let mut st = shared.lock();
        let Some(a) = st.apps.get_mut(app) else {
            return;
        };
        let now = Timestamp::now();
        let op = a.obj["status"]["operationState"].clone();
        let rev = op["operation"]["sync"]["revision"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let prune = op["operation"]["sync"]["prune"].as_bool().unwrap_or(false);
        let automated = op["operation"]["initiatedBy"]["automated"]
            .as_bool()
            .unwrap_or(false);
        let started = op["startedAt"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        a.obj["status"]["operationState"] =
            apps::operation_state(&rev, prune, started, Some(now), automated);
        if let Some(o) = a.obj.as_object_mut() {
            o.remove("operation");
        }
        let sync = if rev == a.head { "Synced" } else { "OutOfSync" };
        a.obj["status"]["sync"]["status"] = json!(sync);
        a.obj["status"]["sync"]["revision"] = json!(rev);
        let history = a.obj["status"]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let next = history
            .iter()
            .filter_map(|h| h["id"].as_i64())
            .max()
            .unwrap_or(0)
            + 1;
        let mut history = history;
        history.push(apps::history_entry(&a.spec, next, &rev, now, automated));
        let excess = history.len().saturating_sub(apps::HISTORY_LIMIT);
        history.drain(..excess);
        a.obj["status"]["history"] = json!(history);
        a.obj["status"]["reconciledAt"] = json!(apps::time(now));
        let (status, message) = (a.spec.health.0, a.spec.health.1.clone());
        set_app_health(a, status, &message);
        a.running = false;
    }
    announce(shared, app, "MODIFIED");
}

/// The path argocd-server is started with (`--rootpath=/argocd`): the UI and the REST API
/// live under it, only `/healthz` stays at the root (argo-cd `server/server.go`, `withRootPath`).
pub const ROOT_PATH: &str = "/argocd";

fn router(shared: Arc<ArgoShared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest(ROOT_PATH, api_router())
        .fallback(|| async { runtime_error(5, "Not Found") })
        .with_state(shared)
}

fn api_router() -> Router<Arc<ArgoShared>> {
    Router::new()
        .route("/api/v1/session", post(session))
        .route("/api/v1/applications", get(list))
        .route("/api/v1/applications/{name}", get(get_app))
        .route(
            "/api/v1/applications/{name}/resource-tree",
            get(resource_tree),
        )
        .route("/api/v1/applications/{name}/sync", post(sync))
        .route("/api/v1/applications/{name}/rollback", post(rollback))
        .route("/api/v1/stream/applications", get(stream))
        .route("/api/version", get(version))
        .fallback(|| async { runtime_error(5, "Not Found") })
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `runtimeError` with the HTTP status grpc-gateway maps its gRPC code to.
fn runtime_error(code: u16, message: &str) -> Response {
    let status = match code {
        3 | 9 => StatusCode::BAD_REQUEST,
        5 => StatusCode::NOT_FOUND,
        7 => StatusCode::FORBIDDEN,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_response(
        status,
        &json!({"error": message, "code": code, "message": message, "details": []}),
    )
}

/// Checks the fault switch and the bearer token (or the `argocd.token` cookie): the error
/// response to send, or `None` to go on.
fn guard(shared: &ArgoShared, headers: &HeaderMap) -> Option<Response> {
    let st = shared.lock();
    if st.fault == ArgoFault::Error500 {
        return Some(runtime_error(13, "simulated fault: internal error"));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| {
            c.split(';')
                .find_map(|kv| kv.trim().strip_prefix("argocd.token="))
                .map(str::to_string)
        });
    match bearer.or(cookie) {
        None => Some(runtime_error(16, "no session information")),
        Some(t) if t == st.api_token || st.sessions.contains(&t) => None,
        Some(_) => Some(runtime_error(
            16,
            "invalid session: token signature is invalid",
        )),
    }
}

#[derive(Deserialize)]
struct SessionRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn session(State(shared): State<Arc<ArgoShared>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<SessionRequest>(&body) else {
        return runtime_error(3, "invalid request body");
    };
    let mut st = shared.lock();
    if st.fault == ArgoFault::Error500 {
        return runtime_error(13, "simulated fault: internal error");
    }
    if req.username != "admin" || req.password != st.password {
        return runtime_error(16, "Invalid username or password");
    }
    let token = format!("sim-session-{}", random_hex(24));
    st.sessions.insert(token.clone());
    json_response(StatusCode::OK, &json!({"token": token}))
}

async fn version(State(shared): State<Arc<ArgoShared>>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    json_response(
        StatusCode::OK,
        &json!({"Version": "v2.14.8+sim", "BuildDate": "2025-03-01T00:00:00Z", "GitCommit": "sim"}),
    )
}

/// The list filters opsdeck or a person might pass: `name` and `projects`/`project`.
fn matches(q: &[(String, String)], name: &str, project: &str) -> bool {
    let names: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str())
        .collect();
    let projects: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "projects" || k == "project")
        .map(|(_, v)| v.as_str())
        .collect();
    (names.is_empty() || names.contains(&name))
        && (projects.is_empty() || projects.contains(&project))
}

async fn list(
    State(shared): State<Arc<ArgoShared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    let st = shared.lock();
    let items: Vec<&Value> = st
        .apps
        .values()
        .filter(|a| matches(&q, &a.spec.name, a.spec.project))
        .map(|a| &a.obj)
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

async fn get_app(
    State(shared): State<Arc<ArgoShared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    let refresh = q
        .iter()
        .find(|(k, _)| k == "refresh")
        .map(|(_, v)| v.clone());
    {
        let mut st = shared.lock();
        if !st.apps.contains_key(&name) {
            // Without `project`, a missing app is 403 so existence is not leaked.
            return runtime_error(7, "permission denied");
        }
        let Some(kind) = refresh else {
            return json_response(StatusCode::OK, &st.apps[&name].obj);
        };
        if kind != "normal" && kind != "hard" {
            return runtime_error(3, &format!("invalid refresh type: {kind}"));
        }
        st.refreshes.push((name.clone(), kind));
        if let Some(a) = st.apps.get_mut(&name) {
            a.obj["status"]["reconciledAt"] = json!(apps::time(Timestamp::now()));
        }
    }
    // The real server blocks until the controller has reconciled; here that is at once.
    announce(&shared, &name, "MODIFIED");
    let obj = shared.lock().apps.get(&name).map(|a| a.obj.clone());
    match obj {
        Some(o) => json_response(StatusCode::OK, &o),
        None => runtime_error(7, "permission denied"),
    }
}

async fn resource_tree(
    State(shared): State<Arc<ArgoShared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    let st = shared.lock();
    match st.apps.get(&name) {
        Some(a) => json_response(
            StatusCode::OK,
            &apps::resource_tree(shared.env, &a.spec, &a.obj),
        ),
        None => runtime_error(7, "permission denied"),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SyncRequest {
    revision: Option<String>,
    prune: bool,
    dry_run: bool,
}

async fn sync(
    State(shared): State<Arc<ArgoShared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    let req: SyncRequest = if body.is_empty() {
        SyncRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return runtime_error(3, &format!("invalid sync request: {e}")),
        }
    };
    let auto = shared
        .lock()
        .apps
        .get(&name)
        .map(|a| (a.spec.auto_sync, a.head.clone()));
    if let (Some((true, head)), Some(rev)) = (&auto, &req.revision)
        && rev != head
        && rev != "main"
    {
        return runtime_error(
            9,
            &format!("Cannot sync to {rev}: auto-sync currently set to main"),
        );
    }
    if req.dry_run {
        return match shared.lock().apps.get(&name) {
            Some(a) => json_response(StatusCode::OK, &a.obj),
            None => runtime_error(7, "permission denied"),
        };
    }
    let revision = req.revision.filter(|r| r != "main" && !r.is_empty());
    match start_operation(&shared, &name, revision, req.prune, false) {
        Ok(obj) => json_response(StatusCode::OK, &obj),
        Err((code, msg)) => runtime_error(code, &msg),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RollbackRequest {
    id: Option<Value>,
    prune: bool,
    dry_run: bool,
}

async fn rollback(
    State(shared): State<Arc<ArgoShared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    let req: RollbackRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return runtime_error(3, &format!("invalid rollback request: {e}")),
    };
    // int64 arrives as a number (or a string from proto3 JSON clients).
    let id = match &req.id {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let Some(id) = id else {
        return runtime_error(3, "rollback needs the history id");
    };
    let revision = {
        let st = shared.lock();
        let Some(a) = st.apps.get(&name) else {
            return runtime_error(7, "permission denied");
        };
        if a.spec.auto_sync {
            return runtime_error(9, "rollback cannot be initiated when auto-sync is enabled");
        }
        let found = a.obj["status"]["history"].as_array().and_then(|h| {
            h.iter()
                .find(|e| e["id"].as_i64() == Some(id))
                .and_then(|e| e["revision"].as_str().map(str::to_string))
        });
        match found {
            Some(r) => r,
            None => {
                return runtime_error(
                    3,
                    &format!("application {name} does not have deployment with id {id}"),
                );
            }
        }
    };
    if req.dry_run {
        return match shared.lock().apps.get(&name) {
            Some(a) => json_response(StatusCode::OK, &a.obj),
            None => runtime_error(7, "permission denied"),
        };
    }
    match start_operation(&shared, &name, Some(revision), req.prune, false) {
        Ok(obj) => json_response(StatusCode::OK, &obj),
        Err((code, msg)) => runtime_error(code, &msg),
    }
}

async fn stream(
    State(shared): State<Arc<ArgoShared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = guard(&shared, &headers) {
        return r;
    }
    if shared.lock().fault == ArgoFault::NoStream {
        return runtime_error(5, "Not Found");
    }
    // Subscribe before reading the initial state so no change falls between the two.
    let mut events = shared.events.subscribe();
    let mut cut = shared.cut.subscribe();
    cut.borrow_and_update();
    let named = q.iter().any(|(k, _)| k == "name");
    let with_rv = q
        .iter()
        .any(|(k, v)| k == "resourceVersion" && !v.is_empty());
    let initial: Vec<Bytes> = if named || !with_rv {
        let st = shared.lock();
        st.apps
            .values()
            .filter(|a| matches(&q, &a.spec.name, a.spec.project))
            .map(|a| {
                let mut b =
                    serde_json::to_vec(&json!({"result": {"type": "ADDED", "application": a.obj}}))
                        .unwrap_or_default();
                b.push(b'\n');
                Bytes::from(b)
            })
            .collect()
    } else {
        Vec::new()
    };
    let projects: HashSet<String> = {
        let st = shared.lock();
        st.apps
            .values()
            .map(|a| (a.spec.name.clone(), a.spec.project.to_string()))
            .filter(|(n, p)| matches(&q, n, p))
            .map(|(n, _)| n)
            .collect()
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = cut.changed() => return,
                ev = events.recv() => match ev {
                    Ok((app, line)) => {
                        if projects.contains(&app) && tx.send(line).await.is_err() {
                            return;
                        }
                    }
                    // A slow reader lost events: end the stream so it re-lists.
                    Err(_) => return,
                },
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
