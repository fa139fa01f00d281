//! Per-requester rate limit: at most `per_hour` accepted queries in any sliding hour.
//!
//! The MII DSF process limits per requesting network (default 999 per hour, domain notes); the gate
//! limits per authenticated requester, which is at least as strict for one network and cannot be
//! dodged by changing source address. The window lives in memory: a restart forgets it, which
//! only ever allows one extra hour's worth of queries, and the privacy budget (persistent) bounds
//! what those could reveal.

use std::collections::{HashMap, VecDeque};

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default)]
pub struct RateLimiter {
    per_hour: usize,
    seen: HashMap<String, VecDeque<i64>>,
}

impl RateLimiter {
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour: per_hour as usize,
            seen: HashMap::new(),
        }
    }

    /// Admits one query at `now_ms` (Unix milliseconds) or says how many whole seconds to wait.
    pub fn admit(&mut self, requester: &str, now_ms: i64) -> Result<(), u64> {
        let window = self.seen.entry(requester.to_string()).or_default();
        while window.front().is_some_and(|t| *t <= now_ms - HOUR_MS) {
            window.pop_front();
        }
        if window.len() >= self.per_hour {
            let oldest = window.front().copied().unwrap_or(now_ms);
            let wait_ms = (oldest + HOUR_MS - now_ms).max(0);
            // Round up: a client that waits exactly Retry-After seconds is admitted.
            return Err((wait_ms as u64).div_ceil(1000).max(1));
        }
        window.push_back(now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_hour_per_requester() {
        let mut r = RateLimiter::new(2);
        assert_eq!(r.admit("a", 0), Ok(()));
        assert_eq!(r.admit("a", 1_000), Ok(()));
        // Third within the hour: wait until the first leaves the window.
        assert_eq!(r.admit("a", 2_000), Err(3_598));
        // Another requester has its own window.
        assert_eq!(r.admit("b", 2_000), Ok(()));
        // One hour after the first query one slot is free again.
        assert_eq!(r.admit("a", HOUR_MS), Ok(()));
        assert_eq!(r.admit("a", HOUR_MS + 1), Err(1));
    }
}
