//! Writes to the simulated API and the controllers that react to them, so the quick actions
//! (and `kubectl`) see what a real cluster does:
//!
//! - `PATCH` (merge and strategic-merge, treated alike: maps merge, lists are replaced, `null`
//!   deletes) and `PUT` of any object. A changed pod template of a Deployment, StatefulSet or
//!   DaemonSet rolls its pods one at a time; a changed `spec.replicas` scales.
//! - `DELETE` of a pod: its controller (ReplicaSet, StatefulSet, DaemonSet) starts a
//!   replacement, ContainerCreating then Running. `DELETE` of a Job takes its pods with it.
//! - the `scale` subresource (`GET`, `PUT`, `PATCH`) of Deployments and StatefulSets.
//! - `POST` of any object; a Job gets a pod that runs and Completes.
//!
//! Every change goes through the store, so watches see it; the Deployment's, ReplicaSet's and
//! StatefulSet's status follow their pods.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::cluster::ClusterShared;
use super::seed::{self, AppSpec, PodPlacement, PodState, WorkloadKind};
use super::server::status_error;
use super::store::{self, ResourceKind, now_rfc3339};

/// How long a new pod stays ContainerCreating before it runs.
const START_DELAY: Duration = Duration::from_millis(400);
/// How long a Job's pod runs before it Completes.
const JOB_RUNTIME: Duration = Duration::from_millis(800);
/// The largest request body the simulator reads.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Names and IPs for pods the controllers create; distinct from seed and churn ones.
static SERIAL: AtomicU64 = AtomicU64::new(0);

fn next_serial() -> u64 {
    SERIAL.fetch_add(1, Ordering::Relaxed) + 1
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

/// The object path of a request: kind, namespace, name (if any) and subresource (if any).
struct Target {
    kind: &'static ResourceKind,
    ns: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (ns.to_string(), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        other => (String::new(), other.to_vec()),
    };
    let kind = store::find_kind(group, rest.first()?)?;
    if kind.namespaced == ns.is_empty() {
        return None;
    }
    Some(Target {
        kind,
        ns,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

/// Handles the writes (and the `scale` GET); gives the request back when it is not one.
pub async fn handle(shared: Arc<ClusterShared>, req: Request) -> Result<Response, Request> {
    let method = req.method().clone();
    let Some(t) = parse_target(req.uri().path()) else {
        return Err(req);
    };
    let is_scale = t.sub.as_deref() == Some("scale");
    if method == Method::GET && !is_scale {
        return Err(req);
    }
    if t.sub.is_some() && !is_scale {
        return Err(req);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return Ok(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("reading the request body: {e}"),
            ));
        }
    };
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !(body.is_empty() || media.is_empty() || media.ends_with("json")) {
        // client-go retries in JSON when protobuf (or CBOR) gets 415.
        return Ok(status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("the simulated API server reads JSON bodies only (got {media})"),
        ));
    }
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return Ok(status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("the simulator only reads JSON bodies: {e}"),
                ));
            }
        }
    };
    Ok(match (method, t.name.clone(), is_scale) {
        (Method::GET, Some(name), true) => get_scale(&shared, &t, &name),
        (Method::PUT | Method::PATCH, Some(name), true) => {
            set_scale(&shared, &t, &name, body, &content_type)
        }
        (Method::PATCH, Some(name), false) => patch(&shared, &t, &name, body, &content_type),
        (Method::PUT, Some(name), false) => replace(&shared, &t, &name, body),
        (Method::DELETE, Some(name), false) => delete(&shared, &t, &name, body.as_ref()),
        (Method::POST, None, false) => create(&shared, &t, body),
        (m, _, _) => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("the simulated API server does not serve {m} here"),
        ),
    })
}

fn not_found(t: &Target, name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", t.kind.plural),
    )
}

/// RFC 7386 merge: maps merge recursively, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (_, Some(p)) => {
            let mut fresh = Value::Object(Default::default());
            merge(&mut fresh, &Value::Object(p.clone()));
            *target = fresh;
        }
        _ => *target = patch.clone(),
    }
}

/// `Some(415 response)` unless the patch is a merge or strategic-merge patch.
fn check_patch_type(content_type: &str) -> Option<Response> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => None,
        _ => Some(status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the simulator applies merge and strategic-merge patches only (got {ct:?}); use --type=merge or --type=strategic"
            ),
        )),
    }
}

fn patch(
    shared: &Arc<ClusterShared>,
    t: &Target,
    name: &str,
    body: Option<Value>,
    content_type: &str,
) -> Response {
    if let Some(r) = check_patch_type(content_type) {
        return r;
    }
    let Some(old) = shared.store.get(t.kind, &t.ns, name) else {
        return not_found(t, name);
    };
    let mut new = (*old).clone();
    merge(&mut new, &body.unwrap_or(Value::Null));
    // Identity is not patchable.
    new["metadata"]["name"] = json!(name);
    if t.kind.namespaced {
        new["metadata"]["namespace"] = json!(t.ns);
    }
    apply_update(shared, t.kind, &old, new, None)
}

fn replace(shared: &Arc<ClusterShared>, t: &Target, name: &str, body: Option<Value>) -> Response {
    let Some(old) = shared.store.get(t.kind, &t.ns, name) else {
        return not_found(t, name);
    };
    let Some(mut new) = body.filter(Value::is_object) else {
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", "PUT needs an object");
    };
    if new["metadata"]["name"].as_str() != Some(name) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the name of the object does not match the name on the URL ({name})"),
        );
    }
    if t.kind.namespaced {
        new["metadata"]["namespace"] = json!(t.ns);
    }
    if new.get("status").is_none() {
        new["status"] = old["status"].clone();
    }
    // A resourceVersion in the body makes the replace conditional, as on a real API server
    // (optimistic concurrency); without one it is an unconditional update.
    let expected = new["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty())
        .map(str::to_string);
    apply_update(shared, t.kind, &old, new, expected.as_deref())
}

/// The real API server's 409 for a write based on a stale resourceVersion.
fn conflict(t: &Target, name: &str, why: &str) -> Response {
    let group = if t.kind.group.is_empty() {
        String::new()
    } else {
        format!(".{}", t.kind.group)
    };
    status_error_with(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {}{group} \"{name}\": {why}",
            t.kind.plural
        ),
        json!({"name": name, "group": t.kind.group, "kind": t.kind.plural}),
    )
}

fn status_error_with(code: StatusCode, reason: &str, message: &str, details: Value) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code.as_u16()}),
    )
}

const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// Stores an updated object and lets its controller react to what changed.
fn apply_update(
    shared: &Arc<ClusterShared>,
    kind: &'static ResourceKind,
    old: &Value,
    mut new: Value,
    expected: Option<&str>,
) -> Response {
    let spec_changed = old["spec"] != new["spec"];
    if spec_changed {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    // The store fills the resourceVersion in; a stale one in the body is not a conflict here.
    if let Some(m) = new["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    let template_changed = old["spec"]["template"] != new["spec"]["template"];
    let replicas_changed = old["spec"]["replicas"] != new["spec"]["replicas"];
    let name = new["metadata"]["name"].as_str().unwrap_or("").to_string();
    let expect = match expected {
        Some(rv) => store::Expect::Version(rv),
        None => store::Expect::Anything,
    };
    let stored = match shared.store.put_expecting(kind, new, expect) {
        Ok(stored) => stored,
        Err(store::Refusal::Missing) => {
            return status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} \"{name}\" not found", kind.plural),
            );
        }
        Err(_) => {
            let t = Target {
                kind,
                ns: String::new(),
                name: None,
                sub: None,
            };
            return conflict(&t, &name, MODIFIED);
        }
    };
    if let Some(w) = workload_kind(kind) {
        let ns = stored["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = stored["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if template_changed {
            spawn_rollout(shared.clone(), w, ns.clone(), name.clone());
        } else if replicas_changed {
            reconcile_replicas(shared, w, &ns, &name);
        } else {
            sync_status(shared, w, &ns, &name);
        }
    }
    json_response(StatusCode::OK, &stored)
}

fn workload_kind(kind: &ResourceKind) -> Option<WorkloadKind> {
    match kind.plural {
        "deployments" if kind.group == "apps" => Some(WorkloadKind::Deployment),
        "statefulsets" if kind.group == "apps" => Some(WorkloadKind::StatefulSet),
        "daemonsets" if kind.group == "apps" => Some(WorkloadKind::DaemonSet),
        _ => None,
    }
}

fn kind_of(w: WorkloadKind) -> &'static ResourceKind {
    match w {
        WorkloadKind::Deployment => &store::DEPLOYMENTS,
        WorkloadKind::StatefulSet => &store::STATEFULSETS,
        WorkloadKind::DaemonSet => &store::DAEMONSETS,
    }
}

// ---------------------------------------------------------------------------------------------
// scale

fn scale_object(obj: &Value, kind: &ResourceKind) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
        "_kind": kind.kind,
    })
}

fn scalable(t: &Target) -> Option<WorkloadKind> {
    workload_kind(t.kind).filter(|w| *w != WorkloadKind::DaemonSet)
}

fn get_scale(shared: &Arc<ClusterShared>, t: &Target, name: &str) -> Response {
    if scalable(t).is_none() {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    match shared.store.get(t.kind, &t.ns, name) {
        Some(obj) => json_response(StatusCode::OK, &strip(scale_object(&obj, t.kind))),
        None => not_found(t, name),
    }
}

fn strip(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("_kind");
    }
    v
}

fn set_scale(
    shared: &Arc<ClusterShared>,
    t: &Target,
    name: &str,
    body: Option<Value>,
    content_type: &str,
) -> Response {
    if scalable(t).is_none() {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let Some(old) = shared.store.get(t.kind, &t.ns, name) else {
        return not_found(t, name);
    };
    let body = body.unwrap_or(Value::Null);
    let replicas = if content_type.contains("patch") {
        if let Some(r) = check_patch_type(content_type) {
            return r;
        }
        let mut scale = scale_object(&old, t.kind);
        merge(&mut scale, &body);
        scale["spec"]["replicas"].as_i64()
    } else {
        body["spec"]["replicas"].as_i64()
    };
    let Some(replicas) = replicas.filter(|r| *r >= 0) else {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "spec.replicas must be a number of at least 0",
        );
    };
    let mut new = (*old).clone();
    new["spec"]["replicas"] = json!(replicas);
    let _ = apply_update(shared, t.kind, &old, new, None);
    match shared.store.get(t.kind, &t.ns, name) {
        Some(obj) => json_response(StatusCode::OK, &strip(scale_object(&obj, t.kind))),
        None => not_found(t, name),
    }
}

// ---------------------------------------------------------------------------------------------
// create and delete

fn create(shared: &Arc<ClusterShared>, t: &Target, body: Option<Value>) -> Response {
    let Some(mut obj) = body.filter(Value::is_object) else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "POST needs an object",
        );
    };
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        match obj["metadata"]["generateName"].as_str() {
            Some(g) => {
                obj["metadata"]["name"] = json!(format!(
                    "{g}{}",
                    seed::name_suffix(&format!("gen{}", next_serial()))
                ))
            }
            None => {
                return status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                );
            }
        }
    }
    if t.kind.namespaced {
        obj["metadata"]["namespace"] = json!(t.ns);
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("uid");
        m.remove("creationTimestamp");
    }
    obj["metadata"]["generation"] = json!(1);
    let is_job = t.kind.plural == "jobs" && t.kind.group == "batch";
    if is_job {
        obj["status"] =
            json!({"startTime": now_rfc3339(), "active": 1, "ready": 0, "terminating": 0});
    }
    // Checked under the store's lock: of two racing creates, exactly one wins.
    let stored = match shared
        .store
        .put_expecting(t.kind, obj, store::Expect::Absent)
    {
        Ok(stored) => stored,
        Err(_) => {
            let group = if t.kind.group.is_empty() {
                String::new()
            } else {
                format!(".{}", t.kind.group)
            };
            return status_error_with(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{}{group} \"{name}\" already exists", t.kind.plural),
                json!({"name": name, "group": t.kind.group, "kind": t.kind.plural}),
            );
        }
    };
    if is_job {
        start_job(shared.clone(), &stored);
    }
    json_response(StatusCode::CREATED, &stored)
}

fn delete(
    shared: &Arc<ClusterShared>,
    t: &Target,
    name: &str,
    options: Option<&Value>,
) -> Response {
    let pre = options.map(|o| &o["preconditions"]);
    let field = |k: &str| {
        pre.and_then(|p| p[k].as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let pre = store::Preconditions {
        resource_version: field("resourceVersion"),
        uid: field("uid"),
    };
    let old = match shared.store.delete_expecting(t.kind, &t.ns, name, &pre) {
        Ok(old) => old,
        Err(store::Refusal::Conflict { stored }) => {
            let want = pre.resource_version.as_deref().unwrap_or("");
            return conflict(
                t,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {stored}"
                ),
            );
        }
        Err(store::Refusal::UidMismatch { stored }) => {
            let want = pre.uid.as_deref().unwrap_or("");
            return conflict(
                t,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {stored}"
                ),
            );
        }
        Err(_) => return not_found(t, name),
    };
    if t.kind.plural == "pods" && t.kind.group.is_empty() {
        record(shared, &old, "Normal", "Killing", "Stopping container");
        replace_pod(shared, &old);
    }
    if t.kind.plural == "jobs" {
        for p in pods_owned_by(shared, &t.ns, "Job", name) {
            let pname = p["metadata"]["name"].as_str().unwrap_or("").to_string();
            shared.store.delete(&store::PODS, &t.ns, &pname);
        }
    }
    let mut gone = (*old).clone();
    gone["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
    json_response(StatusCode::OK, &gone)
}

// ---------------------------------------------------------------------------------------------
// controllers

/// The fleet's description of a workload, from the seed (or the filler's shape).
fn app_spec(shared: &ClusterShared, ns: &str, name: &str) -> Option<AppSpec> {
    if let Some(a) = seed::apps(shared.env)
        .into_iter()
        .find(|a| a.namespace == ns && a.name == name)
    {
        return Some(a);
    }
    let filler = seed::filler_app(1);
    (filler.namespace == ns && filler.name == name).then_some(filler)
}

fn owner(pod: &Value) -> Option<(String, String)> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .and_then(|o| {
            Some((
                o["kind"].as_str()?.to_string(),
                o["name"].as_str()?.to_string(),
            ))
        })
}

fn pods_owned_by(shared: &ClusterShared, ns: &str, kind: &str, name: &str) -> Vec<Arc<Value>> {
    shared
        .store
        .list(&store::PODS, Some(ns))
        .1
        .into_iter()
        .filter(|p| owner(p).is_some_and(|(k, n)| k == kind && n == name))
        .collect()
}

/// The live (not terminating) pods of a workload, by its instance label.
fn app_pods(shared: &ClusterShared, app: &AppSpec) -> Vec<Arc<Value>> {
    shared
        .store
        .list(&store::PODS, Some(&app.namespace))
        .1
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == app.name.as_str()
                && p["metadata"]["deletionTimestamp"].is_null()
                && owner(p).is_some_and(|(k, _)| k != "Job")
        })
        .collect()
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Records (or bumps) an Event about a pod.
fn record(shared: &ClusterShared, pod: &Value, kind: &str, reason: &str, message: &str) {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut ev = seed::pod_event(shared.env, pod, kind, reason, message, 1, 0);
    let ev_name = ev["metadata"]["name"].as_str().unwrap_or("").to_string();
    if let Some(old) = shared.store.get(&store::EVENTS, ns, &ev_name) {
        ev["count"] = json!(old["count"].as_i64().unwrap_or(1) + 1);
        ev["firstTimestamp"] = old["firstTimestamp"].clone();
    }
    shared.store.put(&store::EVENTS, ev);
}

/// A pod of `app` in `state`, carrying the workload's current template annotations.
fn pod_for(
    shared: &ClusterShared,
    app: &AppSpec,
    at: &PodPlacement,
    state: PodState,
    workload: &Value,
) -> Value {
    let mut pod = seed::build_pod(shared.env, app, at, state);
    if let Some(ann) = workload["spec"]["template"]["metadata"]["annotations"].as_object() {
        for (k, v) in ann {
            pod["metadata"]["annotations"][k] = v.clone();
        }
    }
    pod
}

fn new_placement(shared: &ClusterShared, app: &AppSpec, w: WorkloadKind) -> PodPlacement {
    let n = next_serial();
    let (owner_kind, owner_name) = match w {
        WorkloadKind::Deployment => ("ReplicaSet", app.replicaset_name()),
        WorkloadKind::StatefulSet => ("StatefulSet", app.name.clone()),
        WorkloadKind::DaemonSet => ("DaemonSet", app.name.clone()),
    };
    let prefix = match w {
        WorkloadKind::Deployment => app.replicaset_name(),
        _ => app.name.clone(),
    };
    PodPlacement {
        name: format!(
            "{prefix}-{}",
            seed::name_suffix(&format!("{}/{}/write{n}", shared.env.name(), app.name))
        ),
        owner_kind,
        owner_name,
        ip: seed::pod_ip(5_000 + n as usize),
        age_s: 0,
    }
}

/// Creates a pod ContainerCreating now and Running after [`START_DELAY`].
fn start_pod(shared: Arc<ClusterShared>, app: AppSpec, w: WorkloadKind, at: PodPlacement) {
    let workload = shared
        .store
        .get(kind_of(w), &app.namespace, &app.name)
        .map(|v| (*v).clone())
        .unwrap_or(Value::Null);
    let pod = pod_for(&shared, &app, &at, PodState::ContainerCreating, &workload);
    let stored = shared.store.put(&store::PODS, pod);
    record(
        &shared,
        &stored,
        "Normal",
        "Scheduled",
        &format!(
            "Successfully assigned {}/{} to {}",
            app.namespace,
            at.name,
            shared.env.node()
        ),
    );
    sync_status(&shared, w, &app.namespace, &app.name);
    tokio::spawn(async move {
        tokio::time::sleep(START_DELAY).await;
        // Deleted meanwhile (scaled down again): leave it gone.
        if shared
            .store
            .get(&store::PODS, &app.namespace, &at.name)
            .is_none()
        {
            return;
        }
        let workload = shared
            .store
            .get(kind_of(w), &app.namespace, &app.name)
            .map(|v| (*v).clone())
            .unwrap_or(Value::Null);
        let stored = shared.store.put(
            &store::PODS,
            pod_for(&shared, &app, &at, PodState::Running, &workload),
        );
        record(
            &shared,
            &stored,
            "Normal",
            "Started",
            &format!("Started container {}", app.name),
        );
        sync_status(&shared, w, &app.namespace, &app.name);
    });
}

/// A deleted pod's controller starts its replacement (StatefulSet pods keep their name).
fn replace_pod(shared: &Arc<ClusterShared>, old: &Value) {
    let Some((kind, owner_name)) = owner(old) else {
        return;
    };
    let ns = old["metadata"]["namespace"].as_str().unwrap_or("");
    let Some(app_name) = old["metadata"]["labels"]["app"].as_str() else {
        return;
    };
    let w = match kind.as_str() {
        "ReplicaSet" => WorkloadKind::Deployment,
        "StatefulSet" => WorkloadKind::StatefulSet,
        "DaemonSet" => WorkloadKind::DaemonSet,
        _ => return,
    };
    let Some(app) = app_spec(shared, ns, app_name) else {
        return;
    };
    let mut at = new_placement(shared, &app, w);
    if w == WorkloadKind::StatefulSet {
        at.name = old["metadata"]["name"].as_str().unwrap_or("").to_string();
        at.owner_name = owner_name;
    }
    start_pod(shared.clone(), app, w, at);
}

/// Adds or removes pods until the workload has `spec.replicas` of them.
fn reconcile_replicas(shared: &Arc<ClusterShared>, w: WorkloadKind, ns: &str, name: &str) {
    let Some(obj) = shared.store.get(kind_of(w), ns, name) else {
        return;
    };
    let Some(app) = app_spec(shared, ns, name) else {
        sync_status(shared, w, ns, name);
        return;
    };
    let want = obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mut pods = app_pods(shared, &app);
    if w == WorkloadKind::StatefulSet {
        let ordinal = |p: &Value| {
            p["metadata"]["name"]
                .as_str()
                .and_then(|n| n.rsplit('-').next())
                .and_then(|o| o.parse::<usize>().ok())
                .unwrap_or(0)
        };
        pods.sort_by_key(|p| ordinal(p));
        let have: Vec<usize> = pods.iter().map(|p| ordinal(p)).collect();
        for i in 0..want {
            if !have.contains(&i) {
                let mut at = new_placement(shared, &app, w);
                at.name = format!("{name}-{i}");
                start_pod(shared.clone(), app.clone(), w, at);
            }
        }
        for p in pods.iter().filter(|p| ordinal(p) >= want) {
            remove_pod(shared, p);
        }
    } else if pods.len() < want {
        for _ in pods.len()..want {
            let at = new_placement(shared, &app, w);
            start_pod(shared.clone(), app.clone(), w, at);
        }
    } else {
        // Not-ready pods go first, then the youngest, as the ReplicaSet controller picks.
        pods.sort_by(|a, b| {
            pod_ready(a).cmp(&pod_ready(b)).then_with(|| {
                b["metadata"]["creationTimestamp"]
                    .as_str()
                    .cmp(&a["metadata"]["creationTimestamp"].as_str())
            })
        });
        for p in pods.iter().take(pods.len() - want) {
            remove_pod(shared, p);
        }
    }
    sync_status(shared, w, ns, name);
}

fn remove_pod(shared: &ClusterShared, p: &Value) {
    let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
    let name = p["metadata"]["name"].as_str().unwrap_or("");
    record(shared, p, "Normal", "Killing", "Stopping container");
    shared.store.delete(&store::PODS, ns, name);
}

/// Replaces a workload's pods one at a time: new pod up, then the old one goes.
fn spawn_rollout(shared: Arc<ClusterShared>, w: WorkloadKind, ns: String, name: String) {
    let Some(app) = app_spec(&shared, &ns, &name) else {
        sync_status(&shared, w, &ns, &name);
        return;
    };
    tokio::spawn(async move {
        let old: Vec<String> = app_pods(&shared, &app)
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        for old_name in old {
            let Some(old_pod) = shared.store.get(&store::PODS, &ns, &old_name) else {
                continue;
            };
            if w == WorkloadKind::StatefulSet {
                // Same name: the old one goes first.
                remove_pod(&shared, &old_pod);
                let mut at = new_placement(&shared, &app, w);
                at.name = old_name.clone();
                start_pod(shared.clone(), app.clone(), w, at);
                tokio::time::sleep(START_DELAY * 2).await;
                continue;
            }
            let at = new_placement(&shared, &app, w);
            start_pod(shared.clone(), app.clone(), w, at);
            tokio::time::sleep(START_DELAY + Duration::from_millis(100)).await;
            let mut terminating = (*old_pod).clone();
            terminating["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            terminating["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            shared.store.put(&store::PODS, terminating);
            tokio::time::sleep(Duration::from_millis(100)).await;
            remove_pod(&shared, &old_pod);
            sync_status(&shared, w, &ns, &name);
        }
        sync_status(&shared, w, &ns, &name);
    });
}

/// Brings a workload's (and a Deployment's ReplicaSet's) status in line with its pods.
fn sync_status(shared: &ClusterShared, w: WorkloadKind, ns: &str, name: &str) {
    let Some(obj) = shared.store.get(kind_of(w), ns, name) else {
        return;
    };
    let pods: Vec<Arc<Value>> = match app_spec(shared, ns, name) {
        Some(app) => app_pods(shared, &app),
        None => return,
    };
    let total = pods.len() as i64;
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut o = (*obj).clone();
    let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = o["metadata"]["generation"].clone();
    let s = &mut o["status"];
    s["observedGeneration"] = generation;
    match w {
        WorkloadKind::Deployment => {
            s["replicas"] = json!(total);
            s["updatedReplicas"] = json!(total);
            s["readyReplicas"] = json!(ready);
            s["availableReplicas"] = json!(ready);
            s["unavailableReplicas"] = json!((total.max(desired) - ready).max(0));
            let ok = ready >= desired;
            if let Some(conds) = s["conditions"].as_array_mut() {
                for c in conds.iter_mut() {
                    if c["type"] == "Available" {
                        c["status"] = json!(if ok { "True" } else { "False" });
                        c["reason"] = json!(if ok {
                            "MinimumReplicasAvailable"
                        } else {
                            "MinimumReplicasUnavailable"
                        });
                    } else if c["type"] == "Progressing" {
                        c["lastUpdateTime"] = json!(now_rfc3339());
                    }
                }
            }
        }
        WorkloadKind::StatefulSet => {
            s["replicas"] = json!(total);
            s["currentReplicas"] = json!(total);
            s["updatedReplicas"] = json!(total);
            s["readyReplicas"] = json!(ready);
            s["availableReplicas"] = json!(ready);
        }
        WorkloadKind::DaemonSet => {
            s["currentNumberScheduled"] = json!(total);
            s["desiredNumberScheduled"] = json!(total);
            s["numberReady"] = json!(ready);
            s["numberAvailable"] = json!(ready);
            s["updatedNumberScheduled"] = json!(total);
        }
    }
    if o["status"] != obj["status"] {
        shared.store.put(kind_of(w), o);
    }
    if w == WorkloadKind::Deployment
        && let Some(app) = app_spec(shared, ns, name)
        && let Some(rs) = shared
            .store
            .get(&store::REPLICASETS, ns, &app.replicaset_name())
    {
        let mut r = (*rs).clone();
        r["spec"]["replicas"] = json!(desired);
        r["status"]["replicas"] = json!(total);
        r["status"]["fullyLabeledReplicas"] = json!(total);
        r["status"]["readyReplicas"] = json!(ready);
        r["status"]["availableReplicas"] = json!(ready);
        if r != *rs {
            shared.store.put(&store::REPLICASETS, r);
        }
    }
}

/// A new Job's pod: Running now, Completed after [`JOB_RUNTIME`], then the Job is Complete.
fn start_job(shared: Arc<ClusterShared>, job: &Value) {
    let ns = job["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let job_name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let job_uid = job["metadata"]["uid"].clone();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let cname = container["name"].as_str().unwrap_or("job").to_string();
    let image = container["image"]
        .as_str()
        .unwrap_or("busybox:latest")
        .to_string();
    let app = AppSpec {
        namespace: ns.clone(),
        name: cname.clone(),
        kind: WorkloadKind::Deployment,
        replicas: 1,
        image: image.clone(),
        ports: Vec::new(),
        component: "batch",
        part_of: "batch",
        volumes: Vec::new(),
        services: Vec::new(),
        pull_policy: "IfNotPresent",
        cpu: "100m",
        memory: "128Mi",
        pod_template_hash: seed::template_hash(&job_name),
    };
    let n = next_serial();
    let at = PodPlacement {
        name: format!(
            "{job_name}-{}",
            seed::name_suffix(&format!("{job_name}{n}"))
        ),
        owner_kind: "Job",
        owner_name: job_name.clone(),
        ip: seed::pod_ip(5_000 + n as usize),
        age_s: 0,
    };
    let shape = |state: PodState| -> Value {
        let mut pod = seed::build_pod(shared.env, &app, &at, state);
        let labels = &mut pod["metadata"]["labels"];
        if let Some(l) = labels.as_object_mut() {
            l.remove("pod-template-hash");
        }
        if let Some(tl) = job["spec"]["template"]["metadata"]["labels"].as_object() {
            for (k, v) in tl {
                labels[k] = v.clone();
            }
        }
        labels["batch.kubernetes.io/job-name"] = json!(job_name);
        labels["job-name"] = json!(job_name);
        labels["batch.kubernetes.io/controller-uid"] = job_uid.clone();
        pod["metadata"]["ownerReferences"][0]["uid"] = job_uid.clone();
        if let Some(cmd) = container.get("command") {
            pod["spec"]["containers"][0]["command"] = cmd.clone();
        }
        pod
    };
    let running = shared.store.put(&store::PODS, shape(PodState::Running));
    record(
        &shared,
        &running,
        "Normal",
        "Started",
        &format!("Started container {cname}"),
    );
    let job_ns = ns.clone();
    let pod_name = at.name.clone();
    let succeeded = shape(PodState::Succeeded);
    tokio::spawn(async move {
        tokio::time::sleep(JOB_RUNTIME).await;
        if shared.store.get(&store::PODS, &ns, &pod_name).is_some() {
            shared.store.put(&store::PODS, succeeded);
        }
        let Some(job) = shared.store.get(&store::JOBS, &job_ns, &job_name) else {
            return;
        };
        let mut j = (*job).clone();
        let now = now_rfc3339();
        j["status"] = json!({
            "startTime": j["status"]["startTime"].clone(),
            "completionTime": now, "succeeded": 1, "active": 0, "ready": 0, "terminating": 0,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
            ]
        });
        shared.store.put(&store::JOBS, j);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_merges_maps_and_deletes_nulls() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn targets_parse_from_paths() {
        let t = parse_target("/apis/apps/v1/namespaces/ns/deployments/web/scale").unwrap();
        assert_eq!(t.kind.plural, "deployments");
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("scale"));
        let t = parse_target("/api/v1/namespaces/ns/pods").unwrap();
        assert!(t.name.is_none());
        assert!(parse_target("/api/v1/namespaces/ns/nothing").is_none());
    }

    #[test]
    fn query_free_helpers_do_not_panic_on_odd_objects() {
        assert!(owner(&json!({})).is_none());
        assert!(!pod_ready(&json!({"status": {}})));
    }
}
