//! `opsdeck runbook list|show|run|log`: the runbook engine on a plain terminal (runbooks.md).
//! Exit codes: 0 every step ok, 5 a step failed, 6 refused, 130 cancelled, 3 usage.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cli::exit;
use crate::config::Config;
use crate::runbook::audit::{AuditLog, Record, summary};
use crate::runbook::driver::{
    Answer, CancelReason, Driver, Needs, Refusal, RefusalKind, target_of,
};
use crate::runbook::parse::{Block, Runbook};
use crate::runbook::run::StepState;
use crate::runbook::vars;
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

/// A line typed at the terminal, or `Err(signal)` when a signal (Ctrl-C, SIGHUP, SIGTERM)
/// cancelled the prompt: a prompt never swallows Ctrl-C. The read runs on a plain thread
/// (a blocking read cannot be interrupted, and a plain thread does not hold up the exit).
async fn prompt_line(question: &str, signals: &Signals) -> Result<Option<String>, i32> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let answer = match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        };
        let _ = tx.send(answer);
    });
    tokio::select! {
        answer = rx => Ok(answer.unwrap_or(None)),
        code = signals.cancelled() => {
            eprintln!();
            Err(code)
        }
    }
}

/// Reads a line with terminal echo off (for secrets); echo comes back even when a signal
/// cancels the prompt.
async fn prompt_secret(question: &str, signals: &Signals) -> Result<Option<String>, i32> {
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
    let answer = prompt_line(question, signals).await;
    if have {
        // SAFETY: restores what tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
    }
    answer
}

/// SIGINT, SIGHUP and SIGTERM during a run: the first one cancels the running step (its end
/// record says which signal) or the open prompt, and decides the exit code (130, 129, 143).
struct Signals {
    token: CancellationToken,
    code: Arc<std::sync::atomic::AtomicI32>,
}

impl Signals {
    fn install(reason: CancelReason) -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let token = CancellationToken::new();
        let code = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let mut streams = Vec::new();
        for (kind, name, exit_code) in [
            (SignalKind::interrupt(), "SIGINT", CANCELLED),
            (SignalKind::hangup(), "SIGHUP", 129),
            (SignalKind::terminate(), "SIGTERM", 143),
        ] {
            streams.push((signal(kind)?, name, exit_code));
        }
        for (mut stream, name, exit_code) in streams {
            let (token, code, reason) = (token.clone(), code.clone(), reason.clone());
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    reason.set(name);
                    let _ = code.compare_exchange(
                        0,
                        exit_code,
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                    );
                    token.cancel();
                }
            });
        }
        Ok(Signals { token, code })
    }

    /// Waits for a signal; returns its exit code.
    async fn cancelled(&self) -> i32 {
        self.token.cancelled().await;
        self.code()
    }

    fn code(&self) -> i32 {
        match self.code.load(std::sync::atomic::Ordering::SeqCst) {
            0 => CANCELLED,
            c => c,
        }
    }
}

fn audit_for(config: &Config) -> AuditLog {
    AuditLog::new(config.audit_log.clone())
}

fn refusal_code(r: &Refusal) -> i32 {
    match r.kind {
        RefusalKind::Usage => exit::USAGE,
        RefusalKind::Refused | RefusalKind::Unrecorded | RefusalKind::LockUnreachable => REFUSED,
        RefusalKind::Internal => exit::INTERNAL,
    }
}

/// Prints a refusal the way the command line words it and returns its exit code.
fn refuse(r: &Refusal) -> i32 {
    match r.kind {
        RefusalKind::Refused => eprintln!("opsdeck: refused: {}", r.message),
        RefusalKind::Unrecorded => eprintln!("opsdeck: refused, nothing was run: {}", r.message),
        RefusalKind::LockUnreachable => eprintln!("opsdeck: refused: {}", r.message),
        _ => eprintln!("opsdeck: {}", r.message),
    }
    refusal_code(r)
}

/// `opsdeck runbook run`: the driver decides, this only renders its prompts on a terminal.
pub async fn run(config: &Config, args: &RunArgs) -> i32 {
    let target = match target_of(config, &args.cluster) {
        Ok(t) => t,
        Err(r) => return refuse(&r),
    };
    let runbook = match find(config, &args.name) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut driver = match Driver::new(runbook.clone(), target, args.read_only, audit_for(config)) {
        Ok(d) => d,
        Err(r) => return refuse(&r),
    };
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

    // Variables: --var first (never secrets), then the environment for declared secrets,
    // then prompts. The driver refuses what may not be set.
    for a in &args.vars {
        let (k, v) = match vars::parse_assignment(a) {
            Ok(kv) => kv,
            Err(e) => {
                eprintln!("opsdeck: {e}");
                return exit::USAGE;
            }
        };
        if let Err(r) = driver.set_var(&k, v, false, true) {
            return refuse(&r);
        }
    }
    for d in runbook.vars.iter().filter(|d| d.secret) {
        if let Ok(v) = std::env::var(&d.name)
            && let Err(r) = driver.set_var(&d.name, v, true, false)
        {
            return refuse(&r);
        }
    }

    if !args.dry_run {
        // Say up front which steps cannot run here, and why (host-level steps off their host,
        // the simulator's Postgres tools without a real PostgreSQL).
        let this_host = crate::runbook::audit::hostname();
        for step in selected.iter().map(|&i| &runbook.steps[i]) {
            if step.attrs.host
                && let Err(why) = crate::runbook::driver::host_check(driver.target(), &this_host)
            {
                eprintln!(
                    "warning: step {} ({}) will be refused: {why}",
                    step.number, step.name
                );
            }
            #[cfg(feature = "sim")]
            if driver.target().host.as_deref() == Some(crate::config::SIMULATED_HOST)
                && crate::sim::exec::names_postgres_tool(&step.command)
                && let Err(why) = crate::sim::exec::postgres_bin_dir()
            {
                eprintln!(
                    "warning: step {} ({}) cannot run on the simulated fleet: it runs psql/pg_dump in postgres-0, which needs a real PostgreSQL: {why}",
                    step.number, step.name
                );
            }
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

    let signals = match Signals::install(driver.cancel_reason.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("opsdeck: cannot watch for signals: {e}");
            return exit::INTERNAL;
        }
    };
    if !args.dry_run {
        let taken = match driver.lock(config).await {
            Err(r) if r.kind == RefusalKind::LockUnreachable => {
                eprintln!("opsdeck: {}", r.message);
                if !tty {
                    eprintln!(
                        "opsdeck: refused: running with the local lock only needs the cluster name typed at a terminal, and --yes never covers it"
                    );
                    return REFUSED;
                }
                let prod = if driver.target().protected {
                    " [PROD]"
                } else {
                    ""
                };
                let question = format!(
                    "The cluster API of {}{prod} is unreachable, so the cross-machine lock cannot be taken; type the cluster name to run with the local lock only: ",
                    driver.target().name
                );
                match prompt_line(&question, &signals).await {
                    Ok(typed) => {
                        driver
                            .lock_local_only(config, &typed.unwrap_or_default())
                            .await
                    }
                    Err(code) => return code,
                }
            }
            other => other,
        };
        match taken {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
            }
            Err(r) => return refuse(&r),
        }
    }
    let code = drive(&mut driver, args, &selected, tty, &signals).await;
    driver.close().await;
    code
}

/// The steps of a command-line run, each asked for and confirmed through the driver.
async fn drive(
    driver: &mut Driver,
    args: &RunArgs,
    selected: &[usize],
    tty: bool,
    signals: &Signals,
) -> i32 {
    let runbook = driver.runbook().clone();
    let prod = if driver.target().protected {
        " [PROD]"
    } else {
        ""
    };
    eprintln!(
        "runbook {} on {}{prod} (context {}), run {}",
        runbook.name,
        driver.vars().get("CLUSTER").unwrap_or_default(),
        driver.vars().get("CONTEXT").unwrap_or_default(),
        driver.id()
    );
    for &i in selected {
        let step = runbook.steps[i].clone();
        // Ask for the declared variables this step uses, once, before it.
        for d in driver.missing_vars(i) {
            let value = if d.secret {
                if !tty {
                    eprintln!(
                        "opsdeck: refused: secret {} has no value; set the environment variable {} or run at a terminal",
                        d.name, d.name
                    );
                    return REFUSED;
                }
                match prompt_secret(&format!("{} (secret): ", d.prompt), signals).await {
                    Ok(v) => v,
                    Err(code) => return code,
                }
            } else if tty && !args.yes && !args.dry_run {
                let def = d
                    .default
                    .as_deref()
                    .map(|v| format!(" [{v}]"))
                    .unwrap_or_default();
                match prompt_line(&format!("{}{def}: ", d.prompt), signals).await {
                    Ok(v) => v.map(|a| {
                        if a.is_empty() {
                            d.default.clone().unwrap_or_default()
                        } else {
                            a
                        }
                    }),
                    Err(code) => return code,
                }
            } else {
                d.default.clone()
            };
            match value {
                Some(v) => {
                    if let Err(r) = driver.set_var(&d.name, v, d.secret, false) {
                        return refuse(&r);
                    }
                }
                None => {
                    eprintln!(
                        "opsdeck: refused: {} has no value and no default; pass --var {}=VALUE",
                        d.name, d.name
                    );
                    return REFUSED;
                }
            }
        }
        let request = match driver.request(i, &step.command) {
            Ok(r) => r,
            Err(r) => return refuse(&r),
        };
        let kind = if request.destructive {
            "DESTRUCTIVE step"
        } else {
            "step"
        };
        eprintln!(
            "\n[{}/{}] {kind} {} · {}  →  {}{prod} (context {})",
            request.number,
            runbook.steps.len(),
            request.name,
            request.title,
            request.cluster,
            request.context
        );
        for l in request.command.lines() {
            eprintln!("  │ {l}");
        }
        if !request.vars.is_empty() {
            let block: Vec<String> = request
                .vars
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!("  with {}", block.join(" "));
        }
        if args.dry_run {
            eprintln!("  (dry run: not run)");
            continue;
        }
        let answer = match &request.needs {
            Needs::Typed(name) => {
                match prompt_line(
                    &format!("This step changes {name}{prod}. Type the cluster name to run it: "),
                    signals,
                )
                .await
                {
                    Ok(t) => Answer::Typed(t.unwrap_or_default()),
                    Err(code) => return code,
                }
            }
            Needs::Key if args.yes => Answer::YesFlag,
            Needs::Key => {
                let reply = match prompt_line("Run it? [y/N/s=skip] ", signals).await {
                    Ok(r) => r.unwrap_or_default(),
                    Err(code) => return code,
                };
                match reply.trim() {
                    "y" | "Y" | "yes" => Answer::Key,
                    "s" | "S" | "skip" => {
                        let reason = match prompt_line("Reason for skipping: ", signals).await {
                            Ok(r) => r.unwrap_or_default(),
                            Err(code) => return code,
                        };
                        if let Err(r) = driver.skip(i, &reason) {
                            return refuse(&r);
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
            }
        };
        let confirmation = match driver.confirm(&request, &answer) {
            Ok(c) => c,
            Err(r) => return refuse(&r),
        };
        let secrets = driver.vars().secret_values();
        let mut stdout = std::io::stdout();
        let outcome = driver
            .run_step(
                &request,
                confirmation,
                |line| {
                    let _ = writeln!(stdout, "{}", crate::runbook::audit::mask(line, &secrets));
                },
                &signals.token,
            )
            .await;
        let outcome = match outcome {
            Err(r) if r.kind == RefusalKind::Unrecorded => {
                // Nothing ran: the start record could not be written.
                eprintln!("opsdeck: refused, nothing was run: {}", r.message);
                if !tty {
                    eprintln!(
                        "opsdeck: free the disk or fix `audit_log` in the config, then resume with --from {}",
                        step.name
                    );
                    return REFUSED;
                }
                let typed = match prompt_line(
                    &format!(
                        "To run step {} WITHOUT a record (it will be printed here to copy), type the cluster name: ",
                        step.name
                    ),
                    signals,
                )
                .await
                {
                    Ok(t) => t.unwrap_or_default(),
                    Err(code) => return code,
                };
                driver
                    .run_step_unrecorded(
                        &request,
                        confirmation,
                        &typed,
                        |line| {
                            let _ =
                                writeln!(stdout, "{}", crate::runbook::audit::mask(line, &secrets));
                        },
                        &signals.token,
                        None,
                    )
                    .await
            }
            other => other,
        };
        let o = match outcome {
            Err(r) => {
                let code = refuse(&r);
                return if r.kind == RefusalKind::Internal {
                    FAILED
                } else {
                    code
                };
            }
            Ok(o) => o,
        };
        let secs = o.duration.as_secs_f64();
        match &driver.states()[i] {
            StepState::Ok => eprintln!("  ✓ ok in {secs:.1}s"),
            StepState::Failed(why) => {
                if signals.token.is_cancelled() {
                    eprintln!(
                        "  ✗ cancelled after {secs:.1}s; its process group was stopped. Resume with --from {}",
                        step.name
                    );
                    return signals.code();
                }
                eprintln!(
                    "  ✗ failed ({why}) after {secs:.1}s. Fix it, then resume with --from {}",
                    step.name
                );
                return FAILED;
            }
            _ => {}
        }
        for (k, v) in driver.take_handed_on() {
            eprintln!("  → {k}={v}");
        }
        if signals.token.is_cancelled() {
            return signals.code();
        }
    }
    exit::OK
}

/// Past runs, or one run (optionally as markdown for the incident timeline). Damaged lines
/// are skipped with a warning naming each; a start record without an end is `abandoned`
/// once nobody holds the run (the cluster's lock is free) or the action's process is gone.
pub fn log(config: &Config, run_id: Option<&str>, markdown: bool) -> i32 {
    let audit = audit_for(config);
    let read = match audit.read() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opsdeck: cannot read {}: {e}", audit.path().display());
            return exit::INTERNAL;
        }
    };
    for line in &read.damaged {
        eprintln!(
            "warning: {}:{line}: damaged record skipped",
            audit.path().display()
        );
    }
    let records = read.records;
    match run_id {
        None => {
            let fallback = config.fallback_lock_dir();
            let dirs = [config.lock_dir.as_path(), fallback.as_path()];
            let held = |cluster: &str| summary::lock_held_in(&dirs, cluster);
            for r in summary::runs(&records, held) {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.run_id,
                    r.runbook,
                    r.cluster,
                    r.user,
                    r.started_at,
                    r.counts_text()
                );
            }
            for a in summary::actions(&records, summary::writer_alive) {
                println!(
                    "action\t{}\t{}\t{}\t{}\t{}",
                    a.action,
                    a.target,
                    a.user,
                    a.started_at,
                    a.result.replace(['\n', '\t'], " ")
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
