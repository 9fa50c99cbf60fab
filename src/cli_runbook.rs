//! `opsdeck runbook list|show|run|log`: the runbook engine on a plain terminal (runbooks.md).
//! Exit codes: 0 every step ok, 5 a step failed, 6 refused, 130 cancelled, 3 usage.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cli::exit;
use crate::config::Config;
use crate::runbook::audit::{AuditLog, Record};
use crate::runbook::lock::{self, LockRefusal, RunLockSet};
use crate::runbook::parse::{Block, Runbook};
use crate::runbook::run::{self, Confirmation, Run, StepState};
use crate::runbook::vars::{self, RunVars, Target};
use crate::runbook::{self as rb, Origin};

pub const FAILED: i32 = 5;
pub const REFUSED: i32 = 6;
pub const CANCELLED: i32 = 130;

/// What `runbook run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub name: String,
    pub cluster: String,
    pub from: Option<String>,
    pub dry_run: bool,
    pub vars: Vec<String>,
    pub yes: bool,
    pub read_only: bool,
}

fn find(config: &Config, name: &str) -> Result<Arc<Runbook>, i32> {
    let (all, problems) = rb::catalog(config.runbooks_dir.as_deref());
    for p in &problems {
        eprintln!("warning: {p}");
    }
    match all.into_iter().find(|(r, _)| r.name == name) {
        Some((r, _)) => Ok(r),
        None => {
            let (all, _) = rb::catalog(config.runbooks_dir.as_deref());
            let names: Vec<_> = all.iter().map(|(r, _)| r.name.clone()).collect();
            eprintln!(
                "opsdeck: no runbook named {name:?}; there are: {}",
                names.join(", ")
            );
            Err(exit::USAGE)
        }
    }
}

pub fn list(config: &Config) -> i32 {
    let (all, problems) = rb::catalog(config.runbooks_dir.as_deref());
    for p in &problems {
        eprintln!("warning: {p}");
    }
    for (r, origin) in all {
        let from = match origin {
            Origin::Embedded => String::new(),
            Origin::File(p) => format!("  ({})", p.display()),
        };
        println!("{}\t{}\t{} steps{from}", r.name, r.title, r.steps.len());
    }
    exit::OK
}

/// The runbook as text with its steps numbered.
pub fn render_text(r: &Runbook) -> String {
    let mut out = format!("{} ({})\n", r.title, r.name);
    if !r.summary.is_empty() {
        out.push_str(&format!("{}\n", r.summary));
    }
    if !r.vars.is_empty() {
        out.push_str("\nVariables:\n");
        for v in &r.vars {
            let default = v
                .default
                .as_deref()
                .map(|d| format!(" (default {d})"))
                .unwrap_or_default();
            let secret = if v.secret { " [secret]" } else { "" };
            out.push_str(&format!("  {}: {}{default}{secret}\n", v.name, v.prompt));
        }
    }
    out.push('\n');
    for b in &r.blocks {
        match b {
            Block::Markdown(m) => out.push_str(m),
            Block::Step(i) => {
                let s = &r.steps[*i];
                let mut marks = Vec::new();
                if s.attrs.destructive {
                    marks.push("DESTRUCTIVE");
                }
                if s.attrs.verify {
                    marks.push("verify");
                }
                if s.attrs.interactive {
                    marks.push("interactive");
                }
                let marks = if marks.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", marks.join(", "))
                };
                out.push_str(&format!("\n  Step {} · {}{marks}\n", s.number, s.name));
                for l in s.command.lines() {
                    out.push_str(&format!("  │ {l}\n"));
                }
                out.push('\n');
            }
        }
    }
    out
}

pub fn show(config: &Config, name: &str) -> i32 {
    match find(config, name) {
        Ok(r) => {
            print!("{}", render_text(&r));
            exit::OK
        }
        Err(code) => code,
    }
}

fn prompt_line(question: &str) -> Option<String> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
    }
}

/// Reads a line with terminal echo off (for secrets).
fn prompt_secret(question: &str) -> Option<String> {
    use std::os::fd::AsRawFd;
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed, then filled, termios struct.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    let saved = term;
    if have {
        term.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    }
    let answer = prompt_line(question);
    if have {
        // SAFETY: restores what tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
    }
    answer
}

fn audit_for(config: &Config) -> AuditLog {
    AuditLog::new(config.audit_log.clone())
}

pub async fn run(config: &Config, args: &RunArgs) -> i32 {
    // The run lock outlives every early return below and is released (the Lease deleted,
    // not left to expire) before the exit code goes back.
    let mut held = None;
    let code = run_holding(config, args, &mut held).await;
    if let Some(locks) = held {
        locks.release().await;
    }
    code
}

/// Takes the run lock of `cluster`; on an unreachable API, asks for the typed confirmation to
/// run with the local lock only (never without a terminal). `Err` is the exit code.
async fn take_run_lock(
    config: &Config,
    cluster: &crate::config::ClusterConfig,
    target: &Target,
    runbook: &str,
    tty: bool,
) -> Result<RunLockSet, i32> {
    let mut allow_local_only = false;
    loop {
        match lock::acquire_run_lock(config, cluster, runbook, allow_local_only).await {
            Ok(locks) => {
                for w in locks.warnings() {
                    eprintln!("warning: {w}");
                }
                return Ok(locks);
            }
            Err(LockRefusal::Unreachable { reason, .. }) if !allow_local_only => {
                eprintln!("opsdeck: {reason}");
                if !tty {
                    eprintln!(
                        "opsdeck: refused: the cluster API is unreachable, so the cross-machine lock cannot be taken; running with the local lock only needs the cluster name typed at a terminal, and --yes never covers it"
                    );
                    return Err(REFUSED);
                }
                let prod = if target.protected { " [PROD]" } else { "" };
                let typed = prompt_line(&format!(
                    "The cluster API of {}{prod} is unreachable, so the cross-machine lock cannot be taken; type the cluster name to run with the local lock only: ",
                    target.name
                ))
                .unwrap_or_default();
                if !run::typed_matches(&typed, target) {
                    eprintln!(
                        "opsdeck: declined: {typed:?} is not {:?}; nothing was run",
                        target.name
                    );
                    return Err(REFUSED);
                }
                allow_local_only = true;
            }
            Err(e) if e.is_refusal() => {
                eprintln!("opsdeck: refused: {e}");
                return Err(REFUSED);
            }
            Err(e) => {
                eprintln!("opsdeck: {e}");
                return Err(exit::INTERNAL);
            }
        }
    }
}

async fn run_holding(config: &Config, args: &RunArgs, held: &mut Option<RunLockSet>) -> i32 {
    let Some(cluster) = config.cluster(&args.cluster) else {
        let names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "opsdeck: no cluster named {:?}; configured: {}",
            args.cluster,
            names.join(", ")
        );
        return exit::USAGE;
    };
    let target = Target::from_config(cluster);
    let runbook = match find(config, &args.name) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Err(e) = run::allowed_target(&runbook, &target) {
        eprintln!("opsdeck: refused: {e}");
        return REFUSED;
    }
    let start = match &args.from {
        None => 0,
        Some(which) => match runbook.find_step(which) {
            Some(i) => i,
            None => {
                let names: Vec<_> = runbook
                    .steps
                    .iter()
                    .map(|s| format!("{} {}", s.number, s.name))
                    .collect();
                eprintln!(
                    "opsdeck: --from {which:?}: no such step; steps: {}",
                    names.join(", ")
                );
                return exit::USAGE;
            }
        },
    };
    let tty = std::io::stdin().is_terminal();
    let selected: Vec<usize> = (start..runbook.steps.len())
        .filter(|&i| !runbook.steps[i].attrs.exclude_from_run_all)
        .collect();

    // Variables: --var first (never secrets), then the environment for secrets, then prompts.
    let mut vars = RunVars::for_target(&target);
    for a in &args.vars {
        match vars::parse_assignment(a) {
            Ok((k, v)) => {
                if runbook.vars.iter().any(|d| d.name == k && d.secret) {
                    eprintln!(
                        "opsdeck: {k} is secret: it never comes from --var (it would show in ps); set the environment variable {k} or answer the prompt"
                    );
                    return exit::USAGE;
                }
                vars.set(&k, v, false);
            }
            Err(e) => {
                eprintln!("opsdeck: {e}");
                return exit::USAGE;
            }
        }
    }
    for d in runbook.vars.iter().filter(|d| d.secret) {
        if let Ok(v) = std::env::var(&d.name) {
            vars.set(&d.name, v, true);
        }
    }

    if !args.dry_run && !tty && !args.yes {
        eprintln!(
            "opsdeck: refused: no terminal to confirm steps on; run at a terminal, or pass --yes to answer plain steps"
        );
        return REFUSED;
    }
    if !args.dry_run && !tty {
        let destructive: Vec<_> = selected
            .iter()
            .map(|&i| &runbook.steps[i])
            .filter(|s| s.attrs.destructive)
            .collect();
        if !destructive.is_empty() {
            let names: Vec<_> = destructive
                .iter()
                .map(|s| format!("{} {}", s.number, s.name))
                .collect();
            eprintln!(
                "opsdeck: refused, nothing run: destructive steps ({}) need the cluster name typed at a terminal, and --yes never covers them",
                names.join(", ")
            );
            return REFUSED;
        }
    }

    if !args.dry_run {
        match take_run_lock(config, cluster, &target, &runbook.name, tty).await {
            Ok(locks) => *held = Some(locks),
            Err(code) => return code,
        }
    }

    let mut run = match Run::new(runbook.clone(), target.clone(), vars, audit_for(config)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opsdeck: cannot prepare the run: {e}");
            return exit::INTERNAL;
        }
    };
    let prod = if target.protected { " [PROD]" } else { "" };
    eprintln!(
        "runbook {} on {}{prod} (context {}), run {}",
        runbook.name, target.name, target.context, run.id
    );
    let cancel = CancellationToken::new();
    let sig = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            sig.cancel();
        }
    });

    for &i in &selected {
        let step = runbook.steps[i].clone();
        // Ask for the declared variables this step uses, once, before it.
        for d in runbook.vars_used_by(&step) {
            if run.vars.get(&d.name).is_some() {
                continue;
            }
            let value = if d.secret {
                if !tty {
                    eprintln!(
                        "opsdeck: refused: secret {} has no value; set the environment variable {} or run at a terminal",
                        d.name, d.name
                    );
                    return REFUSED;
                }
                prompt_secret(&format!("{} (secret): ", d.prompt))
            } else if tty && !args.yes && !args.dry_run {
                let def = d
                    .default
                    .as_deref()
                    .map(|v| format!(" [{v}]"))
                    .unwrap_or_default();
                prompt_line(&format!("{}{def}: ", d.prompt)).map(|a| {
                    if a.is_empty() {
                        d.default.clone().unwrap_or_default()
                    } else {
                        a
                    }
                })
            } else {
                d.default.clone()
            };
            match value {
                Some(v) => run.vars.set(&d.name, v, d.secret),
                None => {
                    eprintln!(
                        "opsdeck: refused: {} has no value and no default; pass --var {}=VALUE",
                        d.name, d.name
                    );
                    return REFUSED;
                }
            }
        }
        let kind = if step.attrs.destructive {
            "DESTRUCTIVE step"
        } else {
            "step"
        };
        eprintln!(
            "\n[{}/{}] {kind} {} · {}  →  {}{prod}",
            step.number,
            runbook.steps.len(),
            step.name,
            step.title,
            target.name
        );
        for l in step.command.lines() {
            eprintln!("  │ {l}");
        }
        if args.dry_run {
            let used: Vec<String> = run
                .vars
                .shown()
                .into_iter()
                .filter(|(k, _)| crate::runbook::parse::refers_to(&step.command, k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!(
                "  (dry run: not run{}{})",
                if used.is_empty() { "" } else { "; with " },
                used.join(" ")
            );
            continue;
        }
        let confirmation = if step.attrs.destructive {
            if let Err(e) = run::check(&step, &target, args.read_only, Confirmation::Typed) {
                eprintln!("opsdeck: refused: {e}");
                return REFUSED;
            }
            let typed = prompt_line(&format!(
                "This step changes {}{prod}. Type the cluster name to run it: ",
                target.name
            ))
            .unwrap_or_default();
            if !run::typed_matches(&typed, &target) {
                eprintln!(
                    "opsdeck: declined: {typed:?} is not {:?}; nothing was run",
                    target.name
                );
                return REFUSED;
            }
            Confirmation::Typed
        } else if args.yes {
            Confirmation::YesFlag
        } else {
            match prompt_line("Run it? [y/N/s=skip] ")
                .unwrap_or_default()
                .trim()
            {
                "y" | "Y" | "yes" => Confirmation::Key,
                "s" | "S" | "skip" => {
                    let reason = prompt_line("Reason for skipping: ").unwrap_or_default();
                    if let Err(e) = run.skip(i, &reason) {
                        eprintln!("opsdeck: cannot write the audit record: {e}");
                        return exit::INTERNAL;
                    }
                    continue;
                }
                _ => {
                    eprintln!(
                        "declined; nothing was run. Resume with --from {}",
                        step.name
                    );
                    return REFUSED;
                }
            }
        };
        if let Err(e) = run::check(&step, &target, args.read_only, confirmation) {
            eprintln!("opsdeck: refused: {e}");
            return REFUSED;
        }
        let secrets = run.vars.secret_values();
        let mut stdout = std::io::stdout();
        let outcome = run
            .run_step(
                i,
                &step.command,
                confirmation,
                |line| {
                    let _ = writeln!(stdout, "{}", crate::runbook::audit::mask(line, &secrets));
                },
                &cancel,
            )
            .await;
        match outcome {
            Err(e) => {
                eprintln!("opsdeck: step {} could not run: {e}", step.name);
                return FAILED;
            }
            Ok(o) => {
                let secs = o.duration.as_secs_f64();
                match &run.states[i] {
                    StepState::Ok => eprintln!("  ✓ ok in {secs:.1}s"),
                    StepState::Failed(why) => {
                        eprintln!(
                            "  ✗ failed ({why}) after {secs:.1}s. Fix it, then resume with --from {}",
                            step.name
                        );
                        return if cancel.is_cancelled() {
                            CANCELLED
                        } else {
                            FAILED
                        };
                    }
                    _ => {}
                }
                for k in &run.vars.handed_on {
                    eprintln!(
                        "  → {k}={}",
                        run.vars.shown().get(k).cloned().unwrap_or_default()
                    );
                }
                run.vars.handed_on.clear();
            }
        }
    }
    exit::OK
}

/// Past runs, or one run (optionally as markdown for the incident timeline).
pub fn log(config: &Config, run_id: Option<&str>, markdown: bool) -> i32 {
    let audit = audit_for(config);
    let records = match audit.read_all() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opsdeck: cannot read {}: {e}", audit.path().display());
            return exit::INTERNAL;
        }
    };
    match run_id {
        None => {
            let mut ids: Vec<&str> = Vec::new();
            for r in &records {
                if let Some(id) = r.run_id.as_deref()
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
            for id in ids {
                let recs: Vec<&Record> = records
                    .iter()
                    .filter(|r| r.run_id.as_deref() == Some(id))
                    .collect();
                let first = recs[0];
                let ok = recs
                    .iter()
                    .filter(|r| r.event == "step_finished" && r.exit_code == Some(0))
                    .count();
                let failed = recs
                    .iter()
                    .filter(|r| r.event == "step_finished" && r.exit_code != Some(0))
                    .count();
                let skipped = recs.iter().filter(|r| r.event == "step_skipped").count();
                println!(
                    "{id}\t{}\t{}\t{}\t{}\tok {ok} failed {failed} skipped {skipped}",
                    first.runbook.as_deref().unwrap_or(""),
                    first.cluster,
                    first.actor.user,
                    first.started_at
                );
            }
            for r in records.iter().filter(|r| r.event == "action") {
                println!(
                    "action\t{}\t{}\t{}\t{}\t{}",
                    r.action.as_deref().unwrap_or(""),
                    r.target.as_deref().unwrap_or(""),
                    r.actor.user,
                    r.started_at,
                    r.result.as_deref().unwrap_or("")
                );
            }
            exit::OK
        }
        Some(id) => {
            let recs: Vec<&Record> = records
                .iter()
                .filter(|r| r.run_id.as_deref() == Some(id))
                .collect();
            if recs.is_empty() {
                eprintln!("opsdeck: no run {id} in {}", audit.path().display());
                return exit::USAGE;
            }
            if markdown {
                let f = recs[0];
                println!(
                    "### Runbook `{}` on `{}` (run {id})\n",
                    f.runbook.as_deref().unwrap_or(""),
                    f.cluster
                );
                println!(
                    "By {} on {}{}.\n",
                    f.actor.user,
                    f.actor.host,
                    f.actor
                        .ssh_client
                        .as_deref()
                        .map(|s| format!(" from {s}"))
                        .unwrap_or_default()
                );
                println!("| time (UTC) | step | event | result |\n|---|---|---|---|");
                for r in &recs {
                    let result = match r.event.as_str() {
                        "step_finished" => match (r.exit_code, &r.signal) {
                            (Some(0), _) => "ok".to_string(),
                            (Some(c), _) => format!("failed (exit {c})"),
                            (None, Some(s)) => s.clone(),
                            _ => r.result.clone().unwrap_or_default(),
                        },
                        "step_skipped" => format!("skipped: {}", r.reason.as_deref().unwrap_or("")),
                        _ => format!(
                            "confirmed by {}{}",
                            r.confirmation.as_deref().unwrap_or("?"),
                            if r.edited { ", edited" } else { "" }
                        ),
                    };
                    let when = r.finished_at.as_deref().unwrap_or(&r.started_at);
                    println!(
                        "| {when} | {} | {} | {result} |",
                        r.step.as_deref().unwrap_or(""),
                        r.event
                    );
                }
            } else {
                for r in recs {
                    println!("{}", serde_json::to_string(r).unwrap_or_default());
                }
            }
            exit::OK
        }
    }
}
