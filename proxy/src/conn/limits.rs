//! Concurrency limits that survive reloads: [`Limit`] holds the semaphore behind a listener's
//! `max_connections` (taken in [`super::accept`]) and `max_concurrent_handshakes` (taken in
//! [`super::serve`] around the TLS handshake).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// A concurrency limit that keeps counting across reloads: connections opened before a
/// reload still hold their permits, and a new limit resizes the same semaphore.
pub(crate) struct Limit {
    pub(crate) semaphore: Arc<Semaphore>,
    size: std::sync::Mutex<usize>,
}

impl Limit {
    pub(crate) fn new(size: usize) -> Arc<Limit> {
        Arc::new(Limit {
            semaphore: Arc::new(Semaphore::new(size)),
            size: std::sync::Mutex::new(size),
        })
    }

    /// Grows or shrinks the limit. Shrinking takes effect as permits come back.
    pub(crate) fn resize(self: &Arc<Self>, size: usize) {
        let mut current = self.size.lock().unwrap_or_else(|e| e.into_inner());
        if size > *current {
            self.semaphore.add_permits(size - *current);
        } else if size < *current {
            let mut excess = *current - size;
            excess -= self.semaphore.forget_permits(excess);
            if excess > 0 {
                // Permits in use now: take them out as they are released.
                let me = self.clone();
                tokio::spawn(async move {
                    if let Ok(p) = me.semaphore.acquire_many(excess as u32).await {
                        p.forget();
                    }
                });
            }
        }
        *current = size;
    }
}
