//! One rule for every builder: setters take the builder by value, `new`
//! and `build` fail only where a value can be wrong, and the same wrong
//! value gets the same answer everywhere. Counts out of range (shards,
//! workers, magazine sizes) are taken as the nearest allowed one, and the
//! pool still works.

use capacitor_pool::pool::MAX_SHARDS;
use capacitor_pool::worker::{MAX_MAGAZINE_SIZE, MAX_WORKERS};
use capacitor_pool::{Pool, PooledCache, RingPool, Slab, WorkerPool, cache, ring, slab};

#[test]
fn a_capacity_of_zero_is_a_build_error_from_new_and_from_the_builder() {
    let from_new = RingPool::new(0, Vec::<u8>::new).unwrap_err();
    let from_builder = RingPool::builder(0, Vec::<u8>::new).build().unwrap_err();
    assert_eq!(from_new, ring::BuildError::ZeroCapacity);
    assert_eq!(from_builder, from_new);

    let from_new = PooledCache::<u64, Vec<u8>>::new(0).unwrap_err();
    let from_builder = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(0)
        .build()
        .unwrap_err();
    assert_eq!(from_new, cache::BuildError::ZeroEntries);
    assert_eq!(from_builder, from_new);

    assert_eq!(
        Slab::builder().page_size(0).build().unwrap_err(),
        slab::BuildError::ZeroSize("page_size")
    );
    assert_eq!(
        Slab::builder().max_pages_per_class(0).build().unwrap_err(),
        slab::BuildError::ZeroPages
    );
}

#[test]
fn a_capacity_past_the_maximum_is_a_build_error_not_an_allocation() {
    let err = RingPool::new(usize::MAX, Vec::<u8>::new).unwrap_err();
    assert!(
        matches!(err, ring::BuildError::CapacityTooLarge { requested, .. } if requested == usize::MAX)
    );
    let err = Slab::builder().max_chunk(usize::MAX).build().unwrap_err();
    assert!(matches!(err, slab::BuildError::TooLarge { .. }));
}

#[test]
fn shard_counts_are_taken_as_the_nearest_allowed_one_everywhere() {
    for (asked, expected) in [(0, 1), (3, 4), (usize::MAX, MAX_SHARDS)] {
        let pool = Pool::builder(Vec::<u8>::new).shards(asked).build();
        assert_eq!(pool.num_shards(), expected, "Pool, shards({asked})");
        let worker = WorkerPool::builder(Vec::<u8>::new)
            .workers(1)
            .shards(asked)
            .build();
        assert_eq!(
            worker.depot().num_shards(),
            expected,
            "WorkerPool, shards({asked})"
        );
        drop(pool.get());
        drop(worker.get());
        assert_eq!(pool.stats().num_idle, 1);
    }
    // A cache has no more shards than entries, and no more than MAX_SHARDS.
    let cache = PooledCache::<u64, String>::builder()
        .max_entries(1 << 20)
        .shards(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(cache.num_shards(), MAX_SHARDS);
    let cache = PooledCache::<u64, String>::builder()
        .max_entries(8)
        .shards(0)
        .build()
        .unwrap();
    assert_eq!(cache.num_shards(), 1);
    let slab = Slab::builder().shards(usize::MAX).build().unwrap();
    let chunk = slab.copy_from_slice(b"frame");
    assert_eq!(&chunk[..], b"frame");
}

#[test]
fn worker_and_magazine_counts_are_taken_as_the_nearest_allowed_one() {
    let pool = WorkerPool::builder(Vec::<u8>::new)
        .workers(usize::MAX)
        .magazine_size(usize::MAX)
        .build();
    assert_eq!(pool.num_workers(), MAX_WORKERS);
    assert_eq!(pool.magazine_size(), MAX_MAGAZINE_SIZE);
    let pool = WorkerPool::builder(Vec::<u8>::new)
        .workers(0)
        .magazine_size(0)
        .build();
    assert_eq!(pool.num_workers(), 0);
    assert_eq!(pool.magazine_size(), 2);
    drop(pool.get()); // no magazines: the depot keeps it
    assert_eq!(pool.stats().num_idle, 1);
}

#[cfg(feature = "codec")]
mod codec {
    use capacitor_pool::Slab;
    use capacitor_pool::codec::{BuildError, LengthDelimited, MAX_HEADER_LENGTH};

    /// Every way to finish the builder, with the answer it gives.
    fn every_finish(
        b: capacitor_pool::codec::LengthDelimitedBuilder,
    ) -> [Result<(), BuildError>; 5] {
        let slab = Slab::new();
        [
            b.new_codec(&slab).map(drop),
            b.new_encoder().map(drop),
            b.new_read(&b""[..], &slab).map(drop),
            b.new_write(Vec::new(), &slab).map(drop),
            b.new_framed(tokio::io::duplex(64).0, &slab).map(drop),
        ]
    }

    #[test]
    fn a_length_field_that_cannot_be_read_is_the_same_error_from_every_finish() {
        for len in [0, 9, usize::MAX] {
            let b = LengthDelimited::builder().length_field_length(len);
            for got in every_finish(b) {
                assert_eq!(got, Err(BuildError::LengthFieldLength(len)));
            }
        }
        for len in 1..=8 {
            let b = LengthDelimited::builder().length_field_length(len);
            assert!(every_finish(b).iter().all(Result::is_ok), "{len}");
        }
    }

    #[test]
    fn a_header_past_the_maximum_is_an_error_and_one_at_it_builds() {
        let too_long = [
            LengthDelimited::builder().length_field_offset(usize::MAX),
            LengthDelimited::builder().length_field_offset(MAX_HEADER_LENGTH - 3),
            LengthDelimited::builder().num_skip(MAX_HEADER_LENGTH + 1),
        ];
        let lens = [usize::MAX, MAX_HEADER_LENGTH + 1, MAX_HEADER_LENGTH + 1];
        for (b, len) in too_long.into_iter().zip(lens) {
            for got in every_finish(b) {
                assert_eq!(
                    got,
                    Err(BuildError::HeaderTooLong {
                        len,
                        max: MAX_HEADER_LENGTH
                    })
                );
            }
        }
        let at_most = LengthDelimited::builder().length_field_offset(MAX_HEADER_LENGTH - 4);
        assert!(every_finish(at_most).iter().all(Result::is_ok));
    }

    #[test]
    fn the_error_says_what_is_wrong_and_is_an_invalid_input_io_error() {
        let err = LengthDelimited::builder()
            .length_field_length(9)
            .new_encoder()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "length field length must be 1 to 8 bytes, not 9"
        );
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    }
}
