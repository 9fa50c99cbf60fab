//! Backups: the newest Postgres backup in each place it should be (CronJob runs, S3-compatible
//! buckets, a directory on the VPS disk), and the health rules against the RPO (`max_age`),
//! the silent-destination rule (`missing_after`) and the too-small-dump rule.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::findings::{RawFinding, Severity};
use super::{Stale, age_secs, format_age};

const SOURCE: &str = "backups";
/// A newest backup smaller than this fraction of the recent median is treated as broken.
const SMALL_FRACTION: f64 = 0.5;
/// How many earlier backups make the median (at least 3 are needed).
const MEDIAN_OF: usize = 7;
/// A newest dump under this many bytes is empty whatever came before: `gzip` of nothing is
/// about 20 bytes, and backup.sh has no `pipefail`, so a failed `pg_dump` still "succeeds".
pub const EMPTY_BELOW: u64 = 1024;

/// What kind of place a backup source looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// CronJob and Job status in a namespace.
    Cronjob,
    /// An S3-compatible bucket (MinIO, Backblaze B2, ...).
    S3,
    /// A directory on this machine.
    Dir,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Cronjob => "cronjob",
            SourceKind::S3 => "s3",
            SourceKind::Dir => "dir",
        }
    }
}

/// One backup file or object: its time is the mtime or LastModified, never parsed from the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupObject {
    pub name: String,
    pub at: Timestamp,
    /// Bytes; `None` for a CronJob run (the Job does not say how big the dump was).
    pub size: Option<u64>,
}

/// How a Job ended, or that it is still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed { reason: String },
}

/// One Job of a backup CronJob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub name: String,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub state: JobState,
}

/// One backup CronJob's status and its newest Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJobStatus {
    pub name: String,
    pub schedule: String,
    pub suspended: bool,
    pub last_schedule: Option<Timestamp>,
    pub last_successful: Option<Timestamp>,
    /// Names of the Jobs running now (`status.active`).
    pub active: Vec<String>,
    /// The newest Job this CronJob owns, if any is still kept.
    pub last_job: Option<JobRun>,
}

/// What one configured source last showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    pub name: String,
    pub kind: SourceKind,
    /// Where it looks, for people: `s3 bucket postgres-backups at http://...`, a path, a namespace.
    pub location: String,
    /// Recent backups, newest first (bounded, for the detail view and the size rule).
    pub recent: Vec<BackupObject>,
    pub newest: Option<BackupObject>,
    /// Backups within `retention` of the snapshot time.
    pub count: usize,
    /// Backups seen in total (all pages, any age).
    pub total: usize,
    /// For `cronjob` sources.
    pub cronjobs: Vec<CronJobStatus>,
    /// A `dir` source whose `host` is not this machine: nothing read, no finding.
    pub not_local: bool,
    /// Set when the last poll of this source failed; the data above is the last good data.
    pub stale: Option<Stale>,
    /// True once the source answered at least once.
    pub polled: bool,
    /// This source's own RPO (`max_age` in its table); the cluster's `max_age` otherwise.
    pub max_age: Option<Duration>,
    /// A copy of other backups (e.g. the `minio-backup-to-disk` mirror): it has its own age
    /// rule but never counts as "the newest backup" nor as a destination of the dump.
    pub mirror: bool,
}

impl SourceStatus {
    /// A source before its first answer.
    pub fn new(name: &str, kind: SourceKind, location: String) -> SourceStatus {
        SourceStatus {
            name: name.to_string(),
            kind,
            location,
            recent: Vec::new(),
            newest: None,
            count: 0,
            total: 0,
            cronjobs: Vec::new(),
            not_local: false,
            stale: None,
            polled: false,
            max_age: None,
            mirror: false,
        }
    }

    /// Fills the summary from a full listing (any order): newest by time, count within
    /// retention, and the most recent `keep` newest first.
    pub fn set_listing(
        &mut self,
        mut all: Vec<BackupObject>,
        now: Timestamp,
        retention: Duration,
        keep: usize,
    ) {
        all.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.name.cmp(&a.name)));
        let cutoff = now.as_second() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        self.total = all.len();
        self.count = all.iter().filter(|o| o.at.as_second() >= cutoff).count();
        self.newest = all.first().cloned();
        all.truncate(keep);
        self.recent = all;
        self.polled = true;
        self.stale = None;
    }

    /// Marks the source failing, keeping its last good data and the first `since`.
    pub fn fail(&mut self, reason: String, now: Timestamp) {
        let since = self.stale.as_ref().map_or(now, |s| s.since);
        self.stale = Some(Stale { since, reason });
    }

    /// Whether this source holds copies of the dump (the CronJob only makes them).
    pub fn is_destination(&self) -> bool {
        self.kind != SourceKind::Cronjob && !self.mirror
    }
}

/// Every backup source of one cluster, each with its own staleness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupsSnapshot {
    pub max_age: Duration,
    pub retention: Duration,
    pub missing_after: Duration,
    pub sources: Vec<SourceStatus>,
    pub taken_at: Timestamp,
}

impl BackupsSnapshot {
    /// The newest backup over every source that answered, with its source's name.
    pub fn newest(&self) -> Option<(&str, &BackupObject)> {
        self.sources
            .iter()
            .filter(|s| !s.not_local && !s.mirror)
            .filter_map(|s| s.newest.as_ref().map(|n| (s.name.as_str(), n)))
            .max_by_key(|(_, n)| n.at)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `Some(Warn)` past `max_age`, `Some(Crit)` past twice that.
pub fn age_severity(age_s: i64, max_age: Duration) -> Option<Severity> {
    let max = secs(max_age);
    if age_s > max.saturating_mul(2) {
        Some(Severity::Crit)
    } else if age_s > max {
        Some(Severity::Warn)
    } else {
        None
    }
}

/// The median size of the backups before the newest, when there are enough of them.
pub fn recent_median(s: &SourceStatus) -> Option<u64> {
    let mut sizes: Vec<u64> = s
        .recent
        .iter()
        .skip(1)
        .take(MEDIAN_OF)
        .filter_map(|o| o.size)
        .collect();
    if sizes.len() < 3 {
        return None;
    }
    sizes.sort_unstable();
    Some(sizes[sizes.len() / 2])
}

/// Why the newest dump of a source looks broken: empty (under [`EMPTY_BELOW`]) or under half
/// the median of the dumps before it. `None` when it looks fine or sizes are unknown.
pub fn small_dump(s: &SourceStatus) -> Option<String> {
    let n = s.newest.as_ref()?;
    let size = n.size?;
    if size < EMPTY_BELOW {
        return Some(format!(
            "empty newest dump in {}: {} is {}; pg_dump failed (backup.sh has no pipefail): check the backup Job's log, restore from an older dump",
            s.name,
            n.name,
            format_size(size)
        ));
    }
    let median = recent_median(s)?;
    ((size as f64) < median as f64 * SMALL_FRACTION).then(|| {
        format!(
            "newest dump in {} far below the usual size: {} is {} against a median of {} over the last {MEDIAN_OF}; check that pg_dump succeeded",
            s.name,
            n.name,
            format_size(size),
            format_size(median)
        )
    })
}

/// Formats bytes the way the console shows sizes: `12.3 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The health rules: RPO per source and overall, silent destinations, failed Jobs, suspended
/// CronJobs, too-small dumps, failing sources.
pub fn findings(snap: &BackupsSnapshot, now: Timestamp) -> Vec<RawFinding> {
    let mut out = Vec::new();
    let max_age = format_age(secs(snap.max_age));
    let overall = snap.newest();
    for s in &snap.sources {
        if s.not_local {
            continue;
        }
        let key = |what: &str| format!("{}:{what}", s.name);
        if let Some(st) = &s.stale {
            out.push(RawFinding::new(
                Severity::Warn,
                SOURCE,
                key("stale"),
                format!("backup source {}: {}", s.name, st.reason),
            ));
        }
        match &s.newest {
            Some(n) => {
                let age = age_secs(now, n.at);
                let own_max = s.max_age.unwrap_or(snap.max_age);
                if let Some(sev) = age_severity(age, own_max) {
                    let what = if s.mirror {
                        "newest mirror run"
                    } else {
                        "newest backup"
                    };
                    out.push(RawFinding::new(
                        sev,
                        SOURCE,
                        key("age"),
                        format!(
                            "{what} in {} is {} old (max_age {})",
                            s.name,
                            format_age(age),
                            format_age(secs(own_max))
                        ),
                    ));
                }
                if let Some((from, o)) = overall
                    && s.is_destination()
                    && o.at.as_second() - n.at.as_second() > secs(snap.missing_after)
                {
                    out.push(RawFinding::new(
                        Severity::Crit,
                        SOURCE,
                        key("missing"),
                        format!(
                            "{} is missing recent backups: its newest is {} older than the newest in {from}; check the upload to {}",
                            s.name,
                            format_age(o.at.as_second() - n.at.as_second()),
                            s.name
                        ),
                    ));
                }
                if let Some(message) = small_dump(s) {
                    out.push(RawFinding::new(
                        Severity::Crit,
                        SOURCE,
                        key("small"),
                        message,
                    ));
                }
            }
            None if s.polled && s.is_destination() => out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                key("empty"),
                format!("no backups found in {} ({})", s.name, s.location),
            )),
            None => {}
        }
        for cj in &s.cronjobs {
            if cj.suspended {
                out.push(RawFinding::new(
                    Severity::Warn,
                    SOURCE,
                    format!("{}:suspended:{}", s.name, cj.name),
                    format!("CronJob {} is suspended: no backups are scheduled", cj.name),
                ));
            }
            if let Some(JobRun {
                name,
                state: JobState::Failed { reason },
                ..
            }) = &cj.last_job
            {
                out.push(RawFinding::new(
                    Severity::Warn,
                    SOURCE,
                    format!("{}:failed:{name}", s.name),
                    format!("backup Job {name} failed: {reason}"),
                ));
            }
        }
    }
    match overall {
        Some((from, n)) => {
            let age = age_secs(now, n.at);
            if let Some(sev) = age_severity(age, snap.max_age) {
                out.push(RawFinding::new(
                    sev,
                    SOURCE,
                    "overall:age",
                    format!(
                        "the newest backup anywhere ({from}) is {} old (max_age {max_age})",
                        format_age(age)
                    ),
                ));
            }
        }
        None if snap.sources.iter().any(|s| s.polled && !s.not_local) => {
            out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                "overall:none",
                "no backup found in any source",
            ));
        }
        None => {}
    }
    out
}

/// The finding for a backups config that cannot be used at all.
pub fn failing(reason: &str) -> RawFinding {
    RawFinding::new(Severity::Warn, SOURCE, "config", reason.to_string())
}

/// The `backups` object of `status --json` (interfaces.md and issue 5). Ages are taken at the
/// snapshot's time; each source carries its own `stale` only when its last poll failed.
pub fn to_json(snap: &BackupsSnapshot) -> Value {
    let now = snap.taken_at;
    let sources: Vec<Value> = snap
        .sources
        .iter()
        .map(|s| {
            let mut v = json!({
                "name": s.name,
                "kind": s.kind.as_str(),
                "newest_at": s.newest.as_ref().map(|n| n.at.to_string()),
                "age_s": s.newest.as_ref().map(|n| age_secs(now, n.at)),
                "size_bytes": s.newest.as_ref().and_then(|n| n.size),
                "count": s.count,
            });
            if let Some(st) = &s.stale {
                v["stale"] = json!({"since": st.since.to_string(), "reason": st.reason});
            }
            if s.not_local {
                v["not_local"] = json!(true);
            }
            if s.mirror {
                v["mirror"] = json!(true);
            }
            v
        })
        .collect();
    json!({
        "max_age_s": secs(snap.max_age),
        "newest_age_s": snap.newest().map(|(_, n)| age_secs(now, n.at)),
        "sources": sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;
    const H: i64 = 3600;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn obj(age_s: i64, size: u64) -> BackupObject {
        BackupObject {
            name: format!("backup_{age_s}.sql.gz"),
            at: ts(NOW - age_s),
            size: Some(size),
        }
    }

    fn source(name: &str, kind: SourceKind, objs: Vec<BackupObject>) -> SourceStatus {
        let mut s = SourceStatus::new(name, kind, format!("{name} location"));
        s.set_listing(objs, ts(NOW), Duration::from_secs(7 * 86_400), 30);
        s
    }

    fn snap(sources: Vec<SourceStatus>) -> BackupsSnapshot {
        BackupsSnapshot {
            max_age: Duration::from_secs(8 * H as u64 + 1800),
            retention: Duration::from_secs(7 * 86_400),
            missing_after: Duration::from_secs(2 * H as u64),
            sources,
            taken_at: ts(NOW),
        }
    }

    fn keys(f: &[RawFinding]) -> Vec<String> {
        f.iter()
            .map(|f| format!("{:?} {}", f.severity, f.key))
            .collect()
    }

    #[test]
    fn newest_is_by_time_not_name_and_count_is_within_retention() {
        let mut old = obj(10 * 86_400, 5);
        old.name = "zzz.sql.gz".into();
        let s = source(
            "minio",
            SourceKind::S3,
            vec![obj(3 * H, 50 << 20), old, obj(H, 60 << 20)],
        );
        assert_eq!(s.newest.as_ref().map(|n| n.at), Some(ts(NOW - H)));
        assert_eq!((s.count, s.total), (2, 3));
    }

    #[test]
    fn fresh_backups_everywhere_raise_nothing() {
        let s = snap(vec![
            source(
                "minio",
                SourceKind::S3,
                vec![obj(H, 50 << 20), obj(9 * H, 51 << 20)],
            ),
            source("b2", SourceKind::S3, vec![obj(H + 60, 50 << 20)]),
        ]);
        assert!(findings(&s, ts(NOW)).is_empty());
    }

    #[test]
    fn old_backups_warn_then_crit_per_source_and_overall() {
        let s = snap(vec![source(
            "minio",
            SourceKind::S3,
            vec![obj(9 * H, 50 << 20)],
        )]);
        assert_eq!(
            keys(&findings(&s, ts(NOW))),
            ["Warn minio:age", "Warn overall:age"]
        );
        let s = snap(vec![source(
            "minio",
            SourceKind::S3,
            vec![obj(18 * H, 50 << 20)],
        )]);
        assert_eq!(
            keys(&findings(&s, ts(NOW))),
            ["Crit minio:age", "Crit overall:age"]
        );
    }

    #[test]
    fn silent_destination_is_critical() {
        let s = snap(vec![
            source("minio", SourceKind::S3, vec![obj(H, 50 << 20)]),
            source("b2", SourceKind::S3, vec![obj(H + 16 * H, 50 << 20)]),
        ]);
        let f = findings(&s, ts(NOW));
        assert!(keys(&f).contains(&"Crit b2:missing".to_string()), "{f:?}");
        let m = f.iter().find(|f| f.key == "b2:missing").unwrap();
        assert!(
            m.message.contains("16h older than the newest in minio"),
            "{}",
            m.message
        );
    }

    #[test]
    fn a_tiny_newest_dump_is_critical() {
        let s = snap(vec![source(
            "minio",
            SourceKind::S3,
            vec![
                obj(H, 20),
                obj(9 * H, 50 << 20),
                obj(17 * H, 51 << 20),
                obj(25 * H, 49 << 20),
            ],
        )]);
        let f = findings(&s, ts(NOW));
        assert_eq!(keys(&f), ["Crit minio:small"]);
        assert!(
            f[0].message.contains("backup_3600.sql.gz is 20 B"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn an_empty_dump_is_critical_without_history_and_half_the_median_of_7_is_the_line() {
        let s = snap(vec![source("minio", SourceKind::S3, vec![obj(H, 20)])]);
        assert_eq!(keys(&findings(&s, ts(NOW))), ["Crit minio:small"]);
        // 1 KiB is not empty; with no history there is nothing to compare against.
        let s = snap(vec![source("minio", SourceKind::S3, vec![obj(H, 1024)])]);
        assert!(findings(&s, ts(NOW)).is_empty());
        // The median is over the 7 dumps before the newest: older big ones do not count.
        let mut objs = vec![obj(H, 40 << 20)];
        objs.extend((1..=7).map(|i| obj(H + i * 8 * H, 100 << 20)));
        objs.extend((0..10).map(|i| obj(H + (8 + i) * 8 * H, 10 << 30)));
        let s = snap(vec![source("minio", SourceKind::S3, objs.clone())]);
        let f = findings(&s, ts(NOW));
        assert_eq!(keys(&f), ["Crit minio:small"], "{f:?}");
        assert!(f[0].message.contains("100.0 MiB"), "{}", f[0].message);
        objs[0].size = Some(60 << 20);
        let s = snap(vec![source("minio", SourceKind::S3, objs)]);
        assert!(findings(&s, ts(NOW)).is_empty());
    }

    #[test]
    fn a_mirror_has_its_own_age_and_never_hides_missing_dumps() {
        let mut mirror = source("mirror", SourceKind::Cronjob, vec![obj(H, 0)]);
        mirror.newest.as_mut().unwrap().size = None;
        mirror.mirror = true;
        mirror.max_age = Some(Duration::from_secs(26 * H as u64));
        // The dumps are 20 h old; the mirror ran an hour ago: still overdue overall.
        let dumps = source("minio", SourceKind::S3, vec![obj(20 * H, 50 << 20)]);
        let s = snap(vec![dumps, mirror.clone()]);
        let f = findings(&s, ts(NOW));
        assert_eq!(keys(&f), ["Crit minio:age", "Crit overall:age"], "{f:?}");
        assert_eq!(to_json(&s)["newest_age_s"], 20 * H);
        assert_eq!(to_json(&s)["sources"][1]["mirror"], true);
        // A mirror 30 h old warns against its own 26 h, not the cluster's 8h30m.
        mirror.newest.as_mut().unwrap().at = ts(NOW - 30 * H);
        let s = snap(vec![
            source("minio", SourceKind::S3, vec![obj(H, 50 << 20)]),
            mirror,
        ]);
        let f = findings(&s, ts(NOW));
        assert_eq!(keys(&f), ["Warn mirror:age"], "{f:?}");
        assert!(f[0].message.contains("mirror run"), "{}", f[0].message);
    }

    #[test]
    fn failed_job_and_suspended_cronjob_warn() {
        let mut s = SourceStatus::new("cronjobs", SourceKind::Cronjob, "database".into());
        s.set_listing(
            vec![BackupObject {
                name: "j".into(),
                at: ts(NOW - H),
                size: None,
            }],
            ts(NOW),
            Duration::from_secs(7 * 86_400),
            30,
        );
        s.cronjobs = vec![CronJobStatus {
            name: "postgres-backup-evening".into(),
            schedule: "0 22 * * *".into(),
            suspended: true,
            last_schedule: Some(ts(NOW - H)),
            last_successful: None,
            active: vec![],
            last_job: Some(JobRun {
                name: "postgres-backup-evening-1".into(),
                started: None,
                finished: None,
                state: JobState::Failed {
                    reason: "BackoffLimitExceeded".into(),
                },
            }),
        }];
        let f = findings(&snap(vec![s]), ts(NOW));
        assert_eq!(
            keys(&f),
            [
                "Warn cronjobs:suspended:postgres-backup-evening",
                "Warn cronjobs:failed:postgres-backup-evening-1"
            ]
        );
    }

    #[test]
    fn a_stale_source_warns_and_keeps_its_data_while_others_are_unaffected() {
        let mut b2 = source("b2", SourceKind::S3, vec![obj(H, 50 << 20)]);
        b2.fail("access denied".into(), ts(NOW - 60));
        b2.fail("access denied again".into(), ts(NOW));
        assert_eq!(b2.stale.as_ref().map(|s| s.since), Some(ts(NOW - 60)));
        let s = snap(vec![
            source("minio", SourceKind::S3, vec![obj(H, 50 << 20)]),
            b2,
        ]);
        assert_eq!(keys(&findings(&s, ts(NOW))), ["Warn b2:stale"]);
        let j = to_json(&s);
        assert_eq!(j["sources"][1]["stale"]["reason"], "access denied again");
        assert!(j["sources"][0].get("stale").is_none());
    }

    #[test]
    fn other_host_dir_is_not_local_without_finding() {
        let mut d = SourceStatus::new("vps-disk", SourceKind::Dir, "/mnt".into());
        d.not_local = true;
        d.polled = true;
        let s = snap(vec![
            d,
            source("minio", SourceKind::S3, vec![obj(H, 50 << 20)]),
        ]);
        assert!(findings(&s, ts(NOW)).is_empty());
        let j = to_json(&s);
        assert_eq!(j["sources"][0]["not_local"], true);
        assert_eq!(j["sources"][0]["age_s"], Value::Null);
    }

    #[test]
    fn json_has_the_issue_shape() {
        let s = snap(vec![source(
            "minio",
            SourceKind::S3,
            vec![obj(H, 50 << 20), obj(2 * H, 40 << 20)],
        )]);
        assert_eq!(
            to_json(&s),
            json!({"max_age_s": 30600, "newest_age_s": 3600, "sources": [
                {"name": "minio", "kind": "s3", "newest_at": ts(NOW - H).to_string(), "age_s": 3600,
                 "size_bytes": 50 << 20, "count": 2}]})
        );
    }

    #[test]
    fn empty_destination_is_critical() {
        let s = snap(vec![source("minio", SourceKind::S3, vec![])]);
        assert_eq!(
            keys(&findings(&s, ts(NOW))),
            ["Crit minio:empty", "Crit overall:none"]
        );
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(format_size(20), "20 B");
        assert_eq!(format_size(52_428_800), "50.0 MiB");
    }
}
