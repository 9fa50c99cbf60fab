//! The overview: every cluster side by side (compact down to 80 columns), or one at a time
//! with a tab line when the terminal is narrower.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{MIN_COLUMN, Theme, styled, tiles, truncate};
use crate::app::{AppState, ClusterView};
use crate::model::{PodSummary, Severity, age_secs, format_age};

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let n = state.clusters.len();
    if n == 0 {
        return;
    }
    let side_by_side = area.width >= 80 && (area.width as usize + 1) / n > MIN_COLUMN as usize;
    if side_by_side {
        let mut constraints = Vec::new();
        for i in 0..n {
            if i > 0 {
                constraints.push(Constraint::Length(1));
            }
            constraints.push(Constraint::Fill(1));
        }
        let cols = Layout::horizontal(constraints).split(area);
        for (i, c) in state.clusters.iter().enumerate() {
            let col = cols[i * 2];
            if i > 0 {
                let sep = cols[i * 2 - 1];
                let bar: Vec<Line> = (0..sep.height)
                    .map(|_| Line::styled("│", theme.dim()))
                    .collect();
                frame.render_widget(Paragraph::new(bar), sep);
            }
            let lines = column(
                c,
                state,
                col.width as usize,
                col.height as usize,
                i == state.focus && n > 1,
                theme,
            );
            frame.render_widget(Paragraph::new(lines), col);
        }
    } else {
        let [tabs, body] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
        let mut spans = Vec::new();
        for (i, c) in state.clusters.iter().enumerate() {
            let marker = if c.protected { " [PROD]" } else { "" };
            let label = format!(" {}{marker} ", c.name);
            let style = if i == state.focus {
                theme.header(c.protected, true)
            } else {
                theme.severity(c.worst())
            };
            spans.push(Span::styled(label, style));
            spans.push(Span::raw(" "));
        }
        if let Some(k) = state
            .keymap
            .keys_for(state.mode(), crate::app::Action::FocusNextCluster)
            .first()
        {
            spans.push(styled(format!("({k}: switch)"), theme.dim()));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), tabs);
        if let Some(c) = state.clusters.get(state.focus) {
            let lines = column(
                c,
                state,
                body.width as usize,
                body.height as usize,
                false,
                theme,
            );
            frame.render_widget(Paragraph::new(lines), body);
        }
    }
}

/// The header line: name, `[PROD]`, worst severity; then context, API state and staleness.
pub(super) fn header(
    c: &ClusterView,
    state: &AppState,
    width: usize,
    focused: bool,
    theme: Theme,
) -> Vec<Line<'static>> {
    let worst = c.worst();
    let crit = c
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Crit)
        .count();
    let warn = c.findings.len() - crit;
    let verdict = match worst {
        Some(Severity::Crit) => format!("CRIT {crit}"),
        Some(Severity::Warn) => format!("WARN {warn}"),
        None if c.reachable.is_none() => "…".to_string(),
        None => "OK".to_string(),
    };
    let mark = if focused { "▸ " } else { "" };
    let prod = if c.protected { " [PROD]" } else { "" };
    let ro = if c.read_only { " [RO]" } else { "" };
    let left = format!("{mark}{}{prod}{ro}", c.name);
    let pad = width.saturating_sub(left.chars().count() + verdict.len() + 2);
    let head = Line::from(vec![
        Span::styled(
            format!(" {left}{} ", " ".repeat(pad)),
            theme.header(c.protected, focused),
        ),
        Span::styled(verdict, theme.severity(worst)),
    ]);
    let api = match (c.reachable, &c.kube_stale) {
        (None, _) => styled("API connecting…", theme.dim()),
        (Some(true), _) => styled("API ok", theme.severity(None)),
        (Some(false), stale) => styled(
            api_failing_label(stale.as_ref().map(|s| s.reason.as_str())),
            theme.severity(Some(Severity::Crit)),
        ),
    };
    let mut lines = vec![
        head,
        Line::from(vec![
            styled(format!("ctx {} · ", c.context), theme.dim()),
            api,
        ]),
    ];
    if let Some(stale) = &c.kube_stale {
        let since = stale.since.strftime("%H:%M:%S").to_string();
        let age = format_age(age_secs(state.now, stale.since));
        let text = format!("stale since {since} ({age}): {}", stale.reason);
        lines.push(Line::styled(truncate(&text, width), theme.stale()));
    }
    lines
}

fn pod_lines(p: &PodSummary, state: &AppState, width: usize, theme: Theme) -> Vec<Line<'static>> {
    let reason = p.reason.map_or("", |r| r.as_str());
    let age = p.age_s(state.now).map(format_age).unwrap_or_default();
    let sev = match p.reason {
        Some(crate::model::PodReason::Pending | crate::model::PodReason::NotReady) => {
            Some(Severity::Warn)
        }
        _ => Some(Severity::Crit),
    };
    if width >= 70 {
        let tail = format!(" {reason:<16} {:>4}↻ {age:>6}", p.restarts);
        let name = truncate(
            &format!("{}/{}", p.namespace, p.name),
            width.saturating_sub(tail.chars().count() + 1),
        );
        let pad = width.saturating_sub(name.chars().count() + tail.chars().count() + 1);
        vec![Line::from(vec![
            Span::raw(format!(" {name}{}", " ".repeat(pad))),
            Span::styled(tail, theme.severity(sev)),
        ])]
    } else {
        vec![
            Line::raw(format!(" {}", truncate(&p.name, width.saturating_sub(1)))),
            Line::from(vec![
                Span::styled(format!("   {reason}"), theme.severity(sev)),
                styled(
                    format!("  {}↻  {age}  {}", p.restarts, truncate(&p.namespace, 18)),
                    theme.dim(),
                ),
            ]),
        ]
    }
}

/// One cluster's column, fitted to `height` lines: the unhealthy list gives way first.
pub(super) fn column(
    c: &ClusterView,
    state: &AppState,
    width: usize,
    height: usize,
    focused: bool,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut top = header(c, state, width, focused, theme);
    let mut bottom: Vec<Line<'static>> = Vec::new();
    let mut middle: Vec<Line<'static>> = Vec::new();
    let mut hidden = 0usize;
    match &c.kube {
        None => {
            let text = if c.kube_stale.is_some() {
                "no data yet"
            } else {
                "waiting for the first answer…"
            };
            top.push(Line::styled(format!(" {text}"), theme.dim()));
        }
        Some(snap) => {
            let k = &snap.counts;
            top.push(Line::from(vec![
                Span::styled("Pods ", theme.title()),
                Span::raw(format!(
                    "{}  run {} pend {} fail {} done {}",
                    k.total, k.running, k.pending, k.failed, k.succeeded
                )),
            ]));
            top.push(Line::from(vec![
                Span::raw(format!("ready {}/{}  ", k.ready, k.total)),
                Span::styled(
                    format!("crashloop {}", k.crashloop),
                    theme.severity((k.crashloop > 0).then_some(Severity::Crit)),
                ),
                Span::raw(format!("  restarts {}", k.restarts)),
            ]));
            let degraded: Vec<_> = snap.degraded_workloads().collect();
            if degraded.is_empty() {
                bottom.push(Line::from(vec![
                    Span::styled("Workloads ", theme.title()),
                    Span::styled(
                        format!("{} all available", snap.workloads.len()),
                        theme.severity(None),
                    ),
                ]));
            } else {
                bottom.push(Line::styled(
                    format!("Workloads below desired ({})", degraded.len()),
                    theme.title(),
                ));
                for w in degraded.iter().take(3) {
                    let sev = if w.available == 0 {
                        Severity::Crit
                    } else {
                        Severity::Warn
                    };
                    let text = if width >= 60 {
                        format!(" {} {}/{}", w.kind, w.namespace, w.name)
                    } else {
                        format!(" {} {}", w.kind, w.name)
                    };
                    let count = format!(" {}/{}", w.available, w.desired);
                    bottom.push(Line::from(vec![
                        Span::raw(truncate(&text, width.saturating_sub(count.len()))),
                        Span::styled(count, theme.severity(Some(sev))),
                    ]));
                }
                if degraded.len() > 3 {
                    bottom.push(Line::styled(
                        format!("  +{} more", degraded.len() - 3),
                        theme.dim(),
                    ));
                }
            }
            let troubled: Vec<_> = snap.troubled_nodes().collect();
            if troubled.is_empty() {
                bottom.push(Line::from(vec![
                    Span::styled("Nodes ", theme.title()),
                    Span::styled(
                        format!("{} all Ready", snap.nodes.len()),
                        theme.severity(None),
                    ),
                ]));
            } else {
                for n in troubled {
                    let mut what = Vec::new();
                    if !n.ready {
                        what.push("NotReady".to_string());
                    }
                    what.extend(n.pressure.iter().cloned());
                    let sev = if n.ready {
                        Severity::Warn
                    } else {
                        Severity::Crit
                    };
                    bottom.push(Line::from(vec![
                        Span::styled("Node ", theme.title()),
                        Span::raw(format!("{} ", n.name)),
                        Span::styled(what.join(", "), theme.severity(Some(sev))),
                    ]));
                }
            }
        }
    }
    bottom.extend(panel_tiles(
        c,
        state,
        width,
        height.saturating_sub(top.len() + bottom.len() + 3),
        theme,
    ));
    let room = height.saturating_sub(top.len() + bottom.len());
    let per_pod = if width >= 70 { 1 } else { 2 };
    let mut unhealthy_rows = 0;
    if let Some(snap) = &c.kube {
        if snap.unhealthy.is_empty() {
            middle.push(Line::styled("No unhealthy pods", theme.severity(None)));
        } else {
            middle.push(Line::styled(
                format!("Unhealthy pods ({})", snap.unhealthy.len()),
                theme.title(),
            ));
            // Only the pods that can fit are formatted: one more than the room holds is
            // enough to know the list must be cut (a cluster may have thousands).
            for p in snap.unhealthy_pods().take(room / per_pod + 1) {
                middle.extend(pod_lines(p, state, width, theme));
            }
            unhealthy_rows = snap.unhealthy.len() * per_pod;
        }
    }
    if middle.len() > room {
        let keep = room.saturating_sub(1);
        let shown_rows = keep.saturating_sub(1) / per_pod * per_pod;
        hidden = (unhealthy_rows - shown_rows) / per_pod;
        middle.truncate(1 + shown_rows);
        if room == 0 {
            middle.clear();
        }
    }
    let mut lines = top;
    lines.extend(middle);
    if hidden > 0 && room > 0 {
        lines.push(Line::styled(
            format!("  +{hidden} more (enter)"),
            theme.dim(),
        ));
    }
    let fill = height.saturating_sub(lines.len() + bottom.len());
    lines.extend((0..fill).map(|_| Line::raw("")));
    lines.extend(bottom);
    lines
}

/// The data panels under the Kubernetes part of a column, sharing `room` lines: configured
/// panels get an equal share (2 to 12 lines), the others one "not configured" line.
fn panel_tiles(
    c: &ClusterView,
    state: &AppState,
    width: usize,
    room: usize,
    theme: Theme,
) -> Vec<Line<'static>> {
    type Tile<'a> = Box<dyn Fn(usize) -> Vec<Line<'static>> + 'a>;
    let now = state.now;
    let panels: [(&str, bool, Tile); 4] = [
        (
            "PgBouncer",
            c.pgbouncer.configured,
            Box::new(|h| {
                tiles::pgbouncer::tile(
                    c.pgbouncer.data.as_deref(),
                    c.pgbouncer.stale.as_ref(),
                    width,
                    h,
                    now,
                    theme,
                )
            }),
        ),
        (
            "Redis",
            c.redis.configured,
            Box::new(|h| {
                tiles::redis::tile(
                    c.redis.data.as_deref(),
                    c.redis.stale.as_ref(),
                    width,
                    h,
                    now,
                    theme,
                )
            }),
        ),
        (
            "Backups",
            c.backups.configured,
            Box::new(|h| {
                tiles::backups::tile(
                    c.backups.data.as_deref(),
                    c.backups.stale.as_ref(),
                    width,
                    h,
                    now,
                    theme,
                )
            }),
        ),
        (
            "ArgoCD",
            c.argocd.configured,
            Box::new(|h| {
                tiles::argocd::tile(
                    c.argocd.data.as_deref(),
                    c.argocd.stale.as_ref(),
                    width,
                    h,
                    now,
                    theme,
                )
            }),
        ),
    ];
    let configured = panels.iter().filter(|p| p.1).count();
    let per = room
        .saturating_sub(panels.len() - configured)
        .checked_div(configured)
        .map_or(0, |p| p.clamp(2, 12));
    let mut out = Vec::new();
    for (name, on, tile) in &panels {
        if *on {
            let mut lines = tile(per);
            lines.truncate(per);
            out.extend(lines);
        } else {
            out.push(Line::from(vec![
                Span::styled(format!("{name:<10}"), theme.title()),
                styled("not configured", theme.dim()),
            ]));
        }
    }
    out
}

/// What the header says about a failing API, from the reason its source gives: a server that
/// answered with an error is `API failing` (it is there), one that is silent is
/// `API not answering`, one that cannot be reached is `API unreachable`.
pub fn api_failing_label(reason: Option<&str>) -> &'static str {
    match reason {
        Some(r) if r.contains("answered ") || r.contains("unreadable") => "API failing",
        Some(r) if r.starts_with("no answer") || r.starts_with("no complete answer") => {
            "API not answering"
        }
        _ => "API unreachable",
    }
}
