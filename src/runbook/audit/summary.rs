//! What the records say happened, worked out when reading: each run's steps with their final
//! state, each action with its result, and `abandoned` for a start record with no end whose
//! writer is gone (a killed console, a dropped SSH session).

use std::path::Path;

use super::{ACTION, ACTION_STARTED, Record};

/// Where a step of a run ended up (its last record wins: a retried step that passed is ok).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFinal {
    Ok,
    /// Non-zero exit, a signal, a cancel, or could not start; the text says which.
    Failed(String),
    Skipped(String),
    /// Started, no end yet, and the run still holds the cluster's lock.
    Running,
    /// Started, no end, and nobody holds the run any more.
    Abandoned,
}

impl StepFinal {
    pub fn label(&self) -> &'static str {
        match self {
            StepFinal::Ok => "ok",
            StepFinal::Failed(_) => "failed",
            StepFinal::Skipped(_) => "skipped",
            StepFinal::Running => "running",
            StepFinal::Abandoned => "abandoned",
        }
    }
}

/// One run of a runbook, from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub cluster: String,
    pub user: String,
    pub started_at: String,
    /// Each step the run touched, in the order it first appears, with its final state.
    pub steps: Vec<(String, StepFinal)>,
}

impl RunSummary {
    /// How many steps ended in the state labelled `label` (`ok`, `failed`, ...).
    pub fn count(&self, label: &str) -> usize {
        self.steps
            .iter()
            .filter(|(_, s)| s.label() == label)
            .count()
    }

    /// `ok N failed N skipped N`, then `abandoned N` and `running N` when there are any.
    pub fn counts_text(&self) -> String {
        let mut text = format!(
            "ok {} failed {} skipped {}",
            self.count("ok"),
            self.count("failed"),
            self.count("skipped")
        );
        for extra in ["abandoned", "running"] {
            let n = self.count(extra);
            if n > 0 {
                text.push_str(&format!(" {extra} {n}"));
            }
        }
        text
    }
}

/// Every run in `records`, in the order they started. `lock_held(cluster)` says whether that
/// cluster's run lock is held now: a step with no end is `Running` only while it is held and
/// its run is that cluster's latest; otherwise it is `Abandoned`.
pub fn runs(records: &[Record], lock_held: impl Fn(&str) -> bool) -> Vec<RunSummary> {
    let mut out: Vec<RunSummary> = Vec::new();
    for r in records {
        let Some(id) = r.run_id.as_deref() else {
            continue;
        };
        let idx = match out.iter().position(|s| s.run_id == id) {
            Some(i) => i,
            None => {
                out.push(RunSummary {
                    run_id: id.to_string(),
                    runbook: r.runbook.clone().unwrap_or_default(),
                    cluster: r.cluster.clone(),
                    user: r.actor.user.clone(),
                    started_at: r.started_at.clone(),
                    steps: Vec::new(),
                });
                out.len() - 1
            }
        };
        let state = match r.event.as_str() {
            "step_started" => StepFinal::Running,
            "step_finished" => finished_state(r),
            "step_skipped" => StepFinal::Skipped(r.reason.clone().unwrap_or_default()),
            _ => continue,
        };
        let step = r.step.clone().unwrap_or_default();
        let steps = &mut out[idx].steps;
        match steps.iter_mut().find(|(s, _)| *s == step) {
            Some(slot) => slot.1 = state,
            None => steps.push((step, state)),
        }
    }
    let latest: Vec<(String, String)> = {
        let mut l: Vec<(String, String)> = Vec::new();
        for s in &out {
            match l.iter_mut().find(|(c, _)| *c == s.cluster) {
                Some(slot) => slot.1 = s.run_id.clone(),
                None => l.push((s.cluster.clone(), s.run_id.clone())),
            }
        }
        l
    };
    for s in &mut out {
        let is_latest = latest
            .iter()
            .any(|(c, id)| *c == s.cluster && *id == s.run_id);
        let alive = is_latest
            && s.steps.iter().any(|(_, st)| *st == StepFinal::Running)
            && lock_held(&s.cluster);
        if !alive {
            for (_, st) in &mut s.steps {
                if *st == StepFinal::Running {
                    *st = StepFinal::Abandoned;
                }
            }
        }
    }
    out
}

fn finished_state(r: &Record) -> StepFinal {
    match (r.exit_code, &r.signal, &r.result) {
        (Some(0), _, _) => StepFinal::Ok,
        (_, _, Some(res)) if res == "ok" => StepFinal::Ok,
        (_, Some(sig), _) => StepFinal::Failed(sig.clone()),
        (Some(c), _, _) => StepFinal::Failed(format!("exit {c}")),
        (None, None, Some(res)) => StepFinal::Failed(res.clone()),
        (None, None, None) => StepFinal::Failed("no exit code".into()),
    }
}

/// One action (quick action, ArgoCD, exec, port-forward), from its start and end records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSummary {
    pub action: String,
    pub target: String,
    pub user: String,
    pub started_at: String,
    /// The end record's `result` (`ok` or the error text), else `running` or `abandoned`.
    pub result: String,
}

/// Every action in `records`, in the order they started. A start with no end is `running`
/// while `alive(start)` (its process is still there), else `abandoned`. End records written
/// without a start (older versions) stand alone.
pub fn actions(records: &[Record], alive: impl Fn(&Record) -> bool) -> Vec<ActionSummary> {
    let mut out: Vec<(Option<String>, ActionSummary, Option<&Record>)> = Vec::new();
    for r in records {
        let summary = |result: String| ActionSummary {
            action: r.action.clone().unwrap_or_default(),
            target: r.target.clone().unwrap_or_default(),
            user: r.actor.user.clone(),
            started_at: r.started_at.clone(),
            result,
        };
        match r.event.as_str() {
            ACTION_STARTED => out.push((r.action_id.clone(), summary(String::new()), Some(r))),
            ACTION => {
                let result = r.result.clone().unwrap_or_default();
                let open = r.action_id.as_ref().and_then(|id| {
                    out.iter_mut().find(|(i, s, start)| {
                        i.as_ref() == Some(id) && start.is_some() && s.result.is_empty()
                    })
                });
                match open {
                    Some((_, s, start)) => {
                        s.result = result;
                        *start = None;
                    }
                    None => out.push((r.action_id.clone(), summary(result), None)),
                }
            }
            _ => {}
        }
    }
    out.into_iter()
        .map(|(_, mut s, start)| {
            if let Some(start) = start {
                s.result = if alive(start) { "running" } else { "abandoned" }.into();
            }
            s
        })
        .collect()
}

/// Whether the process that wrote `start` is still there: same host, and its pid alive.
pub fn writer_alive(start: &Record) -> bool {
    let Some(pid) = start.pid else {
        return false;
    };
    if start.actor.host != super::hostname() || pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `cluster`'s run lock is held in any of `dirs` (the configured lock_dir and its
/// fallback).
pub fn lock_held_in(dirs: &[&Path], cluster: &str) -> bool {
    dirs.iter()
        .any(|d| crate::runbook::lock::current_holder(d, cluster).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: &str, run: &str, step: &str) -> Record {
        Record {
            event: event.into(),
            run_id: Some(run.into()),
            runbook: Some("rb".into()),
            step: Some(step.into()),
            cluster: "production".into(),
            started_at: "t".into(),
            exit_code: (event == "step_finished").then_some(0),
            ..Default::default()
        }
    }

    #[test]
    fn a_step_without_end_is_abandoned_unless_its_run_holds_the_lock() {
        let records = vec![
            rec("step_started", "r1", "a"),
            rec("step_finished", "r1", "a"),
            rec("step_started", "r1", "b"),
            rec("step_started", "r2", "a"),
        ];
        let free = runs(&records, |_| false);
        assert_eq!(free[0].counts_text(), "ok 1 failed 0 skipped 0 abandoned 1");
        assert_eq!(free[1].steps[0].1, StepFinal::Abandoned);
        // Held: only the cluster's latest run can be the one holding it.
        let held = runs(&records, |_| true);
        assert_eq!(held[0].steps[1].1, StepFinal::Abandoned);
        assert_eq!(held[1].steps[0].1, StepFinal::Running);
        assert_eq!(held[1].counts_text(), "ok 0 failed 0 skipped 0 running 1");
    }

    #[test]
    fn a_retried_step_counts_once_with_its_last_state() {
        let mut failed = rec("step_finished", "r1", "a");
        failed.exit_code = Some(1);
        let records = vec![
            rec("step_started", "r1", "a"),
            failed,
            rec("step_started", "r1", "a"),
            rec("step_finished", "r1", "a"),
        ];
        assert_eq!(
            runs(&records, |_| false)[0].counts_text(),
            "ok 1 failed 0 skipped 0"
        );
    }

    #[test]
    fn actions_pair_by_id_and_an_orphan_start_is_abandoned_or_running() {
        let start = |id: &str| Record {
            event: ACTION_STARTED.into(),
            action: Some("workload.scale".into()),
            action_id: Some(id.into()),
            target: Some("production/apps/deployment/web".into()),
            cluster: "production".into(),
            started_at: "t".into(),
            ..Default::default()
        };
        let end = |id: &str, result: &str| Record {
            event: ACTION.into(),
            result: Some(result.into()),
            ..start(id)
        };
        let legacy = Record {
            action_id: None,
            ..end("x", "ok")
        };
        let records = vec![legacy, start("1"), start("2"), end("1", "scaling: 409")];
        let got: Vec<String> = actions(&records, |_| false)
            .into_iter()
            .map(|a| a.result)
            .collect();
        assert_eq!(got, ["ok", "scaling: 409", "abandoned"]);
        assert_eq!(actions(&records, |_| true)[2].result, "running");
    }
}
