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
    /// `then` (a step or a skip) again, after the engineer typed the cluster's name (`typed`)
    /// to accept what [`RunEvent::NeedsOverride`] said.
    Override {
        kind: Override,
        typed: String,
        then: Box<RunCommand>,
    },
}

/// What the engineer may accept by typing the cluster's name when a rule cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// The cluster's API is unreachable, so the cross-machine lock (the Lease) cannot be taken:
    /// run on the local lock alone.
    LocalLockOnly,
    /// The step's audit record cannot be written: run it anyway, its records shown on screen
    /// to be copied.
    Unrecorded,
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
    /// `then` was not carried out: it needs the cluster's name typed to accept `kind`, for the
    /// reason given. Nothing ran.
    NeedsOverride {
        cluster: usize,
        kind: Override,
        reason: String,
        then: Box<RunCommand>,
    },
    /// The run is over (every step ok or skipped): its lock is released.
    Finished,
    /// Whether the audit log writes from its reserve (the disk is full), after each step.
    AuditReserve {
        path: String,
        in_use: bool,
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
                    Ok(mut a) => {
                        send(RunEvent::Vars { shown: a.driver.vars().shown() });
                        send(RunEvent::AuditReserve {
                            path: a.driver.audit_path(),
                            in_use: AuditLog::new(a.driver.audit_path()).reserve_in_use(),
                        });
                        if a.driver.finished() {
                            a.driver.close().await;
                            send(RunEvent::Finished);
                        }
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
                if !a.driver.locked() {
                    match lock(&config, a, None).await {
                        Ok(warnings) => send_warnings(&send, warnings),
                        Err(e) => {
                            send(needs(
                                e,
                                cluster,
                                RunCommand::Skip {
                                    runbook: runbook.clone(),
                                    cluster,
                                    index,
                                    reason: reason.clone(),
                                },
                            ));
                            continue;
                        }
                    }
                }
                match a.driver.skip(index, &reason) {
                    Ok(()) => send(RunEvent::StepFinished {
                        index,
                        state: StepState::Skipped(reason),
                        duration_ms: 0,
                    }),
                    Err(r) => send(RunEvent::Refused { reason: r.message }),
                }
            }
            RunCommand::Override { kind, typed, then } => {
                if running.is_some() {
                    send(RunEvent::Refused {
                        reason: "a step is already running".into(),
                    });
                    continue;
                }
                if let Some(handle) = step(
                    &config,
                    read_only,
                    &mut active,
                    *then,
                    Some((kind, typed)),
                    &events,
                )
                .await
                {
                    (cancel, reason, running) = (handle.0, handle.1, Some(handle.2));
                }
            }
            cmd @ RunCommand::Step { .. } => {
                if running.is_some() {
                    send(RunEvent::Refused {
                        reason: "a step is already running".into(),
                    });
                    continue;
                }
                if let Some(handle) =
                    step(&config, read_only, &mut active, cmd, None, &events).await
                {
                    (cancel, reason, running) = (handle.0, handle.1, Some(handle.2));
                }
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
        let driver = match Driver::new(runbook.clone(), target, read_only, audit) {
            Ok(d) => d,
            Err(r) => {
                refuse(r.message);
                return None;
            }
        };
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

type StepHandle = (
    CancellationToken,
    super::driver::CancelReason,
    tokio::task::JoinHandle<Active>,
);

/// Refusal reports for a lock or record that needs the engineer's typed override.
fn needs(r: super::driver::Refusal, cluster: usize, then: RunCommand) -> RunEvent {
    use super::driver::RefusalKind;
    let kind = match r.kind {
        RefusalKind::LockUnreachable => Override::LocalLockOnly,
        RefusalKind::Unrecorded => Override::Unrecorded,
        _ => return RunEvent::Refused { reason: r.message },
    };
    RunEvent::NeedsOverride {
        cluster,
        kind,
        reason: r.message,
        then: Box::new(then),
    }
}

fn send_warnings(send: &impl Fn(RunEvent), warnings: Vec<String>) {
    for w in warnings {
        send(RunEvent::Output {
            index: 0,
            lines: vec![format!("warning: {w}")],
        });
    }
}

/// Takes the run's lock for its first step: the lock is held exactly while the run is open and
/// doing something, never for a run whose step never started.
async fn lock(
    config: &Config,
    a: &mut Active,
    local_only: Option<&str>,
) -> Result<Vec<String>, super::driver::Refusal> {
    match local_only {
        Some(typed) => a.driver.lock_local_only(config, typed).await,
        None => a.driver.lock(config).await,
    }
}

/// Starts a confirmed step (with an override the engineer typed for), or says why not.
async fn step(
    config: &Config,
    read_only: bool,
    active: &mut Option<Active>,
    cmd: RunCommand,
    with: Option<(Override, String)>,
    events: &UnboundedSender<RunEvent>,
) -> Option<StepHandle> {
    let send = |e: RunEvent| {
        let _ = events.send(e);
    };
    let RunCommand::Step {
        runbook,
        cluster,
        index,
        command,
        confirmation,
    } = cmd.clone()
    else {
        // An override of a skip.
        if let (
            RunCommand::Skip {
                runbook,
                cluster,
                index,
                reason,
            },
            Some((Override::LocalLockOnly, typed)),
        ) = (&cmd, &with)
        {
            let a = ensure(config, read_only, active, runbook, *cluster, &send).await?;
            match lock(config, a, Some(typed)).await {
                Ok(w) => send_warnings(&send, w),
                Err(r) => {
                    send(RunEvent::Refused { reason: r.message });
                    return None;
                }
            }
            match a.driver.skip(*index, reason) {
                Ok(()) => send(RunEvent::StepFinished {
                    index: *index,
                    state: StepState::Skipped(reason.clone()),
                    duration_ms: 0,
                }),
                Err(r) => send(RunEvent::Refused { reason: r.message }),
            }
        }
        return None;
    };
    let a = ensure(config, read_only, active, &runbook, cluster, &send).await?;
    let request = match a.driver.request(index, &command) {
        Ok(r) => r,
        Err(r) => {
            send(RunEvent::Refused { reason: r.message });
            return None;
        }
    };
    if !a.driver.locked() {
        let local_only = match &with {
            Some((Override::LocalLockOnly, typed)) => Some(typed.as_str()),
            _ => None,
        };
        match lock(config, a, local_only).await {
            Ok(w) => send_warnings(&send, w),
            Err(r) => {
                send(needs(r, cluster, cmd));
                return None;
            }
        }
    }
    let unrecorded = match with {
        Some((Override::Unrecorded, typed)) => Some(typed),
        _ => None,
    };
    let mut a = active.take()?;
    let cancel = CancellationToken::new();
    a.driver.cancel_reason = super::driver::CancelReason::default();
    let reason = a.driver.cancel_reason.clone();
    let token = cancel.clone();
    let events = events.clone();
    let handle = tokio::spawn(async move {
        let _ = events.send(RunEvent::StepStarted { index });
        let secrets = a.driver.vars().secret_values();
        let out = events.clone();
        let on_line = |line: &str| {
            let _ = out.send(RunEvent::Output {
                index,
                lines: vec![super::audit::mask(line, &secrets)],
            });
        };
        let outcome = match &unrecorded {
            None => {
                a.driver
                    .run_step(&request, confirmation, on_line, &token)
                    .await
            }
            Some(typed) => {
                let shown = Arc::new(std::sync::Mutex::new(Vec::new()));
                let o = a
                    .driver
                    .run_step_unrecorded(
                        &request,
                        confirmation,
                        typed,
                        on_line,
                        &token,
                        Some(&shown),
                    )
                    .await;
                let lines = shown.lock().map(|l| l.clone()).unwrap_or_default();
                if !lines.is_empty() {
                    let _ = events.send(RunEvent::Output { index, lines });
                }
                o
            }
        };
        let duration_ms = match &outcome {
            Ok(o) => o.duration.as_millis() as u64,
            Err(r) => {
                let _ = events.send(needs(r.clone(), cluster, cmd));
                0
            }
        };
        let _ = events.send(RunEvent::StepFinished {
            index,
            state: a.driver.states()[index].clone(),
            duration_ms,
        });
        a
    });
    Some((cancel, reason, handle))
}
