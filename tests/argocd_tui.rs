//! ArgoCD actions through the reducer: the confirmation holds the exact action, a protected cluster
//! needs its name typed for a sync, a rollback is always typed, and read-only refuses.

use std::sync::Arc;

use jiff::Timestamp;
use opsdeck::app::confirm::Proof;
use opsdeck::app::{AppState, Effect, Event, update};
use opsdeck::config::{ClusterConfig, Config};
use opsdeck::keymap::{EMBEDDED, Key, Keymap};
use opsdeck::model::argocd::{
    AppSummary, ArgoAction, ArgocdSnapshot, FollowMode, Health, HistoryEntry, SyncStatus,
};
use opsdeck::runbook::run::Confirmation;
use opsdeck::sources::{FeatureData, SourceEvent, SourceUpdate};
use opsdeck::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
}

fn app(name: &str, sync: SyncStatus, health: Health) -> AppSummary {
    AppSummary {
        name: name.into(),
        project: "goapps".into(),
        sync,
        health,
        health_message: String::new(),
        revision: "e878c91d2b1f00aa".into(),
        target_revision: "main".into(),
        auto_sync: false,
        images: vec![format!("ghcr.io/goapps/{name}:v1.9.0")],
        last_synced_at: Some(now()),
        operation: None,
        conditions: vec![],
        history: (1..=3)
            .map(|id| HistoryEntry {
                id,
                revision: format!("{id:07}abcdef"),
                deployed_at: Some(now()),
            })
            .collect(),
        resources: vec![],
    }
}

fn state(read_only: bool) -> AppState {
    let config = Config {
        clusters: vec![
            ClusterConfig {
                name: "staging".into(),
                ..Default::default()
            },
            ClusterConfig {
                name: "production".into(),
                protected: true,
                read_only,
                argocd: Some(toml::Table::new()),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut s = AppState::new(&config, Keymap::parse(EMBEDDED[0].1).unwrap(), now());
    let snap = ArgocdSnapshot {
        ci_sync: String::new(),
        endpoint: "http://127.0.0.1:1".into(),
        insecure: false,
        mode: FollowMode::Stream,
        apps: vec![
            app(
                "frontend-production",
                SyncStatus::OutOfSync,
                Health::Healthy,
            ),
            app(
                "iam-service-production",
                SyncStatus::Synced,
                Health::Degraded,
            ),
        ],
    };
    update(
        &mut s,
        Event::Source(SourceEvent {
            cluster: 1,
            update: SourceUpdate::Feature(FeatureData::Argocd(Arc::new(snap))),
        }),
    );
    s
}

/// Keys one at a time, a frame drawn after each (a confirmation counts keys only once drawn).
fn keys(s: &mut AppState, seq: &[&str]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for k in seq {
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

fn proof(s: &AppState) -> Proof {
    s.confirm.as_ref().expect("a confirmation").proof.clone()
}

#[test]
fn sync_on_a_protected_cluster_needs_the_name_typed() {
    let mut s = state(false);
    assert!(keys(&mut s, &["tab", "A", "s"]).is_empty(), "s only asks");
    assert_eq!(proof(&s), Proof::Typed("production".into()));
    assert!(
        keys(&mut s, &["y", "enter"]).is_empty(),
        "y is text here, and not the name"
    );
    assert!(s.confirm.as_ref().unwrap().error.is_some());
    keys(&mut s, &["backspace"]);
    typed(&mut s, "production");
    let effects = keys(&mut s, &["enter"]);
    assert_eq!(
        effects,
        [Effect::Argocd {
            cluster: 1,
            app: "frontend-production".into(),
            action: ArgoAction::Sync { prune: false },
            confirmation: Confirmation::Typed
        }]
    );
}

#[test]
fn refresh_takes_one_key_and_rollback_is_always_typed_with_a_chosen_entry() {
    let mut s = state(false);
    keys(&mut s, &["tab", "A", "j", "u"]);
    assert_eq!(proof(&s), Proof::Key);
    let effects = keys(&mut s, &["y"]);
    assert!(
        matches!(&effects[..], [Effect::Argocd { app, action: ArgoAction::Refresh { hard: false }, confirmation: Confirmation::Key, .. }] if app == "iam-service-production")
    );
    keys(&mut s, &["b"]);
    let rollback = |s: &AppState| match &s.confirm.as_ref().unwrap().effect {
        Effect::Argocd { action, .. } => *action,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(proof(&s), Proof::Typed("production".into()));
    assert_eq!(
        rollback(&s),
        ArgoAction::Rollback { id: 2 },
        "the entry before the running one is offered first"
    );
    keys(&mut s, &["down"]);
    assert_eq!(rollback(&s), ArgoAction::Rollback { id: 1 });
    typed(&mut s, "production");
    let effects = keys(&mut s, &["enter"]);
    assert!(matches!(
        &effects[..],
        [Effect::Argocd {
            action: ArgoAction::Rollback { id: 1 },
            confirmation: Confirmation::Typed,
            ..
        }]
    ));
}

#[test]
fn read_only_refuses_sync_and_rollback_but_not_refresh() {
    let mut s = state(true);
    assert!(keys(&mut s, &["tab", "A", "s"]).is_empty());
    assert!(s.confirm.is_none());
    assert!(s.flash.as_ref().unwrap().contains("read-only"));
    assert!(keys(&mut s, &["b"]).is_empty() && s.confirm.is_none());
    keys(&mut s, &["u"]);
    assert!(
        s.confirm.is_some(),
        "refresh changes nothing in the cluster"
    );
}

#[test]
fn the_result_shows_in_the_row_and_the_view_snapshot() {
    let mut s = state(false);
    keys(&mut s, &["tab", "A"]);
    update(
        &mut s,
        Event::ArgoResult {
            cluster: 1,
            app: "frontend-production".into(),
            text: "argocd.sync accepted".into(),
        },
    );
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| render(f, &s, Theme { color: false }))
        .unwrap();
    let screen = format!("{}", term.backend());
    assert!(screen.contains("argocd.sync accepted"), "{screen}");
    insta::assert_snapshot!("argocd_view_80x24", screen);
}
