//! The HTTP face of one simulated cluster: the subset of the Kubernetes API that kube-rs
//! watchers and `kubectl` use (discovery, list with selectors and paging, watch with
//! bookmarks and 410 Expired, get, pod logs, server-side Tables), plus fault injection.
//! Writes and the scale subresource are in `write.rs`, `pods/exec` in `exec.rs`.
//!
//! Requests are routed by hand from the path so every kind in [`store::KINDS`] gets the
//! same list/watch/get machinery; later endpoints can be merged into [`router`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Fault;
use super::cluster::ClusterShared;
use super::logs;
use super::store::{self, FieldSelector, LabelSelector, ResourceKind, Since};
use super::table::{self, IncludeObject};
use serde_json::value::RawValue;

/// The router serving one cluster.
pub fn router(shared: Arc<ClusterShared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut resp = serialized_response(body);
    *resp.status_mut() = code;
    resp
}

fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

/// An error answered as a `Status` object.
pub fn status_error(code: StatusCode, reason: &str, message: &str) -> Response {
    json_response(code, &status_body(code.as_u16(), reason, message, None))
}

fn not_found(kind: &ResourceKind, name: &str) -> Response {
    let body = status_body(
        404,
        "NotFound",
        &format!("{}{} \"{name}\" not found", kind.plural, group_suffix(kind)),
        Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
    );
    json_response(StatusCode::NOT_FOUND, &body)
}

/// The answer to a request reaching a killed (or refusing) server over a connection it had
/// open: an error, and the connection closes.
fn server_down() -> Response {
    let mut resp = status_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the simulated API server is down",
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn group_suffix(kind: &ResourceKind) -> String {
    if kind.group.is_empty() {
        String::new()
    } else {
        format!(".{}", kind.group)
    }
}

async fn handle(State(shared): State<Arc<ClusterShared>>, req: Request) -> Response {
    if !shared.up.load(std::sync::atomic::Ordering::SeqCst) {
        return server_down();
    }
    shared.record_request(format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    ));
    match shared.fault() {
        Fault::Error500 => {
            return status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "Internal error occurred: simulated fault (Error500)",
            );
        }
        Fault::Stall => {
            let mut cut = shared.cut.subscribe();
            let _ = cut.changed().await;
            return status_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "simulated stall ended",
            );
        }
        _ => {}
    }
    if super::portforward::matches(
        &req.uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>(),
    )
    .is_some()
    {
        return super::portforward::handle(shared, req).await;
    }
    let exec_target = {
        let segs: Vec<&str> = req
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        super::exec::matches(&segs).map(|(ns, pod)| (ns.to_string(), pod.to_string()))
    };
    if let Some((ns, pod)) = exec_target {
        return super::exec::handle(shared, req, &ns, &pod).await;
    }
    // Writes (PATCH, PUT, POST, DELETE) and the scale subresource: see `write.rs`.
    let req = match super::write::handle(shared.clone(), req).await {
        Ok(resp) => return resp,
        Err(req) => req,
    };
    if req.method() != Method::GET {
        return status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!(
                "the simulated API server only serves GET (got {})",
                req.method()
            ),
        );
    }
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    route(&shared, &segs, &query, &accept).await
}

async fn route(
    shared: &Arc<ClusterShared>,
    segs: &[&str],
    q: &HashMap<String, String>,
    accept: &str,
) -> Response {
    match segs {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.4+k3s1", "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2025-04-22T00:00:00Z", "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ),
        ["apis"] => json_response(StatusCode::OK, &group_list()),
        ["api", "v1"] => json_response(StatusCode::OK, &resource_list("", "v1")),
        ["apis", g] => match store::groups().into_iter().find(|(gr, _)| gr == g) {
            Some((g, v)) => json_response(StatusCode::OK, &group(g, v)),
            None => unknown_path(),
        },
        ["apis", g, v] if store::groups().iter().any(|(gr, ve)| gr == g && ve == v) => {
            json_response(StatusCode::OK, &resource_list(g, v))
        }
        ["api", "v1", rest @ ..] => resource(shared, "", rest, q, accept).await,
        ["apis", g, v, rest @ ..] if store::groups().iter().any(|(gr, ve)| gr == g && ve == v) => {
            resource(shared, g, rest, q, accept).await
        }
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        _ => unknown_path(),
    }
}

fn unknown_path() -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn group(g: &str, v: &str) -> Value {
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
        "versions": [{"groupVersion": format!("{g}/{v}"), "version": v}],
        "preferredVersion": {"groupVersion": format!("{g}/{v}"), "version": v}})
}

fn group_list() -> Value {
    let groups: Vec<Value> = store::groups()
        .into_iter()
        .map(|(g, v)| {
            let mut x = group(g, v);
            if let Some(m) = x.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            x
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(g: &str, v: &str) -> Value {
    let mut resources = Vec::new();
    for k in store::KINDS
        .iter()
        .filter(|k| k.group == g && k.version == v)
    {
        let mut r = json!({"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": k.short_names});
        if k.plural == "pods"
            || k.plural == "deployments"
            || k.plural == "statefulsets"
            || k.plural == "daemonsets"
            || k.plural == "services"
        {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        if k.plural == "pods" {
            resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
            resources.push(json!({"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]}));
        }
        if k.plural == "deployments" || k.plural == "statefulsets" {
            resources.push(json!({"name": format!("{}/scale", k.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

async fn resource(
    shared: &Arc<ClusterShared>,
    group: &str,
    rest: &[&str],
    q: &HashMap<String, String>,
    accept: &str,
) -> Response {
    let lookup = |plural: &str| store::find_kind(group, plural);
    match rest {
        [plural] => match lookup(plural) {
            Some(kind) => collection(shared, kind, None, q, accept).await,
            None => unknown_path(),
        },
        // `/api/v1/namespaces/{name}` is a get of a cluster-scoped object, like any other.
        [plural, name] => match lookup(plural) {
            Some(kind) if !kind.namespaced => single(shared, kind, "", name, q, accept),
            _ => unknown_path(),
        },
        ["namespaces", ns, plural] => match lookup(plural) {
            Some(kind) if kind.namespaced => collection(shared, kind, Some(ns), q, accept).await,
            _ => unknown_path(),
        },
        ["namespaces", ns, plural, name] => match lookup(plural) {
            Some(kind) if kind.namespaced => single(shared, kind, ns, name, q, accept),
            _ => unknown_path(),
        },
        ["namespaces", ns, "pods", name, "log"] if group.is_empty() => pod_log(shared, ns, name, q),
        _ => unknown_path(),
    }
}

fn is_true(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn single(
    shared: &Arc<ClusterShared>,
    kind: &'static ResourceKind,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
    accept: &str,
) -> Response {
    match shared.store.get(kind, ns, name) {
        None => not_found(kind, name),
        Some(obj) if table::wants_table(accept) => {
            let include = IncludeObject::parse(q.get("includeObject").map(String::as_str));
            let rv = obj["metadata"]["resourceVersion"].clone();
            json_response(
                StatusCode::OK,
                &table::table(kind, &[&obj], include, true, json!({"resourceVersion": rv})),
            )
        }
        Some(obj) => json_response(StatusCode::OK, &obj),
    }
}

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn parse_filter(q: &HashMap<String, String>) -> Result<Filter, String> {
    Ok(Filter {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
    })
}

async fn collection(
    shared: &Arc<ClusterShared>,
    kind: &'static ResourceKind,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    accept: &str,
) -> Response {
    let filter = match parse_filter(q) {
        Ok(f) => f,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let table_mode = table::wants_table(accept)
        .then(|| IncludeObject::parse(q.get("includeObject").map(String::as_str)));
    if is_true(q, "watch") {
        return watch(
            shared.clone(),
            kind,
            ns.map(str::to_string),
            filter,
            q,
            table_mode,
        );
    }
    list(shared, kind, ns, filter, q, table_mode)
}

fn list(
    shared: &Arc<ClusterShared>,
    kind: &'static ResourceKind,
    ns: Option<&str>,
    filter: Filter,
    q: &HashMap<String, String>,
    table_mode: Option<IncludeObject>,
) -> Response {
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (rv, items, offset) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let parsed = token
                .split_once(':')
                .and_then(|(id, off)| Some((id.parse::<u64>().ok()?, off.parse::<usize>().ok()?)));
            match parsed.and_then(|(id, off)| {
                shared
                    .store
                    .snapshot(id)
                    .map(|(rv, items)| (rv, items, off, id))
            }) {
                Some((rv, items, off, _)) => (rv, items, off),
                None => {
                    return status_error(
                        StatusCode::GONE,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    );
                }
            }
        }
        None => {
            let (rv, all) = shared.store.list(kind, ns);
            let items: Vec<Arc<Value>> = all.into_iter().filter(|o| filter.matches(o)).collect();
            (rv, Arc::new(items), 0)
        }
    };
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    let page: Vec<&Value> = items
        .get(offset.min(items.len())..end)
        .unwrap_or_default()
        .iter()
        .map(|a| &**a)
        .collect();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if end < items.len() {
        let id = match q
            .get("continue")
            .and_then(|c| c.split_once(':'))
            .and_then(|(id, _)| id.parse::<u64>().ok())
        {
            Some(id) => id,
            None => shared.store.keep_snapshot(rv, items.clone()),
        };
        metadata["continue"] = json!(format!("{id}:{end}"));
        metadata["remainingItemCount"] = json!(items.len() - end);
    }
    match table_mode {
        Some(include) => json_response(
            StatusCode::OK,
            &table::table(kind, &page, include, true, metadata),
        ),
        // Serialised from the stored objects by reference: `json!` would deep-copy every
        // object of the page into a new tree first (most of the cost of a 3.45 MB page).
        None => {
            let encoded: Vec<_> = page.iter().map(|o| shared.store.encoded(o)).collect();
            serialized_response(&ListBody {
                kind: format!("{}List", kind.kind),
                api_version: kind.api_version(),
                metadata,
                items: encoded.iter().map(|e| &**e).collect(),
            })
        }
    }
}

/// A `*List` body borrowing the stored objects.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a RawValue>,
}

/// A watch event borrowing its object.
#[derive(serde::Serialize)]
struct EventBody<'a, T: serde::Serialize + ?Sized> {
    #[serde(rename = "type")]
    event_type: &'a str,
    object: &'a T,
}

fn serialized_response<T: serde::Serialize>(body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A watch event line; `object` is a stored object's encoding or a built one (bookmark, error).
fn event_line<T: serde::Serialize + ?Sized>(event_type: &str, object: &T) -> Bytes {
    let mut v = serde_json::to_vec(&EventBody { event_type, object }).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn watch(
    shared: Arc<ClusterShared>,
    kind: &'static ResourceKind,
    ns: Option<String>,
    filter: Filter,
    q: &HashMap<String, String>,
    table_mode: Option<IncludeObject>,
) -> Response {
    let since = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0);
    let bookmarks = is_true(q, "allowWatchBookmarks");
    let initial_events_end = bookmarks && is_true(q, "sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    // Subscribed now, then checked: a kill between the request's arrival and here ends
    // this watch (the cut is seen) or refuses it (down already).
    let mut cut = shared.cut.subscribe();
    cut.borrow_and_update();
    if !shared.up.load(std::sync::atomic::Ordering::SeqCst) {
        return server_down();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let _ = watch_task(
            shared,
            cut,
            kind,
            ns,
            filter,
            since,
            bookmarks,
            initial_events_end,
            timeout,
            table_mode,
            tx,
        )
        .await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The interval between BOOKMARK events on watches that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// How long a new watch lives while `Fault::DropWatches` is on.
const DROPPED_WATCH_LIFETIME: Duration = Duration::from_secs(2);

#[allow(clippy::too_many_arguments)]
async fn watch_task(
    shared: Arc<ClusterShared>,
    mut cut: tokio::sync::watch::Receiver<u64>,
    kind: &'static ResourceKind,
    ns: Option<String>,
    filter: Filter,
    since: Option<u64>,
    bookmarks: bool,
    initial_events_end: bool,
    timeout: Option<Duration>,
    table_mode: Option<IncludeObject>,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    let mut changed = shared.store.subscribe();
    changed.borrow_and_update();
    let now = tokio::time::Instant::now();
    let far = now + Duration::from_secs(86_400 * 365);
    let mut deadline = timeout.map_or(far, |t| now + t);
    if shared.fault() == Fault::DropWatches {
        deadline = deadline.min(now + DROPPED_WATCH_LIFETIME);
    }
    let mut first_table = true;
    let encode = |event_type: &str, obj: &Value, first_table: &mut bool| -> Bytes {
        match table_mode {
            Some(include) => {
                let t = table::table(
                    kind,
                    &[obj],
                    include,
                    *first_table,
                    json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                );
                *first_table = false;
                event_line(event_type, &t)
            }
            None => event_line(event_type, &*shared.store.encoded(obj)),
        }
    };
    let in_scope = |obj: &Value| -> bool {
        let ns_ok = match &ns {
            Some(n) => obj["metadata"]["namespace"].as_str() == Some(n.as_str()),
            None => true,
        };
        ns_ok && filter.matches(obj)
    };
    let mut last = match since {
        Some(n) => n,
        None => {
            // No resourceVersion: start with the current state as synthetic ADDED events.
            let (rv, items) = shared.store.list(kind, ns.as_deref());
            for obj in items.iter().filter(|o| filter.matches(o)) {
                tx.send(encode("ADDED", obj, &mut first_table)).await?;
            }
            if initial_events_end {
                // Streaming list (`sendInitialEvents=true`): mark the end of the initial state.
                let obj = json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {
                    "resourceVersion": rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
                tx.send(event_line("BOOKMARK", &obj)).await?;
            }
            rv
        }
    };
    let mut bookmark_tick = tokio::time::interval_at(now + BOOKMARK_EVERY, BOOKMARK_EVERY);
    loop {
        let (since, rv) = shared.store.events_since(kind, last);
        match since {
            Since::Expired => {
                let status = status_body(
                    410,
                    "Expired",
                    &format!("too old resource version: {last} ({rv})"),
                    None,
                );
                tx.send(event_line("ERROR", &status)).await?;
                return Ok(());
            }
            Since::Events(events) => {
                for e in events {
                    if in_scope(&e.object) {
                        tx.send(encode(e.event_type.as_str(), &e.object, &mut first_table))
                            .await?;
                    }
                }
                last = last.max(rv);
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return Ok(()) },
            _ = cut.changed() => return Ok(()),
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = bookmark_tick.tick(), if bookmarks => {
                let obj = json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {"resourceVersion": last.to_string()}});
                tx.send(event_line("BOOKMARK", &obj)).await?;
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

fn pod_log(
    shared: &Arc<ClusterShared>,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Response {
    let Some(pod) = shared.store.get(&store::PODS, ns, name) else {
        return not_found(&store::PODS, name);
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match q.get("container") {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("container {c} is not valid for pod {name}"),
            );
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {name}, choose one of: {containers:?}"
                ),
            );
        }
    };
    let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str();
    if matches!(
        waiting,
        Some("ImagePullBackOff" | "ErrImagePull" | "ContainerCreating")
    ) || pod["status"]["phase"] == "Pending" && waiting.is_none()
    {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {}",
                waiting.unwrap_or("ContainerCreating")
            ),
        );
    }
    let previous = is_true(q, "previous");
    let restarted = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .and_then(|c| c["restartCount"].as_i64())
        .is_some_and(|n| n > 0);
    if previous && !restarted {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("previous terminated container \"{container}\" in pod \"{name}\" not found"),
        );
    }
    let tail = q.get("tailLines").and_then(|t| t.parse::<usize>().ok());
    let lines = logs::snapshot(&pod, &container, previous, tail);
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let follow = is_true(q, "follow") && !previous;
    let body = if follow {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let shared = shared.clone();
        let (ns, name) = (ns.to_string(), name.to_string());
        let mut cut = shared.cut.subscribe();
        cut.borrow_and_update();
        tokio::spawn(async move {
            if tx.send(Bytes::from(text)).await.is_err() {
                return;
            }
            let mut seq = 1000u64;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = cut.changed() => return,
                    _ = tx.closed() => return,
                }
                if shared.store.get(&store::PODS, &ns, &name).is_none() {
                    return;
                }
                seq += 1;
                let mut l = logs::line(&container, seq, 0);
                l.push('\n');
                if tx.send(Bytes::from(l)).await.is_err() {
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
        });
        Body::from_stream(stream)
    } else {
        Body::from(text)
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
