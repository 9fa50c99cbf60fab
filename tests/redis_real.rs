//! The Redis source against real `redis-server`s (Debian package `redis-server`) started here
//! on free loopback ports in temp dirs, one per persistence configuration; the simulated
//! fleet's Redis and emptyDir cross-check; and the conformance of the simulated Redis.

use std::net::TcpStream as StdTcp;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use opsdeck::config::{ClusterConfig, Config};
use opsdeck::model::Severity;
use opsdeck::model::redis::{self as model, ConfigValue, RedisSnapshot};
use opsdeck::sources::redis::{RedisConfig, RedisConn, Reply};
use opsdeck::sources::{Feature, FeatureData, SourceEvent, SourceUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_bin() -> PathBuf {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("redis-server not found: install the Debian package redis-server")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn(conf: &Path) -> Proc {
    use std::os::unix::process::CommandExt as _;
    let mut c = Command::new(redis_bin());
    c.arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Proc(c.spawn().expect("spawn redis-server"))
}

fn wait_listening(proc: &mut Proc, port: u16) -> bool {
    for _ in 0..200 {
        if matches!(proc.0.try_wait(), Ok(Some(_))) {
            return false;
        }
        if StdTcp::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

struct Redis {
    proc: Option<Proc>,
    port: u16,
    conf: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a Redis with `persistence` lines (e.g. `save ""`), retrying on port collision.
    fn start(persistence: &str) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("opsdeck-redis-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let conf = dir.path().join("redis.conf");
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir {}\n{persistence}\n",
                    data.display()
                ),
            )
            .expect("write redis.conf");
            let mut proc = spawn(&conf);
            if wait_listening(&mut proc, port) {
                return Redis {
                    proc: Some(proc),
                    port,
                    conf,
                    data,
                    _dir: dir,
                };
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn stop(&mut self) {
        self.proc = None;
    }

    fn restart(&mut self) {
        for _ in 0..50 {
            let mut proc = spawn(&self.conf);
            if wait_listening(&mut proc, self.port) {
                self.proc = Some(proc);
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    fn cluster(&self) -> ClusterConfig {
        cluster_at(&format!("127.0.0.1:{}", self.port))
    }

    async fn conn(&self) -> RedisConn {
        let c = self.cluster();
        let config = RedisConfig::from_table(c.redis.as_ref().expect("table")).expect("config");
        RedisConn::connect(&config, None).await.expect("connect")
    }
}

fn cluster_at(addr: &str) -> ClusterConfig {
    let table: toml::Table =
        toml::from_str(&format!("address = \"{addr}\"\npoll = \"200ms\"\n")).expect("toml");
    ClusterConfig {
        name: "test".into(),
        redis: Some(table),
        ..ClusterConfig::default()
    }
}

fn spawn_source(c: ClusterConfig) -> (mpsc::UnboundedReceiver<SourceEvent>, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    tokio::spawn(opsdeck::sources::redis::run(0, c, tx, cancel.clone()));
    (rx, cancel)
}

enum Seen {
    Snap(Arc<RedisSnapshot>),
    Failing(String),
}

async fn next_until(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    cluster: usize,
    what: &str,
    pred: impl Fn(&Seen) -> bool,
) -> Seen {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("source channel open");
        if ev.cluster != cluster {
            continue;
        }
        let seen = match ev.update {
            SourceUpdate::Feature(FeatureData::Redis(s)) => Seen::Snap(s),
            SourceUpdate::FeatureFailing {
                feature: Feature::Redis,
                reason,
            } => Seen::Failing(reason),
            _ => continue,
        };
        if pred(&seen) {
            return seen;
        }
    }
}

async fn snapshot_where(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    what: &str,
    pred: impl Fn(&RedisSnapshot) -> bool,
) -> Arc<RedisSnapshot> {
    match next_until(rx, 0, what, |s| matches!(s, Seen::Snap(s) if pred(s))).await {
        Seen::Snap(s) => s,
        Seen::Failing(_) => unreachable!(),
    }
}

fn keys(s: &RedisSnapshot) -> Vec<String> {
    model::findings(s, s.taken_at)
        .into_iter()
        .map(|f| f.key)
        .collect()
}

#[tokio::test]
async fn no_persistence_is_critical() {
    let r = Redis::start("save \"\"\nappendonly no");
    let (mut rx, cancel) = spawn_source(r.cluster());
    let s = snapshot_where(&mut rx, "a snapshot", |_| true).await;
    assert_eq!(s.save, ConfigValue::Known(String::new()));
    assert!(!s.aof_enabled);
    assert_eq!(s.rdb_last_save_age_s(), None, "start time is not a save");
    let f = model::findings(&s, s.taken_at);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Crit);
    assert!(f[0].message.contains("data is lost on restart"));
    assert!(
        s.version.starts_with(|c: char| c.is_ascii_digit()),
        "{}",
        s.version
    );
    cancel.cancel();
}

#[tokio::test]
async fn rdb_counts_a_save_only_after_one_happened() {
    let r = Redis::start("save 3600 1\nappendonly no");
    let (mut rx, cancel) = spawn_source(r.cluster());
    let s = snapshot_where(&mut rx, "a snapshot", |_| true).await;
    assert_eq!(s.rdb_enabled(), Some(true));
    assert_eq!(s.rdb_last_save_age_s(), None, "nothing saved yet: {s:?}");
    assert!(keys(&s).is_empty(), "{:?}", keys(&s));
    let mut c = r.conn().await;
    assert_eq!(
        c.command(&[b"SET", b"k", b"v"]).await.expect("set"),
        Reply::Simple("OK".into())
    );
    c.command(&[b"SAVE"]).await.expect("save");
    let s = snapshot_where(&mut rx, "a snapshot after SAVE", |s| s.has_saved()).await;
    assert!(s.rdb_last_save_age_s().is_some_and(|a| a < 60));
    assert_eq!(model::to_json(&s)["rdb_enabled"], true);
    cancel.cancel();
}

#[tokio::test]
async fn aof_is_persistence() {
    let r = Redis::start("save \"\"\nappendonly yes");
    let (mut rx, cancel) = spawn_source(r.cluster());
    let s = snapshot_where(&mut rx, "a snapshot", |_| true).await;
    assert!(s.aof_enabled && s.aof_last_write_ok);
    assert_eq!(s.appendonly, ConfigValue::Known("yes".into()));
    assert!(
        !keys(&s).contains(&"no-persistence".to_string()),
        "{:?}",
        keys(&s)
    );
    assert!(keys(&s).is_empty(), "{:?}", keys(&s));
    cancel.cancel();
}

#[tokio::test]
async fn failing_bgsave_is_critical() {
    let r = Redis::start("save 3600 1\nappendonly no");
    // Root ignores permissions, so take the dir away instead: the save cannot create its file.
    std::fs::remove_dir_all(&r.data).expect("remove data dir");
    let mut c = r.conn().await;
    c.command(&[b"SET", b"k", b"v"]).await.expect("set");
    c.command(&[b"BGSAVE"]).await.expect("bgsave");
    let (mut rx, cancel) = spawn_source(r.cluster());
    let s = snapshot_where(&mut rx, "a failed bgsave", |s| !s.rdb_last_bgsave_ok).await;
    let f = model::findings(&s, s.taken_at);
    let failed = f
        .iter()
        .find(|f| f.key == "bgsave-failed")
        .expect("finding");
    assert_eq!(failed.severity, Severity::Crit);
    assert!(failed.message.contains("refuse writes"));
    assert_eq!(model::to_json(&s)["rdb_last_bgsave_ok"], false);
    cancel.cancel();
}

#[tokio::test]
async fn stopped_server_fails_and_recovers_after_restart() {
    let mut r = Redis::start("save \"\"\nappendonly no");
    let (mut rx, cancel) = spawn_source(r.cluster());
    snapshot_where(&mut rx, "a first snapshot", |_| true).await;
    r.stop();
    let Seen::Failing(reason) =
        next_until(&mut rx, 0, "the failure", |s| matches!(s, Seen::Failing(_))).await
    else {
        unreachable!()
    };
    assert!(
        reason.contains(&format!("127.0.0.1:{}", r.port)),
        "{reason}"
    );
    r.restart();
    snapshot_where(&mut rx, "a snapshot after the restart", |_| true).await;
    cancel.cancel();
}

#[tokio::test]
async fn denied_config_degrades_politely() {
    let r = Redis::start("save \"\"\nappendonly no\nrename-command CONFIG \"\"");
    let (mut rx, cancel) = spawn_source(r.cluster());
    let s = snapshot_where(&mut rx, "a snapshot", |_| true).await;
    assert!(
        matches!(&s.save, ConfigValue::Unknown(r) if r.contains("renamed")),
        "{:?}",
        s.save
    );
    assert_eq!(keys(&s), ["persistence-unknown"]);
    cancel.cancel();
}

#[tokio::test]
async fn simulated_redis_agrees_with_the_real_one_and_the_fleet_shows_the_empty_dir() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Redis 7 without a config file, as the fleet runs it: the default RDB schedule.
    let r = Redis::start("save 3600 1 300 100 60 10000\nappendonly no");
    let fleet = opsdeck::sim::Fleet::start(opsdeck::sim::SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    let config = Config::load(fleet.config_path())
        .map_err(|e| e[0].to_string())
        .expect("fleet config")
        .config;
    // The same client code reads the same fields from both.
    let mut real = r.conn().await;
    let sim_addr = fleet.data_servers("production").expect("sim").1.addr();
    let sim_cfg =
        RedisConfig::from_table(cluster_at(&sim_addr.to_string()).redis.as_ref().expect("t"))
            .expect("cfg");
    let mut sim = RedisConn::connect(&sim_cfg, None)
        .await
        .expect("sim connects");
    for section in ["server", "persistence"] {
        let real_info = real.info(section).await.expect("real info");
        let sim_info = sim.info(section).await.expect("sim info");
        for key in [
            "redis_version",
            "uptime_in_seconds",
            "loading",
            "rdb_changes_since_last_save",
            "rdb_bgsave_in_progress",
            "rdb_last_save_time",
            "rdb_last_bgsave_status",
            "rdb_saves",
            "aof_enabled",
            "aof_rewrite_in_progress",
            "aof_last_bgrewrite_status",
            "aof_last_write_status",
        ] {
            assert_eq!(
                real_info.contains_key(key),
                sim_info.contains_key(key),
                "INFO {section}: {key}"
            );
        }
    }
    let (rs, ss) = (
        real.poll().await.expect("real"),
        sim.poll().await.expect("sim"),
    );
    assert_eq!(rs.save, ss.save);
    assert_eq!(rs.appendonly, ss.appendonly);
    assert_eq!(keys(&rs), keys(&ss));

    // The fleet config points both clusters at the sim, with the workload cross-check
    // (polled every 200 ms here, so several polls happen).
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    for (i, c) in config.clusters.iter().enumerate() {
        assert!(opsdeck::sources::redis::configured(c));
        let mut c = c.clone();
        if let Some(t) = c.redis.as_mut() {
            t.insert("poll".into(), "200ms".into());
        }
        tokio::spawn(opsdeck::sources::redis::run(
            i,
            c,
            tx.clone(),
            cancel.clone(),
        ));
    }
    for _ in 0..5 {
        for i in 0..2 {
            let Seen::Snap(s) = next_until(&mut rx, i, "a fleet snapshot", |s| {
                matches!(s, Seen::Snap(_))
            })
            .await
            else {
                unreachable!()
            };
            let v = s.volume.as_ref().expect("volume checked");
            assert_eq!(v.kind.as_deref(), Some("emptyDir"), "{v:?}");
            assert_eq!(v.name.as_deref(), Some("redis-data"));
            // RDB on (Redis's default schedule), into an emptyDir: only the warn that the
            // data is lost when the pod is replaced.
            assert_eq!(s.rdb_enabled(), Some(true));
            assert_eq!(keys(&s), ["emptydir"]);
            assert_eq!(model::to_json(&s)["volume"], "emptyDir");
        }
    }
    // The volume check reads watches: one list of the Deployment and one of its pods in all
    // those polls, then only watches.
    let log = fleet.cluster("production").expect("prod").requests();
    let lists = |what: &str| {
        log.iter()
            .filter(|r| r.starts_with("GET ") && r.contains(what) && !r.contains("watch=true"))
            .count()
    };
    assert_eq!(
        lists("/apis/apps/v1/namespaces/database/deployments"),
        1,
        "{log:?}"
    );
    assert_eq!(lists("/api/v1/namespaces/database/pods"), 1, "{log:?}");
    cancel.cancel();
    fleet.shutdown().await;
}

/// The fleet's Redis as it is: `redis:7-alpine` with no config file, so Redis's built-in save
/// schedule (`save 3600 1 300 100 60 10000`) and no AOF, writing into an emptyDir. A real
/// redis-server with no `save` line, and the volume read from the simulated cluster's
/// `database/deployment/redis` (an emptyDir): persistence is on, the RDB lives on the emptyDir,
/// and the finding is the warn "RDB on emptyDir: lost when the pod is replaced", not
/// "no persistence"; the last save time and the changes since are read.
#[tokio::test]
async fn default_save_schedule_on_an_empty_dir_warns_lost_when_the_pod_is_replaced() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = Redis::start("appendonly no");
    let fleet = opsdeck::sim::Fleet::start(opsdeck::sim::SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    let config = Config::load(fleet.config_path())
        .map_err(|e| e[0].to_string())
        .expect("fleet config")
        .config;
    let mut c = config.cluster("production").expect("production").clone();
    let table = c.redis.as_mut().expect("fleet redis table");
    for k in ["address", "service"] {
        table.remove(k);
    }
    table.insert("address".into(), format!("127.0.0.1:{}", r.port).into());
    table.insert(
        "workload".into(),
        "database/deployment/redis".to_string().into(),
    );
    table.insert("poll".into(), "200ms".into());
    let mut conn = r.conn().await;
    conn.command(&[b"SET", b"k", b"v"]).await.expect("set");
    conn.command(&[b"SAVE"]).await.expect("save");
    conn.command(&[b"SET", b"k2", b"v"]).await.expect("set");
    let (mut rx, cancel) = spawn_source(c);
    let s = snapshot_where(&mut rx, "a saved snapshot with the volume", |s| {
        s.has_saved() && s.volume.as_ref().is_some_and(|v| v.kind.is_some())
    })
    .await;
    assert_eq!(s.save, ConfigValue::Known("3600 1 300 100 60 10000".into()));
    assert_eq!(s.rdb_enabled(), Some(true));
    assert!(s.rdb_changes_since_last_save >= 1, "{s:?}");
    let f = model::findings(&s, s.taken_at);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].key.as_str(), f[0].severity),
        ("emptydir", Severity::Warn)
    );
    assert!(
        f[0].message
            .starts_with("RDB on emptyDir: lost when the pod is replaced"),
        "{}",
        f[0].message
    );
    let j = model::to_json(&s);
    assert_eq!(j["volume"], "emptyDir");
    assert_eq!(j["rdb_enabled"], true);
    assert!(j["rdb_last_save_age_s"].as_i64().is_some_and(|a| a < 60));
    let theme = opsdeck::ui::Theme { color: false };
    let tile = opsdeck::ui::tiles::redis::tile(Some(&s), None, 60, 8, s.taken_at, theme);
    let text: Vec<String> = tile
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect();
    assert!(
        text.iter()
            .any(|l| l.starts_with("RDB on emptyDir redis-data: lost when the pod")),
        "{text:?}"
    );
    assert!(text.iter().any(|l| l.contains("saved")), "{text:?}");
    assert!(
        text.iter().any(|l| l.starts_with("changes since save")),
        "{text:?}"
    );
    cancel.cancel();
    fleet.shutdown().await;
}
