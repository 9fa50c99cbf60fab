//! The cluster's Warning events, deduplicated by reason and object, newest first.

use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{header, selected_style};
use crate::drill::events::EventRow;
use crate::model::{age_secs, format_age};
use crate::ui::{Theme, truncate};

#[derive(Debug, Clone, Copy)]
pub struct EventsView<'a> {
    pub rows: &'a [EventRow],
    pub cluster: &'a str,
    pub protected: bool,
    pub selected: usize,
    pub offset: usize,
    pub now: Timestamp,
}

/// Draws the events table; returns the offset used.
pub fn events(frame: &mut Frame, area: Rect, view: &EventsView, theme: Theme) -> usize {
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let total: u32 = view.rows.iter().map(|r| r.count).sum();
    frame.render_widget(
        Paragraph::new(Line::from(header(
            view.cluster,
            view.protected,
            &format!("warning events {} ({total} occurrences)", view.rows.len()),
            theme,
        ))),
        head,
    );
    let wide = body.width >= 100;
    let height = body.height.saturating_sub(1) as usize;
    let offset = super::scroll_to(view.selected, view.offset, height, view.rows.len());
    let mut constraints = vec![
        Constraint::Length(if wide { 6 } else { 4 }),
        Constraint::Length(if wide { 18 } else { 16 }),
        Constraint::Length(5),
        Constraint::Length(if wide { 40 } else { 30 }),
        Constraint::Min(10),
    ];
    let mut titles = vec!["LAST", "REASON", "COUNT", "OBJECT", "MESSAGE"];
    if wide {
        constraints.insert(1, Constraint::Length(18));
        titles.insert(1, "NAMESPACE");
    }
    let sizes = super::column_widths(body.width, &constraints);
    let w = |i: usize| {
        sizes
            .get(i + usize::from(wide && i > 0))
            .map_or(0, |w| *w as usize)
    };
    let widths: Vec<Constraint> = sizes.iter().map(|w| Constraint::Length(*w)).collect();
    let rows = view
        .rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, e)| {
            // Pods are most of what warns; the kind is noise when space is short.
            let object = if wide {
                e.object.as_str()
            } else {
                e.object.strip_prefix("Pod/").unwrap_or(&e.object)
            };
            let mut cells = vec![
                Cell::from(
                    e.last_seen
                        .map_or_else(|| "-".into(), |t| format_age(age_secs(view.now, t))),
                ),
                Cell::from(Span::styled(truncate(&e.reason, w(1)), theme.stale())),
                Cell::from(format!("{:>5}", e.count)),
                Cell::from(truncate(object, w(3))),
                Cell::from(truncate(&e.message, w(4))),
            ];
            if wide {
                cells.insert(1, Cell::from(truncate(&e.namespace, sizes[1] as usize)));
            }
            let row = Row::new(cells);
            if i == view.selected {
                row.style(selected_style())
            } else {
                row
            }
        });
    let table = Table::new(rows, widths)
        .header(Row::new(titles).style(theme.title()))
        .column_spacing(1);
    frame.render_widget(table, body);
    if view.rows.is_empty()
        && let Some(row) = body.rows().nth(1)
    {
        frame.render_widget(
            Paragraph::new(Span::styled("no warning events", theme.dim())),
            row,
        );
    }
    offset
}
