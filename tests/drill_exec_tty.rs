//! `exec_interactive` with a real terminal: this test runs itself again inside a PTY as the
//! child, which hands its stdin/stdout to a shell in a simulated container; the parent types
//! into the PTY, sees the command's output, and gets the shell's exit code as the child's.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Client, Config};
use opsdeck::drill::actions::exec_interactive;
use opsdeck::sim::{Fleet, SimOptions};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const WAIT: Duration = Duration::from_secs(30);
const CHILD_ENV: &str = "OPSDECK_DRILL_EXEC_CHILD_URL";
const TEST_NAME: &str = "exec_interactive_hands_the_terminal_to_the_container";

fn child(url: &str) -> ! {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let code = rt.block_on(async {
        let client = Client::try_from(Config::new(url.parse().expect("url"))).expect("client");
        exec_interactive(client, "database", "postgres-0", "postgres", &["sh"]).await
    });
    std::process::exit(match code {
        Ok(c) => c,
        Err(e) => {
            eprintln!("exec failed: {e}");
            99
        }
    })
}

#[test]
fn exec_interactive_hands_the_terminal_to_the_container() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        child(&url);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fleet = rt
        .block_on(Fleet::start(SimOptions {
            pods: 0,
            churn: false,
        }))
        .expect("fleet starts");
    let url = fleet.cluster("production").expect("production").url();

    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let mut cmd = CommandBuilder::new(std::env::current_exe().expect("test binary"));
    cmd.args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"]);
    cmd.env(CHILD_ENV, &url);
    let mut proc = pair.slave.spawn_command(cmd).expect("child starts");
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut writer = pair.master.take_writer().expect("writer");
    let screen = Arc::new(Mutex::new(String::new()));
    let s = screen.clone();
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
    let wait_for = |what: &str| {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if screen.lock().unwrap().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what:?}; output:\n{}",
            screen.lock().unwrap()
        );
    };
    wait_for("postgres-0:/$ ");
    // The quotes vanish in the shell, so `zztop` can only come from the command's output.
    writer.write_all(b"echo zz\"top\"\r").expect("type");
    writer.flush().expect("flush");
    wait_for("zztop");
    writer.write_all(b"exit 7\r").expect("type");
    writer.flush().expect("flush");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = proc.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "child did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.exit_code(), 7, "output:\n{}", screen.lock().unwrap());
    rt.block_on(fleet.shutdown());
}
