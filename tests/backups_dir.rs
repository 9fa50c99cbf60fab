//! The `dir` backup source on real temp dirs with chosen mtimes, an empty dir, an unreadable
//! one (a path that is a file and a dangling symlink: tests run as root, who ignores modes),
//! and a `host` that is not this machine.

use std::fs::File;
use std::time::{Duration, SystemTime};

use opsdeck::config::ClusterConfig;
use opsdeck::model::backups::{SourceKind, SourceStatus};
use opsdeck::sources::backups::{BackupsConfig, poll_source};

fn write(dir: &std::path::Path, name: &str, size: usize, age: Duration) {
    let p = dir.join(name);
    std::fs::write(&p, vec![0u8; size]).expect("write");
    File::options()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_modified(SystemTime::now() - age))
        .expect("set mtime");
}

async fn poll(path: &std::path::Path, extra: &str) -> SourceStatus {
    let table: toml::Table = toml::from_str(&format!(
        "[[source]]\nkind = \"dir\"\nname = \"vps-disk\"\npath = {:?}\npattern = \"*.sql.gz\"\n{extra}",
        path.display().to_string()
    ))
    .expect("toml");
    let config = BackupsConfig::from_table(&table).expect("config");
    let mut s = SourceStatus::new("vps-disk", SourceKind::Dir, config.sources[0].location());
    poll_source(
        &ClusterConfig::default(),
        &config,
        &config.sources[0],
        &mut s,
        &Default::default(),
    )
    .await;
    s
}

#[tokio::test]
async fn newest_by_mtime_with_size_and_count_within_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    const H: u64 = 3600;
    // Names sort the other way round from mtimes: only mtimes count.
    write(
        dir.path(),
        "a_backup.sql.gz",
        5000,
        Duration::from_secs(2 * H),
    );
    write(
        dir.path(),
        "z_backup.sql.gz",
        4000,
        Duration::from_secs(10 * H),
    );
    write(
        dir.path(),
        "old.sql.gz",
        3000,
        Duration::from_secs(9 * 86_400),
    );
    write(dir.path(), "notes.txt", 1, Duration::from_secs(60));
    std::os::unix::fs::symlink("/nonexistent/x.sql.gz", dir.path().join("dangling.sql.gz"))
        .expect("symlink");
    let s = poll(dir.path(), "").await;
    assert!(s.stale.is_none(), "{:?}", s.stale);
    let n = s.newest.clone().expect("newest");
    assert_eq!((n.name.as_str(), n.size), ("a_backup.sql.gz", Some(5000)));
    let age = jiff::Timestamp::now().as_second() - n.at.as_second();
    assert!((7190..7260).contains(&age), "age {age}");
    assert_eq!((s.count, s.total), (2, 3));
}

#[tokio::test]
async fn an_empty_dir_has_no_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = poll(dir.path(), "").await;
    assert!(s.stale.is_none());
    assert!(s.polled && s.newest.is_none() && s.count == 0);
}

#[tokio::test]
async fn an_unreadable_dir_is_stale_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let s = poll(&file, "").await;
    let reason = s.stale.map(|s| s.reason).unwrap_or_default();
    assert!(reason.contains("cannot read directory"), "{reason}");
    let link = dir.path().join("gone");
    std::os::unix::fs::symlink(dir.path().join("missing"), &link).expect("symlink");
    let s = poll(&link, "").await;
    assert!(s.stale.is_some(), "a dangling symlink cannot be read");
}

#[tokio::test]
async fn another_host_is_not_local() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.sql.gz", 10, Duration::from_secs(60));
    let s = poll(dir.path(), "host = \"surely-not-this-machine\"\n").await;
    assert!(s.not_local && s.newest.is_none() && s.stale.is_none());
    let here = opsdeck::runbook::audit::hostname();
    let s = poll(dir.path(), &format!("host = {here:?}\n")).await;
    assert!(!s.not_local && s.newest.is_some());
}
