//! Where things live under a deployment's prefix.

/// The keys of one deployment (`prefix` without a trailing slash, e.g. `/edge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn blob(&self, sha256_hex: &str) -> String {
        format!("{}/blobs/{sha256_hex}", self.prefix)
    }

    pub fn versions(&self) -> String {
        format!("{}/versions/", self.prefix)
    }

    /// Zero-padded, so that keys sort as numbers.
    pub fn version(&self, n: u64) -> String {
        format!("{}/versions/{n:010}", self.prefix)
    }

    /// What nodes watch: the active pointer (and, later, rollouts).
    pub fn control(&self) -> String {
        format!("{}/control/", self.prefix)
    }

    pub fn active(&self) -> String {
        format!("{}/control/active", self.prefix)
    }

    /// The staged rollout in progress or last finished.
    pub fn rollout(&self) -> String {
        format!("{}/control/rollout", self.prefix)
    }

    /// Present (under the controlling CLI's lease) while a rollout is being watched.
    pub fn rollout_controller(&self) -> String {
        format!("{}/control/rollout-controller", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    pub fn node(&self, name: &str) -> String {
        format!("{}/nodes/{name}", self.prefix)
    }

    /// The number of a `versions/` key.
    pub fn version_of(&self, key: &str) -> Option<u64> {
        key.strip_prefix(&self.versions())?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_as_numbers_and_parse_back() {
        let k = Keys::new("edge/");
        assert_eq!(k.prefix(), "/edge");
        assert!(k.version(9) < k.version(10));
        assert_eq!(k.version_of(&k.version(1234)), Some(1234));
        assert_eq!(k.version_of("/edge/versions/x"), None);
        assert_eq!(k.node("n1"), "/edge/nodes/n1");
    }
}
