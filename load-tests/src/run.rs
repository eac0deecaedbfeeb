//! The request loops.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::conn::{Conn, Proto, Target};
use crate::stats::{ErrorKind, Report, Stats};
use crate::workload::{Rng, UrlSet};

#[derive(Clone)]
pub struct RunConfig {
    pub proto: Proto,
    pub target: Target,
    pub urls: Arc<UrlSet>,
    /// Connections; each carries `streams` concurrent requests (1 for HTTP/1.1).
    pub connections: usize,
    pub streams: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub progress: bool,
}

pub async fn run(cfg: RunConfig) -> Report {
    let t0 = Instant::now();
    let measure_start = t0 + cfg.warmup;
    let deadline = measure_start + cfg.duration;
    let seq = Arc::new(AtomicU64::new(0));
    let done_count = Arc::new(AtomicU64::new(0));
    let err_count = Arc::new(AtomicU64::new(0));
    let streams = if cfg.proto == Proto::H1 {
        1
    } else {
        cfg.streams.max(1)
    };

    let mut workers = Vec::new();
    for c in 0..cfg.connections.max(1) {
        let first = Conn::connect(cfg.proto, &cfg.target).await;
        let handles: Vec<Option<Conn>> = match first {
            Ok(conn) => {
                let mut v = Vec::with_capacity(streams);
                for _ in 1..streams {
                    v.push(conn.clone_stream());
                }
                v.push(Some(conn));
                v
            }
            Err(kind) => {
                eprintln!(
                    "connection {c}: {} error; workers will retry",
                    kind.as_str()
                );
                (0..streams).map(|_| None).collect()
            }
        };
        for (s, conn) in handles.into_iter().enumerate() {
            let cfg = cfg.clone();
            let seq = seq.clone();
            let done_count = done_count.clone();
            let err_count = err_count.clone();
            let seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((c as u64) << 20) ^ s as u64;
            workers.push(tokio::spawn(async move {
                worker(
                    cfg,
                    conn,
                    seq,
                    done_count,
                    err_count,
                    t0,
                    measure_start,
                    deadline,
                    seed,
                )
                .await
            }));
        }
    }

    let finished = Arc::new(AtomicBool::new(false));
    let progress = cfg.progress.then(|| {
        let done_count = done_count.clone();
        let err_count = err_count.clone();
        let finished = finished.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            while !finished.load(Ordering::Relaxed) {
                tick.tick().await;
                let n = done_count.load(Ordering::Relaxed);
                let e = err_count.load(Ordering::Relaxed);
                eprint!(
                    "\r[{:6.1}s] {n:>10} req  {:>8} req/s  errors {e}   ",
                    t0.elapsed().as_secs_f64(),
                    n - last
                );
                let _ = std::io::stderr().flush();
                last = n;
            }
        })
    });

    let mut total = Stats::default();
    for w in workers {
        if let Ok(stats) = w.await {
            total.merge(&stats);
        }
    }
    finished.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let mode = if cfg.rate.is_some() { "open" } else { "closed" };
    Report::new(
        &total,
        cfg.duration,
        cfg.proto.as_str(),
        mode,
        cfg.connections,
        streams,
    )
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    cfg: RunConfig,
    mut conn: Option<Conn>,
    seq: Arc<AtomicU64>,
    done_count: Arc<AtomicU64>,
    err_count: Arc<AtomicU64>,
    t0: Instant,
    measure_start: Instant,
    deadline: Instant,
    seed: u64,
) -> Stats {
    let mut stats = Stats::default();
    let mut rng = Rng::new(seed);
    loop {
        let i = seq.fetch_add(1, Ordering::Relaxed);
        // Open loop: request i is due at t0 + i/rate, whether or not the server kept up. Its
        // latency counts from then, so queueing behind a stall is measured.
        let intended = match cfg.rate {
            Some(rate) => t0 + Duration::from_secs_f64(i as f64 / rate),
            None => Instant::now(),
        };
        if intended >= deadline {
            break;
        }
        if cfg.rate.is_some() {
            tokio::time::sleep_until(intended).await;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::connect(cfg.proto, &cfg.target).await {
                Ok(c) => conn.insert(c),
                Err(kind) => {
                    if Instant::now() >= measure_start {
                        stats.error(kind);
                        err_count.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let path = cfg.urls.pick(&mut rng, i);
        let result = tokio::time::timeout(cfg.timeout, c.get(&cfg.target, &path)).await;
        let now = Instant::now();
        if now > deadline {
            break;
        }
        let measured = intended >= measure_start || (cfg.rate.is_none() && now >= measure_start);
        let outcome = match result {
            Ok(Ok((status, bytes))) if status.is_success() || status.is_redirection() => Ok(bytes),
            Ok(Ok((status, _))) if status.is_client_error() => Err(ErrorKind::Status4xx),
            Ok(Ok(_)) => Err(ErrorKind::Status5xx),
            Ok(Err(kind)) => {
                conn = None;
                Err(kind)
            }
            Err(_) => {
                conn = None;
                Err(ErrorKind::Timeout)
            }
        };
        if !measured {
            continue;
        }
        match outcome {
            Ok(bytes) => {
                stats.ok += 1;
                stats.bytes += bytes;
                stats.record(now - intended);
                done_count.fetch_add(1, Ordering::Relaxed);
            }
            Err(kind) => {
                stats.error(kind);
                err_count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    stats
}
