//! Running one step: `bash -euo pipefail -c TEXT` in its own process group, stdin closed
//! (unless interactive), stdout and stderr streamed line by line and kept bounded; cancel and
//! timeout send SIGTERM to the whole group, then SIGKILL after a grace period.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Lines of output kept for the pane and the audit tail.
pub const TAIL_LINES: usize = 400;
/// A longer line is cut (a step printing one huge line must not eat memory).
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone)]
pub struct StepSpec {
    pub command: String,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub interactive: bool,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub ending: Ending,
    pub duration: Duration,
    pub tail: VecDeque<String>,
    pub output_sha256: String,
    pub output_bytes: u64,
}

impl StepOutcome {
    pub fn ok(&self) -> bool {
        self.ending == Ending::Exited(0)
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self.ending {
            Ending::Exited(c) => Some(c),
            _ => None,
        }
    }

    pub fn signal_name(&self) -> Option<String> {
        match self.ending {
            Ending::Signalled(s) => Some(format!("signal {s}")),
            Ending::TimedOut => Some("timeout".into()),
            Ending::Cancelled => Some("cancelled".into()),
            Ending::Exited(_) => None,
        }
    }
}

async fn pump(reader: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<Vec<u8>>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(buf.clone()).is_err() {
                    return;
                }
            }
        }
    }
}

fn signal_group(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the step's own process group (negative pid).
    unsafe { libc::kill(-(pid as i32), sig) };
}

/// Runs one step to its end. Each output line goes to `on_line` as it arrives.
pub async fn run(
    spec: &StepSpec,
    mut on_line: impl FnMut(&str),
    cancel: &CancellationToken,
) -> std::io::Result<StepOutcome> {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.args([
        "--noprofile",
        "--norc",
        "-e",
        "-u",
        "-o",
        "pipefail",
        "-c",
        &spec.command,
    ]);
    cmd.env_clear();
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if spec.interactive {
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
    } else {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.process_group(0);
    }
    cmd.kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, tx.clone()));
    }
    drop(tx);
    let mut hasher = Sha256::new();
    let mut tail = VecDeque::new();
    let mut bytes = 0u64;
    let mut take = |line: Vec<u8>, tail: &mut VecDeque<String>| {
        hasher.update(&line);
        bytes += line.len() as u64;
        let mut text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if text.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" …[line cut]");
        }
        on_line(&text);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut stopping: Option<(Ending, tokio::time::Instant)> = None;
    let status = loop {
        let kill_at = stopping.as_ref().map(|(_, t)| *t);
        tokio::select! {
            status = child.wait() => break status?,
            Some(line) = rx.recv() => take(line, &mut tail),
            _ = cancel.cancelled(), if stopping.is_none() => {
                signal_group(pid, libc::SIGTERM);
                stopping = Some((Ending::Cancelled, tokio::time::Instant::now() + spec.grace));
            }
            _ = sleep_until_opt(deadline), if stopping.is_none() && deadline.is_some() => {
                signal_group(pid, libc::SIGTERM);
                stopping = Some((Ending::TimedOut, tokio::time::Instant::now() + spec.grace));
            }
            _ = sleep_until_opt(kill_at), if kill_at.is_some() => {
                signal_group(pid, libc::SIGKILL);
                if let Some((_, t)) = stopping.as_mut() { *t = tokio::time::Instant::now() + Duration::from_secs(3600); }
            }
        }
    };
    // Whatever the step left running in its group goes too: no survivors, and no pipe held open.
    if !spec.interactive && pid != 0 {
        signal_group(pid, libc::SIGTERM);
        let drain_until = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            tokio::select! {
                line = rx.recv() => match line { Some(l) => take(l, &mut tail), None => break },
                _ = tokio::time::sleep_until(drain_until) => { signal_group(pid, libc::SIGKILL); break; }
            }
        }
        while let Ok(l) = rx.try_recv() {
            take(l, &mut tail);
        }
    }
    use std::os::unix::process::ExitStatusExt;
    let ending = match stopping {
        Some((e, _)) => e,
        None => match (status.code(), status.signal()) {
            (Some(c), _) => Ending::Exited(c),
            (None, Some(s)) => Ending::Signalled(s),
            (None, None) => Ending::Exited(-1),
        },
    };
    Ok(StepOutcome {
        ending,
        duration: started.elapsed(),
        tail,
        output_sha256: format!("{:x}", hasher.finalize()),
        output_bytes: bytes,
    })
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
