//! Everything the views draw, and nothing they would have to fetch.

use std::sync::Arc;

use jiff::Timestamp;

use crate::config::{ClusterConfig, Config};
use crate::keymap::{Keymap, Mode};
use crate::model::findings::{FindingTracker, RawFinding, Severity, worst};
use crate::model::kube::kube_findings;
use crate::model::{Finding, KubeSnapshot, Stale};

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every cluster side by side (or one at a time when narrow).
    Overview,
    /// Every finding of every cluster, newest first.
    Findings,
    /// One cluster in full: every unhealthy pod, workload and node.
    Cluster(usize),
    /// The runbook list.
    Runbooks,
    /// The open runbook (`AppState::run`).
    Runbook,
}

/// A feature tile (PgBouncer, Redis, Backups, ArgoCD) before its feature lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureTile {
    NotConfigured,
    /// Configured in the file, but this build does not read it yet.
    NotBuilt,
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
    pub tiles: [(&'static str, FeatureTile); 4],
    tracker: FindingTracker,
}

impl ClusterView {
    pub fn new(cfg: &ClusterConfig) -> ClusterView {
        let tile = |t: &Option<toml::Table>| {
            if t.is_some() {
                FeatureTile::NotBuilt
            } else {
                FeatureTile::NotConfigured
            }
        };
        ClusterView {
            name: cfg.name.clone(),
            context: cfg.context.clone().unwrap_or_else(|| "(current)".into()),
            protected: cfg.protected,
            read_only: cfg.read_only,
            kube: None,
            kube_stale: None,
            reachable: None,
            findings: Vec::new(),
            tiles: [
                ("PgBouncer", tile(&cfg.pgbouncer)),
                ("Redis", tile(&cfg.redis)),
                ("Backups", tile(&cfg.backups)),
                ("ArgoCD", tile(&cfg.argocd)),
            ],
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
        self.findings = self.tracker.track("kubernetes", raw, now);
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
    /// Every runbook (embedded and from `runbooks_dir`), by name.
    pub runbooks: Vec<std::sync::Arc<crate::runbook::Runbook>>,
    /// The selected runbook in the list.
    pub list_cursor: usize,
    pub run: Option<super::runbooks::RunbookView>,
    /// A modal holding an action until the engineer confirms it; keys go to it first.
    pub modal: Option<super::runbooks::Modal>,
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
            runbooks: Vec::new(),
            list_cursor: 0,
            run: None,
            modal: None,
        }
    }

    /// The keymap mode for the current screen.
    pub fn mode(&self) -> Mode {
        if self.help {
            Mode::Help
        } else {
            match self.view {
                View::Overview => Mode::Overview,
                View::Findings | View::Cluster(_) | View::Runbooks => Mode::List,
                View::Runbook => Mode::Runbook,
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
