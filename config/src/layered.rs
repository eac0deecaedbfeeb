//! Two layers of config for a node of a multi-POP deployment: the node file (local to the node:
//! its identity, listeners, cache storage, how to reach the central store) and the shared
//! document (from the central store: sites, pools, TLS, policies). They are joined into one
//! [`Document`] text, which compiles as a single file would; its [`Part`]s keep each text's name,
//! so a diagnostic says `etcd:/edge/v/7:12:3: …` or `node.toml:4:1: …`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::diagnostics::line_col;
use crate::{ConfigError, Diagnostic, Part};

/// The tables of the node file; every other table belongs to the shared document.
pub const NODE_TABLES: [&str; 5] = ["node", "listen", "cache", "store", "geo"];

/// One text of a layered document.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub name: &'a Path,
    pub text: &'a str,
}

/// Joins `node` and `shared` after checking that each holds only its own tables (and only
/// tables: a bare key at the top of one text would land in the other's last table). Returns the
/// joint text and its parts.
pub fn layered(node: Layer<'_>, shared: Layer<'_>) -> Result<(String, Vec<Part>), ConfigError> {
    let mut errors = Vec::new();
    check(node, true, &mut errors);
    check(shared, false, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let mut text = String::with_capacity(node.text.len() + shared.text.len() + 1);
    text.push_str(node.text);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let parts = vec![
        Part {
            name: node.name.to_path_buf(),
            offset: 0,
        },
        Part {
            name: shared.name.to_path_buf(),
            offset: text.len(),
        },
    ];
    text.push_str(shared.text);
    Ok((text, parts))
}

fn check(layer: Layer<'_>, is_node: bool, errors: &mut Vec<Diagnostic>) {
    // Text that is not TOML is left to `compile`, which reports the syntax error in place.
    let Ok(top) = toml::from_str::<BTreeMap<Spanned<String>, toml::Value>>(layer.text) else {
        return;
    };
    for (key, value) in &top {
        let name = key.get_ref().as_str();
        let at = Some(line_col(layer.text, key.span().start));
        let is_table = match value {
            toml::Value::Table(_) => true,
            toml::Value::Array(a) => !a.is_empty() && a.iter().all(|v| v.is_table()),
            _ => false,
        };
        let reason = if !is_table {
            format!("`{name}` must be a table (`[{name}]`) in a layered config")
        } else if is_node && !NODE_TABLES.contains(&name) {
            format!("`[{name}]` belongs in the shared document, not the node file")
        } else if !is_node && NODE_TABLES.contains(&name) {
            format!("`[{name}]` belongs in the node file, not the shared document")
        } else {
            continue;
        };
        errors.push(Diagnostic {
            file: PathBuf::from(layer.name),
            location: at,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Document;

    const NODE: &str = "[node]\nname = \"n1\"\n\n[listen]\nhttp = [\"127.0.0.1:0\"]\n";
    const SHARED: &str = "[pools.o]\nendpoints = [\"127.0.0.1:9\"]\n\n[[sites]]\nname = \"s\"\nhosts = [\"a.test\"]\nplain_http = \"proxy\"\nroutes = [{ path_prefix = \"/\", pool = \"o\" }]\n";

    fn doc(node: &str, shared: &str) -> Result<Document, ConfigError> {
        let (text, parts) = layered(
            Layer {
                name: Path::new("node.toml"),
                text: node,
            },
            Layer {
                name: Path::new("etcd:/edge/v/3"),
                text: shared,
            },
        )?;
        Ok(Document {
            name: PathBuf::from("etcd:/edge/v/3"),
            base: PathBuf::from("/tmp"),
            text,
            blobs: BTreeMap::new(),
            unavailable: BTreeMap::new(),
            revision: 3,
            parts,
        })
    }

    #[test]
    fn the_two_layers_compile_as_one() {
        let snapshot = crate::compile(&doc(NODE, SHARED).expect("layered")).expect("compiles");
        assert_eq!(snapshot.node_name, "n1");
        assert_eq!(snapshot.sites.len(), 1);
        assert_eq!(snapshot.version, 3);
    }

    #[test]
    fn diagnostics_name_the_text_and_its_own_line() {
        let shared = SHARED.replace("pool = \"o\"", "pool = \"missing\"");
        let err = crate::compile(&doc(NODE, &shared).expect("layered")).expect_err("refused");
        let d = &err.diagnostics()[0];
        assert_eq!(d.file, PathBuf::from("etcd:/edge/v/3"), "{err}");
        assert_eq!(d.location.map(|l| l.0), Some(8), "{err}");
        let node = NODE.replace("name = \"n1\"", "name = \"has space\"");
        let err = crate::compile(&doc(&node, SHARED).expect("layered")).expect_err("refused");
        let d = &err.diagnostics()[0];
        assert_eq!(d.file, PathBuf::from("node.toml"), "{err}");
        assert_eq!(d.location, Some((2, 8)), "{err}");
    }

    #[test]
    fn each_layer_holds_only_its_own_tables() {
        let err = doc(&format!("{NODE}[pools.x]\nendpoints = []\n"), SHARED).expect_err("refused");
        assert!(
            err.to_string()
                .contains("node.toml:6:2: `[pools]` belongs in the shared"),
            "{err}"
        );
        let err = doc(NODE, &format!("[listen]\nhttp = []\n{SHARED}")).expect_err("refused");
        assert!(
            err.to_string()
                .contains("etcd:/edge/v/3:1:2: `[listen]` belongs in the node file"),
            "{err}"
        );
        let err = doc(NODE, &format!("stray = 1\n{SHARED}")).expect_err("refused");
        assert!(err.to_string().contains("`stray` must be a table"), "{err}");
    }
}
