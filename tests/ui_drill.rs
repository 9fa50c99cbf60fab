//! The drill-down views drawn from fixture data on ratatui's TestBackend, checked with insta
//! snapshots at 80x24 and 160x48.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use opsdeck::drill::events::EventRow;
use opsdeck::drill::logs::LogBuffer;
use opsdeck::drill::pod::{ContainerDetail, PodDetail};
use opsdeck::drill::pods::PodTable;
use opsdeck::drill::workloads::WorkloadRow;
use opsdeck::model::kube::Phase;
use opsdeck::model::{PodReason, PodSummary};
use opsdeck::ui::Theme;
use opsdeck::ui::drill::{
    EventsView, LogsView, PodsView, WorkloadsView, events, logs, pod_detail, pods_table, workloads,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const THEME: Theme = Theme { color: false };

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
}

fn ago(s: i64) -> Timestamp {
    now() - SignedDuration::from_secs(s)
}

fn pod(
    ns: &str,
    name: &str,
    reason: Option<PodReason>,
    restarts: u32,
    age_s: i64,
) -> Arc<PodSummary> {
    Arc::new(PodSummary {
        namespace: ns.into(),
        name: name.into(),
        phase: match reason {
            Some(PodReason::Pending | PodReason::ImagePullBackOff) => Phase::Pending,
            _ => Phase::Running,
        },
        ready: reason.is_none(),
        crashloop: reason == Some(PodReason::CrashLoopBackOff),
        reason,
        restarts,
        created: Some(ago(age_s)),
        node: Some("prod-vps".into()),
        labels: vec![(
            "app.kubernetes.io/name".into(),
            name.split('-').next().unwrap_or("").into(),
        )],
    })
}

fn table() -> PodTable {
    let mut pods = vec![
        pod(
            "goapps-production",
            "iam-service-7c9d8f6b5-x2k4p",
            Some(PodReason::CrashLoopBackOff),
            41,
            7_200,
        ),
        pod(
            "goapps-production",
            "report-generator-29000001-q8z7m",
            Some(PodReason::Pending),
            0,
            35,
        ),
        pod(
            "goapps-production",
            "frontend-5d8f7c9b6-abcde",
            Some(PodReason::ImagePullBackOff),
            0,
            600,
        ),
    ];
    for i in 0..40 {
        pods.push(pod(
            if i % 3 == 0 {
                "database"
            } else {
                "goapps-production"
            },
            &format!("finance-service-6b7c8d9f5-{i:05}"),
            None,
            (i % 4) as u32,
            86_400 * 3 + i * 60,
        ));
    }
    PodTable::new(pods)
}

fn draw(w: u16, h: u16, f: impl FnOnce(&mut ratatui::Frame)) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(f).unwrap();
    format!("{}", term.backend())
}

fn pods_screen(t: &PodTable, w: u16, h: u16, editing: bool) -> String {
    draw(w, h, |f| {
        let view = PodsView {
            table: t,
            cluster: "production",
            protected: true,
            offset: 0,
            filter_editing: editing,
            now: now(),
        };
        pods_table(f, f.area(), &view, THEME);
    })
}

#[test]
fn pods_table_80x24_puts_unhealthy_pods_first() {
    let t = table();
    let s = pods_screen(&t, 80, 24, false);
    assert!(s.contains("production [PROD]"));
    let crash = s.find("CrashLoopBackOff").unwrap();
    let running = s.find("Running").unwrap();
    assert!(crash < running);
    assert!(!s.contains("NODE"), "no room for the node at 80 columns");
    insta::assert_snapshot!(s);
}

#[test]
fn pods_table_160x48_shows_every_column() {
    let t = table();
    let s = pods_screen(&t, 160, 48, false);
    assert!(s.contains("NODE") && s.contains("prod-vps"));
    insta::assert_snapshot!(s);
}

#[test]
fn pods_table_filtered_while_typing_and_scrolled_to_the_selection() {
    let mut t = table();
    t.set_filter("finance");
    t.move_selection(30);
    let s = pods_screen(&t, 80, 24, true);
    assert!(s.contains("/finance▏"));
    assert!(s.contains("finance-service-6b7c8d9f5-00030"));
    assert!(!s.contains("iam-service"));
    insta::assert_snapshot!(s);
}

fn detail() -> PodDetail {
    PodDetail {
        namespace: "goapps-production".into(),
        name: "iam-service-7c9d8f6b5-x2k4p".into(),
        phase: "Running".into(),
        node: Some("prod-vps".into()),
        ip: Some("10.42.0.17".into()),
        created: Some(ago(7_200)),
        owner: Some("ReplicaSet/iam-service-7c9d8f6b5".into()),
        containers: vec![ContainerDetail {
            name: "iam-service".into(),
            image: "ghcr.io/goapps/iam-service:v1.9.0".into(),
            init: false,
            ready: false,
            state: "Waiting: CrashLoopBackOff".into(),
            state_since: None,
            restarts: 41,
            last_termination: Some(("Error".into(), 1)),
            last_finished: Some(ago(38)),
            probes: "liveness tcp:8080 every 20s, readiness tcp:8080 every 10s".into(),
        }],
    }
}

fn pod_events() -> Vec<EventRow> {
    let ev = |reason: &str, ty: &str, count: u32, s: i64, msg: &str| EventRow {
        type_: ty.into(),
        reason: reason.into(),
        namespace: "goapps-production".into(),
        object: "Pod/iam-service-7c9d8f6b5-x2k4p".into(),
        message: msg.into(),
        count,
        last_seen: Some(ago(s)),
    };
    vec![
        ev(
            "BackOff",
            "Warning",
            187,
            12,
            "Back-off restarting failed container iam-service in pod iam-service-7c9d8f6b5-x2k4p_goapps-production",
        ),
        ev(
            "Pulled",
            "Normal",
            41,
            60,
            "Container image \"ghcr.io/goapps/iam-service:v1.9.0\" already present on machine",
        ),
        ev("Started", "Normal", 41, 60, "Started container iam-service"),
    ]
}

#[test]
fn pod_detail_shows_last_termination_probes_and_events() {
    for (w, h) in [(80, 24), (160, 48)] {
        let s = draw(w, h, |f| {
            pod_detail(
                f,
                f.area(),
                "production",
                true,
                &detail(),
                &pod_events(),
                now(),
                THEME,
            )
        });
        assert!(s.contains("Error, exit code 1, 38s ago"));
        assert!(s.contains("BackOff"));
        insta::assert_snapshot!(format!("pod_detail_{w}x{h}"), s);
    }
}

fn buffer() -> LogBuffer {
    let mut b = LogBuffer::new(2_000);
    for i in 0..60 {
        b.push(format!(
            "2026-11-25T02:59:{:02}Z {{\"level\":\"info\",\"msg\":\"request\",\"path\":\"/api/v1/users/me\",\"status\":200,\"seq\":{i}}}",
            i % 60
        ));
    }
    b.push("2026-11-25T03:00:00Z {\"level\":\"error\",\"msg\":\"dial tcp 10.43.12.7:5432: connect: connection refused\"}".into());
    b.push("panic: cannot connect to database".into());
    b
}

fn logs_screen(w: u16, h: u16, wrap: bool, search: &str, scroll: Option<usize>) -> String {
    let b = buffer();
    draw(w, h, |f| {
        let view = LogsView {
            buffer: &b,
            cluster: "production",
            protected: true,
            namespace: "goapps-production",
            pod: "iam-service-7c9d8f6b5-x2k4p",
            container: "iam-service",
            previous: false,
            following: true,
            wrap,
            search,
            scroll,
            note: None,
        };
        logs(f, f.area(), &view, THEME)
    })
}

#[test]
fn logs_80x24_stick_to_the_newest_line() {
    let s = logs_screen(80, 24, false, "", None);
    assert!(s.contains("panic: cannot connect to database"));
    insta::assert_snapshot!(s);
}

#[test]
fn logs_160x48_wrapped_with_search() {
    let s = logs_screen(160, 48, true, "refused", None);
    assert!(s.contains("(1 matching lines)"));
    insta::assert_snapshot!(s);
}

#[test]
fn logs_80x24_wrapped_and_scrolled() {
    let s = logs_screen(80, 24, true, "", Some(0));
    assert!(s.contains("paused"));
    assert!(s.contains("\"seq\":0}"));
    insta::assert_snapshot!(s);
}

fn warnings() -> Vec<EventRow> {
    let ev = |ns: &str, reason: &str, obj: &str, count: u32, s: i64, msg: &str| EventRow {
        type_: "Warning".into(),
        reason: reason.into(),
        namespace: ns.into(),
        object: obj.into(),
        message: msg.into(),
        count,
        last_seen: Some(ago(s)),
    };
    vec![
        ev(
            "goapps-production",
            "BackOff",
            "Pod/iam-service-7c9d8f6b5-x2k4p",
            187,
            12,
            "Back-off restarting failed container iam-service",
        ),
        ev(
            "goapps-production",
            "FailedScheduling",
            "Pod/report-generator-29000001-q8z7m",
            3,
            35,
            "0/1 nodes are available: 1 Insufficient cpu.",
        ),
        ev(
            "goapps-production",
            "Failed",
            "Pod/frontend-5d8f7c9b6-abcde",
            9,
            120,
            "Failed to pull image \"ghcr.io/goapps/frontend:v3.0.0-rc1\": not found",
        ),
        ev(
            "database",
            "Unhealthy",
            "Pod/postgres-0",
            2,
            3_600,
            "Readiness probe failed: connection refused",
        ),
    ]
}

#[test]
fn warning_events_at_both_sizes() {
    let rows = warnings();
    for (w, h) in [(80, 24), (160, 48)] {
        let s = draw(w, h, |f| {
            let view = EventsView {
                rows: &rows,
                cluster: "production",
                protected: true,
                selected: 1,
                offset: 0,
                now: now(),
            };
            events(f, f.area(), &view, THEME);
        });
        assert!(s.contains("201 occurrences"));
        insta::assert_snapshot!(format!("warning_events_{w}x{h}"), s);
    }
}

fn workload_rows() -> Vec<WorkloadRow> {
    let w = |kind: &'static str,
             ns: &str,
             name: &str,
             d: i32,
             a: i32,
             s: i64,
             img: &str,
             sched: &str| WorkloadRow {
        kind,
        namespace: ns.into(),
        name: name.into(),
        desired: d,
        available: a,
        last_rollout: Some(ago(s)),
        images: vec![img.into()],
        schedule: sched.into(),
    };
    let mut rows = vec![
        w(
            "Deployment",
            "goapps-production",
            "iam-service",
            2,
            1,
            7_200,
            "ghcr.io/goapps/iam-service:v1.9.0",
            "",
        ),
        w(
            "Deployment",
            "goapps-production",
            "finance-service",
            2,
            2,
            86_400 * 2,
            "ghcr.io/goapps/finance-service:v2.7.1",
            "",
        ),
        w(
            "StatefulSet",
            "database",
            "postgres",
            1,
            1,
            86_400 * 23,
            "docker.io/library/postgres:18.1",
            "",
        ),
        w(
            "DaemonSet",
            "monitoring",
            "promtail",
            1,
            1,
            86_400 * 23,
            "docker.io/grafana/promtail:3.4.2",
            "",
        ),
        w(
            "CronJob",
            "database",
            "postgres-backup-morning",
            1,
            0,
            75_600,
            "docker.io/library/postgres:18.1",
            "0 6 * * *",
        ),
    ];
    opsdeck::drill::workloads::sort(&mut rows);
    rows
}

#[test]
fn workloads_at_both_sizes() {
    let rows = workload_rows();
    for (w, h) in [(80, 24), (160, 48)] {
        let s = draw(w, h, |f| {
            let view = WorkloadsView {
                rows: &rows,
                cluster: "staging",
                protected: false,
                selected: 0,
                offset: 0,
                now: now(),
            };
            workloads(f, f.area(), &view, THEME);
        });
        assert!(s.contains("1 degraded"));
        assert!(s.contains("1/2"));
        insta::assert_snapshot!(format!("workloads_{w}x{h}"), s);
    }
}
