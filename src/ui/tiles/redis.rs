//! The Redis tile (RDB and AOF state, changes since the last save, the data volume) and its
//! detail view (every persistence field the console reads, and the findings).

use jiff::Timestamp;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::text::{fit, no_data, stale_line, title, worst_of, wrapped};
use crate::model::redis::{ConfigValue, RedisSnapshot, findings};
use crate::model::{Severity, Stale, format_age};
use crate::ui::Theme;

fn on_off(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    }
}

fn ok_err(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILED" }
}

fn rdb_line(s: &RedisSnapshot) -> String {
    let mut t = format!("RDB {}", on_off(s.rdb_enabled()));
    if s.rdb_enabled() != Some(false) || !s.rdb_last_bgsave_ok {
        match s.rdb_last_save_age_s() {
            Some(a) => t.push_str(&format!(", saved {} ago", format_age(a))),
            None => t.push_str(", never saved"),
        }
        t.push_str(&format!(", last {}", ok_err(s.rdb_last_bgsave_ok)));
    }
    if s.rdb_bgsave_in_progress {
        t.push_str(", saving…");
    }
    t
}

fn aof_line(s: &RedisSnapshot) -> String {
    let mut t = format!("AOF {}", on_off(Some(s.aof_enabled)));
    if s.aof_enabled {
        t.push_str(&format!(
            ", write {}, rewrite {}",
            ok_err(s.aof_last_write_ok),
            ok_err(s.aof_last_bgrewrite_ok)
        ));
    }
    if s.aof_rewrite_in_progress {
        t.push_str(", rewriting…");
    }
    t
}

fn volume_text(s: &RedisSnapshot) -> Option<String> {
    let v = s.volume.as_ref()?;
    let name = v.name.as_deref().unwrap_or("?");
    Some(match (&v.kind, &v.error) {
        (Some(k), _) if k == "emptyDir" && s.persistence_on() => format!(
            "{} on emptyDir {name}: lost when the pod is replaced",
            s.persistence_kind()
        ),
        (Some(k), _) if k == "persistentVolumeClaim" && s.persistence_on() => {
            format!("volume {name}: PVC, persistent")
        }
        (Some(k), _) => format!("volume {name} ({k})"),
        (None, Some(e)) => format!("volume unknown: {e}"),
        (None, None) => "volume unknown".to_string(),
    })
}

/// The compact tile for a cluster column.
pub fn tile(
    snap: Option<&RedisSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let Some(snap) = snap else {
        return no_data("Redis", stale, width, height, now, theme);
    };
    let mut out = Vec::new();
    let raw = findings(snap, now);
    let worst = worst_of(&raw, stale);
    out.push(title(
        &format!("Redis {}  up {}", snap.version, format_age(snap.uptime_s)),
        worst,
        width,
        theme,
    ));
    if let Some(s) = stale {
        out.push(stale_line(s, now, width, theme));
    }
    let sev_of = |key: &str| {
        raw.iter()
            .filter(|f| f.key == key)
            .map(|f| f.severity)
            .max()
    };
    let persistence = sev_of("no-persistence").or(sev_of("persistence-unknown"));
    let rdb_sev = sev_of("bgsave-failed")
        .or(sev_of("old-save"))
        .or(persistence);
    let aof_sev = sev_of("aof-write-failed")
        .or(sev_of("aof-rewrite-failed"))
        .or(persistence);
    out.push(Line::styled(
        fit(&rdb_line(snap), width),
        theme.severity(rdb_sev),
    ));
    out.push(Line::styled(
        fit(&aof_line(snap), width),
        theme.severity(aof_sev),
    ));
    let mut facts = format!("changes since save {}", snap.rdb_changes_since_last_save);
    if snap.loading {
        facts.push_str(", loading…");
    }
    out.push(Line::raw(fit(&facts, width)));
    if let Some(v) = volume_text(snap) {
        out.push(Line::styled(
            fit(&v, width),
            theme.severity(sev_of("emptydir")),
        ));
    }
    if let Some(f) = raw.iter().find(|f| f.severity == Severity::Crit) {
        out.push(Line::from(vec![Span::styled(
            fit(&f.message, width),
            theme.severity(Some(Severity::Crit)),
        )]));
    }
    out.truncate(height);
    out
}

/// The full-screen detail view: the persistence fields and the findings in full.
pub fn detail(
    snap: Option<&RedisSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let Some(snap) = snap else {
        return tile(None, stale, width, height, now, theme);
    };
    let mut out = vec![Line::styled(
        fit(
            &format!(
                "Redis {}  up {}  (polled {})",
                snap.version,
                format_age(snap.uptime_s),
                snap.taken_at.strftime("%H:%M:%S")
            ),
            width,
        ),
        theme.title(),
    )];
    if let Some(s) = stale {
        out.extend(wrapped(
            &format!(
                "stale since {}: {}",
                format_age(crate::model::age_secs(now, s.since)),
                s.reason
            ),
            width,
            theme.stale(),
        ));
    }
    for f in findings(snap, now) {
        out.extend(wrapped(
            &format!("{} {}", f.severity.label(), f.message),
            width,
            theme.severity(Some(f.severity)),
        ));
    }
    out.push(Line::raw(""));
    let config = |v: &ConfigValue| match v {
        ConfigValue::Known(s) => format!("{s:?}"),
        ConfigValue::Unknown(why) => format!("unknown ({why})"),
    };
    let rows: Vec<(&str, String)> = vec![
        ("save (CONFIG)", config(&snap.save)),
        ("appendonly (CONFIG)", config(&snap.appendonly)),
        ("RDB", rdb_line(snap)),
        (
            "last save",
            match (
                snap.rdb_last_save_age_s(),
                Timestamp::from_second(snap.rdb_last_save_time),
            ) {
                (Some(age), Ok(at)) => format!(
                    "{} UTC, {} ago",
                    at.strftime("%Y-%m-%d %H:%M"),
                    format_age(age)
                ),
                _ => "none since start".into(),
            },
        ),
        (
            "rdb_saves",
            snap.rdb_saves
                .map_or("n/a (before 7.0)".into(), |n| n.to_string()),
        ),
        (
            "changes since save",
            snap.rdb_changes_since_last_save.to_string(),
        ),
        ("AOF", aof_line(snap)),
        (
            "loading",
            if snap.loading {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        (
            "data volume",
            volume_text(snap).unwrap_or_else(|| "not checked (no workload configured)".into()),
        ),
    ];
    for (k, v) in rows {
        out.push(Line::from(vec![
            Span::styled(format!("{k:<20} "), theme.dim()),
            Span::styled(fit(&v, width.saturating_sub(21)), Style::new()),
        ]));
    }
    out.truncate(height);
    out
}
