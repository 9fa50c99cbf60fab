//! `opsdeck runbook ...` run as a process: exit codes, refusals, `--yes` rules, the lock
//! between two processes, the audit record surviving SIGKILL, and variables as literals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let runbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runbooks");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "runbooks_dir = {:?}\naudit_log = {:?}\nlock_dir = {:?}\n\n[[cluster]]\nname = \"staging\"\nkubeconfig = {:?}\ncontext = \"staging\"\n[cluster.env]\nOUT_DIR = {:?}\n",
                runbooks.display().to_string(),
                dir.path().join("audit.jsonl").display().to_string(),
                dir.path().join("locks").display().to_string(),
                dir.path().join("kubeconfig").display().to_string(),
                out.display().to_string(),
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_opsdeck"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        c.env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env_remove("TOKEN");
        c
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("unparseable audit line {l:?}: {e}"))
            })
            .collect()
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }
}

fn events(audit: &[serde_json::Value]) -> Vec<(String, String)> {
    audit
        .iter()
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_string(),
                r["step"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn list_and_show_work_without_any_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["runbook", "list"])
        .env_remove("OPSDECK_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-opsdeck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "restore-postgres",
        "node-failure",
        "cert-renewal",
        "service-down",
        "database-connection-issues",
        "backup-failure",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}\t"))),
            "{name} missing from:\n{text}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["runbook", "show", "restore-postgres"])
        .env_remove("OPSDECK_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-opsdeck")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Step 1 · check-target") && text.contains("[DESTRUCTIVE]"),
        "{text}"
    );
}

#[test]
fn yes_runs_plain_steps_hands_values_on_and_records_them() {
    let env = Env::new();
    let out = env
        .cmd(&[
            "runbook",
            "run",
            "plain",
            "--cluster",
            "staging",
            "--yes",
            "--var",
            "WHO=x; rm -rf / $(id) `id` \"q\"",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("greeted=yes"), "{stdout}");
    assert_eq!(
        std::fs::read(env.out("who")).unwrap(),
        b"x; rm -rf / $(id) `id` \"q\"\0",
        "one literal argument"
    );
    let audit = env.audit();
    assert_eq!(
        events(&audit),
        [
            ("step_started", "hello"),
            ("step_finished", "hello"),
            ("step_started", "after"),
            ("step_finished", "after")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(audit[0]["confirmation"], "yes-flag");
    assert_eq!(audit[1]["exit_code"], 0);
    assert_eq!(audit[0]["runbook"], "plain");
    assert!(audit[0]["runbook_sha256"].as_str().unwrap().len() == 64);
}

#[test]
fn a_failed_step_exits_5_and_the_run_resumes_from_it() {
    let env = Env::new();
    let out = env
        .cmd(&["runbook", "run", "failing", "--cluster", "staging", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from two"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("three"),
        "stop on failure"
    );
    let out = env
        .cmd(&[
            "runbook",
            "run",
            "failing",
            "--cluster",
            "staging",
            "--yes",
            "--from",
            "two",
            "--var",
            "FIXED=1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("two") && stdout.contains("three") && !stdout.contains("one"),
        "{stdout}"
    );
}

#[test]
fn yes_never_covers_a_destructive_step_and_nothing_runs() {
    let env = Env::new();
    let out = env
        .cmd(&["runbook", "run", "danger", "--cluster", "staging", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never covers"));
    assert!(env.audit().is_empty(), "nothing ran, nothing recorded");
    assert!(!env.out("changed").exists());
    let out = env
        .cmd(&["runbook", "run", "danger", "--cluster", "staging"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "no terminal and no --yes: refused"
    );
}

#[test]
fn dry_run_shows_and_runs_nothing() {
    let env = Env::new();
    let out = env
        .cmd(&[
            "runbook",
            "run",
            "danger",
            "--cluster",
            "staging",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("echo changed") && err.contains("dry run"),
        "{err}"
    );
    assert!(!env.out("changed").exists());
    assert!(env.audit().is_empty());
}

#[test]
fn secret_variables_never_come_from_var_and_are_masked_from_the_environment() {
    let env = Env::new();
    let out = env
        .cmd(&[
            "runbook",
            "run",
            "plain",
            "--cluster",
            "staging",
            "--yes",
            "--var",
            "TOKEN=hunter2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret"));
}

#[test]
fn unknown_runbook_or_cluster_is_a_usage_error() {
    let env = Env::new();
    assert_eq!(
        env.cmd(&["runbook", "run", "nope", "--cluster", "staging", "--yes"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        env.cmd(&["runbook", "run", "plain", "--cluster", "nope", "--yes"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(3)
    );
}

fn wait_for_record(env: &Env, event: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if env.audit().iter().any(|r| r["event"] == event) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {event} record appeared");
}

#[test]
fn a_second_run_on_a_locked_cluster_is_refused_with_the_holder() {
    let env = Env::new();
    let mut first = env
        .cmd(&["runbook", "run", "slow", "--cluster", "staging", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_record(&env, "step_started");
    let out = env
        .cmd(&["runbook", "run", "plain", "--cluster", "staging", "--yes"])
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by") && err.contains("slow"), "{err}");
    // The kernel released the lock with the killed holder.
    let out = env
        .cmd(&["runbook", "run", "plain", "--cluster", "staging", "--yes"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_during_a_step_leaves_the_start_record_intact() {
    let env = Env::new();
    let mut child = env
        .cmd(&["runbook", "run", "slow", "--cluster", "staging", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_record(&env, "step_started");
    child.kill().unwrap();
    child.wait().unwrap();
    let audit = env.audit();
    assert_eq!(
        events(&audit),
        [("step_started".to_string(), "wait".to_string())]
    );
    assert_eq!(audit[0]["command"], "echo waiting\nsleep 30\n");
    assert!(audit[0]["user"].is_string() && audit[0]["host"].is_string());
}

#[test]
fn log_lists_runs_and_exports_markdown() {
    let env = Env::new();
    assert_eq!(
        env.cmd(&["runbook", "run", "plain", "--cluster", "staging", "--yes"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    let out = env.cmd(&["runbook", "log"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let run_id = text.split('\t').next().unwrap().to_string();
    assert!(
        text.contains("plain") && text.contains("ok 2 failed 0"),
        "{text}"
    );
    let out = env
        .cmd(&["runbook", "log", "--run", &run_id, "--markdown"])
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| hello | step_finished | ok |"), "{md}");
}

#[test]
fn every_embedded_step_passes_the_runbook_lint() {
    // The same parser and rules as the runner, with shellcheck over every step.
    assert!(
        Command::new("shellcheck").arg("--version").output().is_ok(),
        "shellcheck is needed: apt-get install shellcheck"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["runbook", "lint"])
        .output()
        .expect("opsdeck runs");
    assert!(
        out.status.success(),
        "runbook lint failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `pid` is still a live process (a zombie counts as gone: it runs nothing).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && let Ok(pid) = t.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) outlived the run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_signal_cancels_the_step_group_records_it_and_exits_with_its_code() {
    for (signal, name, code) in [
        (libc::SIGHUP, "SIGHUP", 129),
        (libc::SIGTERM, "SIGTERM", 143),
        (libc::SIGINT, "SIGINT", 130),
    ] {
        let env = Env::new();
        let mut child = env
            .cmd(&["runbook", "run", "orphan", "--cluster", "staging", "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let shell = read_pid(&env.out("shell.pid"));
        let background = read_pid(&env.out("child.pid"));
        // SAFETY: a signal to the child we spawned.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{name}: opsdeck did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(code), "{name}: {err}");
        wait_gone(shell, "the step's shell");
        wait_gone(background, "the step's background child");
        let audit = env.audit();
        let end = audit
            .iter()
            .find(|r| r["event"] == "step_finished")
            .unwrap_or_else(|| panic!("{name}: no end record in {audit:?}"));
        assert_eq!(end["result"], "cancelled", "{name}: {end}");
        assert_eq!(end["signal"], name, "{name}: {end}");
        // The lock went with the run.
        let next = env
            .cmd(&["runbook", "run", "plain", "--cluster", "staging", "--yes"])
            .output()
            .unwrap();
        assert_eq!(
            next.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&next.stderr)
        );
    }
}

#[test]
fn ctrl_c_at_a_prompt_cancels_the_run() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let env = Env::new();
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_opsdeck"));
    cmd.arg("--config");
    cmd.arg(&env.config);
    cmd.args(["runbook", "run", "plain", "--cluster", "staging"]);
    cmd.env("XDG_STATE_HOME", env.dir.path().join("state"));
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
            if n == 0 {
                break;
            }
            s.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    // The first prompt is WHO's value.
    while !seen.lock().unwrap().contains("Who?") {
        assert!(
            Instant::now() < deadline,
            "no prompt: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::io::Write::write_all(&mut writer, b"\x03").unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "Ctrl-C at the prompt was swallowed: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.exit_code(), 130, "{}", seen.lock().unwrap());
    assert!(env.audit().is_empty(), "nothing ran, nothing recorded");
}
