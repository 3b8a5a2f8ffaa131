//! Exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng;

/// Retry policy: attempt `n` (0-based) sleeps a random duration in
/// `[0, min(max_delay, base * 2^n)]` ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub max_retries: u32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl Backoff {
    /// Upper bound of the sleep before retry number `attempt` (0-based).
    pub fn cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A random delay for retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.cap(attempt);
        if cap.is_zero() {
            return cap;
        }
        let nanos = rand::thread_rng().gen_range(0..=cap.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }

    /// Sleep before retry number `attempt`.
    pub async fn sleep(&self, attempt: u32) {
        let d = self.delay(attempt);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_grow_and_saturate() {
        let b = Backoff {
            max_retries: 5,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(b.cap(0), Duration::from_millis(100));
        assert_eq!(b.cap(1), Duration::from_millis(200));
        assert_eq!(b.cap(3), Duration::from_millis(800));
        assert_eq!(b.cap(4), Duration::from_secs(1));
        assert_eq!(b.cap(400), Duration::from_secs(1));
        for a in 0..10 {
            assert!(b.delay(a) <= b.cap(a));
        }
    }
}
