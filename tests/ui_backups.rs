//! Snapshots of the Backups tile and detail view: the fleet's silent failure (B2 stopped
//! receiving backups two runs ago, a failed Job), a stale source, and widths 38 and 78.

use std::time::Duration;

use jiff::Timestamp;
use opsdeck::model::Stale;
use opsdeck::model::backups::{
    BackupObject, BackupsSnapshot, CronJobStatus, JobRun, JobState, SourceKind, SourceStatus,
};
use opsdeck::ui::Theme;
use opsdeck::ui::tiles::backups::{detail, tile};
use ratatui::text::Line;

const NOW: i64 = 1_795_000_000;
const H: i64 = 3600;
const THEME: Theme = Theme { color: false };

fn text(lines: &[Line<'_>]) -> String {
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
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("time")
}

/// Three runs a day, eight hours apart; the newest `skip` runs missing.
fn runs(skip: usize) -> Vec<BackupObject> {
    (0..21)
        .skip(skip)
        .map(|i| {
            let at = NOW - 2 * H - (i as i64) * 8 * H;
            BackupObject {
                name: format!("backup_{}.sql.gz", ts(at).strftime("%Y%m%d_%H%M%S")),
                at: ts(at),
                size: Some(50_000_000 - (i as u64) * 400_000 + (i as u64 % 3) * 900_000),
            }
        })
        .collect()
}

fn source(name: &str, kind: SourceKind, location: &str, objs: Vec<BackupObject>) -> SourceStatus {
    let mut s = SourceStatus::new(name, kind, location.into());
    s.set_listing(objs, ts(NOW), Duration::from_secs(7 * 86_400), 30);
    s
}

fn fleet() -> BackupsSnapshot {
    let mut cron = source(
        "cronjobs",
        SourceKind::Cronjob,
        "CronJobs database/postgres-backup-*",
        vec![BackupObject {
            name: "postgres-backup-morning-29916000".into(),
            at: ts(NOW - 2 * H + 94),
            size: None,
        }],
    );
    let cj = |n: &str, sched: &str, ago: i64, state: JobState| CronJobStatus {
        name: format!("postgres-backup-{n}"),
        schedule: sched.into(),
        suspended: false,
        last_schedule: Some(ts(NOW - ago)),
        last_successful: Some(ts(NOW - ago + 94)),
        active: vec![],
        last_job: Some(JobRun {
            name: format!("postgres-backup-{n}-{}", (NOW - ago) / 60),
            started: Some(ts(NOW - ago)),
            finished: Some(ts(NOW - ago + 94)),
            state,
        }),
    };
    cron.cronjobs = vec![
        cj(
            "afternoon",
            "0 14 * * *",
            18 * H,
            JobState::Failed {
                reason: "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            },
        ),
        cj("evening", "0 22 * * *", 10 * H, JobState::Succeeded),
        cj("morning", "0 6 * * *", 2 * H, JobState::Succeeded),
    ];
    let mut disk = SourceStatus::new(
        "vps-disk",
        SourceKind::Dir,
        "/mnt/goapps-backup/postgres/*.sql.gz".into(),
    );
    disk.not_local = true;
    disk.polled = true;
    BackupsSnapshot {
        max_age: Duration::from_secs(8 * 3600 + 1800),
        retention: Duration::from_secs(7 * 86_400),
        missing_after: Duration::from_secs(2 * 3600),
        sources: vec![
            cron,
            source(
                "minio",
                SourceKind::S3,
                "s3 postgres-backups/ at http://127.0.0.1:9000",
                runs(0),
            ),
            source(
                "b2",
                SourceKind::S3,
                "s3 goapps-pg-offsite/ at https://s3.us-west-004.backblazeb2.com",
                runs(2),
            ),
            disk,
        ],
        taken_at: ts(NOW),
    }
}

#[test]
fn fleet_tile_shows_each_place_and_the_silent_destination() {
    let out = text(&tile(Some(&fleet()), None, 38, 8, ts(NOW), THEME));
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with("CRIT")),
        "{out}"
    );
    assert!(out.lines().all(|l| l.chars().count() <= 38), "{out}");
    assert!(out.contains("b2") && out.contains("18h"), "{out}");
    assert!(out.contains("not local"), "{out}");
    insta::assert_snapshot!("backups_tile_fleet_38", out);
}

#[test]
fn fleet_tile_at_78() {
    insta::assert_snapshot!(
        "backups_tile_fleet_78",
        text(&tile(Some(&fleet()), None, 78, 8, ts(NOW), THEME))
    );
}

#[test]
fn a_stale_source_is_marked_and_others_stay() {
    let mut snap = fleet();
    snap.sources[1].fail(
        "S3 at http://127.0.0.1:9000 is unreachable: connection refused; check that the store runs"
            .into(),
        ts(NOW - 120),
    );
    let out = text(&tile(Some(&snap), None, 38, 8, ts(NOW), THEME));
    assert!(out.contains("(stale)"), "{out}");
    insta::assert_snapshot!("backups_tile_stale_38", out);
}

#[test]
fn waiting_tile() {
    let stale = Stale {
        since: ts(NOW - 5),
        reason: "backups config: source[0]: name is missing".into(),
    };
    insta::assert_snapshot!(
        "backups_tile_failing_38",
        text(&tile(None, Some(&stale), 38, 8, ts(NOW), THEME))
    );
}

#[test]
fn detail_views() {
    insta::assert_snapshot!(
        "backups_detail_fleet_78",
        text(&detail(Some(&fleet()), None, 78, 60, ts(NOW), THEME))
    );
    insta::assert_snapshot!(
        "backups_detail_fleet_38",
        text(&detail(Some(&fleet()), None, 38, 60, ts(NOW), THEME))
    );
}

/// The real fleet's worst case: the newest dump is a ~20-byte gzip of nothing (backup.sh has
/// no pipefail) while its Job says Complete. The tile shows its size beside its age and the
/// critical finding names the object; a mirror source is aged on its own.
#[test]
fn an_empty_newest_dump_is_the_tiles_news() {
    let mut snap = fleet();
    let mut objs = runs(0);
    objs[0].name = "production_goapps_20261124_230005.sql.gz".into();
    objs[0].size = Some(20);
    snap.sources[1] = source(
        "minio",
        SourceKind::S3,
        "s3 postgres-backups/*_goapps_*.sql.gz at https://127.0.0.1:9000",
        objs,
    );
    let mut mirror = source(
        "mirror",
        SourceKind::Cronjob,
        "CronJobs database/minio-backup-to-disk*",
        vec![BackupObject {
            name: "minio-backup-to-disk-29915000".into(),
            at: ts(NOW - 30 * H),
            size: None,
        }],
    );
    mirror.mirror = true;
    mirror.max_age = Some(Duration::from_secs(26 * 3600));
    snap.sources.push(mirror);
    let out = text(&tile(Some(&snap), None, 78, 9, ts(NOW), THEME));
    assert!(
        out.lines()
            .any(|l| l.starts_with("minio") && l.contains("2h") && l.contains("20 B")),
        "{out}"
    );
    assert!(
        out.contains("production_goapps_20261124_230005.sql.gz is 20 B"),
        "{out}"
    );
    let json = opsdeck::model::backups::to_json(&snap);
    assert_eq!(json["sources"][1]["size_bytes"], 20);
    assert_eq!(json["sources"][4]["mirror"], true);
    let f = opsdeck::model::backups::findings(&snap, ts(NOW));
    let small = f.iter().find(|f| f.key == "minio:small").expect("{f:?}");
    assert_eq!(small.severity, opsdeck::model::Severity::Crit);
    assert!(
        f.iter().any(|f| f.key == "mirror:age"
            && f.severity == opsdeck::model::Severity::Warn
            && f.message.contains("max_age 1d2h")),
        "{f:?}"
    );
    insta::assert_snapshot!("backups_tile_empty_dump_78", out);
    insta::assert_snapshot!(
        "backups_detail_empty_dump_78",
        text(&detail(Some(&snap), None, 78, 40, ts(NOW), THEME))
    );
}
