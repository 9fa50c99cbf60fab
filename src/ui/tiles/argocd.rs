//! The ArgoCD tile of a cluster column and its full-screen detail: pure functions of a
//! snapshot, its staleness and the time. Trouble first; `✗` (critical) and `!` (warning)
//! marks keep their meaning without colour.

use jiff::Timestamp;
use ratatui::text::{Line, Span};

use crate::model::argocd::{AppSummary, ArgocdSnapshot, FollowMode, Health, SyncStatus};
use crate::model::{Severity, Stale, age_secs, format_age};
use crate::ui::{Theme, styled, truncate};

fn mark(sev: Option<Severity>) -> &'static str {
    match sev {
        Some(Severity::Crit) => "✗",
        Some(Severity::Warn) => "!",
        None => "✓",
    }
}

fn ago(now: Timestamp, t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| format!("{} ago", format_age(age_secs(now, t))),
    )
}

fn stale_line(stale: &Stale, now: Timestamp, width: usize, theme: Theme) -> Line<'static> {
    let since = stale.since.strftime("%H:%M:%S").to_string();
    let age = format_age(age_secs(now, stale.since));
    let text = format!("stale since {since} ({age}): {}", stale.reason);
    Line::styled(truncate(&text, width), theme.stale())
}

fn title(snap: Option<&ArgocdSnapshot>, width: usize, theme: Theme) -> Line<'static> {
    let mut spans = vec![styled("ArgoCD", theme.title())];
    if let Some(s) = snap {
        spans.push(Span::raw(format!(" {} apps", s.apps.len())));
        if s.mode == FollowMode::Polling {
            spans.push(styled(" polling", theme.dim()));
        }
        if s.insecure {
            spans.push(styled(" [insecure]", theme.stale()));
        }
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    if used > width {
        return Line::raw(truncate(
            &spans
                .iter()
                .map(|s| s.content.to_string())
                .collect::<String>(),
            width,
        ));
    }
    Line::from(spans)
}

/// `Synced 5  OutOfSync 1  Unknown 0`, OutOfSync and Unknown coloured when non-zero.
fn sync_counts(s: &ArgocdSnapshot, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (status, n) in s.sync_counts() {
        let sev = match status {
            SyncStatus::Synced => None,
            _ if n == 0 => None,
            _ => Some(Severity::Warn),
        };
        if !spans.is_empty() {
            spans.push(Span::raw("  "));
        }
        let style = if sev.is_some() {
            theme.severity(sev)
        } else {
            ratatui::style::Style::new()
        };
        spans.push(Span::styled(format!("{} {n}", status.as_str()), style));
    }
    Line::from(spans)
}

/// `Healthy 5  Degraded 1`: Healthy always, the others when non-zero.
fn health_counts(s: &ArgocdSnapshot, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (health, n) in s.health_counts() {
        if health != Health::Healthy && n == 0 {
            continue;
        }
        if !spans.is_empty() {
            spans.push(Span::raw("  "));
        }
        let sev = if health == Health::Healthy {
            None
        } else {
            health.severity()
        };
        let style = if sev.is_some() {
            theme.severity(sev)
        } else {
            ratatui::style::Style::new()
        };
        spans.push(Span::styled(format!("{} {n}", health.as_str()), style));
    }
    Line::from(spans)
}

/// `Succeeded 3h ago: successfully synced (all tasks run)`.
fn operation_text(a: &AppSummary, now: Timestamp) -> String {
    match &a.operation {
        None => "no operation yet".into(),
        Some(o) => {
            let when = ago(now, o.finished_at.or(o.started_at));
            if o.message.is_empty() {
                format!("{} {when}", o.phase.as_str())
            } else {
                format!("{} {when}: {}", o.phase.as_str(), o.message)
            }
        }
    }
}

fn state_text(a: &AppSummary) -> String {
    let manual = if a.auto_sync { "" } else { " manual" };
    format!("{} {}{manual}", a.sync.as_str(), a.health.as_str())
}

/// Lines for one app that needs attention: one wide line, or two narrow ones.
fn attention_lines(
    a: &AppSummary,
    width: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let sev = a.severity();
    let state = state_text(a);
    if width >= 70 {
        let head = format!("{} {:<28} {:<28} ", mark(sev), truncate(&a.name, 28), state);
        let rest = truncate(
            &operation_text(a, now),
            width.saturating_sub(head.chars().count()),
        );
        return vec![Line::from(vec![
            styled(head, theme.severity(sev)),
            styled(rest, theme.dim()),
        ])];
    }
    let word = a.trouble();
    let name = truncate(&a.name, width.saturating_sub(word.len() + 3));
    let pad = width.saturating_sub(name.chars().count() + word.len() + 2);
    vec![
        Line::from(vec![
            styled(format!("{} ", mark(sev)), theme.severity(sev)),
            Span::raw(format!("{name}{}", " ".repeat(pad))),
            styled(word, theme.severity(sev)),
        ]),
        Line::styled(
            truncate(&format!("  {}", operation_text(a, now)), width),
            theme.dim(),
        ),
    ]
}

/// The compact tile: title, sync and health counts, then the apps that are not
/// Synced+Healthy (worst first) with their last operation, fitted to `height` lines.
pub fn tile(
    snap: Option<&ArgocdSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut lines = vec![title(snap, width, theme)];
    if let Some(st) = stale {
        lines.push(stale_line(st, now, width, theme));
    }
    let Some(s) = snap else {
        let text = if stale.is_some() {
            " no data yet"
        } else {
            " waiting for the first answer…"
        };
        lines.push(Line::styled(text, theme.dim()));
        lines.truncate(height.max(1));
        return lines;
    };
    lines.push(sync_counts(s, theme));
    lines.push(health_counts(s, theme));
    let attention = s.attention();
    if attention.is_empty() {
        lines.push(Line::styled(
            format!(" all {} Synced and Healthy", s.apps.len()),
            theme.severity(None),
        ));
    }
    // Narrow tiles give each app a second line for its operation only when all of them fit;
    // otherwise one line each shows more of the apps that matter.
    let two_lines = width < 70 && 2 * attention.len() <= height.saturating_sub(lines.len());
    let per_app = if two_lines { 2 } else { 1 };
    for (i, a) in attention.iter().enumerate() {
        let left = attention.len() - i;
        let room = height.saturating_sub(lines.len());
        // Keep one line for "+N more" unless this is the last app.
        if room < per_app || (left > 1 && room < per_app + 1) {
            if room >= 1 {
                lines.push(Line::styled(format!("  +{left} more (enter)"), theme.dim()));
            }
            break;
        }
        let mut app_lines = attention_lines(a, width, now, theme);
        app_lines.truncate(per_app);
        lines.extend(app_lines);
    }
    lines.truncate(height.max(1));
    lines
}

/// One application in full: state, images, last operation, conditions, resources, history.
pub fn app_detail(
    a: &AppSummary,
    ci_sync: bool,
    width: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let sev = a.severity();
    let head = format!(
        "{} {}",
        mark(sev),
        truncate(&a.name, width.saturating_sub(2))
    );
    let state = format!("  {}", state_text(a));
    let mut out = if head.chars().count() + state.chars().count() <= width {
        vec![Line::from(vec![
            styled(head, theme.title()),
            styled(state, theme.severity(sev)),
        ])]
    } else {
        vec![
            Line::styled(head, theme.title()),
            Line::styled(truncate(&state, width), theme.severity(sev)),
        ]
    };
    let field = |k: &str, v: String| {
        Line::from(vec![
            styled(format!("  {k:<10}"), theme.dim()),
            Span::raw(truncate(&v, width.saturating_sub(12))),
        ])
    };
    out.push(field("project", a.project.clone()));
    out.push(field(
        "revision",
        format!(
            "{} (target {})",
            if a.revision.is_empty() {
                "-".into()
            } else {
                a.revision_short()
            },
            a.target_revision
        ),
    ));
    out.push(field(
        "auto-sync",
        if a.auto_sync {
            "on: rollback refused; selfHeal reverts kubectl edits".into()
        } else {
            "off (manual)".into()
        },
    ));
    if ci_sync {
        out.push(
            field(
                "CI sync",
                "also synced by CI on every push: hold the workflow too".into(),
            )
            .style(theme.severity(Some(Severity::Warn))),
        );
    }
    out.push(field("last sync", ago(now, a.last_synced_at)));
    if !a.health_message.is_empty() {
        out.push(field("health", a.health_message.clone()));
    }
    for img in &a.images {
        let warn = crate::model::argocd::is_mutable_image(img);
        let line = field(
            "image",
            format!("{img}{}", if warn { "  (mutable tag)" } else { "" }),
        );
        out.push(if warn {
            line.style(theme.severity(Some(Severity::Warn)))
        } else {
            line
        });
    }
    if a.mutable_images().next().is_some() {
        out.push(
            field(
                "rollback",
                "rollout undo will not roll back: pin a SHA in git, sync".into(),
            )
            .style(theme.severity(Some(Severity::Warn))),
        );
    }
    out.push(field("operation", operation_text(a, now)));
    for c in &a.conditions {
        out.push(
            field("condition", format!("{}: {}", c.kind, c.message))
                .style(theme.severity(Some(Severity::Warn))),
        );
    }
    if !a.resources.is_empty() {
        out.push(Line::styled("  resources", theme.title()));
        for r in &a.resources {
            let bad = (!r.sync.is_empty() && r.sync != "Synced")
                || (!r.health.is_empty() && r.health != "Healthy");
            let style = if bad {
                theme.severity(Some(Severity::Warn))
            } else {
                ratatui::style::Style::new()
            };
            let obj = if width >= 60 {
                format!("{}/{}/{}", r.kind, r.namespace, r.name)
            } else {
                format!("{}/{}", r.kind, r.name)
            };
            let tail = format!(" {:<9} {:<11}", r.sync, r.health);
            let obj = truncate(&obj, width.saturating_sub(tail.chars().count() + 4));
            let pad = width.saturating_sub(obj.chars().count() + tail.chars().count() + 4);
            out.push(Line::styled(
                format!("    {obj}{}{tail}", " ".repeat(pad))
                    .trim_end()
                    .to_string(),
                style,
            ));
        }
    }
    if !a.history.is_empty() {
        out.push(Line::styled("  history (newest first)", theme.title()));
        for h in a.history.iter().rev() {
            let when = h
                .deployed_at
                .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into());
            out.push(Line::raw(truncate(
                &format!(
                    "    {:>3}  {:<8} {when}",
                    h.id,
                    crate::model::argocd::short_revision(&h.revision)
                ),
                width,
            )));
        }
    }
    out
}

/// The full-screen view: every application as a table row, then each one in full, those that
/// need attention first. `height` is the screen's; the caller scrolls the lines.
pub fn detail(
    snap: Option<&ArgocdSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    _height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut lines = vec![title(snap, width, theme)];
    if let Some(s) = snap {
        lines.push(Line::styled(
            truncate(&format!("  {}", s.endpoint), width),
            theme.dim(),
        ));
    }
    if let Some(st) = stale {
        lines.push(stale_line(st, now, width, theme));
    }
    let Some(s) = snap else {
        lines.push(Line::styled(
            if stale.is_some() {
                " no data yet"
            } else {
                " waiting for the first answer…"
            },
            theme.dim(),
        ));
        return lines;
    };
    lines.push(sync_counts(s, theme));
    lines.push(health_counts(s, theme));
    lines.push(Line::raw(""));
    if width >= 70 {
        let name_w = width.saturating_sub(52).clamp(12, 40);
        // 52 = marks, spaces and the fixed columns SYNC 9, HEALTH 11, REV 7, TARGET 6, AUTO 4, LAST 7.
        lines.push(Line::styled(
            format!(
                "  {:<name_w$} {:<9} {:<11} {:<7} {:<6} {:<4} {}",
                "APP", "SYNC", "HEALTH", "REV", "TARGET", "AUTO", "LAST"
            ),
            theme.title(),
        ));
        for a in &s.apps {
            let sev = a.severity();
            let last = a
                .last_synced_at
                .map(|t| format_age(age_secs(now, t)))
                .unwrap_or_else(|| "-".into());
            let row = format!(
                "{} {:<name_w$} {:<9} {:<11} {:<7} {:<6} {:<4} {last}",
                mark(sev),
                truncate(&a.name, name_w),
                a.sync.as_str(),
                a.health.as_str(),
                truncate(&a.revision_short(), 7),
                truncate(&a.target_revision, 6),
                if a.auto_sync { "on" } else { "off" },
            );
            lines.push(Line::styled(truncate(&row, width), theme.severity(sev)));
        }
    } else {
        for a in &s.apps {
            let sev = a.severity();
            lines.push(Line::from(vec![
                styled(format!("{} ", mark(sev)), theme.severity(sev)),
                Span::raw(truncate(&a.name, width.saturating_sub(2))),
            ]));
            lines.push(Line::styled(
                truncate(
                    &format!(
                        "  {} {} {} auto {}",
                        a.sync.as_str(),
                        a.health.as_str(),
                        a.revision_short().chars().take(7).collect::<String>(),
                        if a.auto_sync { "on" } else { "off" }
                    ),
                    width,
                ),
                theme.dim(),
            ));
        }
    }
    let mut ordered: Vec<&AppSummary> = s.attention();
    ordered.extend(s.apps.iter().filter(|a| a.is_ok()));
    for a in ordered {
        lines.push(Line::raw(""));
        lines.extend(app_detail(a, s.ci_synced(&a.name), width, now, theme));
    }
    lines
}
