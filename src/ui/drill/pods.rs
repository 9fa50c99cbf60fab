//! The pods table: virtualized (only the rows that fit are built), unhealthy rows marked.

use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{header, selected_style};
use crate::drill::pods::{NamespaceScope, PodColumn, PodTable};
use crate::ui::{Theme, truncate};

/// What the pods table needs besides the model.
#[derive(Debug, Clone, Copy)]
pub struct PodsView<'a> {
    pub table: &'a PodTable,
    pub cluster: &'a str,
    pub protected: bool,
    /// The first visible row last time (the view keeps the selection in sight from there).
    pub offset: usize,
    /// The filter is being typed: show a cursor after it.
    pub filter_editing: bool,
    pub now: Timestamp,
}

/// Draws the table; returns the offset used, for the next frame.
pub fn pods_table(frame: &mut Frame, area: Rect, view: &PodsView, theme: Theme) -> usize {
    let [head, status, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(area);
    let t = view.table;
    let ns = match t.scope() {
        NamespaceScope::All => "all namespaces".to_string(),
        NamespaceScope::One(n) => format!("namespace {n}"),
    };
    let title = format!("pods {}/{} · {ns}", t.len(), t.total());
    frame.render_widget(
        Paragraph::new(Line::from(header(
            view.cluster,
            view.protected,
            &title,
            theme,
        ))),
        head,
    );
    let sort = t.sort();
    let mut spans = vec![Span::styled(
        format!(
            "sort {} {}",
            sort.column.title().to_lowercase(),
            if sort.descending { "↓" } else { "↑" }
        ),
        theme.dim(),
    )];
    if view.filter_editing || !t.filter().is_empty() {
        spans.push(Span::raw("  /"));
        spans.push(Span::styled(t.filter().text().to_string(), theme.key()));
        if view.filter_editing {
            spans.push(Span::raw("▏"));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), status);

    let wide = body.width >= 100;
    let one_ns = matches!(t.scope(), NamespaceScope::One(_));
    let columns: Vec<PodColumn> = PodColumn::ALL
        .into_iter()
        .filter(|c| wide || *c != PodColumn::Node)
        .filter(|c| !one_ns || *c != PodColumn::Namespace)
        .collect();
    let constraints: Vec<Constraint> = columns
        .iter()
        .map(|c| match c {
            PodColumn::Namespace => Constraint::Length(if wide { 20 } else { 12 }),
            PodColumn::Name => Constraint::Min(20),
            PodColumn::Ready => Constraint::Length(5),
            PodColumn::Status => Constraint::Length(16),
            PodColumn::Restarts => Constraint::Length(if wide { 8 } else { 4 }),
            PodColumn::Age => Constraint::Length(if wide { 6 } else { 5 }),
            PodColumn::Node => Constraint::Length(16),
        })
        .collect();
    let sizes = super::column_widths(body.width, &constraints);
    let width_of = |c: PodColumn| {
        columns
            .iter()
            .position(|x| *x == c)
            .and_then(|i| sizes.get(i))
            .map_or(0, |w| *w as usize)
    };
    let widths: Vec<Constraint> = sizes.iter().map(|w| Constraint::Length(*w)).collect();
    let header_row = Row::new(columns.iter().map(|c| {
        let mark = if *c == sort.column {
            if sort.descending { "↓" } else { "↑" }
        } else {
            ""
        };
        let title = if *c == PodColumn::Restarts && !wide {
            "RST"
        } else {
            c.title()
        };
        Cell::from(format!("{title}{mark}"))
    }))
    .style(theme.title());
    let height = body.height.saturating_sub(1) as usize;
    let offset = super::scroll_to(t.selected(), view.offset, height, t.len());
    let rows = t
        .window(offset, height, view.now)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let status_style = if r.unhealthy {
                theme.stale()
            } else {
                theme.dim()
            };
            let cells = columns.iter().map(|c| match c {
                PodColumn::Namespace => {
                    Cell::from(truncate(&r.namespace, width_of(PodColumn::Namespace)))
                }
                PodColumn::Name => Cell::from(truncate(&r.name, width_of(PodColumn::Name))),
                PodColumn::Ready => Cell::from(r.ready),
                PodColumn::Status => Cell::from(Span::styled(r.status, status_style)),
                PodColumn::Restarts => Cell::from(r.restarts.to_string()),
                PodColumn::Age => Cell::from(r.age.clone()),
                PodColumn::Node => Cell::from(truncate(&r.node, width_of(PodColumn::Node))),
            });
            let row = Row::new(cells);
            if offset + i == t.selected() {
                row.style(selected_style())
            } else {
                row
            }
        });
    let table = Table::new(rows, widths)
        .header(header_row)
        .column_spacing(1);
    frame.render_widget(table, body);
    if t.is_empty() {
        let msg = if t.total() == 0 {
            "no pods"
        } else {
            "no pod matches the filter"
        };
        if let Some(row) = body.rows().nth(1) {
            frame.render_widget(Paragraph::new(Span::styled(msg, theme.dim())), row);
        }
    }
    offset
}
