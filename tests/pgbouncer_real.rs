//! The PgBouncer source against a real PostgreSQL and PgBouncer (Debian packages `postgresql`
//! and `pgbouncer`) started here on free loopback ports in temp dirs, run as `postgres` when
//! the tests run as root; and the conformance of the simulated console with the real one.

use std::net::TcpStream as StdTcp;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opsdeck::config::{ClusterConfig, Endpoint};
use opsdeck::model::Severity;
use opsdeck::model::pgbouncer::{self as model, PgbouncerSnapshot};
use opsdeck::sources::pgbouncer::Console;
use opsdeck::sources::{Feature, FeatureData, SourceEvent, SourceUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// A server process, stopped when dropped (also when a test panics).
struct Proc {
    child: Child,
    stop_signal: i32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        unsafe { libc::kill(pid, self.stop_signal) };
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uid/gid to run servers as: `postgres` when root (initdb and pgbouncer refuse root).
fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = c"postgres";
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "no user `postgres`: install the Debian package postgresql (apt-get install postgresql)"
    );
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn command(bin: &Path) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = server_user() {
        c.uid(uid).gid(gid);
    }
    unsafe {
        c.pre_exec(|| {
            // The server dies with the test that started it, even on abort.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("{name} not found under /usr/lib/postgresql/*/bin: install the Debian package postgresql")
    })
}

fn pgbouncer_bin() -> PathBuf {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("pgbouncer not found: install the Debian package pgbouncer")
}

fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("opsdeck-pgb-")
        .tempdir()
        .expect("temp dir");
    if let Some((uid, gid)) = server_user() {
        let p = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).expect("path");
        assert_eq!(
            unsafe { libc::chown(p.as_ptr(), uid, gid) },
            0,
            "chown temp dir"
        );
    }
    dir
}

fn write_owned(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if let Some((uid, gid)) = server_user() {
        let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        unsafe { libc::chown(p.as_ptr(), uid, gid) };
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `make(port)` until it listens on the port, retrying with another port when the
/// process exits (another test took the port between our check and its bind).
fn start_on_free_port(stop_signal: i32, mut make: impl FnMut(u16) -> Command) -> (Proc, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut proc = Proc {
            child: make(port).spawn().expect("spawn server"),
            stop_signal,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if matches!(proc.child.try_wait(), Ok(Some(_))) {
                break;
            }
            if StdTcp::connect(("127.0.0.1", port)).is_ok() {
                return (proc, port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = proc.child.kill();
    }
    panic!("server did not start on any of 5 free ports");
}

/// Restarts on a given port (after a stop).
fn start_on(port: u16, stop_signal: i32, make: impl Fn(u16) -> Command) -> Proc {
    for _ in 0..50 {
        let mut proc = Proc {
            child: make(port).spawn().expect("spawn server"),
            stop_signal,
        };
        for _ in 0..100 {
            if matches!(proc.child.try_wait(), Ok(Some(_))) {
                break;
            }
            if StdTcp::connect(("127.0.0.1", port)).is_ok() {
                return proc;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("server did not restart on port {port}");
}

struct Postgres {
    _proc: Proc,
    port: u16,
}

fn start_postgres(dir: &Path) -> Postgres {
    start_postgres_with(dir, &[])
}

/// A PostgreSQL with extra `-c name=value` settings.
fn start_postgres_with(dir: &Path, settings: &[&str]) -> Postgres {
    let data = dir.join("data");
    let status = command(&pg_bin("initdb"))
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        .status()
        .expect("run initdb");
    assert!(status.success(), "initdb failed");
    let (proc, port) = start_on_free_port(libc::SIGINT, |port| {
        let mut c = command(&pg_bin("postgres"));
        c.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"]);
        for setting in settings {
            c.args(["-c", setting]);
        }
        c
    });
    Postgres { _proc: proc, port }
}

/// A PgBouncer with admin user `admin`/`adminpw` and client user `app`/`apppw`.
fn pgbouncer_command(dir: &Path, port: u16, pg_port: u16) -> Command {
    write_owned(
        &dir.join("userlist.txt"),
        "\"admin\" \"adminpw\"\n\"app\" \"apppw\"\n",
    );
    write_owned(
        &dir.join("pgbouncer.ini"),
        &format!(
            "[databases]\ngoapps = host=127.0.0.1 port={pg_port} dbname=postgres user=postgres pool_size=2\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = md5\nauth_file = {}\nadmin_users = admin\nstats_users = stats\n\
             pool_mode = transaction\nmax_client_conn = 100\nlogfile = {}\n",
            dir.join("userlist.txt").display(),
            dir.join("pgbouncer.log").display()
        ),
    );
    let mut c = command(&pgbouncer_bin());
    c.arg(dir.join("pgbouncer.ini"));
    c
}

fn start_pgbouncer(dir: &Path, pg_port: u16) -> (Proc, u16) {
    start_on_free_port(libc::SIGINT, |port| pgbouncer_command(dir, port, pg_port))
}

fn cluster(port: u16, password_file: &Path, wait_warn: &str) -> ClusterConfig {
    let table: toml::Table = toml::from_str(&format!(
        "address = \"127.0.0.1:{port}\"\nuser = \"admin\"\npassword_file = {:?}\npoll = \"200ms\"\nwait_warn = \"{wait_warn}\"\nwait_crit = \"30s\"\n",
        password_file.display().to_string()
    ))
    .expect("toml");
    ClusterConfig {
        name: "test".into(),
        pgbouncer: Some(table),
        ..ClusterConfig::default()
    }
}

fn spawn_source(c: ClusterConfig) -> (mpsc::UnboundedReceiver<SourceEvent>, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    tokio::spawn(opsdeck::sources::pgbouncer::run(0, c, tx, cancel.clone()));
    (rx, cancel)
}

enum Seen {
    Snap(std::sync::Arc<PgbouncerSnapshot>),
    Failing(String),
}

async fn next_until(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    what: &str,
    pred: impl Fn(&Seen) -> bool,
) -> Seen {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("source channel open");
        let seen = match ev.update {
            SourceUpdate::Feature(FeatureData::Pgbouncer(s)) => Seen::Snap(s),
            SourceUpdate::FeatureFailing {
                feature: Feature::Pgbouncer,
                reason,
            } => Seen::Failing(reason),
            _ => continue,
        };
        if pred(&seen) {
            return seen;
        }
    }
}

fn password_file(dir: &Path, value: &str) -> PathBuf {
    let p = dir.join(format!("pw-{value}"));
    write_owned(&p, value);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_clients_raise_warning_and_saturate_the_pool() {
    let dir = temp_dir();
    let pg = start_postgres(dir.path());
    let (_bouncer, port) = start_pgbouncer(dir.path(), pg.port);
    let app = format!("host=127.0.0.1 port={port} user=app password=apppw dbname=goapps");
    // Two clients hold the pool's two server connections in open transactions...
    let mut holders = Vec::new();
    for _ in 0..2 {
        let (client, conn) = tokio_postgres::connect(&app, tokio_postgres::NoTls)
            .await
            .expect("client logs in through pgbouncer");
        tokio::spawn(conn);
        client
            .simple_query("BEGIN; SELECT 1")
            .await
            .expect("transaction opens");
        holders.push(client);
    }
    // ...so two more queue.
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let (client, conn) = tokio_postgres::connect(&app, tokio_postgres::NoTls)
            .await
            .expect("client logs in");
        tokio::spawn(conn);
        waiters.push(tokio::spawn(async move {
            let _ = client.simple_query("SELECT 1").await;
            client
        }));
    }
    let pw = password_file(dir.path(), "adminpw");
    let (mut rx, cancel) = spawn_source(cluster(port, &pw, "1s"));
    let seen = next_until(&mut rx, "a snapshot with the waiting finding", |s| {
        matches!(s, Seen::Snap(s) if model::findings(s, jiff::Timestamp::now()).iter().any(|f| f.key.starts_with("waiting/goapps/")))
    })
    .await;
    let Seen::Snap(snap) = seen else {
        unreachable!()
    };
    let pool = snap
        .pools
        .iter()
        // The database entry forces user=postgres, so the pool is goapps/postgres.
        .find(|p| p.database == "goapps")
        .expect("goapps pool");
    assert!(pool.cl_waiting > 0, "{pool:?}");
    assert_eq!(pool.sv_active, 2, "{pool:?}");
    assert!(!snap.pools.iter().any(|p| p.database == "pgbouncer"));
    assert!(snap.version.starts_with("PgBouncer 1."), "{}", snap.version);
    assert!(snap.history.iter().any(|h| h.cl_waiting > 0));
    let findings = model::findings(&snap, jiff::Timestamp::now());
    let waiting = findings
        .iter()
        .find(|f| f.key.starts_with("waiting/goapps/"))
        .expect("waiting finding");
    assert!(
        waiting.message.contains("waiting for a server"),
        "{}",
        waiting.message
    );
    assert!(
        findings
            .iter()
            .any(|f| f.key.starts_with("saturated/goapps/") && f.severity == Severity::Crit),
        "{findings:?}"
    );
    let json = model::to_json(&snap);
    assert!(json["pools"][0]["maxwait_s"].is_f64());
    cancel.cancel();
    drop(holders);
    for w in waiters {
        w.abort();
    }
}

#[tokio::test]
async fn wrong_password_says_authentication_failed() {
    let dir = temp_dir();
    let (_bouncer, port) = start_pgbouncer(dir.path(), free_port());
    let pw = password_file(dir.path(), "not-the-password");
    let (mut rx, cancel) = spawn_source(cluster(port, &pw, "1s"));
    let Seen::Failing(reason) =
        next_until(&mut rx, "a failure", |s| matches!(s, Seen::Failing(_))).await
    else {
        unreachable!()
    };
    assert!(reason.contains("authentication failed"), "{reason}");
    assert!(reason.contains("\"admin\""), "{reason}");
    assert!(!reason.contains("unreachable"), "{reason}");
    assert!(
        !reason.contains("not-the-password"),
        "the secret never shows: {reason}"
    );
    cancel.cancel();
}

#[tokio::test]
async fn stopped_console_fails_and_recovers_after_restart() {
    let dir = temp_dir();
    let pg_port = free_port();
    let (bouncer, port) = start_pgbouncer(dir.path(), pg_port);
    let pw = password_file(dir.path(), "adminpw");
    let (mut rx, cancel) = spawn_source(cluster(port, &pw, "1s"));
    next_until(&mut rx, "a first snapshot", |s| matches!(s, Seen::Snap(_))).await;
    drop(bouncer);
    let Seen::Failing(reason) =
        next_until(&mut rx, "the failure", |s| matches!(s, Seen::Failing(_))).await
    else {
        unreachable!()
    };
    assert!(
        reason.contains("unreachable") || reason.contains("failed"),
        "{reason}"
    );
    let _again = start_on(port, libc::SIGINT, |p| {
        pgbouncer_command(dir.path(), p, pg_port)
    });
    next_until(&mut rx, "a snapshot after the restart", |s| {
        matches!(s, Seen::Snap(_))
    })
    .await;
    cancel.cancel();
}

#[tokio::test]
async fn simulated_console_agrees_with_the_real_one() {
    let dir = temp_dir();
    let (_bouncer, port) = start_pgbouncer(dir.path(), free_port());
    let real = Console::connect(
        &Endpoint::Address {
            host: "127.0.0.1".into(),
            port,
        },
        "admin",
        Some("adminpw"),
    )
    .await
    .expect("real console");
    let sim_server =
        opsdeck::sim::pgbouncer::SimPgbouncer::start(opsdeck::sim::seed::Env::Production)
            .await
            .expect("sim console");
    let sim = Console::connect(
        &Endpoint::Address {
            host: "127.0.0.1".into(),
            port: sim_server.addr().port(),
        },
        opsdeck::sim::pgbouncer::USER,
        Some(opsdeck::sim::pgbouncer::PASSWORD),
    )
    .await
    .expect("sim console logs in with the same client code");
    let real_version = model::parse_version(&real.show("VERSION").await.expect("real")).expect("v");
    for what in ["VERSION", "POOLS", "STATS", "DATABASES"] {
        let r = real.show(what).await.expect("real answers");
        let s = sim.show(what).await.expect("sim answers");
        for c in &s.columns {
            assert!(
                r.columns.contains(c),
                "SHOW {what}: the sim's column {c} is not in {real_version}"
            );
        }
        if real_version.starts_with("PgBouncer 1.18") {
            assert_eq!(
                r.columns, s.columns,
                "SHOW {what}: same columns as the real 1.18"
            );
        }
    }
    // Both parse with the same code.
    let r = real
        .poll(None, Default::default())
        .await
        .expect("real poll parses");
    let s = sim
        .poll(None, Default::default())
        .await
        .expect("sim poll parses");
    assert!(r.pools.iter().all(|p| p.database != "pgbouncer"));
    assert!(
        s.pools.iter().any(|p| p.cl_waiting > 0),
        "production sim has clients queueing"
    );
    // A wrong password is refused by both with the same wording.
    for (p, user) in [
        (port, "admin"),
        (sim_server.addr().port(), opsdeck::sim::pgbouncer::USER),
    ] {
        let err = Console::connect(
            &Endpoint::Address {
                host: "127.0.0.1".into(),
                port: p,
            },
            user,
            Some("wrong"),
        )
        .await
        .err()
        .expect("refused")
        .to_string();
        assert!(err.contains("authentication failed"), "{err}");
    }
}

/// PgBouncer as the edoburu/pgbouncer image configures it on the goapps fleet: no ADMIN_USERS
/// or STATS_USERS, so `admin_users = postgres` and no `stats_users`; `userlist.txt` holds only
/// POSTGRES_USER (staging: `stgapps`), which logs in with the right password and is turned away
/// from the console. The source then says why and what to change (the STATS_USERS snippet), and
/// shows Postgres's own connections from `[cluster.pgbouncer.postgres]`: services connecting
/// directly (here `iam-service`) over 80 % of max_connections warn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_console_says_set_stats_users_and_shows_direct_postgres_clients() {
    let dir = temp_dir();
    let pg = start_postgres_with(dir.path(), &["max_connections=12"]);
    let superuser = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        pg.port
    );
    let mut tries = 0;
    let (admin, conn) = loop {
        // Postgres accepts TCP before it accepts logins ("starting up").
        match tokio_postgres::connect(&superuser, tokio_postgres::NoTls).await {
            Ok(c) => break c,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("postgres: {e}"),
        }
    };
    tokio::spawn(conn);
    admin
        .simple_query("CREATE ROLE stgapps LOGIN SUPERUSER PASSWORD 'stgpw'")
        .await
        .expect("role");
    drop(admin);
    let (_bouncer, port) = start_on_free_port(libc::SIGINT, |port| {
        write_owned(&dir.path().join("userlist.txt"), "\"stgapps\" \"stgpw\"\n");
        write_owned(
            &dir.path().join("pgbouncer.ini"),
            &format!(
                "[databases]\ngoapps = host=127.0.0.1 port={} dbname=postgres\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = md5\nauth_file = {}\nadmin_users = postgres\n\
                 pool_mode = transaction\nmax_client_conn = 100\nlogfile = {}\n",
                pg.port,
                dir.path().join("userlist.txt").display(),
                dir.path().join("pgbouncer.log").display()
            ),
        );
        let mut c = command(&pgbouncer_bin());
        c.arg(dir.path().join("pgbouncer.ini"));
        c
    });
    // iam-service and finance-service connect to Postgres directly, bypassing PgBouncer.
    let mut direct = Vec::new();
    for app in ["iam-service"; 7].into_iter().chain(["finance-service"; 2]) {
        let (c, conn) = tokio_postgres::connect(
            &format!("{superuser} application_name={app}"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("direct client");
        tokio::spawn(conn);
        direct.push(c);
    }
    let pw = password_file(dir.path(), "stgpw");
    let table: toml::Table = toml::from_str(&format!(
        "address = \"127.0.0.1:{port}\"\nuser = \"stgapps\"\npassword_file = {:?}\npoll = \"200ms\"\n\
         [postgres]\naddress = \"127.0.0.1:{}\"\nuser = \"postgres\"\n",
        pw.display().to_string(),
        pg.port
    ))
    .expect("toml");
    let c = ClusterConfig {
        name: "staging".into(),
        pgbouncer: Some(table),
        ..ClusterConfig::default()
    };
    let (mut rx, cancel) = spawn_source(c);
    let Seen::Snap(snap) = next_until(&mut rx, "a refused snapshot with postgres", |s| {
        matches!(s, Seen::Snap(s) if s.refused.is_some() && s.postgres.as_ref().is_some_and(|p| p.total >= 10))
    })
    .await
    else {
        unreachable!()
    };
    let refusal = snap.refused.as_ref().expect("refused");
    assert_eq!(refusal.user, "stgapps");
    assert!(refusal.detail.contains("not allowed"), "{}", refusal.detail);
    let pgc = snap.postgres.as_ref().expect("postgres");
    assert_eq!(pgc.max_connections, 12);
    assert_eq!(pgc.clients[0].application_name, "iam-service");
    assert_eq!(pgc.clients[0].count, 7);
    assert_eq!(pgc.clients[0].client_addr, "127.0.0.1");
    let f = model::findings(&snap, snap.taken_at);
    let refused = f
        .iter()
        .find(|f| f.key == "console-refused")
        .expect("{f:?}");
    assert!(
        refused
            .message
            .contains("env:\n  - name: STATS_USERS\n    value: \"stgapps\""),
        "{}",
        refused.message
    );
    let conns = f
        .iter()
        .find(|f| f.key == "postgres-connections")
        .expect("over 80 %");
    assert_eq!(conns.severity, Severity::Warn);
    assert!(
        conns.message.contains("iam-service@127.0.0.1 x7"),
        "{}",
        conns.message
    );
    let theme = opsdeck::ui::Theme { color: false };
    let text = |lines: Vec<ratatui::text::Line<'static>>| {
        lines
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.as_ref())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let tile = text(opsdeck::ui::tiles::pgbouncer::tile(
        Some(&snap),
        None,
        38,
        8,
        snap.taken_at,
        theme,
    ));
    assert!(tile.contains("console refused"), "{tile}");
    assert!(tile.contains("STATS_USERS=\"stgapps\""), "{tile}");
    assert!(tile.contains("postgres 10/12 conns"), "{tile}");
    assert!(tile.contains("7 iam-service 127.0.0.1"), "{tile}");
    let detail = text(opsdeck::ui::tiles::pgbouncer::detail(
        Some(&snap),
        None,
        100,
        40,
        snap.taken_at,
        theme,
    ));
    assert!(detail.contains("    - name: STATS_USERS"), "{detail}");
    assert!(detail.contains("      value: \"stgapps\""), "{detail}");
    cancel.cancel();
    drop(direct);
}
