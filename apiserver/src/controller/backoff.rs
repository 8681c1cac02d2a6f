//! Per-key retry delays after a failed reconcile: a small trait so tests can swap the policy,
//! and the default exponential policy of Flux (`--min-retry-delay` 750 ms, `--max-retry-delay`
//! 15 min: client-go's `ItemExponentialFailureRateLimiter`), with jitter.

use std::time::Duration;

/// Delays between retries of one key. `next_delay` is called after each failure; `reset` after
/// a success.
pub trait Backoff: Send + std::fmt::Debug {
    /// The delay before the next attempt.
    fn next_delay(&mut self) -> Duration;
    /// Forgets past failures (the next failure gets the minimum delay again).
    fn reset(&mut self);
}

/// Makes a fresh [`Backoff`] for a key that failed for the first time.
pub type BackoffFactory = std::sync::Arc<dyn Fn() -> Box<dyn Backoff> + Send + Sync>;

/// Exponential backoff: `min * 2^failures`, capped at `max`, then up to `jitter` (a fraction,
/// default 0.1) added at random so that objects failing together do not retry together.
#[derive(Clone, Debug)]
pub struct ExponentialBackoff {
    /// First delay. Default 750 ms.
    pub min: Duration,
    /// Largest delay. Default 15 min.
    pub max: Duration,
    /// Fraction of the delay added at random, 0 to 1. Default 0.1.
    pub jitter: f64,
    failures: u32,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        Self::new(
            Duration::from_millis(750),
            Duration::from_secs(15 * 60),
            0.1,
        )
    }
}

impl ExponentialBackoff {
    /// A policy from `min` to `max` with `jitter` (fraction of the delay).
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            min,
            max,
            jitter: jitter.clamp(0.0, 1.0),
            failures: 0,
        }
    }

    /// The factory of the default policy.
    pub fn factory() -> BackoffFactory {
        std::sync::Arc::new(|| Box::new(ExponentialBackoff::default()))
    }
}

impl Backoff for ExponentialBackoff {
    fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(30);
        self.failures = self.failures.saturating_add(1);
        let base = self
            .min
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        let extra = base.mul_f64(rand::random::<f64>() * self.jitter);
        (base + extra).min(self.max)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `interval` plus or minus up to `fraction` of it at random (Flux's
/// `jitter.JitteredIntervalDuration`, `--interval-jitter-percentage` 5 by default).
pub fn jittered(interval: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 || interval.is_zero() {
        return interval;
    }
    let spread = interval.mul_f64(fraction.min(1.0));
    let offset = spread.mul_f64(rand::random::<f64>() * 2.0);
    (interval + offset).saturating_sub(spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b =
            ExponentialBackoff::new(Duration::from_millis(750), Duration::from_secs(900), 0.0);
        let delays: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(
            delays,
            [750, 1500, 3000, 6000].map(Duration::from_millis).to_vec()
        );
        for _ in 0..40 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(900));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(750));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut b = ExponentialBackoff::default();
        let d = b.next_delay();
        assert!(
            d >= Duration::from_millis(750) && d <= Duration::from_millis(825),
            "{d:?}"
        );
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(100), 0.05);
            assert!(
                j >= Duration::from_secs(95) && j <= Duration::from_secs(105),
                "{j:?}"
            );
        }
    }
}
