//! Running one step: `bash -euo pipefail -c TEXT` in its own process group, stdin closed
//! (unless interactive), stdout and stderr streamed line by line with every line bounded;
//! cancel and timeout send SIGTERM to the whole group, then SIGKILL after a grace period.
//!
//! The step never outlives opsdeck. Each step runs under a small supervising process, forked
//! from opsdeck, that is the step's parent and a child subreaper (everything the step starts,
//! even what leaves its process group, is re-parented to it). The supervisor holds the read end
//! of a pipe only opsdeck can write to: its end of file means opsdeck is gone — however it went,
//! SIGKILL included — and the supervisor then ends the step's whole tree (SIGTERM, SIGKILL after
//! the grace period) and exits. `PR_SET_PDEATHSIG` is not used: it fires when the forking
//! *thread* exits (tokio retires its threads) and reaches only one process.
//!
//! Every running step is in a process-wide registry, so the signal handling and the panic hook
//! can end them all ([`abort_all`], [`abort_now`]) and write their end records
//! ([`register_on_abort`]).

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use crate::lines::{CutLine, LineSplitter};

/// Lines of output kept for the pane and the audit tail.
pub const TAIL_LINES: usize = 400;
/// A longer line keeps its first `MAX_LINE` bytes; the rest is dropped with a marker, so a step
/// printing one huge line costs a fixed amount of memory (its hash still covers every byte).
pub const MAX_LINE: usize = crate::lines::MAX_LINE;
/// After the step's main process ends, what it left running gets this long after SIGTERM.
const LEFTOVER_GRACE: Duration = Duration::from_millis(500);

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
    /// Why the step was cancelled from outside its run ([`abort_all`], [`abort_now`]), e.g.
    /// `SIGHUP` or `panic` (the record's `reason`); `None` for the caller's own cancel token, a
    /// timeout or a normal end.
    pub cancel_reason: Option<String>,
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

// ---------------------------------------------------------------------------------------------
// The registry of running steps.

/// A running step as the rest of the process sees it.
struct Running {
    /// The write end of the supervisor's lifeline: a byte asks it to end the step, closing it
    /// (opsdeck gone) does the same.
    lifeline: OwnedFd,
    abort: CancellationToken,
    reason: Mutex<Option<String>>,
}

impl Running {
    fn end_step(&self) {
        let byte = CMD_END;
        // SAFETY: writes one byte from a live buffer to a descriptor this struct owns.
        unsafe { libc::write(self.lifeline.as_raw_fd(), (&raw const byte).cast(), 1) };
    }

    fn note_reason(&self, reason: &str) {
        let mut r = lock(&self.reason);
        if r.is_none() {
            *r = Some(reason.to_string());
        }
    }
}

type OnAbort = Box<dyn FnOnce(&str) + Send>;

static RUNNING: Mutex<Vec<(u64, Arc<Running>)>> = Mutex::new(Vec::new());
static ON_ABORT: Mutex<Vec<(u64, OnAbort)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The registry stays usable after a panic elsewhere: the panic hook needs it most.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unregisters its closure when dropped; see [`register_on_abort`].
#[must_use = "the closure is unregistered when the guard is dropped"]
pub struct AbortGuard {
    id: u64,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        lock(&ON_ABORT).retain(|(id, _)| *id != self.id);
    }
}

/// Registers `f` to run once, with the reason, if the process must end while it is registered
/// ([`abort_now`], called by the panic hook with `"panic"`). The step runner uses it to write
/// the end record of a running step. Drop the guard once the normal end record is written.
pub fn register_on_abort(f: Box<dyn FnOnce(&str) + Send>) -> AbortGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&ON_ABORT).push((id, f));
    AbortGuard { id }
}

/// Cancels every running step, as its cancel key would (SIGTERM to its whole process group,
/// SIGKILL after its grace period); each [`run`] then returns `Ending::Cancelled` with
/// `cancel_reason` set to `reason` (e.g. `"SIGHUP"`), and its runner writes the end record as
/// usual. Returns how many steps were running. For SIGHUP, SIGTERM and quitting the console.
pub fn abort_all(reason: &str) -> usize {
    let running = lock(&RUNNING);
    for (_, r) in running.iter() {
        r.note_reason(reason);
        r.abort.cancel();
    }
    running.len()
}

/// For a process that is about to end without waiting for its steps (a panic): tells every
/// step's supervisor to end its group now (SIGTERM now, SIGKILL after the grace period, which
/// the supervisor carries out even after opsdeck has exited), then runs every closure given to
/// [`register_on_abort`] with `reason`. Synchronous; each closure runs at most once. Returns how
/// many steps were running.
pub fn abort_now(reason: &str) -> usize {
    let n = {
        let running = lock(&RUNNING);
        for (_, r) in running.iter() {
            r.note_reason(reason);
            r.end_step();
            r.abort.cancel();
        }
        running.len()
    };
    let closures: Vec<(u64, OnAbort)> = std::mem::take(&mut *lock(&ON_ABORT));
    for (_, f) in closures {
        f(reason);
    }
    n
}

/// How many steps are running in this process.
pub fn running_steps() -> usize {
    lock(&RUNNING).len()
}

// ---------------------------------------------------------------------------------------------
// Running a step.

/// Runs one step to its end. Each output line goes to `on_line` as it arrives.
pub async fn run(
    spec: &StepSpec,
    mut on_line: impl FnMut(&str),
    cancel: &CancellationToken,
) -> io::Result<StepOutcome> {
    let started = Instant::now();
    let mut sup = Supervised::spawn(spec)?;
    let leader = match sup.status.next().await {
        Ok(Some(Message::Started(pid))) => pid,
        Ok(Some(Message::ExecFailed(errno))) => {
            sup.reap().await;
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(Some(Message::SetupFailed(errno))) => {
            sup.reap().await;
            let e = io::Error::from_raw_os_error(errno);
            return Err(io::Error::new(
                e.kind(),
                format!("the step's supervisor could not start it: {e}"),
            ));
        }
        Ok(Some(Message::Ended(_))) | Ok(None) | Err(_) => {
            let status = sup.reap().await;
            return Err(io::Error::other(format!(
                "the step's supervisor ended before starting it ({status})"
            )));
        }
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut tail = VecDeque::new();
    let mut take = |line: CutLine| {
        let text = line.into_text();
        on_line(&text);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    let (mut out_split, mut err_split) = (LineSplitter::new(MAX_LINE), LineSplitter::new(MAX_LINE));
    let (mut out_buf, mut err_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut out_open = sup.stdout.is_some();
    let mut err_open = sup.stderr.is_some();
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let abort = sup.running.abort.clone();
    let mut stopping: Option<Ending> = None;
    let mut ended: Option<Result<i32, String>> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if ended.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            r = read_some(&mut sup.stdout, &mut out_buf), if out_open => match r {
                Ok(n) if n > 0 => {
                    let chunk = &out_buf[..n];
                    hasher.update(chunk);
                    bytes += n as u64;
                    out_split.feed(chunk, &mut take);
                }
                _ => {
                    out_open = false;
                    if let Some(l) = out_split.finish() {
                        take(l);
                    }
                }
            },
            r = read_some(&mut sup.stderr, &mut err_buf), if err_open => match r {
                Ok(n) if n > 0 => {
                    let chunk = &err_buf[..n];
                    hasher.update(chunk);
                    bytes += n as u64;
                    err_split.feed(chunk, &mut take);
                }
                _ => {
                    err_open = false;
                    if let Some(l) = err_split.finish() {
                        take(l);
                    }
                }
            },
            m = sup.status.next(), if ended.is_none() => {
                ended = Some(match m {
                    Ok(Some(Message::Ended(status))) => Ok(status),
                    other => {
                        // The supervisor itself died (killed from outside): the group is ours
                        // to end now.
                        signal_group(leader, libc::SIGKILL);
                        Err(format!("the step's supervisor died ({other:?})"))
                    }
                });
                // Everything that held the output pipes is gone; what is buffered comes now.
                drain_until = Some(tokio::time::Instant::now() + LEFTOVER_GRACE);
            }
            _ = cancel.cancelled(), if stopping.is_none() && ended.is_none() => {
                sup.running.end_step();
                stopping = Some(Ending::Cancelled);
            }
            _ = abort.cancelled(), if stopping.is_none() && ended.is_none() => {
                sup.running.end_step();
                stopping = Some(Ending::Cancelled);
            }
            _ = sleep_until_opt(deadline), if stopping.is_none() && ended.is_none() && deadline.is_some() => {
                sup.running.end_step();
                stopping = Some(Ending::TimedOut);
            }
            _ = sleep_until_opt(drain_until), if drain_until.is_some() => break,
        }
    }
    let supervisor_status = sup.reap().await;
    if sup.took_terminal {
        take_terminal_back();
    }
    let cancel_reason = lock(&sup.running.reason).clone();
    let ending = match (cancel_reason.is_some(), stopping, ended) {
        (true, _, _) => Ending::Cancelled,
        (false, Some(e), _) => e,
        (false, None, Some(Ok(status))) => decode_status(status),
        (false, None, _) => {
            return Err(io::Error::other(format!(
                "the step's supervisor died before the step ended ({supervisor_status})"
            )));
        }
    };
    Ok(StepOutcome {
        ending,
        duration: started.elapsed(),
        tail,
        output_sha256: format!("{:x}", hasher.finalize()),
        output_bytes: bytes,
        cancel_reason,
    })
}

fn decode_status(status: i32) -> Ending {
    if libc::WIFEXITED(status) {
        Ending::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ending::Signalled(libc::WTERMSIG(status))
    } else {
        Ending::Exited(-1)
    }
}

async fn read_some(pipe: &mut Option<pipe::Receiver>, buf: &mut [u8]) -> io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn signal_group(pgid: libc::pid_t, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) on the step's own process group (negative pid).
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// Makes opsdeck's process group the terminal's foreground group again after an interactive
/// step had it.
fn take_terminal_back() {
    // SAFETY: plain syscalls on stdin and this thread's signal mask. SIGTTOU is blocked around
    // tcsetpgrp: a background group calling it would otherwise be stopped.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        libc::tcsetpgrp(0, libc::getpgrp());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor: the opsdeck side.

/// Lifeline command: end the step (SIGTERM to its tree now, SIGKILL after the grace period).
const CMD_END: u8 = b'X';

const MSG_STARTED: i32 = 1;
const MSG_EXEC_FAILED: i32 = 2;
const MSG_ENDED: i32 = 3;
const MSG_SETUP_FAILED: i32 = 4;

#[derive(Debug)]
enum Message {
    /// The step's main process (and process group) id.
    Started(libc::pid_t),
    ExecFailed(i32),
    SetupFailed(i32),
    /// The step's wait status; sent once every process of the step is gone.
    Ended(i32),
}

/// The supervisor's reports, read without losing a partial message when a read is cancelled.
struct StatusPipe {
    rx: pipe::Receiver,
    buf: Vec<u8>,
}

impl StatusPipe {
    async fn next(&mut self) -> io::Result<Option<Message>> {
        loop {
            if self.buf.len() >= 8 {
                let msg: Vec<u8> = self.buf.drain(..8).collect();
                let tag = i32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
                let value = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
                return Ok(Some(match tag {
                    MSG_STARTED => Message::Started(value),
                    MSG_EXEC_FAILED => Message::ExecFailed(value),
                    MSG_ENDED => Message::Ended(value),
                    _ => Message::SetupFailed(value),
                }));
            }
            let mut chunk = [0u8; 64];
            let n = self.rx.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One supervised step, from fork to reaping the supervisor.
struct Supervised {
    pid: libc::pid_t,
    id: u64,
    running: Arc<Running>,
    status: StatusPipe,
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    took_terminal: bool,
    reaped: bool,
}

impl Supervised {
    fn spawn(spec: &StepSpec) -> io::Result<Supervised> {
        let program = Program::prepare(spec)?;
        let took_terminal = spec.interactive && owns_terminal();
        // Every descriptor is created close-on-exec and moved above the ones the supervisor
        // installs (0..=4), so its dup2 calls never overwrite one another.
        let (out_r, out_w) = if spec.interactive {
            (None, None)
        } else {
            let (r, w) = pipe_pair()?;
            (Some(r), Some(high(w)?))
        };
        let (err_r, err_w) = if spec.interactive {
            (None, None)
        } else {
            let (r, w) = pipe_pair()?;
            (Some(r), Some(high(w)?))
        };
        let null = if spec.interactive {
            None
        } else {
            Some(high(open_dev_null()?)?)
        };
        let (life_r, life_w) = pipe_pair()?;
        let life_r = high(life_r)?;
        let (status_r, status_w) = pipe_pair()?;
        let status_w = high(status_w)?;
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let plan = ChildPlan {
            path: program.path.as_ptr(),
            argv: program.argv_ptrs.as_ptr(),
            envp: program.envp_ptrs.as_ptr(),
            cwd: program
                .cwd
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr()),
            stdin: raw(&null),
            stdout: raw(&out_w),
            stderr: raw(&err_w),
            lifeline: life_r.as_raw_fd(),
            status: status_w.as_raw_fd(),
            grace_ms: spec.grace.as_millis().min(i64::MAX as u128) as i64,
            leftover_ms: LEFTOVER_GRACE.as_millis() as i64,
            take_terminal: took_terminal,
        };
        // SAFETY: the child runs only async-signal-safe code on memory prepared above (`plan`
        // and `program` stay alive in the parent, and the child has its own copy).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the forked child; never returns.
            unsafe { supervisor_main(&plan) }
        }
        drop((out_w, err_w, null, life_r, status_w));
        let rx = |fd: Option<OwnedFd>| fd.map(pipe::Receiver::from_owned_fd).transpose();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let running = Arc::new(Running {
            lifeline: life_w,
            abort: CancellationToken::new(),
            reason: Mutex::new(None),
        });
        lock(&RUNNING).push((id, running.clone()));
        let mut sup = Supervised {
            pid,
            id,
            running,
            status: StatusPipe {
                rx: pipe::Receiver::from_owned_fd(status_r)?,
                buf: Vec::new(),
            },
            stdout: None,
            stderr: None,
            took_terminal,
            reaped: false,
        };
        sup.stdout = rx(out_r)?;
        sup.stderr = rx(err_r)?;
        Ok(sup)
    }

    /// Waits for the supervisor to exit (it does right after its last report); describes how.
    async fn reap(&mut self) -> String {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid || r < 0 {
                self.reaped = true;
                return match decode_status(status) {
                    _ if r < 0 => "already reaped".into(),
                    Ending::Exited(c) => format!("exit {c}"),
                    Ending::Signalled(s) => format!("signal {s}"),
                    _ => "unknown".into(),
                };
            }
            if Instant::now() >= until {
                return "still running".into();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        lock(&RUNNING).retain(|(id, _)| *id != self.id);
        if !self.reaped {
            // Dropped mid-step (the run was abandoned): ending the lifeline (with the last
            // reference to `running`) makes the supervisor end the step; reap it when it exits.
            self.running.end_step();
            let pid = self.pid;
            std::thread::spawn(move || {
                let mut status = 0;
                // SAFETY: waitpid on our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            });
        }
    }
}

/// Whether opsdeck is the terminal's foreground process group (so an interactive step can be
/// given the terminal, and it can be taken back).
fn owns_terminal() -> bool {
    // SAFETY: plain queries on stdin.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn open_dev_null() -> io::Result<OwnedFd> {
    Ok(std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

/// The same descriptor, numbered 10 or above (close-on-exec).
fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a live descriptor returns a new one we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Everything `execve` needs, built before the fork (the child may not allocate).
struct Program {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
}

// SAFETY: the raw pointers point into the CStrings this struct owns.
unsafe impl Send for Program {}

impl Program {
    fn prepare(spec: &StepSpec) -> io::Result<Program> {
        let nul = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} contains a NUL byte"),
            )
        };
        // Exactly the step's environment (interfaces.md "Step environment"): nothing else of
        // the console's reaches it.
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        for (k, v) in &spec.env {
            env.retain(|(ek, _)| ek.as_os_str() != OsStr::new(k));
            env.push((k.into(), v.into()));
        }
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let bash = find_program("bash", &path_var).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "bash not found on PATH ({}): install bash",
                    path_var.to_string_lossy()
                ),
            )
        })?;
        let path = CString::new(bash.as_os_str().as_bytes()).map_err(|_| nul("bash's path"))?;
        let args = [
            "bash",
            "--noprofile",
            "--norc",
            "-e",
            "-u",
            "-o",
            "pipefail",
            "-c",
            &spec.command,
        ];
        let argv = args
            .iter()
            .map(|a| CString::new(*a).map_err(|_| nul("the command")))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| nul(&format!("variable {}", k.to_string_lossy())))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let cwd = spec
            .cwd
            .as_ref()
            .map(|c| CString::new(c.as_os_str().as_bytes()).map_err(|_| nul("the step's cwd")))
            .transpose()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Ok(Program {
            path,
            argv_ptrs: ptrs(&argv),
            _argv: argv,
            envp_ptrs: ptrs(&envp),
            _envp: envp,
            cwd,
        })
    }
}

fn find_program(name: &str, path_var: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---------------------------------------------------------------------------------------------
// The supervisor: the forked side. Only async-signal-safe calls from here on: the fork copied
// one thread of a multi-threaded process, so no allocation, no locks, no panics.

/// What the forked supervisor needs, as raw values.
struct ChildPlan {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    /// Descriptors to install as 0, 1, 2 (-1: keep the inherited one), 3 (lifeline read end)
    /// and 4 (status write end).
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    lifeline: RawFd,
    status: RawFd,
    grace_ms: i64,
    leftover_ms: i64,
    take_terminal: bool,
}

const FD_LIFELINE: RawFd = 3;
const FD_STATUS: RawFd = 4;

unsafe fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

unsafe fn report(tag: i32, value: i32) {
    let mut msg = [0u8; 8];
    let (t, v) = (tag.to_ne_bytes(), value.to_ne_bytes());
    msg[..4].copy_from_slice(&t);
    msg[4..].copy_from_slice(&v);
    // SAFETY: an 8-byte write to a pipe is atomic; failure (opsdeck gone) is fine.
    unsafe { libc::write(FD_STATUS, msg.as_ptr().cast(), 8) };
}

unsafe fn now_ms() -> i64 {
    // SAFETY: clock_gettime fills a local struct.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}

unsafe fn reset_signals() {
    // SAFETY: signal dispositions and the mask of this (only) thread.
    unsafe {
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

unsafe fn close_from(first: RawFd) {
    // SAFETY: closes descriptors of this process only.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) != 0
        {
            for fd in first..65_536 {
                libc::close(fd);
            }
        }
    }
}

/// SIGKILL/SIGTERM to the step's process group and to every process re-parented to the
/// supervisor (those that left the group or the session), with their groups.
unsafe fn signal_tree(leader: libc::pid_t, sig: i32) {
    // SAFETY: kill(2) and reading a /proc file into a stack buffer.
    unsafe {
        libc::kill(-leader, sig);
        let fd = libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut pid: libc::pid_t = 0;
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            for &b in buf.iter().take(n as usize) {
                if b.is_ascii_digit() {
                    pid = pid
                        .saturating_mul(10)
                        .saturating_add((b - b'0') as libc::pid_t);
                } else {
                    if pid > 0 {
                        libc::kill(pid, sig);
                        libc::kill(-pid, sig);
                    }
                    pid = 0;
                }
            }
        }
        if pid > 0 {
            libc::kill(pid, sig);
            libc::kill(-pid, sig);
        }
        libc::close(fd);
    }
}

/// The supervisor: installs the step's descriptors, starts it, and ends its tree when asked, when
/// opsdeck is gone, or (what it left behind) when its main process exits.
unsafe fn supervisor_main(plan: &ChildPlan) -> ! {
    // SAFETY: async-signal-safe syscalls only, on the plan's descriptors and pointers.
    unsafe {
        reset_signals();
        // Hangups, Ctrl-C and SIGTERM sent to opsdeck's process group must not take the
        // supervisor before it has ended the step.
        for sig in [
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTTOU,
            libc::SIGTTIN,
            libc::SIGTSTP,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let installs = [
            (plan.stdin, 0),
            (plan.stdout, 1),
            (plan.stderr, 2),
            (plan.lifeline, FD_LIFELINE),
            (plan.status, FD_STATUS),
        ];
        for (from, to) in installs {
            if from >= 0 && libc::dup2(from, to) < 0 {
                let e = errno();
                libc::dup2(plan.status, FD_STATUS);
                report(MSG_SETUP_FAILED, e);
                libc::_exit(127);
            }
        }
        close_from(FD_STATUS + 1);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let mut exec_err = [0; 2];
        if libc::pipe2(exec_err.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            report(MSG_SETUP_FAILED, errno());
            libc::_exit(127);
        }
        let leader = libc::fork();
        if leader < 0 {
            report(MSG_SETUP_FAILED, errno());
            libc::_exit(127);
        }
        if leader == 0 {
            step_main(plan, exec_err[1]);
        }
        libc::setpgid(leader, leader);
        libc::close(exec_err[1]);
        let mut e = [0u8; 4];
        let mut got = 0usize;
        while got < 4 {
            let n = libc::read(exec_err[0], e.as_mut_ptr().add(got).cast(), 4 - got);
            if n > 0 {
                got += n as usize;
            } else if n == 0 || errno() != libc::EINTR {
                break;
            }
        }
        libc::close(exec_err[0]);
        if got == 4 {
            let mut status = 0;
            libc::waitpid(leader, &mut status, 0);
            report(MSG_EXEC_FAILED, i32::from_ne_bytes(e));
            libc::_exit(0);
        }
        // The output pipes must reach end of file when the step's processes are gone.
        libc::close(0);
        libc::close(1);
        libc::close(2);
        report(MSG_STARTED, leader);
        watch(leader, plan.grace_ms, plan.leftover_ms)
    }
}

/// The step's process: its own process group (and the terminal, if it is to have it), default
/// signal handling, then bash.
unsafe fn step_main(plan: &ChildPlan, exec_err: RawFd) -> ! {
    // SAFETY: async-signal-safe syscalls only.
    unsafe {
        libc::setpgid(0, 0);
        if plan.take_terminal {
            // SIGTTOU is still ignored here, so a background group may take the terminal.
            libc::tcsetpgrp(0, libc::getpid());
        }
        reset_signals();
        libc::close(FD_LIFELINE);
        libc::close(FD_STATUS);
        if !plan.cwd.is_null() && libc::chdir(plan.cwd) < 0 {
            let e = errno().to_ne_bytes();
            libc::write(exec_err, e.as_ptr().cast(), 4);
            libc::_exit(127);
        }
        libc::execve(plan.path, plan.argv, plan.envp);
        let e = errno().to_ne_bytes();
        libc::write(exec_err, e.as_ptr().cast(), 4);
        libc::_exit(127)
    }
}

/// The supervisor's loop: reap, watch the lifeline, escalate, and report the end once no process
/// of the step is left.
unsafe fn watch(leader: libc::pid_t, grace_ms: i64, leftover_ms: i64) -> ! {
    // SAFETY: async-signal-safe syscalls only.
    unsafe {
        let mut leader_status: i32 = 0;
        let mut leader_done = false;
        let mut lifeline_open = true;
        let mut ending = false;
        let mut kill_at = i64::MAX;
        let mut give_up_at = i64::MAX;
        let begin_end = |within: i64, ending: &mut bool, kill_at: &mut i64| {
            if !*ending {
                *ending = true;
                signal_tree(leader, libc::SIGTERM);
            }
            *kill_at = (*kill_at).min(now_ms().saturating_add(within));
        };
        loop {
            loop {
                let mut status = 0;
                let r = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if r == leader {
                    leader_status = status;
                    leader_done = true;
                    // Whatever the step left running goes too.
                    begin_end(leftover_ms, &mut ending, &mut kill_at);
                } else if r > 0 {
                    continue;
                } else if r == 0 || errno() == libc::EINTR {
                    break;
                } else {
                    // No child left: the step and everything it started are gone.
                    report(MSG_ENDED, leader_status);
                    libc::_exit(0);
                }
            }
            let now = now_ms();
            if now >= kill_at {
                signal_tree(leader, libc::SIGKILL);
                if give_up_at == i64::MAX {
                    give_up_at = now.saturating_add(10_000);
                }
            }
            if now >= give_up_at {
                // A process stuck in the kernel cannot be killed: say so rather than hang.
                if !leader_done {
                    leader_status = libc::SIGKILL;
                }
                report(MSG_ENDED, leader_status);
                libc::_exit(0);
            }
            let mut pfd = libc::pollfd {
                fd: if lifeline_open { FD_LIFELINE } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            };
            libc::poll(&mut pfd, 1, 20);
            if lifeline_open && pfd.revents != 0 {
                let mut cmd = [0u8; 16];
                let n = libc::read(FD_LIFELINE, cmd.as_mut_ptr().cast(), cmd.len());
                if n == 0 || (n < 0 && errno() != libc::EINTR && errno() != libc::EAGAIN) {
                    // opsdeck is gone, however it ended.
                    lifeline_open = false;
                    begin_end(grace_ms, &mut ending, &mut kill_at);
                } else if n > 0 && cmd.iter().take(n as usize).any(|&b| b == CMD_END) {
                    begin_end(grace_ms, &mut ending, &mut kill_at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These tests end every running step on purpose: one at a time.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn spec(command: &str) -> StepSpec {
        StepSpec {
            command: command.into(),
            env: vec![],
            cwd: None,
            timeout: None,
            interactive: false,
            grace: Duration::from_millis(300),
        }
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only probes; a zombie counts as gone.
        let exists = unsafe { libc::kill(pid, 0) == 0 };
        exists
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
    }

    async fn read_pid(path: &Path) -> i32 {
        for _ in 0..100 {
            if let Ok(t) = std::fs::read_to_string(path)
                && let Ok(p) = t.trim().parse()
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never written", path.display());
    }

    #[tokio::test]
    async fn output_is_streamed_and_hashed_whole() {
        let _serial = SERIAL.lock().await;
        let mut lines = Vec::new();
        let o = run(
            &spec("echo one; echo two >&2; printf 'no newline'"),
            |l| lines.push(l.to_string()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(o.ok());
        lines.sort();
        assert_eq!(lines, ["no newline", "one", "two"]);
        assert_eq!(o.output_bytes, 18);
    }

    #[tokio::test]
    async fn a_missing_cwd_is_an_error_not_a_step() {
        let _serial = SERIAL.lock().await;
        let mut s = spec("true");
        s.cwd = Some("/nonexistent/opsdeck-cwd".into());
        let e = run(&s, |_| {}, &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[tokio::test]
    async fn a_child_that_leaves_the_group_is_ended_with_the_step() {
        let _serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("escaped");
        let s = spec(&format!(
            "setsid sleep 300 & echo $! > '{}'; sleep 0.2",
            pidfile.display()
        ));
        let o = run(&s, |_| {}, &CancellationToken::new()).await.unwrap();
        assert!(o.ok(), "{o:?}");
        let pid = read_pid(&pidfile).await;
        assert!(
            !alive(pid),
            "a process that left the step's group survived it"
        );
    }

    #[tokio::test]
    async fn abort_now_ends_the_group_and_runs_the_end_record_closure() {
        let _serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child");
        let s = spec(&format!(
            "trap '' TERM; sleep 300 & echo $! > '{}'; wait",
            pidfile.display()
        ));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let guard = register_on_abort(Box::new(move |reason| {
            let _ = tx.send(reason.to_string());
        }));
        let step = tokio::spawn(async move { run(&s, |_| {}, &CancellationToken::new()).await });
        let child = read_pid(&pidfile).await;
        assert!(running_steps() >= 1);
        abort_now("panic");
        assert_eq!(
            rx.try_recv().as_deref(),
            Ok("panic"),
            "closure ran, synchronously"
        );
        let o = step.await.unwrap().unwrap();
        assert_eq!(o.ending, Ending::Cancelled);
        assert_eq!(o.cancel_reason.as_deref(), Some("panic"));
        assert!(!alive(child), "the step's background child survived");
        drop(guard);
        // Each closure runs once: a second abort finds none.
        abort_now("panic");
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn abort_all_cancels_with_its_reason() {
        let _serial = SERIAL.lock().await;
        let s = spec("sleep 300");
        let step = tokio::spawn(async move { run(&s, |_| {}, &CancellationToken::new()).await });
        while running_steps() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(abort_all("SIGHUP"), 1);
        let o = step.await.unwrap().unwrap();
        assert_eq!(o.ending, Ending::Cancelled);
        assert_eq!(o.cancel_reason.as_deref(), Some("SIGHUP"));
    }
}
