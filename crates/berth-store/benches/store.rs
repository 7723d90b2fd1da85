//! Store benchmark: write throughput (sequential, and 16 concurrent writers to show group
//! commit) and watch fan-out latency, for SQLite and etcd side by side.
//!
//! `cargo bench -p berth-store --bench store`. A plain `main` (no harness) printing figures;
//! about 20 s per backend. etcd is started like the conformance tests do and skipped, saying so,
//! when it is not installed.

#[path = "../tests/support/etcd.rs"]
mod etcd_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_store::{SqliteStore, Store};
use futures::StreamExt;
use tokio::sync::mpsc;

/// How long each throughput measurement runs.
const WRITE_PHASE: Duration = Duration::from_secs(3);
const CONCURRENT_WRITERS: usize = 16;
const WATCHERS: usize = 50;
const FANOUT_WRITES: usize = 200;
const VALUE_SIZE: usize = 512;

struct Figures {
    sequential: f64,
    concurrent: f64,
    p50: Duration,
    p99: Duration,
    before_ack: usize,
}

async fn sequential_writes(store: &Arc<dyn Store>, prefix: &str) -> f64 {
    let value = vec![b'x'; VALUE_SIZE];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < WRITE_PHASE {
        store.create(&format!("{prefix}/{n:09}"), value.clone()).await.expect("sequential write");
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn concurrent_writes(store: &Arc<dyn Store>, prefix: &str) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_WRITERS)
        .map(|w| {
            let (store, count, prefix) = (Arc::clone(store), Arc::clone(&count), prefix.to_owned());
            tokio::spawn(async move {
                let value = vec![b'x'; VALUE_SIZE];
                let mut i = 0u64;
                while start.elapsed() < WRITE_PHASE {
                    store.create(&format!("{prefix}/{w:02}/{i:09}"), value.clone()).await.expect("concurrent write");
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Writes one key at a time and waits until every watcher has it; latency is from the write's
/// acknowledgement to each watcher's receipt (a receipt before the ack counts as zero).
async fn watch_fanout(store: &Arc<dyn Store>, prefix: &str) -> (Duration, Duration, usize) {
    let from = store.current_revision().await.expect("current revision");
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(i64, Instant)>();
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let mut watch = store.watch(prefix, from).await.expect("watch");
        let seen_tx = seen_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(event)) = watch.next().await {
                if seen_tx.send((event.revision, Instant::now())).is_err() {
                    break;
                }
            }
        }));
    }
    let value = vec![b'x'; VALUE_SIZE];
    let mut latencies = Vec::with_capacity(WATCHERS * FANOUT_WRITES);
    let mut before_ack = 0;
    for i in 0..FANOUT_WRITES {
        let kv = store.create(&format!("{prefix}/{i:06}"), value.clone()).await.expect("fan-out write");
        let acked = Instant::now();
        for _ in 0..WATCHERS {
            let (rev, at) = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
                .await
                .expect("watchers keep up")
                .expect("watchers alive");
            assert_eq!(rev, kv.mod_revision, "watchers see writes in order");
            if at < acked {
                before_ack += 1;
            }
            latencies.push(at.saturating_duration_since(acked));
        }
    }
    for task in tasks {
        task.abort();
    }
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (pick(0.50), pick(0.99), before_ack)
}

async fn measure(store: Arc<dyn Store>) -> Figures {
    let sequential = sequential_writes(&store, "/bench/seq").await;
    let concurrent = concurrent_writes(&store, "/bench/conc").await;
    let (p50, p99, before_ack) = watch_fanout(&store, "/bench/fan").await;
    Figures { sequential, concurrent, p50, p99, before_ack }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<8} {:>14.0} {:>16.0} {:>12.3?} {:>12.3?} {:>12}",
        f.sequential, f.concurrent, f.p50, f.p99, f.before_ack
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        println!(
            "{:<8} {:>14} {:>16} {:>12} {:>12} {:>12}",
            "backend",
            "seq writes/s",
            format!("{CONCURRENT_WRITERS}x writes/s"),
            "watch p50",
            "watch p99",
            "before ack"
        );
        println!(
            "(watch: {WATCHERS} watchers, {FANOUT_WRITES} writes of {VALUE_SIZE} B, latency from write ack to receipt)"
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = SqliteStore::open(&dir.path().join("bench.db")).expect("open sqlite");
        print("sqlite", &measure(Arc::new(sqlite)).await);

        match etcd_support::EtcdServer::start_or_skip("bench etcd").await {
            Some(server) => {
                let store = server.store().await;
                print("etcd", &measure(Arc::new(store)).await);
            }
            None => println!("etcd     skipped: etcd is not installed"),
        }
    });
}
