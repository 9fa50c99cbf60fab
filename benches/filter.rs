//! Filtering 10,000 pods (budget < 5 ms). opsdeck has no filter module yet, so this benches
//! the filter a pods view would run: a case-insensitive substring over `namespace/name` plus
//! a `key=value` label selector over `PodSummary`. `cargo bench --bench filter`.

mod fixture;

use criterion::{Criterion, criterion_group, criterion_main};
use opsdeck::model::PodSummary;

/// Indexes of the pods whose `namespace/name` contains `needle` (ASCII case-insensitive) and
/// that carry every `(key, value)` label.
fn filter(pods: &[PodSummary], needle: &str, labels: &[(&str, &str)]) -> Vec<usize> {
    let needle = needle.to_ascii_lowercase();
    let mut hay = String::new();
    pods.iter()
        .enumerate()
        .filter(|(_, p)| {
            labels
                .iter()
                .all(|(k, v)| p.labels.iter().any(|(pk, pv)| pk == k && pv == v))
        })
        .filter(|(_, p)| {
            if needle.is_empty() {
                return true;
            }
            hay.clear();
            hay.push_str(&p.namespace);
            hay.push('/');
            hay.push_str(&p.name);
            hay.make_ascii_lowercase();
            hay.contains(&needle)
        })
        .map(|(i, _)| i)
        .collect()
}

fn filters(c: &mut Criterion) {
    let pods = fixture::pods(10_000, 100);
    let mut g = c.benchmark_group("filter_10000_pods");
    g.bench_function("substring", |b| {
        b.iter(|| filter(&pods, "GENERATOR-4", &[]))
    });
    g.bench_function("label", |b| {
        b.iter(|| filter(&pods, "", &[("tier", "web")]))
    });
    g.bench_function("substring_and_label", |b| {
        b.iter(|| {
            filter(
                &pods,
                "load/load-gen",
                &[("tier", "web"), ("app.kubernetes.io/part-of", "goapps")],
            )
        })
    });
    g.bench_function("no_match", |b| b.iter(|| filter(&pods, "zzz-nothing", &[])));
    g.finish();
    // Sanity: the filter does find things.
    assert!(!filter(&pods, "load/load-gen", &[("tier", "web")]).is_empty());
}

criterion_group!(benches, filters);
criterion_main!(benches);
