//! `edge-load codec`: what compression costs, per MiB of input, at the edge's levels.
//!
//! Runs the coders the edge uses (async-compression writing into a Vec, as `edge::compress`
//! does) over compressible text and measures the thread's CPU time, so a busy machine slows
//! the wall clock but not the figure.

use std::time::Duration;

use async_compression::Level;
use async_compression::tokio::write::{
    BrotliDecoder, BrotliEncoder, GzipDecoder, GzipEncoder, ZstdDecoder, ZstdEncoder,
};
use config::{Coding, Levels};
use tokio::io::AsyncWriteExt;

use crate::LoadError;
use crate::origin::text_payload;

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

async fn encode(coding: Coding, level: i32, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let level = Level::Precise(level);
    // The edge feeds 32 KiB steps; so do we.
    macro_rules! run {
        ($enc:expr) => {{
            let mut e = $enc;
            for chunk in data.chunks(32 * 1024) {
                e.write_all(chunk).await?;
            }
            e.shutdown().await?;
            Ok(e.into_inner())
        }};
    }
    match coding {
        Coding::Gzip => run!(GzipEncoder::with_quality(Vec::new(), level)),
        Coding::Br => run!(BrotliEncoder::with_quality(Vec::new(), level)),
        Coding::Zstd => run!(ZstdEncoder::with_quality(Vec::new(), level)),
    }
}

async fn decode(coding: Coding, data: &[u8]) -> std::io::Result<Vec<u8>> {
    macro_rules! run {
        ($dec:expr) => {{
            let mut d = $dec;
            d.write_all(data).await?;
            d.shutdown().await?;
            Ok(d.into_inner())
        }};
    }
    match coding {
        Coding::Gzip => run!(GzipDecoder::new(Vec::new())),
        Coding::Br => run!(BrotliDecoder::new(Vec::new())),
        Coding::Zstd => run!(ZstdDecoder::new(Vec::new())),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints a markdown table: coding, level, ratio, CPU ms per MiB to encode and to decode.
/// With `sweep`, every level of every coding instead of the edge's two per coding.
pub async fn run(size: usize, rounds: usize, sweep: bool) -> Result<(), LoadError> {
    let data = text_payload(size);
    let mib = size as f64 / (1024.0 * 1024.0);
    println!(
        "Input: {:.1} MiB of text; CPU time of one thread; median of {rounds} rounds.\n",
        mib
    );
    println!(
        "| coding | use | level | output/input | encode ms/MiB | encode MiB/s | decode ms/MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for coding in Coding::ALL {
        let levels: Vec<(&str, i32)> = if sweep {
            let range = match coding {
                Coding::Zstd => 1..=19,
                Coding::Br => 0..=11,
                Coding::Gzip => 1..=9,
            };
            range.map(|l| ("sweep", l)).collect()
        } else {
            vec![
                ("fly", Levels::FLY.of(coding)),
                ("stored", Levels::STORED.of(coding)),
            ]
        };
        for (name, level) in levels {
            let mut enc_ms = Vec::new();
            let mut dec_ms = Vec::new();
            let mut out_len = 0;
            for _ in 0..rounds.max(1) {
                let t = thread_cpu();
                let out = encode(coding, level, &data)
                    .await
                    .map_err(|source| LoadError::Io {
                        context: format!("{coding} encoding"),
                        source,
                    })?;
                enc_ms.push((thread_cpu() - t).as_secs_f64() * 1000.0 / mib);
                let t = thread_cpu();
                let back = decode(coding, &out).await.map_err(|source| LoadError::Io {
                    context: format!("{coding} decoding"),
                    source,
                })?;
                dec_ms.push((thread_cpu() - t).as_secs_f64() * 1000.0 / mib);
                if back != data {
                    return Err(LoadError::Usage(format!("{coding} round trip differs")));
                }
                out_len = out.len();
            }
            let enc = median(enc_ms);
            println!(
                "| {coding} | {name} | {level} | {:.3} | {enc:.2} | {:.0} | {:.2} |",
                out_len as f64 / size as f64,
                1000.0 / enc,
                median(dec_ms)
            );
        }
    }
    Ok(())
}
