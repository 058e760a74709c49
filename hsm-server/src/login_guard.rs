//! Defences of `POST /v1/auth/login`, the one route open to unauthenticated callers that costs
//! real work (an Argon2id computation of 19 MiB).
//!
//! - **Bounded hashing.** At most [`keyward_hsm::kdf_slots`] logins hash at once and
//!   [`QUEUE_PER_SLOT`] times as many wait; any further login is refused at once with `429` and
//!   `Retry-After: 1`, before it reaches the HSM. Memory stays bounded whatever the request
//!   rate (the HSM core keeps one reused Argon2id buffer per slot). One slot's worth of these
//!   places is kept for addresses without a recent failure, so that an operator can still log
//!   in while addresses that keep failing fill the rest.
//! - **Throttling of failures**, per source address (IPv6 by /64) and per user name (any
//!   name, existing or not, so the throttle tells nothing about which users exist): after a
//!   number of free failures, each further attempt must wait an exponentially growing delay
//!   (1 s, 2 s, 4 s, … up to a cap) after the last failure, else it gets `429` with the seconds
//!   left in `Retry-After`. A success clears the name's count (not the address's); a quiet
//!   period of [`FORGET_AFTER`] clears both. This is the client-side backoff CloudHSM's SDK
//!   applies, enforced by the server.
//!
//! The HSM core keeps the lockout (5 failures) on top of this; see `Hsm::login`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Logins that may wait for a hashing slot, per slot.
pub const QUEUE_PER_SLOT: usize = 4;
/// A source address or user name with no failure for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most addresses (or names) a throttle remembers; beyond it, new ones are not throttled
/// individually (the hashing bound still holds) until old ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// How a throttle slows repeated failures.
#[derive(Clone, Copy, Debug)]
struct Policy {
    /// Failures allowed without delay.
    free_failures: u32,
    /// Longest delay between two attempts.
    max_delay: Duration,
}

/// Per source address: 10 free failures, then 1 s doubling to 60 s.
const BY_ADDRESS: Policy = Policy {
    free_failures: 10,
    max_delay: Duration::from_secs(60),
};
/// Per user name: 3 free failures, then 1 s doubling to 30 s.
const BY_USER: Policy = Policy {
    free_failures: 3,
    max_delay: Duration::from_secs(30),
};

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Consecutive failed logins per key, and the delay they impose.
#[derive(Debug)]
struct FailureThrottle<K> {
    policy: Policy,
    entries: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq> FailureThrottle<K> {
    fn new(policy: Policy) -> Self {
        FailureThrottle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `key` must still wait before its next attempt; `None`: it may try now.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let f = *self.entries().get(key)?;
        if now.duration_since(f.last) >= FORGET_AFTER || f.count < self.policy.free_failures {
            return None;
        }
        let doublings = (f.count - self.policy.free_failures).min(16);
        let delay = Duration::from_secs(1u64 << doublings).min(self.policy.max_delay);
        let ready = f.last + delay;
        (now < ready).then(|| ready - now)
    }

    /// Whether `key` failed within [`FORGET_AFTER`].
    fn has_failures(&self, key: &K, now: Instant) -> bool {
        self.entries()
            .get(key)
            .is_some_and(|f| now.duration_since(f.last) < FORGET_AFTER)
    }

    fn failed(&self, key: K, now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= MAX_TRACKED && !entries.contains_key(&key) {
            entries.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if entries.len() >= MAX_TRACKED {
                return;
            }
        }
        let f = entries.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    fn clear(&self, key: &K) {
        self.entries().remove(key);
    }
}

/// The throttle key of a source address: IPv4 as is, IPv6 by its /64 (one host's or one
/// site's share of addresses), IPv4-mapped IPv6 as IPv4.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// User names longer than any valid one (64 bytes) are not tracked: no such user exists.
const MAX_TRACKED_NAME_BYTES: usize = 64;

/// Admission control and failure throttling for logins; one per API server.
#[derive(Debug)]
pub struct LoginGuard {
    /// Places any login may take.
    shared: Arc<Semaphore>,
    /// Places only logins from addresses without a recent failure may take.
    reserved: Arc<Semaphore>,
    by_address: FailureThrottle<IpAddr>,
    by_user: FailureThrottle<String>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let slots = keyward_hsm::kdf_slots();
        LoginGuard::new(slots * QUEUE_PER_SLOT, slots)
    }
}

/// A login let through: holds one place among the logins in progress. Report its outcome
/// with [`failed`](Admission::failed) or [`succeeded`](Admission::succeeded).
#[derive(Debug)]
pub struct Admission {
    guard: Arc<LoginGuard>,
    address: Option<IpAddr>,
    user: Option<String>,
    _place: OwnedSemaphorePermit,
}

impl LoginGuard {
    /// A guard letting `shared + reserved` logins run or wait for a hashing slot at once,
    /// `reserved` of them only for addresses without a recent failure.
    pub fn new(shared: usize, reserved: usize) -> Self {
        LoginGuard {
            shared: Arc::new(Semaphore::new(shared.max(1))),
            reserved: Arc::new(Semaphore::new(reserved)),
            by_address: FailureThrottle::new(BY_ADDRESS),
            by_user: FailureThrottle::new(BY_USER),
        }
    }

    /// Lets a login from `address` (unknown when the server has no socket, e.g. in tests) for
    /// `user` proceed, or refuses it with [`ApiError::TooManyRequests`].
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] while the address or the name must wait after failures,
    /// or when every place is taken.
    pub fn admit(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        user: &str,
    ) -> Result<Admission, ApiError> {
        let user = (user.len() <= MAX_TRACKED_NAME_BYTES).then(|| user.to_owned());
        self.admit_as(address, user)
    }

    /// As [`admit`](Self::admit) for an attempt that names no user (an unseal share or
    /// passphrase): throttled by source address only, so that failures from one address never
    /// keep the key holders at other addresses out.
    ///
    /// # Errors
    /// As [`admit`](Self::admit).
    pub fn admit_address(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Admission, ApiError> {
        self.admit_as(address, None)
    }

    fn admit_as(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        user: Option<String>,
    ) -> Result<Admission, ApiError> {
        let now = Instant::now();
        let address = address.map(address_key);
        let wait = [
            address.and_then(|a| self.by_address.wait(&a, now)),
            user.as_ref().and_then(|u| self.by_user.wait(u, now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(ApiError::TooManyRequests {
                retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                reason: "too many failed attempts from this address or for this user",
            });
        }
        let clean = address.is_none_or(|a| !self.by_address.has_failures(&a, now));
        let place = self
            .shared
            .clone()
            .try_acquire_owned()
            .or_else(|e| {
                if clean {
                    self.reserved.clone().try_acquire_owned()
                } else {
                    Err(e)
                }
            })
            .map_err(|_| ApiError::TooManyRequests {
                retry_after_s: 1,
                reason: "the server is busy checking passwords",
            })?;
        Ok(Admission {
            guard: self.clone(),
            address,
            user,
            _place: place,
        })
    }
}

impl LoginGuard {
    /// Forgets the failures of `user`: an admin set a new password for it.
    pub fn forget_user(&self, user: &str) {
        self.by_user.clear(&user.to_owned());
    }
}

impl Admission {
    /// The login failed (wrong name or password, or a locked user).
    pub fn failed(self) {
        let now = Instant::now();
        if let Some(a) = self.address {
            self.guard.by_address.failed(a, now);
        }
        if let Some(u) = &self.user {
            self.guard.by_user.failed(u.clone(), now);
        }
    }

    /// The login succeeded: the name's failures are forgotten.
    pub fn succeeded(self) {
        if let Some(u) = &self.user {
            self.guard.by_user.clear(u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_free_ones_wait_doubling_delays_up_to_the_cap() {
        let t = FailureThrottle::new(BY_USER);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.wait(&"u", start), None);
            t.failed("u", start);
        }
        assert_eq!(t.wait(&"u", start), Some(Duration::from_secs(1)));
        assert_eq!(t.wait(&"u", start + Duration::from_secs(1)), None);
        t.failed("u", start);
        assert_eq!(t.wait(&"u", start), Some(Duration::from_secs(2)));
        for _ in 0..20 {
            t.failed("u", start);
        }
        assert_eq!(t.wait(&"u", start), Some(Duration::from_secs(30)));
        // Other keys are not affected; a quiet period forgets; clear forgets.
        assert_eq!(t.wait(&"v", start), None);
        assert_eq!(t.wait(&"u", start + FORGET_AFTER), None);
        t.failed("u", start + FORGET_AFTER);
        assert_eq!(t.wait(&"u", start + FORGET_AFTER), None, "counted afresh");
        t.clear(&"u");
        assert_eq!(t.wait(&"u", start), None);
    }

    #[test]
    fn ipv6_addresses_are_throttled_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn places_are_bounded_and_returned_and_the_reserve_is_for_clean_addresses() {
        let g = Arc::new(LoginGuard::new(2, 1));
        let bad: IpAddr = "192.0.2.66".parse().unwrap();
        g.admit(Some(bad), "x").unwrap().failed();
        let a = g.admit(Some(bad), "x").unwrap();
        let b = g.admit(None, "y").unwrap();
        // The shared places are taken: an address that failed is refused ...
        let Err(ApiError::TooManyRequests { retry_after_s, .. }) = g.admit(Some(bad), "z") else {
            panic!("a failing address got the reserved place");
        };
        assert_eq!(retry_after_s, 1);
        // ... a clean one gets the reserved place, and then nobody gets in.
        let c = g
            .admit(Some("192.0.2.7".parse().unwrap()), "admin")
            .unwrap();
        assert!(g.admit(None, "w").is_err());
        a.failed();
        b.succeeded();
        c.succeeded();
        assert!(g.admit(None, "z").is_ok());
    }

    #[tokio::test]
    async fn an_address_with_many_failures_waits_whatever_the_name() {
        let g = Arc::new(LoginGuard::new(4, 1));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..BY_ADDRESS.free_failures {
            g.admit(Some(ip), &format!("name-{i}")).unwrap().failed();
        }
        assert!(matches!(
            g.admit(Some(ip), "fresh-name"),
            Err(ApiError::TooManyRequests { .. })
        ));
        // Another address is served.
        assert!(g
            .admit(Some("192.0.2.2".parse().unwrap()), "fresh-name")
            .is_ok());
    }
}
