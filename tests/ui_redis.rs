//! Snapshots of the Redis tile and detail view: the fleet's case (persistence off on an
//! emptyDir), a healthy RDB + AOF server, and a stale one.

use std::collections::BTreeMap;

use jiff::Timestamp;
use opsdeck::model::Stale;
use opsdeck::model::redis::{ConfigValue, RedisSnapshot, VolumeCheck, parse_info};
use opsdeck::ui::Theme;
use opsdeck::ui::tiles::redis::{detail, tile};
use ratatui::text::Line;

const NOW: i64 = 1_795_000_000;
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

fn info(extra: &str) -> BTreeMap<String, String> {
    let mut m = parse_info(&format!(
        "redis_version:7.4.2\r\nuptime_in_seconds:1054800\r\nloading:0\r\nrdb_changes_since_last_save:48211\r\n\
         rdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_saves:0\r\n\
         aof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:ok\r\n",
        NOW - 1_054_800
    ));
    m.extend(parse_info(extra));
    m
}

fn fleet_case() -> RedisSnapshot {
    RedisSnapshot::from_info(
        &info(""),
        ConfigValue::Known(String::new()),
        ConfigValue::Known("no".into()),
        Some(VolumeCheck {
            workload: "database/deployment/redis".into(),
            name: Some("redis-data".into()),
            kind: Some("emptyDir".into()),
            error: None,
        }),
        ts(NOW),
    )
}

fn healthy() -> RedisSnapshot {
    RedisSnapshot::from_info(
        &info(&format!(
            "rdb_saves:412\r\nrdb_last_save_time:{}\r\nrdb_changes_since_last_save:12\r\naof_enabled:1\r\n",
            NOW - 95
        )),
        ConfigValue::Known("3600 1 300 100 60 10000".into()),
        ConfigValue::Known("yes".into()),
        Some(VolumeCheck {
            workload: "database/statefulset/redis".into(),
            name: Some("data".into()),
            kind: Some("persistentVolumeClaim".into()),
            error: None,
        }),
        ts(NOW),
    )
}

#[test]
fn fleet_case_tile_says_data_is_lost() {
    let out = text(&tile(Some(&fleet_case()), None, 38, 6, ts(NOW), THEME));
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with("CRIT")),
        "{out}"
    );
    assert!(out.contains("emptyDir"), "{out}");
    insta::assert_snapshot!("redis_tile_fleet_38", out);
}

#[test]
fn fleet_case_tile_at_78() {
    insta::assert_snapshot!(
        "redis_tile_fleet_78",
        text(&tile(Some(&fleet_case()), None, 78, 6, ts(NOW), THEME))
    );
}

#[test]
fn healthy_tile_shows_save_age_and_aof() {
    let out = text(&tile(Some(&healthy()), None, 38, 6, ts(NOW), THEME));
    assert!(out.contains("saved 1m ago"), "{out}");
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with("OK")),
        "{out}"
    );
    insta::assert_snapshot!("redis_tile_healthy_38", out);
}

#[test]
fn stale_tile_keeps_the_last_data() {
    let stale = Stale {
        since: ts(NOW - 42),
        reason: "Redis at 10.43.0.20:6379 is unreachable: connection refused".into(),
    };
    let out = text(&tile(Some(&healthy()), Some(&stale), 38, 6, ts(NOW), THEME));
    assert!(out.contains("stale since 42s"), "{out}");
    insta::assert_snapshot!("redis_tile_stale_38", out);
}

#[test]
fn detail_views() {
    insta::assert_snapshot!(
        "redis_detail_fleet_78",
        text(&detail(Some(&fleet_case()), None, 78, 30, ts(NOW), THEME))
    );
    insta::assert_snapshot!(
        "redis_detail_healthy_38",
        text(&detail(Some(&healthy()), None, 38, 30, ts(NOW), THEME))
    );
}
