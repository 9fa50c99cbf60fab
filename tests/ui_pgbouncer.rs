//! Snapshots of the PgBouncer tile and detail view, drawn from the recorded 1.18 fixture.

use jiff::Timestamp;
use opsdeck::model::Stale;
use opsdeck::model::pgbouncer::{self as model, PgbouncerSnapshot, Thresholds};
use opsdeck::ui::Theme;
use opsdeck::ui::tiles::pgbouncer::{detail, tile};
use ratatui::text::Line;

const NOW: i64 = 1_795_000_000;

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

/// The fixture polled every 2 s for a minute, with the queue growing.
fn snapshot() -> PgbouncerSnapshot {
    let f = model::parse_fixture(include_str!("fixtures/pgbouncer/pgbouncer-1.18.txt"));
    let mut snap: Option<PgbouncerSnapshot> = None;
    for i in 0..30i64 {
        let mut pools = model::parse_pools(&f["POOLS"]).expect("pools");
        pools[0].cl_waiting = (i / 5) as u64;
        pools[0].maxwait_s = i as f64 / 10.0;
        snap = Some(model::build(
            snap.as_ref(),
            model::parse_version(&f["VERSION"]).expect("version"),
            pools,
            model::parse_databases(&f["DATABASES"]).expect("databases"),
            model::parse_stats(&f["STATS"]).expect("stats"),
            ts(NOW - 60 + 2 * i),
            Thresholds::default(),
        ));
    }
    snap.expect("snapshot")
}

const THEME: Theme = Theme { color: false };

#[test]
fn tile_shows_the_waiting_pool_first_with_sparklines() {
    let s = snapshot();
    let out = text(&tile(Some(&s), None, 38, 6, ts(NOW), THEME));
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with("CRIT")),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("wait ") && l.contains(" maxw ")),
        "{out}"
    );
    insta::assert_snapshot!("pgbouncer_tile_38", out);
}

#[test]
fn tile_at_78_columns() {
    let s = snapshot();
    insta::assert_snapshot!(
        "pgbouncer_tile_78",
        text(&tile(Some(&s), None, 78, 6, ts(NOW), THEME))
    );
}

#[test]
fn stale_tile_keeps_the_numbers_and_says_since_when() {
    let s = snapshot();
    let stale = Stale {
        since: ts(NOW - 180),
        reason: "PgBouncer console at 10.43.0.15:5432 is unreachable: connection refused".into(),
    };
    let out = text(&tile(Some(&s), Some(&stale), 38, 6, ts(NOW), THEME));
    assert!(out.contains("stale since 3m"), "{out}");
    assert!(out.contains("goapps/app"), "{out}");
    insta::assert_snapshot!("pgbouncer_tile_stale_38", out);
}

#[test]
fn tile_without_data_says_so() {
    let out = text(&tile(None, None, 38, 6, ts(NOW), THEME));
    insta::assert_snapshot!("pgbouncer_tile_empty_38", out);
}

#[test]
fn detail_lists_every_pool_database_and_stats_row() {
    let s = snapshot();
    let out = text(&detail(Some(&s), None, 78, 40, ts(NOW), THEME));
    assert!(out.contains("reporting/report"), "{out}");
    insta::assert_snapshot!("pgbouncer_detail_78", out);
}

#[test]
fn detail_at_38_columns() {
    let s = snapshot();
    insta::assert_snapshot!(
        "pgbouncer_detail_38",
        text(&detail(Some(&s), None, 38, 40, ts(NOW), THEME))
    );
}
