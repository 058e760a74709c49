//! Balancing among a pool's healthy servers: `round_robin` takes the next one of a shared
//! atomic counter; `least_requests` picks two distinct servers at random and takes the one
//! with fewer requests in flight ("power of two choices"). No lock, no allocation.

use std::sync::atomic::Ordering;

use keyward_config::Balance;
use rand::Rng;

use super::pool::Pool;

impl Pool {
    /// A healthy server not in `tried`, by the pool's balance; `None` when there is none.
    pub(super) fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = self.servers.first()?.now_ms();
        let eligible = |i: &usize| !tried.contains(i) && self.servers[*i].is_healthy(now);
        let nth = |n: usize| (0..self.servers.len()).filter(eligible).nth(n);
        let count = (0..self.servers.len()).filter(eligible).count();
        match (count, self.balance) {
            (0, _) => None,
            (1, _) => nth(0),
            (k, Balance::RoundRobin) => nth(self.next.fetch_add(1, Ordering::Relaxed) % k),
            (k, Balance::LeastRequests) => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..k);
                let mut b = rng.random_range(0..k - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (nth(a)?, nth(b)?);
                let load = |i: usize| self.servers[i].in_flight.load(Ordering::Relaxed);
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }
}
