//! The log tail: the newest lines that fit (or from a scroll position), wrapped or cut,
//! with search matches highlighted.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::header;
use crate::drill::logs::{LogBuffer, match_ranges};
use crate::ui::Theme;

#[derive(Debug, Clone, Copy)]
pub struct LogsView<'a> {
    pub buffer: &'a LogBuffer,
    pub cluster: &'a str,
    pub protected: bool,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    /// Showing the previous (crashed) instance.
    pub previous: bool,
    /// The stream is live.
    pub following: bool,
    pub wrap: bool,
    /// Highlighted; smart case (lowercase matches any case).
    pub search: &'a str,
    /// `None` sticks to the newest line; `Some(i)` starts at buffer line `i`.
    pub scroll: Option<usize>,
    /// Why the stream is not live (ended, error), shown in the status line.
    pub note: Option<&'a str>,
}

fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
}

/// `line` as (text, highlighted) segments.
fn segments<'l>(line: &'l str, search: &str) -> Vec<(&'l str, bool)> {
    let fold = !search.chars().any(char::is_uppercase);
    let mut out = Vec::new();
    let mut at = 0;
    for (s, e) in match_ranges(line, search, fold) {
        if s > at {
            out.push((&line[at..s], false));
        }
        out.push((&line[s..e], true));
        at = e;
    }
    if at < line.len() || out.is_empty() {
        out.push((&line[at..], false));
    }
    out
}

/// The visual lines of one log line: cut to `width`, or wrapped into several.
fn visual(line: &str, search: &str, width: usize, wrap: bool) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for (text, hit) in segments(line, search) {
        let style = if hit { highlight() } else { Style::new() };
        let mut chunk = String::new();
        for ch in text.chars() {
            if used == width {
                if !wrap {
                    break;
                }
                cur.push(Span::styled(std::mem::take(&mut chunk), style));
                lines.push(Line::from(std::mem::take(&mut cur)));
                used = 0;
            }
            chunk.push(ch);
            used += 1;
        }
        if !chunk.is_empty() {
            cur.push(Span::styled(chunk, style));
        }
        if !wrap && used == width {
            break;
        }
    }
    if !wrap && line.chars().count() > width {
        // Mark the cut: the last cell becomes `…`.
        if let Some(last) = cur.last_mut() {
            let mut t = last.content.to_string();
            t.pop();
            t.push('…');
            last.content = t.into();
        }
    }
    lines.push(Line::from(cur));
    lines
}

/// Draws the log view.
pub fn logs(frame: &mut Frame, area: Rect, view: &LogsView, theme: Theme) {
    let [head, status, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(area);
    let title = format!(
        "logs {}/{} ({}){}",
        view.namespace,
        view.pod,
        view.container,
        if view.previous { " previous" } else { "" }
    );
    frame.render_widget(
        Paragraph::new(Line::from(header(
            view.cluster,
            view.protected,
            &title,
            theme,
        ))),
        head,
    );
    let mut st = vec![Span::styled(
        if view.following {
            "following".to_string()
        } else {
            view.note.unwrap_or("stopped").to_string()
        },
        if view.following {
            theme.severity(None)
        } else {
            theme.stale()
        },
    )];
    st.push(Span::styled(
        format!(
            " · {} lines{} · wrap {}",
            view.buffer.len(),
            if view.buffer.dropped() > 0 {
                format!(" ({} older dropped)", view.buffer.dropped())
            } else {
                String::new()
            },
            if view.wrap { "on" } else { "off" }
        ),
        theme.dim(),
    ));
    if view.scroll.is_some() {
        st.push(Span::styled(" · paused", theme.stale()));
    }
    if !view.search.is_empty() {
        let n = view.buffer.search(view.search).len();
        st.push(Span::raw("  /"));
        st.push(Span::styled(view.search.to_string(), theme.key()));
        st.push(Span::styled(format!(" ({n} matching lines)"), theme.dim()));
    }
    frame.render_widget(Paragraph::new(Line::from(st)), status);

    let height = body.height as usize;
    let width = body.width as usize;
    let mut out: Vec<Line> = Vec::new();
    match view.scroll {
        Some(start) => {
            for l in view.buffer.iter().skip(start) {
                out.extend(visual(l, view.search, width, view.wrap));
                if out.len() >= height {
                    break;
                }
            }
            out.truncate(height);
        }
        None => {
            // From the newest line backwards until the screen is full.
            for l in view.buffer.iter().rev() {
                let mut v = visual(l, view.search, width, view.wrap);
                v.append(&mut out);
                out = v;
                if out.len() >= height {
                    break;
                }
            }
            let extra = out.len().saturating_sub(height);
            out.drain(..extra);
        }
    }
    if view.buffer.is_empty() {
        out.push(Line::styled("no log lines yet", theme.dim()));
    }
    frame.render_widget(Paragraph::new(out), body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_split_at_the_width_and_keep_highlights() {
        let v = visual("abcdefgh", "def", 3, true);
        assert_eq!(v.len(), 3);
        let text: Vec<String> = v.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["abc", "def", "gh"]);
        assert_eq!(v[1].spans[0].style, highlight());
        let cut = visual("abcdefgh", "", 3, false);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].to_string(), "ab…");
    }
}
