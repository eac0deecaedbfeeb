//! The config source seam: `compile` is pure, `referenced_blobs` lists what to fetch, and the
//! file source numbers distinct contents.

use super::*;

use std::collections::BTreeMap;

/// PEM certificate and key for `host`, made in memory.
fn pem_pair(host: &str) -> (Vec<u8>, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("rcgen");
    (
        ck.cert.pem().into_bytes(),
        ck.signing_key.serialize_pem().into_bytes(),
    )
}

const WITH_BLOBS: &str = r#"
[listen]
https = ["127.0.0.1:8443"]

[tls]
cert = "certs/default.pem"
key = "certs/default.key"

[cache]
disk_dir = "cache"

[pools.app]
endpoints = ["127.0.0.1:9000"]
tls = true
tls_ca_file = "certs/ca.pem"

[[sites]]
name = "www"
hosts = ["www.example.com"]
cert = "certs/www.pem"
key = "certs/www.key"
routes = [{ pool = "app" }]
"#;

/// Every blob `WITH_BLOBS` names, none of them on disk.
fn blobs() -> BTreeMap<String, Vec<u8>> {
    let (default_cert, default_key) = pem_pair("localhost");
    let (www_cert, www_key) = pem_pair("www.example.com");
    let (ca, _) = pem_pair("ca.example");
    BTreeMap::from([
        ("certs/default.pem".to_string(), default_cert),
        ("certs/default.key".to_string(), default_key),
        ("certs/www.pem".to_string(), www_cert),
        ("certs/www.key".to_string(), www_key),
        ("certs/ca.pem".to_string(), ca),
    ])
}

fn remote_document(blobs: BTreeMap<String, Vec<u8>>) -> Document {
    Document {
        name: PathBuf::from("etcd:/edge/config"),
        base: PathBuf::from("/nonexistent/edge-config-base"),
        text: WITH_BLOBS.to_string(),
        blobs,
        unavailable: BTreeMap::new(),
        revision: 42,
        parts: Vec::new(),
    }
}

/// 1-based line and column of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text.find(needle).expect("needle in text");
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn a_document_with_blobs_compiles_with_no_files_on_disk() {
    let doc = remote_document(blobs());
    assert!(
        !doc.base.exists(),
        "the test needs a base that does not exist"
    );
    let snap = compile(&doc).expect("compiles from blobs alone");
    assert_eq!(snap.version, 42, "the revision becomes the version");
    assert_eq!(snap.source, PathBuf::from("etcd:/edge/config"));
    let www = snap
        .cert_for_sni(Some("www.example.com"))
        .expect("site cert");
    let default = snap.cert_for_sni(Some("other.example")).expect("default");
    assert_ne!(www.cert[0], default.cert[0]);
    let ca = &snap.pools["app"].transport.tls.as_ref().expect("tls").ca;
    assert_eq!(ca.len(), 1, "CA file from its blob");
    // Paths that are not blobs stay paths, relative to the document's base.
    assert_eq!(snap.cache.disk_dir, Some(doc.base.join("cache")));

    // Same document, same result: nothing else goes in.
    let again = compile(&doc).expect("compiles again");
    assert_eq!(again.version, snap.version);
    assert_eq!(
        again
            .cert_for_sni(Some("www.example.com"))
            .expect("cert")
            .cert,
        www.cert
    );
}

#[test]
fn a_missing_blob_is_a_diagnostic_at_its_reference() {
    let mut b = blobs();
    b.remove("certs/www.pem");
    let err = compile(&remote_document(b)).expect_err("www.pem is missing");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "{err}");
    let (line, col) = position(WITH_BLOBS, "\"certs/www.pem\"");
    assert_eq!(
        diags[0].to_string(),
        format!(
            "etcd:/edge/config:{line}:{col}: cannot load certificate certs/www.pem: not provided by the config source"
        )
    );

    // A source that knows why it could not provide a blob says so, at the reference too.
    let mut doc = remote_document(blobs());
    doc.blobs.remove("certs/ca.pem");
    doc.unavailable
        .insert("certs/ca.pem".into(), "permission denied".into());
    let err = compile(&doc).expect_err("ca.pem is missing");
    let d = &err.diagnostics()[0];
    assert_eq!(
        d.location,
        Some(position(WITH_BLOBS, "\"certs/ca.pem\"")),
        "{d}"
    );
    assert_eq!(
        d.reason,
        "cannot load CA file certs/ca.pem: permission denied"
    );

    // Bytes that are not PEM are refused where they are named.
    let mut doc = remote_document(blobs());
    doc.blobs
        .insert("certs/www.key".into(), b"not a key".to_vec());
    let d = &compile(&doc).expect_err("bad key").diagnostics()[0];
    assert_eq!(
        d.location,
        Some(position(WITH_BLOBS, "\"certs/www.key\"")),
        "{d}"
    );
    assert!(d.reason.contains("cannot load private key"), "{d}");
}

#[test]
fn referenced_blobs_lists_every_certificate_key_and_ca_name() {
    let mut want: Vec<String> = blobs().into_keys().collect();
    want.sort();
    assert_eq!(referenced_blobs(WITH_BLOBS), want);

    // Lenient: unknown keys, keys compile would refuse and wrong types do not hide names;
    // duplicates are listed once.
    let text = r#"
        unknown = 1
        [tls]
        cert = "a.pem"
        key = 7
        [pools.p]
        tls_ca_file = "ca.pem"
        [pools.q]
        tls_ca_file = "ca.pem"
        [[sites]]
        cert = "a.pem"
        key = "b.key"
        bogus = true
        [[sites]]
        name = "no files"
    "#;
    assert_eq!(referenced_blobs(text), ["a.pem", "b.key", "ca.pem"]);
    assert!(
        referenced_blobs("[tls\ncert = \"a.pem\"").is_empty(),
        "not TOML"
    );
    assert!(referenced_blobs("").is_empty());
}

/// A config directory with `edge.toml` naming `certs/default.pem` and `certs/default.key`.
fn file_setup(tag: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(tag);
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir certs");
    write_cert(&dir.join("certs"), "default", "localhost");
    let path = dir.join("edge.toml");
    std::fs::write(&path, file_text("a")).expect("write config");
    (dir, path)
}

fn file_text(node: &str) -> String {
    format!(
        "[node]\nname = \"{node}\"\n[listen]\nhttps = [\"127.0.0.1:0\"]\n\
         [tls]\ncert = \"certs/default.pem\"\nkey = \"certs/default.key\"\n"
    )
}

#[tokio::test]
async fn file_source_revision_counts_distinct_contents() {
    let (dir, path) = file_setup("revision");
    let source = FileSource::new(&path, Duration::from_millis(100));

    let doc = source.fetch().await.expect("fetch");
    assert_eq!(doc.revision, 1, "the first fetch is revision 1");
    assert_eq!(
        (doc.name.as_path(), doc.base.as_path()),
        (path.as_path(), dir.as_path())
    );
    assert_eq!(
        doc.blobs.keys().collect::<Vec<_>>(),
        ["certs/default.key", "certs/default.pem"]
    );
    assert_eq!(compile(&doc).expect("compiles").version, 1);

    // Same content, even rewritten: same revision.
    assert_eq!(source.fetch().await.expect("fetch").revision, 1);
    std::fs::write(&path, file_text("a")).expect("rewrite");
    assert_eq!(source.fetch().await.expect("fetch").revision, 1);

    // Changed text: one more.
    std::fs::write(&path, file_text("b")).expect("write config");
    let doc = source.fetch().await.expect("fetch");
    assert_eq!(doc.revision, 2);
    assert_eq!(compile(&doc).expect("compiles").version, 2);
    assert_eq!(source.fetch_blocking().expect("fetch").revision, 2);

    // Changed certificate bytes, same text: one more.
    write_cert(&dir.join("certs"), "default", "localhost");
    let doc = source.fetch().await.expect("fetch");
    assert_eq!(doc.revision, 3);
    assert_eq!(compile(&doc).expect("compiles").version, 3);

    // A certificate that disappears is a change too, and compile says what the read said.
    std::fs::remove_file(dir.join("certs/default.pem")).expect("rm");
    let doc = source
        .fetch()
        .await
        .expect("the config file itself is readable");
    assert_eq!(doc.revision, 4);
    let d = &compile(&doc).expect_err("no cert").diagnostics()[0];
    assert_eq!(d.location, Some((6, 8)), "{d}");
    assert!(
        d.reason.starts_with(&format!(
            "cannot load certificate certs/default.pem: {}: ",
            dir.join("certs/default.pem").display()
        )),
        "{d}"
    );

    // An unreadable config file is an error and no new revision.
    std::fs::remove_file(&path).expect("rm");
    assert!(matches!(
        source.fetch().await,
        Err(ConfigError::Read { .. })
    ));
    std::fs::write(&path, file_text("b")).expect("write config");
    assert_eq!(source.fetch().await.expect("fetch").revision, 4);
}

#[tokio::test]
async fn file_source_notices_changes_to_the_file_and_its_blobs() {
    let (dir, path) = file_setup("changed");
    let source = FileSource::new(&path, Duration::from_millis(100));
    source.fetch().await.expect("fetch");
    let quiet = Duration::from_millis(400);
    let loud = Duration::from_secs(5);
    assert!(
        tokio::time::timeout(quiet, source.changed()).await.is_err(),
        "nothing changed"
    );

    std::fs::write(&path, file_text("longer name")).expect("write config");
    assert!(
        tokio::time::timeout(loud, source.changed()).await.is_ok(),
        "config file change unnoticed"
    );
    // Until a fetch records it, the change stays visible.
    assert!(tokio::time::timeout(loud, source.changed()).await.is_ok());
    source.fetch().await.expect("fetch");
    assert!(tokio::time::timeout(quiet, source.changed()).await.is_err());

    // A certificate named by the file changes (a new key has another size).
    std::fs::write(dir.join("certs/default.key"), b"changed").expect("write key");
    assert!(
        tokio::time::timeout(loud, source.changed()).await.is_ok(),
        "key file change unnoticed"
    );

    // The pace follows the snapshot's [reload] settings.
    source.fetch().await.expect("fetch");
    source.apply_reload_settings(&Reload {
        watch_file: true,
        poll_interval: Duration::from_secs(3600),
    });
    std::fs::write(&path, file_text("c")).expect("write config");
    assert!(
        tokio::time::timeout(quiet, source.changed()).await.is_err(),
        "polled faster than poll_interval"
    );
}

#[test]
fn load_is_the_file_source_and_compile() {
    let (_dir, path) = file_setup("load");
    let snap = load(&path).expect("loads");
    assert_eq!(snap.version, 1, "a fresh source's first revision");
    assert_eq!(snap.source, path);
    assert_eq!(snap.node_name, "a");
}
