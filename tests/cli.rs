//! The command-line contracts of interfaces.md, run against the built binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn opsdeck() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsdeck"));
    c.env_remove("OPSDECK_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-opsdeck-test")
        .env("NO_COLOR", "1");
    c
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    let out = opsdeck()
        .args(["status", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = opsdeck().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("status"));
}

#[test]
fn status_demo_json_follows_the_schema_and_exits_2_on_critical_findings() {
    let out = opsdeck()
        .args(["status", "--demo", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["schema"], 1);
    assert!(doc["generated_at"].as_str().unwrap().ends_with('Z'));
    let clusters = doc["clusters"].as_array().unwrap();
    let names: Vec<_> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["staging", "production"]);
    let prod = &clusters[1];
    assert_eq!(prod["protected"], true);
    assert_eq!(prod["reachable"], true);
    let pods = &prod["pods"];
    let phases: u64 = ["running", "pending", "failed", "succeeded"]
        .iter()
        .map(|k| pods[k].as_u64().unwrap())
        .sum();
    assert!(phases <= pods["total"].as_u64().unwrap());
    let crash = pods["unhealthy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["reason"] == "CrashLoopBackOff")
        .expect("crash-looping pod");
    assert!(crash["name"].as_str().unwrap().starts_with("iam-service-"));
    assert!(crash["age_s"].is_i64());
    assert!(
        prod["workloads"]["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "iam-service")
    );
    assert_eq!(prod["nodes"]["total"], 1);
    for f in prod["findings"].as_array().unwrap() {
        assert!(f["severity"] == "warn" || f["severity"] == "crit");
        assert!(
            ["kubernetes", "pgbouncer", "redis", "argocd", "backups"]
                .contains(&f["source"].as_str().unwrap()),
            "{f}"
        );
        assert!(f["since"].as_str().unwrap().ends_with('Z'));
    }
    // The simulated fleet configures PgBouncer, Redis and ArgoCD; their data sits under their keys.
    assert!(
        prod["pgbouncer"]["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["cl_waiting"].as_u64().unwrap() > 0)
    );
    // Redis 7's default RDB schedule, written into an emptyDir (target-environment.md).
    assert_eq!(prod["redis"]["rdb_enabled"], true);
    assert!(prod["argocd"]["apps"].as_array().unwrap().len() >= 6);
    let sources = prod["backups"]["sources"].as_array().unwrap();
    let age = |name: &str| {
        sources.iter().find(|s| s["name"] == name).unwrap()["age_s"]
            .as_i64()
            .unwrap()
    };
    assert!(
        age("b2") > age("minio"),
        "the simulated B2 stopped receiving backups"
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn status_cluster_filter_and_unknown_cluster() {
    let out = opsdeck()
        .args(["status", "--demo", "--cluster", "staging"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("staging") && !text.contains("production"),
        "{text}"
    );
    let out = opsdeck()
        .args(["status", "--demo", "--cluster", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("staging, production"));
}

#[test]
fn status_without_any_config_is_a_usage_error() {
    let out = opsdeck().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn config_check_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[cluster]]\nname = \"production\"\nprotected = \"yes\"\n",
    )
    .unwrap();
    let out = opsdeck()
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3") && err.contains("protected"),
        "{err}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let out = opsdeck()
        .args(["--config", example, "config", "check"])
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
fn sim_prints_kubeconfig_then_config_and_cleans_up() {
    let mut child = opsdeck()
        .arg("sim")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let kubeconfig = first
        .strip_prefix("kubeconfig: ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    let config = second
        .strip_prefix("config: ")
        .unwrap_or_else(|| panic!("second line: {second}"))
        .to_string();
    assert!(std::path::Path::new(&kubeconfig).exists());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("name = \"production\"") && text.contains("protected = true"));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "opsdeck sim ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !std::path::Path::new(&kubeconfig).exists(),
        "files are removed on exit"
    );
}

#[test]
fn status_of_an_unreachable_cluster_has_no_pods_and_no_unconfigured_features() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[[cluster]]\nname = \"lost\"\nkubeconfig = \"/nonexistent/kubeconfig\"\n",
    )
    .unwrap();
    let out = opsdeck()
        .args([
            "--config",
            config.to_str().unwrap(),
            "status",
            "--json",
            "--timeout",
            "2s",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &doc["clusters"][0];
    assert_eq!(c["reachable"], false);
    for key in [
        "pods",
        "workloads",
        "nodes",
        "pgbouncer",
        "redis",
        "backups",
        "argocd",
    ] {
        assert!(c.get(key).is_none(), "{key} should be absent: {c}");
    }
    assert!(
        c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "crit")
    );
    assert_eq!(out.status.code(), Some(2));
}
