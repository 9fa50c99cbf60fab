//! The Backups tile (the newest backup's age and size in each place, coloured against
//! `max_age`, and the newest overall) and its detail view (recent backups per source with
//! sizes, a size-over-time sparkline, CronJob and Job state, and the findings).

use jiff::Timestamp;
use ratatui::text::Line;

use super::text::{fit, no_data, stale_line, title, worst_of, wrapped};
use crate::model::backups::{
    BackupsSnapshot, JobState, SourceKind, SourceStatus, age_severity, findings, format_size,
};
use crate::model::{Severity, Stale, age_secs, format_age};
use crate::ui::Theme;

/// How many backups each source lists in the detail view.
const DETAIL_ROWS: usize = 6;

fn source_severity(snap: &BackupsSnapshot, s: &SourceStatus, now: Timestamp) -> Option<Severity> {
    let prefix = format!("{}:", s.name);
    findings(snap, now)
        .iter()
        .filter(|f| f.key.starts_with(&prefix) && !f.key.ends_with(":stale"))
        .map(|f| f.severity)
        .max()
}

fn cronjob_note(s: &SourceStatus) -> String {
    let failed = s
        .cronjobs
        .iter()
        .filter(|c| {
            matches!(
                c.last_job.as_ref().map(|j| &j.state),
                Some(JobState::Failed { .. })
            )
        })
        .count();
    let running = s.cronjobs.iter().filter(|c| !c.active.is_empty()).count();
    let suspended = s.cronjobs.iter().filter(|c| c.suspended).count();
    let mut notes = Vec::new();
    if failed > 0 {
        notes.push(format!("{failed} failed"));
    }
    if running > 0 {
        notes.push("running".to_string());
    }
    if suspended > 0 {
        notes.push(format!("{suspended} suspended"));
    }
    if notes.is_empty() {
        notes.push(format!("{} ok", s.cronjobs.len()));
    }
    notes.join(", ")
}

fn source_line(s: &SourceStatus, now: Timestamp) -> String {
    let age = if s.not_local {
        "not local".to_string()
    } else {
        s.newest
            .as_ref()
            .map_or("none".into(), |n| format_age(age_secs(now, n.at)))
    };
    let what = match s.kind {
        SourceKind::Cronjob => cronjob_note(s),
        _ if s.not_local => String::new(),
        _ => s
            .newest
            .as_ref()
            .and_then(|n| n.size)
            .map(format_size)
            .unwrap_or_default(),
    };
    let mut t = format!("{:<9} {age:>6} {what}", fit(&s.name, 9));
    if s.stale.is_some() {
        t.push_str(" (stale)");
    }
    t.trim_end().to_string()
}

/// Lines wrapped at `width - indent`, each indented (the shared wrapper drops leading spaces).
fn indented(
    text: &str,
    indent: usize,
    width: usize,
    style: ratatui::style::Style,
) -> Vec<Line<'static>> {
    let pad = " ".repeat(indent);
    wrapped(text, width.saturating_sub(indent).max(10), style)
        .into_iter()
        .map(|l| {
            let t: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            Line::styled(fit(&format!("{pad}{t}"), width), style)
        })
        .collect()
}

/// Sizes over time (oldest left) scaled between their minimum and maximum, so a drift of a
/// few MiB on 50 MiB shows, and an empty dump drops to the floor.
fn size_chart(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail = &values[values.len().saturating_sub(width)..];
    let min = tail.iter().copied().fold(f64::INFINITY, f64::min);
    let max = tail.iter().copied().fold(0.0, f64::max);
    tail.iter()
        .map(|v| {
            if max <= min {
                BARS[4]
            } else {
                BARS[(((v - min) / (max - min)) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// The compact tile for a cluster column.
pub fn tile(
    snap: Option<&BackupsSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let Some(snap) = snap else {
        return no_data("Backups", stale, width, height, now, theme);
    };
    let mut out = Vec::new();
    let raw = findings(snap, now);
    let worst = worst_of(&raw, stale);
    let head = match snap.newest() {
        Some((_, n)) => format!("Backups  newest {}", format_age(age_secs(now, n.at))),
        None => "Backups  none found".to_string(),
    };
    out.push(title(&head, worst, width, theme));
    if let Some(s) = stale {
        out.push(stale_line(s, now, width, theme));
    }
    // When the tile is short, the sources in trouble come first: they are the news.
    let mut sources: Vec<_> = snap.sources.iter().collect();
    if height < snap.sources.len() + 2 {
        sources.sort_by_key(|s| {
            let rank = if s.stale.is_some() {
                1
            } else if s.not_local {
                3
            } else {
                2
            };
            (std::cmp::Reverse(source_severity(snap, s, now)), rank)
        });
    }
    for s in sources {
        let style = if s.stale.is_some() {
            theme.stale()
        } else if s.not_local {
            theme.dim()
        } else {
            theme.severity(source_severity(snap, s, now))
        };
        out.push(Line::styled(fit(&source_line(s, now), width), style));
    }
    // An empty newest dump is the worst news (a restore from it restores nothing), then a
    // silent destination; a plain age finding says less.
    let crit = raw
        .iter()
        .filter(|f| f.severity == Severity::Crit)
        .min_by_key(|f| {
            if f.key.ends_with(":small") {
                0
            } else if f.key.ends_with(":missing") {
                1
            } else {
                2
            }
        });
    if let Some(f) = crit {
        out.push(Line::styled(
            fit(&f.message, width),
            theme.severity(Some(Severity::Crit)),
        ));
    }
    out.truncate(height);
    out
}

/// The full-screen detail view.
pub fn detail(
    snap: Option<&BackupsSnapshot>,
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
                "Backups  max_age {}  retention {}  missing_after {}  (polled {} UTC)",
                format_age(snap.max_age.as_secs() as i64),
                format_age(snap.retention.as_secs() as i64),
                format_age(snap.missing_after.as_secs() as i64),
                snap.taken_at.strftime("%H:%M:%S")
            ),
            width,
        ),
        theme.title(),
    )];
    if let Some(s) = stale {
        out.push(stale_line(s, now, width, theme));
    }
    for f in findings(snap, now) {
        out.extend(wrapped(
            &format!("{} {}", f.severity.label(), f.message),
            width,
            theme.severity(Some(f.severity)),
        ));
    }
    for s in &snap.sources {
        out.push(Line::raw(""));
        out.push(Line::styled(
            fit(
                &format!(
                    "{} ({}{}): {}",
                    s.name,
                    s.kind.as_str(),
                    if s.mirror { ", mirror" } else { "" },
                    s.location
                ),
                width,
            ),
            theme.title(),
        ));
        if let Some(st) = &s.stale {
            out.extend(wrapped(
                &format!(
                    "stale since {}: {}",
                    format_age(age_secs(now, st.since)),
                    st.reason
                ),
                width,
                theme.stale(),
            ));
        }
        if s.not_local {
            out.push(Line::styled(
                fit("  on another host: not read here", width),
                theme.dim(),
            ));
            continue;
        }
        for cj in &s.cronjobs {
            let mut t = format!("  {} [{}]", cj.name, cj.schedule);
            if cj.suspended {
                t.push_str(" SUSPENDED");
            }
            out.push(Line::raw(fit(&t, width)));
            let when = |t: Option<Timestamp>| {
                t.map_or("never".into(), |t| {
                    format!("{} ago", format_age(age_secs(now, t)))
                })
            };
            out.push(Line::raw(fit(
                &format!(
                    "    scheduled {}, succeeded {}",
                    when(cj.last_schedule),
                    when(cj.last_successful)
                ),
                width,
            )));
            if !cj.active.is_empty() {
                out.push(Line::raw(fit(
                    &format!("    running: {}", cj.active.join(", ")),
                    width,
                )));
            }
            if let Some(j) = &cj.last_job {
                let (text, sev) = match &j.state {
                    JobState::Running => (format!("last Job {} running", j.name), None),
                    JobState::Succeeded => (format!("last Job {} succeeded", j.name), None),
                    JobState::Failed { reason } => (
                        format!("last Job {} FAILED: {reason}", j.name),
                        Some(Severity::Warn),
                    ),
                };
                out.extend(indented(&text, 6, width, theme.severity(sev)));
            }
        }
        if s.kind != SourceKind::Cronjob {
            let sizes: Vec<f64> = s
                .recent
                .iter()
                .rev()
                .filter_map(|o| o.size.map(|b| b as f64))
                .collect();
            out.push(Line::raw(fit(
                &format!(
                    "  {} within retention, {} in all; sizes {}",
                    s.count,
                    s.total,
                    size_chart(&sizes, width.saturating_sub(40).clamp(8, 30))
                ),
                width,
            )));
        }
        for o in s.recent.iter().take(DETAIL_ROWS) {
            let age = age_secs(now, o.at);
            let size = o.size.map(format_size).unwrap_or_default();
            out.push(Line::styled(
                fit(
                    &format!(
                        "  {} {:>6} {:>10}  {}",
                        o.at.strftime("%m-%d %H:%M"),
                        format_age(age),
                        size,
                        o.name
                    ),
                    width,
                ),
                theme.severity(
                    age_severity(age, s.max_age.unwrap_or(snap.max_age))
                        .filter(|_| Some(o) == s.newest.as_ref()),
                ),
            ));
        }
    }
    out.truncate(height);
    out
}
