//! Puts the drill-down's pure views (`ui::drill`) on screen from the console state, and a
//! scale's count prompt.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Theme, drill};
use crate::app::{AppState, View};
use crate::model::Severity;

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let cluster = |i: usize| {
        state
            .clusters
            .get(i)
            .map_or(("?", false), |c| (c.name.as_str(), c.protected))
    };
    let now = state.now;
    match state.view {
        View::Pods(_) => {
            let Some(p) = &state.drill.pods else { return };
            let (name, protected) = cluster(p.cluster);
            let view = drill::PodsView {
                table: &p.table,
                cluster: name,
                protected,
                offset: 0,
                filter_editing: p.editing.is_some(),
                now,
            };
            drill::pods_table(frame, area, &view, theme);
        }
        View::Pod => {
            let Some(p) = &state.drill.pod else { return };
            let (name, protected) = cluster(p.cluster);
            match (&p.detail, &p.error) {
                (Some(d), _) => {
                    drill::pod_detail(frame, area, name, protected, d, &p.events, now, theme)
                }
                (None, Some(e)) => frame.render_widget(
                    Paragraph::new(Line::styled(
                        format!("{}/{}: {e}", p.namespace, p.name),
                        theme.severity(Some(Severity::Crit)),
                    )),
                    area,
                ),
                (None, None) => frame.render_widget(
                    Paragraph::new(Line::styled(
                        format!("loading {}/{}…", p.namespace, p.name),
                        theme.dim(),
                    )),
                    area,
                ),
            }
        }
        View::Logs => {
            let Some(l) = &state.drill.logs else { return };
            let (name, protected) = cluster(l.cluster);
            let search = l.searching.as_deref().unwrap_or(&l.search);
            let view = drill::LogsView {
                buffer: &l.buffer,
                cluster: name,
                protected,
                namespace: &l.namespace,
                pod: &l.pod,
                container: &l.container,
                previous: l.previous,
                following: l.following,
                wrap: l.wrap,
                search,
                scroll: l.scroll,
                note: l.status.as_deref(),
            };
            drill::logs(frame, area, &view, theme);
        }
        View::Events => {
            let Some(e) = &state.drill.events else { return };
            let (name, protected) = cluster(e.cluster);
            if let Some(msg) = loading_or_error(e.loading, e.error.as_deref()) {
                frame.render_widget(Paragraph::new(Line::styled(msg, theme.dim())), area);
                return;
            }
            let offset = drill::scroll_to(
                e.selected,
                0,
                area.height.saturating_sub(2) as usize,
                e.rows.len(),
            );
            let view = drill::EventsView {
                rows: &e.rows,
                cluster: name,
                protected,
                selected: e.selected,
                offset,
                now,
            };
            drill::events(frame, area, &view, theme);
        }
        View::Workloads => {
            let Some(w) = &state.drill.workloads else {
                return;
            };
            let (name, protected) = cluster(w.cluster);
            if let Some(msg) = loading_or_error(w.loading, w.error.as_deref()) {
                frame.render_widget(Paragraph::new(Line::styled(msg, theme.dim())), area);
                return;
            }
            let offset = drill::scroll_to(
                w.selected,
                0,
                area.height.saturating_sub(2) as usize,
                w.rows.len(),
            );
            let view = drill::WorkloadsView {
                rows: &w.rows,
                cluster: name,
                protected,
                selected: w.selected,
                offset,
                now,
            };
            drill::workloads(frame, area, &view, theme);
        }
        _ => {}
    }
}

fn loading_or_error(loading: bool, error: Option<&str>) -> Option<String> {
    match (loading, error) {
        (_, Some(e)) => Some(e.to_string()),
        (true, None) => Some("loading…".into()),
        _ => None,
    }
}

/// A scale's count prompt: the new replica count, before the confirmation shows it.
pub fn render_count(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    use ratatui::widgets::{Block, Borders, Clear};
    let Some(p) = &state.drill.count else { return };
    let width = area.width.saturating_sub(4).min(72);
    let mut lines = vec![
        Line::raw(p.action.describe()),
        Line::raw(""),
        Line::raw(format!("New replica count (digits): {}_", p.count)),
    ];
    if let Some(e) = &p.error {
        lines.push(Line::styled(
            e.clone(),
            theme.severity(Some(crate::model::Severity::Crit)),
        ));
    }
    lines.push(Line::from(vec![
        Span::styled("enter", theme.key()),
        Span::raw(" next (shows the change to confirm)   "),
        Span::styled("esc", theme.key()),
        Span::raw(" cancel"),
    ]));
    let inner_w = width.saturating_sub(2);
    let text = Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false });
    let height = (u16::try_from(text.line_count(inner_w)).unwrap_or(u16::MAX) + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Scale ")
        .border_style(theme.title());
    frame.render_widget(text.block(block), rect);
}
