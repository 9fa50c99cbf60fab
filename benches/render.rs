//! Frame render time (budget < 1 ms): `opsdeck::ui::render` into a ratatui `TestBackend`,
//! from fixture state of 2 clusters x 5,000 pods. `cargo bench --bench render`.

mod fixture;

use criterion::{Criterion, criterion_group, criterion_main};
use opsdeck::app::{Event, View, update};
use opsdeck::ui::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const THEME: Theme = Theme { color: true };

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    for (label, unhealthy_every) in [
        ("overview_2x5000_1pct_unhealthy", 100),
        ("overview_2x5000_all_unhealthy", 1),
    ] {
        let state = fixture::state(5_000, unhealthy_every);
        for (w, h) in [(160u16, 48u16), (80, 24)] {
            let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
            g.bench_function(format!("{label}_{w}x{h}"), |b| {
                b.iter(|| {
                    term.draw(|f| render(f, &state, THEME)).unwrap();
                })
            });
        }
    }
    // The drill-down's pods table of one cluster: 5,000 rows, one screen of them drawn.
    for (label, unhealthy_every) in [("1pct_unhealthy", 100), ("all_unhealthy", 1)] {
        let mut state = fixture::state(5_000, unhealthy_every);
        opsdeck::app::drill::open_pods(&mut state, 0);
        state.view = View::Pods(0);
        let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
        g.bench_function(format!("pods_table_5000_rows_{label}_160x48"), |b| {
            b.iter(|| {
                term.draw(|f| render(f, &state, THEME)).unwrap();
            })
        });
    }
    // The cluster view lists every unhealthy pod, so 5,000 unhealthy pods are 5,000 rows too.
    let mut state = fixture::state(5_000, 1);
    state.view = View::Cluster(0);
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    g.bench_function("cluster_view_5000_unhealthy_rows_160x48", |b| {
        b.iter(|| {
            term.draw(|f| render(f, &state, THEME)).unwrap();
        })
    });
    g.finish();

    // What the console does per Kubernetes snapshot and per 1 s tick besides drawing.
    let mut g = c.benchmark_group("update");
    let pods = fixture::pods(5_000, 100);
    g.bench_function("snapshot_new_5000_pods", |b| {
        b.iter_batched(
            || {
                pods.iter()
                    .cloned()
                    .map(std::sync::Arc::new)
                    .collect::<Vec<_>>()
            },
            |p| opsdeck::model::KubeSnapshot::new(p, vec![], vec![]),
            criterion::BatchSize::LargeInput,
        )
    });
    // Opening the pods table (sorting 5,000 rows, building the filter keys) and a new
    // snapshot reaching it.
    let state = fixture::state(5_000, 100);
    g.bench_function("open_pods_table_5000", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| opsdeck::app::drill::open_pods(&mut s, 0),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut state = fixture::state(5_000, 100);
    g.bench_function("tick_2x5000_1pct_unhealthy", |b| {
        b.iter(|| update(&mut state, Event::Tick(fixture::now())))
    });
    let mut state = fixture::state(5_000, 1);
    g.bench_function("tick_2x5000_all_unhealthy", |b| {
        b.iter(|| update(&mut state, Event::Tick(fixture::now())))
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
