//! The one runbook driver: every rule of a run lives here, once, for both the command line
//! (`opsdeck runbook run`) and the console's executor ([`super::session`]). Front ends only
//! render what the driver asks (a variable, a confirmation) and hand back the answer; the
//! driver decides whether the runbook may target the cluster, which variables may be set, what
//! a step's confirmation shows and requires, whether the answer confirms it, and it holds the
//! run's lock for as long as the run is open.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::audit::{AuditError, AuditLog};
use super::exec::StepOutcome;
use super::lock::{self, LockRefusal, RunLockSet};
use super::parse::{Runbook, VarDecl};
use super::run::{self, Confirmation, Run, StepState};
use super::vars::{RunVars, Target};
use crate::config::Config;

/// Why the driver said no, and how a command line reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A malformed request: unknown step, a reserved or secret `--var` (exit 3).
    Usage,
    /// A rule said no: read-only, the lock is held, not a target, not confirmed (exit 6).
    Refused,
    /// Something broke underneath (exit 4).
    Internal,
    /// The step's start record could not be written, so nothing ran (exit 6); the engineer
    /// may run it without a record by typing the cluster's name
    /// ([`Driver::run_step_unrecorded`]).
    Unrecorded,
    /// The cluster's API cannot be reached, so the cross-machine lock (the Lease) cannot be
    /// taken (exit 6); the engineer may run on the local lock alone by typing the cluster's
    /// name ([`Driver::lock_local_only`]).
    LockUnreachable,
}

impl Refusal {
    pub fn usage(message: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::Usage,
            message: message.into(),
        }
    }
    pub fn refused(message: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::Refused,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::Internal,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a step's confirmation needs from the engineer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    /// One key (`y`) for a plain step.
    Key,
    /// This exact text typed (the cluster's name) for a destructive step.
    Typed(String),
}

/// Everything a confirmation shows, taken from the run itself: the cluster and context are the
/// values exported to the step, so what the engineer confirms is what runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRequest {
    pub index: usize,
    pub number: usize,
    pub name: String,
    pub title: String,
    /// The exact text that will run.
    pub command: String,
    pub edited: bool,
    pub destructive: bool,
    /// `$CLUSTER` as exported to the step.
    pub cluster: String,
    /// `$CONTEXT` as exported to the step.
    pub context: String,
    pub protected: bool,
    pub needs: Needs,
    /// The variables the step refers to, as `NAME=value` (secrets `***`).
    pub vars: Vec<(String, String)>,
}

/// An answer to a confirmation, as the front end got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Key,
    Typed(String),
    /// `--yes` on the command line: plain steps only.
    YesFlag,
}

/// Who cancelled a running step and how (a signal's name, `quit`, `cancel key`, `panic`):
/// written into the step's end record.
#[derive(Debug, Clone, Default)]
pub struct CancelReason(Arc<Mutex<Option<String>>>);

impl CancelReason {
    pub fn set(&self, reason: &str) {
        if let Ok(mut r) = self.0.lock()
            && r.is_none()
        {
            *r = Some(reason.to_string());
        }
    }
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// One open run: its steps' states, variables, audit log and lock.
pub struct Driver {
    run: Run,
    read_only: bool,
    lock: Option<RunLockSet>,
    /// Set before a cancel token fires, so the end record says why.
    pub cancel_reason: CancelReason,
}

/// The target of `cluster` in `config`, or a usage refusal naming the configured ones.
pub fn target_of(config: &Config, cluster: &str) -> Result<Target, Refusal> {
    match config.cluster(cluster) {
        Some(c) => Ok(Target::from_config(c)),
        None => {
            let names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
            Err(Refusal::usage(format!(
                "no cluster named {cluster:?}; configured: {}",
                names.join(", ")
            )))
        }
    }
}

/// Whether a `host=true` step may run against `target` on the machine named `this_host`:
/// only when the cluster's `host` is this machine, never against the simulated fleet.
pub fn host_check(target: &Target, this_host: &str) -> Result<(), String> {
    match target.host.as_deref() {
        Some(crate::config::SIMULATED_HOST) => Err(format!(
            "{} is the simulated fleet, which has no machine of its own: this step would inspect or change {this_host} instead",
            target.name
        )),
        None => Err(format!(
            "{} has no `host` in the config, so opsdeck cannot tell that this machine ({this_host}) is the cluster's; add host = \"<its hostname>\" to that [[cluster]]",
            target.name
        )),
        Some(h) if h == this_host => Ok(()),
        Some(h) => Err(format!(
            "{} runs on {h}, and this machine is {this_host}: run it on {h}",
            target.name
        )),
    }
}

impl Driver {
    /// A run of `runbook` against `target`: refused when the runbook's `targets` exclude it.
    /// Nothing is locked or recorded yet (a dry run stays that way).
    pub fn new(
        runbook: Arc<Runbook>,
        target: Target,
        read_only: bool,
        audit: AuditLog,
    ) -> Result<Driver, Refusal> {
        run::allowed_target(&runbook, &target).map_err(Refusal::refused)?;
        let vars = RunVars::for_target(&target);
        let run = Run::new(runbook, target, vars, audit)
            .map_err(|e| Refusal::internal(format!("cannot prepare the run: {e}")))?;
        Ok(Driver {
            run,
            read_only,
            lock: None,
            cancel_reason: CancelReason::default(),
        })
    }

    pub fn id(&self) -> &str {
        &self.run.id
    }
    pub fn runbook(&self) -> &Arc<Runbook> {
        &self.run.runbook
    }
    pub fn target(&self) -> &Target {
        &self.run.target
    }
    pub fn states(&self) -> &[StepState] {
        &self.run.states
    }
    pub fn vars(&self) -> &RunVars {
        &self.run.vars
    }
    pub fn audit_path(&self) -> String {
        self.run.audit.path().display().to_string()
    }
    /// Whether the run is over: every step that a whole run includes is ok or skipped.
    pub fn finished(&self) -> bool {
        self.run
            .runbook
            .steps
            .iter()
            .zip(&self.run.states)
            .filter(|(s, _)| !s.attrs.exclude_from_run_all)
            .all(|(_, st)| matches!(st, StepState::Ok | StepState::Skipped(_)))
    }

    /// Whether the run holds its lock (steps run only then).
    pub fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Takes the cluster's run lock (the local lock file and the Lease in the cluster) for as
    /// long as this run is open. Returns warnings to show (a fallback lock folder, a Lease
    /// taken over).
    pub async fn lock(&mut self, config: &Config) -> Result<Vec<String>, Refusal> {
        self.take_lock(config, false).await
    }

    /// After [`RefusalKind::LockUnreachable`]: the local lock alone, once the engineer typed
    /// the cluster's name to accept that the cross-machine lock is unavailable.
    pub async fn lock_local_only(
        &mut self,
        config: &Config,
        typed: &str,
    ) -> Result<Vec<String>, Refusal> {
        let name = self.run.target.name.clone();
        if typed.trim() != name {
            return Err(Refusal::refused(format!(
                "declined; nothing was run ({typed:?} is not {name:?})"
            )));
        }
        self.take_lock(config, true).await
    }

    async fn take_lock(
        &mut self,
        config: &Config,
        allow_local_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        if self.lock.is_some() {
            return Ok(vec![]);
        }
        let name = self.run.target.name.clone();
        let cluster = config
            .cluster(&name)
            .ok_or_else(|| Refusal::usage(format!("no cluster named {name:?}")))?;
        match lock::acquire_run_lock(config, cluster, &self.run.runbook.name, allow_local_only)
            .await
        {
            Ok(l) => {
                let warnings = l.warnings().to_vec();
                self.lock = Some(l);
                Ok(warnings)
            }
            Err(LockRefusal::Unreachable { reason, .. }) => Err(Refusal {
                kind: RefusalKind::LockUnreachable,
                message: format!(
                    "the cluster API of {name} is unreachable ({reason}), so the cross-machine lock cannot be taken"
                ),
            }),
            Err(e) if e.is_refusal() => Err(Refusal::refused(e.to_string())),
            Err(e) => Err(Refusal::internal(e.to_string())),
        }
    }

    /// Releases the lock (the Lease deleted): the run is over (finished or abandoned).
    pub async fn close(&mut self) {
        if let Some(l) = self.lock.take() {
            l.release().await;
        }
    }

    /// Sets a declared or extra variable from a front end. Secret values never come from the
    /// command line (`from_command_line`), where `ps` would show them.
    pub fn set_var(
        &mut self,
        name: &str,
        value: String,
        secret: bool,
        from_command_line: bool,
    ) -> Result<(), Refusal> {
        let declared_secret = self
            .run
            .runbook
            .vars
            .iter()
            .any(|d| d.name == name && d.secret);
        if from_command_line && declared_secret {
            return Err(Refusal::usage(format!(
                "{name} is secret: it never comes from --var (it would show in ps); set the environment variable {name} or answer the prompt"
            )));
        }
        self.run
            .vars
            .set(name, value, secret || declared_secret)
            .map_err(|e| Refusal::usage(e.to_string()))
    }

    /// The declared variables step `index` uses that have no value yet, in declaration order.
    pub fn missing_vars(&self, index: usize) -> Vec<VarDecl> {
        let Some(step) = self.run.runbook.steps.get(index) else {
            return vec![];
        };
        self.run
            .runbook
            .vars_used_by(step)
            .into_iter()
            .filter(|d| self.run.vars.get(&d.name).is_none())
            .cloned()
            .collect()
    }

    /// What confirming step `index` with `command` shows and requires, or why it may not run
    /// at all (read-only, background, an edit in read-only mode).
    pub fn request(&self, index: usize, command: &str) -> Result<StepRequest, Refusal> {
        let runbook = &self.run.runbook;
        let step = runbook
            .steps
            .get(index)
            .ok_or_else(|| Refusal::usage(format!("no step {}", index + 1)))?;
        let target = &self.run.target;
        let edited = command != step.command;
        let read_only = self.read_only || target.read_only;
        if edited && read_only {
            return Err(Refusal::refused(format!(
                "step {} ({}) was edited and {} is read-only: an edited command may change state, so only the runbook's own text runs here; nothing was run",
                step.number, step.name, target.name
            )));
        }
        if step.attrs.destructive && read_only {
            return Err(Refusal::refused(format!(
                "step {} ({}) is destructive and {} is read-only{}; nothing was run",
                step.number,
                step.name,
                target.name,
                if self.read_only {
                    " (--read-only)"
                } else {
                    " (read_only = true in the config)"
                }
            )));
        }
        if step.attrs.host {
            host_check(target, &super::audit::hostname()).map_err(|why| {
                Refusal::refused(format!(
                    "step {} ({}) runs on the cluster's own machine (host=true): {why}; nothing was run",
                    step.number, step.name
                ))
            })?;
        }
        if step.attrs.background {
            return Err(Refusal::refused(format!(
                "step {} ({}) asks to run in the background, which opsdeck does not do",
                step.number, step.name
            )));
        }
        let vars = &self.run.vars;
        let exported = |k: &str| vars.get(k).unwrap_or_default().to_string();
        let cluster = exported("CLUSTER");
        let shown = vars.shown();
        let used: Vec<(String, String)> = shown
            .into_iter()
            .filter(|(k, _)| super::parse::refers_to(command, k))
            .collect();
        Ok(StepRequest {
            index,
            number: step.number,
            name: step.name.clone(),
            title: step.title.clone(),
            command: command.to_string(),
            edited,
            destructive: step.attrs.destructive,
            needs: if step.attrs.destructive {
                Needs::Typed(cluster.clone())
            } else {
                Needs::Key
            },
            cluster,
            context: exported("CONTEXT"),
            protected: target.protected,
            vars: used,
        })
    }

    /// Whether `answer` confirms `request`.
    pub fn confirm(&self, request: &StepRequest, answer: &Answer) -> Result<Confirmation, Refusal> {
        match (&request.needs, answer) {
            (Needs::Typed(expected), Answer::Typed(typed)) if typed.trim() == expected => {
                Ok(Confirmation::Typed)
            }
            (Needs::Typed(expected), Answer::Typed(typed)) => Err(Refusal::refused(format!(
                "declined: {typed:?} is not {expected:?}; nothing was run"
            ))),
            (Needs::Typed(_), _) => Err(Refusal::refused(format!(
                "step {} ({}) is destructive: it needs the cluster name typed at a terminal; --yes never covers it",
                request.number, request.name
            ))),
            (Needs::Key, Answer::YesFlag) => Ok(Confirmation::YesFlag),
            (Needs::Key, _) => Ok(Confirmation::Key),
        }
    }

    /// Runs a confirmed step: the rules are checked again here (a front end cannot skip them),
    /// the start record is on disk before the process starts, the end record after it ends.
    pub async fn run_step(
        &mut self,
        request: &StepRequest,
        confirmation: Confirmation,
        on_line: impl FnMut(&str),
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, Refusal> {
        if self.lock.is_none() {
            return Err(Refusal::internal(
                "the run does not hold its cluster's lock; nothing was run",
            ));
        }
        let fresh = self.request(request.index, &request.command)?;
        if fresh != *request {
            return Err(Refusal::refused(
                "the step changed since it was confirmed; confirm it again",
            ));
        }
        if fresh.destructive && confirmation != Confirmation::Typed {
            return Err(Refusal::refused(format!(
                "step {} ({}) is destructive: it needs the cluster name typed at a terminal; --yes never covers it",
                fresh.number, fresh.name
            )));
        }
        let reason = self.cancel_reason.clone();
        let outcome = self
            .run
            .run_step(
                request.index,
                &request.command,
                confirmation,
                on_line,
                cancel,
                move || reason.get(),
            )
            .await;
        outcome.map_err(|e| match AuditError::find(&e) {
            Some(a) if a.is_start() => Refusal {
                kind: RefusalKind::Unrecorded,
                message: a.to_string(),
            },
            // The step ran; only its end record is missing: show it to copy.
            Some(a) => Refusal::internal(format!(
                "step {} ran, but {a}; copy its end record:\n{}",
                request.name, a.line
            )),
            None => Refusal::internal(format!("step {} could not run: {e}", request.name)),
        })
    }

    /// Runs a confirmed step whose start record could not be written, after the engineer typed
    /// the cluster's name to accept that: its records go to stderr (or to `shown`, for the
    /// console to put on screen), to be copied.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_step_unrecorded(
        &mut self,
        request: &StepRequest,
        confirmation: Confirmation,
        typed: &str,
        on_line: impl FnMut(&str),
        cancel: &CancellationToken,
        shown: Option<&Arc<Mutex<Vec<String>>>>,
    ) -> Result<StepOutcome, Refusal> {
        let name = self.run.target.name.clone();
        if typed.trim() != name {
            return Err(Refusal::refused(format!(
                "declined; nothing was run ({typed:?} is not {name:?})"
            )));
        }
        let recorded = self.run.audit.clone();
        self.run.audit = match shown {
            Some(shown) => recorded.unrecorded_collected(shown.clone()),
            None => recorded.unrecorded_to_stderr(),
        };
        let outcome = self.run_step(request, confirmation, on_line, cancel).await;
        self.run.audit = recorded;
        outcome
    }

    /// Records a skip with its reason.
    pub fn skip(&mut self, index: usize, reason: &str) -> Result<(), Refusal> {
        if index >= self.run.runbook.steps.len() {
            return Err(Refusal::usage(format!("no step {}", index + 1)));
        }
        self.run.skip(index, reason).map_err(|e| {
            Refusal::internal(format!(
                "cannot write the audit record to {}: {e}",
                self.audit_path()
            ))
        })
    }

    /// Values handed on by the last step, for display (secrets `***`), cleared once read.
    pub fn take_handed_on(&mut self) -> Vec<(String, String)> {
        let shown: BTreeMap<String, String> = self.run.vars.shown();
        let out = self
            .run
            .vars
            .handed_on
            .iter()
            .map(|k| (k.clone(), shown.get(k).cloned().unwrap_or_default()))
            .collect();
        self.run.vars.handed_on.clear();
        out
    }
}
