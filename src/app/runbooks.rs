//! Runbook state in the console: the open runbook, its steps' states and output, and the
//! modals that hold an action until the engineer confirms it (confirmation is data).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;
use ratatui_textarea::TextArea;

use super::state::AppState;
use super::update::Effect;
use crate::keymap::{Key, KeyCode};
use crate::runbook::parse::Runbook;
use crate::runbook::run::{Confirmation, StepState};
use crate::runbook::session::{RunCommand, RunEvent};

/// Output lines kept on screen for the open runbook.
pub const OUTPUT_LINES: usize = 500;

/// The open runbook.
#[derive(Debug, Clone)]
pub struct RunbookView {
    pub runbook: Arc<Runbook>,
    /// Index of the target cluster in the config.
    pub target: usize,
    /// The selected step.
    pub cursor: usize,
    pub states: Vec<StepState>,
    pub output: VecDeque<String>,
    /// The step running now and when it started.
    pub running: Option<(usize, Timestamp)>,
    pub run_id: Option<String>,
    /// Values of the run's variables as the executor reports them (secrets as `***`).
    pub vars: BTreeMap<String, String>,
    /// The last refusal or notice, shown above the output.
    pub notice: Option<String>,
    /// Whether the command shown for each step was edited, by step.
    pub edited: BTreeMap<usize, String>,
}

impl RunbookView {
    pub fn new(runbook: Arc<Runbook>, target: usize) -> RunbookView {
        let n = runbook.steps.len();
        RunbookView {
            runbook,
            target,
            cursor: 0,
            states: vec![StepState::Pending; n],
            output: VecDeque::new(),
            running: None,
            run_id: None,
            vars: BTreeMap::new(),
            notice: None,
            edited: BTreeMap::new(),
        }
    }

    /// The text that would run for step `i`: the engineer's edit, or the runbook's.
    pub fn command(&self, i: usize) -> String {
        self.edited
            .get(&i)
            .cloned()
            .unwrap_or_else(|| self.runbook.steps[i].command.clone())
    }
}

/// One field of the variables form.
#[derive(Debug, Clone)]
pub struct VarField {
    pub name: String,
    pub prompt: String,
    pub secret: bool,
    pub input: TextArea<'static>,
}

/// A modal holding the exact action it will dispatch when accepted.
#[derive(Debug, Clone)]
pub enum Modal {
    /// Run `command` as step `step`. Destructive steps carry a text input for the cluster name.
    Confirm {
        step: usize,
        command: String,
        typed: Option<TextArea<'static>>,
        error: Option<String>,
    },
    /// Edit a step's command before running it.
    Edit {
        step: usize,
        editor: TextArea<'static>,
    },
    /// Skip a step, with a reason.
    Skip {
        step: usize,
        reason: TextArea<'static>,
    },
    /// Values for declared variables the step uses, asked once per run before it runs.
    Vars {
        step: usize,
        fields: Vec<VarField>,
        focus: usize,
    },
}

fn text_input(initial: &str, secret: bool) -> TextArea<'static> {
    let mut t = TextArea::new(vec![initial.to_string()]);
    if secret {
        t.set_mask_char('•');
    }
    t.move_cursor(ratatui_textarea::CursorMove::End);
    t
}

pub(crate) fn to_input(key: Key) -> ratatui_textarea::Input {
    use ratatui_textarea::Key as T;
    let k = match key.code {
        KeyCode::Char(c) => T::Char(c),
        KeyCode::Enter => T::Enter,
        KeyCode::Esc => T::Esc,
        KeyCode::Tab | KeyCode::BackTab => T::Tab,
        KeyCode::Backspace => T::Backspace,
        KeyCode::Up => T::Up,
        KeyCode::Down => T::Down,
        KeyCode::Left => T::Left,
        KeyCode::Right => T::Right,
        KeyCode::PageUp => T::PageUp,
        KeyCode::PageDown => T::PageDown,
        KeyCode::Home => T::Home,
        KeyCode::End => T::End,
        KeyCode::Delete => T::Delete,
        KeyCode::F(n) => T::F(n),
    };
    ratatui_textarea::Input {
        key: k,
        ctrl: key.ctrl,
        alt: key.alt,
        shift: key.shift,
    }
}

fn text_of(t: &TextArea<'_>) -> String {
    t.lines().join("\n")
}

fn cluster_read_only(state: &AppState, cluster: usize) -> bool {
    state.read_only || state.clusters.get(cluster).is_some_and(|c| c.read_only)
}

/// Opens runbook `index` of the catalog against the focused cluster.
pub fn open(state: &mut AppState, index: usize) -> Vec<Effect> {
    let Some(rb) = state.runbooks.get(index).cloned() else {
        return vec![];
    };
    let mut effects = Vec::new();
    if state
        .run
        .as_ref()
        .is_some_and(|r| !Arc::ptr_eq(&r.runbook, &rb) || r.target != state.focus)
    {
        effects.push(Effect::Runbook(RunCommand::Close));
    }
    if !state
        .run
        .as_ref()
        .is_some_and(|r| Arc::ptr_eq(&r.runbook, &rb) && r.target == state.focus)
    {
        state.run = Some(RunbookView::new(rb, state.focus));
    }
    effects
}

/// Asks to run the selected step: the variables form first if it needs values, then the
/// confirm modal. Refusals (read-only, running, not a target) are said, not modal.
pub fn request_run(state: &mut AppState, edited_command: Option<String>) -> Vec<Effect> {
    let read_only = state
        .run
        .as_ref()
        .is_some_and(|r| cluster_read_only(state, r.target));
    let target_name = state
        .run
        .as_ref()
        .and_then(|r| state.clusters.get(r.target))
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let Some(view) = state.run.as_mut() else {
        return vec![];
    };
    let i = view.cursor;
    let Some(step) = view.runbook.steps.get(i).cloned() else {
        return vec![];
    };
    if view.running.is_some() {
        view.notice = Some("a step is running: wait for it, or cancel it".into());
        return vec![];
    }
    if !view.runbook.targets.is_empty() && !view.runbook.targets.contains(&target_name) {
        view.notice = Some(format!(
            "{} is for {} only, not {target_name}",
            view.runbook.name,
            view.runbook.targets.join(", ")
        ));
        return vec![];
    }
    if step.attrs.destructive && read_only {
        view.notice = Some(format!(
            "refused: step {} is destructive and {target_name} is read-only; nothing was run",
            step.number
        ));
        return vec![];
    }
    if let Some(cmd) = edited_command {
        view.edited.insert(i, cmd);
    }
    let missing: Vec<VarField> = view
        .runbook
        .vars_used_by(&step)
        .into_iter()
        .filter(|d| !view.vars.contains_key(&d.name))
        .map(|d| VarField {
            name: d.name.clone(),
            prompt: d.prompt.clone(),
            secret: d.secret,
            input: text_input(
                if d.secret {
                    ""
                } else {
                    d.default.as_deref().unwrap_or("")
                },
                d.secret,
            ),
        })
        .collect();
    if !missing.is_empty() {
        state.modal = Some(Modal::Vars {
            step: i,
            fields: missing,
            focus: 0,
        });
        return vec![];
    }
    let command = view.command(i);
    let typed = step.attrs.destructive.then(|| text_input("", false));
    state.modal = Some(Modal::Confirm {
        step: i,
        command,
        typed,
        error: None,
    });
    vec![]
}

/// Keys while a modal is open: they go to the modal, never to the keymap.
pub fn modal_key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let Some(modal) = state.modal.take() else {
        return vec![];
    };
    let Some(view) = state.run.as_mut() else {
        return vec![];
    };
    let cluster_name = state
        .clusters
        .get(view.target)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if key == Key::plain(KeyCode::Esc) || key == Key::ctrl('c') {
        view.notice = Some("cancelled; nothing was run".into());
        return vec![];
    }
    let enter = key == Key::plain(KeyCode::Enter);
    match modal {
        Modal::Confirm {
            step,
            command,
            typed: None,
            error,
        } => {
            if enter || key == Key::ch('y') {
                let rb = view.runbook.clone();
                return vec![Effect::Runbook(RunCommand::Step {
                    runbook: rb,
                    cluster: view.target,
                    index: step,
                    command,
                    confirmation: Confirmation::Key,
                })];
            }
            if key == Key::ch('n') {
                view.notice = Some("declined; nothing was run".into());
                return vec![];
            }
            state.modal = Some(Modal::Confirm {
                step,
                command,
                typed: None,
                error,
            });
        }
        Modal::Confirm {
            step,
            command,
            typed: Some(mut input),
            ..
        } => {
            if enter {
                let typed = text_of(&input);
                if typed.trim() == cluster_name {
                    let rb = view.runbook.clone();
                    return vec![Effect::Runbook(RunCommand::Step {
                        runbook: rb,
                        cluster: view.target,
                        index: step,
                        command,
                        confirmation: Confirmation::Typed,
                    })];
                }
                state.modal = Some(Modal::Confirm {
                    step,
                    command,
                    typed: Some(input),
                    error: Some(format!(
                        "type {cluster_name} exactly to run this step, or esc to cancel"
                    )),
                });
                return vec![];
            }
            input.input(to_input(key));
            state.modal = Some(Modal::Confirm {
                step,
                command,
                typed: Some(input),
                error: None,
            });
        }
        Modal::Edit { step, mut editor } => {
            // ctrl-s accepts the edit (Enter adds a line: commands span lines).
            if key == Key::ctrl('s') {
                let text = text_of(&editor);
                view.cursor = step;
                return request_run(state, Some(text));
            }
            editor.input(to_input(key));
            state.modal = Some(Modal::Edit { step, editor });
        }
        Modal::Skip { step, mut reason } => {
            if enter {
                let why = text_of(&reason);
                if why.trim().is_empty() {
                    state.modal = Some(Modal::Skip { step, reason });
                    return vec![];
                }
                let rb = view.runbook.clone();
                return vec![Effect::Runbook(RunCommand::Skip {
                    runbook: rb,
                    cluster: view.target,
                    index: step,
                    reason: why,
                })];
            }
            reason.input(to_input(key));
            state.modal = Some(Modal::Skip { step, reason });
        }
        Modal::Vars {
            step,
            mut fields,
            mut focus,
        } => {
            if key.code == KeyCode::Tab || key.code == KeyCode::Down {
                focus = (focus + 1) % fields.len().max(1);
            } else if key.code == KeyCode::BackTab || key.code == KeyCode::Up {
                focus = (focus + fields.len().max(1) - 1) % fields.len().max(1);
            } else if enter {
                if focus + 1 < fields.len() {
                    focus += 1;
                } else {
                    let values: Vec<(String, String, bool)> = fields
                        .iter()
                        .map(|f| (f.name.clone(), text_of(&f.input), f.secret))
                        .collect();
                    for (k, _, secret) in &values {
                        // Until the executor answers, remember the names so the form is not asked again.
                        view.vars.insert(
                            k.clone(),
                            if *secret { "***".into() } else { String::new() },
                        );
                    }
                    for (k, v, secret) in &values {
                        if !secret {
                            view.vars.insert(k.clone(), v.clone());
                        }
                    }
                    let rb = view.runbook.clone();
                    let cluster = view.target;
                    view.cursor = step;
                    let mut effects = vec![Effect::Runbook(RunCommand::SetVars {
                        runbook: rb,
                        cluster,
                        values,
                    })];
                    effects.extend(request_run(state, None));
                    return effects;
                }
            } else if let Some(f) = fields.get_mut(focus) {
                f.input.input(to_input(key));
            }
            state.modal = Some(Modal::Vars {
                step,
                fields,
                focus,
            });
        }
    }
    vec![]
}

/// Folds an executor report into the open runbook.
pub fn on_event(state: &mut AppState, event: RunEvent) {
    let Some(view) = state.run.as_mut() else {
        return;
    };
    match event {
        RunEvent::Started { run_id, audit, .. } => {
            view.output.push_back(format!(
                "run {run_id} started; every step is recorded in {audit}"
            ));
            view.run_id = Some(run_id);
        }
        RunEvent::Refused { reason } => view.notice = Some(format!("refused: {reason}")),
        RunEvent::StepStarted { index } => {
            view.running = Some((index, state.now));
            if let Some(s) = view.states.get_mut(index) {
                *s = StepState::Running;
            }
            view.notice = None;
            view.output.push_back(format!(
                "── step {} · {} ──",
                index + 1,
                view.runbook.steps[index].name
            ));
        }
        RunEvent::Output { lines, .. } => {
            for l in lines {
                if view.output.len() == OUTPUT_LINES {
                    view.output.pop_front();
                }
                view.output.push_back(l);
            }
        }
        RunEvent::StepFinished {
            index,
            state: st,
            duration_ms,
        } => {
            view.running = None;
            view.notice = None;
            let ok = st == StepState::Ok;
            let label = match &st {
                StepState::Failed(why) => format!("failed ({why})"),
                StepState::Skipped(why) => format!("skipped: {why}"),
                other => other.label().to_string(),
            };
            view.output.push_back(format!(
                "── step {} {label} in {:.1}s ──",
                index + 1,
                duration_ms as f64 / 1000.0
            ));
            if let Some(s) = view.states.get_mut(index) {
                *s = st.clone();
            }
            if matches!(st, StepState::Failed(_)) {
                view.notice = Some(format!(
                    "step {} failed: retry (enter), edit and retry (e), or skip (s)",
                    index + 1
                ));
            }
            if (ok || matches!(st, StepState::Skipped(_)))
                && index + 1 < view.states.len()
                && view.cursor == index
            {
                view.cursor = index + 1;
            }
        }
        RunEvent::Vars { shown } => view.vars = shown,
    }
}
