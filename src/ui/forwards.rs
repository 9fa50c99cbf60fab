//! The forwards view: each shortcut with its cluster, target -> local address (a URL when it
//! has a scheme), state, open connections, bytes each way and age; then the internal forwards
//! that carry `service = ...` endpoints.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Theme, styled, truncate};
use crate::app::AppState;
use crate::forward::{ForwardState, ForwardStatus};
use crate::model::{Severity, age_secs, format_age};

/// `12.3 MiB`, `512 B`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn state_span(f: &ForwardStatus, theme: Theme) -> Span<'static> {
    let (text, sev) = match &f.state {
        ForwardState::Stopped => ("stopped".to_string(), None),
        ForwardState::Listening => ("listening".to_string(), None),
        ForwardState::Connected => ("connected".to_string(), None),
        ForwardState::Reconnecting(why) => (format!("reconnecting: {why}"), Some(Severity::Warn)),
        ForwardState::Failed(why) => (format!("failed: {why}"), Some(Severity::Crit)),
    };
    let style = if matches!(f.state, ForwardState::Stopped) {
        theme.dim()
    } else {
        theme.severity(sev)
    };
    Span::styled(text, style)
}

fn rows(
    f: &ForwardStatus,
    selected: bool,
    width: usize,
    now: jiff::Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mark = if selected { "▸ " } else { "  " };
    let name_style = if selected {
        theme.title().add_modifier(Modifier::REVERSED)
    } else {
        theme.title()
    };
    let key = f
        .key
        .as_deref()
        .map(|k| format!(" [{k}]"))
        .unwrap_or_default();
    let local = f.local_display().unwrap_or_else(|| "-".into());
    let mut first = vec![
        Span::styled(format!("{mark}{}/{}", f.cluster, f.name), name_style),
        styled(key, theme.key()),
        Span::raw("  "),
    ];
    // The local address first: it is what the engineer came for.
    let second_text = format!("    {local} <- {}", f.target);
    let stats = if f.state.is_running() {
        let age = f
            .started_at
            .map(|t| format_age(age_secs(now, t)))
            .unwrap_or_default();
        format!(
            "    {} open · in {} · out {} · up {age}{}",
            f.open_connections,
            format_bytes(f.bytes_in),
            format_bytes(f.bytes_out),
            f.pod
                .as_deref()
                .map(|p| format!(" · pod {p}"))
                .unwrap_or_default()
        )
    } else {
        String::new()
    };
    first.push(state_span(f, theme));
    let mut out = vec![Line::from(first), Line::raw(truncate(&second_text, width))];
    if !stats.is_empty() {
        out.push(Line::styled(truncate(&stats, width), theme.dim()));
    }
    out
}

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let width = body.width as usize;
    let Some(snap) = &state.forwards else {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "Port-forwards: none configured ([[forward]] in the config)",
                theme.title(),
            )),
            title,
        );
        return;
    };
    let up = snap
        .shortcuts
        .iter()
        .filter(|f| f.state.is_running())
        .count();
    let head = format!(
        "Port-forwards · {} shortcuts, {up} running · enter start/stop · y copy address",
        snap.shortcuts.len()
    );
    frame.render_widget(
        Paragraph::new(Line::styled(truncate(&head, width), theme.title())),
        title,
    );
    let mut lines: Vec<Line> = Vec::new();
    let mut cursor_line = 0;
    for (i, f) in snap.shortcuts.iter().enumerate() {
        if i == state.forward_cursor {
            cursor_line = lines.len();
        }
        lines.extend(rows(f, i == state.forward_cursor, width, state.now, theme));
    }
    if snap.shortcuts.is_empty() {
        lines.push(Line::styled(
            "No shortcuts: add [[forward]] entries to the config (see README, Port-forwards).",
            theme.dim(),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!(
            "Internal ({}): service endpoints of the data panels",
            snap.internal.len()
        ),
        theme.title(),
    ));
    for f in &snap.internal {
        lines.extend(rows(f, false, width, state.now, theme));
    }
    let page = body.height as usize;
    let offset = cursor_line.saturating_sub(page.saturating_sub(4));
    let visible: Vec<Line> = lines.into_iter().skip(offset).take(page).collect();
    frame.render_widget(Paragraph::new(visible), body);
}

#[cfg(test)]
mod tests {
    use super::format_bytes;

    #[test]
    fn sizes_read_like_the_rest_of_the_console() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(12_897_485), "12.3 MiB");
    }
}
