//! Filtering 10,000 pods (budget < 5 ms): the drill-down pods table's own filter
//! (`PodTable::set_filter`, run on every keystroke of `/`), case-insensitive substrings over
//! `namespace/name` and `key=value` / `key!=value` label terms. `cargo bench --bench filter`.

mod fixture;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use opsdeck::drill::pods::PodTable;

fn filters(c: &mut Criterion) {
    let pods: Vec<_> = fixture::pods(10_000, 100)
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut table = PodTable::new(pods);
    let mut g = c.benchmark_group("filter_10000_pods");
    for (label, query) in [
        ("substring", "GENERATOR-4"),
        ("label", "tier=web"),
        (
            "substring_and_label",
            "load/load-gen tier=batch app.kubernetes.io/part-of=goapps",
        ),
        ("not_label", "tier!=web"),
        ("no_match", "zzz-nothing"),
    ] {
        // The same query with and without a trailing space: a different text (so the table
        // filters again) with the same terms (so every run does the same work).
        let spaced = format!("{query} ");
        let mut flip = false;
        g.bench_function(label, |b| {
            b.iter(|| {
                flip = !flip;
                table.set_filter(if flip { query } else { &spaced });
                table.len()
            })
        });
    }
    g.finish();
    // Sanity: the filter finds what it should.
    table.set_filter("load/load-gen tier=batch");
    assert!(!table.is_empty() && table.len() < table.total());
    table.set_filter("zzz-nothing");
    assert!(table.is_empty());
}

criterion_group!(benches, filters);
criterion_main!(benches);
