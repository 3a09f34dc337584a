//! Command pacing ("fake lag"): a token bucket on tokio's clock.
//!
//! A client may send `burst` commands at once; after that each command waits for a
//! token, which arrive at `per_second`. Waiting lines are held by the connection up to
//! its recvq budget; only a client that overruns that budget is disconnected
//! ("Excess Flood"). We use tokio's clock rather than a crate such as governor so
//! that the pacing follows `tokio::time::pause()` in tests.

use tokio::time::{Duration, Instant};

use crate::config::FloodLimit;

/// Tokens available to one connection.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: FloodLimit,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: FloodLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        self.updated = now;
    }

    /// Takes one token if one is available.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be available.
    pub(crate) fn next_token_at(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        let per_second = self.limit.per_second.max(f64::MIN_POSITIVE);
        self.updated + Duration::from_secs_f64((missing / per_second).min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            FloodLimit {
                burst: 3,
                per_second: 2.0,
            },
            start,
        );
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert_eq!(bucket.next_token_at(), start + Duration::from_millis(500));
        assert!(bucket.try_take(start + Duration::from_millis(500)));
        assert!(!bucket.try_take(start + Duration::from_millis(600)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }
}
