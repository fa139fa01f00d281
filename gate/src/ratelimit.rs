//! Per-requester rate limit: at most `per_hour` accepted queries in any sliding hour.
//!
//! The MII DSF process limits per requesting network (default 999 per hour, domain notes); the gate
//! limits per authenticated requester, which is at least as strict for one network and cannot be
//! dodged by changing source address. The window is kept in the gate's SQLite store
//! (`Store::admit`), so a restart does not hand a requester a fresh hour; this module is the
//! decision over that window.

pub const HOUR_MS: i64 = 3_600_000;

/// The window of one requester at `now_ms`: how many queries it had admitted within the last hour
/// and when the oldest of them was (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub admitted: u64,
    pub oldest_ms: Option<i64>,
}

/// Admit one more query, or say how many whole seconds to wait until a slot frees (rounded up:
/// a client that waits exactly Retry-After seconds is admitted).
pub fn decide(window: Window, per_hour: u32, now_ms: i64) -> Result<(), u64> {
    if window.admitted < u64::from(per_hour) {
        return Ok(());
    }
    let oldest = window.oldest_ms.unwrap_or(now_ms);
    let wait_ms = (oldest + HOUR_MS - now_ms).max(0);
    Err((wait_ms as u64).div_ceil(1000).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_below_the_limit_and_names_the_wait_above_it() {
        let w = |admitted, oldest_ms| Window {
            admitted,
            oldest_ms,
        };
        let cases = [
            ("empty window", w(0, None), 2, 0, Ok(())),
            ("one slot left", w(1, Some(0)), 2, 1_000, Ok(())),
            // Full: wait until the oldest leaves the window, rounded up to whole seconds.
            ("full", w(2, Some(0)), 2, 2_000, Err(3_598)),
            ("full, 1 ms to go", w(2, Some(1)), 2, HOUR_MS, Err(1)),
            (
                "full, oldest at the edge",
                w(2, Some(0)),
                2,
                HOUR_MS,
                Err(1),
            ),
        ];
        for (name, window, per_hour, now, want) in cases {
            assert_eq!(decide(window, per_hour, now), want, "{name}");
        }
    }
}
