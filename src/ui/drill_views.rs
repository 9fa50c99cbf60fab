//! Puts the drill-down's pure views (`ui::drill`) on screen from the console state, and the
//! confirm modal of a quick action.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

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

pub fn render_modal(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let Some(m) = &state.drill.modal else { return };
    let prod = if m.protected { " [PROD]" } else { "" };
    let width = area.width.saturating_sub(4).min(72);
    let mut lines = vec![
        Line::from(vec![
            Span::raw(format!("{} on ", m.action.describe())),
            Span::styled(
                format!(" {}{prod} ", m.action.cluster),
                theme.header(m.protected, false),
            ),
        ]),
        Line::raw(""),
    ];
    if let Some(count) = &m.count {
        lines.push(Line::raw(format!("New replica count (digits): {count}_")));
    }
    let typed_h = if m.typed.is_some() { 3 } else { 1 };
    let height = (lines.len() as u16 + typed_h + 3).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    let title = if m.typed.is_some() {
        " Confirm: type the cluster name "
    } else {
        " Confirm "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(if m.typed.is_some() {
            theme.severity(Some(Severity::Crit))
        } else {
            theme.title()
        });
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let err = m
        .error
        .clone()
        .map(|e| Line::styled(e, theme.severity(Some(Severity::Crit))));
    match &m.typed {
        None => {
            lines.push(Line::from(vec![
                Span::styled("y/enter", theme.key()),
                Span::raw(" do it   "),
                Span::styled("n/esc", theme.key()),
                Span::raw(" cancel"),
            ]));
            lines.extend(err);
            frame.render_widget(Paragraph::new(lines), inner);
        }
        Some(input) => {
            lines.push(Line::raw(format!(
                "Type {} and press enter (esc cancels):",
                m.action.cluster
            )));
            let text_h = lines.len() as u16;
            let [t, field, e] = Layout::vertical([
                Constraint::Length(text_h),
                Constraint::Length(1),
                Constraint::Min(0),
            ])
            .areas(inner);
            frame.render_widget(Paragraph::new(lines), t);
            frame.render_widget(input, field);
            if let Some(err) = err {
                frame.render_widget(Paragraph::new(err), e);
            }
        }
    }
}
