//! The simulated fleet checked with the real `kubectl` (server-side Tables, watch,
//! logs, discovery). Needs kubectl >= 1.30: `$KUBECTL`, or `kubectl` on PATH; run
//! `scripts/install-kubectl.sh` to install it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use opsdeck::sim::{Fleet, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("kubectl not found in $KUBECTL or PATH: run scripts/install-kubectl.sh (installs kubectl 1.35 to /usr/local/bin)")
        })
}

async fn fleet() -> Fleet {
    Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet starts")
}

fn kubectl(fleet: &Fleet, context: &str) -> Command {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig")
        .arg(fleet.kubeconfig_path())
        .arg("--context")
        .arg(context)
        .arg("--request-timeout=20s")
        // Keep kubectl's discovery cache out of the user's home and apart between tests.
        .arg("--cache-dir")
        .arg(fleet.kubeconfig_path().with_file_name("kube-cache"))
        .kill_on_drop(true);
    cmd
}

async fn run(fleet: &Fleet, context: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(WAIT, kubectl(fleet, context).args(args).output())
        .await
        .expect("kubectl finished in time")
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {stderr}\n{stdout}"
    );
    assert!(
        stderr.trim().is_empty(),
        "kubectl {args:?} complained: {stderr}"
    );
    stdout
}

#[tokio::test]
async fn get_pods_shows_crashloopbackoff_in_production() {
    let fleet = fleet().await;
    let out = run(&fleet, "production", &["get", "pods", "-A"]).await;
    let header = out.lines().next().unwrap_or("");
    for col in ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
        assert!(header.contains(col), "no {col} in {header:?}");
    }
    let crash: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("CrashLoopBackOff"))
        .collect();
    assert_eq!(crash.len(), 1, "{out}");
    assert!(crash[0].starts_with("goapps-production"), "{}", crash[0]);
    assert!(crash[0].contains("iam-service-"), "{}", crash[0]);
    assert!(crash[0].contains("0/1"), "{}", crash[0]);

    let staging = run(&fleet, "staging", &["get", "pods", "-n", "goapps-staging"]).await;
    assert!(
        staging
            .lines()
            .any(|l| l.starts_with("frontend-") && l.contains("ImagePullBackOff")),
        "{staging}"
    );
    let deps = run(&fleet, "production", &["get", "deploy", "-A"]).await;
    let iam = deps
        .lines()
        .find(|l| l.contains(" iam-service "))
        .expect("iam-service deployment");
    assert!(iam.contains("1/2"), "{iam}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn watch_prints_a_line_for_a_change() {
    let fleet = fleet().await;
    let prod = fleet.cluster("production").expect("production");
    let mut child = kubectl(&fleet, "production")
        .args(["get", "pods", "-A", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let saw = tokio::time::timeout(WAIT, async {
        // The initial list first...
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("postgres-0") {
                break;
            }
        }
        // ...then a change made while watching.
        let mut probe = prod
            .pods()
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some("rabbitmq-0"))
            .expect("rabbitmq-0");
        probe.metadata.name = Some("watch-probe-0".into());
        probe.metadata.uid = None;
        probe.metadata.resource_version = None;
        prod.upsert_pod(probe);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("watch-probe-0") {
                return Some(line);
            }
        }
        None
    })
    .await;
    let _ = child.kill().await;
    let line = saw
        .expect("kubectl printed in time")
        .expect("kubectl printed the change");
    assert!(line.starts_with("database"), "{line}");
    assert!(line.contains("Running"), "{line}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn logs_print_the_crash() {
    let fleet = fleet().await;
    let prod = fleet.cluster("production").expect("production");
    let pod = prod
        .pods()
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .find(|n| n.starts_with("iam-service-"))
        .expect("iam pod");
    let healthy = run(
        &fleet,
        "production",
        &["logs", "-n", "goapps-production", &pod],
    )
    .await;
    assert!(!healthy.trim().is_empty());
    let crash_pod = prod
        .pods()
        .into_iter()
        .find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| c[0].restart_count > 0)
        })
        .and_then(|p| p.metadata.name)
        .expect("crash pod");
    let out = run(
        &fleet,
        "production",
        &["logs", "-n", "goapps-production", &crash_pod, "--previous"],
    )
    .await;
    assert!(out.contains("connection refused"), "{out}");
    let tail = run(
        &fleet,
        "production",
        &["logs", "-n", "database", "postgres-0", "--tail=3"],
    )
    .await;
    assert_eq!(tail.lines().count(), 3, "{tail}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn get_nodes_shows_the_node_ready() {
    let fleet = fleet().await;
    let out = run(&fleet, "production", &["get", "nodes"]).await;
    let node = out
        .lines()
        .find(|l| l.starts_with("prod-vps"))
        .expect("prod-vps listed");
    assert!(node.split_whitespace().nth(1) == Some("Ready"), "{node}");
    let staging = run(&fleet, "staging", &["get", "nodes", "-o", "wide"]).await;
    assert!(
        staging.contains("staging-vps") && staging.contains("10.10.0.11"),
        "{staging}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn describe_shows_backoff_events() {
    let fleet = fleet().await;
    let prod = fleet.cluster("production").expect("production");
    let crash_pod = prod
        .pods()
        .into_iter()
        .find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| c[0].restart_count > 0)
        })
        .and_then(|p| p.metadata.name)
        .expect("crash pod");
    let out = run(
        &fleet,
        "production",
        &["describe", "pod", "-n", "goapps-production", &crash_pod],
    )
    .await;
    assert!(out.contains("CrashLoopBackOff"), "{out}");
    assert!(
        out.contains("Back-off restarting failed container"),
        "{out}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn get_events_prints_image_pull_failures() {
    let fleet = fleet().await;
    let out = run(
        &fleet,
        "staging",
        &["get", "events", "-n", "goapps-staging"],
    )
    .await;
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.contains("REASON") && header.contains("OBJECT"),
        "{header}"
    );
    assert!(
        out.lines().any(|l| l.contains("Warning")
            && l.contains("pod/frontend-")
            && l.contains("ghcr.io/mutugading/frontend:sha-9f41c0a")),
        "{out}"
    );
    fleet.shutdown().await;
}
