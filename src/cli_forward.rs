//! `opsdeck forward --list | CLUSTER/NAME...`: port-forward shortcuts without the TUI.
//! stdout carries only the contract lines (`CLUSTER/NAME<TAB>TARGET` for `--list`,
//! `CLUSTER/NAME<TAB>LOCAL` once each forward listens); everything else goes to stderr.
//! Exit codes: 0 after a clean Ctrl-C/SIGTERM, 5 a forward could not be opened, 3 an unknown
//! name (interfaces.md).

use std::future::Future;
use std::io::Write;

use crate::cli::exit;
use crate::config::Config;
use crate::forward::{ForwardSnapshot, ForwardState, Forwards, local_display};

/// A forward could not be opened.
pub const FAILED: i32 = 5;

/// The `--list` lines: `CLUSTER/NAME<TAB>TARGET` per shortcut, in config order.
pub fn list_lines(config: &Config) -> Vec<String> {
    config
        .forwards
        .iter()
        .map(|f| format!("{}/{}\t{}", f.cluster, f.name, f.target))
        .collect()
}

/// `opsdeck forward --list`.
pub async fn list(config: &Config) -> i32 {
    let mut out = std::io::stdout().lock();
    for line in list_lines(config) {
        if writeln!(out, "{line}").is_err() {
            return exit::INTERNAL;
        }
    }
    if config.forwards.is_empty() {
        eprintln!("opsdeck: no [[forward]] shortcuts in the config (see config.example.toml)");
    }
    exit::OK
}

/// `opsdeck forward CLUSTER/NAME...`: runs them until Ctrl-C or SIGTERM.
pub async fn run(config: &Config, names: &[String]) -> i32 {
    let stop = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                eprintln!("opsdeck: cannot watch for SIGTERM ({e}); stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    run_until(config, names, &mut std::io::stdout(), stop).await
}

/// [`run`] with the output and the stop signal supplied (tests drive it in-process).
pub async fn run_until(
    config: &Config,
    names: &[String],
    out: &mut (dyn Write + Send),
    stop: impl Future<Output = ()>,
) -> i32 {
    if names.is_empty() {
        eprintln!(
            "opsdeck: name at least one forward as CLUSTER/NAME (see `opsdeck forward --list`)"
        );
        return exit::USAGE;
    }
    let known: Vec<String> = config
        .forwards
        .iter()
        .map(|f| format!("{}/{}", f.cluster, f.name))
        .collect();
    let unknown: Vec<&String> = names.iter().filter(|n| !known.contains(n)).collect();
    if !unknown.is_empty() {
        for n in unknown {
            eprintln!(
                "opsdeck: no forward named {n:?}; configured: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        return exit::USAGE;
    }
    let forwards = Forwards::new(config);
    for name in names {
        match forwards.start(name).await {
            Ok(addr) => {
                let scheme = config
                    .forwards
                    .iter()
                    .find(|f| format!("{}/{}", f.cluster, f.name) == *name)
                    .and_then(|f| f.scheme);
                let line = format!("{name}\t{}\n", local_display(addr, scheme));
                if out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    forwards.shutdown().await;
                    return exit::INTERNAL;
                }
            }
            Err(e) => {
                eprintln!("opsdeck: forward {name}: {e}");
                forwards.shutdown().await;
                return FAILED;
            }
        }
    }
    // Report state changes (reconnecting, back up) on stderr while running.
    let mut rx = forwards.subscribe();
    let mut last = rx.borrow_and_update().clone();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            r = rx.changed() => {
                if r.is_err() {
                    break;
                }
                let snap = rx.borrow_and_update().clone();
                report_changes(&last, &snap, names);
                last = snap;
            }
        }
    }
    eprintln!("opsdeck: stopping {} forward(s)", names.len());
    forwards.shutdown().await;
    exit::OK
}

fn report_changes(before: &ForwardSnapshot, now: &ForwardSnapshot, names: &[String]) {
    for f in now.shortcuts.iter().filter(|f| names.contains(&f.id())) {
        let was_up = before.get(&f.id()).is_none_or(|b| b.state.is_up());
        let was = before.get(&f.id()).map(|b| &b.state);
        match &f.state {
            ForwardState::Reconnecting(_) | ForwardState::Failed(_) if was != Some(&f.state) => {
                eprintln!("opsdeck: {}: {}", f.id(), f.state);
            }
            s if s.is_up() && !was_up => eprintln!(
                "opsdeck: {}: back up (pod {})",
                f.id(),
                f.pod.as_deref().unwrap_or("?")
            ),
            _ => {}
        }
    }
}
