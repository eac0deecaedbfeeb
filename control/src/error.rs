//! One error type for the control plane; each says what it was doing, and whether trying again
//! later can help.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The store could not be reached or refused the call (transient: retry later).
    #[error("etcd {context}: {source}")]
    Etcd {
        context: String,
        #[source]
        source: etcd_client::Error,
    },
    /// The store URL or the node file's `[store]` settings are unusable.
    #[error("{0}")]
    Settings(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something in the store is not what this version of the edge writes.
    #[error("etcd key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("version {0} does not exist")]
    NoSuchVersion(u64),
    /// A config document was refused (every diagnostic, `file:line:col: reason`).
    #[error("{0}")]
    Invalid(#[from] config::ConfigError),
}

impl ControlError {
    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retry_safe(&self) -> bool {
        matches!(self, ControlError::Etcd { .. } | ControlError::Io { .. })
    }

    pub(crate) fn etcd(context: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> Self {
        let context = context.into();
        move |source| ControlError::Etcd { context, source }
    }
}
