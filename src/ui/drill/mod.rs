//! The drill-down views as pure render functions (issue 8): the pods table, a pod's detail
//! with its events, the log tail, the cluster's Warning events and the workloads. Each takes
//! the frame region and plain data from `crate::drill`, and draws only what fits (the pods
//! table asks the model for the visible window alone).

mod events;
mod logs;
mod pod;
mod pods;
mod workloads;

pub use events::{EventsView, events};
pub use logs::{LogsView, logs};
pub use pod::pod_detail;
pub use pods::{PodsView, pods_table};
pub use workloads::{WorkloadsView, workloads};

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;

use super::Theme;

/// The header of a drill-down view: cluster (marked `[PROD]` when protected) and a title.
fn header(cluster: &str, protected: bool, title: &str, theme: Theme) -> Vec<Span<'static>> {
    let name = if protected {
        format!(" {cluster} [PROD] ")
    } else {
        format!(" {cluster} ")
    };
    vec![
        Span::styled(name, theme.header(protected, false)),
        Span::styled(format!(" {title}"), theme.title()),
    ]
}

/// The selected row: reversed, readable with and without colour.
fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// The first row to draw so `selected` stays within `height` rows, keeping `previous` if it can.
pub fn scroll_to(selected: usize, previous: usize, height: usize, len: usize) -> usize {
    if height == 0 {
        return 0;
    }
    let offset = if selected < previous {
        selected
    } else if selected >= previous + height {
        selected + 1 - height
    } else {
        previous
    };
    offset.min(len.saturating_sub(height))
}

/// The widths a row of `constraints` gets in `width` columns with one space between columns,
/// so cells can be cut with `…` instead of silently.
fn column_widths(width: u16, constraints: &[Constraint]) -> Vec<u16> {
    Layout::horizontal(constraints.to_vec())
        .spacing(1)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| r.width)
        .collect()
}

/// An image without its registry and path (`iam-service:v1.9.0`), for narrow screens.
fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}
