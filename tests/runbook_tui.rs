//! The runbook view in the console: key sequences through the reducer (confirmation is data:
//! the overlay holds the exact command it will dispatch), and snapshots of the view.

use std::sync::Arc;

use jiff::Timestamp;
use opsdeck::app::confirm::Proof;
use opsdeck::app::{AppState, Effect, Event, View, update};
use opsdeck::config::{ClusterConfig, Config};
use opsdeck::keymap::{EMBEDDED, Keymap};
use opsdeck::runbook::parse;
use opsdeck::runbook::run::{Confirmation, StepState};
use opsdeck::runbook::session::{RunCommand, RunEvent};
use opsdeck::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const RB: &str = include_str!("fixtures/runbooks/danger.md");

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
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
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut s = AppState::new(&config, Keymap::parse(EMBEDDED[0].1).unwrap(), now());
    s.runbooks = vec![Arc::new(parse::parse("danger", RB).unwrap())];
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
        effects.extend(update(s, Event::Key(opsdeck::keymap::Key::ch(c))));
        update(s, Event::Drawn);
    }
    effects
}

/// The executor's report of the run's variables (what a step on `cluster` gets).
fn reported(s: &mut AppState, cluster: &str) {
    let shown = [("CLUSTER", cluster), ("CONTEXT", "kind-ctx")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    update(s, Event::Run(RunEvent::Vars { shown }));
    update(s, Event::Drawn);
}

fn proof(s: &AppState) -> Option<Proof> {
    s.confirm.as_ref().map(|c| c.proof.clone())
}

fn draw(s: &AppState, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| render(f, s, Theme { color: false })).unwrap();
    format!("{}", term.backend())
}

#[test]
fn a_plain_step_runs_after_one_key_with_exactly_the_shown_command() {
    let mut s = state(false);
    keys(&mut s, &["r", "enter"]);
    assert_eq!(s.view, View::Runbook);
    assert!(
        keys(&mut s, &["enter"])
            .iter()
            .all(|e| matches!(e, Effect::Runbook(RunCommand::SetVars { .. }))),
        "enter only asks"
    );
    assert_eq!(proof(&s), Some(Proof::Key));
    reported(&mut s, "staging");
    let effects = keys(&mut s, &["y"]);
    match &effects[..] {
        [
            Effect::Runbook(RunCommand::Step {
                index: 0,
                command,
                confirmation: Confirmation::Key,
                cluster: 0,
                ..
            }),
        ] => {
            assert_eq!(command, "echo look\n")
        }
        other => panic!("unexpected effects {other:?}"),
    }
    assert!(s.confirm.is_none());
}

#[test]
fn a_destructive_step_needs_the_cluster_name_typed() {
    let mut s = state(false);
    keys(&mut s, &["tab", "r", "enter", "j", "enter"]);
    assert_eq!(proof(&s), Some(Proof::Typed("production".into())));
    reported(&mut s, "production");
    assert!(
        keys(&mut s, &["y", "enter"]).is_empty(),
        "y is text here, and 'y' is not the name"
    );
    let Some(e) = s.confirm.as_ref().and_then(|c| c.error.as_ref()) else {
        panic!("expected an error in the confirmation")
    };
    assert!(e.contains("type production"));
    keys(&mut s, &["backspace"]);
    assert!(typed(&mut s, "production").is_empty());
    let effects = keys(&mut s, &["enter"]);
    assert!(
        matches!(
            &effects[..],
            [Effect::Runbook(RunCommand::Step {
                index: 1,
                cluster: 1,
                confirmation: Confirmation::Typed,
                ..
            })]
        ),
        "{effects:?}"
    );
    let screen = draw(&s, 80, 24);
    assert!(screen.contains("production [PROD]"), "{screen}");
}

#[test]
fn esc_cancels_and_read_only_refuses_destructive_steps_without_a_modal() {
    let mut s = state(true);
    keys(&mut s, &["tab", "r", "enter", "enter", "esc"]);
    assert!(s.confirm.is_none());
    assert_eq!(
        s.run.as_ref().unwrap().notice.as_deref(),
        Some("cancelled; nothing was run")
    );
    let effects = keys(&mut s, &["j", "enter"]);
    assert!(effects.is_empty() && s.confirm.is_none());
    assert!(
        s.run
            .as_ref()
            .unwrap()
            .notice
            .as_ref()
            .unwrap()
            .contains("read-only")
    );
}

#[test]
fn executor_reports_drive_step_states_output_and_the_cursor() {
    let mut s = state(false);
    keys(&mut s, &["r", "enter"]);
    update(
        &mut s,
        Event::Run(RunEvent::Started {
            run_id: "r1".into(),
            cluster: 0,
            audit: "/tmp/a.jsonl".into(),
        }),
    );
    update(&mut s, Event::Run(RunEvent::StepStarted { index: 0 }));
    assert_eq!(s.run.as_ref().unwrap().states[0], StepState::Running);
    assert!(
        keys(&mut s, &["enter"]).is_empty() && s.confirm.is_none(),
        "no second step while one runs"
    );
    let cancel = keys(&mut s, &["c"]);
    assert_eq!(cancel.len(), 1);
    update(
        &mut s,
        Event::Run(RunEvent::Output {
            index: 0,
            lines: vec!["look".into()],
        }),
    );
    update(
        &mut s,
        Event::Run(RunEvent::StepFinished {
            index: 0,
            state: StepState::Ok,
            duration_ms: 120,
        }),
    );
    let r = s.run.as_ref().unwrap();
    assert_eq!(r.states[0], StepState::Ok);
    assert_eq!(r.cursor, 1, "the cursor moves on after a step succeeds");
    assert!(r.output.iter().any(|l| l == "look"));
    insta::assert_snapshot!("runbook_view_80x24", draw(&s, 80, 24));
    insta::assert_snapshot!("runbook_view_160x48", draw(&s, 160, 48));
}

#[test]
fn runbook_list_snapshot() {
    let mut s = state(false);
    keys(&mut s, &["r"]);
    insta::assert_snapshot!("runbook_list_80x24", draw(&s, 80, 24));
}

#[test]
fn an_unreachable_api_asks_for_the_cluster_name_before_running_on_the_local_lock() {
    use opsdeck::runbook::session::Override;
    let mut s = state(false);
    keys(&mut s, &["r", "enter"]);
    reported(&mut s, "staging");
    let step = RunCommand::Step {
        runbook: s.runbooks[0].clone(),
        cluster: 0,
        index: 0,
        command: s.runbooks[0].steps[0].command.clone(),
        confirmation: Confirmation::Key,
    };
    update(
        &mut s,
        Event::Run(RunEvent::NeedsOverride {
            cluster: 0,
            kind: Override::LocalLockOnly,
            reason: "the cluster API of staging is unreachable".into(),
            then: Box::new(step.clone()),
        }),
    );
    assert_eq!(proof(&s), Some(Proof::Typed("staging".into())));
    // Keys before the box is drawn count for nothing; a wrong name accepts nothing.
    assert!(update(&mut s, Event::Key("enter".parse().unwrap())).is_empty());
    update(&mut s, Event::Drawn);
    assert!(typed(&mut s, "stag").is_empty());
    assert!(keys(&mut s, &["enter"]).is_empty());
    keys(
        &mut s,
        &["backspace", "backspace", "backspace", "backspace"],
    );
    typed(&mut s, "staging");
    let effects = keys(&mut s, &["enter"]);
    assert_eq!(
        effects,
        [Effect::Runbook(RunCommand::Override {
            kind: Override::LocalLockOnly,
            typed: "staging".into(),
            then: Box::new(step),
        })]
    );
    let screen = draw(&s, 80, 24);
    assert!(screen.contains("unreachable"), "{screen}");
}

#[test]
fn an_audit_log_writing_from_its_reserve_is_a_crit_finding_on_every_cluster() {
    let mut s = state(false);
    update(
        &mut s,
        Event::Run(RunEvent::AuditReserve {
            path: "/var/log/opsdeck/audit.jsonl".into(),
            in_use: true,
        }),
    );
    for c in &s.clusters {
        let f = c
            .findings
            .iter()
            .find(|f| f.source == "audit")
            .unwrap_or_else(|| panic!("no audit finding on {}", c.name));
        assert_eq!(f.severity, opsdeck::model::Severity::Crit);
        assert!(
            f.message.contains("/var/log/opsdeck/audit.jsonl"),
            "{}",
            f.message
        );
    }
    update(
        &mut s,
        Event::Run(RunEvent::AuditReserve {
            path: "/var/log/opsdeck/audit.jsonl".into(),
            in_use: false,
        }),
    );
    assert!(
        s.clusters
            .iter()
            .all(|c| c.findings.iter().all(|f| f.source != "audit"))
    );
}
