//! "Nothing acts unrecorded" (issue 14), tried the way a bad night tries it: the audit path a
//! directory, /dev/full, a file-size limit mid-record, a folder another user cannot write, a
//! full disk (tmpfs), secrets whose values are JSON keys, a spoofed `$USER`, a killed run.
//! Every action — runbook step, quick action, exec, ArgoCD action, port-forward — writes its
//! start record before it acts, or is refused naming the file and the OS error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opsdeck::runbook::audit::{self, AuditLog, Record, summary};

const WAIT: Duration = Duration::from_secs(20);

const SECRET_RUNBOOK: &str = r#"---
title: Secret echo
summary: Prints its secret (masked).
vars:
  TOKEN:
    prompt: A secret token
    secret: true
---
## Echo
```sh {name=echo}
echo "token=$TOKEN"
touch "$OUT_DIR/ran"
```
"#;

const SLOW_RUNBOOK: &str = r#"---
title: Slow
summary: One step that waits.
---
## Wait
```sh {name=wait timeout=60}
echo $$ > "$OUT_DIR/pgid"
sleep 30
```
"#;

/// A config in a temp dir whose audit log is `audit` (a path inside the dir by default).
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    audit: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        Env::with_audit(dir, audit)
    }

    fn with_audit(dir: tempfile::TempDir, audit: PathBuf) -> Env {
        let root = dir.path();
        for d in ["out", "runbooks", "locks", "state"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runbooks");
        std::fs::copy(fixtures.join("plain.md"), root.join("runbooks/plain.md")).unwrap();
        std::fs::write(root.join("runbooks/secret.md"), SECRET_RUNBOOK).unwrap();
        std::fs::write(root.join("runbooks/slow.md"), SLOW_RUNBOOK).unwrap();
        let config = root.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "runbooks_dir = {:?}\naudit_log = {:?}\nlock_dir = {:?}\n\n[[cluster]]\nname = \"staging\"\nkubeconfig = {:?}\ncontext = \"staging\"\n[cluster.env]\nOUT_DIR = {:?}\n",
                root.join("runbooks").display().to_string(),
                audit.display().to_string(),
                root.join("locks").display().to_string(),
                root.join("kubeconfig").display().to_string(),
                root.join("out").display().to_string(),
            ),
        )
        .unwrap();
        Env { dir, config, audit }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_opsdeck"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env_remove("TOKEN")
            .env_remove("SUDO_USER")
            .env_remove("SSH_CONNECTION")
            .env_remove("SSH_CLIENT");
        c
    }

    fn run_plain(&self) -> Command {
        self.cmd(&["runbook", "run", "plain", "--cluster", "staging", "--yes"])
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    /// Every line of the audit file as JSON; panics on a line that does not parse.
    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every time in a record has at most millisecond precision.
fn assert_millisecond_times(records: &[serde_json::Value]) {
    for r in records {
        for key in ["started_at", "finished_at"] {
            if let Some(t) = r[key].as_str() {
                let ok = t.len() <= "2026-11-25T03:00:00.123Z".len()
                    && t.ends_with('Z')
                    && t.parse::<jiff::Timestamp>().is_ok();
                assert!(ok, "{key} {t:?} has more than millisecond precision: {r}");
            }
        }
    }
}

/// Asserts a refused `runbook run`: exit 6, the message names the file and the OS error,
/// and the step did not run.
fn assert_refused(env: &Env, out: &std::process::Output, os_error: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "stderr:\n{err}");
    assert!(err.contains("refused, nothing was run"), "{err}");
    assert!(err.contains(&env.audit.display().to_string()), "{err}");
    assert!(err.contains(os_error), "{err}");
    assert!(!env.out("who").exists(), "the step ran without a record");
}

#[test]
fn a_directory_at_the_audit_path_refuses_the_step_naming_file_and_error() {
    let env = Env::new();
    std::fs::create_dir(&env.audit).unwrap();
    let out = env.run_plain().output().unwrap();
    assert_refused(&env, &out, "Is a directory (os error 21)");
}

#[test]
fn a_file_where_the_audit_folder_should_be_names_the_file() {
    // Today: a bare "File exists (os error 17)".
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state-file"), "").unwrap();
    let audit = dir.path().join("state-file/audit.jsonl");
    let env = Env::with_audit(dir, audit);
    let out = env.run_plain().output().unwrap();
    assert_refused(&env, &out, "os error");
}

#[test]
fn a_full_device_refuses_the_step_and_gets_no_reserve_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with_audit(dir, PathBuf::from("/dev/full"));
    let out = env.run_plain().output().unwrap();
    assert_refused(&env, &out, "No space left on device");
    assert!(!Path::new("/dev/full.reserve").exists());
}

#[test]
fn a_file_size_limit_mid_record_leaves_the_log_as_it_was() {
    let env = Env::new();
    // Whole records, then a limit that falls inside the next one.
    let filler = serde_json::json!({
        "event": "action", "action": "pod.delete", "target": "staging/ns/pod/p",
        "result": "ok", "cluster": "staging", "user": "u", "host": "h",
        "started_at": "2026-11-25T03:00:00.000Z"
    })
    .to_string();
    let before: String = (0..40).map(|_| format!("{filler}\n")).collect();
    std::fs::write(&env.audit, &before).unwrap();
    let limit = before.len() as u64 + 60;
    let mut cmd = env.run_plain();
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's own limit.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_ne!(
        out.status.code(),
        None,
        "killed by SIGXFSZ: {:?}",
        out.status
    );
    assert_refused(&env, &out, "File too large");
    assert_eq!(
        std::fs::read_to_string(&env.audit).unwrap(),
        before,
        "a torn record was left behind"
    );
}

#[test]
fn an_audit_folder_another_user_cannot_write_refuses_the_step() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let audit_dir = root.join("audit");
    std::fs::create_dir(&audit_dir).unwrap();
    let env = Env::with_audit(dir, audit_dir.join("audit.jsonl"));
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&root, 0o755).unwrap();
    mode(&env.config, 0o644).unwrap();
    mode(&audit_dir, 0o755).unwrap();
    for d in ["out", "locks", "state"] {
        mode(&root.join(d), 0o777).unwrap();
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_opsdeck"))
        .arg("--config")
        .arg(&env.config)
        .args(["runbook", "run", "plain", "--cluster", "staging", "--yes"])
        .stdin(Stdio::null())
        .env("XDG_STATE_HOME", root.join("state"))
        .env("HOME", root.join("state"));
    let out = cmd
        .output()
        .expect("setpriv runs (package util-linux provides it)");
    assert_refused(&env, &out, "Permission denied");
}

#[test]
fn at_a_terminal_the_engineer_may_run_without_a_record_by_typing_the_cluster_name() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let env = Env::new();
    std::fs::create_dir(&env.audit).unwrap();
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_opsdeck"));
    cmd.arg("--config");
    cmd.arg(&env.config);
    cmd.args(["runbook", "run", "plain", "--cluster", "staging", "--yes"]);
    cmd.env("XDG_STATE_HOME", env.dir.path().join("state"));
    let mut child = pair.slave.spawn_command(cmd).expect("opsdeck starts");
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut writer = pair.master.take_writer().expect("writer");
    let screen = Arc::new(std::sync::Mutex::new(String::new()));
    let s = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock().unwrap().push_str(&text(&buf[..n]));
        }
    });
    let wait_for = |what: &str| {
        let deadline = Instant::now() + WAIT;
        while !screen.lock().unwrap().contains(what) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what:?}:\n{}",
                screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("type the cluster name");
    assert!(!env.out("who").exists(), "ran before the override");
    writer.write_all(b"staging\r").unwrap();
    writer.flush().unwrap();
    wait_for("copy this record");
    // The override covers that one step: the next one asks again, and "no" declines it.
    let deadline = Instant::now() + WAIT;
    while screen
        .lock()
        .unwrap()
        .matches("type the cluster name")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no second prompt:\n{}",
            screen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.write_all(b"no\r").unwrap();
    writer.flush().unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "opsdeck did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    let screen = screen.lock().unwrap().clone();
    assert!(
        env.out("who").exists(),
        "the overridden step did not run:\n{screen}"
    );
    assert!(
        screen.contains("\"event\":\"step_started\"") && screen.contains("\"step\":\"hello\""),
        "the record was not shown to copy:\n{screen}"
    );
    assert!(screen.contains("declined; nothing was run"), "{screen}");
    assert_eq!(status.exit_code(), 6, "{screen}");
}

#[test]
fn secrets_whose_values_are_json_keys_or_syntax_neither_corrupt_records_nor_hide_runs() {
    let env = Env::new();
    let secrets = ["event", "cluster", "\"", "\\"];
    for secret in secrets {
        let out = env
            .cmd(&["runbook", "run", "secret", "--cluster", "staging", "--yes"])
            .env("TOKEN", secret)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "token=***");
    }
    let records = env.records();
    assert_eq!(records.len(), 2 * secrets.len());
    for r in &records {
        assert!(r["event"].is_string() && r["cluster"] == "staging", "{r}");
        assert_eq!(r["vars"]["TOKEN"], "***", "{r}");
        if r["event"] == "step_finished" {
            assert_eq!(r["output_tail"], "token=***", "{r}");
        }
    }
    assert_millisecond_times(&records);
    let log = env.cmd(&["runbook", "log"]).output().unwrap();
    let listed: Vec<String> = text(&log.stdout)
        .lines()
        .filter(|l| l.contains("\tsecret\tstaging\t"))
        .map(str::to_string)
        .collect();
    assert_eq!(listed.len(), secrets.len(), "{}", text(&log.stdout));
    assert!(
        listed
            .iter()
            .all(|l| l.ends_with("ok 1 failed 0 skipped 0"))
    );
}

#[test]
fn user_is_the_real_uids_login_name_whatever_user_says() {
    let env = Env::new();
    let me = Command::new("id").arg("-un").output().unwrap();
    let me = text(&me.stdout).trim().to_string();
    let out = env
        .run_plain()
        .env("USER", "mallory")
        .env("LOGNAME", "mallory")
        .env("SUDO_USER", "alice")
        .env("SSH_CONNECTION", "203.0.113.9 51000 10.0.0.2 22")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let records = env.records();
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["user"], me.as_str(), "{r}");
        assert_eq!(r["sudo_user"], "alice", "{r}");
        assert_eq!(r["ssh_client"], "203.0.113.9 51000 10.0.0.2 22", "{r}");
    }
    assert_millisecond_times(&records);
    let log = text(&env.cmd(&["runbook", "log"]).output().unwrap().stdout);
    assert!(log.contains(&format!("\tstaging\t{me}\t")), "{log}");
    assert!(!log.contains("mallory"), "{log}");
}

#[test]
fn a_killed_run_is_running_while_locked_then_abandoned() {
    let env = Env::new();
    let mut child = env
        .cmd(&["runbook", "run", "slow", "--cluster", "staging", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !env.out("pgid").exists() {
        assert!(Instant::now() < deadline, "the step did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = || text(&env.cmd(&["runbook", "log"]).output().unwrap().stdout);
    let running = log();
    assert!(
        running.contains("\tslow\tstaging\t") && running.contains("running 1"),
        "{running}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let pgid: i32 = std::fs::read_to_string(env.out("pgid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let abandoned = loop {
        let l = log();
        if l.contains("abandoned 1") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: signalling the process group the test's own step created.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    assert!(
        abandoned.contains("ok 0 failed 0 skipped 0 abandoned 1"),
        "{abandoned}"
    );
}

fn json_line(v: serde_json::Value) -> String {
    format!("{v}\n")
}

#[test]
fn runbook_log_skips_and_reports_damaged_lines_and_shows_unfinished_actions_abandoned() {
    let env = Env::new();
    let base = serde_json::json!({
        "run_id": "20261125T030000Z-4f2a", "runbook": "plain", "step": "hello",
        "cluster": "staging", "user": "alice", "host": "vps",
        "started_at": "2026-11-25T03:00:00.000Z"
    });
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        json_line(v)
    };
    let action = |event: &str, id: &str, extra: serde_json::Value| {
        let mut v = serde_json::json!({
            "event": event, "action": "workload.scale", "action_id": id,
            "target": "staging/apps/deployment/web", "cluster": "staging",
            "user": "bob", "host": "some-other-host", "pid": 1,
            "started_at": "2026-11-25T03:05:00.000Z"
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        json_line(v)
    };
    let mut file = String::new();
    file += &with(serde_json::json!({"event": "step_started"}));
    file += "{\"event\":\"step_finished\",\"run_id\":\"20261125T0300"; // torn
    file += "\n";
    file += &with(serde_json::json!({"event": "step_finished", "exit_code": 0}));
    file += &action("action_started", "a1", serde_json::json!({}));
    file += &action("action", "a1", serde_json::json!({"result": "ok"}));
    file += &action("action_started", "a2", serde_json::json!({}));
    std::fs::write(&env.audit, file).unwrap();
    let out = env.cmd(&["runbook", "log"]).output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: {}:2: damaged record skipped",
            env.audit.display()
        )),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "20261125T030000Z-4f2a\tplain\tstaging\talice\t2026-11-25T03:00:00.000Z\tok 1 failed 0 skipped 0",
            "action\tworkload.scale\tstaging/apps/deployment/web\tbob\t2026-11-25T03:05:00.000Z\tok",
            "action\tworkload.scale\tstaging/apps/deployment/web\tbob\t2026-11-25T03:05:00.000Z\tabandoned",
        ],
        "{stdout}"
    );

    // The next record starts on its own line, after the file's unterminated last line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&env.audit)
        .unwrap();
    f.write_all(b"{\"event\":\"torn").unwrap();
    let out = env.run_plain().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let read = AuditLog::new(&env.audit).read().unwrap();
    assert_eq!(read.damaged, [2, 7], "{read:?}");
}

#[test]
fn runbook_log_demo_reads_the_demo_log() {
    let env = Env::new();
    let demo = env.dir.path().join("state/opsdeck/demo-audit.jsonl");
    std::fs::create_dir_all(demo.parent().unwrap()).unwrap();
    std::fs::write(
        &demo,
        json_line(serde_json::json!({
            "event": "step_skipped", "run_id": "20261125T040000Z-dem0", "runbook": "plain",
            "step": "hello", "cluster": "staging", "user": "demo", "host": "h",
            "started_at": "2026-11-25T04:00:00.000Z", "reason": "demo"
        })),
    )
    .unwrap();
    let demo_log = text(
        &env.cmd(&["runbook", "log", "--demo"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        demo_log.contains("20261125T040000Z-dem0\tplain\tstaging\tdemo\t"),
        "{demo_log}"
    );
    let real_log = text(&env.cmd(&["runbook", "log"]).output().unwrap().stdout);
    assert!(!real_log.contains("dem0"), "{real_log}");
}

/// A tmpfs of `size` mounted on a temp dir for as long as it lives.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(text(&out.stderr));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn step_record(n: usize) -> Record {
    Record {
        event: "step_started".into(),
        run_id: Some(format!("run-{n}")),
        step: Some("fill".into()),
        cluster: "staging".into(),
        command: Some("x".repeat(300)),
        started_at: audit::timestamp(jiff::Timestamp::now()),
        ..Default::default()
    }
}

#[test]
fn a_full_disk_is_written_from_the_reserve_then_refused_whole() {
    let fs = match Tmpfs::mount("256k") {
        Ok(fs) => fs,
        Err(e) => panic!(
            "this test needs to mount a small tmpfs (run the suite as root with CAP_SYS_ADMIN): {e}"
        ),
    };
    let log = AuditLog::new(fs.dir.path().join("audit.jsonl"));
    log.append(&step_record(0), &[]).unwrap();
    assert_eq!(
        std::fs::metadata(log.reserve_path()).unwrap().len(),
        audit::RESERVE_BYTES
    );
    assert!(!log.reserve_in_use());
    // Fill the disk.
    let mut filler = std::fs::File::create(fs.dir.path().join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
    // The next records come out of the reserve (once the log's last block is full), and
    // the writer says so.
    let mut written = 1;
    while !log.reserve_in_use() {
        log.append(&step_record(written), &[])
            .expect("written from the reserve");
        written += 1;
        assert!(written < 100, "the reserve was never used");
    }
    // Until that runs out too: then refused, naming the file and ENOSPC, and nothing torn.
    let err = loop {
        match log.append(&step_record(written), &[]) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 10_000, "the disk never filled");
    };
    let msg = err.to_string();
    assert!(msg.contains(&log.path().display().to_string()), "{msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    let read = log.read().unwrap();
    assert!(read.damaged.is_empty(), "torn records: {:?}", read.damaged);
    assert_eq!(read.records.len(), written);
    // Room again: recorded, and the reserve is put back.
    drop(filler);
    std::fs::remove_file(fs.dir.path().join("filler")).unwrap();
    log.append(&step_record(written), &[]).unwrap();
    assert!(!log.reserve_in_use());
}

/// A loopback listener that counts connections and never answers: an API server that would
/// hang any request, so the test sees whether an action reached it at all.
struct Silent {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn silent_server() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    Silent { addr, accepted }
}

fn kube_client(addr: std::net::SocketAddr) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(cfg).unwrap()
}

fn scale_action() -> opsdeck::drill::actions::QuickAction {
    use opsdeck::drill::actions::{QuickAction, QuickActionKind, WorkloadKind};
    QuickAction {
        kind: QuickActionKind::Scale {
            kind: WorkloadKind::Deployment,
            ns: "apps".into(),
            name: "web".into(),
            from: 2,
            to: 0,
        },
        cluster: "staging".into(),
    }
}

#[tokio::test]
async fn a_quick_action_is_refused_before_it_reaches_the_cluster_when_unrecordable() {
    use opsdeck::drill::actions;
    let server = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::create_dir(&path).unwrap();
    let audit = AuditLog::new(&path);
    let actor = audit::Actor::current();
    let client = kube_client(server.addr);
    let err = actions::perform_and_record(client.clone(), &scale_action(), &audit, &actor, "key")
        .await
        .expect_err("refused");
    assert!(err.contains("refused, nothing was done"), "{err}");
    assert!(
        err.contains(&path.display().to_string()) && err.contains("os error 21"),
        "{err}"
    );
    let delete = actions::QuickAction {
        kind: actions::QuickActionKind::Exec {
            ns: "apps".into(),
            pod: "web-0".into(),
            container: "web".into(),
        },
        cluster: "staging".into(),
    };
    let err = actions::exec_and_record(client, &delete, &audit, &actor, "typed")
        .await
        .expect_err("refused");
    assert!(err.contains("refused, nothing was done"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        0,
        "the action was sent"
    );
}

#[tokio::test]
async fn a_quick_actions_start_record_is_on_disk_while_it_is_still_running() {
    use opsdeck::drill::actions;
    // Today a scale that took 517 s had no record until it returned.
    let server = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let client = kube_client(server.addr);
    let task = {
        let audit = audit.clone();
        tokio::spawn(async move {
            let actor = audit::Actor::current();
            actions::perform_and_record(client, &scale_action(), &audit, &actor, "typed").await
        })
    };
    let deadline = Instant::now() + WAIT;
    while server.accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the action never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records = audit.read_all().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let start = &records[0];
    assert_eq!(start.event, "action_started");
    assert_eq!(start.action.as_deref(), Some("workload.scale"));
    assert_eq!(start.target.as_deref(), Some("staging/apps/deployment/web"));
    assert_eq!(start.confirmation.as_deref(), Some("typed"));
    assert!(start.action_id.is_some());
    let shown = summary::actions(&records, summary::writer_alive);
    assert_eq!(shown[0].result, "running");
    task.abort();
    let json: Vec<serde_json::Value> = std::fs::read_to_string(audit.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_millisecond_times(&json);
}

#[tokio::test]
async fn an_argocd_action_is_refused_before_any_request_when_unrecordable() {
    let server = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::create_dir(&path).unwrap();
    let mut argocd = toml::Table::new();
    argocd.insert(
        "url".into(),
        toml::Value::String(format!("https://{}", server.addr)),
    );
    let cluster = opsdeck::config::ClusterConfig {
        name: "production".into(),
        kubeconfig: None,
        context: Some("production".into()),
        app_namespace: None,
        protected: true,
        read_only: false,
        host: None,
        env: Default::default(),
        pgbouncer: None,
        redis: None,
        backups: None,
        argocd: Some(argocd),
    };
    let text = opsdeck::effects::argocd_action(
        &cluster,
        "finance-service-production",
        opsdeck::model::argocd::ArgoAction::Sync { prune: false },
        "typed",
        &AuditLog::new(&path),
    )
    .await;
    assert!(text.contains("refused, nothing was done"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        0,
        "the sync was sent"
    );
}

#[tokio::test]
async fn a_port_forward_is_refused_before_it_opens_when_unrecordable() {
    let server = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    std::fs::create_dir(&audit).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: http://{}\ncontexts:\n- name: staging\n  context:\n    cluster: s\n    user: u\nusers:\n- name: u\n  user: {{}}\ncurrent-context: staging\n",
            server.addr
        ),
    )
    .unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "audit_log = {:?}\n\n[[cluster]]\nname = \"staging\"\nkubeconfig = {:?}\ncontext = \"staging\"\n\n[[forward]]\nname = \"grafana\"\ncluster = \"staging\"\ntarget = \"monitoring/service/grafana:80\"\nlocal_port = 0\n",
            audit.display().to_string(),
            kubeconfig.display().to_string()
        ),
    )
    .unwrap();
    let config = opsdeck::config::Config::load(&config_path)
        .expect("config loads")
        .config;
    let forwards = opsdeck::forward::Forwards::new(&config);
    let err = forwards
        .start("staging/grafana")
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, opsdeck::forward::ForwardError::Unrecorded { .. }),
        "{err:?}"
    );
    assert!(
        msg.contains(&audit.display().to_string()) && msg.contains("os error 21"),
        "{msg}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        0,
        "the forward was opened"
    );
    forwards.shutdown().await;
}
