//! Active health checks: one task per endpoint of a pool that has `health` configured. A check
//! is an HTTP request on the shared client; `fall` failures in a row take the endpoint out of
//! rotation, `rise` successes bring it back. Waits are jittered so that checks of many
//! endpoints (and many edges) do not move in lockstep.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::Request;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt;

use crate::balance::random_u64;
use crate::client::empty_body;
use crate::{Endpoint, OriginClient, Pool};

pub fn spawn(pool: &Arc<Pool>) {
    if pool.cfg.health.is_none() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(check_loop(Arc::downgrade(pool), pool.client.clone()));
}

fn jittered(interval: Duration, jitter: f64) -> Duration {
    let unit = (random_u64() % 10_001) as f64 / 10_000.0; // 0..=1
    interval.mul_f64(1.0 + jitter * (2.0 * unit - 1.0))
}

/// Checks every current member of the pool concurrently, once per (jittered) interval.
async fn check_loop(pool: Weak<Pool>, client: OriginClient) {
    // Spread the first checks of many pools over one interval.
    let first = match pool.upgrade().and_then(|p| p.cfg.health.clone()) {
        Some(h) => h.interval.mul_f64((random_u64() % 1000) as f64 / 1000.0),
        None => return,
    };
    tokio::time::sleep(first).await;
    loop {
        // Holding the pool only for one round: once a reload drops it, the task ends.
        let Some(p) = pool.upgrade() else { return };
        let Some(cfg) = p.cfg.health.clone() else {
            return;
        };
        let members = p.members();
        let name = p.name.clone();
        drop(p);
        let results = futures_util::future::join_all(members.endpoints.iter().map(|ep| {
            let (client, cfg) = (&client, &cfg);
            async move { (ep, check(client, ep, cfg).await) }
        }))
        .await;
        for (ep, ok) in results {
            if ep
                .state
                .readmit(ok.is_ok(), cfg.rise, crate::balance::now_ms())
            {
                tracing::warn!(pool = %name, endpoint = %ep.addr, "health check passed: passive ejection ended");
            }
            match ep.state.check_result(ok.is_ok(), cfg.rise, cfg.fall) {
                Some(true) => {
                    tracing::warn!(pool = %name, endpoint = %ep.addr, "health check passed: endpoint back in rotation")
                }
                Some(false) => {
                    tracing::warn!(pool = %name, endpoint = %ep.addr, reason = %ok.err().unwrap_or_default(), "health check failed: endpoint out of rotation")
                }
                None => {}
            }
        }
        tokio::time::sleep(jittered(cfg.interval, cfg.jitter)).await;
    }
}

async fn check(
    client: &OriginClient,
    ep: &Endpoint,
    cfg: &config::HealthCheck,
) -> Result<(), String> {
    let mut req = Request::new(empty_body());
    *req.method_mut() = cfg.method.clone();
    *req.uri_mut() = cfg.path.parse().map_err(|e| format!("bad path: {e}"))?;
    let host = cfg.host.clone().unwrap_or_else(|| ep.addr.to_string());
    if let Ok(v) = HeaderValue::from_str(&host) {
        req.headers_mut().insert(header::HOST, v);
    }
    req.headers_mut().insert(
        header::USER_AGENT,
        HeaderValue::from_static("edge-health-check"),
    );
    let work = async {
        let resp = client
            .send_to(ep, &mut req, cfg.timeout)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        // Read the body so the connection can be reused.
        let _ = resp.into_body().collect().await;
        let expected = if cfg.expect.is_empty() {
            (200..400).contains(&status)
        } else {
            cfg.expect.contains(&status)
        };
        if expected {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", cfg.timeout)),
    }
}
