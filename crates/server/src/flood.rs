//! Command pacing ("fake lag"): a token bucket on tokio's clock. The same bucket
//! throttles new connections (`throttle`), with a [`Rate`] of its own.
//!
//! A client may send `burst` commands at once; after that each command waits for a
//! token, which arrive at `per_second`. Waiting lines are held by the connection up to
//! its recvq budget; only a client that overruns that budget is disconnected
//! ("Excess Flood"). We use tokio's clock rather than a crate such as governor so
//! that the pacing follows `tokio::time::pause()` in tests.
//!
//! The limit itself lives in the configuration and is passed to every call: a
//! bucket is only its balance, so it adds 24 bytes to each connection.

use tokio::time::{Duration, Instant};

use crate::config::{ConnectLimit, FloodLimit};

/// What a [`TokenBucket`] is filled at: `burst` tokens at most, `per_second` more
/// each second. Commands (`FloodLimit`) and new connections (`ConnectLimit`) are
/// configured apart but paced alike.
pub(crate) trait Rate {
    /// Tokens a full bucket holds.
    fn burst(&self) -> u32;
    /// Tokens added per second.
    fn per_second(&self) -> f64;
}

impl Rate for FloodLimit {
    fn burst(&self) -> u32 {
        self.burst
    }
    fn per_second(&self) -> f64 {
        self.per_second
    }
}

impl Rate for ConnectLimit {
    fn burst(&self) -> u32 {
        self.burst
    }
    fn per_second(&self) -> f64 {
        self.per_second
    }
}

/// The most an expensive command can put a client in debt, in seconds of refills.
const MAX_DEBT_SECONDS: f64 = 30.0;

/// Tokens available to one connection.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f32,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket: a new client may send its whole burst at once.
    pub(crate) fn new(limit: &impl Rate, now: Instant) -> Self {
        Self {
            tokens: limit.burst() as f32,
            updated: now,
        }
    }

    fn refill(&mut self, limit: &impl Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let tokens = f64::from(self.tokens) + elapsed * limit.per_second();
        self.tokens = tokens.min(f64::from(limit.burst())) as f32;
        self.updated = now;
    }

    /// Whether a token is available now (without taking it).
    pub(crate) fn has_token(&mut self, limit: &impl Rate, now: Instant) -> bool {
        self.refill(limit, now);
        self.tokens >= 1.0
    }

    /// Whether the bucket is full again: it then says nothing a new one would not.
    pub(crate) fn is_full(&mut self, limit: &impl Rate, now: Instant) -> bool {
        self.refill(limit, now);
        self.tokens >= limit.burst() as f32
    }

    /// Takes a token whether or not one is available (the caller checked
    /// [`TokenBucket::has_token`]); the balance never goes below zero.
    pub(crate) fn take(&mut self, limit: &impl Rate, now: Instant) {
        self.refill(limit, now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// Takes `tokens` more for a command that turned out to be expensive: the
    /// balance may go into debt, up to [`MAX_DEBT_SECONDS`] of refills, and the client
    /// waits for it to be repaid before its next command.
    pub(crate) fn charge(&mut self, limit: &impl Rate, now: Instant, tokens: f32) {
        self.refill(limit, now);
        let floor = -(limit.per_second() * MAX_DEBT_SECONDS) as f32;
        self.tokens = (self.tokens - tokens).max(floor);
    }

    /// When the next token arrives.
    pub(crate) fn next_token_at(&self, limit: &impl Rate) -> Instant {
        let missing = f64::from((1.0 - self.tokens).max(0.0));
        let per_second = limit.per_second().max(f64::MIN_POSITIVE);
        self.updated + Duration::from_secs_f64((missing / per_second).min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_take(bucket: &mut TokenBucket, limit: &FloodLimit, now: Instant) -> bool {
        let available = bucket.has_token(limit, now);
        if available {
            bucket.take(limit, now);
        }
        available
    }

    #[test]
    fn burst_then_steady_rate() {
        let start = Instant::now();
        let limit = FloodLimit {
            burst: 3,
            per_second: 2.0,
        };
        let mut bucket = TokenBucket::new(&limit, start);
        assert!((0..3).all(|_| try_take(&mut bucket, &limit, start)));
        assert!(!try_take(&mut bucket, &limit, start));
        assert_eq!(
            bucket.next_token_at(&limit),
            start + Duration::from_millis(500)
        );
        assert!(try_take(
            &mut bucket,
            &limit,
            start + Duration::from_millis(500)
        ));
        assert!(!try_take(
            &mut bucket,
            &limit,
            start + Duration::from_millis(600)
        ));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| try_take(&mut bucket, &limit, later)));
        assert!(!try_take(&mut bucket, &limit, later));
    }
}
