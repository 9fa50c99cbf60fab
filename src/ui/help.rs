//! The help overlay, generated from the active keymap (never from hard-coded text).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Theme, scrolled};
use crate::app::AppState;

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let width = area.width.min(64);
    let height = area.height;
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y,
        width,
        height,
    };
    let mut lines = Vec::new();
    let mut last_mode = None;
    for (mode, action, keys) in state.keymap.help_entries() {
        if last_mode != Some(mode) {
            if last_mode.is_some() {
                lines.push(Line::raw(""));
            }
            lines.push(Line::styled(format!("{} keys", mode.name()), theme.title()));
            last_mode = Some(mode);
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<16}", keys.join(" ")), theme.key()),
            Span::raw(action.description()),
        ]));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Help · keys from the active keymap ");
    let inner = block.inner(popup);
    let (visible, _) = scrolled(lines, inner, state.scroll);
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(visible).block(block), popup);
}

/// The which-key hint: after the first key of a sequence, what may follow and what it does.
pub fn which_key(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let next = state.keymap.continuations(state.mode(), &state.pending);
    let height = (next.len() as u16 + 2).min(area.height);
    let width = area.width.min(48);
    let rect = Rect {
        x: area.x + area.width - width,
        y: area.y + area.height - height,
        width,
        height,
    };
    let title = format!(
        " {} … (esc cancels) ",
        crate::keymap::keys_text(&state.pending)
    );
    let lines: Vec<Line> = next
        .iter()
        .map(|(k, a)| {
            Line::from(vec![
                Span::styled(format!(" {k:<6}"), theme.key()),
                Span::raw(a.description()),
            ])
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        rect,
    );
}
