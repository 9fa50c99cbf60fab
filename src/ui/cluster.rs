//! One cluster in full: header, every unhealthy pod, every workload below desired, every node,
//! and the cluster's findings. (The pods table and drill-down come with their own view.)

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::overview::header;
use super::{Theme, scrolled, styled, truncate};
use crate::app::AppState;
use crate::model::{Severity, age_secs, format_age};

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, index: usize, theme: Theme) {
    let Some(c) = state.clusters.get(index) else {
        return;
    };
    let width = area.width as usize;
    let head = header(c, state, width, false, theme);
    let [top, body] =
        Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(head), top);
    let mut lines: Vec<Line> = Vec::new();
    // Only the rows that can be on screen are formatted; the others are empty placeholders,
    // so a cluster with thousands of unhealthy pods still draws in well under a millisecond.
    let total = match &c.kube {
        None => 1,
        Some(snap) => {
            1 + snap.unhealthy.len() + 2 + snap.degraded_workloads().count() + 2 + snap.nodes.len()
        }
    } + 2
        + c.findings.len();
    let page = body.height as usize;
    let first = state.scroll.min(total.saturating_sub(page));
    let shown = |at: usize| at >= first && at < first + page;
    match &c.kube {
        None => lines.push(Line::styled(
            "No data from the Kubernetes API yet.",
            theme.dim(),
        )),
        Some(snap) => {
            let unhealthy: Vec<_> = snap.unhealthy_pods().collect();
            lines.push(Line::styled(
                format!(
                    "Unhealthy pods ({} of {})",
                    unhealthy.len(),
                    snap.counts.total
                ),
                theme.title(),
            ));
            for p in unhealthy {
                if !shown(lines.len()) {
                    lines.push(Line::default());
                    continue;
                }
                let reason = p.reason.map_or("", |r| r.as_str());
                let age = p.age_s(state.now).map(format_age).unwrap_or_default();
                let tail = format!(
                    " {reason:<16} {:>4}↻ {age:>6} {}",
                    p.restarts,
                    p.node.as_deref().unwrap_or("-")
                );
                let name = truncate(
                    &format!(" {}/{}", p.namespace, p.name),
                    width.saturating_sub(tail.chars().count()),
                );
                let pad = width.saturating_sub(name.chars().count() + tail.chars().count());
                lines.push(Line::from(vec![
                    Span::raw(format!("{name}{}", " ".repeat(pad))),
                    Span::styled(tail, theme.severity(Some(Severity::Crit))),
                ]));
            }
            lines.push(Line::raw(""));
            let degraded: Vec<_> = snap.degraded_workloads().collect();
            lines.push(Line::styled(
                format!(
                    "Workloads below desired ({} of {})",
                    degraded.len(),
                    snap.workloads.len()
                ),
                theme.title(),
            ));
            for w in degraded {
                lines.push(Line::raw(format!(
                    " {:<12} {}/{}  {}/{} available",
                    w.kind, w.namespace, w.name, w.available, w.desired
                )));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                format!("Nodes ({})", snap.nodes.len()),
                theme.title(),
            ));
            for n in &snap.nodes {
                let state_text = if n.ready { "Ready" } else { "NotReady" };
                let sev = if !n.ready {
                    Some(Severity::Crit)
                } else if n.pressure.is_empty() {
                    None
                } else {
                    Some(Severity::Warn)
                };
                let extra = if n.pressure.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", n.pressure.join(", "))
                };
                lines.push(Line::from(vec![
                    Span::raw(format!(" {} ", n.name)),
                    styled(format!("{state_text}{extra}"), theme.severity(sev)),
                ]));
            }
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Findings ({})", c.findings.len()),
        theme.title(),
    ));
    for f in &c.findings {
        if !shown(lines.len()) {
            lines.push(Line::default());
            continue;
        }
        let age = format_age(age_secs(state.now, f.since));
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {:<4} ", f.severity.label()),
                theme.severity(Some(f.severity)),
            ),
            Span::raw(f.message.clone()),
            styled(format!("  ({age})"), theme.dim()),
        ]));
    }
    let (visible, _) = scrolled(lines, body, state.scroll);
    frame.render_widget(Paragraph::new(visible), body);
}
