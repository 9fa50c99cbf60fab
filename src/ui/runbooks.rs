//! The runbook list, the open runbook (rendered markdown, numbered steps with their state,
//! the target cluster, the output pane) and its forms (edit, skip, variables).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Theme, scrolled, styled, truncate, wrap};
use crate::app::AppState;
use crate::app::runbooks::{Modal, RunbookView};
use crate::model::{Severity, age_secs, format_age};
use crate::runbook::parse::Block as RbBlock;
use crate::runbook::run::StepState;

pub fn render_list(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let target = state
        .clusters
        .get(state.focus)
        .map(|c| format!("{}{}", c.name, if c.protected { " [PROD]" } else { "" }));
    let head = format!(
        "Runbooks ({}) · enter opens one against {}",
        state.runbooks.len(),
        target.unwrap_or_default()
    );
    frame.render_widget(Paragraph::new(Line::styled(head, theme.title())), title);
    let width = body.width as usize;
    let mut lines = Vec::new();
    let mut cursor_line = 0;
    for (i, rb) in state.runbooks.iter().enumerate() {
        let selected = i == state.list_cursor;
        if selected {
            cursor_line = lines.len();
        }
        let mark = if selected { "▸ " } else { "  " };
        let destructive = rb.steps.iter().filter(|s| s.attrs.destructive).count();
        let style = if selected {
            theme.title().add_modifier(Modifier::REVERSED)
        } else {
            theme.title()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark}{}", rb.name), style),
            styled(
                format!("  {} steps, {destructive} destructive", rb.steps.len()),
                theme.dim(),
            ),
        ]));
        let text = if rb.summary.is_empty() {
            rb.title.clone()
        } else {
            rb.summary.clone()
        };
        for l in wrap(&text, width.saturating_sub(4)).into_iter().take(2) {
            lines.push(Line::raw(format!("    {l}")));
        }
    }
    let page = body.height as usize;
    let offset = cursor_line.saturating_sub(page.saturating_sub(3));
    let visible: Vec<Line> = lines.into_iter().skip(offset).take(page).collect();
    frame.render_widget(Paragraph::new(visible), body);
}

fn state_style(s: &StepState, theme: Theme) -> ratatui::style::Style {
    match s {
        StepState::Ok => theme.severity(None),
        StepState::Failed(_) => theme.severity(Some(Severity::Crit)),
        StepState::Running => theme.stale(),
        StepState::Skipped(_) => theme.severity(Some(Severity::Warn)),
        StepState::Pending => theme.dim(),
    }
}

/// The runbook as lines, and the line where the selected step starts.
fn runbook_lines(view: &RunbookView, width: usize, theme: Theme) -> (Vec<Line<'static>>, usize) {
    let mut lines = Vec::new();
    let mut cursor_line = 0;
    let mut in_fence = false;
    for b in &view.runbook.blocks {
        match b {
            RbBlock::Markdown(md) => {
                for raw in md.lines() {
                    let t = raw.trim_end();
                    if t.trim_start().starts_with("```") || t.trim_start().starts_with("~~~") {
                        in_fence = !in_fence;
                        continue;
                    }
                    if in_fence {
                        lines.push(Line::styled(format!("    {t}"), theme.dim()));
                    } else if let Some(h) = t.strip_prefix('#') {
                        lines.push(Line::styled(
                            h.trim_start_matches('#').trim().to_string(),
                            theme.title(),
                        ));
                    } else if t.is_empty() {
                        if lines.last().is_none_or(|l: &Line| l.width() != 0) {
                            lines.push(Line::raw(""));
                        }
                    } else {
                        for w in wrap(t, width.saturating_sub(1)) {
                            lines.push(Line::raw(w));
                        }
                    }
                }
            }
            RbBlock::Step(i) => {
                let step = &view.runbook.steps[*i];
                let st = &view.states[*i];
                let selected = *i == view.cursor;
                if selected {
                    cursor_line = lines.len();
                }
                let mark = if selected { "▸" } else { " " };
                let mut spans = vec![Span::styled(
                    format!("{mark} Step {} · {}", step.number, step.name),
                    if selected {
                        theme.title().add_modifier(Modifier::REVERSED)
                    } else {
                        theme.title()
                    },
                )];
                if step.attrs.destructive {
                    spans.push(Span::styled(
                        " DESTRUCTIVE",
                        theme.severity(Some(Severity::Crit)),
                    ));
                }
                if step.attrs.verify {
                    spans.push(styled(" verify", theme.dim()));
                }
                if view.edited.contains_key(i) {
                    spans.push(Span::styled(" edited", theme.stale()));
                }
                let label = match st {
                    StepState::Failed(why) => format!(" [failed: {why}]"),
                    StepState::Skipped(why) => format!(" [skipped: {}]", truncate(why, 30)),
                    other => format!(" [{}]", other.label()),
                };
                spans.push(Span::styled(label, state_style(st, theme)));
                lines.push(Line::from(spans));
                for l in view.command(*i).lines() {
                    lines.push(Line::raw(format!("  │ {l}")));
                }
            }
        }
    }
    (lines, cursor_line)
}

pub fn render_runbook(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let Some(view) = &state.run else { return };
    let cluster = state.clusters.get(view.target);
    let (name, protected, read_only) = cluster.map_or(("?".to_string(), false, false), |c| {
        (c.name.clone(), c.protected, c.read_only || state.read_only)
    });
    let running = view.running.map(|(i, since)| {
        format!(
            " · step {} running {}",
            i + 1,
            format_age(age_secs(state.now, since))
        )
    });
    let header = Line::from(vec![
        Span::styled(format!(" {} ", view.runbook.title), theme.title()),
        Span::raw(" on "),
        Span::styled(
            format!(" {name}{} ", if protected { " [PROD]" } else { "" }),
            theme.header(protected, false),
        ),
        styled(
            if read_only { " READ-ONLY" } else { "" }.to_string(),
            theme.stale(),
        ),
        styled(
            format!(
                "  {}{}",
                view.run_id
                    .as_deref()
                    .map(|r| format!("run {r}"))
                    .unwrap_or_else(|| "not started".into()),
                running.unwrap_or_default()
            ),
            theme.dim(),
        ),
    ]);
    let show_output = !view.output.is_empty() || view.notice.is_some();
    let out_height = if show_output {
        (area.height / 3).max(4)
    } else {
        0
    };
    let [head, body, out] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(out_height),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header), head);
    let (lines, cursor_line) = runbook_lines(view, body.width as usize, theme);
    let page = body.height as usize;
    let offset = cursor_line.saturating_sub(page / 4);
    let (visible, _) = scrolled(lines, body, offset);
    frame.render_widget(Paragraph::new(visible), body);
    if show_output {
        let block = Block::default().borders(Borders::TOP).title(" output ");
        let inner = block.inner(out);
        let mut lines: Vec<Line> = Vec::new();
        if let Some(n) = &view.notice {
            lines.push(Line::styled(
                truncate(n, inner.width as usize),
                theme.stale(),
            ));
        }
        let room = (inner.height as usize).saturating_sub(lines.len());
        let skip = view.output.len().saturating_sub(room);
        lines.extend(view.output.iter().skip(skip).map(|l| Line::raw(l.clone())));
        frame.render_widget(Paragraph::new(lines).block(block), out);
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub fn render_modal(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let (Some(modal), Some(view)) = (&state.modal, &state.run) else {
        return;
    };
    let width = area.width.saturating_sub(4).min(76);
    let inner_w = width.saturating_sub(2) as usize;
    match modal {
        Modal::Edit { step, editor } => {
            let rect = centered(area, width, area.height.saturating_sub(2).min(16));
            frame.render_widget(Clear, rect);
            let s = &view.runbook.steps[*step];
            let block = Block::default().borders(Borders::ALL).title(format!(
                " Edit step {} · ctrl-s: run the edited text · esc: cancel ",
                s.number
            ));
            let inner = block.inner(rect);
            frame.render_widget(block, rect);
            frame.render_widget(editor, inner);
        }
        Modal::Skip { step, reason } => {
            let rect = centered(area, width, 5);
            frame.render_widget(Clear, rect);
            let block = Block::default().borders(Borders::ALL).title(format!(
                " Skip step {}: why? (enter to skip, esc cancels) ",
                step + 1
            ));
            let inner = block.inner(rect);
            frame.render_widget(block, rect);
            frame.render_widget(reason, inner);
        }
        Modal::Vars { fields, focus, .. } => {
            let height = (fields.len() as u16) * 2 + 3;
            let rect = centered(area, width, height);
            frame.render_widget(Clear, rect);
            let block = Block::default().borders(Borders::ALL).title(
                " Variables for this run · tab next · enter on the last runs · esc cancels ",
            );
            let inner = block.inner(rect);
            frame.render_widget(block, rect);
            let rows = Layout::vertical(
                fields
                    .iter()
                    .flat_map(|_| [Constraint::Length(1), Constraint::Length(1)])
                    .collect::<Vec<_>>(),
            )
            .split(inner);
            for (i, f) in fields.iter().enumerate() {
                let label = format!(
                    "{}{} ({})",
                    if i == *focus { "▸ " } else { "  " },
                    f.prompt,
                    f.name
                );
                frame.render_widget(
                    Paragraph::new(Line::styled(truncate(&label, inner_w), theme.title())),
                    rows[i * 2],
                );
                frame.render_widget(&f.input, rows[i * 2 + 1]);
            }
        }
    }
}
