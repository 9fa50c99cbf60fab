//! Process lifetime and bounds, tried as a hostile step would: a step's processes never outlive
//! opsdeck (SIGKILL included), cancel and timeout reach every process of a step (interactive ones
//! too), a step printing hundreds of megabytes on one line costs a bounded amount of memory, and a
//! panic anywhere ends the process after ending the running step and writing its end record.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opsdeck::runbook::exec::{self, Ending, StepSpec};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// A config with one cluster and a runbooks folder holding `runbooks` (name, markdown).
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new(runbooks: &[(&str, &str)]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let rb_dir = dir.path().join("runbooks");
        std::fs::create_dir_all(&rb_dir).unwrap();
        for (name, text) in runbooks {
            std::fs::write(rb_dir.join(format!("{name}.md")), text).unwrap();
        }
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "runbooks_dir = {:?}\naudit_log = {:?}\nlock_dir = {:?}\n\n[[cluster]]\nname = \"staging\"\nkubeconfig = {:?}\ncontext = \"staging\"\n[cluster.env]\nOUT_DIR = {:?}\n",
                rb_dir.display().to_string(),
                dir.path().join("audit.jsonl").display().to_string(),
                dir.path().join("locks").display().to_string(),
                dir.path().join("kubeconfig").display().to_string(),
                out.display().to_string(),
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    fn run(&self, runbook: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_opsdeck"));
        c.arg("--config")
            .arg(&self.config)
            .args(["runbook", "run", runbook, "--cluster", "staging", "--yes"])
            .stdin(Stdio::null())
            .env("XDG_STATE_HOME", self.dir.path().join("state"));
        c
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn runbook(attrs: &str, command: &str) -> String {
    format!("---\ntitle: Test\n---\n## The step\n```sh {{name=step {attrs}}}\n{command}\n```\n")
}

/// Alive and not a zombie (an orphan's zombie may wait a while for its reaper).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_for_pid(path: &Path) -> i32 {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} was never written", path.display());
}

fn assert_gone_within(pids: &[(i32, &str)], within: Duration) {
    let until = Instant::now() + within;
    loop {
        let left: Vec<_> = pids.iter().filter(|(p, _)| alive(*p)).collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > until {
            for (p, _) in &left {
                // SAFETY: clean up after a failed test.
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
            panic!("still running after {within:?}: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_sigkilled_console_leaves_none_of_the_steps_processes_running() {
    let env = Env::new(&[(
        "orphan",
        &runbook(
            "",
            "sleep 300 &\necho $! > \"$OUT_DIR/child\"\nsetsid sleep 300 &\necho $! > \"$OUT_DIR/escaped\"\necho $$ > \"$OUT_DIR/leader\"\nsleep 300",
        ),
    )]);
    let mut opsdeck = env
        .run("orphan")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let leader = wait_for_pid(&env.out("leader"));
    let child = wait_for_pid(&env.out("child"));
    let escaped = wait_for_pid(&env.out("escaped"));
    opsdeck.kill().unwrap();
    opsdeck.wait().unwrap();
    assert_gone_within(
        &[
            (leader, "the step's bash"),
            (child, "its background child"),
            (escaped, "a child that left the group with setsid"),
        ],
        Duration::from_secs(5),
    );
}

#[tokio::test]
async fn cancel_ends_background_children_that_ignore_sigterm_or_leave_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (stubborn, escaped) = (dir.path().join("stubborn"), dir.path().join("escaped"));
    let spec = StepSpec {
        command: format!(
            "(trap '' TERM; sleep 300; sleep 300) &\necho $! > '{}'\nsetsid sleep 300 &\necho $! > '{}'\nwait",
            stubborn.display(),
            escaped.display()
        ),
        env: vec![],
        cwd: None,
        timeout: None,
        interactive: false,
        grace: Duration::from_millis(500),
    };
    let cancel = CancellationToken::new();
    let (c2, s2, e2) = (cancel.clone(), stubborn.clone(), escaped.clone());
    let waiter = tokio::task::spawn_blocking(move || {
        let pids = (wait_for_pid(&s2), wait_for_pid(&e2));
        c2.cancel();
        pids
    });
    let started = Instant::now();
    let o = exec::run(&spec, |_| {}, &cancel).await.unwrap();
    let (stubborn, escaped) = waiter.await.unwrap();
    assert_eq!(o.ending, Ending::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_gone_within(
        &[
            (stubborn, "a child ignoring SIGTERM"),
            (escaped, "a child in its own session"),
        ],
        Duration::from_secs(3),
    );
}

#[tokio::test]
async fn an_interactive_step_honours_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child");
    let spec = StepSpec {
        command: format!("sleep 300 &\necho $! > '{}'\nsleep 300", pidfile.display()),
        env: vec![],
        cwd: None,
        timeout: Some(Duration::from_secs(1)),
        interactive: true,
        grace: Duration::from_millis(500),
    };
    let started = Instant::now();
    let o = tokio::time::timeout(
        Duration::from_secs(20),
        exec::run(&spec, |_| {}, &CancellationToken::new()),
    )
    .await
    .expect("the interactive step outlived its timeout by far")
    .unwrap();
    assert_eq!(o.ending, Ending::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let child = wait_for_pid(&pidfile);
    assert_gone_within(
        &[(child, "the interactive step's child")],
        Duration::from_secs(3),
    );
}

#[tokio::test]
async fn an_interactive_step_honours_cancel() {
    let spec = StepSpec {
        command: "trap '' TERM; sleep 300".into(),
        env: vec![],
        cwd: None,
        timeout: None,
        interactive: true,
        grace: Duration::from_millis(300),
    };
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let o = tokio::time::timeout(Duration::from_secs(20), exec::run(&spec, |_| {}, &cancel))
        .await
        .expect("cancel did not reach the interactive step")
        .unwrap();
    assert_eq!(o.ending, Ending::Cancelled);
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `runbook` to its end; returns the console's peak resident set (KiB) seen while it ran.
fn peak_rss_kib(env: &Env, runbook: &str) -> u64 {
    let mut child = env
        .run(runbook)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(hwm) = vm_hwm_kib(pid) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the run took too long");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{runbook}: {status:?}\n{err}");
    peak
}

#[test]
fn a_step_printing_300_mb_on_one_line_keeps_the_console_small() {
    const SIZE: usize = 300_000_000;
    let env = Env::new(&[
        ("small", &runbook("", "echo small")),
        (
            "huge",
            &runbook("", &format!("head -c {SIZE} /dev/zero | tr '\\0' x")),
        ),
    ]);
    let base = peak_rss_kib(&env, "small");
    let huge = peak_rss_kib(&env, "huge");
    assert!(
        huge < base + 50 * 1024,
        "300 MB on one line grew the console from {base} KiB to {huge} KiB"
    );
    let records = env.audit();
    let fin = records
        .iter()
        .rfind(|r| r["event"] == "step_finished")
        .expect("an end record");
    let mut hasher = Sha256::new();
    let chunk = vec![b'x'; 1 << 20];
    let mut left = SIZE;
    while left > 0 {
        let n = left.min(chunk.len());
        hasher.update(&chunk[..n]);
        left -= n;
    }
    assert_eq!(
        fin["output_sha256"].as_str().unwrap(),
        format!("{:x}", hasher.finalize()),
        "the hash covers every byte, not the kept part"
    );
}

#[tokio::test]
async fn a_huge_line_is_cut_with_a_marker_and_counted_whole() {
    let spec = StepSpec {
        command: "head -c 20000000 /dev/zero | tr '\\0' y; echo; echo after".into(),
        env: vec![],
        cwd: None,
        timeout: None,
        interactive: false,
        grace: Duration::from_millis(500),
    };
    let mut lines = Vec::new();
    let o = exec::run(
        &spec,
        |l| lines.push(l.to_string()),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(o.ok());
    assert_eq!(o.output_bytes, 20_000_000 + 1 + 6);
    assert_eq!(lines.len(), 2);
    let dropped = 20_000_000 - exec::MAX_LINE;
    assert!(lines[0].starts_with("yyyy"));
    assert!(
        lines[0].ends_with(&format!(" …[line cut: {dropped} bytes dropped]")),
        "{}",
        &lines[0][lines[0].len() - 60..]
    );
    assert!(lines[0].len() < exec::MAX_LINE + 64);
    assert_eq!(lines[1], "after");
}

/// The child half of `a_panic_in_a_spawned_task_ends_the_process_after_the_end_record`: the
/// library's panic hook, a running step with an end-record closure, then a task that panics.
fn panicking_console(out: &Path) -> ! {
    opsdeck::crash::install_hook();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let record = out.join("record");
        let _guard = exec::register_on_abort(Box::new(move |reason| {
            std::fs::write(&record, format!("cancelled {reason}")).unwrap();
        }));
        let spec = StepSpec {
            command: format!(
                "trap '' TERM; sleep 300 &\necho $! > '{}'\nwait",
                out.join("child").display()
            ),
            env: vec![],
            cwd: None,
            timeout: None,
            interactive: false,
            grace: Duration::from_millis(300),
        };
        let step =
            tokio::spawn(async move { exec::run(&spec, |_| {}, &CancellationToken::new()).await });
        let child = out.join("child");
        tokio::task::spawn_blocking(move || wait_for_pid(&child))
            .await
            .unwrap();
        tokio::spawn(async { panic!("a bug in a background task") });
        let _ = step.await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    std::process::exit(0)
}

#[test]
fn a_panic_in_a_spawned_task_ends_the_process_after_the_end_record() {
    if let Some(out) = std::env::var_os("OPSDECK_TEST_PANIC_CHILD_OUT") {
        panicking_console(Path::new(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_in_a_spawned_task_ends_the_process_after_the_end_record",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OPSDECK_TEST_PANIC_CHILD_OUT", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("a bug in a background task"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("record")).unwrap(),
        "cancelled panic"
    );
    let child = wait_for_pid(&dir.path().join("child"));
    assert_gone_within(
        &[(child, "the running step's child (ignores SIGTERM)")],
        Duration::from_secs(5),
    );
}

/// `runbook run` at a real terminal: an interactive step is given the terminal (its own process
/// group in the foreground: it can read from it), opsdeck takes the terminal back after it (the
/// next prompt can be answered), and an interactive step's timeout ends it and its children.
#[test]
fn an_interactive_step_gets_the_terminal_gives_it_back_and_times_out() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    let env = Env::new(&[(
        "tty",
        "---\ntitle: Terminal\n---\n## Ask\n```sh {name=ask interactive=true}\nread -r answer\necho \"$answer\" > \"$OUT_DIR/answer\"\n```\n## Hang\n```sh {name=hang interactive=true timeout=1}\nsleep 300 &\necho $! > \"$OUT_DIR/child\"\nsleep 300\n```\n",
    )]);
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_opsdeck"));
    cmd.arg("--config");
    cmd.arg(&env.config);
    cmd.args(["runbook", "run", "tty", "--cluster", "staging"]);
    cmd.env("XDG_STATE_HOME", env.dir.path().join("state"));
    let mut child = pair.slave.spawn_command(cmd).expect("opsdeck starts");
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |what: &str, count: usize| {
        let until = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().matches(what).count() < count {
            assert!(
                Instant::now() < until,
                "no {what:?} (#{count}) in:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("Run it?", 1);
    writer.write_all(b"y\r").unwrap();
    // The step reads from the terminal: it must be in the foreground to do so.
    std::thread::sleep(Duration::from_millis(300));
    writer.write_all(b"hello\r").unwrap();
    let answer = env.out("answer");
    let until = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&answer).unwrap_or_default() != "hello\n" {
        assert!(
            Instant::now() < until,
            "the interactive step could not read the terminal:\n{}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // opsdeck has the terminal again: its next prompt reads the answer.
    wait_for("Run it?", 2);
    writer.write_all(b"y\r").unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "the interactive step outlived its timeout:\n{}",
                seen.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "a timed-out step fails the run");
    assert!(
        seen.lock().unwrap().contains("timeout"),
        "{}",
        seen.lock().unwrap()
    );
    let bg = wait_for_pid(&env.out("child"));
    assert_gone_within(
        &[(bg, "the interactive step's child")],
        Duration::from_secs(3),
    );
}
