//! Eviction against a simple model: with one shard and a sample as large as
//! the keyspace, sampling sees every key, so each policy must pick exactly
//! the key the model says (least recently used, least frequently used,
//! nearest expiry), and volatile policies never touch keys without a TTL.

use std::sync::Arc;

use ferrite_storage::{EvictionPool, NoObserver, Policy, Store, Value, NO_EXPIRE};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;

fn store(policy: Policy) -> Store {
    let s = Store::new(1, 1, Arc::new(NoObserver));
    s.stats().access.set(policy, 10, 1);
    s
}

fn evict(s: &Store, policy: Policy, now: i64) -> Option<Vec<u8>> {
    let mut pool = EvictionPool::default();
    let mut cursor = 0;
    let before: Vec<Vec<u8>> = s
        .db(0)
        .with_shard_at(0, |sh| sh.iter().map(|(k, _)| k.to_vec()).collect());
    let mem_before = s
        .stats()
        .used_memory
        .load(std::sync::atomic::Ordering::Relaxed);
    let freed = s.evict_one(policy, 64, &mut pool, &mut cursor, now)?;
    let mem_after = s
        .stats()
        .used_memory
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (mem_before - mem_after) as usize,
        freed,
        "freed bytes match the accounting"
    );
    let after: Vec<Vec<u8>> = s
        .db(0)
        .with_shard_at(0, |sh| sh.iter().map(|(k, _)| k.to_vec()).collect());
    let gone: Vec<_> = before.into_iter().filter(|k| !after.contains(k)).collect();
    assert_eq!(gone.len(), 1);
    gone.into_iter().next()
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

proptest! {
    // allkeys-lru evicts the key accessed longest ago; volatile-lru the
    // oldest among keys with a TTL; neither evicts a key it must keep.
    #[test]
    fn lru_evicts_the_least_recently_used(
        n in 1usize..40,
        volatile_mask in any::<u64>(),
        accesses in proptest::collection::vec(0usize..40, 0..100),
        volatile in any::<bool>(),
    ) {
        let policy = if volatile { Policy::VolatileLru } else { Policy::AllKeysLru };
        let s = store(policy);
        let mut last = vec![0i64; n];
        let mut now = T0;
        for (i, l) in last.iter_mut().enumerate() {
            now += 10;
            let ttl = if volatile_mask >> i & 1 == 1 { T0 + 1_000_000 } else { NO_EXPIRE };
            s.db(0).with_shard(&key(i), |sh| sh.set(&key(i), Value::string(&b"v"[..]), ttl, now));
            *l = now;
        }
        for a in accesses {
            if a < n {
                now += 10;
                s.db(0).with_shard(&key(a), |sh| { sh.get(&key(a), now); });
                last[a] = now;
            }
        }
        now += 10;
        let eligible: Vec<usize> = (0..n).filter(|i| !volatile || volatile_mask >> i & 1 == 1).collect();
        let got = evict(&s, policy, now);
        match eligible.iter().min_by_key(|i| last[**i]) {
            None => prop_assert!(got.is_none()),
            Some(want) => prop_assert_eq!(got, Some(key(*want))),
        }
    }

    // volatile-ttl evicts the key whose expiry is nearest.
    #[test]
    fn ttl_evicts_the_nearest_expiry(ttls in proptest::collection::vec(proptest::option::of(1i64..1_000_000), 1..40)) {
        let s = store(Policy::VolatileTtl);
        for (i, ttl) in ttls.iter().enumerate() {
            let at = ttl.map_or(NO_EXPIRE, |t| T0 + t);
            s.db(0).with_shard(&key(i), |sh| sh.set(&key(i), Value::string(&b"v"[..]), at, T0));
        }
        let got = evict(&s, Policy::VolatileTtl, T0);
        let want = ttls.iter().enumerate().filter_map(|(i, t)| t.map(|t| (t, i))).min();
        match want {
            None => prop_assert!(got.is_none()),
            Some((t, _)) => {
                let i: usize = String::from_utf8(got.unwrap()).unwrap()[1..].parse().unwrap();
                prop_assert_eq!(ttls[i], Some(t));
            }
        }
    }

    // Random policies evict only eligible keys and fail only when none is.
    #[test]
    fn random_evicts_an_eligible_key(n in 0usize..40, volatile_mask in any::<u64>(), volatile in any::<bool>()) {
        let policy = if volatile { Policy::VolatileRandom } else { Policy::AllKeysRandom };
        let s = store(policy);
        for i in 0..n {
            let ttl = if volatile_mask >> i & 1 == 1 { T0 + 1_000_000 } else { NO_EXPIRE };
            s.db(0).with_shard(&key(i), |sh| sh.set(&key(i), Value::string(&b"v"[..]), ttl, T0));
        }
        let eligible: Vec<Vec<u8>> = (0..n).filter(|i| !volatile || volatile_mask >> i & 1 == 1).map(key).collect();
        match evict(&s, policy, T0) {
            None => prop_assert!(eligible.is_empty()),
            Some(k) => prop_assert!(eligible.contains(&k)),
        }
    }
}

/// allkeys-lfu keeps the keys read most often: after a skewed access
/// pattern, the least-read key goes first.
#[test]
fn lfu_evicts_the_least_frequently_used() {
    let s = store(Policy::AllKeysLfu);
    for i in 0..20 {
        s.db(0).with_shard(&key(i), |sh| {
            sh.set(&key(i), Value::string(&b"v"[..]), NO_EXPIRE, T0)
        });
    }
    // Key i is read 50 * i times; with log factor 10 the counters stay ordered
    // well enough that key 0 (never read) is the first candidate.
    for i in 0..20 {
        for _ in 0..50 * i {
            s.db(0).with_shard(&key(i), |sh| {
                sh.get(&key(i), T0);
            });
        }
    }
    assert_eq!(evict(&s, Policy::AllKeysLfu, T0), Some(key(0)));
    // Overwriting a key keeps its counter: key 19 stays hot.
    s.db(0).with_shard(&key(19), |sh| {
        sh.set(&key(19), Value::string(&b"w"[..]), NO_EXPIRE, T0)
    });
    let mut evicted = Vec::new();
    for _ in 0..10 {
        evicted.push(evict(&s, Policy::AllKeysLfu, T0).unwrap());
    }
    assert!(!evicted.contains(&key(19)));
}

#[test]
fn noeviction_never_evicts() {
    let s = store(Policy::NoEviction);
    s.db(0).with_shard(b"k", |sh| {
        sh.set(b"k", Value::string(&b"v"[..]), NO_EXPIRE, T0)
    });
    let mut pool = EvictionPool::default();
    assert_eq!(
        s.evict_one(Policy::NoEviction, 5, &mut pool, &mut 0, T0),
        None
    );
}
