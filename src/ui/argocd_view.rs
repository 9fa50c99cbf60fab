//! The ArgoCD view of one cluster: every application with a cursor (those needing attention
//! first) and the selected one in full below.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{Theme, overview, tiles, truncate};
use crate::app::AppState;
use crate::app::argocd::ordered_apps;
use crate::model::Severity;

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, cluster: usize, theme: Theme) {
    let Some(c) = state.clusters.get(cluster) else {
        return;
    };
    let width = area.width as usize;
    let head = overview::header(c, state, width, false, theme);
    let [top, body] =
        Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(head), top);
    if !c.argocd.configured {
        frame.render_widget(
            Paragraph::new(Line::raw(format!(
                "ArgoCD is not configured for {}: see README, ArgoCD panel.",
                c.name
            ))),
            body,
        );
        return;
    }
    let apps = ordered_apps(state, cluster);
    if apps.is_empty() {
        let lines = tiles::argocd::detail(
            c.argocd.data.as_deref(),
            c.argocd.stale.as_ref(),
            width,
            body.height as usize,
            state.now,
            theme,
        );
        frame.render_widget(Paragraph::new(lines), body);
        return;
    }
    let list_h = (apps.len() as u16 + 1).min(body.height / 2).max(3);
    let [list, detail] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Min(1)]).areas(body);
    let mut lines = vec![Line::styled(
        truncate(
            &format!(
                "{} applications · u refresh · s sync · S sync+prune · b rollback",
                apps.len()
            ),
            width,
        ),
        theme.title(),
    )];
    if let Some(st) = &c.argocd.stale {
        lines[0] = Line::styled(
            truncate(
                &format!(
                    "stale since {}: {}",
                    st.since.strftime("%H:%M:%S"),
                    st.reason
                ),
                width,
            ),
            theme.stale(),
        );
    }
    let rows = list_h as usize - 1;
    let offset = state.argo_cursor.saturating_sub(rows.saturating_sub(1));
    for (i, a) in apps.iter().enumerate().skip(offset).take(rows) {
        let sev = a.severity();
        let mark = match sev {
            Some(Severity::Crit) => "✗",
            Some(Severity::Warn) => "!",
            None => " ",
        };
        let cursor = if i == state.argo_cursor { "▸" } else { " " };
        let text = format!(
            "{cursor}{mark} {:<28} {:<9} {:<11} auto {}",
            truncate(&a.name, 28),
            a.sync.as_str(),
            a.health.as_str(),
            if a.auto_sync { "on" } else { "off" }
        );
        let mut style = theme.severity(sev);
        if i == state.argo_cursor {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let mut spans = vec![Span::styled(text, style)];
        if let Some(result) = state.argo_results.get(&(cluster, a.name.clone())) {
            spans.push(Span::styled(format!("  {result}"), theme.dim()));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), list);
    if let Some(a) = apps.get(state.argo_cursor) {
        let block = Block::default().borders(Borders::TOP);
        let inner = block.inner(detail);
        frame.render_widget(block, detail);
        let (visible, _) = super::scrolled(
            tiles::argocd::app_detail(
                a,
                c.argocd
                    .data
                    .as_deref()
                    .is_some_and(|s| s.ci_synced(&a.name)),
                inner.width as usize,
                state.now,
                theme,
            ),
            inner,
            state.scroll,
        );
        frame.render_widget(Paragraph::new(visible), inner);
    }
}
