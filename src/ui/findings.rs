//! The findings list: every finding of every cluster, newest first, with source and since.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Theme, scrolled, styled, wrap};
use crate::app::AppState;
use crate::model::{age_secs, format_age};

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let all = state.all_findings();
    let mut lines = Vec::new();
    let width = body.width as usize;
    for (ci, f) in &all {
        let c = &state.clusters[*ci];
        let since = f.since.strftime("%H:%M:%S").to_string();
        let age = format_age(age_secs(state.now, f.since));
        let prod = if c.protected { " [PROD]" } else { "" };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<4} ", f.severity.label()),
                theme.severity(Some(f.severity)),
            ),
            Span::styled(format!("{}{prod}", c.name), theme.title()),
            styled(
                format!("  {}  since {since} ({age})", f.source),
                theme.dim(),
            ),
        ]));
        for l in wrap(&f.message, width.saturating_sub(5)) {
            lines.push(Line::raw(format!("     {l}")));
        }
    }
    if all.is_empty() {
        lines.push(Line::styled(
            "No findings: nothing needs attention.",
            theme.severity(None),
        ));
    }
    let (visible, _) = scrolled(lines, body, state.scroll);
    let head = format!("Findings ({}) · newest first", all.len());
    frame.render_widget(Paragraph::new(Line::styled(head, theme.title())), title);
    frame.render_widget(Paragraph::new(visible), body);
}
