//! One run of a runbook against one cluster: the safety rules (read-only, typed confirmation,
//! `--yes` never covering a destructive step) and the audit records around every step.

use std::sync::Arc;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::audit::{Actor, AuditLog, Record};
use super::exec::{self, StepOutcome, StepSpec};
use super::parse::{Runbook, Step};
use super::vars::{RunVars, Target};

/// How the engineer agreed to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// One key (y/Enter) for a plain step.
    Key,
    /// The cluster's name typed, for a destructive step.
    Typed,
    /// `--yes` on the command line: plain steps only.
    YesFlag,
}

impl Confirmation {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirmation::Key => "key",
            Confirmation::Typed => "typed",
            Confirmation::YesFlag => "yes-flag",
        }
    }
}

/// Where a step stands in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    Pending,
    Running,
    Ok,
    Failed(String),
    Skipped(String),
}

impl StepState {
    pub fn label(&self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Ok => "ok",
            StepState::Failed(_) => "failed",
            StepState::Skipped(_) => "skipped",
        }
    }
}

/// Whether a runbook may target this cluster at all (front matter `targets`).
pub fn allowed_target(runbook: &Runbook, target: &Target) -> Result<(), String> {
    if runbook.targets.is_empty() || runbook.targets.iter().any(|t| t == &target.name) {
        Ok(())
    } else {
        Err(format!(
            "runbook {} is for {} only, not {}",
            runbook.name,
            runbook.targets.join(", "),
            target.name
        ))
    }
}

fn now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A run in progress.
pub struct Run {
    pub id: String,
    pub runbook: Arc<Runbook>,
    pub target: Target,
    pub vars: RunVars,
    pub states: Vec<StepState>,
    pub audit: AuditLog,
    pub actor: Actor,
    env_dir: tempfile::TempDir,
}

impl Run {
    pub fn new(
        runbook: Arc<Runbook>,
        target: Target,
        vars: RunVars,
        audit: AuditLog,
    ) -> std::io::Result<Run> {
        let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
        let id = format!("{stamp}-{:04x}", rand::random::<u16>());
        let states = vec![StepState::Pending; runbook.steps.len()];
        Ok(Run {
            id,
            runbook,
            target,
            vars,
            states,
            audit,
            actor: Actor::current(),
            env_dir: tempfile::tempdir()?,
        })
    }

    pub fn env_file(&self) -> std::path::PathBuf {
        self.env_dir.path().join("opsdeck.env")
    }

    fn record(&self, event: &str, step: &Step) -> Record {
        Record {
            event: event.into(),
            run_id: Some(self.id.clone()),
            runbook: Some(self.runbook.name.clone()),
            runbook_sha256: Some(self.runbook.sha256.clone()),
            step: Some(step.name.clone()),
            cluster: self.target.name.clone(),
            context: self.target.context.clone(),
            actor: self.actor.clone(),
            vars: self.vars.shown(),
            started_at: now(),
            ..Default::default()
        }
    }

    /// Records a skip with its reason.
    pub fn skip(&mut self, index: usize, reason: &str) -> std::io::Result<()> {
        let step = &self.runbook.steps[index];
        let mut rec = self.record("step_skipped", step);
        rec.reason = Some(reason.to_string());
        rec.command = Some(step.command.clone());
        self.audit.append(&rec, &self.vars.secret_values())?;
        self.states[index] = StepState::Skipped(reason.to_string());
        Ok(())
    }

    /// Runs step `index` with `command` (the runbook's text, or the engineer's edit). The start
    /// record is on disk before the process starts; the finish record follows its end.
    pub async fn run_step(
        &mut self,
        index: usize,
        command: &str,
        confirmation: Confirmation,
        mut on_line: impl FnMut(&str),
        cancel: &CancellationToken,
        cancel_reason: impl Fn() -> Option<String>,
    ) -> std::io::Result<StepOutcome> {
        let step = self.runbook.steps[index].clone();
        let edited = command != step.command;
        let secrets = self.vars.secret_values();
        let mut rec = self.record("step_started", &step);
        rec.command = Some(command.to_string());
        rec.edited = edited;
        rec.confirmation = Some(confirmation.as_str().into());
        self.audit.append(&rec, &secrets)?;
        self.states[index] = StepState::Running;
        let env_file = self.env_file();
        std::fs::write(&env_file, "")?;
        let spec = StepSpec {
            command: command.to_string(),
            env: self.vars.env(&env_file),
            cwd: step.attrs.cwd.as_ref().map(Into::into),
            timeout: step.attrs.timeout_s.map(std::time::Duration::from_secs),
            interactive: step.attrs.interactive,
            grace: std::time::Duration::from_secs(5),
        };
        // If the process must end mid-step (a panic), the step still gets its end record.
        let abort_record = {
            let (audit, secrets, mut fin) = (self.audit.clone(), secrets.clone(), rec.clone());
            let started = std::time::Instant::now();
            exec::register_on_abort(Box::new(move |reason| {
                fin.event = "step_finished".into();
                fin.finished_at = Some(now());
                fin.result = Some("cancelled".into());
                fin.signal = Some(reason.to_string());
                fin.duration_ms = Some(started.elapsed().as_millis() as u64);
                let _ = audit.append(&fin, &secrets);
            }))
        };
        let outcome = exec::run(&spec, &mut on_line, cancel).await;
        let mut fin = rec.clone();
        fin.event = "step_finished".into();
        fin.finished_at = Some(now());
        match &outcome {
            Ok(o) => {
                fin.exit_code = o.exit_code();
                fin.signal = o.signal_name();
                if o.ending == exec::Ending::Cancelled {
                    fin.result = Some("cancelled".into());
                    // Who cancelled it: a signal's name, `quit`, `panic`...
                    if let Some(why) = cancel_reason().or_else(|| o.cancel_reason.clone()) {
                        fin.signal = Some(why);
                    }
                }
                fin.duration_ms = Some(o.duration.as_millis() as u64);
                let tail: Vec<&str> = o
                    .tail
                    .iter()
                    .rev()
                    .take(20)
                    .rev()
                    .map(String::as_str)
                    .collect();
                fin.output_tail = Some(tail.join("\n"));
                fin.output_sha256 = Some(o.output_sha256.clone());
                self.states[index] = if o.ok() {
                    StepState::Ok
                } else {
                    StepState::Failed(
                        o.signal_name()
                            .unwrap_or_else(|| format!("exit {}", o.exit_code().unwrap_or(-1))),
                    )
                };
            }
            Err(e) => {
                fin.result = Some(format!("could not start: {e}"));
                self.states[index] = StepState::Failed(format!("could not start: {e}"));
            }
        }
        let appended = self.audit.append(&fin, &secrets);
        drop(abort_record);
        appended?;
        if matches!(self.states[index], StepState::Ok) {
            for notice in self.vars.take_handed_on(&env_file).notices() {
                on_line(&notice);
            }
        }
        outcome
    }
}
