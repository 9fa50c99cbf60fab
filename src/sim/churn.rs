//! Gentle background churn of a simulated cluster: the crash-looping pod keeps
//! restarting, a Deployment pod is replaced now and then (with ReplicaSet and Deployment
//! status kept consistent with the pods), and a Pending pod appears and gets scheduled.
//! Every change goes through the store, so watches see it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::ClusterShared;
use super::seed::{self, AppSpec, PodPlacement, PodState, Seeded, WorkloadKind};
use super::store::{self, Store, now_rfc3339};

/// Seconds between restarts of the crash-looping pod.
const CRASH_EVERY: u64 = 17;
/// Seconds between pod replacements.
const ROLLOUT_EVERY: u64 = 40;
/// Seconds between new Pending pods.
const PENDING_EVERY: u64 = 60;

struct Rollout {
    app: usize,
    old: String,
    new: PodPlacement,
    started: u64,
}

struct PendingPod {
    at: PodPlacement,
    started: u64,
}

/// Where the churn is.
pub struct ChurnState {
    apps: Vec<AppSpec>,
    next_ip: usize,
    crash_pod: Option<(String, String)>,
    tick: u64,
    serial: u64,
    next_app: usize,
    rollout: Option<Rollout>,
    pending: Option<PendingPod>,
    last_pending: Option<(String, String)>,
}

impl ChurnState {
    pub fn new(store: &Store, seeded: Seeded) -> ChurnState {
        let crash_pod = store
            .list(&store::PODS, None)
            .1
            .iter()
            .find(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
            })
            .and_then(|p| {
                Some((
                    p["metadata"]["namespace"].as_str()?.to_string(),
                    p["metadata"]["name"].as_str()?.to_string(),
                ))
            });
        ChurnState {
            apps: seeded.apps,
            next_ip: seeded.next_ip,
            crash_pod,
            tick: 0,
            serial: 0,
            next_app: 0,
            rollout: None,
            pending: None,
            last_pending: None,
        }
    }
}

/// The background task: one tick a second while churn is on.
pub async fn run(shared: Arc<ClusterShared>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if shared.churn_on.load(Ordering::SeqCst) {
            tick(&shared);
        }
    }
}

fn lock(shared: &ClusterShared) -> std::sync::MutexGuard<'_, ChurnState> {
    shared.churn.lock().unwrap_or_else(|e| e.into_inner())
}

fn tick(shared: &ClusterShared) {
    let mut st = lock(shared);
    st.tick += 1;
    let t = st.tick;
    if t.is_multiple_of(CRASH_EVERY) {
        crash_restart(shared, &st);
    } else if t % CRASH_EVERY == 3 {
        crash_fail(shared, &st);
    }
    if t % ROLLOUT_EVERY == 20 && st.rollout.is_none() {
        rollout_begin(shared, &mut st);
    }
    if let Some(r) = &st.rollout {
        if t == r.started + 4 {
            rollout_ready(shared, &st);
        } else if t == r.started + 6 {
            rollout_terminate(shared, &st);
        } else if t >= r.started + 9 {
            rollout_finish(shared, &mut st);
        }
    }
    if t % PENDING_EVERY == 30 && st.pending.is_none() {
        pending_create(shared, &mut st);
    }
    if let Some(p) = &st.pending {
        if t == p.started + 4 {
            pending_advance(shared, &mut st, PodState::ContainerCreating);
        } else if t >= p.started + 7 {
            pending_advance(shared, &mut st, PodState::Running);
        }
    }
}

/// One full round of every kind of churn, for tests.
pub fn step(shared: &ClusterShared) {
    let mut st = lock(shared);
    crash_restart(shared, &st);
    crash_fail(shared, &st);
    if st.rollout.is_none() {
        rollout_begin(shared, &mut st);
    }
    rollout_ready(shared, &st);
    rollout_terminate(shared, &st);
    rollout_finish(shared, &mut st);
    if st.pending.is_none() {
        pending_create(shared, &mut st);
    }
    pending_advance(shared, &mut st, PodState::ContainerCreating);
    pending_advance(shared, &mut st, PodState::Running);
}

fn modify(shared: &ClusterShared, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
    if let Some(obj) = shared.store.get(&store::PODS, ns, name) {
        let mut v = (*obj).clone();
        f(&mut v);
        shared.store.put(&store::PODS, v);
    }
}

/// Records (or bumps the count of) an Event about a pod.
fn record(shared: &ClusterShared, ns: &str, name: &str, kind: &str, reason: &str, message: &str) {
    let Some(pod) = shared.store.get(&store::PODS, ns, name) else {
        return;
    };
    let mut ev = seed::pod_event(shared.env, &pod, kind, reason, message, 1, 0);
    let ev_name = ev["metadata"]["name"].as_str().unwrap_or("").to_string();
    if let Some(old) = shared.store.get(&store::EVENTS, ns, &ev_name) {
        ev["count"] = json!(old["count"].as_i64().unwrap_or(1) + 1);
        ev["firstTimestamp"] = old["firstTimestamp"].clone();
    }
    shared.store.put(&store::EVENTS, ev);
}

fn crash_restart(shared: &ClusterShared, st: &ChurnState) {
    let Some((ns, name)) = &st.crash_pod else {
        return;
    };
    modify(shared, ns, name, |p| {
        let cs = &mut p["status"]["containerStatuses"][0];
        let n = cs["restartCount"].as_i64().unwrap_or(0) + 1;
        cs["restartCount"] = json!(n);
        cs["state"] = json!({"running": {"startedAt": now_rfc3339()}});
        cs["started"] = json!(true);
        cs["ready"] = json!(false);
        cs["containerID"] = json!(format!(
            "containerd://{:016x}{:048x}",
            seed::hash64(&format!("{name}{n}")),
            n
        ));
    });
}

fn crash_fail(shared: &ClusterShared, st: &ChurnState) {
    let Some((ns, name)) = &st.crash_pod else {
        return;
    };
    modify(shared, ns, name, |p| {
        let container = p["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("app")
            .to_string();
        let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let cs = &mut p["status"]["containerStatuses"][0];
        let started = cs["state"]["running"]["startedAt"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(now_rfc3339);
        cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": now_rfc3339(), "containerID": cs["containerID"].clone()}});
        cs["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container={container} pod={name}_{ns}({uid})")}});
        cs["started"] = json!(false);
        cs["ready"] = json!(false);
    });
    let container = shared
        .store
        .get(&store::PODS, ns, name)
        .and_then(|p| {
            p["spec"]["containers"][0]["name"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    record(
        shared,
        ns,
        name,
        "Warning",
        "BackOff",
        &format!("Back-off restarting failed container {container} in pod {name}_{ns}"),
    );
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn app_pods(shared: &ClusterShared, app: &AppSpec) -> Vec<Arc<Value>> {
    shared
        .store
        .list(&store::PODS, Some(&app.namespace))
        .1
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app.name.as_str())
        .collect()
}

fn rollout_begin(shared: &ClusterShared, st: &mut ChurnState) {
    let n = st.apps.len();
    for k in 0..n {
        let i = (st.next_app + k) % n;
        let app = &st.apps[i];
        if app.kind != WorkloadKind::Deployment {
            continue;
        }
        let pods = app_pods(shared, app);
        if pods.is_empty() || !pods.iter().all(|p| pod_ready(p)) {
            continue;
        }
        let Some(old) = pods[0]["metadata"]["name"].as_str().map(str::to_string) else {
            continue;
        };
        let mut name;
        loop {
            st.serial += 1;
            name = format!(
                "{}-{}",
                app.replicaset_name(),
                seed::name_suffix(&format!(
                    "{}/{}/churn{}",
                    shared.env.name(),
                    app.name,
                    st.serial
                ))
            );
            if shared
                .store
                .get(&store::PODS, &app.namespace, &name)
                .is_none()
            {
                break;
            }
        }
        st.next_ip += 1;
        let at = PodPlacement {
            name,
            owner_kind: "ReplicaSet",
            owner_name: app.replicaset_name(),
            ip: seed::pod_ip(st.next_ip),
            age_s: 0,
        };
        shared.store.put(
            &store::PODS,
            seed::build_pod(shared.env, app, &at, PodState::ContainerCreating),
        );
        record(
            shared,
            &app.namespace,
            &at.name,
            "Normal",
            "Scheduled",
            &format!(
                "Successfully assigned {}/{} to {}",
                app.namespace,
                at.name,
                shared.env.node()
            ),
        );
        st.next_app = i + 1;
        st.rollout = Some(Rollout {
            app: i,
            old,
            new: at,
            started: st.tick,
        });
        recompute(shared, &st.apps[i]);
        return;
    }
}

fn rollout_ready(shared: &ClusterShared, st: &ChurnState) {
    let Some(r) = &st.rollout else { return };
    let app = &st.apps[r.app];
    let age = (st.tick.saturating_sub(r.started)) as i64;
    let at = PodPlacement {
        name: r.new.name.clone(),
        owner_kind: r.new.owner_kind,
        owner_name: r.new.owner_name.clone(),
        ip: r.new.ip.clone(),
        age_s: age,
    };
    shared.store.put(
        &store::PODS,
        seed::build_pod(shared.env, app, &at, PodState::Running),
    );
    for (reason, msg) in [
        (
            "Pulled",
            format!(
                "Container image \"{}\" already present on machine",
                app.image
            ),
        ),
        ("Created", format!("Created container: {}", app.name)),
        ("Started", format!("Started container {}", app.name)),
    ] {
        record(shared, &app.namespace, &at.name, "Normal", reason, &msg);
    }
    recompute(shared, app);
}

/// The old pod is being deleted: Terminating, no longer ready.
fn rollout_terminate(shared: &ClusterShared, st: &ChurnState) {
    let Some(r) = &st.rollout else { return };
    let app = &st.apps[r.app];
    modify(shared, &app.namespace, &r.old, |p| {
        p["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    });
    record(
        shared,
        &app.namespace,
        &r.old,
        "Normal",
        "Killing",
        &format!("Stopping container {}", app.name),
    );
}

fn rollout_finish(shared: &ClusterShared, st: &mut ChurnState) {
    let Some(r) = st.rollout.take() else { return };
    let app = &st.apps[r.app];
    shared.store.delete(&store::PODS, &app.namespace, &r.old);
    recompute(shared, app);
}

/// Brings a Deployment's and its ReplicaSet's status in line with its pods.
fn recompute(shared: &ClusterShared, app: &AppSpec) {
    let pods = app_pods(shared, app);
    let total = pods.len() as i64;
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    if let Some(dep) = shared
        .store
        .get(&store::DEPLOYMENTS, &app.namespace, &app.name)
    {
        let mut d = (*dep).clone();
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let s = &mut d["status"];
        s["replicas"] = json!(total);
        s["updatedReplicas"] = json!(total);
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(ready);
        s["unavailableReplicas"] = json!((total.max(desired) - ready).max(0));
        if let Some(conds) = s["conditions"].as_array_mut() {
            for c in conds.iter_mut().filter(|c| c["type"] == "Available") {
                let ok = ready >= desired;
                c["status"] = json!(if ok { "True" } else { "False" });
                c["reason"] = json!(if ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                });
                c["message"] = json!(if ok {
                    "Deployment has minimum availability."
                } else {
                    "Deployment does not have minimum availability."
                });
            }
        }
        shared.store.put(&store::DEPLOYMENTS, d);
    }
    if let Some(rs) = shared
        .store
        .get(&store::REPLICASETS, &app.namespace, &app.replicaset_name())
    {
        let mut r = (*rs).clone();
        r["status"]["replicas"] = json!(total);
        r["status"]["fullyLabeledReplicas"] = json!(total);
        r["status"]["readyReplicas"] = json!(ready);
        r["status"]["availableReplicas"] = json!(ready);
        shared.store.put(&store::REPLICASETS, r);
    }
}

fn pending_pod(shared: &ClusterShared, at: &PodPlacement, state: PodState) -> Value {
    let app = seed::job_app(shared.env.app_namespace(), "report-generator");
    let mut pod = seed::build_pod(shared.env, &app, at, state);
    if let Some(l) = pod["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
        l.insert("batch.kubernetes.io/job-name".into(), json!(at.owner_name));
        l.insert("job-name".into(), json!(at.owner_name));
    }
    pod
}

fn pending_create(shared: &ClusterShared, st: &mut ChurnState) {
    if let Some((ns, name)) = st.last_pending.take() {
        shared.store.delete(&store::PODS, &ns, &name);
    }
    st.serial += 1;
    st.next_ip += 1;
    let job = format!("report-generator-{}", 29_000_000 + st.serial);
    let at = PodPlacement {
        name: format!("{job}-{}", seed::name_suffix(&job)),
        owner_kind: "Job",
        owner_name: job,
        ip: seed::pod_ip(st.next_ip),
        age_s: 0,
    };
    shared.store.put(
        &store::PODS,
        pending_pod(shared, &at, PodState::Unscheduled),
    );
    record(
        shared,
        shared.env.app_namespace(),
        &at.name,
        "Warning",
        "FailedScheduling",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    );
    st.last_pending = Some((shared.env.app_namespace().to_string(), at.name.clone()));
    st.pending = Some(PendingPod {
        at,
        started: st.tick,
    });
}

fn pending_advance(shared: &ClusterShared, st: &mut ChurnState, state: PodState) {
    let Some(p) = &mut st.pending else { return };
    p.at.age_s = (st.tick.saturating_sub(p.started)) as i64;
    shared
        .store
        .put(&store::PODS, pending_pod(shared, &p.at, state));
    if state == PodState::ContainerCreating {
        let name = p.at.name.clone();
        let ns = shared.env.app_namespace();
        record(
            shared,
            ns,
            &name,
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {}", shared.env.node()),
        );
    }
    if state == PodState::Running {
        st.pending = None;
    }
}
