//! `opsdeck status`: the same picture as the console, once, as text or as the JSON in
//! interfaces.md, with exit codes 0 (ok), 1 (warnings), 2 (critical findings).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, ClusterView, Event, update};
use crate::config::Config;
use crate::keymap::Keymap;
use crate::model::{Severity, age_secs, format_age};
use crate::sources;

/// Runs every cluster's sources until each has given its first complete answer (or failed),
/// or until `timeout`; returns the resulting state.
pub async fn collect(config: &Config, timeout: Duration) -> AppState {
    let mut state = AppState::new(config, Keymap::default(), Timestamp::now());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    sources::spawn_all(config, &tx, &cancel);
    drop(tx);
    let deadline = tokio::time::Instant::now() + timeout;
    let waiting = |s: &AppState| {
        s.clusters.iter().any(|c| {
            c.reachable.is_none()
                || !c.pgbouncer.answered()
                || !c.redis.answered()
                || !c.argocd.answered()
                || !c.backups.answered()
        })
    };
    while waiting(&state) {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let Some(ev) = ev else { break };
        update(&mut state, Event::Source(ev));
    }
    cancel.cancel();
    let now = Timestamp::now();
    update(&mut state, Event::Tick(now));
    for c in &mut state.clusters {
        if c.reachable.is_none() {
            c.mark_no_answer(timeout, now);
        }
        if !c.pgbouncer.answered() {
            c.pgbouncer.no_answer = Some(timeout);
        }
        if !c.redis.answered() {
            c.redis.no_answer = Some(timeout);
        }
        if !c.argocd.answered() {
            c.argocd.no_answer = Some(timeout);
        }
        if !c.backups.answered() {
            c.backups.no_answer = Some(timeout);
        }
        c.refresh_findings(now);
    }
    state
}

/// The exit code for a collected picture.
pub fn exit_code(state: &AppState) -> i32 {
    match state.clusters.iter().filter_map(ClusterView::worst).max() {
        Some(Severity::Crit) => 2,
        Some(Severity::Warn) => 1,
        None => 0,
    }
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `status --json` document (schema 1, interfaces.md).
pub fn to_json(state: &AppState) -> Value {
    let clusters: Vec<Value> = state
        .clusters
        .iter()
        .map(|c| cluster_json(c, state.now))
        .collect();
    json!({"schema": 1, "generated_at": ts(state.now), "clusters": clusters})
}

fn cluster_json(c: &ClusterView, now: Timestamp) -> Value {
    let reachable = c.reachable == Some(true);
    let mut obj = json!({
        "name": c.name, "context": c.context, "protected": c.protected, "reachable": reachable,
    });
    // The Kubernetes source's own `stale`, the same shape as a feature's: why the cluster's
    // picture is not current (a stalled or failing API), and since when.
    if let Some(s) = &c.kube_stale {
        obj["stale"] = json!({"since": ts(s.since), "reason": s.reason});
    }
    if reachable && let Some(snap) = &c.kube {
        let k = &snap.counts;
        let unhealthy: Vec<Value> = snap
            .unhealthy_pods()
            .map(|p| {
                json!({"namespace": p.namespace, "name": p.name, "reason": p.reason.map(|r| r.as_str()),
                       "restarts": p.restarts, "age_s": p.age_s(now)})
            })
            .collect();
        obj["pods"] = json!({"total": k.total, "running": k.running, "pending": k.pending, "failed": k.failed,
            "succeeded": k.succeeded, "ready": k.ready, "crashloop": k.crashloop, "restarts": k.restarts,
            "unhealthy": unhealthy});
        let degraded: Vec<Value> = snap
            .degraded_workloads()
            .map(|w| json!({"kind": w.kind, "namespace": w.namespace, "name": w.name, "desired": w.desired, "available": w.available}))
            .collect();
        obj["workloads"] = json!({"degraded": degraded});
        let not_ready: Vec<&str> = snap
            .nodes
            .iter()
            .filter(|n| !n.ready)
            .map(|n| n.name.as_str())
            .collect();
        let pressure: Vec<Value> = snap
            .nodes
            .iter()
            .filter(|n| !n.pressure.is_empty())
            .map(|n| json!({"name": n.name, "conditions": n.pressure}))
            .collect();
        obj["nodes"] =
            json!({"total": snap.nodes.len(), "not_ready": not_ready, "pressure": pressure});
    }
    panel_json(
        &mut obj,
        "pgbouncer",
        &c.pgbouncer,
        crate::model::pgbouncer::to_json,
    );
    panel_json(&mut obj, "redis", &c.redis, crate::model::redis::to_json);
    panel_json(
        &mut obj,
        "backups",
        &c.backups,
        crate::model::backups::to_json,
    );
    panel_json(&mut obj, "argocd", &c.argocd, crate::model::argocd::to_json);
    let findings: Vec<Value> = c
        .findings
        .iter()
        .map(|f| json!({"severity": f.severity, "source": f.source, "message": f.message, "since": ts(f.since)}))
        .collect();
    obj["findings"] = Value::Array(findings);
    obj
}

/// A configured panel's data, with `stale` when its last poll failed (interfaces.md); absent
/// when not configured.
fn panel_json<T>(
    obj: &mut Value,
    key: &str,
    panel: &crate::app::state::Panel<T>,
    to_json: fn(&T) -> Value,
) {
    if !panel.configured {
        return;
    }
    let mut v = panel
        .data
        .as_deref()
        .map(to_json)
        .unwrap_or_else(|| json!({}));
    if let Some(s) = &panel.stale {
        v["stale"] = json!({"since": ts(s.since), "reason": s.reason});
    } else if panel.data.is_none() && panel.no_answer.is_some() {
        v["stale"] = json!({"since": ts(jiff::Timestamp::now()), "reason": "no answer in time"});
    }
    obj[key] = v;
}

/// The same picture as plain text, for a terminal or a chat message.
pub fn to_text(state: &AppState) -> String {
    let mut out = String::new();
    for c in &state.clusters {
        let prod = if c.protected { " [PROD]" } else { "" };
        let verdict = match c.worst() {
            Some(s) => s.label(),
            None => "OK",
        };
        let api = if c.reachable == Some(true) {
            "API ok"
        } else {
            "API unreachable"
        };
        out.push_str(&format!(
            "{}{prod} (context {}): {verdict}, {api}\n",
            c.name, c.context
        ));
        if c.reachable == Some(true)
            && let Some(snap) = &c.kube
        {
            let k = &snap.counts;
            out.push_str(&format!(
                "  pods {} (running {}, pending {}, failed {}, succeeded {}), ready {}, crashloop {}, restarts {}\n",
                k.total, k.running, k.pending, k.failed, k.succeeded, k.ready, k.crashloop, k.restarts
            ));
            for p in snap.unhealthy_pods() {
                let age = p.age_s(state.now).map(format_age).unwrap_or_default();
                let reason = p.reason.map_or("", |r| r.as_str());
                out.push_str(&format!(
                    "    {reason:<16} {}/{} restarts {} age {age}\n",
                    p.namespace, p.name, p.restarts
                ));
            }
            for w in snap.degraded_workloads() {
                out.push_str(&format!(
                    "  {} {}/{}: {}/{} available\n",
                    w.kind, w.namespace, w.name, w.available, w.desired
                ));
            }
            let troubled: Vec<_> = snap.troubled_nodes().collect();
            if troubled.is_empty() {
                out.push_str(&format!("  nodes {}: all Ready\n", snap.nodes.len()));
            }
            for n in troubled {
                out.push_str(&format!(
                    "  node {}: ready={} pressure={}\n",
                    n.name,
                    n.ready,
                    n.pressure.join(",")
                ));
            }
        }
        for f in &c.findings {
            let age = format_age(age_secs(state.now, f.since));
            out.push_str(&format!(
                "  {} [{}] {} (since {age})\n",
                f.severity.label(),
                f.source,
                f.message
            ));
        }
    }
    out
}
