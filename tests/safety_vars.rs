//! Hostile inputs against variables, the step environment, runbook lint and secrets in the
//! config (issue 14, milestone 2), run on the binary as a user would: reserved variables cannot
//! be set by any path, a step's environment is scrubbed and targets what the console targets,
//! a mistyped or out-of-range runbook does not load, a URL never carries a password, and the log
//! file is private.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test (`OPSDECK_TEST_BIN` runs the same tests against another build, e.g.
/// to see them fail on an older one).
fn bin() -> PathBuf {
    std::env::var_os("OPSDECK_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_opsdeck")))
}

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runbooks-hostile")
}

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// A config with one cluster `staging`; `cluster_extra` is appended to its table.
    fn new(cluster_extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "runbooks_dir = {:?}\naudit_log = {:?}\nlock_dir = {:?}\n\n[[cluster]]\nname = \"staging\"\n{cluster_extra}",
                hostile_dir().display().to_string(),
                dir.path().join("audit.jsonl").display().to_string(),
                dir.path().join("locks").display().to_string(),
            ),
        )
        .unwrap();
        Env { dir, config }
    }

    /// A cluster with an explicit kubeconfig and context, and one `[cluster.env]` value.
    fn standard() -> Env {
        Env::new(
            "kubeconfig = \"/nonexistent/kubeconfig\"\ncontext = \"staging\"\n[cluster.env]\nBACKUP_DIR = \"/backups\"\n",
        )
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("HOME", self.dir.path());
        c
    }

    fn audit_exists(&self) -> bool {
        self.dir.path().join("audit.jsonl").exists()
    }

    fn lock_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("locks")).map_or(0, |d| d.count())
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_reserved_or_shell_var_is_refused_before_anything_runs() {
    for assignment in [
        "CONTEXT=production",
        "CLUSTER=production",
        "KUBECONFIG=/tmp/other",
        "OPSDECK_ENV=/etc/passwd",
        "OPSDECK_VAR_X=1",
        "BASH_ENV=/tmp/sourced",
        "PATH=/tmp/evil",
        "LD_PRELOAD=/tmp/evil.so",
        "IFS=x",
    ] {
        let env = Env::standard();
        let o = env
            .cmd(&[
                "runbook",
                "run",
                "env",
                "--cluster",
                "staging",
                "--yes",
                "--var",
                assignment,
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&o);
        let name = assignment.split('=').next().unwrap();
        assert_eq!(o.status.code(), Some(3), "{assignment}: {stderr}");
        assert!(stderr.contains(name), "{assignment}: {stderr}");
        assert!(
            !stdout.contains("name:"),
            "{assignment}: a step ran: {stdout}"
        );
        assert!(
            !env.audit_exists(),
            "{assignment}: an audit record was written"
        );
        assert_eq!(env.lock_files(), 0, "{assignment}: a lock was taken");
    }
}

#[test]
fn bash_env_given_with_var_never_gets_sourced() {
    let env = Env::standard();
    let marker = env.dir.path().join("sourced");
    let script = env.dir.path().join("bash_env.sh");
    std::fs::write(
        &script,
        format!("touch {:?}\n", marker.display().to_string()),
    )
    .unwrap();
    let o = env
        .cmd(&[
            "runbook",
            "run",
            "env",
            "--cluster",
            "staging",
            "--yes",
            "--var",
        ])
        .arg(format!("BASH_ENV={}", script.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(!marker.exists());
}

#[test]
fn a_step_gets_only_the_allowed_environment() {
    let env = Env::new(
        "kubeconfig = \"/nonexistent/kubeconfig\"\ncontext = \"staging\"\n[cluster.env]\nBACKUP_DIR = \"/backups\"\n[cluster.pgbouncer]\naddress = \"127.0.0.1:6432\"\nuser = \"postgres\"\npassword_env = \"PGBOUNCER_PASSWORD\"\n",
    );
    let hostile = env.dir.path().join("bash_env.sh");
    std::fs::write(&hostile, "echo SOURCED-BY-BASH-ENV\n").unwrap();
    let o = env
        .cmd(&["runbook", "run", "env", "--cluster", "staging", "--yes"])
        .env("PGBOUNCER_PASSWORD", "hunter2-pgbouncer")
        .env("CLUSTER", "production")
        .env("CONTEXT", "production")
        .env("OPSDECK_ENV", "/tmp/evil-env")
        .env("OPSDECK_VAR_CONTEXT", "production")
        .env("BASH_ENV", &hostile)
        .env("LD_PRELOAD", "")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("name: "))
        .collect();
    // Bash itself adds PWD, SHLVL and `_` for the commands it starts.
    let allowed = [
        "PATH",
        "HOME",
        "LANG",
        "TERM",
        "CLUSTER",
        "CONTEXT",
        "KUBECONFIG",
        "APP_NAMESPACE",
        "OPSDECK_ENV",
        "BACKUP_DIR",
        "PWD",
        "SHLVL",
        "_",
    ];
    for n in &names {
        assert!(allowed.contains(n), "{n} reached the step: {names:?}");
    }
    for n in [
        "PATH",
        "HOME",
        "CLUSTER",
        "CONTEXT",
        "KUBECONFIG",
        "OPSDECK_ENV",
    ] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    assert!(!stdout.contains("hunter2") && !stdout.contains("aws-secret"));
    assert!(!stdout.contains("SOURCED-BY-BASH-ENV"), "{stdout}");
    assert!(stdout.contains("context: staging\n"), "{stdout}");
    assert!(stdout.contains("cluster: staging\n"), "{stdout}");
}

#[test]
fn a_hand_off_cannot_retarget_and_the_output_says_so() {
    let env = Env::standard();
    let o = env
        .cmd(&["runbook", "run", "handoff", "--cluster", "staging", "--yes"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    for name in ["CONTEXT", "PATH", "OPSDECK_ENV"] {
        assert!(
            stdout.contains(&format!("opsdeck: ignored {name} from $OPSDECK_ENV")),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.contains("ctx=staging ok=1"), "{stdout}");
    assert!(!stdout.contains("path=/tmp/evil"), "{stdout}");
}

#[test]
fn a_runbook_declaring_a_reserved_variable_does_not_load() {
    let env = Env::standard();
    let o = env
        .cmd(&[
            "runbook",
            "run",
            "secret-context",
            "--cluster",
            "staging",
            "--yes",
        ])
        .env("CONTEXT", "production")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(!stdout.contains("context:"), "a step ran: {stdout}");
    let file = hostile_dir().join("secret-context.md");
    assert!(
        stderr.contains(&format!("{}:8: vars: CONTEXT is reserved", file.display())),
        "{stderr}"
    );
}

#[test]
fn a_mistyped_attribute_is_a_lint_error_with_a_suggestion_and_does_not_load() {
    let file = hostile_dir().join("typo.md");
    let o = Command::new(bin())
        .args(["runbook", "lint"])
        .arg(&file)
        .env("XDG_CONFIG_HOME", "/nonexistent-opsdeck")
        .env_remove("OPSDECK_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "{}:7: unknown step attribute `destuctive`: did you mean `destructive`?",
            file.display()
        )),
        "{stdout}"
    );
    let env = Env::standard();
    let o = env.cmd(&["runbook", "list"]).output().unwrap();
    let (stdout, stderr) = text(&o);
    assert!(!stdout.contains("typo\t"), "{stdout}");
    assert!(
        stderr.contains("destuctive") && stderr.contains("runbook typo is not loaded"),
        "{stderr}"
    );
}

#[test]
fn an_out_of_range_timeout_is_an_error_naming_file_and_line_not_a_panic() {
    let file = hostile_dir().join("bad-timeout.md");
    let o = Command::new(bin())
        .args(["runbook", "lint"])
        .arg(&file)
        .env("XDG_CONFIG_HOME", "/nonexistent-opsdeck")
        .env_remove("OPSDECK_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{}:7: timeout=", file.display())),
        "{stdout}"
    );
    let env = Env::standard();
    let o = env
        .cmd(&[
            "runbook",
            "run",
            "bad-timeout",
            "--cluster",
            "staging",
            "--yes",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        !stdout.contains("waiting") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn the_embedded_runbooks_pass_lint() {
    let o = Command::new(bin())
        .args(["runbook", "lint"])
        .env("XDG_CONFIG_HOME", "/nonexistent-opsdeck")
        .env_remove("OPSDECK_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains(": ok"), "{stderr}");
}

/// The simulated fleet, for steps whose run must take the cluster's Lease (a reachable API).
struct Api {
    _runtime: tokio::runtime::Runtime,
    _fleet: opsdeck::sim::Fleet,
    kubeconfig: kube::config::Kubeconfig,
}

fn api() -> Api {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fleet = runtime
        .block_on(opsdeck::sim::Fleet::start(
            opsdeck::sim::SimOptions::default(),
        ))
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(fleet.kubeconfig_path()).unwrap();
    Api {
        _runtime: runtime,
        _fleet: fleet,
        kubeconfig,
    }
}

/// A kubeconfig whose only context, `context`, reaches the simulated staging API.
fn write_kubeconfig(api: &Api, path: &Path, context: &str, current: bool) {
    let mut k = api.kubeconfig.clone();
    k.contexts.retain(|c| c.name == "staging");
    for c in &mut k.contexts {
        c.name = context.to_string();
    }
    k.current_context = current.then(|| context.to_string());
    // JSON is YAML.
    std::fs::write(path, serde_json::to_string(&k).unwrap()).unwrap();
}

#[test]
fn a_step_targets_the_kubeconfig_and_context_the_console_merges() {
    let env = Env::new("");
    let a = env.dir.path().join("a.yaml");
    let b = env.dir.path().join("b.yaml");
    let api = api();
    write_kubeconfig(&api, &a, "ctx-a", false);
    write_kubeconfig(&api, &b, "ctx-b", true);
    let list = format!("{}:{}", a.display(), b.display());
    // What the console's client resolves (kube-rs merges every file of $KUBECONFIG).
    let merged = kube::config::Kubeconfig::read_from(&a)
        .unwrap()
        .merge(kube::config::Kubeconfig::read_from(&b).unwrap())
        .unwrap();
    let console_context = merged.current_context.unwrap();
    assert_eq!(console_context, "ctx-b");
    let o = env
        .cmd(&["runbook", "run", "env", "--cluster", "staging", "--yes"])
        .env("KUBECONFIG", &list)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("kubeconfig: {list}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("context: {console_context}\n")),
        "{stdout}"
    );
}

#[test]
fn the_step_header_shows_the_context_the_step_gets() {
    let env = Env::new("context = \"staging-ctx\"\n");
    let kc = env.dir.path().join("k.yaml");
    let api = api();
    write_kubeconfig(&api, &kc, "staging-ctx", false);
    let o = env
        .cmd(&["runbook", "run", "env", "--cluster", "staging", "--yes"])
        .env("KUBECONFIG", &kc)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("context: "))
        .expect("the step printed $CONTEXT");
    let header = stderr
        .lines()
        .find(|l| l.starts_with("[1/1]"))
        .expect("a step header");
    assert!(
        header.contains(&format!("(context {printed})")),
        "header {header:?} vs step's $CONTEXT {printed:?}"
    );
}

#[test]
fn cluster_env_cannot_set_a_reserved_variable() {
    for name in [
        "CONTEXT",
        "KUBECONFIG",
        "OPSDECK_ENV",
        "BASH_ENV",
        "LD_PRELOAD",
    ] {
        let env = Env::new(&format!(
            "context = \"staging\"\n[cluster.env]\nBACKUP_DIR = \"/b\"\n{name} = \"x\"\n"
        ));
        let o = env.cmd(&["config", "check"]).output().unwrap();
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(3), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{}:10: cluster[0].env.{name}: ",
                env.config.display()
            )),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_url_with_a_password_is_a_config_error_and_never_printed() {
    let env = Env::new(
        "context = \"staging\"\n[cluster.argocd]\nurl = \"https://admin:hunter2pw@argocd.example:8443\"\ntoken_env = \"ARGOCD_TOKEN\"\n",
    );
    for args in [
        &["config", "check"][..],
        &["status", "--json", "--timeout", "1s"][..],
    ] {
        let o = env.cmd(args).output().unwrap();
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "{}:9: cluster[0].argocd.url: secrets never inline",
                env.config.display()
            )),
            "{args:?}: {stderr}"
        );
        assert!(
            !stdout.contains("hunter2pw") && !stderr.contains("hunter2pw"),
            "{args:?}: {stdout}{stderr}"
        );
        assert!(!stdout.contains("admin@") && !stderr.contains("admin@"));
    }
}

#[test]
fn the_log_file_is_private_to_the_user() {
    let env = Env::standard();
    let log_dir = env.dir.path().join("state/opsdeck");
    // The console logs to the file; without a terminal it stops right after starting.
    let o = env.cmd(&[]).stdout(Stdio::null()).output().unwrap();
    let log = log_dir.join("opsdeck.log");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert!(log.exists(), "no log file: {:?}", text(&o));
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&log_dir), 0o700);
    // One an older build left world-readable is made private.
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.cmd(&[]).stdout(Stdio::null()).output().unwrap();
    assert_eq!(mode(&log), 0o600);
}
