//! End to end: the built binary in a pseudo-terminal, screen parsed with vt100.
//! `opsdeck demo` at 80x24 shows both clusters and the known crash-looping pod; `q` quits and
//! SIGHUP (an SSH drop) leaves, and either way the terminal is restored.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

const WAIT: Duration = Duration::from_secs(60);

struct Session {
    screen: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    tty: Option<String>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    _slave: Box<dyn portable_pty::SlavePty + Send>,
    _home: tempfile::TempDir,
}

fn start(args: &[&str]) -> Session {
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let home = tempfile::tempdir().unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_opsdeck"));
    cmd.args(args);
    cmd.env("TERM", "xterm-256color");
    cmd.env("HOME", home.path());
    cmd.env("XDG_STATE_HOME", home.path().join("state"));
    cmd.env("XDG_CONFIG_HOME", home.path().join("config"));
    cmd.env_remove("OPSDECK_CONFIG");
    let child = pair.slave.spawn_command(cmd).expect("opsdeck starts");
    let tty = pair.master.tty_name().map(|p| p.display().to_string());
    let mut reader = pair.master.try_clone_reader().unwrap();
    let writer = pair.master.take_writer().unwrap();
    let screen = Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0)));
    let s = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock().unwrap().process(&buf[..n]);
        }
    });
    Session {
        screen,
        writer,
        child,
        tty,
        _master: pair.master,
        _slave: pair.slave,
        _home: home,
    }
}

impl Session {
    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if pred(&self.contents()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; screen:\n{}", self.contents());
    }

    fn wait_exit(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last bytes.
                std::thread::sleep(Duration::from_millis(300));
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("opsdeck did not exit; screen:\n{}", self.contents());
    }

    fn assert_restored(&self) {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        assert!(!screen.alternate_screen(), "left in the alternate screen");
        assert!(!screen.hide_cursor(), "cursor left hidden");
        drop(parser);
        if let Some(tty) = &self.tty {
            let out = std::process::Command::new("stty")
                .args(["-F", tty, "-a"])
                .output()
                .expect("stty runs");
            let flags = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "stty failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                flags.split_whitespace().any(|f| f == "icanon"),
                "raw mode left on: {flags}"
            );
            assert!(
                flags.split_whitespace().any(|f| f == "echo"),
                "echo left off: {flags}"
            );
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A failed test must not leave its console running.
        let _ = self.child.kill();
    }
}

fn demo_on_screen(s: &Session) {
    s.wait_for("both clusters and the crash-looping pod", |c| {
        c.contains("staging")
            && c.contains("production [PROD]")
            && c.contains("iam-service-")
            && c.contains("CrashLoopBackOff")
    });
}

#[test]
fn demo_shows_both_clusters_at_80x24_and_q_restores_the_terminal() {
    let mut s = start(&["demo"]);
    demo_on_screen(&s);
    assert!(s.screen.lock().unwrap().screen().alternate_screen());
    s.writer.write_all(b"q").unwrap();
    s.writer.flush().unwrap();
    let status = s.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    s.assert_restored();
}

#[test]
fn findings_key_lists_findings_and_esc_returns() {
    let mut s = start(&["demo"]);
    demo_on_screen(&s);
    s.writer.write_all(b"f").unwrap();
    s.writer.flush().unwrap();
    s.wait_for("the findings list", |c| {
        c.contains("Findings (") && c.contains("newest first")
    });
    s.writer.write_all(b"\x1b").unwrap();
    s.writer.flush().unwrap();
    s.wait_for("the overview again", |c| c.contains("Unhealthy pods"));
    s.writer.write_all(b"q").unwrap();
    s.writer.flush().unwrap();
    assert!(s.wait_exit().success());
}

#[test]
fn sighup_restores_the_terminal() {
    let mut s = start(&["demo"]);
    demo_on_screen(&s);
    let pid = s.child.process_id().expect("a pid") as i32;
    // SAFETY: kill(2) with a valid signal on our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    s.wait_exit();
    s.assert_restored();
}

#[test]
fn no_config_explains_how_to_start() {
    let mut s = start(&[]);
    s.wait_for("the getting-started text", |c| {
        c.contains("no config found") && c.contains("opsdeck demo")
    });
    s.writer.write_all(b"q").unwrap();
    s.writer.flush().unwrap();
    assert!(s.wait_exit().success());
    s.assert_restored();
}

#[test]
fn demo_runs_a_read_only_precheck_and_asks_for_the_name_on_a_destructive_step() {
    let mut s = start(&["demo"]);
    demo_on_screen(&s);
    let send = |s: &mut Session, bytes: &[u8]| {
        s.writer.write_all(bytes).unwrap();
        s.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };
    send(&mut s, b"r");
    s.wait_for("the runbook list", |c| {
        c.contains("Runbooks (") && c.contains("restore-postgres")
    });
    // restore-postgres is the 7th runbook by name.
    for _ in 0..6 {
        send(&mut s, b"j");
    }
    send(&mut s, b"\r");
    s.wait_for("restore-postgres open", |c| {
        c.contains("Restore PostgreSQL") && c.contains("check-target")
    });
    send(&mut s, b"\r");
    s.wait_for("the confirm modal", |c| c.contains("Run this step?"));
    send(&mut s, b"y");
    s.wait_for("the pre-check passing on staging", |c| {
        c.contains("ok: postgres-0 is Running on staging") && c.contains("ok in")
    });
    send(&mut s, b"G");
    send(&mut s, b"\r");
    // drop-scratch uses SCRATCH_DB: the variables form comes first, with its default.
    s.wait_for("the variables form", |c| {
        c.contains("Variables for this run") && c.contains("goapps_restore_check")
    });
    send(&mut s, b"\r");
    s.wait_for("the typed confirmation", |c| {
        c.contains("DESTRUCTIVE step") && c.contains("Type staging")
    });
    send(&mut s, b"\x1b");
    s.wait_for("the modal to close", |c| {
        c.contains("cancelled; nothing was run")
    });
    send(&mut s, b"q");
    assert!(s.wait_exit().success());
    let audit = std::fs::read_to_string(s._home.path().join("state/opsdeck/demo-audit.jsonl"))
        .expect("the demo audit file");
    let events: Vec<(String, String)> = audit
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event"].as_str().unwrap().to_string(),
                v["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("step_started".into(), "check-target".into()),
            ("step_finished".into(), "check-target".into())
        ]
    );
}

#[test]
fn demo_forward_key_opens_grafana_and_the_page_comes_through() {
    let mut s = start(&["demo"]);
    demo_on_screen(&s);
    s.writer.write_all(b"g").unwrap();
    s.writer.flush().unwrap();
    s.wait_for("the forward to listen", |c| {
        c.contains("production/grafana: listening on 127.0.0.1:")
    });
    let screen = s.contents();
    let addr = screen
        .split("production/grafana: listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address on screen")
        .to_string();
    let mut conn = std::net::TcpStream::connect(&addr).expect("the forward accepts");
    conn.write_all(b"GET / HTTP/1.0\r\nHost: grafana\r\n\r\n")
        .unwrap();
    // Read until the page is complete: the server may keep the connection open.
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut page = String::new();
    let mut buf = [0u8; 4096];
    while !page.contains("</html>") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => page.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(page.contains("Grafana (production, simulated)"), "{page}");
    s.writer.write_all(b"w").unwrap();
    s.writer.flush().unwrap();
    s.wait_for("the forwards view", |c| {
        c.contains("Port-forwards") && c.contains("1 running")
    });
    s.writer.write_all(b"q").unwrap();
    s.writer.flush().unwrap();
    assert!(s.wait_exit().success());
    let audit = std::fs::read_to_string(s._home.path().join("state/opsdeck/demo-audit.jsonl"))
        .expect("the demo audit file");
    assert!(
        audit.contains("\"forward.start\"") && audit.contains("\"forward.stop\""),
        "{audit}"
    );
}

#[test]
fn demo_three_keys_from_overview_to_a_failing_pods_log() {
    let mut s = start(&["demo"]);
    demo_on_screen(&s);
    let send = |s: &mut Session, bytes: &[u8]| {
        s.writer.write_all(bytes).unwrap();
        s.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };
    send(&mut s, b"\t");
    send(&mut s, b"\r");
    s.wait_for("production's pods table", |c| {
        c.contains("production [PROD]") && c.contains("pods ") && c.contains("NAMESPACE")
    });
    // Unhealthy first: the crash-looping pod is selected already; filter to it anyway.
    send(&mut s, b"/iam");
    send(&mut s, b"\r");
    s.wait_for("the filter applied", |c| {
        c.contains("/iam") && c.contains("CrashLoopBackOff")
    });
    send(&mut s, b"\r");
    s.wait_for("the pod detail with events", |c| {
        c.contains("CrashLoopBackOff") && c.contains("Events (")
    });
    send(&mut s, b"l");
    s.wait_for("a log line", |c| {
        c.contains("following") && c.contains("panic: failed to connect to postgres")
    });
    send(&mut s, b"q");
    assert!(s.wait_exit().success());
}

/// A console on a config of its own: one cluster without a kubeconfig (no API, so the run
/// takes the local lock alone), the orphan runbook first in the list.
fn console_with_orphan_runbook() -> (Session, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let runbooks = dir.join("runbooks");
    let out = dir.join("out");
    std::fs::create_dir_all(&runbooks).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runbooks/orphan.md"),
        runbooks.join("a-orphan.md"),
    )
    .unwrap();
    let audit = dir.join("audit.jsonl");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "runbooks_dir = {:?}\naudit_log = {:?}\nlock_dir = {:?}\n\n[[cluster]]\nname = \"staging\"\nkubeconfig = {:?}\n[cluster.env]\nOUT_DIR = {:?}\n",
            runbooks.display().to_string(),
            audit.display().to_string(),
            dir.join("locks").display().to_string(),
            dir.join("kubeconfig").display().to_string(),
            out.display().to_string(),
        ),
    )
    .unwrap();
    let s = start(&["--config", config.to_str().unwrap()]);
    (s, audit, out)
}

fn pid_in(path: &std::path::Path) -> i32 {
    let deadline = Instant::now() + WAIT;
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

fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
fn closing_the_console_with_a_step_running_kills_its_group_and_records_the_end() {
    let (mut s, audit, out) = console_with_orphan_runbook();
    s.wait_for("the overview", |c| c.contains("staging"));
    let send = |s: &mut Session, bytes: &[u8]| {
        s.writer.write_all(bytes).unwrap();
        s.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    };
    send(&mut s, b"r");
    s.wait_for("the runbook list", |c| c.contains("a-orphan"));
    send(&mut s, b"\r");
    s.wait_for("the runbook open", |c| c.contains("Spawn and wait"));
    send(&mut s, b"\r");
    s.wait_for("the confirm modal", |c| c.contains("Run this step?"));
    send(&mut s, b"y");
    let shell = pid_in(&out.join("shell.pid"));
    let background = pid_in(&out.join("child.pid"));
    // The SSH session drops: the pane gets SIGHUP.
    let pid = s.child.process_id().expect("a pid") as i32;
    // SAFETY: kill(2) with a valid signal on our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    s.wait_exit();
    s.assert_restored();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(gone(shell) && gone(background)) {
        assert!(
            Instant::now() < deadline,
            "the step's processes outlived the console"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let end = records
        .iter()
        .find(|r| r["event"] == "step_finished")
        .unwrap_or_else(|| panic!("no end record: {records:?}"));
    assert_eq!(end["result"], "cancelled");
    assert_eq!(end["signal"], "SIGHUP");
}
