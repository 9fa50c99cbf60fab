//! Text helpers the tiles share: cutting, sparklines, title and stale lines.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::model::{Severity, Stale, format_age};
use crate::ui::Theme;

/// Cuts `s` to `width` characters, marking the cut with `…`.
pub(crate) fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

/// A one-line sparkline of `values` over `width` cells (the newest on the right).
pub(crate) fn sparkline(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail = &values[values.len().saturating_sub(width)..];
    let max = tail.iter().copied().fold(0.0, f64::max);
    tail.iter()
        .map(|v| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// The title line of a tile: name, then the worst severity as a word that survives NO_COLOR.
pub(crate) fn title(
    name: &str,
    worst: Option<Severity>,
    width: usize,
    theme: Theme,
) -> Line<'static> {
    let mark = match worst {
        Some(s) => s.label(),
        None => "OK",
    };
    let pad = width
        .saturating_sub(name.chars().count() + mark.len())
        .max(1);
    Line::from(vec![
        Span::styled(name.to_string(), theme.title()),
        Span::raw(" ".repeat(pad)),
        Span::styled(mark.to_string(), theme.severity(worst)),
    ])
}

/// A tile before its source has given data: the name and either the failure (as crit, with
/// `stale since`) or "waiting for the first answer" with no verdict yet.
pub(crate) fn no_data(
    name: &str,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: jiff::Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut out = match stale {
        Some(s) => vec![
            title(name, Some(Severity::Crit), width, theme),
            stale_line(s, now, width, theme),
        ],
        None => vec![
            Line::styled(name.to_string(), theme.title()),
            Line::styled(" waiting for the first answer…", theme.dim()),
        ],
    };
    out.truncate(height);
    out
}

/// The tile's verdict: its worst finding, and at least a warning while its data is stale.
pub(crate) fn worst_of(
    findings: &[crate::model::findings::RawFinding],
    stale: Option<&Stale>,
) -> Option<Severity> {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .max(stale.map(|_| Severity::Warn))
}

/// `stale since 3m: reason`, cut to the width.
pub(crate) fn stale_line(
    stale: &Stale,
    now: jiff::Timestamp,
    width: usize,
    theme: Theme,
) -> Line<'static> {
    let text = format!(
        "stale since {}: {}",
        format_age(crate::model::age_secs(now, stale.since)),
        stale.reason
    );
    Line::styled(fit(&text, width), theme.stale())
}

/// Lines of a long text wrapped at `width` (for the detail views).
pub(crate) fn wrapped(text: &str, width: usize, style: Style) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(Line::styled(std::mem::take(&mut line), style));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(Line::styled(line, style));
    }
    out
}
