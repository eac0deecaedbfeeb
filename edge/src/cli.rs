//! Command line: `run`, `check`, `demo`, `purge`, `token-hash`, `config`, `rules test`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::{demo, server};

#[derive(Parser)]
#[command(name = "edge", version, about = "HTTP/3-first caching edge proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with the given config; reloads on SIGHUP and when the file changes.
    Run {
        /// The config file; with a store, the node file (the node's own layer).
        #[arg(long, short)]
        config: PathBuf,
        /// Take the shared config from etcd: etcd://HOST:PORT[,HOST:PORT…]/PREFIX (else the
        /// node file's `[store]`, if it has endpoints).
        #[arg(long)]
        store: Option<String>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Validate a config file; prints file:line:col: reason for each problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a built-in demo origin and an edge in front of it, on loopback.
    Demo {
        /// HTTPS (TCP and QUIC) port; 0 picks a free one.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Plain HTTP port; 0 picks a free one.
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        #[arg(long)]
        workers: Option<usize>,
        /// Where to write the certificate and config (default: a folder under the temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Purge through a node's admin API; exits 0 only when the purge is done.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["url", "prefix", "tag", "host", "everything"])))]
    #[command(group(clap::ArgGroup::new("via").required(true).args(["admin", "store"])))]
    Purge {
        /// The admin listener: http://127.0.0.1:9000 or https://edge-1.example:9443.
        #[arg(long, requires = "token_file")]
        admin: Option<String>,
        /// A file holding the bearer token (the secret, not its hash).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Or straight onto the purge bus in etcd (every node applies and acknowledges it):
        /// etcd://HOST:PORT[,…]/PREFIX; etcd's own auth decides who may.
        #[arg(long, conflicts_with = "admin")]
        store: Option<String>,
        /// A file whose `[store]` table gives TLS files and the etcd user.
        #[arg(long, requires = "store")]
        store_config: Option<PathBuf>,
        /// Trust this certificate (or CA) for an https admin listener.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// A URL to purge (repeatable): every scheme, variant and encoding of it.
        #[arg(long, conflicts_with_all = ["prefix", "tag", "host", "everything"])]
        url: Vec<String>,
        /// A path prefix on a host, `host/path` (repeatable).
        #[arg(long, conflicts_with_all = ["tag", "host", "everything"])]
        prefix: Vec<String>,
        /// A surrogate key (repeatable).
        #[arg(long, conflicts_with_all = ["host", "everything"])]
        tag: Vec<String>,
        /// Everything of a host (repeatable).
        #[arg(long, conflicts_with = "everything")]
        host: Vec<String>,
        /// Everything the token may purge.
        #[arg(long)]
        everything: bool,
        /// Mark stale (revalidated, served stale where allowed) instead of removing.
        #[arg(long)]
        soft: bool,
    },
    /// GeoDNS: an authoritative DNS server answering each site name with the nearest healthy
    /// POP (`[dns]` in the config); reloads when the file changes or on SIGHUP.
    Dns {
        #[arg(long, short)]
        config: PathBuf,
        /// Read node reports (POP liveness and load) from etcd: etcd://HOST:PORT[,…]/PREFIX
        /// (else the file's `[store]`, if it has endpoints).
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Site rules: `edge rules test` shows what they would do with one request.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Prints the SHA-256 of a token secret read from stdin: the `sha256` of `[[admin.tokens]]`.
    TokenHash,
    /// Versioned config in etcd: push, history, diff, rollback, status.
    Config {
        /// etcd://HOST:PORT[,HOST:PORT…]/PREFIX
        #[arg(long, global = true)]
        store: Option<String>,
        /// A file whose `[store]` table gives TLS files and the etcd user.
        #[arg(long, global = true)]
        store_config: Option<PathBuf>,
        #[command(subcommand)]
        command: crate::config_cli::ConfigCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Which rules match a request and what the edge would do (auth, answer, rewrite, pool,
    /// headers, cache key), without sending anything.
    Test {
        #[arg(long, short)]
        config: PathBuf,
        /// `METHOD URL`, e.g. 'GET https://www.example.com/path?q=1'.
        #[arg(long)]
        request: String,
        /// A request header, 'Name: value' (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The visitor's address.
        #[arg(long, default_value = "192.0.2.1")]
        client: std::net::IpAddr,
        /// The visitor's country (ISO code), as geo would say.
        #[arg(long)]
        country: Option<String>,
        #[arg(long)]
        continent: Option<String>,
        #[arg(long)]
        asn: Option<u32>,
        /// The time to judge time windows at (RFC 3339, e.g. 2026-12-24T18:00:00Z); default now.
        #[arg(long)]
        time: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    raise_open_files();
    let result = match cli.command {
        Command::Check { config } => return check(&config),
        Command::TokenHash => return token_hash(),
        Command::Rules {
            command:
                RulesCommand::Test {
                    config,
                    request,
                    headers,
                    client,
                    country,
                    continent,
                    asn,
                    time,
                },
        } => {
            return crate::rules_cli::test(&crate::rules_cli::TestArgs {
                config: &config,
                request: &request,
                headers: &headers,
                client,
                country: country.as_deref(),
                continent: continent.as_deref(),
                asn,
                time: time.as_deref(),
            });
        }
        Command::Config {
            store,
            store_config,
            command,
        } => {
            let args = crate::config_cli::StoreArgs {
                url: store,
                settings_file: store_config,
            };
            return match runtime(Some(1)) {
                Ok(rt) => rt.block_on(crate::config_cli::run(args, command)),
                Err(e) => {
                    eprintln!("edge config: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Purge {
            admin,
            token_file,
            store,
            store_config,
            ca_file,
            url,
            prefix,
            tag,
            host,
            everything,
            soft,
        } => {
            let targets = crate::purge_cli::Targets {
                urls: url,
                prefixes: prefix,
                tags: tag,
                hosts: host,
                everything,
                soft,
            };
            let done = runtime(Some(1)).and_then(|rt| {
                rt.block_on(async {
                    match (admin, token_file, store) {
                        (Some(admin), Some(token_file), _) => {
                            crate::purge_cli::run(&admin, &token_file, ca_file.as_ref(), &targets)
                                .await
                        }
                        (_, _, Some(store)) => {
                            let args = crate::config_cli::StoreArgs {
                                url: Some(store),
                                settings_file: store_config,
                            };
                            crate::config_cli::purge(&args, &targets).await
                        }
                        _ => Err(Error::Control(control::ControlError::Settings(
                            "give --admin and --token-file, or --store".into(),
                        ))),
                    }
                })
            });
            return match done {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("edge purge: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Run {
            config,
            store,
            workers,
        } => runtime(workers)
            .and_then(|rt| rt.block_on(server::serve_node(config, store, server::print_bound))),
        Command::Dns {
            config,
            store,
            workers,
        } => runtime(workers).and_then(|rt| rt.block_on(crate::dns_cli::run(config, store))),
        Command::Demo {
            port,
            http_port,
            workers,
            dir,
        } => runtime(workers).and_then(|rt| rt.block_on(run_demo(port, http_port, dir))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn token_hash() -> ExitCode {
    let mut secret = String::new();
    if std::io::stdin().read_line(&mut secret).is_err() || secret.trim().is_empty() {
        eprintln!("edge token-hash: give the secret on stdin");
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        purge_api::auth::hex(&purge_api::auth::hash_secret(secret.trim()))
    );
    ExitCode::SUCCESS
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(s) => {
            println!(
                "{}: ok ({} sites, {} pools)",
                path.display(),
                s.sites.len(),
                s.pools.len()
            );
            for line in crate::rules_cli::describe(&s) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("{d}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run_demo(port: u16, http_port: u16, dir: Option<PathBuf>) -> Result<(), Error> {
    let origin = demo::start_origin().await?;
    let dir = dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("edge-demo-{}", std::process::id())));
    let files = demo::write_files(&dir, origin, port, http_port)?;
    let config = files.config.clone();
    server::serve(config, |bound| {
        server::print_bound(bound);
        demo::print_banner(&files, origin, bound);
    })
    .await
}

fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, Error> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name("edge-worker");
    if let Some(n) = workers {
        b.worker_threads(n.max(1));
    }
    b.build().map_err(|source| Error::Io {
        context: "starting the runtime".into(),
        source,
    })
}

fn init_tracing() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // hickory-server logs every DNS query at info: a line per query is the access log of a
    // DNS server under load, not what `info` should mean here. RUST_LOG=hickory_server=info
    // brings it back.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("hickory"))
        && let Ok(d) = "hickory_server=warn".parse()
    {
        filter = filter.add_directive(d);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Every client connection is a file descriptor: the usual soft limit (1,024) would make the
/// edge refuse connections long before its own limits do. Raised to the hard limit at start,
/// as Go's runtime does; what the operator set as the hard limit still applies.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
}
