//! The audit log: the one writer every state-changing action goes through (runbook steps, quick
//! actions, ArgoCD actions, exec, port-forwards), and its reader.
//!
//! Writing: a record is one JSON line, written with one `write` on an O_APPEND descriptor under
//! an flock, then fsynced — whole or not at all (a short write is truncated away). An action
//! first writes its start record ([`AuditLog::begin`]: `step_started`, `action_started`) and only
//! then acts; [`Pending::finish`] writes the end (`step_finished`, `action`, with the same
//! `action_id`). A write that fails refuses the action, naming the file and the OS error. A
//! small preallocated reserve file beside the log is given back on ENOSPC so the runbook that
//! frees the disk can still be recorded. Secret values are masked in the fields' values before
//! serializing, never in the JSON text.
//!
//! Reading: [`AuditLog::read`] skips damaged lines and says which; [`summary::runs`] and
//! [`summary::actions`] work out each step's and action's final state, `abandoned` included.

pub mod summary;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use summary::{ActionSummary, RunSummary, StepFinal, actions, runs};

/// Size of the reserve kept beside the log (`audit.jsonl.reserve`): room for a few hundred
/// records once the disk is full.
pub const RESERVE_BYTES: u64 = 64 * 1024;

/// Who is at the keyboard, as well as the machine can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The real uid's login name (getpwuid), never `$USER`.
    pub user: String,
    /// `$SUDO_USER`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// `$SSH_CONNECTION` (else `$SSH_CLIENT`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_client: Option<String>,
    pub host: String,
}

impl Actor {
    pub fn current() -> Actor {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        // SAFETY: getuid(2) has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        Actor {
            user: login_name(uid).unwrap_or_else(|| format!("uid:{uid}")),
            sudo_user: var("SUDO_USER"),
            ssh_client: var("SSH_CONNECTION").or_else(|| var("SSH_CLIENT")),
            host: hostname(),
        }
    }
}

/// The login name of `uid` from the password database, if it has one.
pub fn login_name(uid: libc::uid_t) -> Option<String> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: zeroed passwd is a valid out-parameter; buf is valid for its length;
        // getpwuid_r only writes within them and sets `found` to null or to `&pwd`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points at a NUL-terminated string inside buf.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A record's time: UTC, at most millisecond precision (`2026-11-25T03:00:00.123Z`).
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One line of the audit file. Field names are the contract in runbooks.md.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Pairs an `action_started` record with its `action` end record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub cluster: String,
    #[serde(default)]
    pub context: String,
    #[serde(flatten)]
    pub actor: Actor,
    /// The process that wrote a start record: a reader on the same host tells a running
    /// action from an abandoned one by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default)]
    pub edited: bool,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record {
    /// The start record of an action (`event: "action_started"`), written by
    /// [`AuditLog::begin`] before the action acts. `action` is the dotted kind (`argocd.sync`),
    /// `target` what it acts on (`production/argocd/APP`), `confirmation` how the engineer
    /// agreed (`key`, `typed`, ...).
    pub fn action_started(
        action: &str,
        target: &str,
        cluster: &str,
        context: &str,
        confirmation: &str,
    ) -> Record {
        Record {
            event: ACTION_STARTED.into(),
            action: Some(action.into()),
            action_id: Some(format!("{:016x}", rand::random::<u64>())),
            target: Some(target.into()),
            cluster: cluster.into(),
            context: context.into(),
            actor: Actor::current(),
            pid: Some(std::process::id()),
            confirmation: Some(confirmation.into()),
            started_at: timestamp(jiff::Timestamp::now()),
            ..Default::default()
        }
    }

    /// This record with every secret value masked as `***` in its free-text fields.
    pub fn masked(&self, secrets: &[String]) -> Record {
        let mut r = self.clone();
        if secrets.iter().all(String::is_empty) {
            return r;
        }
        for field in [
            &mut r.command,
            &mut r.output_tail,
            &mut r.result,
            &mut r.reason,
            &mut r.target,
        ] {
            if let Some(v) = field.as_mut() {
                *v = mask(v, secrets);
            }
        }
        for v in r.vars.values_mut() {
            *v = mask(v, secrets);
        }
        r
    }
}

pub const ACTION_STARTED: &str = "action_started";
pub const ACTION: &str = "action";

/// A record that could not be written. Says which file and the OS error; `line` is the record
/// (secrets masked) to show the engineer so it can be copied by hand.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the audit record to {}: {source}", path.display())]
pub struct AuditError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
    /// The record's `event`: `step_started`/`action_started` means nothing ran.
    pub event: String,
    /// The record as JSON, secrets masked.
    pub line: String,
}

impl AuditError {
    /// Whether this was a start record, i.e. the action did not run.
    pub fn is_start(&self) -> bool {
        self.event.ends_with("_started")
    }

    /// The [`AuditError`] inside an `io::Error` made from one, if any.
    pub fn find(e: &io::Error) -> Option<&AuditError> {
        e.get_ref()?.downcast_ref::<AuditError>()
    }
}

impl From<AuditError> for io::Error {
    fn from(e: AuditError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

/// What to do when a record cannot be written.
#[derive(Debug, Clone)]
enum OnFailure {
    /// Fail: the caller refuses the action (the default).
    Refuse,
    /// The engineer typed the cluster's name to act without a record: print the record on
    /// stderr to be copied, and carry on.
    ShowOnStderr,
    /// As `ShowOnStderr`, for the console: the record is kept here to be shown on screen.
    Collect(std::sync::Arc<std::sync::Mutex<Vec<String>>>),
}

/// The audit file: the one writer of every record.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    on_failure: OnFailure,
}

/// A read of the audit file: the records, and the 1-based numbers of damaged lines skipped.
#[derive(Debug, Clone, Default)]
pub struct AuditRead {
    pub records: Vec<Record>,
    pub damaged: Vec<usize>,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> AuditLog {
        AuditLog {
            path: path.into(),
            on_failure: OnFailure::Refuse,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reserve file beside the log.
    pub fn reserve_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".reserve");
        PathBuf::from(p)
    }

    /// True when the reserve was given back to a full disk (or could never be made): records
    /// are being written from the last free bytes, and the console should say so (crit).
    pub fn reserve_in_use(&self) -> bool {
        std::fs::metadata(self.reserve_path()).is_ok_and(|m| m.len() < RESERVE_BYTES)
    }

    /// This log, for one action the engineer overrode by typing the cluster's name: a record
    /// that cannot be written is printed on stderr (to be copied) instead of failing.
    pub fn unrecorded_to_stderr(&self) -> AuditLog {
        AuditLog {
            path: self.path.clone(),
            on_failure: OnFailure::ShowOnStderr,
        }
    }

    /// As [`AuditLog::unrecorded_to_stderr`], for the console: a record that cannot be written
    /// is pushed to `shown` (to be put on screen and copied) instead of failing.
    pub fn unrecorded_collected(
        &self,
        shown: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> AuditLog {
        AuditLog {
            path: self.path.clone(),
            on_failure: OnFailure::Collect(shown),
        }
    }

    /// Appends `record` with `secrets` masked as `***` in its values, fsynced before returning.
    pub fn append(&self, record: &Record, secrets: &[String]) -> Result<(), AuditError> {
        let masked = record.masked(secrets);
        let line = serde_json::to_string(&masked).map_err(|e| AuditError {
            path: self.path.clone(),
            source: io::Error::other(e),
            event: record.event.clone(),
            line: String::new(),
        })?;
        match self.write_line(&line) {
            Ok(()) => Ok(()),
            Err(source) => {
                let err = AuditError {
                    path: self.path.clone(),
                    source,
                    event: record.event.clone(),
                    line,
                };
                match &self.on_failure {
                    OnFailure::Refuse => Err(err),
                    OnFailure::Collect(shown) => {
                        if let Ok(mut shown) = shown.lock() {
                            shown.push(format!("NOT RECORDED ({err}); copy this record:"));
                            shown.push(err.line.clone());
                        }
                        Ok(())
                    }
                    OnFailure::ShowOnStderr => {
                        eprintln!(
                            "opsdeck: NOT RECORDED ({err}); copy this record:\n{}",
                            err.line
                        );
                        Ok(())
                    }
                }
            }
        }
    }

    /// Writes the start record `start` (fsynced) and returns the handle that writes its end.
    /// Call it before acting; on error, do not act (refuse, naming the error).
    pub fn begin(&self, start: Record, secrets: &[String]) -> Result<Pending, AuditError> {
        self.append(&start, secrets)?;
        Ok(Pending {
            log: self.clone(),
            start,
            secrets: secrets.to_vec(),
            started: jiff::Timestamp::now(),
        })
    }

    /// [`AuditLog::begin`] off the async runtime's worker threads (it fsyncs).
    pub async fn begin_async(&self, start: Record) -> Result<Pending, AuditError> {
        let log = self.clone();
        let path = self.path.clone();
        let event = start.event.clone();
        tokio::task::spawn_blocking(move || log.begin(start, &[]))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError {
                    path,
                    source: io::Error::other(e),
                    event,
                    line: String::new(),
                })
            })
    }

    /// Every record in the file, and the damaged lines (a torn write, hand edits) skipped.
    pub fn read(&self) -> io::Result<AuditRead> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AuditRead::default()),
            Err(e) => return Err(e),
        };
        Ok(parse(&bytes))
    }

    /// Every record in the file; damaged lines are skipped (see [`AuditLog::read`]).
    pub fn read_all(&self) -> io::Result<Vec<Record>> {
        self.read().map(|r| r.records)
    }

    fn write_line(&self, line: &str) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        // Writers in other processes (and threads) append one at a time, so a short write can
        // be truncated away without cutting into someone else's record.
        let _lock = Flock::exclusive(&file);
        let meta = file.metadata()?;
        let regular = meta.is_file();
        let mut buf = Vec::with_capacity(line.len() + 2);
        if regular && meta.len() > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, meta.len() - 1)?;
            if last[0] != b'\n' {
                // A torn line from a crash or an older version: keep it on its own line.
                buf.push(b'\n');
            }
        }
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let first = write_whole(&file, &buf, regular, meta.len());
        let result = match first {
            Err(e) if regular && is_disk_full(&e) && self.release_reserve() => {
                write_whole(&file, &buf, regular, meta.len())
            }
            other => other,
        };
        result?;
        if regular {
            self.keep_reserve();
        }
        Ok(())
    }

    /// Gives the reserve's blocks back to the file system. True if there was any.
    fn release_reserve(&self) -> bool {
        let reserve = self.reserve_path();
        match std::fs::metadata(&reserve) {
            Ok(m) if m.len() > 0 => {
                let freed = OpenOptions::new()
                    .write(true)
                    .open(&reserve)
                    .and_then(|f| f.set_len(0))
                    .is_ok();
                if freed {
                    tracing::warn!(
                        "audit log {}: the disk is full; using the reserve",
                        self.path.display()
                    );
                }
                freed
            }
            _ => false,
        }
    }

    /// Creates the reserve, or grows it back once the disk has room again.
    fn keep_reserve(&self) {
        let reserve = self.reserve_path();
        let size = std::fs::metadata(&reserve).map(|m| m.len()).ok();
        if size.is_some_and(|s| s >= RESERVE_BYTES) {
            return;
        }
        let Ok(f) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&reserve)
        else {
            return;
        };
        // SAFETY: posix_fallocate on a descriptor we own.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, RESERVE_BYTES as libc::off_t) };
        if rc != 0 {
            // Half a reserve would claim blocks and still read as "in use": give them back.
            let _ = f.set_len(0);
        }
    }
}

/// The end of an action whose start record is on disk.
#[derive(Debug)]
#[must_use = "an action's end must be recorded with finish()"]
pub struct Pending {
    log: AuditLog,
    start: Record,
    secrets: Vec<String>,
    started: jiff::Timestamp,
}

impl Pending {
    /// The start record as written (before masking).
    pub fn record(&self) -> &Record {
        &self.start
    }

    /// Writes the end record of an action: `event: "action"`, the same `action_id`, `result`
    /// `ok` or the error text.
    pub fn finish(self, result: &str) -> Result<(), AuditError> {
        self.finish_with(|end| end.result = Some(result.to_string()))
    }

    /// Writes the end record: the start record with `event` `step_finished` (for
    /// `step_started`) or `action` (for `action_started`), `finished_at` and `duration_ms`,
    /// then whatever `fill` sets.
    pub fn finish_with(self, fill: impl FnOnce(&mut Record)) -> Result<(), AuditError> {
        let mut end = self.start.clone();
        end.event = match self.start.event.as_str() {
            "step_started" => "step_finished".into(),
            ACTION_STARTED => ACTION.into(),
            other => other.to_string(),
        };
        end.pid = None;
        let now = jiff::Timestamp::now();
        end.finished_at = Some(timestamp(now));
        end.duration_ms =
            Some((now.as_millisecond() - self.started.as_millisecond()).max(0) as u64);
        fill(&mut end);
        self.log.append(&end, &self.secrets)
    }

    /// [`Pending::finish`] off the async runtime's worker threads (it fsyncs).
    pub async fn finish_async(self, result: String) -> Result<(), AuditError> {
        let path = self.log.path.clone();
        tokio::task::spawn_blocking(move || self.finish(&result))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError {
                    path,
                    source: io::Error::other(e),
                    event: ACTION.into(),
                    line: String::new(),
                })
            })
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Writes all of `buf` at the end of `file` and fsyncs it, or leaves the file as it was
/// (`len` bytes): a record is on disk whole or not at all.
fn write_whole(file: &File, buf: &[u8], regular: bool, len: u64) -> io::Result<()> {
    let _xfsz = XfszBlocked::new();
    let mut done = 0;
    let mut result = Ok(());
    while done < buf.len() {
        match (&*file).write(&buf[done..]) {
            Ok(0) => {
                result = Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the file system accepted no more bytes",
                ));
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        result = match file.sync_all() {
            // A character device (a test's /dev/full, /dev/null) has nothing to sync.
            Err(e) if !regular && e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => other,
        };
    }
    if result.is_err() && regular && done > 0 {
        let _ = file.set_len(len);
        let _ = file.sync_all();
    }
    result
}

/// flock(LOCK_EX) on the audit file while a record is written.
struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a File) -> Flock<'a> {
        loop {
            // SAFETY: flock on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        Flock(file)
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Blocks SIGXFSZ on this thread while a record is written, so a file-size limit makes the
/// write fail with EFBIG instead of killing opsdeck; a SIGXFSZ raised meanwhile is consumed.
/// (Ignoring it process-wide would be inherited by every step's process.)
struct XfszBlocked {
    old: libc::sigset_t,
    set: libc::sigset_t,
}

impl XfszBlocked {
    fn new() -> XfszBlocked {
        // SAFETY: sigset_t values are initialised by sigemptyset before use; pthread_sigmask
        // only changes this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGXFSZ);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            XfszBlocked { old, set }
        }
    }
}

impl Drop for XfszBlocked {
    fn drop(&mut self) {
        // SAFETY: as above; sigtimedwait with a zero timeout only dequeues a pending SIGXFSZ.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            if libc::sigpending(&mut pending) == 0
                && libc::sigismember(&pending, libc::SIGXFSZ) == 1
                && libc::sigismember(&self.old, libc::SIGXFSZ) == 0
            {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&self.set, std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

/// Parses the audit file's bytes: one record per line; blank lines are ignored, damaged ones
/// (not JSON, not a record, torn) are skipped and counted by line number.
pub fn parse(bytes: &[u8]) -> AuditRead {
    let mut out = AuditRead::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => out.records.push(r),
            Err(_) => out.damaged.push(i + 1),
        }
    }
    out
}

/// Replaces every occurrence of each secret value (and its JSON-escaped form, as a step may
/// print JSON) with `***`. For text — output lines, a record's values — never for a
/// serialized record.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
        let escaped = serde_json::to_string(s).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != s && !escaped.is_empty() {
            out = out.replace(escaped, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step_record(command: &str) -> Record {
        Record {
            event: "step_started".into(),
            cluster: "staging".into(),
            command: Some(command.into()),
            started_at: "2026-11-25T03:00:00Z".into(),
            ..Default::default()
        }
    }

    #[test]
    fn records_are_appended_masked_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("a/audit.jsonl"));
        let rec = step_record("echo hunter2 \"quoted\"");
        log.append(&rec, &["hunter2".into()]).unwrap();
        log.append(
            &Record {
                event: "step_finished".into(),
                ..rec.clone()
            },
            &["hunter2".into()],
        )
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("hunter2"));
        let all = log.read_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].command.as_deref(), Some("echo *** \"quoted\""));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_torn_line_is_reported_and_does_not_hide_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"event\":\"step_started\",\"cluster\":\"x\",\"user\":\"u\",\"host\":\"h\",\"started_at\":\"t\"}\n{\"event\":\"step_fin").unwrap();
        let log = AuditLog::new(&path);
        let read = log.read().unwrap();
        assert_eq!((read.records.len(), read.damaged), (1, vec![2]));
        // The next record starts on a line of its own, so only the torn one is lost.
        log.append(&step_record("true"), &[]).unwrap();
        let read = log.read().unwrap();
        assert_eq!((read.records.len(), read.damaged), (2, vec![2]));
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }

    #[test]
    fn secrets_named_like_keys_or_json_syntax_do_not_corrupt_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        for secret in ["event", "cluster", "\"", "\\", "started_at", ":", "{"] {
            let mut rec = step_record(&format!("echo {secret} done"));
            rec.output_tail = Some(format!("got {secret}"));
            rec.vars.insert("SHOWN".into(), format!("x{secret}y"));
            log.append(&rec, &[secret.to_string()]).unwrap();
        }
        let read = log.read().unwrap();
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(read.records.len(), 7);
        for r in &read.records {
            assert_eq!(
                (r.event.as_str(), r.cluster.as_str()),
                ("step_started", "staging")
            );
            assert_eq!(r.command.as_deref(), Some("echo *** done"));
            assert_eq!(r.output_tail.as_deref(), Some("got ***"));
            assert_eq!(r.vars["SHOWN"], "x***y");
        }
    }

    #[test]
    fn mask_handles_json_escaped_secrets_in_text() {
        assert_eq!(mask(r#"{"v":"a\"b"}"#, &["a\"b".into()]), r#"{"v":"***"}"#);
    }

    #[test]
    fn begin_then_finish_pairs_start_and_end_by_action_id() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        let start = Record::action_started(
            "workload.scale",
            "staging/apps/deployment/web",
            "staging",
            "staging",
            "key",
        );
        let pending = log.begin(start, &[]).unwrap();
        assert_eq!(log.read_all().unwrap().len(), 1, "start is on disk first");
        pending.finish("ok").unwrap();
        let all = log.read_all().unwrap();
        assert_eq!(all[0].event, "action_started");
        assert_eq!(all[1].event, "action");
        assert_eq!(all[1].result.as_deref(), Some("ok"));
        assert_eq!(all[0].action_id, all[1].action_id);
        assert!(all[1].duration_ms.is_some());
        for r in &all {
            for t in [Some(&r.started_at), r.finished_at.as_ref()]
                .into_iter()
                .flatten()
            {
                assert_eq!(t.len(), "2026-11-25T03:00:00.123Z".len(), "{t}");
            }
        }
    }

    #[test]
    fn a_directory_in_the_way_names_the_file_and_the_os_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::create_dir(&path).unwrap();
        let err = AuditLog::new(&path)
            .begin(step_record("true"), &[])
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("os error 21"), "{msg}");
        assert!(err.is_start());
        assert!(err.line.contains("\"step_started\""));
        let io: io::Error = err.into();
        assert!(AuditError::find(&io).is_some());
    }

    #[test]
    fn a_first_write_makes_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        log.append(&step_record("true"), &[]).unwrap();
        assert_eq!(
            std::fs::metadata(log.reserve_path()).unwrap().len(),
            RESERVE_BYTES
        );
        assert!(!log.reserve_in_use());
    }

    #[test]
    fn user_is_the_real_uids_login_name() {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let name = login_name(uid);
        assert!(name.is_some());
        assert_eq!(Actor::current().user, name.unwrap());
    }
}
