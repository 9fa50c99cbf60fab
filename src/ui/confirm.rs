//! The confirmation overlay (`app::confirm::Confirm`): a fixed header naming the target
//! cluster and context, a scrollable body with the action, the whole command and the
//! variables, and a fixed footer with the keys (from the active keymap) or the field to type.
//! The layout is `Confirm::geometry`, the same one the reducer scrolls with.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::Theme;
use crate::app::AppState;
use crate::app::confirm::{BodyRow, Confirm, Geometry, Proof, scroll_keys, soft_wrap};
use crate::model::Severity;

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let Some(c) = &state.confirm else { return };
    let g = c.geometry(area.width, area.height);
    let crit = theme.severity(Some(Severity::Crit));
    let w = g.inner_width;
    let head: Vec<Line> = match &c.target {
        Some(t) if c.head_text().chars().count() <= w => vec![Line::from(vec![
            Span::raw("cluster "),
            Span::styled(
                format!(
                    " {}{} ",
                    t.cluster,
                    if t.protected { " [PROD]" } else { "" }
                ),
                theme.header(t.protected, false),
            ),
            Span::raw(format!("  context {}", t.context)),
        ])],
        Some(t) => soft_wrap(&c.head_text(), w)
            .into_iter()
            .map(|l| Line::styled(l, theme.header(t.protected, false)))
            .collect(),
        None => vec![Line::styled(c.head_text(), theme.stale())],
    };
    let offset = visible_offset(c, &g);
    let body: Vec<Line> = c
        .body(w)
        .into_iter()
        .skip(offset)
        .take(usize::from(g.body_rows))
        .map(|row| match row {
            BodyRow::Blank => Line::raw(""),
            BodyRow::Text(t) => Line::raw(t),
            BodyRow::Heading(t) => Line::raw(t),
            BodyRow::Command { text, continued } => Line::from(vec![
                Span::styled(if continued { "┆ " } else { "│ " }, theme.dim()),
                Span::raw(text),
            ]),
            BodyRow::Var(t) => Line::styled(t, theme.dim()),
            BodyRow::Choice { text, selected } => {
                let style = if selected {
                    theme.title().add_modifier(Modifier::REVERSED)
                } else {
                    Style::new()
                };
                Line::styled(
                    format!("{} {text}", if selected { "▸" } else { " " }),
                    style,
                )
            }
        })
        .collect();
    let mut foot: Vec<Line> = Vec::new();
    for l in c.foot_text() {
        let style = if l.starts_with("waiting:") {
            theme.stale()
        } else {
            Style::new()
        };
        foot.extend(soft_wrap(&l, w).into_iter().map(|r| Line::styled(r, style)));
    }
    let height = (2
        + g.head_rows
        + g.body_rows
        + g.foot_rows
        + u16::from(c.typed())
        + u16::from(c.error.is_some())
        + 1)
    .min(area.height);
    let rect = Rect {
        x: area.x + (area.width - g.width) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width: g.width,
        height,
    };
    frame.render_widget(Clear, rect);
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(c.title.clone())
        .border_style(if c.typed() { crit } else { theme.title() });
    if g.max_scroll > 0 {
        block = block.title_bottom(format!(
            " lines {}–{} of {} ",
            offset + 1,
            offset + usize::from(g.body_rows),
            g.body_len
        ));
    }
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [head_a, body_a, foot_a, field_a, err_a, hints_a] = Layout::vertical([
        Constraint::Length(g.head_rows),
        Constraint::Length(g.body_rows),
        Constraint::Length(g.foot_rows),
        Constraint::Length(u16::from(c.typed())),
        Constraint::Length(u16::from(c.error.is_some())),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(head), head_a);
    frame.render_widget(Paragraph::new(body), body_a);
    frame.render_widget(Paragraph::new(foot), foot_a);
    if c.typed() {
        frame.render_widget(&c.input, field_a);
    }
    if let Some(e) = &c.error {
        frame.render_widget(Paragraph::new(Line::styled(e.clone(), crit)), err_a);
    }
    frame.render_widget(
        Paragraph::new(Line::from(hints(state, c, &g, theme))),
        hints_a,
    );
}

/// The first body row shown: the engineer's scroll, moved so a chosen entry is in view.
fn visible_offset(c: &Confirm, g: &Geometry) -> usize {
    let mut offset = c.scroll.min(g.max_scroll);
    let page = usize::from(g.body_rows).max(1);
    let chosen = c
        .body(g.inner_width)
        .iter()
        .position(|r| matches!(r, BodyRow::Choice { selected: true, .. }));
    if let Some(line) = chosen {
        if line < offset {
            offset = line;
        } else if line >= offset + page {
            offset = line + 1 - page;
        }
    }
    offset
}

/// The key hints: how to accept and cancel, and (when there is more than fits, or a choice)
/// the keymap's keys that scroll or choose.
fn hints(state: &AppState, c: &Confirm, g: &Geometry, theme: Theme) -> Vec<Span<'static>> {
    let mut spans = match &c.proof {
        Proof::Key => vec![
            Span::styled("y", theme.key()),
            Span::raw(format!(" {}   ", c.verb())),
            Span::styled("n/esc", theme.key()),
            Span::raw(" cancel"),
        ],
        Proof::Typed(_) => vec![
            Span::styled("enter", theme.key()),
            Span::raw(format!(" {}   ", c.verb())),
            Span::styled("esc", theme.key()),
            Span::raw(" cancel"),
        ],
    };
    if g.max_scroll > 0 || !c.choices.is_empty() {
        let (line_keys, page_keys) = scroll_keys(state, c);
        spans.push(Span::raw("   "));
        spans.push(Span::styled(line_keys.join("/"), theme.key()));
        spans.push(Span::raw(if c.choices.is_empty() {
            " scroll  "
        } else {
            " choose  "
        }));
        spans.push(Span::styled(page_keys.join("/"), theme.key()));
        spans.push(Span::raw(" page"));
    }
    spans
}
