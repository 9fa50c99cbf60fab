//! Findings: what a health rule says is wrong, with a severity, a source and when it was first seen.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    Crit,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Warn => "WARN",
            Severity::Crit => "CRIT",
        }
    }
}

/// One thing an engineer should look at. `key` identifies the condition (not the wording) so
/// `since` survives a message whose numbers change, e.g. a rising restart count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub source: &'static str,
    pub message: String,
    pub since: Timestamp,
    #[serde(skip)]
    pub key: String,
}

/// A finding as a rule produces it, before it has a `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFinding {
    pub severity: Severity,
    pub source: &'static str,
    pub key: String,
    pub message: String,
}

impl RawFinding {
    pub fn new(
        severity: Severity,
        source: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RawFinding {
            severity,
            source,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Remembers when each condition was first seen, so `since` is stable across snapshots and a
/// condition that clears and comes back starts a new `since`.
#[derive(Debug, Default, Clone)]
pub struct FindingTracker {
    first_seen: HashMap<(&'static str, String), Timestamp>,
}

impl FindingTracker {
    /// Replaces the findings of `source` with `raw`, returning them dated.
    pub fn track(
        &mut self,
        source: &'static str,
        raw: Vec<RawFinding>,
        now: Timestamp,
    ) -> Vec<Finding> {
        // A set of the current keys keeps this linear when thousands of pods are unhealthy.
        let current: std::collections::HashSet<&str> = raw.iter().map(|r| r.key.as_str()).collect();
        self.first_seen
            .retain(|(s, k), _| *s != source || current.contains(k.as_str()));
        raw.into_iter()
            .map(|r| {
                let since = *self
                    .first_seen
                    .entry((source, r.key.clone()))
                    .or_insert(now);
                Finding {
                    severity: r.severity,
                    source: r.source,
                    message: r.message,
                    since,
                    key: r.key,
                }
            })
            .collect()
    }
}

/// The worst severity among `findings`, `None` when all is well.
pub fn worst<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Option<Severity> {
    findings.into_iter().map(|f| f.severity).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn since_is_kept_while_the_condition_lasts_and_reset_after_it_clears() {
        let mut t = FindingTracker::default();
        let f = |msg: &str| vec![RawFinding::new(Severity::Warn, "kubernetes", "pod/a", msg)];
        assert_eq!(
            t.track("kubernetes", f("3 restarts"), ts(100))[0].since,
            ts(100)
        );
        let again = t.track("kubernetes", f("4 restarts"), ts(200));
        assert_eq!(again[0].since, ts(100));
        assert_eq!(again[0].message, "4 restarts");
        assert!(t.track("kubernetes", vec![], ts(300)).is_empty());
        assert_eq!(t.track("kubernetes", f("back"), ts(400))[0].since, ts(400));
    }

    #[test]
    fn sources_do_not_clear_each_other() {
        let mut t = FindingTracker::default();
        t.track(
            "kubernetes",
            vec![RawFinding::new(Severity::Crit, "kubernetes", "x", "m")],
            ts(1),
        );
        t.track("redis", vec![], ts(2));
        assert_eq!(
            t.track(
                "kubernetes",
                vec![RawFinding::new(Severity::Crit, "kubernetes", "x", "m")],
                ts(3)
            )[0]
            .since,
            ts(1)
        );
    }
}
