//! The pods table model: every pod of one cluster snapshot as sortable, filterable rows.
//!
//! Design for 10,000 pods and a keystroke per frame: a snapshot is indexed once
//! ([`PodTable::set_pods`]): one lowercase search key per pod and the distinct namespaces.
//! Sorting orders a `Vec<u32>` of indexes (only when the sort or the snapshot changes);
//! filtering walks that order and pushes the indexes that match into a second `Vec<u32>`
//! whose capacity is reused, so a keystroke allocates nothing per pod. Display strings are
//! built only for the rows a view draws ([`PodTable::row`]).

use std::cmp::Ordering;
use std::sync::Arc;

use jiff::Timestamp;

use crate::model::{Phase, PodReason, PodSummary, format_age};

/// A column of the pods table, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodColumn {
    Namespace,
    Name,
    Ready,
    Status,
    Restarts,
    Age,
    Node,
}

impl PodColumn {
    pub const ALL: [PodColumn; 7] = [
        PodColumn::Namespace,
        PodColumn::Name,
        PodColumn::Ready,
        PodColumn::Status,
        PodColumn::Restarts,
        PodColumn::Age,
        PodColumn::Node,
    ];

    pub fn title(self) -> &'static str {
        match self {
            PodColumn::Namespace => "NAMESPACE",
            PodColumn::Name => "NAME",
            PodColumn::Ready => "READY",
            PodColumn::Status => "STATUS",
            PodColumn::Restarts => "RESTARTS",
            PodColumn::Age => "AGE",
            PodColumn::Node => "NODE",
        }
    }

    /// The next column (wrapping), for a "sort by next column" key.
    pub fn next(self) -> PodColumn {
        let i = PodColumn::ALL.iter().position(|c| *c == self).unwrap_or(0);
        PodColumn::ALL[(i + 1) % PodColumn::ALL.len()]
    }
}

/// How rows are ordered. The default, Status ascending, puts unhealthy pods first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodSort {
    pub column: PodColumn,
    pub descending: bool,
}

impl Default for PodSort {
    fn default() -> Self {
        PodSort {
            column: PodColumn::Status,
            descending: false,
        }
    }
}

/// Which namespaces the table shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NamespaceScope {
    #[default]
    All,
    One(String),
}

/// A parsed `/` filter: whitespace-separated terms, all of which must match. A term
/// `key=value` matches a label exactly; `key!=value` excludes it; any other term is a
/// case-insensitive substring of namespace/name, node or status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFilter {
    text: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Substring(String),
    Label { key: String, value: String },
    NotLabel { key: String, value: String },
}

impl PodFilter {
    pub fn parse(text: &str) -> PodFilter {
        let terms = text
            .split_whitespace()
            .map(|t| {
                if let Some((k, v)) = t.split_once("!=") {
                    Term::NotLabel {
                        key: k.to_string(),
                        value: v.to_string(),
                    }
                } else if let Some((k, v)) = t.split_once('=').filter(|(k, _)| !k.is_empty()) {
                    Term::Label {
                        key: k.to_string(),
                        value: v.to_string(),
                    }
                } else {
                    Term::Substring(t.to_lowercase())
                }
            })
            .collect();
        PodFilter {
            text: text.to_string(),
            terms,
        }
    }

    /// The text as typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    fn matches(&self, pod: &PodSummary, key: &str) -> bool {
        let label = |k: &str, v: &str| pod.labels.iter().any(|(lk, lv)| lk == k && lv == v);
        self.terms.iter().all(|t| match t {
            Term::Substring(s) => key.contains(s.as_str()),
            Term::Label { key, value } => label(key, value),
            Term::NotLabel { key, value } => !label(key, value),
        })
    }
}

/// One row as drawn: display strings for the visible rows only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    pub namespace: String,
    pub name: String,
    pub ready: &'static str,
    pub status: &'static str,
    pub restarts: u32,
    pub age: String,
    pub node: String,
    /// Whether the pod needs attention (drawn in the warning colour).
    pub unhealthy: bool,
}

/// What a pod's STATUS column says.
pub fn status_text(p: &PodSummary) -> &'static str {
    match p.reason {
        Some(r) => r.as_str(),
        None => match p.phase {
            Phase::Running => "Running",
            Phase::Succeeded => "Completed",
            Phase::Pending => "Pending",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        },
    }
}

/// Lower sorts first: broken now, then not-there-yet, then healthy, then finished.
fn health_rank(p: &PodSummary) -> u8 {
    match p.reason {
        Some(PodReason::CrashLoopBackOff) => 0,
        Some(PodReason::OomKilled) => 1,
        Some(PodReason::Error) => 2,
        Some(PodReason::ImagePullBackOff | PodReason::ErrImagePull) => 3,
        Some(PodReason::Unknown) => 4,
        Some(PodReason::NotReady) => 5,
        Some(PodReason::Evicted) => 6,
        Some(PodReason::Pending) => 7,
        None if p.phase == Phase::Succeeded => 9,
        None => 8,
    }
}

/// The pods table of one cluster: snapshot, sort, filter, namespace scope and selection.
#[derive(Debug, Clone, Default)]
pub struct PodTable {
    pods: Vec<Arc<PodSummary>>,
    /// Per pod: lowercase `namespace/name node status`, built once per snapshot.
    keys: Vec<String>,
    namespaces: Vec<String>,
    /// Every pod index in sort order.
    order: Vec<u32>,
    /// The indexes that pass the scope and filter, in sort order.
    visible: Vec<u32>,
    sort: PodSort,
    filter: PodFilter,
    scope: NamespaceScope,
    selected: usize,
}

impl PodTable {
    pub fn new(pods: Vec<Arc<PodSummary>>) -> PodTable {
        let mut t = PodTable::default();
        t.set_pods(pods);
        t
    }

    /// Replaces the snapshot, keeping sort, filter, scope and (by identity) the selection.
    pub fn set_pods(&mut self, pods: Vec<Arc<PodSummary>>) {
        let keep = self
            .selected_pod()
            .map(|p| (p.namespace.clone(), p.name.clone()));
        // The old indexes mean nothing in the new snapshot.
        self.visible.clear();
        self.order.clear();
        self.selected = 0;
        self.keys = pods
            .iter()
            .map(|p| {
                let mut k = String::with_capacity(
                    p.namespace.len() + p.name.len() + 24 + p.node.as_deref().map_or(0, str::len),
                );
                k.push_str(&p.namespace);
                k.push('/');
                k.push_str(&p.name);
                k.push(' ');
                k.push_str(p.node.as_deref().unwrap_or(""));
                k.push(' ');
                k.push_str(status_text(p));
                k.make_ascii_lowercase();
                k
            })
            .collect();
        let mut ns: Vec<String> = Vec::new();
        for p in &pods {
            if ns.last() != Some(&p.namespace) {
                ns.push(p.namespace.clone());
            }
        }
        ns.sort_unstable();
        ns.dedup();
        self.namespaces = ns;
        self.pods = pods;
        self.resort();
        if let Some((ns, name)) = keep {
            self.select_pod(&ns, &name);
        }
    }

    pub fn len(&self) -> usize {
        self.visible.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visible.is_empty()
    }

    /// All pods in the snapshot (before scope and filter).
    pub fn total(&self) -> usize {
        self.pods.len()
    }

    pub fn sort(&self) -> PodSort {
        self.sort
    }

    pub fn filter(&self) -> &PodFilter {
        &self.filter
    }

    pub fn scope(&self) -> &NamespaceScope {
        &self.scope
    }

    /// Distinct namespaces of the snapshot, sorted.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Sorts by `column`; choosing the current column again flips the direction.
    pub fn sort_by(&mut self, column: PodColumn) {
        if self.sort.column == column {
            self.sort.descending = !self.sort.descending;
        } else {
            self.sort = PodSort {
                column,
                descending: false,
            };
        }
        self.resort();
    }

    pub fn set_sort(&mut self, sort: PodSort) {
        self.sort = sort;
        self.resort();
    }

    /// Applies a filter as typed (call on every keystroke).
    pub fn set_filter(&mut self, text: &str) {
        if self.filter.text() == text {
            return;
        }
        self.filter = PodFilter::parse(text);
        self.refilter();
    }

    pub fn set_scope(&mut self, scope: NamespaceScope) {
        self.scope = scope;
        self.refilter();
    }

    /// All → first namespace → ... → last → All.
    pub fn cycle_namespace(&mut self) {
        let next = match &self.scope {
            NamespaceScope::All => self.namespaces.first().cloned().map(NamespaceScope::One),
            NamespaceScope::One(cur) => self
                .namespaces
                .iter()
                .position(|n| n == cur)
                .and_then(|i| self.namespaces.get(i + 1))
                .cloned()
                .map(NamespaceScope::One),
        };
        self.set_scope(next.unwrap_or(NamespaceScope::All));
    }

    fn resort(&mut self) {
        let keep = self
            .selected_pod()
            .map(|p| (p.namespace.clone(), p.name.clone()));
        let pods = &self.pods;
        self.order.clear();
        self.order.extend(0..pods.len() as u32);
        let sort = self.sort;
        self.order.sort_by(|&a, &b| {
            let (pa, pb) = (&*pods[a as usize], &*pods[b as usize]);
            let primary = compare(sort.column, pa, pb);
            let primary = if sort.descending {
                primary.reverse()
            } else {
                primary
            };
            primary
                .then_with(|| pa.namespace.cmp(&pb.namespace))
                .then_with(|| pa.name.cmp(&pb.name))
        });
        self.refilter();
        if let Some((ns, name)) = keep {
            self.select_pod(&ns, &name);
        }
    }

    fn refilter(&mut self) {
        let keep = self
            .selected_pod()
            .map(|p| (p.namespace.clone(), p.name.clone()));
        self.visible.clear();
        let scope = match &self.scope {
            NamespaceScope::All => None,
            NamespaceScope::One(ns) => Some(ns.as_str()),
        };
        for &i in &self.order {
            let pod = &*self.pods[i as usize];
            if scope.is_some_and(|ns| pod.namespace != ns) {
                continue;
            }
            if self.filter.is_empty() || self.filter.matches(pod, &self.keys[i as usize]) {
                self.visible.push(i);
            }
        }
        self.selected = 0;
        if let Some((ns, name)) = keep {
            self.select_pod(&ns, &name);
        }
    }

    /// The visible pod at position `i` (after sort, scope and filter).
    pub fn pod(&self, i: usize) -> Option<&Arc<PodSummary>> {
        self.visible.get(i).map(|&k| &self.pods[k as usize])
    }

    /// Display strings for visible row `i`.
    pub fn row(&self, i: usize, now: Timestamp) -> Option<PodRow> {
        let p = self.pod(i)?;
        Some(PodRow {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            ready: if p.ready { "yes" } else { "no" },
            status: status_text(p),
            restarts: p.restarts,
            age: p.age_s(now).map_or_else(|| "-".into(), format_age),
            node: p.node.clone().unwrap_or_else(|| "<none>".into()),
            unhealthy: p.reason.is_some(),
        })
    }

    /// Rows `[offset, offset + height)`: what a virtualized view draws.
    pub fn window(&self, offset: usize, height: usize, now: Timestamp) -> Vec<PodRow> {
        (offset..offset.saturating_add(height).min(self.len()))
            .filter_map(|i| self.row(i, now))
            .collect()
    }

    pub fn selected(&self) -> usize {
        self.selected
    }

    pub fn selected_pod(&self) -> Option<&Arc<PodSummary>> {
        self.pod(self.selected)
    }

    /// Moves the selection by `delta` rows, clamped.
    pub fn move_selection(&mut self, delta: isize) {
        let last = self.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    pub fn select_first(&mut self) {
        self.selected = 0;
    }

    pub fn select_last(&mut self) {
        self.selected = self.len().saturating_sub(1);
    }

    /// Selects a pod by identity; false (selection unchanged) if it is not visible.
    pub fn select_pod(&mut self, namespace: &str, name: &str) -> bool {
        match self.visible.iter().position(|&k| {
            let p = &self.pods[k as usize];
            p.namespace == namespace && p.name == name
        }) {
            Some(i) => {
                self.selected = i;
                true
            }
            None => false,
        }
    }

    /// The first visible row for a window of `height` rows that keeps the selection in view,
    /// given the previous offset.
    pub fn scroll_offset(&self, previous: usize, height: usize) -> usize {
        if height == 0 {
            return 0;
        }
        if self.selected < previous {
            self.selected
        } else if self.selected >= previous + height {
            self.selected + 1 - height
        } else {
            previous.min(self.len().saturating_sub(height))
        }
    }
}

fn compare(column: PodColumn, a: &PodSummary, b: &PodSummary) -> Ordering {
    match column {
        PodColumn::Namespace => a.namespace.cmp(&b.namespace),
        PodColumn::Name => a.name.cmp(&b.name),
        // Not ready first.
        PodColumn::Ready => a.ready.cmp(&b.ready),
        // Among unhealthy pods, the one restarting most first; healthy ones by name.
        PodColumn::Status => health_rank(a).cmp(&health_rank(b)).then_with(|| {
            if a.reason.is_some() {
                b.restarts.cmp(&a.restarts)
            } else {
                Ordering::Equal
            }
        }),
        // Most restarts first.
        PodColumn::Restarts => b.restarts.cmp(&a.restarts),
        // Youngest first; unknown creation last.
        PodColumn::Age => match (a.created, b.created) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        PodColumn::Node => a.node.cmp(&b.node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, reason: Option<PodReason>, restarts: u32) -> Arc<PodSummary> {
        Arc::new(PodSummary {
            namespace: ns.into(),
            name: name.into(),
            phase: Phase::Running,
            ready: reason.is_none(),
            crashloop: reason == Some(PodReason::CrashLoopBackOff),
            reason,
            restarts,
            created: Some(Timestamp::from_second(1_700_000_000).unwrap()),
            node: Some("node-a".into()),
            labels: vec![("app".into(), name.split('-').next().unwrap_or("").into())],
        })
    }

    fn names(t: &PodTable) -> Vec<String> {
        (0..t.len())
            .map(|i| t.pod(i).unwrap().name.clone())
            .collect()
    }

    fn fixture() -> PodTable {
        PodTable::new(vec![
            pod("a", "web-1", None, 0),
            pod("b", "iam-1", Some(PodReason::CrashLoopBackOff), 12),
            pod("a", "db-0", Some(PodReason::Pending), 0),
            pod("b", "web-2", None, 3),
        ])
    }

    #[test]
    fn unhealthy_pods_come_first_by_default() {
        assert_eq!(names(&fixture()), ["iam-1", "db-0", "web-1", "web-2"]);
    }

    #[test]
    fn sorting_the_same_column_twice_flips_direction() {
        let mut t = fixture();
        t.sort_by(PodColumn::Name);
        assert_eq!(names(&t), ["db-0", "iam-1", "web-1", "web-2"]);
        t.sort_by(PodColumn::Name);
        assert_eq!(names(&t), ["web-2", "web-1", "iam-1", "db-0"]);
        t.sort_by(PodColumn::Restarts);
        assert_eq!(names(&t)[0], "iam-1");
    }

    #[test]
    fn filter_matches_substrings_and_labels() {
        let mut t = fixture();
        t.set_filter("WEB");
        assert_eq!(names(&t), ["web-1", "web-2"]);
        t.set_filter("app=iam");
        assert_eq!(names(&t), ["iam-1"]);
        t.set_filter("app!=web b/");
        assert_eq!(names(&t), ["iam-1"]);
        t.set_filter("crashloop");
        assert_eq!(names(&t), ["iam-1"]);
        t.set_filter("");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn namespace_scope_cycles_through_all_namespaces() {
        let mut t = fixture();
        t.cycle_namespace();
        assert_eq!(t.scope(), &NamespaceScope::One("a".into()));
        assert_eq!(names(&t), ["db-0", "web-1"]);
        t.cycle_namespace();
        assert_eq!(names(&t), ["iam-1", "web-2"]);
        t.cycle_namespace();
        assert_eq!(t.scope(), &NamespaceScope::All);
    }

    #[test]
    fn selection_follows_the_pod_across_filter_and_snapshot_changes() {
        let mut t = fixture();
        assert!(t.select_pod("b", "web-2"));
        t.set_filter("web");
        assert_eq!(t.selected_pod().unwrap().name, "web-2");
        t.set_pods(vec![pod("b", "web-2", None, 3), pod("a", "web-9", None, 0)]);
        assert_eq!(t.selected_pod().unwrap().name, "web-2");
        t.move_selection(10);
        assert_eq!(t.selected(), 1);
        t.move_selection(-10);
        assert_eq!(t.selected(), 0);
    }

    #[test]
    fn window_renders_only_the_requested_rows() {
        let t = fixture();
        let now = Timestamp::from_second(1_700_000_000 + 3700).unwrap();
        let w = t.window(1, 2, now);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].name, "db-0");
        assert_eq!(w[0].age, "1h1m");
        assert!(t.window(3, 10, now).len() == 1);
    }

    #[test]
    fn scroll_offset_keeps_the_selection_visible() {
        let mut t = fixture();
        t.move_selection(3);
        assert_eq!(t.scroll_offset(0, 2), 2);
        t.select_first();
        assert_eq!(t.scroll_offset(2, 2), 0);
    }
}
