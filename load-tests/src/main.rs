#![forbid(unsafe_code)]
//! `edge-load run …` drives load; `edge-load origin …` serves benchmark objects.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use load_tests::LoadError;
use load_tests::conn::{Proto, Target, tls_config};
use load_tests::run::{RunConfig, run};
use load_tests::workload::UrlSet;

#[derive(Parser)]
#[command(
    name = "edge-load",
    about = "Load generator for HTTP/1.1, HTTP/2 and HTTP/3"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum AttackKind {
    /// HTTP/2 rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, on one connection
    /// (give `--url https://… --proto h2`).
    RapidReset {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value_t = 100_000)]
        streams: u64,
        /// Seconds at most.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Reset streams in batches of 50 this many milliseconds after opening them (0: each
        /// at once).
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
        /// Connect again each time the server cuts the connection, until --duration.
        #[arg(long)]
        reconnect: bool,
    },
    /// HTTP/3 stream resets: requests in batches of 50, each reset --hold-ms after it went.
    H3Resets {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value_t = 100_000)]
        streams: u64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 5)]
        hold_ms: u64,
        /// Connect again each time the server cuts the connection, until --duration.
        #[arg(long)]
        reconnect: bool,
    },
    /// HTTP/2 CONTINUATION flood: a header block that never ends (give `--url https://…`).
    Continuation {
        #[command(flatten)]
        target: TargetArgs,
        /// Header block bytes to send at most.
        #[arg(long, default_value_t = 64 << 20)]
        max_bytes: u64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Connect again each time the server cuts the connection, until --duration.
        #[arg(long)]
        reconnect: bool,
    },
    /// Slowloris: plain HTTP/1.1 connections that send a header line every --drip-ms and
    /// never end their request head.
    Slowloris {
        /// The edge's plain HTTP address.
        #[arg(long)]
        connect: SocketAddr,
        /// Source addresses to spread the connections over (loopback: 127.0.0.2, …).
        #[arg(long = "from", default_value = "127.0.0.1")]
        sources: Vec<std::net::IpAddr>,
        #[arg(long, default_value_t = 1000)]
        connections: u64,
        #[arg(long, default_value_t = 500)]
        drip_ms: u64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// A QUIC handshake flood: this many handshakes at once (give `--url https://…`).
    QuicHandshakes {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1000)]
        connections: u64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive load at a URL set and print a report.
    Run(RunArgs),
    /// New connections per second: TLS (`--proto h1`: handshake, one GET, close) or QUIC
    /// (`--proto h3`: handshake, close), closed loop; JSON report.
    Handshake {
        #[command(flatten)]
        target: TargetArgs,
        /// Requested on each TLS connection.
        #[arg(long, default_value = "/")]
        path: String,
        /// Connections in flight.
        #[arg(long, short = 'c', default_value_t = 8)]
        connections: usize,
        #[arg(long, short = 'd', default_value_t = 5.0)]
        duration: f64,
        /// Resume sessions (tickets) instead of full handshakes.
        #[arg(long)]
        resume: bool,
    },
    /// Write a self-signed end-entity certificate for localhost, 127.0.0.1 and ::1 as
    /// DIR/cert.pem and DIR/key.pem (benchmarks need one that rustls accepts: not a CA).
    Cert {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Open N connections, make one request on each, then hold them idle: for measuring the
    /// server's memory per idle connection. Prints `holding N` once they are all open.
    Hold {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, short = 'c', default_value_t = 10_000)]
        connections: usize,
        /// Seconds to hold them after they are all open.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
    },
    /// Attack tools for trying a deployment's guards (bounded by --streams and --duration).
    Attack {
        #[command(subcommand)]
        kind: AttackKind,
    },
    /// GeoIP lookups per second: the database alone, and through the edge's cache.
    GeoBench {
        /// A MaxMind-format database (scripts/fetch-geoip.sh prints the DB-IP one's path).
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 2_000_000)]
        lookups: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Writes a small country database (MaxMind format) for benchmarks: `NET/LEN=CC` each.
    GeoDb {
        #[arg(long)]
        out: PathBuf,
        /// `192.0.2.0/24=DE` (repeatable).
        entries: Vec<String>,
    },
    /// CPU cost of compressing and decompressing per MiB, per coding, at the edge's levels.
    Codec {
        /// Bytes of text to compress per round.
        #[arg(long, default_value_t = 8 * 1024 * 1024)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Every level of every coding, to choose levels.
        #[arg(long)]
        sweep: bool,
    },
    /// Serve /obj/NAME?size=N with Cache-Control: public, max-age=3600.
    Origin {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        max_size: usize,
    },
}

/// Where to send requests and how to trust the server.
#[derive(clap::Args)]
struct TargetArgs {
    /// Base URL, e.g. https://localhost:8443 (http:// for plain HTTP/1.1).
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value = "h1")]
    proto: Proto,
    /// Connect here instead of resolving the URL's host (SNI and Host stay the URL's).
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// PEM certificate(s) to trust (pinning a local self-signed certificate).
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long)]
    insecure: bool,
    /// Extra request header, `name: value` (repeatable), e.g. `accept-encoding: br`.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Paths to request round-robin (default "/").
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Zipf population: N objects named by --template with `{}` the rank.
    #[arg(long)]
    zipf: Option<usize>,
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// With --zipf N: ranks 1..=N in order instead of drawn (every object once per N requests).
    #[arg(long)]
    sequential: bool,
    #[arg(long, default_value = "/obj/{}?size=1024")]
    template: String,
    /// Share of requests (0..1) made unique so they miss.
    #[arg(long, default_value_t = 0.0)]
    miss_ratio: f64,
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Concurrent streams per connection (HTTP/2, HTTP/3).
    #[arg(long, short = 'm', default_value_t = 1)]
    streams: usize,
    /// Seconds to measure.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: requests per second. Without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    quiet: bool,
    /// Worker threads of the generator (default 1: pin it to one core with taskset).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Run(a) => a.threads,
        Cmd::Origin { .. }
        | Cmd::Handshake { .. }
        | Cmd::Cert { .. }
        | Cmd::Hold { .. }
        | Cmd::Codec { .. }
        | Cmd::GeoBench { .. }
        | Cmd::GeoDb { .. }
        | Cmd::Attack { .. } => 1,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge-load: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.cmd {
            Cmd::Origin { listen, max_size } => load_tests::origin::serve(listen, max_size).await,
            Cmd::Run(args) => run_cmd(args).await,
            Cmd::Handshake {
                target,
                path,
                connections,
                duration,
                resume,
            } => {
                let proto = target.proto;
                let target = target_of(&target)?;
                let report = load_tests::handshake::run(
                    &target,
                    proto,
                    &path,
                    connections,
                    Duration::from_secs_f64(duration),
                    resume,
                )
                .await?;
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                Ok(())
            }
            Cmd::Codec {
                size,
                rounds,
                sweep,
            } => load_tests::codec::run(size, rounds, sweep).await,
            Cmd::Cert { dir } => write_cert(&dir),
            Cmd::Attack {
                kind:
                    AttackKind::RapidReset {
                        target,
                        path,
                        streams,
                        duration,
                        hold_ms,
                        reconnect,
                    },
            } => {
                let target = target_of(&target)?;
                let within = Duration::from_secs_f64(duration);
                load_tests::attack_repeat::repeat(within, reconnect, |left| {
                    load_tests::attack::rapid_reset(
                        &target,
                        &path,
                        streams,
                        left,
                        Duration::from_millis(hold_ms),
                    )
                })
                .await
            }
            Cmd::Attack {
                kind:
                    AttackKind::H3Resets {
                        target,
                        path,
                        streams,
                        duration,
                        hold_ms,
                        reconnect,
                    },
            } => {
                let target = target_of(&target)?;
                let within = Duration::from_secs_f64(duration);
                load_tests::attack_repeat::repeat(within, reconnect, |left| {
                    load_tests::attack::h3_resets(
                        &target,
                        &path,
                        streams,
                        left,
                        Duration::from_millis(hold_ms),
                    )
                })
                .await
            }
            Cmd::Attack {
                kind:
                    AttackKind::Continuation {
                        target,
                        max_bytes,
                        duration,
                        reconnect,
                    },
            } => {
                let target = target_of(&target)?;
                let within = Duration::from_secs_f64(duration);
                load_tests::attack_repeat::repeat(within, reconnect, |left| {
                    load_tests::attack::continuation(&target, max_bytes, left)
                })
                .await
            }
            Cmd::Attack {
                kind:
                    AttackKind::Slowloris {
                        connect,
                        sources,
                        connections,
                        drip_ms,
                        duration,
                    },
            } => {
                let report = load_tests::attack::slowloris(
                    connect,
                    &sources,
                    connections,
                    Duration::from_millis(drip_ms),
                    Duration::from_secs_f64(duration),
                )
                .await?;
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                Ok(())
            }
            Cmd::Attack {
                kind:
                    AttackKind::QuicHandshakes {
                        target,
                        connections,
                        duration,
                    },
            } => {
                let target = target_of(&target)?;
                let report = load_tests::attack::quic_handshakes(
                    &target,
                    connections,
                    Duration::from_secs_f64(duration),
                )
                .await?;
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                Ok(())
            }
            Cmd::GeoBench {
                db,
                lookups,
                rounds,
            } => load_tests::geo_bench::run(&db, lookups, rounds),
            Cmd::GeoDb { out, entries } => load_tests::geo_bench::write_db(&out, &entries),
            Cmd::Hold {
                target,
                path,
                connections,
                hold,
            } => {
                let proto = target.proto;
                let target = target_of(&target)?;
                hold_idle(
                    target,
                    proto,
                    &path,
                    connections,
                    Duration::from_secs_f64(hold),
                )
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_cert(dir: &std::path::Path) -> Result<(), LoadError> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ck =
        rcgen::generate_simple_self_signed(names).map_err(|e| LoadError::Tls(e.to_string()))?;
    let io = |source| LoadError::Io {
        context: format!("writing into {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).map_err(io)?;
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).map_err(io)?;
    Ok(())
}

async fn hold_idle(
    target: Target,
    proto: Proto,
    path: &str,
    n: usize,
    hold: Duration,
) -> Result<(), LoadError> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match load_tests::conn::Conn::connect(proto, &target).await {
            Ok(mut c) => match c.get(&target, path).await {
                Ok(_) => held.push(c),
                Err(kind) => {
                    eprintln!(
                        "edge-load hold: request failed ({}) after {} connections",
                        kind.as_str(),
                        held.len()
                    );
                    break;
                }
            },
            Err(kind) => {
                eprintln!(
                    "edge-load hold: connect failed ({}) after {} connections",
                    kind.as_str(),
                    held.len()
                );
                break;
            }
        }
    }
    println!("holding {}", held.len());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    tokio::time::sleep(hold).await;
    Ok(())
}

fn target_of(args: &TargetArgs) -> Result<Target, LoadError> {
    let TargetArgs {
        url,
        proto,
        connect,
        ca,
        insecure,
        headers: extra_headers,
    } = args;
    let (proto, connect, ca, insecure) = (*proto, *connect, ca.as_deref(), *insecure);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| LoadError::Usage(format!("--url: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(LoadError::Usage(
                "--url must start with http:// or https://".into(),
            ));
        }
    };
    if !https && proto != Proto::H1 {
        return Err(LoadError::Usage(
            "HTTP/2 and HTTP/3 need an https:// URL".into(),
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| LoadError::Usage("--url has no host".into()))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = match connect {
        Some(a) => a,
        None => (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|source| LoadError::Io {
                context: format!("resolving {host}"),
                source,
            })?
            .next()
            .ok_or_else(|| LoadError::Usage(format!("{host} did not resolve")))?,
    };
    let tls = if https {
        Some(tls_config(proto, ca, insecure)?)
    } else {
        None
    };
    let mut headers = http::HeaderMap::new();
    for h in extra_headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| LoadError::Usage(format!("--header {h:?}: expected `name: value`")))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| LoadError::Usage(format!("--header {h:?}: {e}")))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|e| LoadError::Usage(format!("--header {h:?}: {e}")))?;
        headers.append(name, value);
    }
    Ok(Target {
        addr,
        host,
        tls,
        headers,
    })
}

async fn run_cmd(a: RunArgs) -> Result<(), LoadError> {
    let target = target_of(&a.target)?;
    let proto = a.target.proto;
    let urls = match a.zipf {
        Some(n) if a.sequential => UrlSet::Sequence {
            template: a.template.clone(),
            n,
        },
        Some(n) => UrlSet::zipf(&a.template, n, a.zipf_s, a.miss_ratio),
        None if a.paths.is_empty() => UrlSet::List(vec!["/".into()]),
        None => UrlSet::List(a.paths.clone()),
    };
    let cfg = RunConfig {
        proto,
        target,
        urls: Arc::new(urls),
        connections: a.connections,
        streams: a.streams,
        duration: Duration::from_secs_f64(a.duration),
        warmup: Duration::from_secs_f64(a.warmup),
        rate: a.rate,
        timeout: Duration::from_secs_f64(a.timeout),
        progress: !a.quiet && !a.json,
    };
    let report = run(cfg).await;
    if a.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
