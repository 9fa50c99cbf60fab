//! A pod's detail: identity, each container's image, state, restarts, last termination and
//! probes, then its events newest first.

use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::header;
use crate::drill::events::EventRow;
use crate::drill::pod::PodDetail;
use crate::model::{age_secs, format_age};
use crate::ui::{Theme, truncate};

fn ago(now: Timestamp, t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".into(), |t| format_age(age_secs(now, t)))
}

/// Draws the detail of `pod` with its `events` (newest first) below.
#[allow(clippy::too_many_arguments)]
pub fn pod_detail(
    frame: &mut Frame,
    area: Rect,
    cluster: &str,
    protected: bool,
    pod: &PodDetail,
    events: &[EventRow],
    now: Timestamp,
    theme: Theme,
) {
    let width = area.width as usize;
    let mut lines: Vec<Line> = vec![Line::from(header(
        cluster,
        protected,
        &format!("pod {}/{}", pod.namespace, pod.name),
        theme,
    ))];
    let label = |s: &str| Span::styled(format!("{s:<9}"), theme.dim());
    lines.push(Line::from(vec![
        label("phase"),
        Span::raw(format!("{:<12}", pod.phase)),
        label("node"),
        Span::raw(format!(
            "{:<16}",
            pod.node.clone().unwrap_or_else(|| "<none>".into())
        )),
        label("age"),
        Span::raw(ago(now, pod.created)),
    ]));
    lines.push(Line::from(vec![
        label("ip"),
        Span::raw(format!(
            "{:<12}",
            pod.ip.clone().unwrap_or_else(|| "-".into())
        )),
        label("owner"),
        Span::raw(pod.owner.clone().unwrap_or_else(|| "-".into())),
    ]));
    for c in &pod.containers {
        lines.push(Line::raw(""));
        let state_style = if c.state == "Running" && c.ready {
            theme.severity(None)
        } else {
            theme.stale()
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{}{}", if c.init { "init " } else { "" }, c.name),
                theme.title(),
            ),
            Span::raw("  "),
            Span::styled(c.state.clone(), state_style),
            Span::styled(
                format!(
                    "{} · restarts {}",
                    c.state_since
                        .map(|t| format!(" for {}", format_age(age_secs(now, t))))
                        .unwrap_or_default(),
                    c.restarts
                ),
                theme.dim(),
            ),
        ]));
        lines.push(Line::from(vec![
            label("  image"),
            Span::raw(truncate(&c.image, width.saturating_sub(9))),
        ]));
        if let Some((reason, code)) = &c.last_termination {
            lines.push(Line::from(vec![
                label("  last"),
                Span::styled(
                    format!(
                        "{reason}, exit code {code}, {} ago",
                        ago(now, c.last_finished)
                    ),
                    theme.stale(),
                ),
            ]));
        }
        if !c.probes.is_empty() {
            lines.push(Line::from(vec![
                label("  probes"),
                Span::raw(truncate(&c.probes, width.saturating_sub(9))),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("Events ({})", events.len()),
        theme.title(),
    ));
    let [top, rest] =
        Layout::vertical([Constraint::Length(lines.len() as u16), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(lines), top);
    let ev_lines: Vec<Line> = if events.is_empty() {
        vec![Line::styled("no events", theme.dim())]
    } else {
        events
            .iter()
            .take(rest.height as usize)
            .map(|e| event_line(e, now, width, theme))
            .collect()
    };
    frame.render_widget(Paragraph::new(ev_lines), rest);
}

/// One event line: age, type, reason, count, message.
pub(super) fn event_line(
    e: &EventRow,
    now: Timestamp,
    width: usize,
    theme: Theme,
) -> Line<'static> {
    let style = if e.is_warning() {
        theme.stale()
    } else {
        theme.dim()
    };
    let head = format!(
        "{:>6} {:<7} {:<18} ×{:<4} ",
        ago(now, e.last_seen),
        e.type_,
        truncate(&e.reason, 18),
        e.count
    );
    let rest = width.saturating_sub(head.chars().count());
    Line::from(vec![
        Span::styled(head, style),
        Span::raw(truncate(&e.message, rest)),
    ])
}
