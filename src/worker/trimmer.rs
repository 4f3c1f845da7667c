//! Aging: the trimmer task, and what exited worker threads left behind.

use std::time::Duration;

use super::WorkerPool;
use crate::reset::Recycle;
use crate::slot::Slot;
#[cfg(not(all(test, loom)))]
use {
    super::{MAX_MAGAZINE_SIZE, magazine::Magazine},
    crate::worker::registry as hot,
};

/// Spawns a task on the current runtime that calls `trim` every `period`
/// (at least 1 ms), the first time one period from now, until it returns
/// `false`. (The trimmers' loop, and the [`Reporter`](crate::observe::Reporter)'s.)
pub(crate) fn spawn_trim_loop(
    period: Duration,
    mut trim: impl FnMut() -> bool + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, tokio::runtime::TryCurrentError> {
    let handle = tokio::runtime::Handle::try_current()?;
    let period = period.max(Duration::from_millis(1));
    Ok(handle.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            if !trim() {
                break;
            }
        }
    }))
}

impl<T, R: Recycle<T>> WorkerPool<T, R> {
    /// Moves what exited worker threads left (see [`trim`](Self::trim))
    /// into the depot; returns the objects the depot had no room for
    /// (counted as dropped), for the caller to drop.
    #[cfg(not(all(test, loom)))]
    pub(super) fn reclaim_unheld(&self) -> Vec<Slot<T>> {
        let mut overflow: Vec<Slot<T>> = Vec::new();
        hot::with_unheld_numbers(self.private, self.mags.len(), |w, orphan| {
            let mag = &self.mags[w];
            // Room for a full magazine and the orphan.
            let mut out = [const { None }; MAX_MAGAZINE_SIZE + 2];
            // SAFETY: no thread holds number `w` while this runs (the
            // registry's lock is held), so this thread alone uses magazine
            // `w`; moving slots runs no user code.
            let mut n = unsafe { mag.owned() }.drain(&mut out);
            if let Some(orphan) = orphan {
                // Counted as parked in the slot until now: from here on as
                // if it had been returned to the magazine, then spilled.
                // SAFETY: left under this pool's index: a slot of our `T`,
                // handed over by the registry.
                out[n] = Some(unsafe { Slot::from_raw(orphan.cast()) });
                n += 1;
                Magazine::<T>::add(&mag.pushed, 1);
                Magazine::<T>::add(&mag.popped, 1);
            }
            if n == 0 {
                return;
            }
            Magazine::<T>::add(&mag.spills, 1);
            Magazine::<T>::add(&mag.spilled, n as u64);
            // Moves pointers under the depot's shard locks: no user code.
            let moved = self.depot.idle.push_from(w, &mut out[..n]);
            if moved < n {
                self.depot
                    .idle
                    .count(w, |c| &c.drops_full, (n - moved) as u64);
                overflow.extend(out.into_iter().take(n).flatten());
            }
        });
        overflow
    }

    /// Under loom no thread has a number from the registry: nothing to do.
    #[cfg(all(test, loom))]
    pub(super) fn reclaim_unheld(&self) -> Vec<Slot<T>> {
        Vec::new()
    }
}
