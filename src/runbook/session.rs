//! The runbook executor behind the console: one task that owns the runs (their variables, lock
//! and audit log) and carries out exactly the commands the reducer dispatched after the
//! engineer confirmed them, reporting back as events. No terminal code here.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::audit::AuditLog;
use super::lock::{self, LockRefusal, RunLockSet};
use super::parse::Runbook;
use super::run::{Confirmation, Run, StepState};
use super::vars::{RunVars, Target};
use crate::config::Config;

/// What the console asks the executor to do (always after the engineer confirmed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// Values for declared variables, from the form.
    SetVars {
        runbook: Arc<Runbook>,
        cluster: usize,
        values: Vec<(String, String, bool)>,
    },
    /// Run one step with this exact text.
    Step {
        runbook: Arc<Runbook>,
        cluster: usize,
        index: usize,
        command: String,
        confirmation: Confirmation,
    },
    Skip {
        runbook: Arc<Runbook>,
        cluster: usize,
        index: usize,
        reason: String,
    },
    /// Cancel the running step (SIGTERM to its group, SIGKILL after a grace period).
    Cancel,
    /// The engineer closed the runbook: release the cluster's lock.
    Close,
}

/// What the executor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    Started {
        run_id: String,
        cluster: usize,
        audit: String,
    },
    Refused {
        reason: String,
    },
    StepStarted {
        index: usize,
    },
    Output {
        index: usize,
        lines: Vec<String>,
    },
    StepFinished {
        index: usize,
        state: StepState,
        duration_ms: u64,
    },
    /// Every variable of the run, secrets as `***`.
    Vars {
        shown: BTreeMap<String, String>,
    },
}

struct Active {
    run: Run,
    cluster: usize,
    lock: RunLockSet,
}

/// Runs until `commands` closes. `read_only` is the global `--read-only`.
pub async fn executor(
    config: Config,
    read_only: bool,
    mut commands: UnboundedReceiver<RunCommand>,
    events: UnboundedSender<RunEvent>,
) {
    let mut active: Option<Active> = None;
    let mut cancel = CancellationToken::new();
    let send = |e: RunEvent| {
        let _ = events.send(e);
    };
    // A step runs in its own task so Cancel can reach it; the run comes back when it ends.
    let mut running: Option<tokio::task::JoinHandle<Active>> = None;
    loop {
        let cmd = tokio::select! {
            c = commands.recv() => c,
            done = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
                match done {
                    Ok(a) => {
                        send(RunEvent::Vars { shown: a.run.vars.shown() });
                        active = Some(a);
                    }
                    Err(e) => send(RunEvent::Refused { reason: format!("the step task failed: {e}") }),
                }
                continue;
            }
        };
        let Some(cmd) = cmd else { break };
        match cmd {
            RunCommand::Cancel => cancel.cancel(),
            RunCommand::Close => {
                if running.is_none()
                    && let Some(a) = active.take()
                {
                    a.lock.release().await;
                }
            }
            RunCommand::SetVars {
                runbook,
                cluster,
                values,
            } => {
                if running.is_some() {
                    send(RunEvent::Refused {
                        reason: "a step is running".into(),
                    });
                    continue;
                }
                match ensure(&config, &mut active, &runbook, cluster, &send).await {
                    Some(a) => {
                        for (k, v, secret) in values {
                            a.run.vars.set(&k, v, secret);
                        }
                        send(RunEvent::Vars {
                            shown: a.run.vars.shown(),
                        });
                    }
                    None => continue,
                }
            }
            RunCommand::Skip {
                runbook,
                cluster,
                index,
                reason,
            } => {
                if running.is_some() {
                    send(RunEvent::Refused {
                        reason: "a step is running".into(),
                    });
                    continue;
                }
                let Some(a) = ensure(&config, &mut active, &runbook, cluster, &send).await else {
                    continue;
                };
                match a.run.skip(index, &reason) {
                    Ok(()) => send(RunEvent::StepFinished {
                        index,
                        state: StepState::Skipped(reason),
                        duration_ms: 0,
                    }),
                    Err(e) => send(RunEvent::Refused {
                        reason: format!("cannot write the audit record: {e}"),
                    }),
                }
            }
            RunCommand::Step {
                runbook,
                cluster,
                index,
                command,
                confirmation,
            } => {
                if running.is_some() {
                    send(RunEvent::Refused {
                        reason: "a step is already running".into(),
                    });
                    continue;
                }
                let Some(a) = ensure(&config, &mut active, &runbook, cluster, &send).await else {
                    continue;
                };
                let step = &runbook.steps[index];
                if let Err(reason) = super::run::check(step, &a.run.target, read_only, confirmation)
                {
                    send(RunEvent::Refused { reason });
                    continue;
                }
                let Some(mut a) = active.take() else { continue };
                cancel = CancellationToken::new();
                let token = cancel.clone();
                let events = events.clone();
                running = Some(tokio::spawn(async move {
                    let _ = events.send(RunEvent::StepStarted { index });
                    let secrets = a.run.vars.secret_values();
                    let out = events.clone();
                    let outcome = a
                        .run
                        .run_step(
                            index,
                            &command,
                            confirmation,
                            |line| {
                                let _ = out.send(RunEvent::Output {
                                    index,
                                    lines: vec![super::audit::mask(line, &secrets)],
                                });
                            },
                            &token,
                        )
                        .await;
                    let duration_ms = outcome
                        .as_ref()
                        .map(|o| o.duration.as_millis() as u64)
                        .unwrap_or(0);
                    if let Err(e) = &outcome {
                        let _ = events.send(RunEvent::Output {
                            index,
                            lines: vec![format!("opsdeck: could not run the step: {e}")],
                        });
                    }
                    let _ = events.send(RunEvent::StepFinished {
                        index,
                        state: a.run.states[index].clone(),
                        duration_ms,
                    });
                    a
                }));
            }
        }
    }
    cancel.cancel();
}

/// The active run for (runbook, cluster), starting one (lock + audit) when needed.
async fn ensure<'a>(
    config: &Config,
    active: &'a mut Option<Active>,
    runbook: &Arc<Runbook>,
    cluster: usize,
    send: &impl Fn(RunEvent),
) -> Option<&'a mut Active> {
    let same = active
        .as_ref()
        .is_some_and(|a| a.cluster == cluster && Arc::ptr_eq(&a.run.runbook, runbook));
    if !same {
        *active = None;
        let Some(cfg) = config.clusters.get(cluster) else {
            send(RunEvent::Refused {
                reason: "no such cluster".into(),
            });
            return None;
        };
        let target = Target::from_config(cfg);
        if let Err(reason) = super::run::allowed_target(runbook, &target) {
            send(RunEvent::Refused { reason });
            return None;
        }
        let lock = match lock::acquire_run_lock(config, cfg, &runbook.name, false).await {
            Ok(l) => l,
            // Running on the local lock alone needs the cluster's name typed; the console
            // has no such dialog yet (a follow-up), so it says where to do it.
            Err(LockRefusal::Unreachable { cluster, reason }) => {
                send(RunEvent::Refused {
                    reason: format!(
                        "the API of {cluster} is unreachable ({reason}), so the cross-machine lock cannot be taken; running with the local lock only needs the cluster name typed: use `opsdeck runbook run {} --cluster {cluster}` at a terminal",
                        runbook.name
                    ),
                });
                return None;
            }
            Err(e) => {
                send(RunEvent::Refused {
                    reason: e.to_string(),
                });
                return None;
            }
        };
        for w in lock.warnings() {
            tracing::warn!("runbook lock: {w}");
        }
        let vars = RunVars::for_target(&target);
        let run = match Run::new(
            runbook.clone(),
            target,
            vars,
            AuditLog::new(config.audit_log.clone()),
        ) {
            Ok(r) => r,
            Err(e) => {
                send(RunEvent::Refused {
                    reason: format!("cannot prepare the run: {e}"),
                });
                return None;
            }
        };
        send(RunEvent::Started {
            run_id: run.id.clone(),
            cluster,
            audit: config.audit_log.display().to_string(),
        });
        send(RunEvent::Vars {
            shown: run.vars.shown(),
        });
        *active = Some(Active { run, cluster, lock });
    }
    active.as_mut()
}
