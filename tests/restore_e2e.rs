//! restore-postgres end to end against a real PostgreSQL: the simulator's `postgres-0` runs
//! `psql`/`pg_dump`/`pg_isready` against a real server (Debian package `postgresql`), the
//! backup directory holds a real `pg_dump | gzip` under the fleet's real name plus a newer
//! ~20-byte empty dump that must be skipped, and `opsdeck runbook run restore-postgres
//! --cluster staging` is driven in a PTY (destructive steps need the cluster name typed).
//! Also: Ingresses served for cert-renewal, and host-level steps refused off their host.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsdeck::runbook::driver::host_check;
use opsdeck::runbook::vars::Target;

/// `opsdeck sim`, stopped when dropped.
struct Sim {
    child: Child,
    kubeconfig: PathBuf,
    config: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim() -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .arg("sim")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start opsdeck sim");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut kubeconfig = None;
    let mut config = None;
    while kubeconfig.is_none() || config.is_none() {
        let line = lines.next().expect("sim output").expect("line");
        if let Some(p) = line.strip_prefix("kubeconfig: ") {
            kubeconfig = Some(PathBuf::from(p));
        } else if let Some(p) = line.strip_prefix("config: ") {
            config = Some(PathBuf::from(p));
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Sim {
        child,
        kubeconfig: kubeconfig.expect("kubeconfig"),
        config: config.expect("config"),
    }
}

impl Sim {
    fn kubectl(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c.args(["--context", "staging"]);
        c.args(args);
        c
    }

    /// `psql` in staging's `postgres-0`: one value.
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = self
            .kubectl(&[
                "-n",
                "database",
                "exec",
                "postgres-0",
                "-c",
                "postgres",
                "--",
                "sh",
                "-c",
                // The pod's superuser, as the fleet has it (not necessarily `postgres`).
                "exec psql -X -At -v ON_ERROR_STOP=1 -U \"$POSTGRES_USER\" \"$@\"",
                "psql",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("kubectl exec psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The staging cluster's `[cluster.env]` BACKUP_DIR in the simulator's config.
    fn backup_dir(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let doc: toml::Table = text.parse().expect("toml");
        let staging = doc["cluster"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"].as_str() == Some("staging")))
            .expect("staging cluster")
            .clone();
        PathBuf::from(staging["env"]["BACKUP_DIR"].as_str().expect("BACKUP_DIR"))
    }
}

fn postgres_installed() -> bool {
    opsdeck::sim::exec::postgres_bin_dir().is_ok()
}

fn gzip_to(path: &Path, input: &[u8]) {
    let mut gz = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(path).expect("create dump"))
        .spawn()
        .expect("gzip");
    gz.stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    assert!(gz.wait().expect("gzip").success());
}

/// Runs restore-postgres in a PTY, typing the cluster name at every destructive prompt.
fn run_restore(sim: &Sim, workdir: &Path, state: &Path) -> (u32, String) {
    let vars = vec![
        "CI_SYNC_HELD=yes".to_string(),
        format!("RESTORE_WORKDIR={}", workdir.display()),
    ];
    run_in_pty(sim, "restore-postgres", &vars, state)
}

/// Runs a runbook on staging in a PTY with `--yes`, typing the cluster name at every
/// destructive prompt.
fn run_in_pty(sim: &Sim, runbook: &str, vars: &[String], state: &Path) -> (u32, String) {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_opsdeck"));
    cmd.arg("--config");
    cmd.arg(&sim.config);
    cmd.args(["runbook", "run", runbook, "--cluster", "staging", "--yes"]);
    for v in vars {
        cmd.arg("--var");
        cmd.arg(v);
    }
    cmd.env("XDG_STATE_HOME", state);
    let mut child = pair.slave.spawn_command(cmd).expect("spawn");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut writer = pair.master.take_writer().expect("writer");
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
            if n == 0 {
                break;
            }
            s.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let prompt = "Type the cluster name to run it: ";
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    let code = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.exit_code();
        }
        let prompts = seen.lock().expect("lock").matches(prompt).count();
        if prompts > answered {
            writer.write_all(b"staging\r").expect("type");
            answered += 1;
        }
        assert!(
            Instant::now() < deadline,
            "restore did not finish: {}",
            seen.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = seen.lock().expect("lock").clone();
    (code, out)
}

#[test]
fn restore_postgres_brings_the_data_back_from_the_newest_non_empty_real_named_dump() {
    assert!(
        postgres_installed(),
        "PostgreSQL is not installed: apt-get install postgresql ({:?})",
        opsdeck::sim::exec::postgres_bin_dir().err()
    );
    let sim = start_sim();
    let tmp = tempfile::tempdir().expect("tmp");
    let backup_dir = sim.backup_dir();
    std::fs::create_dir_all(&backup_dir).expect("backup dir");
    // The simulated disk destination holds the panel's stand-ins (sparse files of the right
    // size, not gzip): this test brings its own real dumps, so it starts from an empty folder.
    for e in std::fs::read_dir(&backup_dir).expect("backup dir") {
        std::fs::remove_file(e.expect("entry").path()).expect("remove a stand-in");
    }

    // The seeded database as it was at the good dump.
    let invoices = sim.sql("goapps", "SELECT count(*) FROM finance.invoices");
    let users = sim.sql("goapps", "SELECT count(*) FROM auth.users");
    assert_eq!(invoices, "120");
    let good_sum = sim.sql("goapps", "SELECT sum(amount) FROM finance.invoices");

    // A real `pg_dump | gzip`, named as backup.sh names it (UTC stamp).
    let dump = sim
        .kubectl(&[
            "-n",
            "database",
            "exec",
            "postgres-0",
            "-c",
            "postgres",
            "--",
            "sh",
            "-c",
            "exec pg_dump -U \"$POSTGRES_USER\" -d goapps --format=plain --no-owner --no-acl",
        ])
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let good = backup_dir.join("staging_goapps_20261205_070012.sql.gz");
    gzip_to(&good, &dump.stdout);
    // Older, and not the environment's: never chosen.
    gzip_to(
        &backup_dir.join("staging_goapps_20261204_150007.sql.gz"),
        b"-- truncated\n",
    );
    gzip_to(
        &backup_dir.join("production_goapps_20261205_230001.sql.gz"),
        &dump.stdout,
    );
    // Newer and empty: pg_dump failed, gzip wrote ~20 bytes, the Job said Complete.
    let empty = backup_dir.join("staging_goapps_20261205_150009.sql.gz");
    gzip_to(&empty, b"");
    assert!(std::fs::metadata(&empty).expect("empty").len() < 40);

    // The incident: rows lost and a bad row written.
    sim.sql("goapps", "DELETE FROM finance.invoices WHERE id > 10");
    sim.sql(
        "goapps",
        "INSERT INTO auth.users (email) VALUES ('intruder@example.com')",
    );
    assert_eq!(
        sim.sql("goapps", "SELECT count(*) FROM finance.invoices"),
        "10"
    );

    let workdir = tmp.path().join("work");
    let (code, out) = run_restore(&sim, &workdir, &tmp.path().join("state"));
    assert_eq!(code, 0, "restore-postgres failed:\n{out}");
    assert!(
        out.contains("skipping staging_goapps_20261205_150009.sql.gz"),
        "the empty dump was not skipped visibly:\n{out}"
    );
    assert!(
        out.contains("chosen: staging_goapps_20261205_070012.sql.gz"),
        "{out}"
    );

    // The data really came back.
    assert_eq!(
        sim.sql("goapps", "SELECT count(*) FROM finance.invoices"),
        invoices
    );
    assert_eq!(
        sim.sql("goapps", "SELECT sum(amount) FROM finance.invoices"),
        good_sum
    );
    assert_eq!(sim.sql("goapps", "SELECT count(*) FROM auth.users"), users);
    assert_eq!(
        sim.sql(
            "goapps",
            "SELECT count(*) FROM auth.users WHERE email = 'intruder@example.com'"
        ),
        "0"
    );
    // The damaged database is kept under its new name, not dropped.
    let kept = sim.sql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE 'goapps_before_restore_%'",
    );
    assert!(kept.starts_with("goapps_before_restore_"), "{kept}");
    assert_eq!(
        sim.sql(&kept, "SELECT count(*) FROM finance.invoices"),
        "10"
    );
    // The writers are back.
    let replicas = sim
        .kubectl(&[
            "-n",
            "goapps-staging",
            "get",
            "deployment",
            "iam-service",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .output()
        .expect("kubectl");
    assert_ne!(String::from_utf8_lossy(&replicas.stdout).trim(), "0");
    // The restore record names the file.
    let record = std::fs::read_dir(&workdir)
        .expect("workdir")
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("restore-record-")
        })
        .expect("restore record");
    let text = std::fs::read_to_string(record.path()).expect("record");
    assert!(
        text.contains("staging_goapps_20261205_070012.sql.gz"),
        "{text}"
    );
}

#[test]
fn restore_test_drill_restores_a_production_dump_into_a_scratch_database_and_reports() {
    assert!(
        postgres_installed(),
        "PostgreSQL is not installed: apt-get install postgresql"
    );
    let sim = start_sim();
    let tmp = tempfile::tempdir().expect("tmp");
    let dump = sim
        .kubectl(&[
            "-n",
            "database",
            "exec",
            "postgres-0",
            "-c",
            "postgres",
            "--",
            "sh",
            "-c",
            "exec pg_dump -U \"$POSTGRES_USER\" -d goapps --format=plain --no-owner --no-acl",
        ])
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let file = tmp.path().join("production_goapps_20261205_150003.sql.gz");
    gzip_to(&file, &dump.stdout);
    let workdir = tmp.path().join("drill");
    let vars = vec![
        "DRILL_SOURCE=file".to_string(),
        format!("DRILL_FILE={}", file.display()),
        format!("DRILL_WORKDIR={}", workdir.display()),
    ];
    let (code, out) = run_in_pty(&sim, "restore-test", &vars, &tmp.path().join("state"));
    assert_eq!(code, 0, "restore-test failed:\n{out}");
    let report = std::fs::read_dir(&workdir)
        .expect("workdir")
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("restore-drill-")
        })
        .expect("report");
    let text = std::fs::read_to_string(report.path()).expect("report");
    assert!(text.contains("result: PASS"), "{text}");
    assert!(text.contains("finance.invoices"), "{text}");
    assert!(text.contains("120"), "{text}");
    // The scratch copy is gone; staging's goapps untouched.
    assert_eq!(
        sim.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'goapps_restore_drill'"
        ),
        "0"
    );
    assert_eq!(
        sim.sql("goapps", "SELECT count(*) FROM finance.invoices"),
        "120"
    );
}

#[test]
fn the_simulator_serves_ingresses_for_cert_renewal() {
    let sim = start_sim();
    let out = sim
        .kubectl(&[
            "get", "ingress", "-A", "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.spec.tls[0].secretName} {.spec.rules[0].host}{\"\\n\"}{end}",
        ])
        .output()
        .expect("kubectl get ingress");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "goapps-staging/frontend-ingress goapps-tls staging-goapps.mutugading.com",
        "goapps-staging/finance-service-ingress goapps-tls staging-goapps.mutugading.com",
        "goapps-staging/iam-service-ingress goapps-tls staging-goapps.mutugading.com",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

fn target(host: Option<&str>) -> Target {
    Target {
        name: "production".into(),
        context: "production".into(),
        kubeconfig: "/nonexistent".into(),
        app_namespace: "goapps-production".into(),
        protected: true,
        read_only: false,
        host: host.map(str::to_string),
        env: Default::default(),
    }
}

#[test]
fn host_level_steps_run_only_on_the_clusters_own_machine() {
    assert!(host_check(&target(Some("prod-vps")), "prod-vps").is_ok());
    let e = host_check(&target(Some("prod-vps")), "staging-vps").unwrap_err();
    assert!(e.contains("prod-vps") && e.contains("staging-vps"), "{e}");
    let e = host_check(&target(None), "staging-vps").unwrap_err();
    assert!(e.contains("host = "), "{e}");
    let e = host_check(
        &target(Some(opsdeck::config::SIMULATED_HOST)),
        "staging-vps",
    )
    .unwrap_err();
    assert!(e.contains("simulated fleet"), "{e}");
}

#[test]
fn a_host_step_is_refused_against_the_simulated_fleet_and_said_up_front() {
    let sim = start_sim();
    let tmp = tempfile::tempdir().expect("tmp");
    let rb = tmp.path().join("rb");
    std::fs::create_dir_all(&rb).expect("rb");
    std::fs::write(
        rb.join("disk.md"),
        "---\ntitle: Disk\n---\n# Disk\n\n```sh {name=look host=true}\ndf -h /\n```\n",
    )
    .expect("runbook");
    let config = tmp.path().join("config.toml");
    let text = std::fs::read_to_string(&sim.config).expect("config");
    std::fs::write(
        &config,
        format!("runbooks_dir = {:?}\n{text}", rb.display().to_string()),
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .arg("--config")
        .arg(&config)
        .args(["runbook", "run", "disk", "--cluster", "staging", "--yes"])
        .env("XDG_STATE_HOME", tmp.path())
        .stdin(Stdio::null())
        .output()
        .expect("run disk");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("warning: step 1 (look) will be refused: staging is the simulated fleet"),
        "{err}"
    );
    assert!(err.contains("nothing was run"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "df ran: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn without_postgresql_the_demo_says_up_front_which_steps_cannot_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args([
            "runbook",
            "run",
            "restore-postgres",
            "--demo",
            "--cluster",
            "staging",
            "--yes",
        ])
        .env("OPSDECK_SIM_POSTGRES", "off")
        .env("XDG_STATE_HOME", tmp.path())
        .stdin(Stdio::null())
        .output()
        .expect("run restore-postgres --demo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("step 2 (check-postgres) cannot run on the simulated fleet")
            && err.contains("OPSDECK_SIM_POSTGRES=off"),
        "{err}"
    );
    assert!(
        err.contains("(restore-scratch) cannot run on the simulated fleet"),
        "{err}"
    );
    // Nothing ran: the destructive steps need a terminal anyway.
    assert_eq!(out.status.code(), Some(6), "{err}");
}

#[test]
fn only_the_postgres_tools_make_an_exec_need_a_real_server() {
    use opsdeck::sim::exec::names_postgres_tool;
    assert!(names_postgres_tool(
        "sh -c 'PGPASSWORD=x exec psql -U \"$POSTGRES_USER\" \"$@\"' psql -d goapps"
    ));
    assert!(names_postgres_tool("pg_dump -d goapps | gzip"));
    assert!(names_postgres_tool("pg_isready"));
    assert!(!names_postgres_tool("df -h /var/lib/postgresql/data"));
    assert!(!names_postgres_tool("echo psqlx my_pg_dump_notes"));
}
