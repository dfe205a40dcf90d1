//! Skip-list costs as the set grows (10^3 .. 10^6 members): insert (with
//! the matching remove, so the size stays put), rank of a member, and a
//! range of 100 members from a random rank. Each should grow with log n,
//! plus cache misses once the set outgrows the caches.
//!
//! `cargo bench -p ferrite-storage --bench skiplist -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferrite_storage::skiplist::SkipList;

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// A deterministic xorshift, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn member(i: usize) -> Vec<u8> {
    format!("member:{i:08}").into_bytes()
}

fn build(n: usize) -> SkipList {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sl = SkipList::with_seed(42);
    for i in 0..n {
        sl.insert((rng.next() % 1_000_000) as f64, &member(i));
    }
    sl
}

fn bench(c: &mut Criterion) {
    let mut insert = c.benchmark_group("skiplist_insert_remove");
    let mut lists: Vec<(usize, SkipList)> = SIZES.iter().map(|&n| (n, build(n))).collect();
    for (n, sl) in lists.iter_mut() {
        let mut rng = Rng(7);
        insert.bench_with_input(BenchmarkId::from_parameter(*n), n, |b, _| {
            b.iter(|| {
                let score = (rng.next() % 1_000_000) as f64;
                sl.insert(score, b"bench-member");
                black_box(sl.remove(b"bench-member"));
            })
        });
    }
    insert.finish();

    let mut rank = c.benchmark_group("skiplist_rank");
    for (n, sl) in lists.iter() {
        let probes: Vec<Vec<u8>> = {
            let mut rng = Rng(11);
            (0..1024).map(|_| member(rng.next() as usize % n)).collect()
        };
        let mut i = 0;
        rank.bench_with_input(BenchmarkId::from_parameter(*n), n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(sl.rank(&probes[i]))
            })
        });
    }
    rank.finish();

    let mut range = c.benchmark_group("skiplist_range_100");
    for (n, sl) in lists.iter() {
        let mut rng = Rng(13);
        range.bench_with_input(BenchmarkId::from_parameter(*n), n, |b, _| {
            b.iter(|| {
                let start = rng.next() as usize % (n - 100);
                let mut sum = 0.0;
                for (_, s) in sl.range(start, start + 100) {
                    sum += s;
                }
                black_box(sum)
            })
        });
    }
    range.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
