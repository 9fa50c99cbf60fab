//! Redis persistence: what `INFO persistence`, `INFO server` and `CONFIG GET save|appendonly`
//! say about whether data survives a restart, the Kubernetes data volume it lives on, and the
//! health rules over them (protocols.md section 2).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::findings::{RawFinding, Severity};

/// The `source` of Redis findings and the key in `status --json`.
pub const SOURCE: &str = "redis";

/// "Many changes and an old last save": both must hold for the warning.
pub const MANY_CHANGES: u64 = 1000;
pub const OLD_SAVE_S: i64 = 3600;

/// Parses an INFO reply: `key:value` lines, `#` section headers skipped, unknown keys kept.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A config value read with `CONFIG GET`, or why it could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    Known(String),
    /// CONFIG is renamed, denied by an ACL, or failed; the reason says which.
    Unknown(String),
}

impl ConfigValue {
    pub fn known(&self) -> Option<&str> {
        match self {
            ConfigValue::Known(v) => Some(v),
            ConfigValue::Unknown(_) => None,
        }
    }
}

/// The Kubernetes volume Redis keeps its data on, from the workload's pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeCheck {
    /// `namespace/kind/name` as configured.
    pub workload: String,
    /// The volume's name in the pod template, e.g. `redis-data`.
    pub name: Option<String>,
    /// `emptyDir`, `persistentVolumeClaim`, `hostPath`, ...; None when it could not be read.
    pub kind: Option<String>,
    /// Why the check could not be made.
    pub error: Option<String>,
}

/// One poll of a Redis server.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSnapshot {
    pub version: String,
    pub uptime_s: i64,
    pub loading: bool,
    pub rdb_bgsave_in_progress: bool,
    pub rdb_changes_since_last_save: u64,
    /// Epoch seconds; the start time when nothing was saved yet (the trap, see [`Self::rdb_last_save_age_s`]).
    pub rdb_last_save_time: i64,
    /// 7.0+ only: snapshots since start.
    pub rdb_saves: Option<u64>,
    pub rdb_last_bgsave_ok: bool,
    pub aof_enabled: bool,
    pub aof_rewrite_in_progress: bool,
    pub aof_last_write_ok: bool,
    pub aof_last_bgrewrite_ok: bool,
    /// `CONFIG GET save`: `""` means no save points.
    pub save: ConfigValue,
    /// `CONFIG GET appendonly`.
    pub appendonly: ConfigValue,
    pub volume: Option<VolumeCheck>,
    pub taken_at: Timestamp,
}

fn flag(info: &BTreeMap<String, String>, key: &str) -> bool {
    info.get(key).is_some_and(|v| v == "1")
}

fn num<T: std::str::FromStr>(info: &BTreeMap<String, String>, key: &str) -> Option<T> {
    info.get(key).and_then(|v| v.parse().ok())
}

fn ok_status(info: &BTreeMap<String, String>, key: &str) -> bool {
    // Absent means the server does not report it: do not invent a failure.
    info.get(key).is_none_or(|v| v == "ok")
}

impl RedisSnapshot {
    /// Builds a snapshot from the merged `INFO server` + `INFO persistence` fields.
    pub fn from_info(
        info: &BTreeMap<String, String>,
        save: ConfigValue,
        appendonly: ConfigValue,
        volume: Option<VolumeCheck>,
        now: Timestamp,
    ) -> RedisSnapshot {
        RedisSnapshot {
            version: info.get("redis_version").cloned().unwrap_or_default(),
            uptime_s: num(info, "uptime_in_seconds").unwrap_or(0),
            loading: flag(info, "loading"),
            rdb_bgsave_in_progress: flag(info, "rdb_bgsave_in_progress"),
            rdb_changes_since_last_save: num(info, "rdb_changes_since_last_save").unwrap_or(0),
            rdb_last_save_time: num(info, "rdb_last_save_time").unwrap_or(0),
            rdb_saves: num(info, "rdb_saves"),
            rdb_last_bgsave_ok: ok_status(info, "rdb_last_bgsave_status"),
            aof_enabled: flag(info, "aof_enabled"),
            aof_rewrite_in_progress: flag(info, "aof_rewrite_in_progress"),
            aof_last_write_ok: ok_status(info, "aof_last_write_status"),
            aof_last_bgrewrite_ok: ok_status(info, "aof_last_bgrewrite_status"),
            save,
            appendonly,
            volume,
            taken_at: now,
        }
    }

    /// RDB snapshots configured: from `CONFIG GET save` when allowed, else inferred from a
    /// save having happened (None: unknown).
    pub fn rdb_enabled(&self) -> Option<bool> {
        match &self.save {
            ConfigValue::Known(v) => Some(!v.trim().is_empty()),
            ConfigValue::Unknown(_) if self.has_saved() || self.rdb_bgsave_in_progress => {
                Some(true)
            }
            ConfigValue::Unknown(_) => None,
        }
    }

    /// Whether an RDB save happened since start. `rdb_last_save_time` is set to the start time
    /// at boot, so on 6.x (no `rdb_saves`) only a time clearly after the start counts.
    pub fn has_saved(&self) -> bool {
        match self.rdb_saves {
            Some(n) => n > 0,
            None => {
                let started = self.taken_at.as_second() - self.uptime_s;
                self.rdb_last_save_time > started + 1
            }
        }
    }

    /// Age of the last successful RDB save; None when nothing was saved since start.
    pub fn rdb_last_save_age_s(&self) -> Option<i64> {
        self.has_saved()
            .then(|| (self.taken_at.as_second() - self.rdb_last_save_time).max(0))
    }

    /// Whether anything is written to disk (AOF, or RDB save points, or a save seen).
    pub fn persistence_on(&self) -> bool {
        self.aof_enabled
            || self.rdb_enabled() == Some(true)
            || (self.rdb_enabled().is_none() && self.has_saved())
    }

    /// `RDB`, `AOF` or `RDB+AOF`: what is written to the data dir.
    pub fn persistence_kind(&self) -> &'static str {
        match (self.rdb_enabled() != Some(false), self.aof_enabled) {
            (true, true) => "RDB+AOF",
            (false, true) => "AOF",
            _ => "RDB",
        }
    }
}

/// The health rules (issue 4): no persistence, failing bgsave, failing AOF, many changes with
/// an old save, and an emptyDir data volume.
pub fn findings(snap: &RedisSnapshot, _now: Timestamp) -> Vec<RawFinding> {
    let mut out = Vec::new();
    let rdb = snap.rdb_enabled();
    if !snap.aof_enabled && rdb == Some(false) {
        out.push(RawFinding::new(
            Severity::Crit,
            SOURCE,
            "no-persistence",
            "data is lost on restart: no persistence at all (save \"\" and appendonly no); enable AOF or save points",
        ));
    } else if !snap.aof_enabled && rdb.is_none() && !snap.has_saved() {
        let why = match &snap.save {
            ConfigValue::Unknown(r) => r.as_str(),
            ConfigValue::Known(_) => "",
        };
        out.push(RawFinding::new(
            Severity::Warn,
            SOURCE,
            "persistence-unknown",
            format!(
                "save points unknown ({why}), AOF off and no RDB save since start: data may be lost on restart; allow CONFIG GET to check"
            ),
        ));
    }
    if !snap.rdb_last_bgsave_ok {
        out.push(RawFinding::new(
            Severity::Crit,
            SOURCE,
            "bgsave-failed",
            "last background save failed: Redis may refuse writes (MISCONF) until a save succeeds; check the data dir's space and permissions",
        ));
    }
    if snap.aof_enabled && !snap.aof_last_write_ok {
        out.push(RawFinding::new(
            Severity::Crit,
            SOURCE,
            "aof-write-failed",
            "AOF writes are failing: writes are refused and recent data is not durable; check the data dir's space and permissions",
        ));
    }
    if snap.aof_enabled && !snap.aof_last_bgrewrite_ok {
        out.push(RawFinding::new(
            Severity::Warn,
            SOURCE,
            "aof-rewrite-failed",
            "last AOF rewrite failed: the AOF keeps growing; check the data dir's space",
        ));
    }
    // RDB-only: changes since the last save are what a crash loses. With AOF on the counter
    // grows without meaning (protocols.md), so it is ignored then.
    if rdb == Some(true) && !snap.aof_enabled && snap.rdb_changes_since_last_save >= MANY_CHANGES {
        let age = snap.rdb_last_save_age_s().unwrap_or(snap.uptime_s);
        if age >= OLD_SAVE_S {
            let when = match snap.rdb_last_save_age_s() {
                Some(a) => format!("last save {} ago", super::format_age(a)),
                None => format!(
                    "no save in {} since start",
                    super::format_age(snap.uptime_s)
                ),
            };
            out.push(RawFinding::new(
                Severity::Warn,
                SOURCE,
                "old-save",
                format!(
                    "{} changes not saved ({when}): a crash loses them; check the save points",
                    snap.rdb_changes_since_last_save
                ),
            ));
        }
    }
    // Three distinct states: no persistence at all (critical, above), persistence written into
    // an emptyDir (warn: survives a container restart, lost when the pod is replaced) and
    // persistence on a persistent volume (fine). Without persistence the volume adds nothing.
    if let Some(v) = &snap.volume
        && v.kind.as_deref() == Some("emptyDir")
        && snap.persistence_on()
    {
        let name = v.name.as_deref().unwrap_or("data");
        out.push(RawFinding::new(
            Severity::Warn,
            SOURCE,
            "emptydir",
            format!(
                "{} on emptyDir: lost when the pod is replaced ({} volume {name}; it survives only a container restart); use a PersistentVolumeClaim",
                snap.persistence_kind(),
                v.workload
            ),
        ));
    }
    out
}

/// The finding for a failing server; `reason` is the source's `FeatureFailing` reason.
pub fn failing(reason: &str) -> RawFinding {
    RawFinding::new(Severity::Crit, SOURCE, "server", reason.to_string())
}

/// The `redis` object of `status --json` (interfaces.md; no `stale` key).
pub fn to_json(snap: &RedisSnapshot) -> Value {
    json!({
        "version": snap.version,
        "uptime_s": snap.uptime_s,
        "rdb_enabled": snap.rdb_enabled(),
        "rdb_last_save_age_s": snap.rdb_last_save_age_s(),
        "rdb_last_bgsave_ok": snap.rdb_last_bgsave_ok,
        "aof_enabled": snap.aof_enabled,
        "aof_last_write_ok": snap.aof_last_write_ok,
        "changes_since_save": snap.rdb_changes_since_last_save,
        "volume": snap.volume.as_ref().and_then(|v| v.kind.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn info(extra: &str) -> BTreeMap<String, String> {
        let base = format!(
            "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:7200\r\n# Persistence\r\nloading:0\r\n\
             rdb_changes_since_last_save:5\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\n\
             rdb_last_bgsave_status:ok\r\nrdb_saves:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\
             aof_last_bgrewrite_status:ok\r\naof_last_write_status:ok\r\n",
            NOW - 7200
        );
        let mut m = parse_info(&base);
        m.extend(parse_info(extra));
        m
    }

    fn snap(extra: &str, save: &str, aof: &str) -> RedisSnapshot {
        RedisSnapshot::from_info(
            &info(extra),
            ConfigValue::Known(save.into()),
            ConfigValue::Known(aof.into()),
            None,
            Timestamp::from_second(NOW).unwrap(),
        )
    }

    fn keys(s: &RedisSnapshot) -> Vec<String> {
        findings(s, s.taken_at).into_iter().map(|f| f.key).collect()
    }

    #[test]
    fn no_persistence_is_critical() {
        let s = snap("", "", "no");
        let f = findings(&s, s.taken_at);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Crit);
        assert!(f[0].message.contains("data is lost on restart"));
        assert_eq!(to_json(&s)["rdb_enabled"], false);
    }

    #[test]
    fn start_time_is_not_a_save() {
        // rdb_last_save_time equals the start time: the trap.
        let s = snap("", "3600 1", "no");
        assert_eq!(s.rdb_last_save_age_s(), None);
        let mut six = snap("", "3600 1", "no");
        six.rdb_saves = None;
        assert_eq!(
            six.rdb_last_save_age_s(),
            None,
            "6.x: start time is not a save"
        );
        six.rdb_last_save_time = NOW - 60;
        assert_eq!(six.rdb_last_save_age_s(), Some(60));
        let saved = snap(
            &format!("rdb_saves:3\r\nrdb_last_save_time:{}\r\n", NOW - 30),
            "3600 1",
            "no",
        );
        assert_eq!(saved.rdb_last_save_age_s(), Some(30));
        assert!(keys(&saved).is_empty());
    }

    #[test]
    fn failing_bgsave_and_aof_are_critical() {
        assert_eq!(
            keys(&snap("rdb_last_bgsave_status:err\r\n", "3600 1", "no")),
            ["bgsave-failed"]
        );
        assert_eq!(
            keys(&snap(
                "aof_enabled:1\r\naof_last_write_status:err\r\n",
                "",
                "yes"
            )),
            ["aof-write-failed"]
        );
    }

    #[test]
    fn many_changes_and_an_old_save_warn() {
        let s = snap("rdb_changes_since_last_save:50000\r\n", "3600 1", "no");
        let f = findings(&s, s.taken_at);
        assert_eq!(f[0].key, "old-save");
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0].message.contains("no save in 2h"), "{}", f[0].message);
        // With AOF on the counter means nothing.
        assert!(
            keys(&snap(
                "rdb_changes_since_last_save:50000\r\naof_enabled:1\r\n",
                "3600 1",
                "yes"
            ))
            .is_empty()
        );
    }

    #[test]
    fn denied_config_degrades_to_unknown() {
        let mut s = snap("", "", "no");
        s.save = ConfigValue::Unknown("CONFIG is disabled".into());
        assert_eq!(s.rdb_enabled(), None);
        assert_eq!(keys(&s), ["persistence-unknown"]);
        assert_eq!(to_json(&s)["rdb_enabled"], Value::Null);
    }

    #[test]
    fn rdb_on_empty_dir_warns_no_persistence_is_critical_and_a_pvc_is_fine() {
        let vol = |kind: &str| VolumeCheck {
            workload: "database/deployment/redis".into(),
            name: Some("redis-data".into()),
            kind: Some(kind.into()),
            error: None,
        };
        let mut off = snap("", "", "no");
        off.volume = Some(vol("emptyDir"));
        assert_eq!(keys(&off), ["no-persistence"]);
        let mut rdb = snap("", "3600 1 300 100 60 10000", "no");
        rdb.volume = Some(vol("emptyDir"));
        let f = findings(&rdb, rdb.taken_at);
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
        assert!(f[0].message.contains("redis-data"));
        rdb.volume = Some(vol("persistentVolumeClaim"));
        assert!(findings(&rdb, rdb.taken_at).is_empty());
        let mut aof = snap("aof_enabled:1\r\n", "", "yes");
        aof.volume = Some(vol("emptyDir"));
        let f = findings(&aof, aof.taken_at);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(
            f[0].message.starts_with("AOF on emptyDir"),
            "{}",
            f[0].message
        );
        assert_eq!(to_json(&aof)["volume"], "emptyDir");
    }
}
