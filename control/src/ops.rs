//! The operator's calls behind `edge config push | history | diff | rollback | status`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use config::{Document, Layer, layered, referenced_blobs};

use crate::rollout::RolloutRecord;
use crate::store::now_unix;
use crate::{ControlError, NodeReport, Store, unified_diff};

/// The node file a push is validated against when none is given: listeners on loopback and
/// nothing else, so only the shared document is judged.
pub const EXAMPLE_NODE_FILE: &str = "\
[node]
name = \"validate\"

[listen]
https = [\"127.0.0.1:0\"]
http = [\"127.0.0.1:0\"]
admin = [\"127.0.0.1:0\"]
";

/// What a push sends: the shared document, the files it names (uploaded unless listed in
/// `local`), and who and why.
pub struct Push<'a> {
    pub file: &'a Path,
    /// Validate against this node file (default [`EXAMPLE_NODE_FILE`]).
    pub node_file: Option<&'a Path>,
    /// Names each node reads from its own disk instead (validated with the pusher's copy).
    pub local: &'a [String],
    pub author: &'a str,
    pub message: &'a str,
}

/// Validates the document (joined with the node file, compiled as a node would) and stores it
/// as the new active version. An invalid document is refused with every `file:line:col`, and
/// nothing is written.
pub async fn push(store: &Store, p: &Push<'_>) -> Result<u64, ControlError> {
    write(store, p, true).await
}

/// Validates and stores the document as a new version without making it active (for a
/// canary rollout).
pub async fn stage(store: &Store, p: &Push<'_>) -> Result<u64, ControlError> {
    write(store, p, false).await
}

async fn write(store: &Store, p: &Push<'_>, activate: bool) -> Result<u64, ControlError> {
    let (text, blobs) = validate(p)?;
    let upload: BTreeMap<String, Vec<u8>> = blobs
        .into_iter()
        .filter(|(name, _)| !p.local.contains(name))
        .collect();
    store
        .create_version(
            &text,
            &upload,
            p.local.to_vec(),
            p.author,
            p.message,
            activate,
        )
        .await
}

/// Blocking: reads and compiles what `p` would push; the text and the files it names.
pub fn validate(p: &Push<'_>) -> Result<(String, BTreeMap<String, Vec<u8>>), ControlError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let text = read(p.file)?;
    let (node_name, node_text) = match p.node_file {
        Some(f) => (f.to_path_buf(), read(f)?),
        None => (
            PathBuf::from("(example node file)"),
            EXAMPLE_NODE_FILE.to_string(),
        ),
    };
    let base = p
        .file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut blobs = BTreeMap::new();
    let mut unavailable = BTreeMap::new();
    for name in referenced_blobs(&text) {
        match std::fs::read(base.join(&name)) {
            Ok(b) => {
                blobs.insert(name, b);
            }
            Err(e) => {
                unavailable.insert(name.clone(), format!("{}: {e}", base.join(&name).display()));
            }
        }
    }
    let (joint, parts) = layered(
        Layer {
            name: &node_name,
            text: &node_text,
        },
        Layer {
            name: p.file,
            text: &text,
        },
    )?;
    let doc = Document {
        name: p.file.to_path_buf(),
        base,
        text: joint,
        blobs: blobs.clone(),
        unavailable,
        revision: 0,
        parts,
    };
    config::compile(&doc)?;
    Ok((text, blobs))
}

/// `edge config history`: one line per version, newest last, the active one marked.
pub async fn history(store: &Store) -> Result<String, ControlError> {
    let versions = store.versions().await?;
    let active = store.active().await?.map(|(a, _)| a.version);
    let mut out = String::from("  VERSION  AGE       AUTHOR            MESSAGE\n");
    let now = now_unix();
    for v in &versions {
        let mark = if Some(v.version) == active { '*' } else { ' ' };
        let _ = writeln!(
            out,
            "{mark} {:<8} {:<9} {:<17} {}",
            v.version,
            age(now.saturating_sub(v.created_at)),
            v.author,
            v.message
        );
    }
    Ok(out)
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `edge config diff [A] [B]`: B defaults to the active version, A to the one before it.
pub async fn diff(store: &Store, a: Option<u64>, b: Option<u64>) -> Result<String, ControlError> {
    let active = store.active().await?.map(|(a, _)| a);
    let b = match b.or(active.as_ref().map(|x| x.version)) {
        Some(b) => b,
        None => return Err(ControlError::Settings("no version pushed yet".into())),
    };
    let a = match a {
        Some(a) => a,
        None => active
            .as_ref()
            .filter(|x| x.version == b)
            .and_then(|x| x.previous)
            .unwrap_or(b.saturating_sub(1)),
    };
    let text = |n: u64| async move {
        if n == 0 {
            return Ok::<_, ControlError>(String::new());
        }
        Ok(store.document(n).await?.1)
    };
    let (ta, tb) = (text(a).await?, text(b).await?);
    Ok(unified_diff(
        &format!("version {a}"),
        &ta,
        &format!("version {b}"),
        &tb,
    ))
}

/// `edge config rollback [VERSION]`: makes VERSION (default: the one active before the current
/// one) active again. Returns the version now active.
pub async fn rollback(store: &Store, to: Option<u64>, by: &str) -> Result<u64, ControlError> {
    let to = match to {
        Some(v) => v,
        None => store
            .active()
            .await?
            .and_then(|(a, _)| a.previous)
            .ok_or_else(|| ControlError::Settings("no previous version to go back to".into()))?,
    };
    Ok(store.activate(to, by).await?.version)
}

/// `edge config status`: a table of the nodes' reports, and whether all is well (every node
/// runs the active version and none reports an error).
pub async fn status(store: &Store) -> Result<(String, bool), ControlError> {
    let active = store.active().await?.map(|(a, _)| a);
    let rollout = store.rollout().await?.map(|(r, _)| r);
    let controlled = store.rollout_controlled().await?;
    let mut reports = store.reports().await?;
    reports.sort_by(|a, b| (&a.tier, &a.pop, &a.node).cmp(&(&b.tier, &b.pop, &b.node)));
    let mut out = String::new();
    match &active {
        Some(a) => {
            let _ = writeln!(
                out,
                "active version {} (by {}, {} ago)",
                a.version,
                a.by,
                age(now_unix().saturating_sub(a.at))
            );
        }
        None => out.push_str("no version pushed yet\n"),
    }
    let mut ok = active.is_some() && !reports.is_empty();
    if let Some(r) = &rollout {
        let (line, halted) = crate::rollout::describe(r, controlled);
        let _ = writeln!(out, "{line}");
        if halted {
            ok = false;
        }
    }
    let _ = writeln!(
        out,
        "NODE             POP      REGION   TIER    VERSION  SINCE     REQUESTS  5XX    STATE"
    );
    let now = now_unix();
    for r in &reports {
        let expected = active
            .as_ref()
            .map(|a| RolloutRecord::version_for(rollout.as_ref(), a.version, &r.node, &r.pop));
        let mut state = node_state(r, expected);
        if state == "ok" && expected != active.as_ref().map(|a| a.version) {
            state = "ok (canary)".into();
        }
        if !state.starts_with("ok") {
            ok = false;
        }
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:<8} {:<7} {:<8} {:<9} {:<9} {:<6} {state}",
            r.node,
            r.pop,
            r.region,
            r.tier,
            r.version,
            age(now.saturating_sub(r.applied_at)),
            r.requests,
            r.status_5xx,
        );
    }
    if reports.is_empty() {
        out.push_str("(no node reports)\n");
    }
    Ok((out, ok))
}

fn node_state(r: &NodeReport, active: Option<u64>) -> String {
    if let Some(e) = &r.error {
        let first = e.lines().next().unwrap_or("");
        return format!(
            "ERROR in version {}: {first}",
            r.failed_version.unwrap_or(0)
        );
    }
    if Some(r.version) != active {
        return format!("behind (active {})", active.unwrap_or(0));
    }
    if r.last_known_good {
        return "last known good (etcd unreachable)".into();
    }
    "ok".into()
}
