//! The ArgoCD tile and detail drawn from fixture snapshots, at a cluster column's width (38)
//! and a full terminal's (78), checked with insta.

use jiff::{SignedDuration, Timestamp};
use opsdeck::model::Stale;
use opsdeck::model::argocd::{
    AppSummary, ArgocdSnapshot, Condition, FollowMode, Health, HistoryEntry, Operation,
    OperationPhase, ResourceRow, SyncStatus,
};
use opsdeck::ui::Theme;
use opsdeck::ui::tiles::argocd::{detail, tile};
use ratatui::text::Line;

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().expect("time")
}

fn ago(s: i64) -> Option<Timestamp> {
    Some(now() - SignedDuration::from_secs(s))
}

fn app(name: &str, images: &[&str]) -> AppSummary {
    AppSummary {
        name: name.into(),
        project: if name.starts_with("infra-") {
            "infra"
        } else {
            "goapps"
        }
        .into(),
        sync: SyncStatus::Synced,
        health: Health::Healthy,
        health_message: String::new(),
        revision: format!("{:0<40}", "7c9d2e1"),
        target_revision: "main".into(),
        auto_sync: false,
        images: images.iter().map(|s| s.to_string()).collect(),
        last_synced_at: ago(3 * 3600),
        operation: Some(Operation {
            phase: OperationPhase::Succeeded,
            message: "successfully synced (all tasks run)".into(),
            started_at: ago(3 * 3600 + 12),
            finished_at: ago(3 * 3600),
        }),
        conditions: vec![],
        history: vec![
            HistoryEntry {
                id: 1,
                revision: format!("{:0<40}", "1a2b3c4"),
                deployed_at: ago(2 * 86_400),
            },
            HistoryEntry {
                id: 2,
                revision: format!("{:0<40}", "7c9d2e1"),
                deployed_at: ago(3 * 3600),
            },
        ],
        resources: vec![
            ResourceRow {
                kind: "Service".into(),
                namespace: "goapps-production".into(),
                name: name.trim_end_matches("-production").into(),
                sync: "Synced".into(),
                health: "Healthy".into(),
            },
            ResourceRow {
                kind: "Deployment".into(),
                namespace: "goapps-production".into(),
                name: name.trim_end_matches("-production").into(),
                sync: "Synced".into(),
                health: "Healthy".into(),
            },
        ],
    }
}

fn production() -> ArgocdSnapshot {
    let mut iam = app(
        "iam-service-production",
        &["ghcr.io/goapps/iam-service:v1.9.0"],
    );
    iam.health = Health::Degraded;
    iam.health_message = "Deployment iam-service: exceeded its progress deadline".into();
    iam.resources[1].health = "Degraded".into();
    let mut frontend = app("frontend-production", &["ghcr.io/goapps/frontend:v1.4.2"]);
    frontend.sync = SyncStatus::OutOfSync;
    frontend.resources[1].sync = "OutOfSync".into();
    let mut backup = app(
        "infra-backup",
        &[
            "docker.io/library/postgres:18.1",
            "docker.io/minio/mc:latest",
        ],
    );
    backup.operation = Some(Operation {
        phase: OperationPhase::Failed,
        message: "one or more objects failed to apply".into(),
        started_at: ago(700),
        finished_at: ago(660),
    });
    backup.conditions.push(Condition {
        kind: "SyncError".into(),
        message: "CronJob postgres-backup-evening is invalid".into(),
        last_transition: ago(660),
    });
    ArgocdSnapshot {
        ci_sync: String::new(),
        endpoint: "https://10.10.0.21:30080".into(),
        insecure: false,
        mode: FollowMode::Stream,
        apps: vec![
            app(
                "finance-service-production",
                &["ghcr.io/goapps/finance-service:v2.7.1"],
            ),
            frontend,
            iam,
            backup,
            app("infra-database", &["docker.io/library/postgres:18.1"]),
            app(
                "infra-minio",
                &["quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"],
            ),
        ],
    }
}

fn text(lines: &[Line<'_>]) -> String {
    lines
        .iter()
        .map(|l| {
            l.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn width_of(lines: &[Line<'_>]) -> usize {
    lines.iter().map(Line::width).max().unwrap_or(0)
}

const PLAIN: Theme = Theme { color: false };

#[test]
fn tile_at_38_shows_counts_then_trouble_first() {
    let lines = tile(Some(&production()), None, 38, 8, now(), PLAIN);
    assert!(lines.len() <= 8 && width_of(&lines) <= 38);
    insta::assert_snapshot!("tile_38", text(&lines));
}

#[test]
fn tile_at_78_uses_one_line_per_app() {
    let lines = tile(Some(&production()), None, 78, 8, now(), PLAIN);
    assert!(width_of(&lines) <= 78);
    insta::assert_snapshot!("tile_78", text(&lines));
}

#[test]
fn stale_tile_keeps_the_last_data_and_says_since_when() {
    let stale = Stale {
        since: now() - SignedDuration::from_secs(95),
        reason: "ArgoCD at https://10.10.0.21:30080 rejected the token (401): invalid session; set ARGOCD_PRODUCTION_TOKEN".into(),
    };
    let mut snap = production();
    snap.insecure = true;
    snap.mode = FollowMode::Polling;
    let lines = tile(Some(&snap), Some(&stale), 38, 6, now(), PLAIN);
    assert!(lines.len() <= 6);
    assert!(width_of(&lines) <= 38);
    insta::assert_snapshot!("tile_38_stale_insecure", text(&lines));
    let none = tile(None, Some(&stale), 38, 6, now(), PLAIN);
    assert!(text(&none).contains("no data yet"));
}

#[test]
fn all_synced_tile_says_so() {
    let mut snap = production();
    snap.apps
        .retain(|a| a.name.starts_with("finance") || a.name == "infra-minio");
    let lines = tile(Some(&snap), None, 38, 6, now(), PLAIN);
    assert!(text(&lines).contains("all 2 Synced and Healthy"));
}

#[test]
fn detail_at_78_lists_every_app_then_each_in_full() {
    let lines = detail(Some(&production()), None, 78, 40, now(), PLAIN);
    assert!(width_of(&lines) <= 78, "{}", text(&lines));
    insta::assert_snapshot!("detail_78", text(&lines));
}

#[test]
fn detail_at_38_fits_the_column() {
    let lines = detail(Some(&production()), None, 38, 40, now(), PLAIN);
    assert!(width_of(&lines) <= 38, "{}", text(&lines));
    insta::assert_snapshot!("detail_38", text(&lines));
}

/// The goapps fleet's facts in the app detail: staging apps are also synced by CI on every push
/// (`ci_sync = "*-staging"`), auto-sync's consequences, and a branch tag flagged as mutable.
#[test]
fn app_detail_shows_ci_sync_auto_sync_and_mutable_tags() {
    let mut iam = app(
        "iam-service-staging",
        &["ghcr.io/mutugading/iam-service:main"],
    );
    iam.auto_sync = true;
    let mut snap = production();
    snap.apps = vec![iam, app("infra-minio", &["docker.io/minio/minio:latest"])];
    snap.ci_sync = "*-staging".into();
    let staging = text(&opsdeck::ui::tiles::argocd::app_detail(
        &snap.apps[0],
        snap.ci_synced("iam-service-staging"),
        78,
        now(),
        PLAIN,
    ));
    assert!(
        staging.contains("also synced by CI on every push"),
        "{staging}"
    );
    assert!(staging.contains("rollback refused"), "{staging}");
    assert!(
        staging.contains("rollout undo will not roll back"),
        "{staging}"
    );
    assert!(
        staging.contains("iam-service:main  (mutable tag"),
        "{staging}"
    );
    let infra = text(&opsdeck::ui::tiles::argocd::app_detail(
        &snap.apps[1],
        snap.ci_synced("infra-minio"),
        78,
        now(),
        PLAIN,
    ));
    assert!(!infra.contains("CI"), "{infra}");
    insta::assert_snapshot!("app_detail_staging_ci_sync_78", staging);
}
