//! Drawing: `render(frame, state, theme)` is a pure function of the state. Nothing here
//! fetches or waits; views only read `AppState`.

mod argocd_view;
mod cluster;
pub mod confirm;
pub mod drill;
mod drill_views;
mod findings;
pub mod forwards;
mod help;
mod overview;
mod runbooks;
pub mod theme;
pub mod tiles;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{Action, AppState, View};
use crate::keymap::Mode;
pub use theme::Theme;

/// The narrowest column a cluster gets before the layout falls back to one cluster at a time.
pub const MIN_COLUMN: u16 = 38;

/// Draws the whole screen.
pub fn render(frame: &mut Frame, state: &AppState, theme: Theme) {
    let area = frame.area();
    let [body, footer] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    if let Some(notice) = &state.notice {
        let lines: Vec<Line> = notice.iter().map(|l| Line::raw(l.as_str())).collect();
        frame.render_widget(Paragraph::new(lines), body);
    } else {
        match state.view {
            View::Overview => overview::render(frame, body, state, theme),
            View::Findings => findings::render(frame, body, state, theme),
            View::Cluster(i) => cluster::render(frame, body, state, i, theme),
            View::Panel(i, crate::sources::Feature::Argocd) => {
                argocd_view::render(frame, body, state, i, theme)
            }
            View::Panel(i, feature) => panel_detail(frame, body, state, i, feature, theme),
            View::Forwards => forwards::render(frame, body, state, theme),
            View::Pods(_) | View::Pod | View::Logs | View::Events | View::Workloads => {
                drill_views::render(frame, body, state, theme)
            }
            View::Runbooks => runbooks::render_list(frame, body, state, theme),
            View::Runbook => runbooks::render_runbook(frame, body, state, theme),
        }
    }
    render_footer(frame, footer, state, theme);
    if state.modal.is_some() {
        runbooks::render_modal(frame, body, state, theme);
    }
    if state.drill.count.is_some() {
        drill_views::render_count(frame, body, state, theme);
    }
    if state.confirm.is_some() {
        confirm::render(frame, body, state, theme);
    }
    if !state.pending.is_empty() {
        help::which_key(frame, body, state, theme);
    }
    if state.help {
        help::render(frame, body, state, theme);
    }
}

/// A data panel's full-screen detail for one cluster, under the cluster's header.
fn panel_detail(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    index: usize,
    feature: crate::sources::Feature,
    theme: Theme,
) {
    use crate::sources::Feature;
    let Some(c) = state.clusters.get(index) else {
        return;
    };
    let width = area.width as usize;
    let head = overview::header(c, state, width, false, theme);
    let [top, body] =
        Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(head), top);
    let (w, h, now) = (body.width as usize, body.height as usize, state.now);
    let not_configured = |name: &str| {
        vec![Line::raw(format!(
            "{name} is not configured for {}: see README, section {name}.",
            c.name
        ))]
    };
    let lines = match feature {
        Feature::Pgbouncer if c.pgbouncer.configured => tiles::pgbouncer::detail(
            c.pgbouncer.data.as_deref(),
            c.pgbouncer.stale.as_ref(),
            w,
            h,
            now,
            theme,
        ),
        Feature::Redis if c.redis.configured => tiles::redis::detail(
            c.redis.data.as_deref(),
            c.redis.stale.as_ref(),
            w,
            h,
            now,
            theme,
        ),
        Feature::Argocd if c.argocd.configured => tiles::argocd::detail(
            c.argocd.data.as_deref(),
            c.argocd.stale.as_ref(),
            w,
            h,
            now,
            theme,
        ),
        Feature::Pgbouncer => not_configured("PgBouncer"),
        Feature::Redis => not_configured("Redis"),
        Feature::Argocd => not_configured("ArgoCD"),
        Feature::Backups if c.backups.configured => tiles::backups::detail(
            c.backups.data.as_deref(),
            c.backups.stale.as_ref(),
            w,
            h,
            now,
            theme,
        ),
        Feature::Backups => not_configured("Backups"),
    };
    let (visible, _) = scrolled(lines, body, state.scroll);
    frame.render_widget(Paragraph::new(visible), body);
}

fn render_footer(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let mode = state.mode();
    let wanted: &[(Action, &str)] = match mode {
        Mode::Overview | Mode::Global => &[
            (Action::Quit, "quit"),
            (Action::Help, "help"),
            (Action::Findings, "findings"),
            (Action::Runbooks, "runbooks"),
            (Action::FocusNextCluster, "next"),
            (Action::Pods, "pods"),
        ],
        Mode::List => &[
            (Action::Back, "back"),
            (Action::Open, "open"),
            (Action::ScrollDown, "scroll"),
            (Action::Help, "help"),
            (Action::Quit, "quit"),
        ],
        Mode::Runbook => &[
            (Action::RunStep, "run"),
            (Action::EditStep, "edit"),
            (Action::SkipStep, "skip"),
            (Action::CancelStep, "cancel"),
            (Action::NextTarget, "target"),
            (Action::Back, "back"),
        ],
        Mode::Pods => &[
            (Action::Open, "pod"),
            (Action::Filter, "filter"),
            (Action::SortNext, "sort"),
            (Action::NamespaceNext, "ns"),
            (Action::Logs, "logs"),
            (Action::DeletePod, "delete"),
            (Action::Back, "back"),
        ],
        Mode::Pod => &[
            (Action::Logs, "logs"),
            (Action::LogsPrevious, "previous"),
            (Action::Restart, "restart"),
            (Action::Exec, "exec"),
            (Action::DeletePod, "delete"),
            (Action::Back, "back"),
        ],
        Mode::Logs => &[
            (Action::Filter, "search"),
            (Action::Wrap, "wrap"),
            (Action::LogsPrevious, "previous"),
            (Action::Back, "back"),
        ],
        Mode::Workloads => &[
            (Action::Restart, "restart"),
            (Action::Scale, "scale"),
            (Action::TriggerJob, "trigger"),
            (Action::Back, "back"),
        ],
        Mode::Argocd => &[
            (Action::ArgoRefresh, "refresh"),
            (Action::ArgoSync, "sync"),
            (Action::ArgoRollback, "rollback"),
            (Action::ScrollDown, "select"),
            (Action::Back, "back"),
        ],
        Mode::Help => &[
            (Action::Back, "close"),
            (Action::ScrollDown, "scroll"),
            (Action::Quit, "quit"),
        ],
    };
    let mut spans = Vec::new();
    if let Some(f) = &state.flash {
        spans.push(Span::styled(format!("{f}  "), theme.stale()));
    } else if let Some(w) = state.warnings.first() {
        spans.push(Span::styled(format!("! {w} "), theme.stale()));
    }
    let open_does_something = matches!(state.view, View::Overview | View::Runbooks);
    for (action, label) in wanted
        .iter()
        .filter(|(a, _)| *a != Action::Open || open_does_something)
    {
        if let Some(k) = state.keymap.keys_for(mode, *action).first() {
            spans.push(Span::styled(k.to_string(), theme.key()));
            spans.push(Span::raw(format!(" {label}  ")));
        }
    }
    if state.read_only {
        spans.push(Span::styled("READ-ONLY  ", theme.stale()));
    }
    let clock = state.now.strftime("%H:%M UTC").to_string();
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let pad = (area.width as usize).saturating_sub(used + clock.len());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(clock, theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `text` cut to `width` characters, ending in `…` when cut.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

/// Splits `text` into lines of at most `width` characters, breaking at spaces when it can.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let wlen = word.chars().count();
        let clen = current.chars().count();
        if clen > 0 && clen + 1 + wlen > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while current.chars().count() > width {
            let head: String = current.chars().take(width).collect();
            current = current.chars().skip(width).collect();
            lines.push(head);
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// A scrollable list of lines with a title; clamps the scroll offset and reports the page size.
pub(crate) fn scrolled<'a>(
    lines: Vec<Line<'a>>,
    area: Rect,
    scroll: usize,
) -> (Vec<Line<'a>>, usize) {
    let page = area.height as usize;
    let max = lines.len().saturating_sub(page);
    let offset = scroll.min(max);
    (lines.into_iter().skip(offset).take(page).collect(), offset)
}

pub use overview::api_failing_label;

pub(crate) fn styled(text: impl Into<String>, style: Style) -> Span<'static> {
    Span::styled(text.into(), style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_and_wrap_respect_width() {
        assert_eq!(truncate("iam-service-7c9d", 8), "iam-ser…");
        assert_eq!(truncate("abc", 8), "abc");
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }
}
