//! `[log]` compiled: where the access log goes (a relative file path is taken from the config
//! file's directory), the query parameters it redacts, and whether traces are started.

use crate::schema;
use crate::snapshot::{AccessOutput, LogSettings};

use super::Compiler;

impl Compiler<'_> {
    pub(super) fn log(&mut self, log: &schema::Log) -> LogSettings {
        let access = match log.access.get_ref().trim() {
            "" => {
                self.error(
                    log.access.span(),
                    "log.access must be \"stderr\", \"stdout\", \"off\" or a file path",
                );
                AccessOutput::Off
            }
            "off" => AccessOutput::Off,
            "stderr" => AccessOutput::Stderr,
            "stdout" => AccessOutput::Stdout,
            path => AccessOutput::File(self.doc.base.join(path)),
        };
        let mut redact_query_params: Vec<String> = Vec::new();
        for p in &log.redact_query_params {
            let name = p.get_ref().trim();
            if name.is_empty() || name.bytes().any(|b| matches!(b, b'&' | b'=' | b'#')) {
                self.error(
                    p.span(),
                    format!("log.redact_query_params: {name:?} is not a query parameter name"),
                );
                continue;
            }
            // Matched without regard to case: redacting too much is the safe mistake.
            let lower = name.to_ascii_lowercase();
            if !redact_query_params.contains(&lower) {
                redact_query_params.push(lower);
            }
        }
        LogSettings {
            access,
            format: log.format,
            redact_query_params,
            redact_query: log.redact_query,
            start_traces: log.start_traces,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::{AccessOutput, ConfigError, Document, LogFormat, Snapshot, compile};

    const BASE: &str = r#"
[listen]
http = ["127.0.0.1:8080"]

[pools.o]
endpoints = ["127.0.0.1:9000"]

[[sites]]
name = "s"
hosts = ["s.test"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "o" }]
"#;

    fn compile_text(text: &str) -> Result<Snapshot, ConfigError> {
        compile(&Document {
            name: PathBuf::from("/etc/edge/edge.toml"),
            base: PathBuf::from("/etc/edge"),
            text: text.to_string(),
            blobs: Default::default(),
            unavailable: Default::default(),
            revision: 1,
            parts: Vec::new(),
        })
    }

    fn errors(text: &str) -> String {
        match compile_text(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_log_json_to_stderr_and_start_traces() {
        let snap = compile_text(BASE).expect("compiles");
        assert_eq!(snap.log.access, AccessOutput::Stderr);
        assert_eq!(snap.log.format, LogFormat::Json);
        assert!(snap.log.start_traces);
        assert!(!snap.log.redact_query && snap.log.redact_query_params.is_empty());
        assert_eq!(snap.sites[0].log_sample, 1.0);
    }

    #[test]
    fn log_table_and_site_sampling() {
        let text = format!(
            "{BASE}log_sample = 0.1\n\n[log]\naccess = \"logs/access.log\"\nformat = \"combined\"\nredact_query_params = [\"Token\", \"sig\", \"token\"]\nredact_query = true\nstart_traces = false\n"
        );
        let snap = compile_text(&text).expect("compiles");
        assert_eq!(
            snap.log.access,
            AccessOutput::File(PathBuf::from("/etc/edge/logs/access.log"))
        );
        assert_eq!(snap.log.format, LogFormat::Combined);
        assert_eq!(snap.log.redact_query_params, ["token", "sig"]);
        assert!(snap.log.redact_query && !snap.log.start_traces);
        assert_eq!(snap.sites[0].log_sample, 0.1);
        for (access, want) in [
            ("off", AccessOutput::Off),
            ("stdout", AccessOutput::Stdout),
            (
                "/var/log/edge.log",
                AccessOutput::File("/var/log/edge.log".into()),
            ),
        ] {
            let snap =
                compile_text(&format!("{BASE}\n[log]\naccess = \"{access}\"\n")).expect("compiles");
            assert_eq!(snap.log.access, want);
        }
    }

    #[test]
    fn bad_log_settings_are_refused_where_written() {
        let e = errors(&format!("{BASE}log_sample = 1.5\n"));
        assert!(e.contains("log_sample must be between 0 and 1"), "{e}");
        assert!(e.contains(":13:"), "the line of log_sample: {e}");
        let e = errors(&format!("{BASE}\n[log]\nredact_query_params = [\"a=b\"]\n"));
        assert!(e.contains("not a query parameter name"), "{e}");
        let e = errors(&format!("{BASE}\n[log]\naccess = \"\"\n"));
        assert!(e.contains("log.access must be"), "{e}");
        let e = errors(&format!("{BASE}\n[log]\nformat = \"xml\"\n"));
        assert!(e.contains("xml"), "{e}");
        let e = errors(&format!("{BASE}\n[log]\nsample = 0.5\n"));
        assert!(e.contains("sample"), "{e}");
    }
}
