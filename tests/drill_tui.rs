//! The drill-down through the reducer: enter opens the pods table, `/` filters, `s` sorts,
//! deleting a pod on a protected cluster needs the typed name, read-only refuses.

use std::sync::Arc;

use jiff::Timestamp;
use opsdeck::app::{AppState, Effect, Event, View, update};
use opsdeck::config::{ClusterConfig, Config};
use opsdeck::drill::actions::QuickActionKind;
use opsdeck::keymap::{EMBEDDED, Key, Keymap};
use opsdeck::model::kube::Phase;
use opsdeck::model::{KubeSnapshot, PodReason, PodSummary};
use opsdeck::runbook::run::Confirmation;
use opsdeck::sources::{SourceEvent, SourceUpdate};

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
}

fn pod(ns: &str, name: &str, reason: Option<PodReason>, app: &str) -> Arc<PodSummary> {
    Arc::new(PodSummary {
        namespace: ns.into(),
        name: name.into(),
        phase: Phase::Running,
        ready: reason.is_none(),
        crashloop: reason == Some(PodReason::CrashLoopBackOff),
        reason,
        restarts: if reason.is_some() { 12 } else { 0 },
        created: Some(now()),
        node: Some("prod-vps".into()),
        labels: vec![("app".into(), app.into())],
    })
}

fn state(read_only: bool) -> AppState {
    let config = Config {
        clusters: vec![ClusterConfig {
            name: "production".into(),
            protected: true,
            read_only,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut s = AppState::new(&config, Keymap::parse(EMBEDDED[0].1).unwrap(), now());
    let pods = vec![
        pod("database", "postgres-0", None, "postgres"),
        pod(
            "goapps-production",
            "finance-service-abc",
            None,
            "finance-service",
        ),
        pod(
            "goapps-production",
            "iam-service-xyz",
            Some(PodReason::CrashLoopBackOff),
            "iam-service",
        ),
    ];
    let snap = Arc::new(KubeSnapshot::new(pods, vec![], vec![]));
    update(
        &mut s,
        Event::Source(SourceEvent {
            cluster: 0,
            update: SourceUpdate::Kube(snap),
        }),
    );
    s
}

/// Keys one at a time, a frame drawn after each (a confirmation counts keys only once drawn).
fn keys(s: &mut AppState, seq: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for k in seq.split(' ') {
        effects.extend(update(s, Event::Key(k.parse().unwrap())));
        update(s, Event::Drawn);
    }
    effects
}

fn typed(s: &mut AppState, text: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in text.chars() {
        effects.extend(update(s, Event::Key(Key::ch(c))));
        update(s, Event::Drawn);
    }
    effects
}

#[test]
fn enter_opens_pods_unhealthy_first_and_filter_narrows_by_label() {
    let mut s = state(false);
    keys(&mut s, "enter");
    assert_eq!(s.view, View::Pods(0));
    let p = s.drill.pods.as_ref().unwrap();
    assert_eq!(
        p.table.selected_pod().unwrap().name,
        "iam-service-xyz",
        "unhealthy first"
    );
    keys(&mut s, "/");
    typed(&mut s, "app=finance-service");
    keys(&mut s, "enter");
    let p = s.drill.pods.as_ref().unwrap();
    assert!(p.editing.is_none());
    assert_eq!(p.table.len(), 1);
    assert_eq!(p.table.selected_pod().unwrap().name, "finance-service-abc");
    let effects = keys(&mut s, "enter");
    assert!(
        matches!(&effects[..], [Effect::FetchPod { name, .. }] if name == "finance-service-abc")
    );
    assert_eq!(s.view, View::Pod);
    keys(&mut s, "esc");
    assert_eq!(s.view, View::Pods(0));
    keys(&mut s, "esc");
    assert_eq!(s.view, View::Overview);
}

#[test]
fn deleting_a_pod_on_a_protected_cluster_needs_the_typed_name() {
    let mut s = state(false);
    keys(&mut s, "enter");
    assert!(keys(&mut s, "D").is_empty());
    assert!(s.confirm.as_ref().unwrap().typed());
    assert!(
        keys(&mut s, "y enter").is_empty(),
        "y is text, not a confirmation"
    );
    keys(&mut s, "backspace");
    typed(&mut s, "production");
    let effects = keys(&mut s, "enter");
    match &effects[..] {
        [
            Effect::Quick {
                action,
                confirmation: Confirmation::Typed,
            },
        ] => {
            assert!(
                matches!(&action.kind, QuickActionKind::DeletePod { name, .. } if name == "iam-service-xyz")
            );
            assert_eq!(action.cluster, "production");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn read_only_refuses_quick_actions() {
    let mut s = state(true);
    keys(&mut s, "enter");
    assert!(keys(&mut s, "D").is_empty());
    assert!(s.confirm.is_none());
    assert!(s.flash.as_ref().unwrap().contains("read-only"));
}

#[test]
fn logs_open_from_the_table_and_stop_when_left() {
    let mut s = state(false);
    keys(&mut s, "enter");
    let effects = keys(&mut s, "l");
    let generation = match &effects[..] {
        [
            Effect::StartLogs {
                pod,
                previous: false,
                generation,
                ..
            },
        ] if pod == "iam-service-xyz" => *generation,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(s.view, View::Logs);
    update(
        &mut s,
        Event::Log {
            generation,
            event: opsdeck::drill::logs::LogEvent::Line("panic: boom".into()),
        },
    );
    update(
        &mut s,
        Event::Log {
            generation: generation + 7,
            event: opsdeck::drill::logs::LogEvent::Line("stale stream".into()),
        },
    );
    let lines: Vec<String> = s
        .drill
        .logs
        .as_ref()
        .unwrap()
        .buffer
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        ["panic: boom"],
        "lines of another stream are ignored"
    );
    assert_eq!(keys(&mut s, "esc"), [Effect::StopLogs { generation }]);
}

/// The confirm box wraps a long action instead of cutting it: at 80x24 the whole target,
/// down to the cluster's name, is on screen.
#[test]
fn a_long_action_wraps_in_the_confirm_box_at_80x24() {
    let mut s = state(false);
    let long = "iam-service-7d9f8b6c5d-x2x4q-canary-rollout-generated-name";
    let pods = vec![pod(
        "goapps-production",
        long,
        Some(PodReason::CrashLoopBackOff),
        "iam-service",
    )];
    update(
        &mut s,
        Event::Source(SourceEvent {
            cluster: 0,
            update: SourceUpdate::Kube(Arc::new(KubeSnapshot::new(pods, vec![], vec![]))),
        }),
    );
    keys(&mut s, "enter");
    keys(&mut s, "D");
    let mut term =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).expect("terminal");
    term.draw(|f| opsdeck::ui::render(f, &s, opsdeck::ui::Theme { color: false }))
        .expect("draw");
    let buf = term.backend().buffer();
    let text: String = (0..24)
        .map(|y| {
            (0..80)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The box's inside, its rows run together and spaces dropped (wrapping may break a word).
    let inside: String = text
        .lines()
        .filter(|l| l.contains('│'))
        .map(|l| l.split('│').nth(1).unwrap_or(""))
        .collect::<String>()
        .replace(' ', "");
    assert!(
        inside.contains(long)
            && inside.contains("cluster production[PROD]".replace(' ', "").as_str())
            && inside.contains("Typeproduction"),
        "{text}"
    );
    let confirm = s.confirm.as_ref().expect("the confirmation");
    assert!(confirm.typed());
}
