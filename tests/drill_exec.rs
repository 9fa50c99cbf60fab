//! `pods/exec` over WebSocket against the simulated kubelet, through kube-rs.

use std::time::Duration;

use kube::{Client, Config};
use opsdeck::drill::actions::exec_capture;
use opsdeck::sim::{Fleet, SimOptions};

const WAIT: Duration = Duration::from_secs(30);

async fn setup() -> (Fleet, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet starts");
    let cfg = Config::new(
        fleet
            .cluster("production")
            .expect("production")
            .url()
            .parse()
            .expect("url"),
    );
    let client = Client::try_from(cfg).expect("client");
    (fleet, client)
}

async fn run(
    client: &Client,
    cmd: &[&str],
    stdin: Option<&[u8]>,
) -> opsdeck::drill::actions::ExecOutput {
    tokio::time::timeout(
        WAIT,
        exec_capture(
            client.clone(),
            "database",
            "postgres-0",
            "postgres",
            cmd,
            stdin,
        ),
    )
    .await
    .expect("exec finished in time")
    .expect("exec works")
}

#[tokio::test]
async fn exec_echo_returns_output_and_exit_zero() {
    let (_fleet, client) = setup().await;
    let out = run(&client, &["echo", "hi"], None).await;
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.exit_code, 0);
}

#[tokio::test]
async fn exec_exit_codes_and_stderr_come_back() {
    let (_fleet, client) = setup().await;
    assert_eq!(
        run(&client, &["sh", "-c", "exit 3"], None).await.exit_code,
        3
    );
    let out = run(&client, &["frobnicate"], None).await;
    assert_eq!(out.exit_code, 127);
    assert_eq!(out.stderr, "sh: frobnicate: not found\n");
    let out = run(&client, &["pg_isready"], None).await;
    assert!(out.stdout.contains("accepting connections"), "{out:?}");
    assert_eq!(
        run(&client, &["cat", "/etc/hostname"], None).await.stdout,
        "postgres-0\n"
    );
}

#[tokio::test]
async fn a_shell_reads_commands_from_stdin() {
    let (_fleet, client) = setup().await;
    let out = run(&client, &["sh"], Some(b"echo one\necho two\nexit 4\n")).await;
    assert_eq!(out.stdout, "one\ntwo\n");
    assert_eq!(out.exit_code, 4);
    // End of input ends the shell with the last status.
    let out = run(&client, &["sh"], Some(b"nope\n")).await;
    assert_eq!(out.exit_code, 127);
}
