//! Runbook state in the console: the open runbook, its steps' states and output, and the
//! modals that hold an action until the engineer confirms it (confirmation is data).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;
use ratatui_textarea::TextArea;

use super::confirm::{Confirm, ConfirmTarget, Proof};
use super::state::AppState;
use super::update::Effect;
use crate::keymap::{Key, KeyCode};
use crate::runbook::parse::Runbook;
use crate::runbook::run::{Confirmation, StepState};
use crate::runbook::session::{Override, RunCommand, RunEvent};

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
    /// The executor was asked for this run's variables (it answers with `RunEvent::Vars`).
    pub vars_requested: bool,
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
            vars_requested: false,
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

/// A form of the open runbook (the confirmation itself is the one overlay, `app::confirm`).
#[derive(Debug, Clone)]
pub enum Modal {
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
    let (target_name, protected) = state
        .run
        .as_ref()
        .and_then(|r| state.clusters.get(r.target))
        .map_or_else(Default::default, |c| (c.name.clone(), c.protected));
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
    match edited_command {
        Some(cmd) if cmd == step.command => {
            view.edited.remove(&i);
        }
        Some(_) if read_only => {
            view.notice = Some(read_only_edit(&target_name, step.number));
            return vec![];
        }
        Some(cmd) => {
            view.edited.insert(i, cmd);
        }
        None => {}
    }
    let command = view.command(i);
    if read_only && command != step.command {
        // An edit can turn a read-only check into a change: only the runbook's text runs here.
        view.notice = Some(read_only_edit(&target_name, step.number));
        return vec![];
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
    let mut effects = Vec::new();
    if !view.vars_requested && !reported_for(view, &target_name) {
        // The confirmation shows the target the executor will export: ask it (this opens the
        // run, as the variables form does) and show it when it answers.
        view.vars_requested = true;
        effects.push(Effect::Runbook(RunCommand::SetVars {
            runbook: view.runbook.clone(),
            cluster: view.target,
            values: vec![],
        }));
    }
    let (proof, confirmation, title) = if step.attrs.destructive {
        (
            Proof::Typed(target_name.clone()),
            Confirmation::Typed,
            " DESTRUCTIVE step: type the cluster name ",
        )
    } else {
        (Proof::Key, Confirmation::Key, " Run this step? ")
    };
    let effect = Effect::Runbook(RunCommand::Step {
        runbook: view.runbook.clone(),
        cluster: view.target,
        index: i,
        command,
        confirmation,
    });
    let mut heading = vec![format!("Step {} · {}", step.number, step.name)];
    if view.edited.contains_key(&i) {
        heading.push("(edited: the text below runs, and the record says so)".into());
    }
    let mut c = Confirm::new(title, proof, effect)
        .lines(heading)
        .messages("cancelled; nothing was run", "declined; nothing was run");
    show_target(&mut c, view, &target_name, protected);
    super::confirm::open(state, c);
    effects
}

/// Why an edited command does not run on a read-only cluster.
pub fn read_only_edit(cluster: &str, step: usize) -> String {
    format!(
        "refused: {cluster} is read-only and an edited command could change state: step {step} \
         runs only as the runbook wrote it; nothing was run"
    )
}

/// Whether the executor reported the variables of a run on `target` (the view keeps only those).
fn reported_for(view: &RunbookView, target: &str) -> bool {
    view.vars.get("CLUSTER").is_some_and(|c| c == target) && view.vars.contains_key("CONTEXT")
}

/// Shows in `c` the cluster and context the step will really get: the run's `CLUSTER` and
/// `CONTEXT` as the executor reported them, with the other variables. Until it has, the
/// confirmation waits. Returns whether what `c` shows changed.
fn show_target(c: &mut Confirm, view: &RunbookView, target: &str, protected: bool) -> bool {
    let (new_target, vars, waiting) = if reported_for(view, target) {
        let t = ConfirmTarget {
            cluster: view.vars["CLUSTER"].clone(),
            context: view.vars["CONTEXT"].clone(),
            protected,
        };
        let vars = view
            .vars
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "CLUSTER" | "CONTEXT"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (Some(t), vars, None)
    } else {
        (
            None,
            vec![],
            Some("the run's target (CLUSTER, CONTEXT) is not reported yet".to_string()),
        )
    };
    let changed = c.target != new_target || c.vars != vars || c.waiting != waiting;
    // Until the target is known the box does not ask anything.
    c.title = match (&waiting, &c.proof) {
        (Some(_), _) => " Preparing the run… ",
        (None, Proof::Key) => " Run this step? ",
        (None, Proof::Typed(_)) => " DESTRUCTIVE step: type the cluster name ",
    }
    .into();
    c.target = new_target;
    c.vars = vars;
    c.waiting = waiting;
    changed
}

/// The running step, if any: (its cluster's name, "step N (name)").
pub fn step_running(state: &AppState) -> Option<(String, String)> {
    let view = state.run.as_ref()?;
    let (i, _) = view.running?;
    let cluster = state
        .clusters
        .get(view.target)
        .map_or_else(|| "?".to_string(), |c| c.name.clone());
    let name = view
        .runbook
        .steps
        .get(i)
        .map_or_else(String::new, |s| s.name.clone());
    Some((cluster, format!("step {} ({name})", i + 1)))
}

/// Keys while a modal is open: they go to the modal, never to the keymap.
pub fn modal_key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let Some(modal) = state.modal.take() else {
        return vec![];
    };
    let Some(view) = state.run.as_mut() else {
        return vec![];
    };
    if key == Key::plain(KeyCode::Esc) || key == Key::ctrl('c') {
        view.notice = Some("cancelled; nothing was run".into());
        return vec![];
    }
    let enter = key == Key::plain(KeyCode::Enter);
    match modal {
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
                    view.vars_requested = true;
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
    if let RunEvent::AuditReserve { path, in_use } = &event {
        let now = state.now;
        for c in &mut state.clusters {
            c.audit_reserve = in_use.then(|| path.clone());
            c.refresh_findings(now);
        }
        return;
    }
    let (target_name, protected) = state
        .run
        .as_ref()
        .and_then(|v| state.clusters.get(v.target))
        .map_or_else(Default::default, |c| (c.name.clone(), c.protected));
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
        RunEvent::Refused { reason } => {
            view.notice = Some(format!("refused: {reason}"));
            view.vars_requested = false;
            // A step confirmation still waiting for the run's target will not get it.
            if state
                .confirm
                .as_ref()
                .is_some_and(|c| c.waiting.is_some() && step_of(c) == Some(view.target))
            {
                state.confirm = None;
            }
        }
        RunEvent::NeedsOverride {
            cluster,
            kind,
            reason,
            then,
        } => {
            let name = state
                .clusters
                .get(cluster)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            view.notice = Some(format!("refused: {reason}"));
            let (title, what) = match kind {
                Override::LocalLockOnly => (
                    "The cross-machine lock is unavailable",
                    "the cluster's API is unreachable, so its Lease cannot be taken: another \
                     engineer on another machine would not see this run. Type the cluster's \
                     name to run with this machine's lock only.",
                ),
                Override::Unrecorded => (
                    "The audit record cannot be written",
                    "nothing has run. Type the cluster's name to run this step WITHOUT a \
                     record; its records are shown in the output pane, to be copied into the \
                     incident notes.",
                ),
            };
            let effect = Effect::Runbook(RunCommand::Override {
                kind,
                typed: name.clone(),
                then,
            });
            let mut c = Confirm::new(title, Proof::Typed(name.clone()), effect)
                .lines(vec![reason, what.to_string()])
                .messages("cancelled; nothing was run", "declined; nothing was run");
            c = c.target(super::confirm::ConfirmTarget {
                cluster: name,
                context: view.vars.get("CONTEXT").cloned().unwrap_or_default(),
                protected,
            });
            super::confirm::open(state, c);
        }
        RunEvent::AuditReserve { .. } => {}
        RunEvent::Finished => {
            view.notice = Some("run finished; its lock is released".into());
            view.output
                .push_back("── run finished: every step ok or skipped; lock released ──".into());
        }
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
        RunEvent::Vars { shown } => {
            // Only this view's target: a late report of a run on another cluster never
            // reaches what this confirmation shows.
            if shown.get("CLUSTER") != Some(&target_name) {
                return;
            }
            view.vars = shown;
            if let Some(c) = state
                .confirm
                .as_mut()
                .filter(|c| step_of(c) == Some(view.target))
                && show_target(c, view, &target_name, protected)
            {
                c.changed();
            }
        }
    }
}

/// The cluster a step confirmation runs on.
fn step_of(c: &Confirm) -> Option<usize> {
    match &c.effect {
        Effect::Runbook(RunCommand::Step { cluster, .. }) => Some(*cluster),
        _ => None,
    }
}
