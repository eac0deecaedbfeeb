//! What the control-plane tests (`tests/tests/e2e/control_*.rs`) share: the shared document they
//! push and the `edge config` command.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use crate::edge_binary;

/// One site (`local`: `localhost` and `127.0.0.1`, plain HTTP proxied) in front of `origin`;
/// `site_extra` goes into the site's table, `extra` after it.
pub fn shared_doc(origin: SocketAddr, site_extra: &str, extra: &str) -> String {
    format!(
        r#"[pools.origin]
endpoints = ["{origin}"]

[[sites]]
name = "local"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{{ path_prefix = "/", pool = "origin" }}]
{site_extra}
{extra}
"#
    )
}

/// `edge config --store STORE [--store-config CREDS] ARGS…`, run to its end.
pub fn edge_config(store: &str, creds: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(edge_binary());
    cmd.args(["config", "--store", store]);
    if let Some(c) = creds {
        cmd.arg("--store-config").arg(c);
    }
    cmd.args(args).output().expect("run edge config")
}
