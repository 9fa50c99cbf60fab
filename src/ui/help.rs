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
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
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
