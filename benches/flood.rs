//! Per-request cost of the flood checks of issue 13 (`cargo bench --bench
//! flood`): the per-source rate counter (`ua::pike`), the log budget
//! (`ua::log_limit`) and the digest lockout table (`tenants::lockout`),
//! each with 10,000 sources already tracked.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use dhwani::tenants::lockout::{Limits as LockoutLimits, Lockouts};
use dhwani::ua::log_limit::{Limits as LogLimits, LogLimiter};
use dhwani::ua::pike::{Limits, Pike};

fn sources() -> Vec<IpAddr> {
    (0..10_000u32)
        .map(|i| IpAddr::from((0x0A00_0000 | i).to_be_bytes()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let ips = sources();
    let t0 = Instant::now();
    let mut pike = Pike::new(Limits::default());
    for ip in &ips {
        pike.message(t0, *ip);
    }
    let mut i = 0usize;
    c.bench_function("pike_message_check", |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            // A new second every pass over the sources: no bans.
            let now = t0 + Duration::from_secs((i / ips.len()) as u64);
            black_box(pike.message(now, ips[i]))
        })
    });
    let mut log = LogLimiter::new(LogLimits::default());
    c.bench_function("peer_log_allow", |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(log.allow(t0, ips[i]))
        })
    });
    let mut lockouts = Lockouts::new(LockoutLimits::default());
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for ip in &ips {
        lockouts.fail(*ip, Some("trunk"), wall);
    }
    c.bench_function("auth_lockout_check", |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(lockouts.locked(ips[i], wall))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
