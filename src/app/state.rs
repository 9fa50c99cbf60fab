//! Everything the views draw, and nothing they would have to fetch.

use std::sync::Arc;

use jiff::Timestamp;

use crate::config::{ClusterConfig, Config};
use crate::keymap::{Keymap, Mode};
use crate::model::argocd::ArgocdSnapshot;
use crate::model::backups::BackupsSnapshot;
use crate::model::findings::{FindingTracker, RawFinding, Severity, worst};
use crate::model::kube::kube_findings;
use crate::model::pgbouncer::PgbouncerSnapshot;
use crate::model::redis::RedisSnapshot;
use crate::model::{self, Finding, KubeSnapshot, Stale};

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every cluster side by side (or one at a time when narrow).
    Overview,
    /// Every finding of every cluster, newest first.
    Findings,
    /// One cluster in full: every unhealthy pod, workload and node.
    Cluster(usize),
    /// A data panel's detail view for a cluster.
    Panel(usize, crate::sources::Feature),
    /// The port-forward shortcuts and internal forwards.
    Forwards,
    /// A cluster's pods table.
    Pods(usize),
    /// One pod: containers, events (`AppState::drill.pod`).
    Pod,
    /// A pod's log tail.
    Logs,
    /// A cluster's warning events.
    Events,
    /// A cluster's workloads.
    Workloads,
    /// The runbook list.
    Runbooks,
    /// The open runbook (`AppState::run`).
    Runbook,
}

/// One data panel of a cluster: its latest snapshot and, while its source fails, why.
#[derive(Debug, Clone)]
pub struct Panel<T> {
    pub configured: bool,
    pub data: Option<Arc<T>>,
    pub stale: Option<Stale>,
    /// Set by `status` when the source gave no first answer in time.
    pub no_answer: Option<std::time::Duration>,
}

impl<T> Panel<T> {
    fn new(configured: bool) -> Self {
        Panel {
            configured,
            data: None,
            stale: None,
            no_answer: None,
        }
    }

    /// Whether the source has answered (with data or a failure).
    pub fn answered(&self) -> bool {
        !self.configured || self.data.is_some() || self.stale.is_some()
    }

    pub fn set(&mut self, data: Arc<T>) {
        self.data = Some(data);
        self.stale = None;
    }

    pub fn fail(&mut self, reason: String, now: Timestamp) {
        let since = self.stale.as_ref().map_or(now, |s| s.since);
        self.stale = Some(Stale { since, reason });
    }

    /// The source's findings: from the data, plus one for the failure or the silence.
    fn raw_findings(
        &self,
        feature: &'static str,
        from_data: impl FnOnce(&T) -> Vec<RawFinding>,
        failing: impl FnOnce(&str) -> RawFinding,
    ) -> Vec<RawFinding> {
        let mut raw = self.data.as_deref().map(from_data).unwrap_or_default();
        if let Some(s) = &self.stale {
            raw.insert(0, failing(&s.reason));
        } else if let (None, Some(t)) = (&self.data, self.no_answer) {
            raw.push(RawFinding::new(
                Severity::Warn,
                feature,
                format!("{feature}/no-answer"),
                format!("{feature}: no answer within {}s", t.as_secs_f64()),
            ));
        }
        raw
    }
}

/// One cluster as the console sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub name: String,
    pub context: String,
    pub protected: bool,
    pub read_only: bool,
    pub kube: Option<Arc<KubeSnapshot>>,
    /// Set while the Kubernetes source is failing; the last snapshot stays.
    pub kube_stale: Option<Stale>,
    /// `None` until the API server has answered or failed once.
    pub reachable: Option<bool>,
    pub findings: Vec<Finding>,
    pub pgbouncer: Panel<PgbouncerSnapshot>,
    pub redis: Panel<RedisSnapshot>,
    pub argocd: Panel<ArgocdSnapshot>,
    pub backups: Panel<BackupsSnapshot>,
    /// Set while the audit log writes from its reserve (the disk is full): every action on
    /// this cluster is one record away from being refused.
    pub audit_reserve: Option<String>,
    tracker: FindingTracker,
}

impl ClusterView {
    pub fn new(cfg: &ClusterConfig) -> ClusterView {
        ClusterView {
            name: cfg.name.clone(),
            context: cfg.context.clone().unwrap_or_else(|| "(current)".into()),
            protected: cfg.protected,
            read_only: cfg.read_only,
            kube: None,
            kube_stale: None,
            reachable: None,
            findings: Vec::new(),
            audit_reserve: None,
            pgbouncer: Panel::new(cfg.pgbouncer.is_some()),
            redis: Panel::new(cfg.redis.is_some()),
            argocd: Panel::new(cfg.argocd.is_some()),
            backups: Panel::new(cfg.backups.is_some()),
            tracker: FindingTracker::default(),
        }
    }

    pub fn worst(&self) -> Option<Severity> {
        worst(&self.findings)
    }

    /// The API server gave no complete answer within `timeout` (used by `status`).
    pub fn mark_no_answer(&mut self, timeout: std::time::Duration, now: Timestamp) {
        self.reachable = Some(false);
        let reason = format!("no answer within {}s", timeout.as_secs_f64());
        self.kube_stale = Some(Stale { since: now, reason });
        self.refresh_findings(now);
    }

    /// Recomputes this cluster's findings from what it holds now.
    pub fn refresh_findings(&mut self, now: Timestamp) {
        let mut raw = match &self.kube {
            Some(snap) => kube_findings(snap, now),
            None => Vec::new(),
        };
        if let Some(stale) = &self.kube_stale {
            raw.insert(
                0,
                RawFinding::new(
                    Severity::Crit,
                    "kubernetes",
                    "api/unreachable",
                    format!(
                        "Kubernetes API of {} is failing: {}",
                        self.name, stale.reason
                    ),
                ),
            );
        }
        let protected = self.protected;
        let mut all = self.tracker.track("kubernetes", raw, now);
        let pg = self.pgbouncer.raw_findings(
            "pgbouncer",
            |s| model::pgbouncer::findings(s, now),
            model::pgbouncer::failing,
        );
        all.extend(self.tracker.track("pgbouncer", pg, now));
        let redis = self.redis.raw_findings(
            "redis",
            |s| model::redis::findings(s, now),
            model::redis::failing,
        );
        all.extend(self.tracker.track("redis", redis, now));
        let argo = self.argocd.raw_findings(
            "argocd",
            |s| model::argocd::findings(s, now, protected),
            model::argocd::failing_finding,
        );
        all.extend(self.tracker.track("argocd", argo, now));
        let backups = self.backups.raw_findings(
            "backups",
            |s| model::backups::findings(s, now),
            model::backups::failing,
        );
        all.extend(self.tracker.track("backups", backups, now));
        let audit = self
            .audit_reserve
            .iter()
            .map(|path| {
                RawFinding::new(
                    Severity::Crit,
                    "audit",
                    "audit/reserve",
                    format!(
                        "the audit log {path} is writing from its reserve: the disk is full; free space there, or the next actions are refused"
                    ),
                )
            })
            .collect();
        all.extend(self.tracker.track("audit", audit, now));
        self.findings = all;
    }
}

/// The whole console state.
#[derive(Debug, Clone)]
pub struct AppState {
    pub clusters: Vec<ClusterView>,
    /// The cluster keys act on, and the one shown when the terminal is too narrow for all.
    pub focus: usize,
    pub view: View,
    pub help: bool,
    /// Scroll offset of the list in the current view (findings, cluster detail, help).
    pub scroll: usize,
    pub now: Timestamp,
    /// When the console started watching, for "no answer yet" vs "failing".
    pub started: Timestamp,
    pub quit: bool,
    pub keymap: Keymap,
    /// Shown instead of clusters when there is nothing to show (e.g. no config).
    pub notice: Option<Vec<String>>,
    /// Non-fatal problems at start-up (keymap, config warnings), shown in the footer.
    pub warnings: Vec<String>,
    pub read_only: bool,
    /// Rows the current list view can show, learned from the last render (for page up/down).
    pub page: usize,
    /// The terminal's size (columns, rows) at the last render (the overlay scrolls within it).
    pub screen: (u16, u16),
    /// Every runbook (embedded and from `runbooks_dir`), by name.
    pub runbooks: Vec<std::sync::Arc<crate::runbook::Runbook>>,
    /// The selected runbook in the list.
    pub list_cursor: usize,
    pub run: Option<super::runbooks::RunbookView>,
    /// The runbook's forms (edit, skip, variables); keys go to them after the confirmation.
    pub modal: Option<super::runbooks::Modal>,
    /// The one confirmation overlay, holding the exact effect it emits; keys go to it first.
    pub confirm: Option<super::confirm::Confirm>,
    pub forwards: Option<Arc<crate::forward::ForwardSnapshot>>,
    pub forward_cursor: usize,
    /// The selected application in the ArgoCD view.
    pub argo_cursor: usize,
    /// Keys of a multi-key binding pressed so far (the which-key hint shows what may follow).
    pub pending: Vec<crate::keymap::Key>,
    /// The drill-down: pods table, pod, logs, events, workloads and their modal.
    pub drill: super::drill::DrillState,
    /// The last action's outcome per (cluster, application), shown in its row.
    pub argo_results: std::collections::HashMap<(usize, String), String>,
    /// The outcome of the last background action, shown in the footer.
    pub flash: Option<String>,
}

impl AppState {
    pub fn new(config: &Config, keymap: Keymap, now: Timestamp) -> AppState {
        AppState {
            clusters: config.clusters.iter().map(ClusterView::new).collect(),
            focus: 0,
            view: View::Overview,
            help: false,
            scroll: 0,
            now,
            started: now,
            quit: false,
            keymap,
            notice: None,
            warnings: Vec::new(),
            read_only: false,
            page: 10,
            screen: (80, 24),
            runbooks: Vec::new(),
            list_cursor: 0,
            run: None,
            modal: None,
            confirm: None,
            forwards: None,
            forward_cursor: 0,
            argo_cursor: 0,
            argo_results: Default::default(),
            drill: super::drill::DrillState::with_scale_ceiling(config.scale_ceiling()),
            pending: Vec::new(),
            flash: None,
        }
    }

    /// The keymap mode for the current screen.
    pub fn mode(&self) -> Mode {
        if self.help {
            Mode::Help
        } else {
            match self.view {
                View::Overview => Mode::Overview,
                View::Panel(_, crate::sources::Feature::Argocd) => Mode::Argocd,
                View::Findings
                | View::Cluster(_)
                | View::Panel(..)
                | View::Runbooks
                | View::Forwards => Mode::List,
                View::Runbook => Mode::Runbook,
                View::Pods(_) => Mode::Pods,
                View::Pod => Mode::Pod,
                View::Logs => Mode::Logs,
                View::Workloads => Mode::Workloads,
                View::Events => Mode::List,
            }
        }
    }

    /// Every finding of every cluster, newest first: (cluster index, finding).
    pub fn all_findings(&self) -> Vec<(usize, &Finding)> {
        let mut all: Vec<_> = self
            .clusters
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.findings.iter().map(move |f| (i, f)))
            .collect();
        all.sort_by(|a, b| {
            b.1.since
                .cmp(&a.1.since)
                .then(b.1.severity.cmp(&a.1.severity))
        });
        all
    }
}
