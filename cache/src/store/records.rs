//! Vary records: which variants a URL has, in memory and on disk.

use super::*;

impl Store {
    /// Lists `variant` in the URL's Vary record (in memory; `write_record` puts it on disk);
    /// true when it was there already (a new body replaced an old one).
    pub(super) async fn commit_record(
        &self,
        primary: &str,
        names: &[HeaderName],
        variant: &str,
    ) -> (bool, Arc<VaryRecord>) {
        let names: Vec<String> = names.iter().map(|n| n.as_str().to_string()).collect();
        let mut rec = self
            .record(primary)
            .await
            .map(|r| (*r).clone())
            .unwrap_or_default();
        if rec.names != names {
            // The origin changed what it varies on: older variants are unreachable now.
            for old in std::mem::take(&mut rec.variants) {
                if old != variant {
                    self.remove_variant(&old).await;
                    self.remove_encodings(&old, None).await;
                }
            }
            rec.names = names;
        }
        if !rec.names.is_empty() {
            // Lookups try the URL's unvaried object before its record: one left from before
            // the origin varied must go even when its record was evicted and did not list it.
            let plain = keys::variant_key(primary, &[]);
            if self.inner.mem.contains_key(&plain) || self.inner.disk_meta.contains_key(&plain) {
                self.remove_variant(&plain).await;
                self.remove_encodings(&plain, None).await;
            }
        }
        let replaced = rec.variants.iter().any(|v| v == variant);
        if !replaced {
            rec.variants.push(variant.to_string());
        }
        let rec = Arc::new(rec);
        self.inner
            .records
            .insert(primary.to_string(), rec.clone())
            .await;
        (replaced, rec)
    }

    pub(super) async fn write_record(&self, primary: &str, rec: &VaryRecord) {
        let Some(disk) = &self.inner.cfg.disk else {
            return;
        };
        let json = serde_json::to_value(rec).unwrap_or_default();
        let key = keys::record_key(primary);
        match cacache::WriteOpts::new()
            .metadata(json)
            .open(&disk.dir, &key)
            .await
        {
            Ok(w) => {
                if let Err(e) = w.commit().await {
                    tracing::warn!(error = %e, "could not write vary record");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not write vary record"),
        }
    }
}
