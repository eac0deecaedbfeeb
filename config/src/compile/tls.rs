//! Certificates, keys and CA files, parsed from the document's blobs (never read from disk here).

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use toml::Spanned;

use super::Compiler;

impl<'a> Compiler<'a> {
    /// The bytes of the blob `name` refers to; a diagnostic at the reference when the source did
    /// not provide them (`what` says what the file was for: "certificate", "private key", …).
    fn blob(&mut self, name: &Spanned<String>, what: &str) -> Option<&'a [u8]> {
        let doc = self.doc;
        if let Some(bytes) = doc.blobs.get(name.get_ref()) {
            return Some(bytes);
        }
        let reason = doc
            .unavailable
            .get(name.get_ref())
            .map_or("not provided by the config source", String::as_str);
        self.error(
            name.span(),
            format!("cannot load {what} {}: {reason}", name.get_ref()),
        );
        None
    }

    /// A PEM bundle of certificates (at least one).
    fn certificates(
        &mut self,
        name: &Spanned<String>,
        what: &str,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let bytes = self.blob(name, what)?;
        match CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                self.error(
                    name.span(),
                    format!("no certificate found in {}", name.get_ref()),
                );
                None
            }
            Err(e) => {
                self.error(
                    name.span(),
                    format!("cannot load {what} {}: {e}", name.get_ref()),
                );
                None
            }
        }
    }

    /// A certificate chain and its private key, checked to belong together.
    pub(super) fn cert(
        &mut self,
        cert: &Spanned<String>,
        key: &Spanned<String>,
    ) -> Option<Arc<CertifiedKey>> {
        let chain = self.certificates(cert, "certificate");
        let key_der = self
            .blob(key, "private key")
            .map(PrivateKeyDer::from_pem_slice);
        // Both are looked up before giving up, so a missing cert and key are both reported.
        let (chain, key_der) = (chain?, key_der?);
        let key_der = match key_der {
            Ok(k) => k,
            Err(e) => {
                self.error(
                    key.span(),
                    format!("cannot load private key {}: {e}", key.get_ref()),
                );
                return None;
            }
        };
        let signing_key = match rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der) {
            Ok(k) => k,
            Err(e) => {
                self.error(
                    key.span(),
                    format!("unsupported private key {}: {e}", key.get_ref()),
                );
                return None;
            }
        };
        let ck = CertifiedKey::new(chain, signing_key);
        if let Err(e) = ck.keys_match() {
            self.error(
                key.span(),
                format!(
                    "private key {} does not match certificate {}: {e}",
                    key.get_ref(),
                    cert.get_ref()
                ),
            );
            return None;
        }
        Some(Arc::new(ck))
    }

    /// A pool's `tls_ca_file`: the roots to trust instead of the built-in ones.
    pub(super) fn ca_file(&mut self, file: &Spanned<String>) -> Vec<CertificateDer<'static>> {
        self.certificates(file, "CA file").unwrap_or_default()
    }
}
