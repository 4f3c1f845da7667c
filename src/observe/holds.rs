//! [`Holds`]: the guards of one pool that are out now, with where and when
//! each was taken, for long-hold detection.
//!
//! Kept beside the pool, not in the guard: a guard stays one pointer plus
//! its pool. With a warning set, a get records its object's address in a
//! shard of this table (a lock and a hash insert) and the object's return
//! takes it out again. Who calls in, and what a pool without a warning
//! pays, is in [`observe`](super)'s docs.
//!
//! Std's atomics and locks, not the loom facade's: no model turns a hold
//! warning on.

use std::collections::VecDeque;
use std::panic::Location;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hashbrown::HashMap;

use super::{HoldSite, HoldWaits, LongHold, trace};

type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A call site of a getter.
pub(crate) type Site = &'static Location<'static>;

/// Shards of the table: a power of two. Two workers whose objects land in
/// one shard take turns at its lock (several times the cost of a get and
/// return each); with 64, two objects share a shard one time in 64.
const SHARDS: usize = 64;

/// Places reserved per shard up front, so that a warm pool records holds
/// without allocating.
const RESERVED: usize = 8;

/// Long holds kept for the next reporter round at most (the oldest go
/// first).
const NEWS: usize = 64;

/// What a pool says about itself in reports and events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label {
    pub(crate) name: Option<&'static str>,
    /// Read by the `tracing` events only.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) kind: &'static str,
}

/// Pool context saved with a hold: for a ring, its wait counters at the
/// take, to report the waits that passed while the object was held.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    pub(crate) waits: u64,
    pub(crate) wait_nanos: u64,
}

/// One object out now.
#[derive(Debug, Clone, Copy)]
struct Hold {
    site: Site,
    since: Instant,
    mark: Mark,
    /// Counted (and warned about) as a long hold already.
    flagged: bool,
}

/// A call site's long holds.
#[derive(Debug, Clone, Copy)]
struct SiteCount {
    count: u64,
    longest: Duration,
}

/// One shard of the table: holds by object address.
type HoldShard = Mutex<Map<usize, Hold>>;

/// The objects one pool has out now, by address.
pub(crate) struct Holds {
    threshold: Duration,
    label: Label,
    shards: Box<[CachePadded<HoldShard>]>,
    /// Guards that passed the threshold, each counted once, by call site.
    sites: Mutex<Map<Site, SiteCount>>,
    /// Long holds not yet handed to a reporter round, newest last.
    news: Mutex<VecDeque<LongHold>>,
}

impl Holds {
    pub(crate) fn new(threshold: Duration, label: Label) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                CachePadded::new(Mutex::new(Map::with_capacity_and_hasher(
                    RESERVED,
                    Default::default(),
                )))
            })
            .collect();
        Holds {
            threshold,
            label,
            shards,
            sites: Mutex::new(Map::default()),
            news: Mutex::new(VecDeque::with_capacity(NEWS)),
        }
    }

    pub(crate) fn threshold(&self) -> Duration {
        self.threshold
    }

    fn shard(&self, key: usize) -> &HoldShard {
        // A multiplicative (Fibonacci) hash: its top bits depend on every
        // bit of the address. Picking a few low bits instead put the
        // objects of two workers in one shard whenever their allocator
        // arenas (64 MiB-aligned in glibc) gave them the same offsets.
        let spread = key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
        &self.shards[spread >> (usize::BITS - SHARDS.trailing_zeros())]
    }

    /// The object at `key` was taken at `site`.
    #[cold]
    #[inline(never)]
    pub(crate) fn taken(&self, key: usize, site: Site, mark: Mark) {
        let hold = Hold {
            site,
            since: Instant::now(),
            mark,
            flagged: false,
        };
        lock(self.shard(key)).insert(key, hold);
    }

    /// The object at `key` came back (returned, discarded or detached).
    /// A hold past the threshold not counted yet is counted now; `waits`
    /// turns the hold's mark into the waits it saw (a ring's), if any.
    #[cold]
    #[inline(never)]
    pub(crate) fn returned(&self, key: usize, waits: impl FnOnce(Mark) -> Option<HoldWaits>) {
        let Some(hold) = lock(self.shard(key)).remove(&key) else {
            // Ended already: a `Pool`'s return ends the hold, then its
            // depot's `drop_slot` looks again for the objects it drops.
            return;
        };
        let held = hold.since.elapsed();
        if held <= self.threshold {
            return;
        }
        if hold.flagged {
            self.note_site(hold.site, held, false);
        } else {
            self.flag(LongHold {
                pool: self.label.name,
                location: hold.site,
                held_for: held,
                waits: waits(hold.mark),
                still_held: false,
            });
        }
    }

    /// The holds past the threshold now, longest first; those not counted
    /// yet are counted (and warned about) as they are found.
    pub(crate) fn scan(&self, waits: impl Fn(Mark) -> Option<HoldWaits>) -> Vec<LongHold> {
        let mut found = Vec::new();
        self.visit(waits, |long| found.push(long));
        found.sort_by_key(|h| std::cmp::Reverse(h.held_for));
        found
    }

    /// Counts (and warns about) the holds that passed the threshold since
    /// the last look, then hands `f` every long hold found since the last
    /// call, oldest first (at most the last [`NEWS`]): a reporter round.
    pub(crate) fn check(
        &self,
        waits: impl Fn(Mark) -> Option<HoldWaits>,
        f: &mut dyn FnMut(&LongHold),
    ) {
        self.visit(waits, |_| {});
        // Taken out first: `f` runs with no lock held.
        let news: Vec<LongHold> = lock(&self.news).drain(..).collect();
        for long in &news {
            f(long);
        }
    }

    /// Hands `each` the holds past the threshold now, flagging those not
    /// flagged yet.
    fn visit(&self, waits: impl Fn(Mark) -> Option<HoldWaits>, mut each: impl FnMut(LongHold)) {
        let now = Instant::now();
        let mut newly = Vec::new();
        for shard in self.shards.iter() {
            let mut map = lock(shard);
            for hold in map.values_mut() {
                let held = now.saturating_duration_since(hold.since);
                if held <= self.threshold {
                    continue;
                }
                let long = LongHold {
                    pool: self.label.name,
                    location: hold.site,
                    held_for: held,
                    waits: waits(hold.mark),
                    still_held: true,
                };
                if !hold.flagged {
                    hold.flagged = true;
                    newly.push(long);
                }
                each(long);
            }
        }
        // Counted and warned about outside the shard locks.
        for long in newly {
            self.flag(long);
        }
    }

    /// Counts a hold that passed the threshold, once, warns, and keeps it
    /// for the next reporter round.
    fn flag(&self, long: LongHold) {
        self.note_site(long.location, long.held_for, true);
        trace::long_hold(self.label, &long, self.threshold);
        let mut news = lock(&self.news);
        if news.len() == NEWS {
            news.pop_front();
        }
        news.push_back(long);
    }

    fn note_site(&self, site: Site, held: Duration, count: bool) {
        let mut sites = lock(&self.sites);
        let entry = sites.entry(site).or_insert(SiteCount {
            count: 0,
            longest: Duration::ZERO,
        });
        entry.count += u64::from(count);
        entry.longest = entry.longest.max(held);
    }

    /// Guards that passed the threshold so far: the sites' counts.
    pub(crate) fn passed(&self) -> u64 {
        lock(&self.sites).values().map(|s| s.count).sum()
    }

    /// Long holds by call site, most first.
    pub(crate) fn sites(&self) -> Vec<HoldSite> {
        let mut sites: Vec<HoldSite> = lock(&self.sites)
            .iter()
            .map(|(&location, s)| HoldSite {
                location,
                count: s.count,
                longest: s.longest,
            })
            .collect();
        sites.sort_by(|a, b| b.count.cmp(&a.count).then(b.longest.cmp(&a.longest)));
        sites
    }

    /// Objects out now (recorded in the table).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

/// A lock of the table's, also after a panic elsewhere poisoned it: the
/// maps hold plain data, and every update leaves them whole.
fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Holds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holds")
            .field("threshold", &self.threshold)
            .field("passed", &self.passed())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const LABEL: Label = Label {
        name: Some("t"),
        kind: "pool",
    };

    #[test]
    fn a_quick_hold_leaves_nothing_behind() {
        let holds = Holds::new(Duration::from_secs(60), LABEL);
        holds.taken(0x1000, Location::caller(), Mark::default());
        holds.taken(0x2000, Location::caller(), Mark::default());
        assert_eq!(holds.len(), 2);
        holds.returned(0x1000, |_| None);
        holds.returned(0x2000, |_| None);
        assert_eq!(holds.len(), 0);
        assert_eq!(holds.passed(), 0);
        assert!(holds.sites().is_empty());
        assert!(holds.scan(|_| None).is_empty());
    }

    #[test]
    fn a_long_hold_is_counted_once_whoever_finds_it() {
        let holds = Holds::new(Duration::ZERO, LABEL);
        let site = Location::caller();
        holds.taken(0x1000, site, Mark::default());
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(holds.scan(|_| None).len(), 1);
        assert_eq!(holds.scan(|_| None).len(), 1, "still held: still listed");
        assert_eq!(holds.passed(), 1, "but counted once");
        holds.returned(0x1000, |_| None);
        assert_eq!(holds.passed(), 1, "and not again on return");
        let sites = holds.sites();
        assert_eq!(sites.len(), 1);
        assert_eq!((sites[0].location, sites[0].count), (site, 1));
        assert!(sites[0].longest >= Duration::from_millis(1));
    }

    #[test]
    fn a_return_counts_a_long_hold_no_scan_saw() {
        let holds = Holds::new(Duration::ZERO, LABEL);
        holds.taken(0x1000, Location::caller(), Mark::default());
        std::thread::sleep(Duration::from_millis(1));
        let mut saw = None;
        holds.returned(0x1000, |mark| {
            saw = Some(mark.waits);
            None
        });
        assert_eq!((holds.passed(), saw), (1, Some(0)));
        assert_eq!(holds.len(), 0);
    }

    #[test]
    fn keys_in_every_shard_come_back() {
        let holds = Holds::new(Duration::from_secs(60), LABEL);
        let keys: Vec<usize> = (0..1000).map(|i| 0x10_0000 + i * 48).collect();
        // Objects at the same offsets of arenas 64 MiB apart.
        let arenas = [0x7f00_0000_0000_usize, 0x7f00_0400_0000];
        let twins: Vec<usize> = arenas.iter().map(|a| a + 0x1_2340).collect();
        assert!(
            !std::ptr::eq(holds.shard(twins[0]), holds.shard(twins[1])),
            "arena twins share a shard"
        );
        for &k in &keys {
            holds.taken(k, Location::caller(), Mark::default());
        }
        assert_eq!(holds.len(), keys.len());
        let used = holds.shards.iter().filter(|s| !lock(s).is_empty()).count();
        assert_eq!(used, SHARDS, "addresses spread over every shard");
        for &k in &keys {
            holds.returned(k, |_| None);
        }
        assert_eq!(holds.len(), 0);
    }
}
