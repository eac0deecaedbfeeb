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
        let otlp = log.otlp.as_ref().and_then(|url| {
            let text = url.get_ref().trim();
            match otlp_url(text) {
                Ok(full) => Some(std::sync::Arc::from(full)),
                Err(why) => {
                    self.error(url.span(), format!("log.otlp: {why}"));
                    None
                }
            }
        });
        LogSettings {
            otlp,
            access,
            format: log.format,
            redact_query_params,
            redact_query: log.redact_query,
            start_traces: log.start_traces,
        }
    }
}

/// The collector's traces URL: `http://host:port` gets the OTLP/HTTP default path
/// `/v1/traces`; a URL with a path is taken as it is.
fn otlp_url(text: &str) -> Result<String, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{text:?}: only http:// collectors (a local agent or sidecar) are supported"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    Ok(match uri.path() {
        "" | "/" => format!("{}/v1/traces", text.trim_end_matches('/')),
        _ => text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_doc::compile_text;
    use std::path::PathBuf;

    use crate::{AccessOutput, LogFormat};

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

    #[test]
    fn otlp_collector_urls() {
        let with = |url: &str| compile_text(&format!("{BASE}\n[log]\notlp = \"{url}\"\n"));
        let cases = [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "http://[::1]:9000/otlp/v1/traces",
                "http://[::1]:9000/otlp/v1/traces",
            ),
        ];
        for (url, want) in cases {
            let snap = with(url).expect("compiles");
            assert_eq!(snap.log.otlp.as_deref(), Some(want), "{url}");
        }
        assert_eq!(compile_text(BASE).expect("compiles").log.otlp, None);
        for (url, why) in [
            ("https://collector:4318", "only http://"),
            ("collector:4318", "only http://"),
            ("http://", "not a URL"),
        ] {
            let e = errors(&format!("{BASE}\n[log]\notlp = \"{url}\"\n"));
            assert!(e.contains("log.otlp") && e.contains(why), "{url}: {e}");
            assert!(e.contains("edge.toml:15:8:"), "the place of otlp: {e}");
        }
    }
}
