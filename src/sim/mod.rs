//! The simulated fleet: two fake K3s clusters (`staging`, `production`) served over
//! loopback HTTP as a subset of the Kubernetes API, with the workloads of
//! `target-environment.md`, gentle churn and fault injection. Used by `opsdeck sim`,
//! `opsdeck demo` and the tests.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the public API: [`Fleet`], [`SimOptions`], [`Fault`], [`run_cli`], the kubeconfig and config files |
//! | `cluster.rs` | [`SimCluster`]: server lifecycle (kill/restart/faults) and the typed pod API |
//! | `server.rs` | the HTTP API: discovery, list/watch/get, logs, Tables, Status errors |
//! | `store.rs` | objects of every kind, resourceVersion counter, watch history, selectors |
//! | `seed.rs` | the fleet's contents and the pod builders |
//! | `churn.rs` | background changes: crash-loop restarts, pod replacements, Pending pods |
//! | `table.rs` | server-side printing (`meta.k8s.io/v1` Table) |
//! | `logs.rs` | plausible container logs |
//! | `portforward.rs` | `pods/portforward` over WebSocket and the loopback servers behind pod ports |
//! | `argocd.rs` | the simulated ArgoCD API of each cluster |
//! | `write.rs` | PATCH/PUT/POST/DELETE, the scale subresource, and the controllers reacting to them |
//! | `exec.rs` | `pods/exec` over WebSocket into a tiny simulated shell |

pub mod argocd;
pub mod churn;
pub mod cluster;
pub mod exec;
pub mod logs;
pub mod networking;
pub mod pgbouncer;
pub mod portforward;
pub mod redis;
pub mod s3;
pub mod seed;
pub mod server;
pub mod store;
pub mod table;
pub mod write;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

pub use cluster::SimCluster;
use seed::Env;

/// How to build the fleet.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Minimum pods per cluster; filler `load-generator` pods make up the difference.
    pub pods: usize,
    /// Run the background churn.
    pub churn: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            pods: 0,
            churn: true,
        }
    }
}

/// The clock the simulated PgBouncer and Redis read their moving figures from (uptime,
/// changes since the last save, the queue that breathes): real time while the cluster's churn
/// runs, stopped while it is paused, so a paused fleet answers every poll the same.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Unix seconds at which it stopped; `i64::MIN` while it runs.
    stopped_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    /// A clock that runs (or is stopped now when `running` is false).
    pub fn new(running: bool) -> Clock {
        let c = Clock {
            stopped_at: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        };
        c.set_running(running);
        c
    }

    /// Starts or stops the clock (stopping keeps the current second).
    pub fn set_running(&self, running: bool) {
        use std::sync::atomic::Ordering;
        if running {
            self.stopped_at.store(i64::MIN, Ordering::SeqCst);
        } else {
            let now = jiff::Timestamp::now().as_second();
            let _ =
                self.stopped_at
                    .compare_exchange(i64::MIN, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        match self.stopped_at.load(std::sync::atomic::Ordering::SeqCst) {
            i64::MIN => jiff::Timestamp::now().as_second(),
            t => t,
        }
    }
}

/// A loopback TCP server (the simulated PgBouncer console and Redis): one task per
/// connection running `session`; stops when dropped.
pub struct LoopbackServer {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackServer {
    /// Listens on a free loopback port; `what` names the server in debug logs.
    pub async fn start<F, Fut>(what: &'static str, session: F) -> std::io::Result<LoopbackServer>
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener =
            tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let session = session(sock);
                tokio::spawn(async move {
                    if let Err(e) = session.await {
                        tracing::debug!(error = %e, "sim {what} session ended");
                    }
                });
            }
        });
        Ok(LoopbackServer { addr, task })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting and serving (connections are refused from now on).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fault a simulated API server can be switched into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Close the listener: connections are refused (the port is kept for `restart`).
    Refuse,
    /// Answer every request with 500 and a Status.
    Error500,
    /// Accept and never answer.
    Stall,
    /// End every open watch now, and new ones after a short while.
    DropWatches,
}

/// Both simulated clusters and the files describing them.
pub struct Fleet {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    config: PathBuf,
    clusters: Vec<SimCluster>,
    /// Per cluster, in `clusters` order: the PgBouncer console and Redis (issue 4).
    data: Vec<(pgbouncer::SimPgbouncer, redis::SimRedis)>,
    argocd: Vec<argocd::ArgoSim>,
    /// Backblaze B2: one bucket, `<env>/` prefixes.
    s3: s3::SimS3,
    /// Each cluster's MinIO (HTTPS), in `clusters` order.
    minio: Vec<s3::SimS3>,
}

impl Fleet {
    /// Builds and serves both clusters and writes the kubeconfig and opsdeck config.
    pub async fn start(opts: SimOptions) -> anyhow::Result<Fleet> {
        let dir = tempfile::Builder::new()
            .prefix("opsdeck-sim-")
            .tempdir()
            .context("creating the simulator's temporary directory")?;
        let mut clusters = Vec::new();
        for env in [Env::Staging, Env::Production] {
            let c = SimCluster::start(env, opts.pods, opts.churn)
                .await
                .with_context(|| format!("starting simulated cluster {}", env.name()))?;
            clusters.push(c);
        }
        let mut data = Vec::new();
        for env in [Env::Staging, Env::Production] {
            let clock = clusters
                .iter()
                .find(|c| c.name() == env.name())
                .map_or_else(|| Clock::new(opts.churn), |c| c.shared().clock.clone());
            data.push((
                pgbouncer::SimPgbouncer::start_with_clock(env, clock.clone()).await?,
                redis::SimRedis::start_with_clock(env, clock).await?,
            ));
        }
        let password_file = dir.path().join("pgbouncer-password");
        write_private(&password_file, pgbouncer::PASSWORD)?;
        let mut argocd = Vec::new();
        let mut argocd_tables = Vec::new();
        for env in [Env::Staging, Env::Production] {
            let a = argocd::ArgoSim::start(env, opts.churn)
                .await
                .with_context(|| format!("starting simulated ArgoCD of {}", env.name()))?;
            let token_file = dir.path().join(format!("argocd-{}.token", env.name()));
            write_private(&token_file, &a.token())?;
            // Plain HTTP with the API under `/argocd` (`--rootpath`), as argocd-server runs.
            argocd_tables.push(format!(
                "[cluster.argocd]\nurl = {}\ntoken_file = {}\n",
                toml_str(&a.api_url()),
                toml_str(&token_file.display().to_string())
            ));
            argocd.push(a);
        }
        // Each cluster's feature tables: PgBouncer and Redis, then ArgoCD.
        let s3 = s3::SimS3::start()
            .await
            .context("starting the simulated S3 store")?;
        let mut minio = Vec::new();
        let mut disks = Vec::new();
        for env in [Env::Staging, Env::Production] {
            minio.push(
                s3::SimS3::start_minio(env)
                    .await
                    .with_context(|| format!("starting the simulated MinIO of {}", env.name()))?,
            );
            // The VPS disk destination, kept under the fleet's directory.
            let disk = dir.path().join(s3::disk_dir(env).trim_start_matches('/'));
            s3::write_disk(env, &disk).with_context(|| format!("writing {}", disk.display()))?;
            disks.push(disk);
        }
        let ca_file = dir.path().join("minio-ca.crt");
        std::fs::write(&ca_file, s3::CA_CERT)
            .with_context(|| format!("writing {}", ca_file.display()))?;
        let (s3_access, s3_secret) = (
            dir.path().join("s3-access-key"),
            dir.path().join("s3-secret-key"),
        );
        write_private(&s3_access, s3::ACCESS_KEY)?;
        write_private(&s3_secret, s3::SECRET_KEY)?;
        let tables: Vec<String> = data_tables(&data, &password_file)
            .into_iter()
            .zip(argocd_tables)
            .zip([Env::Staging, Env::Production])
            .zip(minio.iter().zip(&disks))
            .map(|(((a, b), env), (m, disk))| {
                // MinIO serves HTTPS only (`https_url`); the backups S3 source takes no CA
                // and no skip-verify yet, so the demo reads the same store over the plain
                // listener beside it.
                a + &b
                    + &s3::config_table(
                        env,
                        &m.url(),
                        &s3.url(),
                        &s3_access.display().to_string(),
                        &s3_secret.display().to_string(),
                        &disk.display().to_string(),
                    )
            })
            .collect();
        let kubeconfig = dir.path().join("kubeconfig");
        let config = dir.path().join("config.toml");
        std::fs::write(&kubeconfig, kubeconfig_text(&clusters))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        std::fs::create_dir_all(dir.path().join("locks"))
            .with_context(|| format!("creating {}", dir.path().join("locks").display()))?;
        std::fs::write(&config, config_text(dir.path(), &kubeconfig, &tables))
            .with_context(|| format!("writing {}", config.display()))?;
        Ok(Fleet {
            dir,
            kubeconfig,
            config,
            clusters,
            data,
            argocd,
            s3,
            minio,
        })
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The directory holding the fleet's files (removed on shutdown).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn clusters(&self) -> &[SimCluster] {
        &self.clusters
    }

    pub fn cluster(&self, name: &str) -> Option<&SimCluster> {
        self.clusters.iter().find(|c| c.name() == name)
    }

    /// The simulated ArgoCD of a cluster.
    pub fn argocd(&self, cluster: &str) -> Option<&argocd::ArgoSim> {
        self.argocd.iter().find(|a| a.cluster() == cluster)
    }

    /// `(key, value)` lines `opsdeck sim` prints, in order.
    pub fn endpoints(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("kubeconfig".into(), self.kubeconfig.display().to_string()),
            ("config".into(), self.config.display().to_string()),
        ];
        for (c, (p, r)) in self.clusters.iter().zip(&self.data) {
            v.push((format!("pgbouncer-{}", c.name()), p.addr().to_string()));
            v.push((format!("redis-{}", c.name()), r.addr().to_string()));
        }
        for a in &self.argocd {
            v.push((format!("argocd-{}", a.cluster()), a.url()));
        }
        v.push(("s3".into(), self.s3.url()));
        for (c, m) in self.clusters.iter().zip(&self.minio) {
            if let Some(u) = m.https_url() {
                v.push((format!("minio-{}", c.name()), u));
            }
        }
        v.push((
            "minio-ca".into(),
            self.dir.path().join("minio-ca.crt").display().to_string(),
        ));
        v
    }

    /// The simulated MinIO of a cluster (HTTPS at `https_url`, test CA [`s3::CA_CERT`]).
    pub fn minio(&self, cluster: &str) -> Option<&s3::SimS3> {
        let i = self.clusters.iter().position(|c| c.name() == cluster)?;
        self.minio.get(i)
    }

    /// The simulated PgBouncer console and Redis of cluster `name`.
    pub fn data_servers(&self, name: &str) -> Option<(&pgbouncer::SimPgbouncer, &redis::SimRedis)> {
        let i = self.clusters.iter().position(|c| c.name() == name)?;
        self.data.get(i).map(|(p, r)| (p, r))
    }

    /// Stops both servers and removes the files.
    pub async fn shutdown(self) {
        for c in &self.clusters {
            c.shutdown().await;
        }
        for a in &self.argocd {
            a.shutdown().await;
        }
        self.s3.stop();
        for m in &self.minio {
            m.stop();
        }
        let _ = self.dir.close();
    }
}

fn kubeconfig_text(clusters: &[SimCluster]) -> String {
    let v = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": "staging",
        "clusters": clusters.iter().map(|c| json!({"name": c.name(), "cluster": {"server": c.url()}})).collect::<Vec<_>>(),
        "users": clusters.iter().map(|c| json!({"name": format!("{}-admin", c.name()), "user": {}})).collect::<Vec<_>>(),
        "contexts": clusters.iter().map(|c| json!({"name": c.name(), "context": {"cluster": c.name(), "user": format!("{}-admin", c.name())}})).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Each cluster's `[cluster.pgbouncer]` and `[cluster.redis]` tables.
fn data_tables(
    data: &[(pgbouncer::SimPgbouncer, redis::SimRedis)],
    password: &Path,
) -> Vec<String> {
    data.iter()
        .map(|(p, r)| {
            format!(
                "[cluster.pgbouncer]\naddress = \"{}\"\nuser = \"{}\"\npassword_file = {}\n\
                 [cluster.redis]\naddress = \"{}\"\nworkload = \"database/deployment/redis\"\n",
                p.addr(),
                pgbouncer::USER,
                toml_str(&password.display().to_string()),
                r.addr()
            )
        })
        .collect()
}

/// The real fleet's `[cluster.env]` names, with simulator-local paths: the backup
/// directory lives in the simulator's folder (`<dir>/<root>/postgres`, created here), named as
/// on the VPS (`/staging-goapps-backup/postgres`, `/goapps-backup/postgres`).
fn env_table(dir: &Path, env: Env) -> String {
    let root = match env {
        Env::Staging => "staging-goapps-backup",
        Env::Production => "goapps-backup",
    };
    let backup = dir.join(root).join("postgres");
    let _ = std::fs::create_dir_all(&backup);
    format!(
        "[cluster.env]\nBACKUP_DIR = {}\nBACKUP_MOUNT = {}\nBACKUP_DEVICE = \"/dev/sdb1\"\nENVIRONMENT = \"{}\"\nDOMAIN = \"{}\"\n",
        toml_str(&backup.display().to_string()),
        toml_str(&dir.join(root).display().to_string()),
        env.name(),
        networking::domain(env)
    )
}

fn config_text(dir: &Path, kubeconfig: &Path, tables: &[String]) -> String {
    let kc = toml_str(&kubeconfig.display().to_string());
    let mut out =
        String::from("# opsdeck config for the simulated fleet, written by `opsdeck sim`.\n");
    out.push_str(&format!(
        "audit_log = {}\nlock_dir = {}\n",
        toml_str(&dir.join("audit.jsonl").display().to_string()),
        toml_str(&dir.join("locks").display().to_string())
    ));
    for (i, env) in [Env::Staging, Env::Production].into_iter().enumerate() {
        out.push_str(&format!(
            "[[cluster]]\nname = \"{n}\"\nkubeconfig = {kc}\ncontext = \"{n}\"\napp_namespace = \"{ns}\"\n",
            n = env.name(),
            ns = env.app_namespace()
        ));
        if env == Env::Production {
            out.push_str("protected = true\n");
        }
        out.push_str(&format!("host = \"{}\"\n", crate::config::SIMULATED_HOST));
        out.push_str(&env_table(dir, env));
        out.push_str(tables.get(i).map_or("", String::as_str));
    }
    for env in [Env::Staging, Env::Production] {
        out.push_str(&portforward::config_shortcuts(env.name()));
    }
    out
}

/// `opsdeck sim [--pods N]`: serve the fleet until Ctrl-C or SIGTERM, printing each
/// endpoint once it serves.
pub async fn run_cli(opts: SimOptions) -> anyhow::Result<()> {
    let fleet = Fleet::start(opts).await?;
    if let Err(why) = exec::postgres_bin_dir() {
        eprintln!(
            "opsdeck sim: no real PostgreSQL ({why}): psql, pg_dump and pg_isready in postgres-0 fail, so the Postgres steps of restore-postgres, restore-test, migration-dirty, postgres-connections and database-connection-issues cannot run"
        );
    }
    // Installed before the first line is printed: a caller may send SIGTERM as soon as it has
    // read what it needs, and the default action would leave the files behind.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    {
        // Each server already serves its seeded objects once `start` returns.
        let mut out = std::io::stdout().lock();
        for (k, v) in fleet.endpoints() {
            writeln!(out, "{k}: {v}").context("writing to stdout")?;
            out.flush().context("flushing stdout")?;
        }
    }
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    fleet.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fleet_writes_config_and_kubeconfig() {
        let fleet = Fleet::start(SimOptions {
            pods: 0,
            churn: false,
        })
        .await
        .expect("fleet");
        let cfg = std::fs::read_to_string(fleet.config_path()).expect("config");
        let parsed: toml::Value = toml::from_str(&cfg).expect("valid toml");
        let clusters = parsed["cluster"].as_array().expect("clusters");
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[1]["protected"].as_bool(), Some(true));
        assert_eq!(
            clusters[0]["app_namespace"].as_str(),
            Some("goapps-staging")
        );
        let kc: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fleet.kubeconfig_path()).expect("kubeconfig"),
        )
        .expect("json");
        assert_eq!(kc["contexts"].as_array().map(Vec::len), Some(2));
        let dir = fleet.dir().to_path_buf();
        fleet.shutdown().await;
        assert!(!dir.exists());
    }
}
