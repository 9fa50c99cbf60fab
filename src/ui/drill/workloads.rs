//! Deployments, StatefulSets, DaemonSets and CronJobs: available/desired, last rollout, images.

use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{header, selected_style};
use crate::drill::workloads::WorkloadRow;
use crate::model::{age_secs, format_age};
use crate::ui::{Theme, truncate};

#[derive(Debug, Clone, Copy)]
pub struct WorkloadsView<'a> {
    pub rows: &'a [WorkloadRow],
    pub cluster: &'a str,
    pub protected: bool,
    pub selected: usize,
    pub offset: usize,
    pub now: Timestamp,
}

fn short_kind(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deploy",
        "StatefulSet" => "sts",
        "DaemonSet" => "ds",
        "CronJob" => "cronjob",
        _ => "?",
    }
}

/// Draws the workloads table; returns the offset used.
pub fn workloads(frame: &mut Frame, area: Rect, view: &WorkloadsView, theme: Theme) -> usize {
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let degraded = view.rows.iter().filter(|r| r.degraded()).count();
    frame.render_widget(
        Paragraph::new(Line::from(header(
            view.cluster,
            view.protected,
            &format!("workloads {} · {degraded} degraded", view.rows.len()),
            theme,
        ))),
        head,
    );
    let wide = body.width >= 100;
    let height = body.height.saturating_sub(1) as usize;
    let offset = super::scroll_to(view.selected, view.offset, height, view.rows.len());
    let constraints = [
        Constraint::Length(7),
        Constraint::Length(if wide { 18 } else { 12 }),
        Constraint::Length(if wide { 44 } else { 24 }),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    let sizes = super::column_widths(body.width, &constraints);
    let w = |i: usize| sizes.get(i).map_or(0, |w| *w as usize);
    let widths: Vec<Constraint> = sizes.iter().map(|w| Constraint::Length(*w)).collect();
    let rows = view
        .rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, r)| {
            let ready = if r.kind == "CronJob" {
                if r.desired == 0 {
                    "susp".to_string()
                } else {
                    format!("{} act", r.available)
                }
            } else {
                format!("{}/{}", r.available, r.desired)
            };
            let ready_style = if r.degraded() {
                theme.stale()
            } else {
                theme.dim()
            };
            let images: Vec<&str> = r
                .images
                .iter()
                .map(|i| {
                    if wide {
                        i.as_str()
                    } else {
                        super::short_image(i)
                    }
                })
                .collect();
            let images = if r.schedule.is_empty() {
                images.join(", ")
            } else {
                format!("{} · {}", r.schedule, images.join(", "))
            };
            let row = Row::new(vec![
                Cell::from(short_kind(r.kind)),
                Cell::from(truncate(&r.namespace, w(1))),
                Cell::from(truncate(&r.name, w(2))),
                Cell::from(Span::styled(ready, ready_style)),
                Cell::from(
                    r.last_rollout
                        .map_or_else(|| "-".into(), |t| format_age(age_secs(view.now, t))),
                ),
                Cell::from(truncate(&images, w(5))),
            ]);
            if i == view.selected {
                row.style(selected_style())
            } else {
                row
            }
        });
    let table = Table::new(rows, widths)
        .header(
            Row::new(["KIND", "NAMESPACE", "NAME", "READY", "ROLLOUT", "IMAGES"])
                .style(theme.title()),
        )
        .column_spacing(1);
    frame.render_widget(table, body);
    offset
}
