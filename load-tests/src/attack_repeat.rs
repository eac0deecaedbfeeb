//! `--reconnect` for the attack tools: one attack connection after another until the
//! duration is up, in one process (a new process per connection would load the attacker's
//! CPU with start-ups, and in a benchmark that CPU is the bystander's too).

use std::time::Duration;

/// Runs one attack connection, or with `reconnect` one after another until `within` has
/// passed (a refused connection is retried after 10 ms), and prints each run's report, then
/// (when more than one) the totals.
pub async fn repeat<F, Fut, R>(
    within: Duration,
    reconnect: bool,
    mut attack: F,
) -> Result<(), crate::LoadError>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<R, crate::LoadError>>,
    R: serde::Serialize,
{
    let start = std::time::Instant::now();
    let (mut runs, mut refused) = (0u64, 0u64);
    loop {
        let left = within.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match attack(left).await {
            Ok(report) => {
                runs += 1;
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            }
            Err(_) if reconnect => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
        if !reconnect {
            break;
        }
    }
    if reconnect {
        println!(
            "{}",
            serde_json::json!({"connections": runs, "refused": refused})
        );
    }
    Ok(())
}
