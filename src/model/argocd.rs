//! ArgoCD applications of one cluster as the console keeps them: compact per-app summaries
//! (never whole Application objects), the health rules that turn them into findings, the
//! `status --json` fragment, and the actions an engineer can ask for (as data, so a confirm
//! modal can hold the exact action).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::findings::{RawFinding, Severity};

/// The `source` of every ArgoCD finding and the key in `status --json`.
pub const SOURCE: &str = "argocd";

/// `status.sync.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncStatus {
    Synced,
    OutOfSync,
    Unknown,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 3] = [
        SyncStatus::Synced,
        SyncStatus::OutOfSync,
        SyncStatus::Unknown,
    ];

    /// Anything ArgoCD may add later reads as Unknown.
    pub fn parse(s: &str) -> SyncStatus {
        match s {
            "Synced" => SyncStatus::Synced,
            "OutOfSync" => SyncStatus::OutOfSync,
            _ => SyncStatus::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "Synced",
            SyncStatus::OutOfSync => "OutOfSync",
            SyncStatus::Unknown => "Unknown",
        }
    }
}

/// `status.health.status` (gitops-engine `health.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    Healthy,
    Progressing,
    Degraded,
    Suspended,
    Missing,
    Unknown,
}

impl Health {
    pub const ALL: [Health; 6] = [
        Health::Healthy,
        Health::Progressing,
        Health::Degraded,
        Health::Suspended,
        Health::Missing,
        Health::Unknown,
    ];

    pub fn parse(s: &str) -> Health {
        match s {
            "Healthy" => Health::Healthy,
            "Progressing" => Health::Progressing,
            "Degraded" => Health::Degraded,
            "Suspended" => Health::Suspended,
            "Missing" => Health::Missing,
            _ => Health::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Progressing => "Progressing",
            Health::Degraded => "Degraded",
            Health::Suspended => "Suspended",
            Health::Missing => "Missing",
            Health::Unknown => "Unknown",
        }
    }

    /// How bad this health is for an application as a whole.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Health::Degraded | Health::Missing => Some(Severity::Crit),
            Health::Progressing | Health::Suspended | Health::Unknown => Some(Severity::Warn),
            Health::Healthy => None,
        }
    }
}

/// `status.operationState.phase` (gitops-engine `sync/common/types.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationPhase {
    Running,
    Terminating,
    Failed,
    Error,
    Succeeded,
    Unknown,
}

impl OperationPhase {
    pub fn parse(s: &str) -> OperationPhase {
        match s {
            "Running" => OperationPhase::Running,
            "Terminating" => OperationPhase::Terminating,
            "Failed" => OperationPhase::Failed,
            "Error" => OperationPhase::Error,
            "Succeeded" => OperationPhase::Succeeded,
            _ => OperationPhase::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OperationPhase::Running => "Running",
            OperationPhase::Terminating => "Terminating",
            OperationPhase::Failed => "Failed",
            OperationPhase::Error => "Error",
            OperationPhase::Succeeded => "Succeeded",
            OperationPhase::Unknown => "Unknown",
        }
    }

    pub fn failed(self) -> bool {
        matches!(self, OperationPhase::Failed | OperationPhase::Error)
    }
}

/// The last (or running) operation of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub phase: OperationPhase,
    pub message: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub message: String,
    pub last_transition: Option<Timestamp>,
}

/// One entry of `status.history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: i64,
    pub revision: String,
    pub deployed_at: Option<Timestamp>,
}

/// One managed resource (`status.resources[]` or a resource-tree node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Empty for resource-tree nodes, which carry no sync status.
    pub sync: String,
    /// Empty when ArgoCD reports none (e.g. ConfigMaps, or List on 3.x).
    pub health: String,
}

/// What the console keeps of one Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSummary {
    pub name: String,
    pub project: String,
    pub sync: SyncStatus,
    pub health: Health,
    pub health_message: String,
    /// The synced revision in full (git SHA or chart version); empty when unknown.
    pub revision: String,
    pub target_revision: String,
    pub auto_sync: bool,
    pub images: Vec<String>,
    /// When the last sync finished (operation or newest history entry).
    pub last_synced_at: Option<Timestamp>,
    pub operation: Option<Operation>,
    pub conditions: Vec<Condition>,
    /// Oldest first, as ArgoCD keeps them.
    pub history: Vec<HistoryEntry>,
    pub resources: Vec<ResourceRow>,
}

impl AppSummary {
    /// A git SHA cut to 7 characters; anything else (a chart version, a tag) as it is.
    pub fn revision_short(&self) -> String {
        short_revision(&self.revision)
    }

    /// Synced and Healthy, and the last sync did not fail: nothing to look at.
    pub fn is_ok(&self) -> bool {
        self.sync == SyncStatus::Synced
            && self.health == Health::Healthy
            && !self.operation.as_ref().is_some_and(|o| o.phase.failed())
    }

    /// The one word that says what is wrong: the health if not Healthy, else the sync status
    /// if not Synced, else a failed operation's phase; `Healthy` when nothing is.
    pub fn trouble(&self) -> &'static str {
        if self.health != Health::Healthy {
            self.health.as_str()
        } else if self.sync != SyncStatus::Synced {
            self.sync.as_str()
        } else if let Some(o) = self.operation.as_ref().filter(|o| o.phase.failed()) {
            match o.phase {
                OperationPhase::Error => "SyncError",
                _ => "SyncFailed",
            }
        } else {
            "Healthy"
        }
    }

    /// The worst of health, sync and the last operation.
    pub fn severity(&self) -> Option<Severity> {
        let op = self
            .operation
            .as_ref()
            .filter(|o| o.phase.failed())
            .map(|_| Severity::Crit);
        let sync = (self.sync != SyncStatus::Synced).then_some(Severity::Warn);
        [self.health.severity(), op, sync]
            .into_iter()
            .flatten()
            .max()
    }

    /// Images on a mutable tag (`latest`, a branch name, or no tag at all), which a protected
    /// cluster should not run.
    pub fn mutable_images(&self) -> impl Iterator<Item = &String> {
        self.images.iter().filter(|i| is_mutable_image(i))
    }
}

/// A git SHA (40 hex digits) as its first 7; anything else unchanged.
pub fn short_revision(rev: &str) -> String {
    if rev.len() >= 12 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        rev[..7].to_string()
    } else {
        rev.to_string()
    }
}

/// Tags that name a branch or "the newest", not a build: they move under the same name.
const MUTABLE_TAGS: &[&str] = &[
    "latest",
    "main",
    "master",
    "develop",
    "development",
    "dev",
    "trunk",
    "head",
    "edge",
    "nightly",
    "staging",
    "production",
];

/// The mutable tag of an image: `latest` (also for `repo` with no tag and no digest) or a
/// branch-like tag (`main`, `master`, `develop`, ...). `None` for a version, a SHA or a digest.
pub fn mutable_tag(image: &str) -> Option<String> {
    if image.contains('@') {
        return None;
    }
    // The tag follows the last ':' after the last '/'; a ':' before it is a registry port.
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => Some("latest".into()),
        Some((_, "")) => Some("latest".into()),
        Some((_, tag)) => MUTABLE_TAGS
            .contains(&tag.to_ascii_lowercase().as_str())
            .then(|| tag.to_string()),
    }
}

/// True for an image on a mutable tag; see [`mutable_tag`].
pub fn is_mutable_image(image: &str) -> bool {
    mutable_tag(image).is_some()
}

/// How the source is following ArgoCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowMode {
    /// Live changes over `GET /api/v1/stream/applications`.
    Stream,
    /// The stream is unavailable; the list is polled.
    Polling,
}

impl FollowMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowMode::Stream => "stream",
            FollowMode::Polling => "polling",
        }
    }
}

/// Every application of one cluster's ArgoCD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgocdSnapshot {
    /// The URL the console talks to (never a credential).
    pub endpoint: String,
    /// TLS certificates are not checked (`insecure_skip_verify = true`): shown on screen.
    pub insecure: bool,
    pub mode: FollowMode,
    /// By name.
    pub apps: Vec<AppSummary>,
    /// `ci_sync = "GLOB"` of `[cluster.argocd]`: the apps CI also syncs on every push (the
    /// goapps fleet's `sync-argocd.yml` syncs `<app>-staging`); empty when not configured.
    pub ci_sync: String,
}

impl ArgocdSnapshot {
    pub fn sync_counts(&self) -> BTreeMap<SyncStatus, usize> {
        let mut m: BTreeMap<SyncStatus, usize> = SyncStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for a in &self.apps {
            *m.entry(a.sync).or_default() += 1;
        }
        m
    }

    pub fn health_counts(&self) -> BTreeMap<Health, usize> {
        let mut m: BTreeMap<Health, usize> = Health::ALL.iter().map(|h| (*h, 0)).collect();
        for a in &self.apps {
            *m.entry(a.health).or_default() += 1;
        }
        m
    }

    /// Applications that are not Synced+Healthy (or whose last sync failed), worst first,
    /// then by name.
    pub fn attention(&self) -> Vec<&AppSummary> {
        let mut v: Vec<&AppSummary> = self.apps.iter().filter(|a| !a.is_ok()).collect();
        v.sort_by(|a, b| b.severity().cmp(&a.severity()).then(a.name.cmp(&b.name)));
        v
    }

    pub fn app(&self, name: &str) -> Option<&AppSummary> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Whether CI syncs `app` on every push too (`ci_sync`): auto-sync off does not stop it.
    pub fn ci_synced(&self, app: &str) -> bool {
        !self.ci_sync.is_empty() && crate::sources::backups::glob_match(&self.ci_sync, app)
    }
}

/// The health rules. `protected` is the cluster's `protected` flag (mutable image tags matter
/// there). `now` is unused today but kept for rules on ages, like every feature's.
pub fn findings(snap: &ArgocdSnapshot, _now: Timestamp, protected: bool) -> Vec<RawFinding> {
    let mut out = Vec::new();
    for a in &snap.apps {
        let name = &a.name;
        if matches!(a.health, Health::Degraded | Health::Missing) {
            let detail = if a.health_message.is_empty() {
                String::new()
            } else {
                format!(": {}", a.health_message)
            };
            out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                format!("app/{name}/health"),
                format!("ArgoCD application {name} is {}{detail}", a.health.as_str()),
            ));
        }
        if let Some(op) = a.operation.as_ref().filter(|o| o.phase.failed()) {
            out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                format!("app/{name}/operation"),
                format!(
                    "ArgoCD application {name}: last sync {}: {}",
                    op.phase.as_str().to_lowercase(),
                    if op.message.is_empty() {
                        "no message"
                    } else {
                        &op.message
                    }
                ),
            ));
        }
        if a.sync == SyncStatus::OutOfSync {
            let target = if a.target_revision.is_empty() {
                String::new()
            } else {
                format!(" with {}", a.target_revision)
            };
            let how = if a.auto_sync {
                "auto-sync is on; check its last operation"
            } else {
                "auto-sync is off: sync it by hand"
            };
            out.push(RawFinding::new(
                Severity::Warn,
                SOURCE,
                format!("app/{name}/sync"),
                format!("ArgoCD application {name} is OutOfSync{target} ({how})"),
            ));
        }
        // ArgoCD's summary lists images, not their imagePullPolicy: a mutable tag on a
        // protected cluster is flagged whatever the policy (the goapps backends use Always, so
        // `kubectl rollout undo` pulls the same moved tag again).
        if protected {
            for image in a.mutable_images() {
                let tag = mutable_tag(image).unwrap_or_default();
                out.push(RawFinding::new(
                    Severity::Warn,
                    SOURCE,
                    format!("app/{name}/image/{image}"),
                    format!(
                        "ArgoCD application {name} runs {image}: the mutable tag {tag:?} on a protected cluster; rollout undo will not roll back (with imagePullPolicy: Always it pulls the same tag again): pin a SHA in git and sync"
                    ),
                ));
            }
        }
    }
    out
}

/// A finding for a failing source (kept beside the stale data). A rejected token is critical:
/// nothing will recover until someone fixes it.
pub fn failing_finding(reason: &str) -> RawFinding {
    if reason.contains("(401)") || reason.contains("(403)") {
        RawFinding::new(Severity::Crit, SOURCE, "auth", reason.to_string())
    } else {
        RawFinding::new(
            Severity::Warn,
            SOURCE,
            "unreachable",
            format!("ArgoCD is failing: {reason}"),
        )
    }
}

fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    })
}

/// The `argocd` object of `status --json` (no `stale`: the caller adds it).
///
/// `{"endpoint", "insecure", "mode": "stream"|"polling",
///   "counts": {"sync": {"Synced": n, ...}, "health": {"Healthy": n, ...}},
///   "attention": [names not Synced+Healthy, worst first],
///   "apps": [{"name", "project", "sync", "health", "revision", "target_revision", "auto_sync",
///             "images", "last_synced_at", "operation": {"phase", "message", "finished_at"} | null}]}`
pub fn to_json(snap: &ArgocdSnapshot) -> Value {
    let sync: serde_json::Map<String, Value> = snap
        .sync_counts()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
        .collect();
    let health: serde_json::Map<String, Value> = snap
        .health_counts()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
        .collect();
    let apps: Vec<Value> = snap
        .apps
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "project": a.project,
                "sync": a.sync.as_str(),
                "health": a.health.as_str(),
                "revision": a.revision_short(),
                "target_revision": a.target_revision,
                "auto_sync": a.auto_sync,
                "images": a.images,
                "last_synced_at": ts(a.last_synced_at),
                "operation": a.operation.as_ref().map(|o| json!({
                    "phase": o.phase.as_str(),
                    "message": o.message,
                    "finished_at": ts(o.finished_at),
                })),
            })
        })
        .collect();
    json!({
        "endpoint": snap.endpoint,
        "insecure": snap.insecure,
        "mode": snap.mode.as_str(),
        "counts": {"sync": sync, "health": health},
        "attention": snap.attention().iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        "apps": apps,
    })
}

/// A state-changing request on one application, held by the confirm modal until accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoAction {
    /// `GET …/{name}?refresh=normal|hard`.
    Refresh { hard: bool },
    /// `POST …/{name}/sync`.
    Sync { prune: bool },
    /// `POST …/{name}/rollback` to a history id.
    Rollback { id: i64 },
}

impl ArgoAction {
    /// `sync finance-service-production (prune)`, for the modal, the notice and the audit log.
    pub fn describe(&self, app: &str) -> String {
        match self {
            ArgoAction::Refresh { hard: false } => format!("refresh {app}"),
            ArgoAction::Refresh { hard: true } => format!("hard-refresh {app}"),
            ArgoAction::Sync { prune: false } => format!("sync {app}"),
            ArgoAction::Sync { prune: true } => format!("sync {app} (prune)"),
            ArgoAction::Rollback { id } => format!("roll back {app} to history id {id}"),
        }
    }

    /// The short name for the audit log's `action` record.
    pub fn name(&self) -> &'static str {
        match self {
            ArgoAction::Refresh { .. } => "argocd.refresh",
            ArgoAction::Sync { .. } => "argocd.sync",
            ArgoAction::Rollback { .. } => "argocd.rollback",
        }
    }
}

/// Whether the confirm modal must ask for the cluster's name typed out: a sync on a protected
/// cluster, and every rollback. A refresh changes nothing deployed, so a plain yes will do.
pub fn needs_typed_confirmation(action: &ArgoAction, protected: bool) -> bool {
    match action {
        ArgoAction::Refresh { .. } => false,
        ArgoAction::Sync { .. } => protected,
        ArgoAction::Rollback { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppSummary {
        AppSummary {
            name: name.into(),
            project: "default".into(),
            sync: SyncStatus::Synced,
            health: Health::Healthy,
            health_message: String::new(),
            revision: "4f2a9c1e0b7d3a5c6e8f9a0b1c2d3e4f5a6b7c8d".into(),
            target_revision: "main".into(),
            auto_sync: true,
            images: vec!["ghcr.io/goapps/iam-service:v1.9.0".into()],
            last_synced_at: None,
            operation: None,
            conditions: vec![],
            history: vec![],
            resources: vec![],
        }
    }

    fn snap(apps: Vec<AppSummary>) -> ArgocdSnapshot {
        ArgocdSnapshot {
            endpoint: "http://127.0.0.1:1".into(),
            insecure: false,
            mode: FollowMode::Stream,
            apps,
            ci_sync: String::new(),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn branch_tags_are_mutable_and_ci_sync_matches_by_glob() {
        assert_eq!(
            mutable_tag("ghcr.io/mutugading/iam-service:main").as_deref(),
            Some("main")
        );
        assert!(is_mutable_image("ghcr.io/mutugading/iam-service:develop"));
        assert!(is_mutable_image("ghcr.io/mutugading/iam-service:master"));
        assert!(!is_mutable_image("ghcr.io/mutugading/iam-service:a9d39bf"));
        assert!(!is_mutable_image("ghcr.io/mutugading/frontend:sha-7e3bcd5"));
        let mut s = snap(vec![app("iam-service-staging"), app("infra-minio")]);
        assert!(!s.ci_synced("iam-service-staging"));
        s.ci_sync = "*-staging".into();
        assert!(s.ci_synced("iam-service-staging"));
        assert!(!s.ci_synced("infra-minio"));
    }

    #[test]
    fn latest_on_production_says_rollout_undo_will_not_roll_back() {
        let mut a = app("iam-service-production");
        a.images = vec!["ghcr.io/mutugading/iam-service:latest".into()];
        let f = findings(&snap(vec![a]), now(), true);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(
            f[0].message.contains("rollout undo will not roll back")
                && f[0].message.contains("pin a SHA in git and sync"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn mutable_tags_are_latest_or_missing() {
        assert!(is_mutable_image("docker.io/minio/mc:latest"));
        assert!(is_mutable_image("nginx"));
        assert!(is_mutable_image("registry.local:5000/goapps/web"));
        assert!(!is_mutable_image("registry.local:5000/goapps/web:v1"));
        assert!(!is_mutable_image("ghcr.io/x/y@sha256:abcd"));
        assert!(!is_mutable_image("ghcr.io/goapps/iam-service:v1.9.0"));
    }

    #[test]
    fn short_revision_cuts_shas_only() {
        assert_eq!(
            short_revision("4f2a9c1e0b7d3a5c6e8f9a0b1c2d3e4f5a6b7c8d"),
            "4f2a9c1"
        );
        assert_eq!(short_revision("1.2.3"), "1.2.3");
        assert_eq!(short_revision(""), "");
    }

    #[test]
    fn degraded_and_missing_are_critical_and_name_the_app() {
        let mut a = app("iam-service-production");
        a.health = Health::Degraded;
        a.health_message = "Deployment has 1/2 ready".into();
        let mut b = app("infra-minio");
        b.health = Health::Missing;
        let f = findings(&snap(vec![a, b]), now(), false);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.severity == Severity::Crit));
        assert!(
            f[0].message
                .contains("iam-service-production is Degraded: Deployment has 1/2")
        );
        assert!(f[1].message.contains("infra-minio is Missing"));
    }

    #[test]
    fn out_of_sync_warns_and_says_when_auto_sync_is_off() {
        let mut a = app("frontend-production");
        a.sync = SyncStatus::OutOfSync;
        a.auto_sync = false;
        let f = findings(&snap(vec![a]), now(), true);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(
            f[0].message
                .contains("frontend-production is OutOfSync with main")
        );
        assert!(
            f[0].message.contains("auto-sync is off"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn failed_last_sync_is_critical() {
        let mut a = app("infra-backup");
        a.operation = Some(Operation {
            phase: OperationPhase::Failed,
            message: "one or more objects failed to apply".into(),
            started_at: None,
            finished_at: None,
        });
        let f = findings(&snap(vec![a]), now(), false);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Crit);
        assert!(
            f[0].message
                .contains("infra-backup: last sync failed: one or more")
        );
    }

    #[test]
    fn latest_tag_warns_only_on_protected_clusters() {
        let mut a = app("infra-backup");
        a.images.push("docker.io/minio/mc:latest".into());
        assert!(findings(&snap(vec![a.clone()]), now(), false).is_empty());
        let f = findings(&snap(vec![a]), now(), true);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(
            f[0].message
                .contains("infra-backup runs docker.io/minio/mc:latest")
        );
    }

    #[test]
    fn typed_confirmation_for_protected_sync_and_every_rollback() {
        let sync = ArgoAction::Sync { prune: false };
        let rollback = ArgoAction::Rollback { id: 3 };
        let refresh = ArgoAction::Refresh { hard: true };
        assert!(needs_typed_confirmation(&sync, true));
        assert!(!needs_typed_confirmation(&sync, false));
        assert!(needs_typed_confirmation(&rollback, false));
        assert!(needs_typed_confirmation(&rollback, true));
        assert!(!needs_typed_confirmation(&refresh, true));
    }

    #[test]
    fn json_counts_and_lists_every_app() {
        let mut a = app("iam-service-production");
        a.health = Health::Degraded;
        a.operation = Some(Operation {
            phase: OperationPhase::Succeeded,
            message: "successfully synced".into(),
            started_at: None,
            finished_at: Some(now()),
        });
        let v = to_json(&snap(vec![a, app("infra-minio")]));
        assert_eq!(v["counts"]["sync"]["Synced"], 2);
        assert_eq!(v["counts"]["health"]["Degraded"], 1);
        assert_eq!(v["counts"]["health"]["Missing"], 0);
        assert_eq!(v["attention"], json!(["iam-service-production"]));
        assert_eq!(v["apps"][0]["revision"], "4f2a9c1");
        assert_eq!(v["apps"][0]["operation"]["phase"], "Succeeded");
        assert_eq!(
            v["apps"][0]["operation"]["finished_at"],
            "2027-01-15T08:00:00Z"
        );
        assert_eq!(v["apps"][1]["operation"], Value::Null);
        assert!(v.get("stale").is_none());
    }

    #[test]
    fn rejected_token_is_a_critical_finding() {
        let f = failing_finding("ArgoCD at http://x rejected the token (401): set ARGOCD_TOKEN");
        assert_eq!(f.severity, Severity::Crit);
        assert!(
            f.message
                .starts_with("ArgoCD at http://x rejected the token (401)")
        );
        assert_eq!(
            failing_finding("connection refused").severity,
            Severity::Warn
        );
    }
}
