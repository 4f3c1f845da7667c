use super::*;
use crate::loom::Ordering;
use crate::thread::HINT_HERE;

#[test]
fn a_drop_with_hint_here_counts_on_the_calling_threads_shard() {
    let pool = Pool::builder(Vec::<u8>::new).shards(8).build();
    // A thread whose own shard is not shard 0, so that the count cannot
    // land there by a default hint of 0; plain threads take hints in turn,
    // so one of two threads in a row has one.
    let here = std::thread::scope(|s| {
        (0..2)
            .find_map(|_| {
                s.spawn(|| {
                    let here = shard_hint() & pool.idle.mask;
                    (here != 0).then(|| {
                        let slot = pool.take_or_make(here);
                        pool.drop_slot(slot, HINT_HERE, |c| &c.drops_discarded);
                        here
                    })
                })
                .join()
                .unwrap()
            })
            .expect("a thread off shard 0")
    });
    let counts: Vec<u64> = pool
        .idle
        .shards
        .iter()
        .map(|s| s.counters.drops_discarded.load(Ordering::Relaxed))
        .collect();
    let mut expected = vec![0; 8];
    expected[here] = 1;
    assert_eq!(counts, expected);
}
