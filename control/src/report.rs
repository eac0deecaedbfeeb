//! Node reports: what each node runs, since when, whether it refused a version, and how it is
//! doing (requests, 5xx, CPU), under `P/nodes/<name>` with a lease, so that canary health (and
//! later GeoDNS load) is judged from them and a dead node's report disappears.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Written every [`REPORT_EVERY`]; the lease outlives three missed writes.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
pub const LEASE_TTL_SECS: i64 = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub pop: String,
    pub region: String,
    pub tier: String,
    /// The version it runs (0: none yet).
    pub version: u64,
    /// Unix seconds when it started running it.
    pub applied_at: u64,
    /// Running a last known good version from local disk, not (yet) one read from etcd.
    #[serde(default)]
    pub last_known_good: bool,
    /// The last version it refused, and why (`file:line:col: reason` lines).
    pub error: Option<String>,
    pub failed_version: Option<u64>,
    /// Responses sent since the process started, and the 5xx among them.
    pub requests: u64,
    #[serde(rename = "5xx")]
    pub status_5xx: u64,
    /// CPU seconds the process used since it started.
    pub cpu: f64,
    /// Unix seconds of this report.
    pub reported_at: u64,
}

/// What the edge adds to its report: responses sent and 5xx among them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportStats {
    pub requests: u64,
    pub status_5xx: u64,
}

/// CPU seconds used by this process (user + system), from /proc/self/stat; 0 where unknown.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, so split after its ')').
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the command.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports in USER_HZ, which is 100 on every architecture we run on.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_use_the_documented_field_names() {
        let r = NodeReport {
            node: "n".into(),
            pop: "p".into(),
            region: "r".into(),
            tier: "edge".into(),
            version: 3,
            applied_at: 1,
            last_known_good: false,
            error: None,
            failed_version: None,
            requests: 10,
            status_5xx: 1,
            cpu: 0.5,
            reported_at: 2,
        };
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["5xx"], 1);
        assert_eq!(json["version"], 3);
        let back: NodeReport = serde_json::from_value(json).expect("back");
        assert_eq!(back, r);
        assert!(cpu_seconds() >= 0.0);
    }
}
