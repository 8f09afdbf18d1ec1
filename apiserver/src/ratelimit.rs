//! A per-user token bucket: `?validate=true` fans out into SubjectAccessReviews and one dry run
//! per rendered object, sent as the dry-run identity `kompox-validator` (so charged to its API
//! priority and fairness, not the caller's), and this bounds how often one user may ask for it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Buckets kept at most; past it, the full ones are forgotten (they would allow a burst anyway).
const MAX_USERS: usize = 10_000;

/// Up to `burst` requests at once per user, refilled at `per_second`.
#[derive(Debug)]
pub struct PerUserLimit {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl PerUserLimit {
    /// A limit of `burst` requests, refilled at `per_second` (both at least a small positive).
    #[must_use]
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: if per_second > 0.0 { per_second } else { 0.001 },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `user` at `now`; `Err` with how long until the next one is allowed.
    ///
    /// # Errors
    ///
    /// The wait when the user's bucket is empty.
    pub fn take(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_USERS && !map.contains_key(user) {
            let (burst, rate) = (self.burst, self.per_second);
            map.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = map.entry(user.to_owned()).or_insert((self.burst, now));
        let refilled = (*tokens
            + now.saturating_duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.per_second))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_user() {
        let limit = PerUserLimit::new(3, 1.0);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limit.take("alice", t0), Ok(()), "request {i}");
        }
        let wait = limit.take("alice", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another user has a bucket of their own.
        assert_eq!(limit.take("bob", t0), Ok(()));
        // One second later, one more for alice, not two.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limit.take("alice", t1), Ok(()));
        assert!(limit.take("alice", t1).is_err());
    }

    #[test]
    fn many_users_do_not_grow_the_map_without_bound() {
        let limit = PerUserLimit::new(2, 10.0);
        let t0 = Instant::now();
        for i in 0..(MAX_USERS + 50) {
            assert!(limit.take(&format!("u{i}"), t0).is_ok());
        }
        let later = t0 + Duration::from_secs(5);
        assert!(limit.take("someone-new", later).is_ok());
        let n = limit.buckets.lock().map(|m| m.len()).unwrap_or_default();
        assert!(n < 100, "{n} buckets kept");
    }
}
