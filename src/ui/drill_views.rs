//! Puts the drill-down's pure views (`ui::drill`) on screen from the console state, and the
//! confirm modal of a quick action.

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

pub fn render_modal(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let Some(m) = &state.drill.modal else { return };
    let prod = if m.protected { " [PROD]" } else { "" };
    // The description names the cluster already; the badge below shows whether it is
    // protected, in the header's colours.
    let mut lines = vec![
        Line::raw(m.action.describe()),
        Line::from(vec![
            Span::raw("cluster "),
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
    super::confirm_box(
        frame,
        area,
        lines,
        m.typed.as_ref(),
        m.error.as_deref(),
        &m.action.cluster,
        theme,
    );
}
