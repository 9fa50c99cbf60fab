//! Confirmations that mean it: one overlay holding the exact effect it emits, armed only once
//! drawn, `y` for a plain step, typed names where a slip would hurt, the whole command
//! reachable, read-only refusing edited commands, the target as the executor exports it, and
//! quitting while a step runs asking first. Events and keys in, effects and screens out.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use opsdeck::app::confirm::Proof;
use opsdeck::app::{AppState, Effect, Event, View, update};
use opsdeck::config::{ClusterConfig, Config};
use opsdeck::drill::actions::QuickActionKind;
use opsdeck::drill::workloads::WorkloadRow;
use opsdeck::keymap::{EMBEDDED, Key, Keymap};
use opsdeck::model::argocd::{
    AppSummary, ArgoAction, ArgocdSnapshot, FollowMode, Health, HistoryEntry, SyncStatus,
};
use opsdeck::runbook::parse;
use opsdeck::runbook::run::Confirmation;
use opsdeck::runbook::session::{RunCommand, RunEvent};
use opsdeck::sources::{FeatureData, SourceEvent, SourceUpdate};
use opsdeck::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const RB: &str = "---
title: Confirm test runbook
---
## Look
```sh {name=look}
echo look
```
## Change
```sh {name=change destructive=true}
echo changed
```
";

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
}

fn config(read_only_prod: bool) -> Config {
    Config {
        clusters: vec![
            ClusterConfig {
                name: "staging".into(),
                context: Some("ctx-in-config".into()),
                ..Default::default()
            },
            ClusterConfig {
                name: "production".into(),
                protected: true,
                read_only: read_only_prod,
                argocd: Some(toml::Table::new()),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn state_with(config: &Config, runbook: &str) -> AppState {
    let mut s = AppState::new(config, Keymap::parse(EMBEDDED[0].1).unwrap(), now());
    s.runbooks = vec![Arc::new(parse::parse("confirm", runbook).unwrap())];
    s
}

fn state() -> AppState {
    state_with(&config(false), RB)
}

fn key(s: &str) -> Event {
    Event::Key(s.parse().unwrap())
}

/// Keys one at a time, the loop drawing a frame after each (as it does at human speed).
fn press(s: &mut AppState, seq: &[&str]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for k in seq {
        effects.extend(update(s, key(k)));
        update(s, Event::Drawn);
    }
    effects
}

/// Keys in one burst: nothing is drawn between them.
fn burst(s: &mut AppState, seq: &[&str]) -> Vec<Effect> {
    seq.iter().flat_map(|k| update(s, key(k))).collect()
}

fn typed(s: &mut AppState, text: &str) -> Vec<Effect> {
    let effects = text
        .chars()
        .flat_map(|c| update(s, Event::Key(Key::ch(c))))
        .collect();
    update(s, Event::Drawn);
    effects
}

/// What the executor reports for a run on `cluster`: its exported variables.
fn executor_vars(s: &mut AppState, cluster: &str, context: &str) {
    let shown: BTreeMap<String, String> = [
        ("CLUSTER", cluster),
        ("CONTEXT", context),
        ("KUBECONFIG", "/root/.kube/config"),
        ("APP_NAMESPACE", ""),
        ("DB_PASSWORD", "***"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    update(s, Event::Run(RunEvent::Vars { shown }));
    update(s, Event::Drawn);
}

fn steps(effects: &[Effect]) -> Vec<&RunCommand> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Runbook(c @ RunCommand::Step { .. }) => Some(c),
            _ => None,
        })
        .collect()
}

fn draw(s: &AppState, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| render(f, s, Theme { color: false })).unwrap();
    let buf = term.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_double_enter_opens_a_step_confirmation_but_never_confirms_it() {
    let mut s = state();
    press(&mut s, &["r", "enter"]);
    assert_eq!(s.view, View::Runbook);
    let effects = burst(&mut s, &["enter", "enter"]);
    assert!(steps(&effects).is_empty(), "{effects:?}");
    assert!(
        s.confirm.is_some(),
        "the first enter opened the confirmation"
    );
    // The run's target arrives and the overlay is drawn: now enter still does not run it...
    executor_vars(&mut s, "staging", "ctx-in-config");
    assert!(steps(&press(&mut s, &["enter"])).is_empty());
    assert!(s.confirm.is_some());
    // ...and `y` runs exactly the step shown, once.
    let effects = press(&mut s, &["y"]);
    match &steps(&effects)[..] {
        [
            RunCommand::Step {
                index: 0,
                cluster: 0,
                command,
                confirmation: Confirmation::Key,
                ..
            },
        ] => assert_eq!(command, "echo look\n"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(effects.len(), 1);
    assert!(s.confirm.is_none());
}

#[test]
fn keys_typed_before_any_confirmation_is_drawn_are_dropped() {
    // ArgoCD: the refresh key and a `y` in one burst send nothing.
    let mut s = argo_state();
    press(&mut s, &["tab", "A"]);
    assert!(burst(&mut s, &["u", "y"]).is_empty());
    assert!(s.confirm.is_some());
    update(&mut s, Event::Drawn);
    assert!(matches!(
        &press(&mut s, &["y"])[..],
        [Effect::Argocd {
            action: ArgoAction::Refresh { hard: false },
            confirmation: Confirmation::Key,
            ..
        }]
    ));
    // A quick action on an unprotected cluster: `x` then `y` in one burst restarts nothing.
    let mut s = workloads_state(false, 3);
    assert!(burst(&mut s, &["x", "y"]).is_empty());
    assert!(s.confirm.is_some());
    update(&mut s, Event::Drawn);
    assert!(matches!(
        &press(&mut s, &["y"])[..],
        [Effect::Quick {
            confirmation: Confirmation::Key,
            ..
        }]
    ));
}

fn workloads_state(protected: bool, replicas: i32) -> AppState {
    let mut cfg = config(false);
    cfg.clusters[0].protected = protected;
    let mut s = state_with(&cfg, RB);
    press(&mut s, &["W"]);
    update(
        &mut s,
        Event::WorkloadsLoaded {
            cluster: 0,
            result: Ok(vec![WorkloadRow {
                kind: "Deployment",
                namespace: "goapps-staging".into(),
                name: "iam-service".into(),
                desired: replicas,
                available: replicas,
                last_rollout: None,
                images: vec![],
                schedule: String::new(),
            }]),
        },
    );
    s
}

fn scale_effect(effects: &[Effect]) -> Option<(i32, Confirmation)> {
    match effects {
        [
            Effect::Quick {
                action,
                confirmation,
            },
        ] => match action.kind {
            QuickActionKind::Scale { to, .. } => Some((to, *confirmation)),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn scale_to_zero_needs_the_workloads_name_typed() {
    let mut s = workloads_state(false, 3);
    press(&mut s, &["+", "0", "enter"]);
    let c = s
        .confirm
        .as_ref()
        .expect("the confirmation of a scale to 0");
    assert_eq!(c.proof, Proof::Typed("iam-service".into()));
    assert!(press(&mut s, &["y", "enter"]).is_empty(), "y is text here");
    press(&mut s, &["backspace"]);
    typed(&mut s, "staging");
    assert!(
        press(&mut s, &["enter"]).is_empty(),
        "the cluster's name is not the workload's"
    );
    for _ in 0.."staging".len() {
        press(&mut s, &["backspace"]);
    }
    typed(&mut s, "iam-service");
    assert_eq!(
        scale_effect(&press(&mut s, &["enter"])),
        Some((0, Confirmation::Typed))
    );
    let screen = draw(&s, 80, 24);
    assert!(!screen.contains("Scale "), "the overlay closed:\n{screen}");

    // Scaling to another count takes one key.
    let mut s = workloads_state(false, 3);
    press(&mut s, &["+", "5", "enter"]);
    assert_eq!(s.confirm.as_ref().unwrap().proof, Proof::Key);
    assert_eq!(
        scale_effect(&press(&mut s, &["y"])),
        Some((5, Confirmation::Key))
    );
}

#[test]
fn scale_to_zero_on_a_protected_cluster_needs_the_clusters_name() {
    let mut s = workloads_state(true, 2);
    press(&mut s, &["+", "0", "enter"]);
    assert_eq!(
        s.confirm.as_ref().unwrap().proof,
        Proof::Typed("staging".into())
    );
    let screen = draw(&s, 80, 24);
    assert!(
        screen.contains("from 2 to 0") && screen.contains("Type staging"),
        "{screen}"
    );
    typed(&mut s, "iam-service");
    assert!(press(&mut s, &["enter"]).is_empty());
    for _ in 0.."iam-service".len() {
        press(&mut s, &["backspace"]);
    }
    typed(&mut s, "staging");
    assert_eq!(
        scale_effect(&press(&mut s, &["enter"])),
        Some((0, Confirmation::Typed))
    );
}

#[test]
fn the_whole_command_of_a_40_line_step_is_reachable_by_scrolling_at_80x24() {
    let body: String = (1..=40).map(|i| format!("echo line-{i:02}\n")).collect();
    let rb = format!("---\ntitle: Long\n---\n## Long\n```sh {{name=long}}\n{body}```\n");
    let mut s = state_with(&config(false), &rb);
    press(&mut s, &["r", "enter", "enter"]);
    executor_vars(&mut s, "staging", "ctx-in-config");
    let screen = draw(&s, 80, 24);
    assert!(screen.contains("line-01"), "{screen}");
    assert!(!screen.contains("line-40"), "{screen}");
    assert!(
        screen.contains("cluster  staging ") && screen.contains("y run"),
        "the target and the keys stay in view:\n{screen}"
    );
    insta::assert_snapshot!("step_confirmation_80x24_top", screen);
    press(&mut s, &["pgdown", "pgdown", "pgdown", "pgdown", "pgdown"]);
    let screen = draw(&s, 80, 24);
    assert!(screen.contains("line-40"), "{screen}");
    assert!(
        screen.contains("cluster  staging ") && screen.contains("y run"),
        "{screen}"
    );
    // j/k (the keymap's scroll keys) move one line from where the view stopped (paging past
    // the end does not leave keys to undo): five up and line-40 leaves, one down and it is back.
    press(&mut s, &["k", "k", "k", "k", "k"]);
    assert!(!draw(&s, 80, 24).contains("line-40"));
    press(&mut s, &["j"]);
    assert!(draw(&s, 80, 24).contains("line-40"));
    press(&mut s, &["g"]);
    assert!(draw(&s, 80, 24).contains("line-01"));
    press(&mut s, &["G"]);
    assert!(draw(&s, 80, 24).contains("DB_PASSWORD=***"));
    assert_eq!(steps(&press(&mut s, &["y"])).len(), 1);
}

#[test]
fn read_only_refuses_an_edited_command_and_still_runs_the_plain_step() {
    for global in [true, false] {
        let mut s = state_with(&config(!global), RB);
        s.read_only = global;
        if !global {
            press(&mut s, &["tab"]);
        }
        press(&mut s, &["r", "enter"]);
        let cluster = if global { "staging" } else { "production" };
        // The editor does not open...
        press(&mut s, &["e"]);
        assert!(s.modal.is_none() && s.confirm.is_none());
        let notice = s.run.as_ref().unwrap().notice.clone().unwrap_or_default();
        assert!(
            notice.contains("read-only") && notice.contains("edited") && notice.contains(cluster),
            "{notice}"
        );
        // ...and an edited text handed to the request is refused all the same.
        let effects = opsdeck::app::runbooks::request_run(&mut s, Some("rm -rf /srv\n".into()));
        assert!(effects.is_empty() && s.confirm.is_none(), "{effects:?}");
        assert!(
            s.run
                .as_ref()
                .unwrap()
                .notice
                .as_ref()
                .unwrap()
                .contains("nothing was run"),
            "{:?}",
            s.run.as_ref().unwrap().notice
        );
        assert!(s.run.as_ref().unwrap().edited.is_empty());
        // The plain, unedited step still runs.
        press(&mut s, &["enter"]);
        executor_vars(&mut s, cluster, "ctx");
        let effects = press(&mut s, &["y"]);
        assert!(
            matches!(&steps(&effects)[..], [RunCommand::Step { command, .. }] if command == "echo look\n"),
            "{effects:?}"
        );
    }
}

#[test]
fn the_confirmation_shows_the_context_the_executor_reported() {
    let mut s = state();
    press(&mut s, &["r", "enter"]);
    let effects = press(&mut s, &["enter"]);
    assert!(
        matches!(
            &effects[..],
            [Effect::Runbook(RunCommand::SetVars { cluster: 0, values, .. })] if values.is_empty()
        ),
        "the console asks the executor for the run's variables: {effects:?}"
    );
    // Until it answers, the confirmation names no target and cannot be accepted.
    let screen = draw(&s, 80, 24);
    assert!(
        screen.contains("not known yet")
            && screen.contains("Preparing the run")
            && !screen.contains("Run this step?"),
        "{screen}"
    );
    assert!(steps(&press(&mut s, &["y"])).is_empty());
    // A late report of another cluster's run is not this run's target.
    executor_vars(&mut s, "production", "prod-ctx");
    assert!(!draw(&s, 80, 24).contains("prod-ctx"));
    executor_vars(&mut s, "staging", "ctx-the-step-gets");
    let screen = draw(&s, 80, 24);
    assert!(
        screen.contains("context ctx-the-step-gets") && !screen.contains("ctx-in-config"),
        "{screen}"
    );
    assert!(
        screen.contains("DB_PASSWORD=***") && screen.contains("KUBECONFIG=/root/.kube/config"),
        "{screen}"
    );
    assert_eq!(steps(&press(&mut s, &["y"])).len(), 1);
}

#[test]
fn a_destructive_step_shows_the_reported_target_and_needs_its_name() {
    let mut s = state();
    press(&mut s, &["r", "enter", "j", "enter"]);
    executor_vars(&mut s, "staging", "ctx-the-step-gets");
    let screen = draw(&s, 80, 24);
    assert!(
        screen.contains("DESTRUCTIVE step") && screen.contains("Type staging"),
        "{screen}"
    );
    typed(&mut s, "staging");
    let effects = press(&mut s, &["enter"]);
    assert!(matches!(
        &steps(&effects)[..],
        [RunCommand::Step {
            index: 1,
            confirmation: Confirmation::Typed,
            ..
        }]
    ));
}

fn running(s: &mut AppState) {
    press(s, &["r", "enter", "enter"]);
    executor_vars(s, "staging", "ctx");
    press(s, &["y"]);
    update(s, Event::Run(RunEvent::StepStarted { index: 0 }));
}

#[test]
fn quitting_while_a_step_runs_asks_first() {
    // Ctrl-C in the runbook view.
    let mut s = state();
    running(&mut s);
    assert!(press(&mut s, &["ctrl-c"]).is_empty());
    assert!(!s.quit);
    let screen = draw(&s, 80, 24);
    assert!(
        screen.contains("a step is running on staging: quit and cancel it?"),
        "{screen}"
    );
    assert!(burst(&mut s, &["n"]).is_empty() && s.confirm.is_none());
    assert!(s.flash.as_ref().unwrap().contains("keeps running"));
    // `q` on the overview.
    press(&mut s, &["o"]);
    assert_eq!(s.view, View::Overview);
    assert!(press(&mut s, &["q"]).is_empty() && s.confirm.is_some());
    assert_eq!(press(&mut s, &["y"]), [Effect::Quit]);
    assert!(s.quit);
    // Ctrl-C while typing a pods filter.
    let mut s = state();
    running(&mut s);
    press(&mut s, &["o", "enter", "/"]);
    assert!(press(&mut s, &["ctrl-c"]).is_empty() && s.confirm.is_some());
    // With nothing running, q quits at once.
    let mut s = state();
    assert_eq!(press(&mut s, &["q"]), [Effect::Quit]);
}

#[test]
fn the_console_shows_the_lock_folder_fallback_warning() {
    let not_a_dir = tempfile::NamedTempFile::new().unwrap();
    let mut cfg = config(false);
    cfg.lock_dir = not_a_dir.path().join("locks");
    let warning = opsdeck::cli::lock_dir_warning(&cfg).expect("a warning");
    assert!(warning.contains("cannot be used"), "{warning}");
    let mut s = state_with(&cfg, RB);
    s.warnings.insert(0, warning);
    let screen = draw(&s, 160, 48);
    assert!(screen.contains("lock_dir"), "{screen}");
    cfg.lock_dir = tempfile::tempdir().unwrap().keep();
    assert_eq!(opsdeck::cli::lock_dir_warning(&cfg), None);
}

fn argo_state() -> AppState {
    let app = |name: &str| AppSummary {
        name: name.into(),
        project: "goapps".into(),
        sync: SyncStatus::OutOfSync,
        health: Health::Healthy,
        health_message: String::new(),
        revision: "e878c91d2b1f00aa".into(),
        target_revision: "main".into(),
        auto_sync: false,
        images: vec![],
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
    };
    let mut s = state();
    let snap = ArgocdSnapshot {
        ci_sync: String::new(),
        endpoint: "http://127.0.0.1:1".into(),
        insecure: false,
        mode: FollowMode::Stream,
        apps: vec![app("frontend-production")],
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

#[test]
fn a_rollback_confirmation_emits_the_entry_on_screen() {
    let mut s = argo_state();
    press(&mut s, &["tab", "A", "b"]);
    let screen = draw(&s, 80, 24);
    assert!(
        screen.contains("▸ id 2") && screen.contains("production [PROD]"),
        "{screen}"
    );
    press(&mut s, &["down"]);
    assert!(draw(&s, 80, 24).contains("▸ id 1"));
    typed(&mut s, "production");
    assert!(matches!(
        &press(&mut s, &["enter"])[..],
        [Effect::Argocd {
            action: ArgoAction::Rollback { id: 1 },
            confirmation: Confirmation::Typed,
            ..
        }]
    ));
}
