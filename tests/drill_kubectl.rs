//! The simulator's write side checked with the real `kubectl`: rollout restart, scale,
//! delete and exec behave as against a cluster. Needs kubectl >= 1.30: `$KUBECTL`, or
//! `kubectl` on PATH; run `scripts/install-kubectl.sh` to install it.
//! (`kubectl create job --from` posts protobuf, which the simulator answers with 415.)

use std::path::PathBuf;
use std::time::Duration;

use opsdeck::sim::{Fleet, SimOptions};
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

/// Runs kubectl; returns (exit code, stdout, stderr).
async fn kubectl(fleet: &Fleet, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig")
        .arg(fleet.kubeconfig_path())
        .arg("--context")
        .arg("staging")
        .arg("--request-timeout=20s")
        .arg("--cache-dir")
        .arg(fleet.kubeconfig_path().with_file_name("kube-cache"))
        .args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl runs");
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        w.write_all(text.as_bytes()).await.expect("stdin");
    }
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("kubectl finished in time")
        .expect("kubectl output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ok(fleet: &Fleet, args: &[&str]) -> String {
    let (code, out, err) = kubectl(fleet, args, None).await;
    assert_eq!(code, 0, "kubectl {args:?} failed: {err}\n{out}");
    out
}

#[tokio::test]
async fn rollout_restart_scale_and_delete_work_with_kubectl() {
    let fleet = fleet().await;
    let ns = ["-n", "goapps-staging"];
    let out = ok(
        &fleet,
        &[
            &ns[..],
            &["rollout", "restart", "deployment/finance-service"],
        ]
        .concat(),
    )
    .await;
    assert!(out.contains("restarted"), "{out}");
    let out = ok(
        &fleet,
        &[
            &ns[..],
            &[
                "rollout",
                "status",
                "deployment/finance-service",
                "--timeout=25s",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    ok(
        &fleet,
        &[
            &ns[..],
            &["scale", "deployment/finance-service", "--replicas=3"],
        ]
        .concat(),
    )
    .await;
    let out = ok(
        &fleet,
        &[
            &ns[..],
            &[
                "get",
                "deployment/finance-service",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(out, "3");
    let pods = ok(
        &fleet,
        &[
            &ns[..],
            &["get", "pods", "-l", "app=finance-service", "-o", "name"],
        ]
        .concat(),
    )
    .await;
    let victim = pods.lines().next().expect("a pod").to_string();
    let out = ok(&fleet, &[&ns[..], &["delete", &victim]].concat()).await;
    assert!(out.contains("deleted"), "{out}");
}

#[tokio::test]
async fn exec_prints_output_and_passes_exit_codes_through_kubectl() {
    let fleet = fleet().await;
    let (code, out, _) = kubectl(
        &fleet,
        &["-n", "database", "exec", "postgres-0", "--", "echo", "hi"],
        None,
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    let (code, _, err) = kubectl(
        &fleet,
        &[
            "-n",
            "database",
            "exec",
            "postgres-0",
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
        None,
    )
    .await;
    assert_eq!(code, 3, "{err}");
    let (code, out, _) = kubectl(
        &fleet,
        &["-n", "database", "exec", "-i", "postgres-0", "--", "sh"],
        Some("echo piped\nexit 5\n"),
    )
    .await;
    assert_eq!((code, out.as_str()), (5, "piped\n"));
}
