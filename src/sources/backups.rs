//! The Backups source: polls every `[[cluster.backups.source]]` of one cluster (CronJob and
//! Job status through kube-rs, S3-compatible buckets through ListObjectsV2, a local directory
//! through `std::fs`) and publishes one [`BackupsSnapshot`] holding each source with its own
//! staleness, so one failing source never hides the others.

pub mod s3;
pub mod sigv4;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Api;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::watched::Watched;
use super::{Feature, FeatureData, SourceEvent};
use crate::config::{ClusterConfig, Endpoint, SecretRef, parse_duration};
use crate::model::backups::{
    BackupObject, BackupsSnapshot, CronJobStatus, JobRun, JobState, SourceKind, SourceStatus,
};

/// Default poll interval (`poll` key).
pub const POLL: Duration = Duration::from_secs(60);
/// Defaults from issue 5.
pub const MAX_AGE: Duration = Duration::from_secs(8 * 3600 + 30 * 60);
pub const RETENTION: Duration = Duration::from_secs(7 * 86_400);
pub const MISSING_AFTER: Duration = Duration::from_secs(2 * 3600);
/// The backup CronJobs' name prefix on the goapps fleet (`postgres-backup-morning`,
/// `-afternoon`, `-night`). Not the label `app.kubernetes.io/part-of=goapps-backup`: the
/// `minio-backup-to-disk` mirror carries it too, and its daily runs would hide missing dumps.
pub const CRONJOB_PREFIX: &str = "postgres-backup-";
/// One source's poll is abandoned after this.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Backups kept per source for the detail view and the size rule.
pub const KEEP_RECENT: usize = 30;

/// Where one source looks.
// Read once per config load and never moved around in bulk: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Cronjob {
        namespace: String,
        /// CronJob name prefix; [`CRONJOB_PREFIX`] unless given (`prefix = ""` takes every name).
        prefix: Option<String>,
        selector: Option<String>,
    },
    S3 {
        endpoint: Endpoint,
        bucket: String,
        prefix: String,
        /// Glob over the object name after the prefix (`*` unless given).
        pattern: String,
        region: String,
        access_key: Option<SecretRef>,
        secret_key: Option<SecretRef>,
    },
    Dir {
        path: PathBuf,
        pattern: String,
        host: Option<String>,
    },
}

/// One `[[cluster.backups.source]]`, read.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub spec: SourceSpec,
    /// This source's own RPO (`max_age`), e.g. a daily mirror's; the table's otherwise.
    pub max_age: Option<Duration>,
    /// `mirror = true`: a copy of other backups (the `minio-backup-to-disk` CronJob): aged on
    /// its own, never "the newest backup", never checked for missing dumps.
    pub mirror: bool,
}

impl SourceConfig {
    pub fn kind(&self) -> SourceKind {
        match self.spec {
            SourceSpec::Cronjob { .. } => SourceKind::Cronjob,
            SourceSpec::S3 { .. } => SourceKind::S3,
            SourceSpec::Dir { .. } => SourceKind::Dir,
        }
    }

    /// Where it looks, for people.
    pub fn location(&self) -> String {
        match &self.spec {
            SourceSpec::Cronjob {
                namespace,
                prefix,
                selector,
            } => match (prefix.as_deref(), selector) {
                (Some(""), Some(s)) => format!("CronJobs in {namespace} with {s}"),
                (Some(""), None) => format!("CronJobs in {namespace}"),
                (p, Some(s)) => {
                    format!(
                        "CronJobs {namespace}/{}* with {s}",
                        p.unwrap_or(CRONJOB_PREFIX)
                    )
                }
                (p, None) => format!("CronJobs {namespace}/{}*", p.unwrap_or(CRONJOB_PREFIX)),
            },
            SourceSpec::S3 {
                endpoint,
                bucket,
                prefix,
                pattern,
                ..
            } => {
                let pattern = if pattern == "*" { "" } else { pattern };
                format!("s3 {bucket}/{prefix}{pattern} at {endpoint}")
            }
            SourceSpec::Dir { path, pattern, .. } => format!("{}/{pattern}", path.display()),
        }
    }
}

/// The `[cluster.backups]` table, read.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupsConfig {
    pub max_age: Duration,
    pub retention: Duration,
    pub missing_after: Duration,
    pub poll: Duration,
    pub sources: Vec<SourceConfig>,
}

fn duration_key(t: &toml::Table, key: &str, default: Duration) -> Result<Duration, String> {
    match t.get(key).and_then(toml::Value::as_str) {
        Some(s) => parse_duration(s).map_err(|e| format!("{key}: {e}")),
        None => Ok(default),
    }
}

impl BackupsConfig {
    pub fn from_table(t: &toml::Table) -> Result<BackupsConfig, String> {
        let sources = t
            .get("source")
            .and_then(toml::Value::as_array)
            .ok_or("add at least one [[cluster.backups.source]]")?;
        let mut out = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let s = s
                .as_table()
                .ok_or_else(|| format!("source[{i}]: expected a table"))?;
            let get = |k: &str| s.get(k).and_then(toml::Value::as_str).map(str::to_string);
            let name = get("name").ok_or_else(|| format!("source[{i}]: name is missing"))?;
            let at = |e: String| format!("source {name:?}: {e}");
            let spec = match get("kind").as_deref() {
                Some("cronjob") => SourceSpec::Cronjob {
                    namespace: get("namespace").ok_or_else(|| at("namespace is missing".into()))?,
                    prefix: get("prefix"),
                    selector: get("selector"),
                },
                Some("s3") => SourceSpec::S3 {
                    endpoint: Endpoint::from_table(s).map_err(at)?.ok_or_else(|| {
                        at("needs url = \"http://...\" or service = \"ns/name:port\"".into())
                    })?,
                    bucket: get("bucket").ok_or_else(|| at("bucket is missing".into()))?,
                    prefix: get("prefix").unwrap_or_default(),
                    pattern: get("pattern").unwrap_or_else(|| "*".into()),
                    region: get("region").unwrap_or_else(|| "us-east-1".into()),
                    access_key: SecretRef::from_table(s, "access_key").map_err(at)?,
                    secret_key: SecretRef::from_table(s, "secret_key").map_err(at)?,
                },
                Some("dir") => SourceSpec::Dir {
                    path: get("path")
                        .map(PathBuf::from)
                        .ok_or_else(|| at("path is missing".into()))?,
                    pattern: get("pattern").unwrap_or_else(|| "*".into()),
                    host: get("host"),
                },
                other => {
                    return Err(at(format!(
                        "kind must be \"cronjob\", \"s3\" or \"dir\", found {other:?}"
                    )));
                }
            };
            let max_age = match s.get("max_age").and_then(toml::Value::as_str) {
                Some(d) => Some(parse_duration(d).map_err(|e| at(format!("max_age: {e}")))?),
                None => None,
            };
            let mirror = s
                .get("mirror")
                .and_then(toml::Value::as_bool)
                .unwrap_or(false);
            out.push(SourceConfig {
                name,
                spec,
                max_age,
                mirror,
            });
        }
        Ok(BackupsConfig {
            max_age: duration_key(t, "max_age", MAX_AGE)?,
            retention: duration_key(t, "retention", RETENTION)?,
            missing_after: duration_key(t, "missing_after", MISSING_AFTER)?,
            poll: duration_key(t, "poll", POLL)?.max(Duration::from_millis(100)),
            sources: out,
        })
    }
}

/// Whether the cluster has a `[cluster.backups]` table.
pub fn configured(cluster: &ClusterConfig) -> bool {
    cluster.backups.is_some()
}

/// `*` and `?` glob over a file name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Reads a directory's matching files (following symlinks): name, mtime and size.
pub fn read_dir(path: &Path, pattern: &str) -> Result<Vec<BackupObject>, String> {
    let entries = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read directory {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read directory {}: {e}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !glob_match(pattern, &name) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue; // a dangling link or a file removed meanwhile: not a backup
        };
        if !meta.is_file() {
            continue;
        }
        let Some(at) = meta
            .modified()
            .ok()
            .and_then(|m| Timestamp::try_from(m).ok())
        else {
            continue;
        };
        out.push(BackupObject {
            name,
            at,
            size: Some(meta.len()),
        });
    }
    Ok(out)
}

fn ts(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Timestamp {
    t.0
}

/// The outcome of a Job from its conditions.
pub fn job_run(job: &Job) -> JobRun {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let state = if let Some(c) = is("Failed").or_else(|| is("FailureTarget")) {
        let reason = match (&c.reason, &c.message) {
            (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
            (Some(r), _) => r.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "failed".into(),
        };
        JobState::Failed { reason }
    } else if is("Complete").is_some() || is("SuccessCriteriaMet").is_some() {
        JobState::Succeeded
    } else {
        JobState::Running
    };
    let finished = status.completion_time.as_ref().map(ts).or_else(|| {
        conditions
            .iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref().map(ts))
    });
    JobRun {
        name: job.metadata.name.clone().unwrap_or_default(),
        started: status.start_time.as_ref().map(ts),
        finished,
        state,
    }
}

fn owner_cronjob(job: &Job) -> Option<&str> {
    job.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "CronJob")
        .map(|o| o.name.as_str())
}

/// Turns listed CronJobs and Jobs into statuses and "backups" (successful runs).
pub fn summarize_cronjobs(
    cronjobs: &[CronJob],
    jobs: &[Job],
    prefix: Option<&str>,
) -> (Vec<CronJobStatus>, Vec<BackupObject>) {
    let mut statuses = Vec::new();
    let mut runs = Vec::new();
    for cj in cronjobs {
        let name = cj.metadata.name.clone().unwrap_or_default();
        if prefix.is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        let spec = &cj.spec;
        let status = cj.status.clone().unwrap_or_default();
        let mut own: Vec<&Job> = jobs
            .iter()
            .filter(|j| owner_cronjob(j) == Some(name.as_str()))
            .collect();
        own.sort_by_key(|j| {
            let at = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref().map(ts))
                .or(j.metadata.creation_timestamp.as_ref().map(ts));
            (at, j.metadata.name.clone())
        });
        let mut newest_success: Option<Timestamp> = None;
        for j in &own {
            let r = job_run(j);
            if r.state == JobState::Succeeded
                && let Some(at) = r.finished.or(r.started)
            {
                newest_success = newest_success.max(Some(at));
                runs.push(BackupObject {
                    name: r.name.clone(),
                    at,
                    size: None,
                });
            }
        }
        let last_successful = status.last_successful_time.as_ref().map(ts);
        if let Some(at) = last_successful
            && newest_success.is_none_or(|n| at > n + jiff::SignedDuration::from_secs(60))
        {
            runs.push(BackupObject {
                name: name.clone(),
                at,
                size: None,
            });
        }
        statuses.push(CronJobStatus {
            name: name.clone(),
            schedule: spec.schedule.clone(),
            suspended: spec.suspend.unwrap_or(false),
            last_schedule: status.last_schedule_time.as_ref().map(ts),
            last_successful,
            active: status
                .active
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.name)
                .collect(),
            last_job: own.last().map(|j| job_run(j)),
        });
    }
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    (statuses, runs)
}

/// The CronJob and Job watches of one namespace and selector.
struct CronJobWatch {
    cronjobs: Watched<CronJob>,
    jobs: Watched<Job>,
}

/// A CronJob source's namespace and label selector.
type Scope = (String, Option<String>);

/// The watches behind the CronJob sources of one cluster, started at a source's first poll
/// and kept while the source runs: later polls read them and send nothing to the API server.
#[derive(Default)]
pub struct CronJobWatches {
    by_scope: Mutex<HashMap<Scope, Arc<CronJobWatch>>>,
}

impl CronJobWatches {
    async fn get(
        &self,
        cluster: &ClusterConfig,
        namespace: &str,
        selector: Option<&str>,
    ) -> Result<Arc<CronJobWatch>, String> {
        let key = (namespace.to_string(), selector.map(str::to_string));
        let lock = || self.by_scope.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = lock().get(&key) {
            return Ok(w.clone());
        }
        let client = super::kube::client_for(cluster).await?;
        let started = Arc::new(CronJobWatch {
            cronjobs: Watched::start(Api::namespaced(client.clone(), namespace), selector, None),
            jobs: Watched::start(Api::namespaced(client, namespace), None, None),
        });
        Ok(lock().entry(key).or_insert(started).clone())
    }
}

async fn poll_cronjobs(
    cluster: &ClusterConfig,
    watches: &CronJobWatches,
    namespace: &str,
    prefix: Option<&str>,
    selector: Option<&str>,
) -> Result<(Vec<CronJobStatus>, Vec<BackupObject>), String> {
    let watch = watches.get(cluster, namespace, selector).await?;

    let cronjobs = watch
        .cronjobs
        .items(SOURCE_TIMEOUT)
        .await
        .map_err(|e| format!("listing CronJobs in {namespace}: {e}"))?;
    let jobs = watch
        .jobs
        .items(SOURCE_TIMEOUT)
        .await
        .map_err(|e| format!("listing Jobs in {namespace}: {e}"))?;
    let cronjobs: Vec<CronJob> = cronjobs.iter().map(|c| (**c).clone()).collect();
    let jobs: Vec<Job> = jobs.iter().map(|j| (**j).clone()).collect();
    Ok(summarize_cronjobs(&cronjobs, &jobs, prefix))
}

async fn s3_lister(cluster: &ClusterConfig, spec: &SourceSpec) -> Result<s3::S3Lister, String> {
    let SourceSpec::S3 {
        endpoint,
        bucket,
        prefix,
        region,
        access_key,
        secret_key,
        ..
    } = spec
    else {
        return Err("not an s3 source".into());
    };
    let (Some(ak), Some(sk)) = (access_key, secret_key) else {
        return Err(
            "an s3 source needs access_key_env|_file|_secret and secret_key_env|_file|_secret"
                .into(),
        );
    };
    let access = super::pgbouncer::resolve_secret(cluster, ak)
        .await
        .map_err(|e| format!("access_key: {e}"))?;
    let secret = super::pgbouncer::resolve_secret(cluster, sk)
        .await
        .map_err(|e| format!("secret_key: {e}"))?;
    let base = match super::reachable_endpoint(cluster, endpoint).await {
        Ok(Endpoint::Url(u)) => u,
        Ok(Endpoint::Address { host, port }) if host.contains(':') => {
            format!("http://[{host}]:{port}")
        }
        Ok(Endpoint::Address { host, port }) => format!("http://{host}:{port}"),
        Ok(other) => return Err(format!("S3 at {other}: cannot be dialled")),
        Err(e) => return Err(format!("S3 at {endpoint} is unreachable: {e}")),
    };
    s3::S3Lister::new(&base, bucket, prefix, region, access, secret)
}

/// Polls one source once, updating its status in place (errors mark it stale).
pub async fn poll_source(
    cluster: &ClusterConfig,
    config: &BackupsConfig,
    source: &SourceConfig,
    status: &mut SourceStatus,
    watches: &CronJobWatches,
) {
    let now = Timestamp::now();
    let result: Result<(), String> = async {
        match &source.spec {
            SourceSpec::Dir {
                path,
                pattern,
                host,
            } => {
                if let Some(h) = host
                    && *h != crate::runbook::audit::hostname()
                {
                    *status = SourceStatus::new(&source.name, SourceKind::Dir, source.location());
                    status.not_local = true;
                    status.polled = true;
                    return Ok(());
                }
                let path = path.clone();
                let pattern = pattern.clone();
                let all = tokio::task::spawn_blocking(move || read_dir(&path, &pattern))
                    .await
                    .map_err(|e| format!("reading the directory: {e}"))??;
                status.not_local = false;
                status.set_listing(all, now, config.retention, KEEP_RECENT);
            }
            SourceSpec::S3 { .. } => {
                let lister = s3_lister(cluster, &source.spec).await?;
                let SourceSpec::S3 { pattern, .. } = &source.spec else {
                    unreachable!("matched above")
                };
                let mut all = lister.list_all().await.map_err(|e| e.to_string())?;
                all.retain(|o| glob_match(pattern, &o.name));
                status.set_listing(all, now, config.retention, KEEP_RECENT);
            }
            SourceSpec::Cronjob {
                namespace,
                prefix,
                selector,
            } => {
                let prefix = prefix.as_deref().unwrap_or(CRONJOB_PREFIX);
                let (cronjobs, runs) = poll_cronjobs(
                    cluster,
                    watches,
                    namespace,
                    Some(prefix).filter(|p| !p.is_empty()),
                    selector.as_deref(),
                )
                .await?;
                status.set_listing(runs, now, config.retention, KEEP_RECENT);
                status.cronjobs = cronjobs;
            }
        }
        Ok(())
    }
    .await;
    if let Err(reason) = result {
        status.fail(reason, now);
    }
}

/// Polls every source once (concurrently, each within its timeout) into a snapshot.
pub async fn poll_all(
    cluster: &ClusterConfig,
    config: &BackupsConfig,
    statuses: &mut [SourceStatus],
    watches: &CronJobWatches,
) -> BackupsSnapshot {
    let polls = config
        .sources
        .iter()
        .zip(statuses.iter_mut())
        .map(|(source, status)| async move {
            let name = source.name.clone();
            let poll = poll_source(cluster, config, source, status, watches);
            if tokio::time::timeout(SOURCE_TIMEOUT, poll).await.is_err() {
                status.fail(
                    format!("{name}: no answer within {}s", SOURCE_TIMEOUT.as_secs()),
                    Timestamp::now(),
                );
            }
        });
    futures::future::join_all(polls).await;
    BackupsSnapshot {
        max_age: config.max_age,
        retention: config.retention,
        missing_after: config.missing_after,
        sources: statuses.to_vec(),
        taken_at: Timestamp::now(),
    }
}

/// The statuses of the configured sources before their first answer.
pub fn initial_statuses(config: &BackupsConfig) -> Vec<SourceStatus> {
    config
        .sources
        .iter()
        .map(|s| {
            let mut st = SourceStatus::new(&s.name, s.kind(), s.location());
            st.max_age = s.max_age;
            st.mirror = s.mirror;
            st
        })
        .collect()
}

/// The Backups source between polls: each source's status and the CronJob watches.
struct BackupsPoller {
    cluster: ClusterConfig,
    config: BackupsConfig,
    statuses: Vec<SourceStatus>,
    watches: CronJobWatches,
}

impl super::Poller for BackupsPoller {
    /// Each source is bounded by its own timeout inside the poll (and fails in the snapshot);
    /// the whole poll is bounded a little above that.
    fn timeout(&self) -> Duration {
        SOURCE_TIMEOUT + Duration::from_secs(5)
    }

    /// Sources fail one by one inside the snapshot; a poll as a whole never fails.
    async fn poll(&mut self) -> Result<FeatureData, String> {
        let snap = poll_all(
            &self.cluster,
            &self.config,
            &mut self.statuses,
            &self.watches,
        )
        .await;
        Ok(FeatureData::Backups(Arc::new(snap)))
    }
}

/// Runs the Backups source of cluster `index` until `cancel` fires.
pub async fn run(
    index: usize,
    cluster: ClusterConfig,
    tx: UnboundedSender<SourceEvent>,
    cancel: CancellationToken,
) {
    let Some(table) = cluster.backups.as_ref() else {
        return;
    };
    let config = match BackupsConfig::from_table(table) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("backups config: {e}");
            super::report_failure(&tx, index, Feature::Backups, reason);
            return;
        }
    };
    let every = config.poll;
    let poller = BackupsPoller {
        statuses: initial_statuses(&config),
        cluster,
        config,
        watches: CronJobWatches::default(),
    };
    super::poll_loop(index, Feature::Backups, every, &tx, &cancel, poller).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_file_names() {
        assert!(glob_match("*.sql.gz", "backup_20261124_220000.sql.gz"));
        assert!(!glob_match("*.sql.gz", "backup.sql"));
        assert!(glob_match("backup_????????_*", "backup_20261124_x"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn config_defaults_and_sources() {
        let t: toml::Table = toml::from_str(
            r#"
            max_age = "1h"
            [[source]]
            kind = "s3"
            name = "minio"
            url = "http://127.0.0.1:9000"
            bucket = "b"
            access_key_env = "A"
            secret_key_env = "S"
            [[source]]
            kind = "dir"
            name = "disk"
            path = "/tmp"
            "#,
        )
        .unwrap();
        let c = BackupsConfig::from_table(&t).unwrap();
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert_eq!(c.retention, RETENTION);
        assert_eq!(c.poll, POLL);
        assert_eq!(c.sources.len(), 2);
        assert!(matches!(&c.sources[1].spec, SourceSpec::Dir { pattern, .. } if pattern == "*"));
    }
}
