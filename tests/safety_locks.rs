//! Issue 14, "One run per cluster, across machines": the run lock is safe in a folder every
//! user shares (no symlink followed, another user's lock reported as held with who and since)
//! and holds across machines through a `coordination.k8s.io/v1` Lease in the cluster, which
//! the simulator serves (and `kubectl` lists).
//!
//! The suite runs as root; "another user" is `nobody`, through `setpriv` (util-linux).
//! Needs kubectl: `$KUBECTL`, or `kubectl` on PATH (`scripts/install-kubectl.sh`).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// A runbook whose one step waits until the file `$GATE` exists, and one that just says hello.
const GATE: &str = "---\ntitle: Gate\nsummary: Waits for a file.\n---\n## Wait\n```sh {name=wait timeout=120}\nfor _ in $(seq 1200); do\n  if [ -e \"$GATE\" ]; then exit 0; fi\n  sleep 0.1\ndone\nexit 1\n```\n";
const QUICK: &str =
    "---\ntitle: Quick\nsummary: Says hello.\n---\n## Hello\n```sh {name=hello}\necho hello\n```\n";

/// One "machine": its own config, lock folder, audit log and state, all usable by `nobody`.
struct Machine {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Machine {
    /// A machine whose cluster `staging` is `context` in `kubeconfig`.
    fn new(kubeconfig: &Path, context: &str) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let open = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        open(dir.path(), 0o755);
        for d in ["runbooks", "state", "audit", "home"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            open(&dir.path().join(d), 0o777);
        }
        std::fs::write(dir.path().join("runbooks/gate.md"), GATE).unwrap();
        std::fs::write(dir.path().join("runbooks/quick.md"), QUICK).unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "runbooks_dir = {:?}\naudit_log = {:?}\nlock_dir = {:?}\n\n[[cluster]]\nname = \"staging\"\nkubeconfig = {:?}\ncontext = {context:?}\n[cluster.env]\nGATE = {:?}\n",
                dir.path().join("runbooks").display().to_string(),
                dir.path().join("audit/audit.jsonl").display().to_string(),
                dir.path().join("locks").display().to_string(),
                kubeconfig.display().to_string(),
                dir.path().join("state/gate").display().to_string(),
            ),
        )
        .unwrap();
        open(&config, 0o644);
        Machine { dir, config }
    }

    fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }

    /// The lock folder as an administrator sets it up for every user (/var/lib/opsdeck/locks).
    fn shared_lock_dir(&self) -> PathBuf {
        let locks = self.lock_dir();
        std::fs::create_dir(&locks).unwrap();
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o1777)).unwrap();
        locks
    }

    /// `opsdeck --config ... ARGS`, as root or (with `uid`) as that user.
    fn cmd(&self, args: &[&str], uid: Option<u32>) -> Command {
        let bin = env!("CARGO_BIN_EXE_opsdeck");
        let mut c = match uid {
            None => Command::new(bin),
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(bin);
                c
            }
        };
        let user = if uid.is_some() { "nobody" } else { "root" };
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("HOME", self.dir.path().join("home"))
            .env("USER", user)
            .env("LOGNAME", user);
        c
    }

    /// Starts `gate` (held until [`Machine::open_gate`]) and waits until its step runs.
    fn hold(&self, uid: Option<u32>) -> Running {
        let child = self
            .cmd(
                &["runbook", "run", "gate", "--cluster", "staging", "--yes"],
                uid,
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux) and opsdeck run");
        let deadline = Instant::now() + Duration::from_secs(60);
        let audit = self.dir.path().join("audit/audit.jsonl");
        while !std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .contains("step_started")
        {
            assert!(Instant::now() < deadline, "the holding run never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        Running { child }
    }

    fn open_gate(&self) {
        std::fs::write(self.dir.path().join("state/gate"), "").unwrap();
    }

    /// Runs `quick` to its end: (exit code, stderr).
    fn quick(&self, uid: Option<u32>) -> (Option<i32>, String) {
        let out = self
            .cmd(
                &["runbook", "run", "quick", "--cluster", "staging", "--yes"],
                uid,
            )
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A run holding the lock; killed if the test ends early.
struct Running {
    child: Child,
}

impl Running {
    /// Waits for it to end: (exit code, stderr).
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return (status.code(), err);
            }
            assert!(Instant::now() < deadline, "the holding run did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubeconfig nobody needs to reach (these tests are about the local lock): the run warns
/// that there is no cross-machine lock and goes on.
fn no_kubeconfig() -> PathBuf {
    PathBuf::from("/nonexistent/kubeconfig")
}

#[test]
fn a_symlink_planted_at_the_lock_path_is_not_written_through() {
    let m = Machine::new(&no_kubeconfig(), "staging");
    let locks = m.shared_lock_dir();
    let victim = m.dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, locks.join("staging.lock")).unwrap();

    let (code, err) = m.quick(None);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_lock_held_by_another_user_is_reported_with_who_and_since() {
    let m = Machine::new(&no_kubeconfig(), "staging");
    let run = m.hold(None);
    let (code, err) = m.quick(Some(NOBODY));
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("locked by root on ") && err.contains(" since 20"),
        "{err}"
    );
    assert!(err.contains("runs gate"), "{err}");
    m.open_gate();
    assert_eq!(run.finish().0, Some(0));
}

#[test]
fn a_lock_of_nobody_is_reported_to_root_and_free_again_after() {
    let m = Machine::new(&no_kubeconfig(), "staging");
    m.shared_lock_dir();
    let run = m.hold(Some(NOBODY));
    let (code, err) = m.quick(None);
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("locked by nobody on ") && err.contains(" since "),
        "{err}"
    );
    m.open_gate();
    let (code, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = m.quick(None);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_lock_file_another_user_may_not_write_still_names_its_holder() {
    // Left 0644 by root (as an older opsdeck made it): nobody may only read it.
    let m = Machine::new(&no_kubeconfig(), "staging");
    let locks = m.shared_lock_dir();
    let file = locks.join("staging.lock");
    std::fs::write(&file, "").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = m.hold(None);
    let (code, err) = m.quick(Some(NOBODY));
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("locked by root on "), "{err}");
    m.open_gate();
    assert_eq!(run.finish().0, Some(0));
}

#[test]
fn a_lock_folder_opsdeck_creates_is_sticky_and_world_writable() {
    let m = Machine::new(&no_kubeconfig(), "staging");
    let (code, err) = m.quick(None);
    assert_eq!(code, Some(0), "{err}");
    let mode = std::fs::metadata(m.lock_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o1777);
    assert!(
        err.contains("no cross-machine lock for staging"),
        "a cluster without a kubeconfig says the Lease was not taken: {err}"
    );
}

// ---------------------------------------------------------------------------------------
// Across machines: the Lease, against `opsdeck sim`.

/// `opsdeck sim` as a child process; stopped on drop.
struct Sim {
    child: Child,
    kubeconfig: PathBuf,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
            .arg("sim")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let kubeconfig = PathBuf::from(
            line.trim_end()
                .strip_prefix("kubeconfig: ")
                .unwrap_or_else(|| panic!("first line: {line}")),
        );
        // Readable by `nobody` too.
        let _ = std::fs::set_permissions(
            kubeconfig.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        );
        let _ = std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644));
        Sim {
            child,
            kubeconfig,
            _stdout: out,
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let kubectl = std::env::var_os("KUBECTL")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        let mut child = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "staging", "--request-timeout=20s"])
            .arg("--cache-dir")
            .arg(self.kubeconfig.with_file_name("kube-cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("kubectl ({kubectl:?}): {e}; run scripts/install-kubectl.sh")
            });
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "kubectl {args:?}: {stderr}{stdout}");
        stdout + &stderr
    }

    fn leases(&self) -> String {
        self.kubectl(&["get", "leases", "-n", "default"], None)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn lease_yaml(holder: &str, renewed: &str) -> String {
    format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: opsdeck-runbook-lock\n  namespace: default\n  annotations:\n    opsdeck.io/runbook: restore-postgres\nspec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 60\n  acquireTime: \"2026-11-25T03:00:00.000000Z\"\n  renewTime: \"{renewed}\"\n"
    )
}

#[test]
fn two_machines_cannot_run_on_one_cluster_at_once() {
    let sim = Sim::start();
    let vps = Machine::new(&sim.kubeconfig, "staging");
    let laptop = Machine::new(&sim.kubeconfig, "staging");
    let first = vps.hold(None);

    // kubectl sees who holds the cluster.
    let listed = sim.leases();
    let header = listed.lines().next().unwrap_or("");
    assert!(
        header.contains("NAME") && header.contains("HOLDER") && header.contains("AGE"),
        "{listed}"
    );
    assert!(
        listed.contains("opsdeck-runbook-lock") && listed.contains("root@"),
        "{listed}"
    );
    let all = sim.kubectl(&["get", "leases", "-A"], None);
    assert!(all.contains("opsdeck-runbook-lock"), "{all}");

    // The laptop has its own lock folder: only the Lease stops it.
    let (code, err) = laptop.quick(None);
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("locked by root@") && err.contains("runs gate since 20"),
        "{err}"
    );
    assert!(err.contains("Lease default/opsdeck-runbook-lock"), "{err}");

    vps.open_gate();
    let (code, err) = first.finish();
    assert_eq!(code, Some(0), "{err}");
    let listed = sim.leases();
    assert!(
        !listed.contains("opsdeck-runbook-lock"),
        "the Lease is deleted at the run's end: {listed}"
    );
    let (code, err) = laptop.quick(None);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_live_lease_of_another_machine_refuses_naming_holder_and_since() {
    let sim = Sim::start();
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.000000Z");
    sim.kubectl(
        &["create", "--validate=false", "-f", "-"],
        Some(&lease_yaml("bob@laptop", &now.to_string())),
    );
    let m = Machine::new(&sim.kubeconfig, "staging");
    let (code, err) = m.quick(None);
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("bob@laptop runs restore-postgres since 2026-11-25T03:00:00Z"),
        "{err}"
    );
    assert!(sim.leases().contains("bob@laptop"), "left alone");
}

#[test]
fn an_expired_lease_is_taken_over_with_a_warning_naming_its_holder() {
    let sim = Sim::start();
    sim.kubectl(
        &["create", "--validate=false", "-f", "-"],
        Some(&lease_yaml("bob@laptop", "2026-01-01T00:00:00.000000Z")),
    );
    let m = Machine::new(&sim.kubeconfig, "staging");
    let (code, err) = m.quick(None);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("took over the expired run lock of staging: bob@laptop"),
        "{err}"
    );
    assert!(
        !sim.leases().contains("opsdeck-runbook-lock"),
        "released at the end"
    );
}

#[test]
fn an_unreachable_api_refuses_under_yes_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: staging\n  context:\n    cluster: dead\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: staging\n"
        ),
    )
    .unwrap();
    let m = Machine::new(&kubeconfig, "staging");
    let started = Instant::now();
    let (code, err) = m.quick(None);
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("cross-machine lock cannot be taken") && err.contains("typed at a terminal"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a dead API does not hang"
    );
    assert!(
        !m.dir.path().join("audit/audit.jsonl").exists(),
        "nothing ran"
    );
}

// ---------------------------------------------------------------------------------------
// The Lease API itself, against the simulator in this process.

mod lease_api {
    use std::time::Duration;

    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, PostParams};
    use opsdeck::config::ClusterConfig;
    use opsdeck::runbook::lock::lease::{self, Claim, LeaseOutcome};
    use opsdeck::sim::{Fleet, SimOptions};

    async fn api() -> (Fleet, Api<Lease>) {
        let fleet = Fleet::start(SimOptions {
            pods: 0,
            churn: false,
        })
        .await
        .unwrap();
        let cluster = ClusterConfig {
            name: "staging".into(),
            kubeconfig: Some(fleet.kubeconfig_path().to_path_buf()),
            context: Some("staging".into()),
            ..Default::default()
        };
        let client = opsdeck::sources::kube::client_for(&cluster).await.unwrap();
        (fleet, Api::namespaced(client, lease::NAMESPACE))
    }

    fn claim(who: &str) -> Claim {
        Claim {
            identity: who.into(),
            runbook: "restore-postgres".into(),
            pid: std::process::id(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_racing_takers_never_both_win() {
        let (_fleet, api) = api().await;
        for _ in 0..5 {
            let (alice, bob) = (claim("alice@vps"), claim("bob@laptop"));
            let (a, b) = tokio::join!(
                lease::acquire_on(api.clone(), &alice, Duration::from_secs(20)),
                lease::acquire_on(api.clone(), &bob, Duration::from_secs(20)),
            );
            let won: Vec<_> = [a, b]
                .into_iter()
                .filter_map(|o| match o {
                    LeaseOutcome::Acquired(g) => Some(*g),
                    LeaseOutcome::Held(_) => None,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(won.len(), 1, "exactly one taker wins");
            for g in won {
                g.release().await;
            }
            assert!(api.get_opt(lease::NAME).await.unwrap().is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_holder_renews_and_a_stale_write_is_a_conflict() {
        let (_fleet, api) = api().await;
        let LeaseOutcome::Acquired(guard) =
            lease::acquire_on(api.clone(), &claim("alice@vps"), Duration::from_millis(200)).await
        else {
            panic!("not acquired")
        };
        let first = api.get(lease::NAME).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = api.get(lease::NAME).await.unwrap();
        let renewed = |l: &Lease| l.spec.as_ref().unwrap().renew_time.clone().unwrap().0;
        assert!(
            renewed(&later) > renewed(&first),
            "renewed in the background"
        );
        // A write based on the first version is refused, as a real API server does.
        match api
            .replace(lease::NAME, &PostParams::default(), &first)
            .await
        {
            Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
            other => panic!("expected 409 Conflict, got {other:?}"),
        }
        match api.create(&PostParams::default(), &first).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"))
            }
            other => panic!("expected 409 AlreadyExists, got {other:?}"),
        }
        assert!(guard.lost().is_none());
        (*guard).release().await;
        assert!(api.get_opt(lease::NAME).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn release_leaves_a_lease_someone_else_took_over() {
        let (_fleet, api) = api().await;
        let LeaseOutcome::Acquired(guard) =
            lease::acquire_on(api.clone(), &claim("alice@vps"), Duration::from_secs(20)).await
        else {
            panic!("not acquired")
        };
        // Bob took it over (as if alice's had expired).
        let mut l = api.get(lease::NAME).await.unwrap();
        l.spec.as_mut().unwrap().holder_identity = Some("bob@laptop".into());
        api.replace(lease::NAME, &PostParams::default(), &l)
            .await
            .unwrap();
        (*guard).release().await;
        let left = api.get(lease::NAME).await.unwrap();
        assert_eq!(
            left.spec.unwrap().holder_identity.as_deref(),
            Some("bob@laptop")
        );
    }
}
