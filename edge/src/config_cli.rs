//! `edge config push | history | diff | rollback | status`: the operator's side of config in
//! etcd (the calls are `control::ops`; this is their command line).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use control::{ControlError, NodeFile, Store, StoreSettings, ops};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a shared document (against a node file) and make it the active version.
    Push {
        file: PathBuf,
        /// Validate against this node file (default: a built-in example).
        #[arg(long)]
        node_file: Option<PathBuf>,
        /// A file the document names that each node reads from its own disk instead of the
        /// store (repeatable).
        #[arg(long)]
        local: Vec<String>,
        #[arg(long, short, default_value = "")]
        message: String,
        /// Who pushes (default: $USER).
        #[arg(long)]
        author: Option<String>,
        /// Roll out to these nodes or POPs first (repeatable); promoted to all only if they
        /// apply it and stay healthy, else rolled back.
        #[arg(long)]
        canary: Vec<String>,
        /// How long the canaries are watched once they run the version.
        #[arg(long, default_value = "30s", value_parser = duration)]
        watch: std::time::Duration,
        /// How long the canaries have to apply it.
        #[arg(long, default_value = "30s", value_parser = duration)]
        apply_within: std::time::Duration,
        /// How much higher the canaries' 5xx ratio may be than the other nodes' (0.01: one
        /// point).
        #[arg(long, default_value_t = 0.01)]
        max_5xx_rise: f64,
    },
    /// Promote the version at its canaries to every node (a halted rollout).
    Promote,
    /// Send the canaries back to the active version (a halted rollout).
    Abort,
    /// Every version, the active one marked.
    History,
    /// A unified diff of two versions (default: the one before the active one, and the active).
    Diff { a: Option<u64>, b: Option<u64> },
    /// Make a version active again (default: the one before the active one).
    Rollback { version: Option<u64> },
    /// Which node runs which version, since when, with what errors. Exits 1 unless every node
    /// runs the active version without error.
    Status,
}

/// Where the store is: `--store etcd://…`, with credentials (TLS files, user) from the
/// `[store]` table of `--store-config FILE` when given.
pub struct StoreArgs {
    pub url: Option<String>,
    pub settings_file: Option<PathBuf>,
}

async fn connect(args: &StoreArgs) -> Result<Store, ControlError> {
    let (settings, base) = settings(args)?;
    Store::connect(&settings, &base).await
}

fn settings(args: &StoreArgs) -> Result<(StoreSettings, PathBuf), ControlError> {
    let (settings, base) = match &args.settings_file {
        Some(f) => {
            let node = NodeFile::read(f)?;
            (node.store.clone(), node.dir())
        }
        None => (StoreSettings::default(), PathBuf::from(".")),
    };
    let mut settings = settings;
    if let Some(url) = &args.url {
        let (endpoints, prefix) = control::parse_store_url(url)?;
        settings.endpoints = endpoints;
        settings.prefix = Some(prefix);
    }
    Ok((settings, base))
}

/// `edge purge --store …`: straight onto the purge bus, as the operator; prints the record
/// (every node's acknowledgement). Ok(true) when every live node acknowledged it.
pub async fn purge(
    args: &StoreArgs,
    targets: &crate::purge_cli::Targets,
) -> Result<bool, crate::error::Error> {
    use crate::error::Error;
    let body = serde_json::to_vec(&targets.body()).unwrap_or_default();
    let request = purge_api::request::parse(&body, &http::HeaderMap::new())
        .map_err(|e| Error::Control(ControlError::Settings(format!("purge request: {e}"))))?;
    let (settings, base) = settings(args).map_err(Error::Control)?;
    let user = settings.user.clone().unwrap_or_else(|| who(None));
    let bus = control::PurgeBus::operator(settings, base);
    let event = control::PurgeEvent {
        id: purge_api::Journal::new(0).next_id("cli"),
        request,
        token: format!("etcd:{user}"),
        token_sites: None,
        from: "edge purge".into(),
        at_unix_ms: edge_core::clock::unix_ms(),
    };
    let started = edge_core::clock::now();
    let acks = bus.watch_acks(&event.id).await.map_err(Error::Control)?;
    bus.publish(&event).await.map_err(Error::Control)?;
    let fanout = bus
        .wait_acks(&event.id, acks, crate::admin::fanout::ACK_WAIT)
        .await
        .map_err(Error::Control)?;
    let done = fanout.pending.is_empty();
    let record = serde_json::json!({
        "id": event.id,
        "status": if done { "done" } else { "partial" },
        "purged": fanout.acks.iter().map(|a| a.purged).sum::<u64>(),
        "took_us": u64::try_from(edge_core::clock::since(started).as_micros()).unwrap_or(u64::MAX),
        "acks": fanout.acks,
        "pending": fanout.pending,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&record).unwrap_or_default()
    );
    Ok(done)
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    config::parse_duration(s)
}

fn who(author: Option<String>) -> String {
    author
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

pub async fn run(store: StoreArgs, command: ConfigCommand) -> ExitCode {
    match execute(store, command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge config: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: StoreArgs, command: ConfigCommand) -> Result<ExitCode, ControlError> {
    // Validation needs no store: refuse a bad file before connecting.
    if let ConfigCommand::Push {
        file,
        node_file,
        local,
        ..
    } = &command
    {
        let push = ops::Push {
            file,
            node_file: node_file.as_deref(),
            local,
            author: "",
            message: "",
        };
        ops::validate(&push)?;
    }
    let store = connect(&args).await?;
    match command {
        ConfigCommand::Push {
            file,
            node_file,
            local,
            message,
            author,
            canary,
            watch,
            apply_within,
            max_5xx_rise,
        } => {
            let author = who(author);
            let push = ops::Push {
                file: &file,
                node_file: node_file.as_deref(),
                local: &local,
                author: &author,
                message: &message,
            };
            if canary.is_empty() {
                let n = ops::push(&store, &push).await?;
                println!("pushed version {n}; active");
            } else {
                let n = ops::stage(&store, &push).await?;
                println!("pushed version {n}; rolling out to {}", canary.join(", "));
                let health = control::rollout::Health {
                    apply_within,
                    watch,
                    max_5xx_rise,
                };
                let verdict = control::rollout::run(&store, n, &canary, &health, &author, |line| {
                    println!("{line}");
                })
                .await?;
                match verdict {
                    control::rollout::Verdict::Promoted => {
                        println!("version {n} promoted to every node");
                    }
                    control::rollout::Verdict::RolledBack(why) => {
                        println!("version {n} rolled back: {why}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
        ConfigCommand::Promote => {
            let r = store
                .finish_rollout(control::rollout::RolloutState::Promoted, &who(None), None)
                .await?;
            println!("version {} promoted to every node", r.version);
        }
        ConfigCommand::Abort => {
            let r = store
                .finish_rollout(
                    control::rollout::RolloutState::Aborted,
                    &who(None),
                    Some("aborted by hand".into()),
                )
                .await?;
            println!(
                "rollout of version {} aborted; the canaries go back",
                r.version
            );
        }
        ConfigCommand::History => print!("{}", ops::history(&store).await?),
        ConfigCommand::Diff { a, b } => print!("{}", ops::diff(&store, a, b).await?),
        ConfigCommand::Rollback { version } => {
            let n = ops::rollback(&store, version, &who(None)).await?;
            println!("version {n} active");
        }
        ConfigCommand::Status => {
            let (table, ok) = ops::status(&store).await?;
            print!("{table}");
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
