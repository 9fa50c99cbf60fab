//! The pods table model at 10,000 synthetic pods: filter, label filter, namespace scope and
//! sort return exactly the right rows (no timing asserts; the design keeps keystrokes
//! allocation-free per pod, see `src/drill/pods.rs`).

use std::sync::Arc;

use jiff::Timestamp;
use opsdeck::drill::pods::{NamespaceScope, PodColumn, PodTable};
use opsdeck::model::kube::Phase;
use opsdeck::model::{PodReason, PodSummary};

const N: usize = 10_000;

fn pods() -> Vec<Arc<PodSummary>> {
    (0..N)
        .map(|i| {
            let reason = match i % 500 {
                0 => Some(PodReason::CrashLoopBackOff),
                1 => Some(PodReason::Pending),
                _ => None,
            };
            Arc::new(PodSummary {
                namespace: format!("ns-{:02}", i % 20),
                name: format!("app-{:03}-{i:05}", i % 250),
                phase: if reason == Some(PodReason::Pending) {
                    Phase::Pending
                } else {
                    Phase::Running
                },
                ready: reason.is_none(),
                crashloop: reason == Some(PodReason::CrashLoopBackOff),
                reason,
                restarts: (i % 7) as u32,
                created: Timestamp::from_second(1_700_000_000 + i as i64).ok(),
                node: Some(format!("node-{}", i % 3)),
                labels: vec![
                    ("app".into(), format!("app-{:03}", i % 250)),
                    (
                        "tier".into(),
                        if i % 2 == 0 { "web" } else { "worker" }.into(),
                    ),
                ],
            })
        })
        .collect()
}

#[test]
fn ten_thousand_pods_filter_sort_and_scope_correctly() {
    let mut t = PodTable::new(pods());
    assert_eq!(t.len(), N);
    // Unhealthy first: 20 crash-looping, then 20 Pending.
    for i in 0..20 {
        assert_eq!(t.pod(i).unwrap().reason, Some(PodReason::CrashLoopBackOff));
    }
    for i in 20..40 {
        assert_eq!(t.pod(i).unwrap().reason, Some(PodReason::Pending));
    }
    assert!(t.pod(40).unwrap().reason.is_none());

    // Substring, typed one key at a time.
    for prefix in ["a", "ap", "app", "app-", "app-00", "app-007"] {
        t.set_filter(prefix);
    }
    assert_eq!(t.len(), N / 250);
    assert!((0..t.len()).all(|i| t.pod(i).unwrap().name.starts_with("app-007-")));

    // Labels, and a label with a substring.
    t.set_filter("tier=worker");
    assert_eq!(t.len(), N / 2);
    t.set_filter("tier=worker app=app-001");
    assert_eq!(t.len(), N / 250);
    t.set_filter("tier!=worker node-1");
    let expect = (0..N).filter(|i| i % 2 == 0 && i % 3 == 1).count();
    assert_eq!(t.len(), expect);

    // Namespace scope on top of the filter.
    t.set_filter("");
    t.set_scope(NamespaceScope::One("ns-07".into()));
    assert_eq!(t.len(), N / 20);
    assert!((0..t.len()).all(|i| t.pod(i).unwrap().namespace == "ns-07"));
    t.set_filter("crashloop");
    assert_eq!(
        t.len(),
        (0..N).filter(|i| i % 500 == 0 && i % 20 == 7).count()
    );

    // Sort by name, descending, whole table.
    t.set_filter("");
    t.set_scope(NamespaceScope::All);
    t.sort_by(PodColumn::Name);
    t.sort_by(PodColumn::Name);
    let names: Vec<&str> = (0..t.len())
        .map(|i| t.pod(i).unwrap().name.as_str())
        .collect();
    assert!(names.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(names[0], "app-249-09999");

    // Restarts: most first.
    t.sort_by(PodColumn::Restarts);
    assert_eq!(t.pod(0).unwrap().restarts, 6);
    assert_eq!(t.pod(N - 1).unwrap().restarts, 0);

    // The window a view draws is only what fits.
    let now = Timestamp::from_second(1_700_100_000).unwrap();
    assert_eq!(t.window(9_990, 50, now).len(), 10);
}

#[test]
fn selection_survives_a_new_snapshot_of_ten_thousand_pods() {
    let mut t = PodTable::new(pods());
    t.set_filter("app-123");
    t.move_selection(5);
    let chosen = t.selected_pod().unwrap().name.clone();
    let mut next = pods();
    next.reverse();
    t.set_pods(next);
    assert_eq!(t.selected_pod().unwrap().name, chosen);
}
