//! Plain data types the sources produce and the views draw, and the health rules that turn
//! them into findings. Nothing here does I/O or knows about the terminal.

pub mod argocd;
pub mod backups;
pub mod findings;
pub mod kube;
pub mod pgbouncer;
pub mod redis;
pub use kube::Phase;

pub use findings::{Finding, FindingTracker, Severity};
pub use kube::{KubeSnapshot, NodeSummary, PodCounts, PodReason, PodSummary, WorkloadSummary};

use jiff::Timestamp;

/// Why a source's data is not current: kept beside the last good snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stale {
    pub since: Timestamp,
    pub reason: String,
}

/// Formats an age the way the whole console shows ages: `42s`, `7m`, `3h12m`, `2d4h`.
pub fn format_age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        let (h, m) = (s / 3600, (s % 3600) / 60);
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{m}m")
        }
    } else {
        let (d, h) = (s / 86_400, (s % 86_400) / 3600);
        if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        }
    }
}

/// Seconds from `then` to `now`, never negative.
pub fn age_secs(now: Timestamp, then: Timestamp) -> i64 {
    (now.as_second() - then.as_second()).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_console_format() {
        assert_eq!(format_age(42), "42s");
        assert_eq!(format_age(7 * 60 + 5), "7m");
        assert_eq!(format_age(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(format_age(3 * 3600), "3h");
        assert_eq!(format_age(2 * 86_400 + 4 * 3600 + 59), "2d4h");
        assert_eq!(format_age(-5), "0s");
    }
}
