//! The views drawn from fixture state on ratatui's TestBackend, checked with insta snapshots.

use std::sync::Arc;

use jiff::Timestamp;
use opsdeck::app::{AppState, Event, update};
use opsdeck::config::{ClusterConfig, Config};
use opsdeck::keymap::{EMBEDDED, Keymap};
use opsdeck::model::kube::Phase;
use opsdeck::model::{KubeSnapshot, NodeSummary, PodReason, PodSummary, WorkloadSummary};
use opsdeck::sources::{SourceEvent, SourceUpdate};
use opsdeck::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
}

fn pod(
    ns: &str,
    name: &str,
    reason: Option<PodReason>,
    restarts: u32,
    age_s: i64,
) -> Arc<PodSummary> {
    let phase = match reason {
        Some(PodReason::Pending | PodReason::ImagePullBackOff) => Phase::Pending,
        _ => Phase::Running,
    };
    Arc::new(PodSummary {
        namespace: ns.into(),
        name: name.into(),
        phase,
        ready: reason.is_none(),
        crashloop: reason == Some(PodReason::CrashLoopBackOff),
        reason,
        restarts,
        created: Some(now() - jiff::SignedDuration::from_secs(age_s)),
        node: Some("vps".into()),
        labels: vec![],
    })
}

fn snapshot(
    env: &str,
    broken: &[(&str, &str, PodReason, u32, i64)],
    degraded: &[(&str, &str, i32, i32)],
) -> KubeSnapshot {
    let mut pods = Vec::new();
    for (i, name) in [
        "finance-service-6d8f9c7b5-abcde",
        "frontend-7b9c6d5f4-fghij",
        "postgres-0",
        "pgbouncer-5f6c7d8e9-klmno",
    ]
    .iter()
    .enumerate()
    {
        let ns = if i < 2 {
            format!("goapps-{env}")
        } else {
            "database".into()
        };
        pods.push(pod(&ns, name, None, 0, 86_400 * 3));
    }
    for (ns, name, reason, restarts, age) in broken {
        pods.push(pod(ns, name, Some(*reason), *restarts, *age));
    }
    let mut workloads: Vec<WorkloadSummary> = degraded
        .iter()
        .map(|(ns, name, want, have)| WorkloadSummary {
            kind: "Deployment",
            namespace: (*ns).into(),
            name: (*name).into(),
            desired: *want,
            available: *have,
        })
        .collect();
    workloads.push(WorkloadSummary {
        kind: "StatefulSet",
        namespace: "database".into(),
        name: "postgres".into(),
        desired: 1,
        available: 1,
    });
    let node = NodeSummary {
        name: format!("{env}-vps"),
        ready: true,
        pressure: vec![],
    };
    KubeSnapshot::new(pods, workloads, vec![node])
}

fn fixture() -> AppState {
    let config = Config {
        clusters: vec![
            ClusterConfig {
                name: "staging".into(),
                context: Some("default".into()),
                ..Default::default()
            },
            ClusterConfig {
                name: "production".into(),
                context: Some("default".into()),
                protected: true,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut state = AppState::new(
        &config,
        Keymap::parse(EMBEDDED[0].1).unwrap(),
        now() - jiff::SignedDuration::from_secs(600),
    );
    let staging = snapshot(
        "staging",
        &[(
            "goapps-staging",
            "frontend-5c4b3a2d1-zz9yx",
            PodReason::ImagePullBackOff,
            0,
            900,
        )],
        &[],
    );
    let production = snapshot(
        "production",
        &[
            (
                "goapps-production",
                "iam-service-7c9d8f6b5-x2k4p",
                PodReason::CrashLoopBackOff,
                12,
                3600,
            ),
            ("monitoring", "loki-0", PodReason::NotReady, 1, 7200),
        ],
        &[("goapps-production", "iam-service", 2, 1)],
    );
    for (i, snap) in [staging, production].into_iter().enumerate() {
        update(
            &mut state,
            Event::Source(SourceEvent {
                cluster: i,
                update: SourceUpdate::Kube(Arc::new(snap)),
            }),
        );
    }
    update(&mut state, Event::Tick(now()));
    state
}

fn draw(state: &AppState, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| render(f, state, Theme { color: false }))
        .unwrap();
    format!("{}", term.backend())
}

#[test]
fn overview_80x24_shows_both_clusters_side_by_side() {
    let screen = draw(&fixture(), 80, 24);
    assert!(screen.contains("staging") && screen.contains("production [PROD]"));
    assert!(screen.contains("iam-service-7c9d8f6b5-x2k4p"));
    insta::assert_snapshot!(screen);
}

#[test]
fn overview_160x48_uses_wide_rows() {
    insta::assert_snapshot!(draw(&fixture(), 160, 48));
}

#[test]
fn narrow_terminal_shows_one_cluster_with_a_switch_key() {
    let mut state = fixture();
    let screen = draw(&state, 60, 24);
    assert!(screen.contains("(tab: switch)"));
    insta::assert_snapshot!("narrow_staging", screen);
    update(&mut state, Event::Key("tab".parse().unwrap()));
    insta::assert_snapshot!("narrow_production", draw(&state, 60, 24));
}

#[test]
fn stale_cluster_keeps_its_pods_and_says_since_when() {
    let mut state = fixture();
    update(
        &mut state,
        Event::Source(SourceEvent {
            cluster: 0,
            update: SourceUpdate::KubeFailing {
                reason: "connection refused".into(),
            },
        }),
    );
    update(
        &mut state,
        Event::Tick(now() + jiff::SignedDuration::from_secs(90)),
    );
    let screen = draw(&state, 80, 24);
    assert!(
        screen.contains("stale since 03:00:00 (1m): connection r"),
        "{screen}"
    );
    assert!(
        screen.contains("frontend-5c4b3a2d1-zz9yx"),
        "last good data stays on screen"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn findings_view_lists_newest_first() {
    let mut state = fixture();
    update(&mut state, Event::Key("f".parse().unwrap()));
    insta::assert_snapshot!(draw(&state, 80, 24));
}

#[test]
fn cluster_view_and_help_overlay() {
    let mut state = fixture();
    update(&mut state, Event::Key("tab".parse().unwrap()));
    update(&mut state, Event::Key("i".parse().unwrap()));
    insta::assert_snapshot!("cluster_production", draw(&state, 80, 24));
    update(&mut state, Event::Key("?".parse().unwrap()));
    let help = draw(&state, 80, 24);
    assert!(
        help.contains("ctrl-c q") || help.contains("q ctrl-c"),
        "{help}"
    );
    insta::assert_snapshot!("help", help);
}

#[test]
fn no_config_screen_explains_how_to_start() {
    let mut state = AppState::new(
        &Config::default(),
        Keymap::parse(EMBEDDED[0].1).unwrap(),
        now(),
    );
    state.notice = Some(vec![
        "opsdeck: no config found.".into(),
        "    opsdeck demo".into(),
    ]);
    let screen = draw(&state, 80, 24);
    assert!(screen.contains("opsdeck demo"));
}

fn forward(
    cluster: &str,
    name: &str,
    target: &str,
    state: opsdeck::forward::ForwardState,
    port: Option<u16>,
) -> opsdeck::forward::ForwardStatus {
    opsdeck::forward::ForwardStatus {
        cluster: cluster.into(),
        name: name.into(),
        target: target.into(),
        scheme: port.and(Some(opsdeck::config::ForwardScheme::Http)),
        key: (name == "grafana" && cluster == "production").then(|| "g".into()),
        local: port.map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p))),
        state,
        pod: port.map(|_| "kube-prometheus-stack-grafana-5d9f7-abcde".into()),
        pod_port: port.map(|_| 3000),
        open_connections: 2,
        connections_total: 7,
        bytes_in: 12_897_485,
        bytes_out: 2_048,
        started_at: Some(now() - jiff::SignedDuration::from_secs(420)),
        last_error: None,
    }
}

#[test]
fn forwards_view_lists_state_addresses_and_bytes() {
    use opsdeck::forward::{ForwardSnapshot, ForwardState};
    let mut state = fixture();
    let snap = ForwardSnapshot {
        shortcuts: vec![
            forward(
                "production",
                "grafana",
                "monitoring/service/kube-prometheus-stack-grafana:80",
                ForwardState::Connected,
                Some(40123),
            ),
            forward(
                "production",
                "postgres",
                "database/pod/postgres-0:5432",
                ForwardState::Reconnecting("pod postgres-0 is gone".into()),
                Some(40124),
            ),
            forward(
                "staging",
                "argocd",
                "argocd/service/argocd-server:https",
                ForwardState::Failed("no Running and Ready pod behind argocd/argocd-server".into()),
                None,
            ),
            forward(
                "staging",
                "jaeger",
                "observability/service/jaeger-query:16686",
                ForwardState::Stopped,
                None,
            ),
        ],
        internal: vec![forward(
            "production",
            "database/pgbouncer:5432",
            "database/service/pgbouncer:5432",
            ForwardState::Listening,
            Some(40200),
        )],
    };
    update(&mut state, Event::Forwards(Arc::new(snap)));
    update(&mut state, Event::Key("w".parse().unwrap()));
    let screen = draw(&state, 80, 24);
    assert!(screen.contains("http://127.0.0.1:40123"), "{screen}");
    insta::assert_snapshot!("forwards_80x24", screen);
    insta::assert_snapshot!("forwards_160x48", draw(&state, 160, 48));
}

#[test]
fn cluster_view_with_thousands_of_unhealthy_pods_shows_real_rows_wherever_scrolled() {
    let mut state = fixture();
    let broken: Vec<(String, String)> = (0..3000)
        .map(|i| ("load".to_string(), format!("worker-{i:04}")))
        .collect();
    let refs: Vec<(&str, &str, PodReason, u32, i64)> = broken
        .iter()
        .map(|(ns, n)| (ns.as_str(), n.as_str(), PodReason::CrashLoopBackOff, 3, 600))
        .collect();
    let snap = snapshot("production", &refs, &[]);
    update(
        &mut state,
        Event::Source(SourceEvent {
            cluster: 1,
            update: SourceUpdate::Kube(Arc::new(snap)),
        }),
    );
    update(&mut state, Event::Key("tab".parse().unwrap()));
    update(&mut state, Event::Key("i".parse().unwrap()));
    for _ in 0..40 {
        update(&mut state, Event::Key("pgdown".parse().unwrap()));
    }
    let screen = draw(&state, 80, 24);
    let body: Vec<&str> = screen.lines().skip(3).take(18).collect();
    assert!(
        body.iter()
            .all(|l| !l.trim_matches(|c| c == '"' || c == ' ').is_empty()),
        "blank rows while scrolled:\n{screen}"
    );
    update(&mut state, Event::Key("G".parse().unwrap()));
    let screen = draw(&state, 80, 24);
    assert!(
        screen.contains("CRIT pod load/worker-"),
        "the findings at the bottom are drawn:\n{screen}"
    );
}
