//! The runbook executor behind the console: one task that owns the runs (their variables, lock
//! and audit log) and carries out exactly the commands the reducer dispatched after the
//! engineer confirmed them, reporting back as events. No terminal code here.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::audit::AuditLog;
use super::driver::{Driver, target_of};
use super::parse::Runbook;
use super::run::{Confirmation, StepState};
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
    /// The console is going away (quit, a signal, the pane closed): cancel a running step with
    /// this reason, wait for its end record, release the lock, and stop.
    Shutdown(String),
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
    driver: Driver,
    cluster: usize,
}

/// Runs until `commands` closes or says Shutdown. `read_only` is the global `--read-only`.
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
    // The running run's cancel reason: its driver is inside the step's task meanwhile.
    let mut reason = super::driver::CancelReason::default();
    loop {
        let cmd = tokio::select! {
            c = commands.recv() => c,
            done = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
                match done {
                    Ok(a) => {
                        send(RunEvent::Vars { shown: a.driver.vars().shown() });
                        active = Some(a);
                    }
                    Err(e) => send(RunEvent::Refused { reason: format!("the step task failed: {e}") }),
                }
                continue;
            }
        };
        let Some(cmd) = cmd else { break };
        match cmd {
            RunCommand::Cancel => {
                reason.set("cancelled by the engineer");
                cancel.cancel();
            }
            RunCommand::Shutdown(why) => {
                reason.set(&why);
                cancel.cancel();
                if let Some(handle) = running.take()
                    && let Ok(mut a) = handle.await
                {
                    a.driver.close().await;
                }
                if let Some(mut a) = active.take() {
                    a.driver.close().await;
                }
                return;
            }
            RunCommand::Close => {
                if running.is_none()
                    && let Some(mut a) = active.take()
                {
                    a.driver.close().await;
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
                let Some(a) =
                    ensure(&config, read_only, &mut active, &runbook, cluster, &send).await
                else {
                    continue;
                };
                for (k, v, secret) in values {
                    if let Err(r) = a.driver.set_var(&k, v, secret, false) {
                        send(RunEvent::Refused { reason: r.message });
                    }
                }
                send(RunEvent::Vars {
                    shown: a.driver.vars().shown(),
                });
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
                let Some(a) =
                    ensure(&config, read_only, &mut active, &runbook, cluster, &send).await
                else {
                    continue;
                };
                match a.driver.skip(index, &reason) {
                    Ok(()) => send(RunEvent::StepFinished {
                        index,
                        state: StepState::Skipped(reason),
                        duration_ms: 0,
                    }),
                    Err(r) => send(RunEvent::Refused { reason: r.message }),
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
                let Some(a) =
                    ensure(&config, read_only, &mut active, &runbook, cluster, &send).await
                else {
                    continue;
                };
                let request = match a.driver.request(index, &command) {
                    Ok(r) => r,
                    Err(r) => {
                        send(RunEvent::Refused { reason: r.message });
                        continue;
                    }
                };
                let Some(mut a) = active.take() else { continue };
                cancel = CancellationToken::new();
                a.driver.cancel_reason = super::driver::CancelReason::default();
                reason = a.driver.cancel_reason.clone();
                let token = cancel.clone();
                let events = events.clone();
                running = Some(tokio::spawn(async move {
                    let _ = events.send(RunEvent::StepStarted { index });
                    let secrets = a.driver.vars().secret_values();
                    let out = events.clone();
                    let outcome = a
                        .driver
                        .run_step(
                            &request,
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
                    let duration_ms = match &outcome {
                        Ok(o) => o.duration.as_millis() as u64,
                        Err(r) => {
                            let _ = events.send(RunEvent::Refused {
                                reason: r.message.clone(),
                            });
                            0
                        }
                    };
                    let _ = events.send(RunEvent::StepFinished {
                        index,
                        state: a.driver.states()[index].clone(),
                        duration_ms,
                    });
                    a
                }));
            }
        }
    }
    reason.set("the console closed");
    cancel.cancel();
    if let Some(handle) = running.take()
        && let Ok(mut a) = handle.await
    {
        a.driver.close().await;
    }
    if let Some(mut a) = active.take() {
        a.driver.close().await;
    }
}

/// The active run for (runbook, cluster), starting one (lock + audit) when needed.
async fn ensure<'a>(
    config: &Config,
    read_only: bool,
    active: &'a mut Option<Active>,
    runbook: &Arc<Runbook>,
    cluster: usize,
    send: &impl Fn(RunEvent),
) -> Option<&'a mut Active> {
    let same = active
        .as_ref()
        .is_some_and(|a| a.cluster == cluster && Arc::ptr_eq(a.driver.runbook(), runbook));
    if !same {
        if let Some(mut old) = active.take() {
            old.driver.close().await;
        }
        let refuse = |reason: String| send(RunEvent::Refused { reason });
        let Some(name) = config.clusters.get(cluster).map(|c| c.name.clone()) else {
            refuse("no such cluster".into());
            return None;
        };
        let target = match target_of(config, &name) {
            Ok(t) => t,
            Err(r) => {
                refuse(r.message);
                return None;
            }
        };
        let audit = AuditLog::new(config.audit_log.clone());
        let mut driver = match Driver::new(runbook.clone(), target, read_only, audit) {
            Ok(d) => d,
            Err(r) => {
                refuse(r.message);
                return None;
            }
        };
        match driver.lock(config).await {
            Ok(warnings) => {
                for w in warnings {
                    send(RunEvent::Output {
                        index: 0,
                        lines: vec![format!("warning: {w}")],
                    });
                }
            }
            // Running on the local lock alone needs the cluster's name typed; the console has
            // no such dialog yet, so it says where to do it.
            Err(r) if r.kind == super::driver::RefusalKind::LockUnreachable => {
                refuse(format!(
                    "{}; running with the local lock only needs the cluster name typed: use `opsdeck runbook run {} --cluster {name}` at a terminal",
                    r.message, runbook.name
                ));
                return None;
            }
            Err(r) => {
                refuse(r.message);
                return None;
            }
        }
        send(RunEvent::Started {
            run_id: driver.id().to_string(),
            cluster,
            audit: driver.audit_path(),
        });
        send(RunEvent::Vars {
            shown: driver.vars().shown(),
        });
        *active = Some(Active { driver, cluster });
    }
    active.as_mut()
}
