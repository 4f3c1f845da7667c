//! The `codec` feature: slab frames against plain `tokio_util` codecs, over
//! TCP and scripted readers, with bad input, pooled buffers and
//! backpressure.
#![cfg(feature = "codec")]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use capacitor_pool::codec::{Backpressure, FrameError, LengthDelimited, PooledFramed, SlabDecoder};
use capacitor_pool::{Slab, SlabBuf, WorkerPool};
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{
    Decoder, Encoder, FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec,
};

/// Header options, built the same way for both codecs.
#[derive(Debug, Clone, Copy)]
struct Opts {
    field_len: usize,
    offset: usize,
    adjust: isize,
    skip: Option<usize>,
    big: bool,
    max: usize,
}

impl Opts {
    const DEFAULT: Opts = Opts {
        field_len: 4,
        offset: 0,
        adjust: 0,
        skip: None,
        big: true,
        max: 8 << 20,
    };

    /// The longest payload both codecs accept (the field's range, adjusted).
    fn max_payload(&self) -> usize {
        let field_max = if self.field_len == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.field_len)) - 1
        };
        let adjusted = field_max.saturating_add_signed(self.adjust as i64);
        self.max
            .min(usize::try_from(adjusted).unwrap_or(usize::MAX))
    }

    fn ours(&self, slab: &Slab) -> LengthDelimited {
        let mut b = LengthDelimited::builder()
            .length_field_length(self.field_len)
            .length_field_offset(self.offset)
            .length_adjustment(self.adjust)
            .max_frame_length(self.max);
        if let Some(skip) = self.skip {
            b = b.num_skip(skip);
        }
        if !self.big {
            b = b.little_endian();
        }
        b.new_codec(slab).unwrap()
    }

    fn theirs(&self) -> LengthDelimitedCodec {
        let mut b = LengthDelimitedCodec::builder();
        b.length_field_length(self.field_len)
            .length_field_offset(self.offset)
            .length_adjustment(self.adjust)
            .max_frame_length(self.max);
        if let Some(skip) = self.skip {
            b.num_skip(skip);
        }
        if !self.big {
            b.little_endian();
        }
        b.new_codec()
    }
}

/// Header options that an encoder can produce (no bytes before the field).
const ENCODABLE: [Opts; 5] = [
    Opts::DEFAULT,
    Opts {
        field_len: 2,
        big: false,
        ..Opts::DEFAULT
    },
    Opts {
        field_len: 1,
        max: 255,
        ..Opts::DEFAULT
    },
    Opts {
        field_len: 8,
        ..Opts::DEFAULT
    },
    Opts {
        field_len: 3,
        adjust: -3, // the field counts itself
        ..Opts::DEFAULT
    },
];

fn payloads(max: usize) -> Vec<Vec<u8>> {
    [0usize, 1, 63, 64, 100, 1000, 4096, 20 * 1024, 70_000]
        .into_iter()
        .filter(|&n| n <= max)
        .enumerate()
        .map(|(i, n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

/// Feeds `chunks` to a decoder as a reader would, then ends the stream.
fn decode_all<D>(codec: &mut D, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<io::Error>)
where
    D: Decoder<Error = io::Error>,
    D::Item: AsRef<[u8]>,
{
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.as_ref().to_vec()),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame.as_ref().to_vec()),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

fn frame_error(e: &io::Error) -> FrameError {
    *e.get_ref()
        .and_then(|e| e.downcast_ref::<FrameError>())
        .unwrap_or_else(|| panic!("not a FrameError: {e:?}"))
}

#[test]
fn smoke() {
    let slab = Slab::new();
    let mut codec = LengthDelimited::new(&slab);
    let mut wire = BytesMut::new();
    codec.encode(&b"hello"[..], &mut wire).unwrap();
    assert_eq!(&wire[..], b"\0\0\0\x05hello");
    let frame = codec.decode(&mut wire).unwrap().unwrap();
    assert_eq!(&frame[..], b"hello");
    assert!(frame.is_pooled());
    assert!(wire.is_empty());
}

#[test]
fn encodes_byte_for_byte_like_tokio_util() {
    let slab = Slab::new();
    for opts in ENCODABLE {
        let (mut ours, mut theirs) = (opts.ours(&slab), opts.theirs());
        for payload in payloads(opts.max_payload() + 1) {
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            let ra = ours.encode(&payload[..], &mut a);
            let rb = theirs.encode(Bytes::from(payload.clone()), &mut b);
            assert_eq!(ra.is_ok(), rb.is_ok(), "{opts:?} len {}", payload.len());
            assert_eq!(a, b, "{opts:?} len {}", payload.len());
        }
    }
}

#[test]
fn decodes_every_split_of_every_header_option_like_tokio_util() {
    let slab = Slab::new();
    let mut all = ENCODABLE.to_vec();
    // Options that only a decoder has: bytes around the field, kept or
    // skipped.
    all.push(Opts {
        offset: 2,
        ..Opts::DEFAULT
    });
    all.push(Opts {
        offset: 1,
        field_len: 2,
        adjust: 3,
        skip: Some(0), // the header stays in the frame
        ..Opts::DEFAULT
    });
    all.push(Opts {
        skip: Some(6), // two bytes after the field dropped too
        ..Opts::DEFAULT
    });
    for opts in all {
        // A stream of frames written with the field as the decoder reads
        // it: `offset` tag bytes, the field, then the payload.
        let mut wire = Vec::new();
        // A header of `offset` tag bytes, the field, and any bytes up to
        // `num_skip`; the frame (after `num_skip`) is `field + adjust` long.
        let field_end = opts.offset + opts.field_len;
        let head = field_end.max(opts.skip.unwrap_or(0));
        let skip = opts.skip.unwrap_or(field_end);
        for (i, payload) in payloads(opts.max.min(5000)).iter().enumerate() {
            let frame_len = head - skip + payload.len();
            let field = (frame_len as i64 - opts.adjust as i64) as u64;
            wire.extend(std::iter::repeat_n(0xA0 + i as u8, opts.offset));
            let bytes = if opts.big {
                field.to_be_bytes()[8 - opts.field_len..].to_vec()
            } else {
                field.to_le_bytes()[..opts.field_len].to_vec()
            };
            wire.extend(bytes);
            wire.extend(std::iter::repeat_n(0xEE, head - field_end));
            wire.extend(payload);
        }
        let expected = decode_all(&mut opts.theirs(), &[&wire]);
        assert!(expected.1.is_none(), "{opts:?}: {:?}", expected.1);
        for split in 0..=wire.len() {
            let (a, b) = wire.split_at(split);
            let got = decode_all(&mut opts.ours(&slab), &[a, b]);
            assert!(got.1.is_none(), "{opts:?} split {split}: {:?}", got.1);
            assert_eq!(got.0, expected.0, "{opts:?} split {split}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&mut opts.ours(&slab), &bytes).0, expected.0);
    }
    assert_eq!(slab.stats().num_in_use(), 0);
}

#[tokio::test]
async fn scripted_reader_split_at_every_boundary() {
    let slab = Slab::new();
    let mut wire = BytesMut::new();
    let mut codec = LengthDelimitedCodec::new();
    for n in [0usize, 5, 100, 300] {
        codec
            .encode(Bytes::from(vec![n as u8; n]), &mut wire)
            .unwrap();
    }
    for split in 1..wire.len() {
        let mock = tokio_test::io::Builder::new()
            .read(&wire[..split])
            .read(&wire[split..])
            .build();
        let frames: Vec<SlabBuf> = FramedRead::new(mock, LengthDelimited::new(&slab))
            .map(Result::unwrap)
            .collect()
            .await;
        let lens: Vec<usize> = frames.iter().map(|f| f.len()).collect();
        assert_eq!(lens, [0, 5, 100, 300], "split at {split}");
        assert!(frames.iter().all(|f| f.iter().all(|&b| b == f.len() as u8)));
    }
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interoperates_with_tokio_util_over_tcp_both_ways() {
    let slab = Slab::new();
    for opts in ENCODABLE {
        let sent = payloads(opts.max_payload());
        // tokio_util writes, we read.
        let (client, server) = tcp_pair().await;
        let writer = tokio::spawn({
            let sent = sent.clone();
            async move {
                let mut tx = FramedWrite::new(client, opts.theirs());
                for p in sent {
                    tx.send(Bytes::from(p)).await.unwrap();
                }
            }
        });
        let got: Vec<Vec<u8>> = FramedRead::new(server, opts.ours(&slab))
            .map(|f| f.unwrap().to_vec())
            .collect()
            .await;
        writer.await.unwrap();
        assert_eq!(got, sent, "{opts:?}");
        // We write, tokio_util reads.
        let (client, server) = tcp_pair().await;
        let writer = tokio::spawn({
            let sent = sent.clone();
            let slab = slab.clone();
            async move {
                let mut tx = FramedWrite::new(client, opts.ours(&slab));
                for p in sent {
                    tx.send(slab.copy_from_slice(&p)).await.unwrap();
                }
            }
        });
        let got: Vec<Vec<u8>> = FramedRead::new(server, opts.theirs())
            .map(|f| f.unwrap().to_vec())
            .collect()
            .await;
        writer.await.unwrap();
        assert_eq!(got, sent, "{opts:?}");
    }
    assert_eq!(slab.stats().num_in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_kept_and_dropped_on_other_workers_while_decoding_goes_on() {
    let slab = Slab::new();
    let (client, server) = tcp_pair().await;
    let writer = tokio::spawn(async move {
        let mut tx = FramedWrite::new(client, LengthDelimitedCodec::new());
        for i in 0..5000u32 {
            let len = 50 + (i as usize * 7) % 3000;
            tx.send(Bytes::from(vec![i as u8; len])).await.unwrap();
        }
    });
    let mut rx = FramedRead::new(server, LengthDelimited::new(&slab));
    let mut kept = Vec::new();
    let mut droppers = Vec::new();
    let mut i = 0u32;
    while let Some(frame) = rx.next().await {
        let frame = frame.unwrap();
        assert!(frame.iter().all(|&b| b == i as u8), "frame {i}");
        if i % 3 == 0 {
            kept.push((i, frame));
        } else {
            droppers.push(tokio::spawn(async move {
                tokio::task::yield_now().await;
                assert!(frame.iter().all(|&b| b == i as u8));
            }));
        }
        i += 1;
    }
    writer.await.unwrap();
    assert_eq!(i, 5000);
    for d in droppers {
        d.await.unwrap();
    }
    for (i, frame) in &kept {
        assert!(
            frame.iter().all(|&b| b == *i as u8),
            "kept frame {i} changed"
        );
    }
    assert_eq!(slab.stats().num_in_use(), kept.len() as u64);
    drop(kept);
    assert_eq!(slab.stats().num_in_use(), 0);
    assert_eq!(slab.stats().heap_count(), 0);
}

#[tokio::test]
async fn bytes_clones_outlive_the_decoder_and_the_slab() {
    let slab = Slab::new();
    let io: &[u8] = b"\0\0\0\x05hello\0\0\0\x05world";
    let frames: Vec<Bytes> = FramedRead::new(io, LengthDelimited::new(&slab))
        .map(|f| f.unwrap().into_bytes())
        .collect()
        .await;
    let clones: Vec<Bytes> = frames.iter().map(|b| b.slice(1..)).collect();
    drop(frames);
    drop(slab);
    assert_eq!(&clones[0][..], b"ello");
    assert_eq!(&clones[1][..], b"orld");
}

#[test]
fn a_length_over_the_maximum_is_invalid_data_before_any_allocation() {
    let slab = Slab::new();
    let mut codec = LengthDelimited::builder()
        .max_frame_length(1000)
        .new_codec(&slab)
        .unwrap();
    let (frames, err) = decode_all(&mut codec, &[b"\0\0\x03\xe9 and some bytes"]);
    assert!(frames.is_empty());
    let err = err.unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        frame_error(&err),
        FrameError::TooLong {
            len: 1001,
            max: 1000
        }
    );
    assert_eq!(slab.stats().alloc_count(), 0);
    assert_eq!(slab.stats().heap_count(), 0);
}

#[test]
fn a_lying_length_field_claiming_4_gib_is_refused() {
    let slab = Slab::new();
    let mut codec = LengthDelimited::new(&slab); // 8 MiB max, the default
    let (_, err) = decode_all(&mut codec, &[b"\xff\xff\xff\xffxx"]);
    let err = err.unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("4294967295"), "{err}");
    assert_eq!(slab.stats().heap_count(), 0);
}

#[test]
fn an_adjustment_out_of_range_is_invalid_data() {
    let slab = Slab::new();
    let opts = Opts {
        adjust: -4,
        ..Opts::DEFAULT
    };
    let (_, err) = decode_all(&mut opts.ours(&slab), &[b"\0\0\0\x02xx"]);
    let err = err.unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(frame_error(&err), FrameError::BadAdjustment);
}

#[test]
fn a_truncated_frame_at_eof_is_invalid_data_and_gives_its_chunk_back() {
    let slab = Slab::new();
    for wire in [&b"\0\0\0\x0ahello"[..], &b"\0\0"[..]] {
        let (frames, err) = decode_all(&mut LengthDelimited::new(&slab), &[wire]);
        assert!(frames.is_empty());
        let err = err.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            frame_error(&err),
            FrameError::Truncated {
                received: wire.len()
            }
        );
    }
    assert_eq!(slab.stats().num_in_use(), 0);
}

#[test]
fn encoding_over_the_maximum_is_invalid_input() {
    let slab = Slab::new();
    let mut codec = LengthDelimited::builder()
        .length_field_length(1)
        .new_codec(&slab)
        .unwrap();
    assert_eq!(codec.max_frame_length(), 255); // clamped to the field
    let err = codec
        .encode(&[0u8; 256][..], &mut BytesMut::new())
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn frames_over_the_largest_class_come_from_the_heap() {
    let slab = Slab::builder().max_chunk(1024).build().unwrap();
    let mut wire = BytesMut::new();
    let mut codec = LengthDelimited::new(&slab);
    codec.encode(&[9u8; 5000][..], &mut wire).unwrap();
    let frame = codec.decode(&mut wire).unwrap().unwrap();
    assert_eq!(frame.len(), 5000);
    assert!(!frame.is_pooled());
    assert_eq!(slab.stats().oversized_count, 1);
}

#[tokio::test]
async fn slab_decoder_wraps_other_codecs() {
    let slab = Slab::new();
    let io: &[u8] = b"one\ntwo\nthree";
    let lines: Vec<SlabBuf> = FramedRead::new(io, SlabDecoder::new(LinesCodec::new(), &slab))
        .map(Result::unwrap)
        .collect()
        .await;
    let lines: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
    assert_eq!(lines, [&b"one"[..], b"two", b"three"]);

    let mut wire = BytesMut::new();
    let mut codec = SlabDecoder::new(LengthDelimitedCodec::new(), &slab);
    codec
        .encode(Bytes::from_static(b"framed"), &mut wire)
        .unwrap();
    let frame = codec.decode(&mut wire).unwrap().unwrap();
    assert_eq!(&frame[..], b"framed");
    assert!(frame.is_pooled());
    // Errors of the wrapped codec come through unchanged.
    let mut lines = SlabDecoder::new(LinesCodec::new_with_max_length(4), &slab);
    assert!(
        lines
            .decode(&mut BytesMut::from(&b"toolong\n"[..]))
            .is_err()
    );
}

fn buffer_pool() -> Arc<WorkerPool<BytesMut>> {
    Arc::new(
        WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024))
            .retention_limit(64 * 1024)
            .build(),
    )
}

#[tokio::test]
async fn pooled_framed_gives_its_buffers_back_when_the_connection_ends() {
    let slab = Slab::new();
    let pool = buffer_pool();
    for round in 0..3 {
        let (a, b) = tokio::io::duplex(4096);
        let mut a = PooledFramed::framed(a, LengthDelimited::new(&slab), &pool);
        let mut b = PooledFramed::framed_read(b, LengthDelimited::new(&slab), &pool);
        a.send(&b"ping"[..]).await.unwrap();
        assert_eq!(&b.next().await.unwrap().unwrap()[..], b"ping");
        assert!(a.get_ref().read_buffer().capacity() >= 8000); // the pool's
        drop((a, b));
        let stats = pool.stats();
        assert_eq!(stats.num_idle, 3, "round {round}");
        assert_eq!(stats.created_count, 3, "round {round}: buffers not reused");
    }
}

#[tokio::test]
async fn a_buffer_grown_by_a_huge_frame_is_dropped_not_kept() {
    let slab = Slab::new();
    let pool = buffer_pool();
    let (a, b) = tokio::io::duplex(1 << 20);
    let reader = tokio::spawn(async move {
        let mut rx = FramedRead::new(b, LengthDelimitedCodec::new());
        rx.next().await.unwrap().unwrap().len()
    });
    // Encoding a 300 KB frame grows the write buffer to hold it.
    let mut tx = PooledFramed::framed_write(a, LengthDelimited::new(&slab), &pool);
    tx.send(&vec![1u8; 300_000][..]).await.unwrap();
    assert!(tx.get_ref().write_buffer().capacity() < 1000); // flushed: empty ...
    drop(tx); // ... but 300 KB are allocated: dropped, not kept
    assert_eq!(reader.await.unwrap(), 300_000);
    let stats = pool.stats();
    assert_eq!(stats.drop_oversized_count, 1, "{stats:?}");
    assert_eq!(stats.num_idle, 0);
}

#[tokio::test]
async fn the_native_decoder_never_grows_the_read_buffer() {
    let slab = Slab::new();
    let pool = buffer_pool();
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut tx = FramedWrite::new(a, LengthDelimitedCodec::new());
    let mut rx = PooledFramed::framed_read(b, LengthDelimited::new(&slab), &pool);
    for len in [300_000usize, 20_000, 60_000] {
        tx.send(Bytes::from(vec![2u8; len])).await.unwrap();
        let frame = rx.next().await.unwrap().unwrap();
        assert_eq!(frame.len(), len);
        assert!(rx.get_ref().read_buffer().capacity() <= 8 * 1024);
    }
    drop(rx);
    assert_eq!(pool.stats().num_idle, 1);
    assert_eq!(pool.stats().drop_oversized_count, 0);
}

#[tokio::test]
async fn buffers_go_back_after_bad_input_too() {
    let slab = Slab::new();
    let pool = buffer_pool();
    let mock = tokio_test::io::Builder::new()
        .read(b"\0\0\0\x03ab") // truncated at EOF
        .build();
    let mut rx = PooledFramed::framed_read(mock, LengthDelimited::new(&slab), &pool);
    let err = rx.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    drop(rx);
    assert_eq!(pool.stats().num_idle, 1);
    assert_eq!(slab.stats().num_in_use(), 0);
}

#[tokio::test]
async fn backpressure_holds_the_reader_until_frames_are_dropped() {
    // One 4 KiB page of 128-byte chunks: 32 frames in flight at most.
    let slab = Slab::builder()
        .page_size(4096)
        .max_pages_per_class(1)
        .build()
        .unwrap();
    let (client, server) = tokio::io::duplex(1 << 20);
    let writer = tokio::spawn(async move {
        let mut tx = FramedWrite::new(client, LengthDelimitedCodec::new());
        for i in 0..200u8 {
            tx.send(Bytes::from(vec![i; 100])).await.unwrap();
        }
    });
    let frames = FramedRead::new(server, LengthDelimited::new(&slab));
    let mut frames = Backpressure::new(frames, &slab, 100);
    let mut kept = Vec::new();
    for _ in 0..32 {
        kept.push(frames.next().await.unwrap().unwrap());
    }
    let stalled = tokio::time::timeout(Duration::from_millis(50), frames.next()).await;
    assert!(stalled.is_err(), "read past the slab's bound");
    assert_eq!(slab.class_stats(1).unwrap().num_waiters, 1);
    // A consumer on another task frees frames one by one.
    let consumer = tokio::spawn(async move {
        for frame in kept {
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(frame);
        }
    });
    let mut n = 32;
    while let Some(frame) = frames.next().await {
        let frame = frame.unwrap();
        assert_eq!(frame[0], n as u8);
        n += 1;
    }
    assert_eq!(n, 200);
    writer.await.unwrap();
    consumer.await.unwrap();
    let stats = slab.stats();
    assert_eq!(stats.heap_count(), 0, "backpressure let the slab overflow");
    assert_eq!(stats.class_stats_waiters(), 0);
}

trait Waiters {
    fn class_stats_waiters(&self) -> usize;
}

impl Waiters for capacitor_pool::slab::SlabStats {
    fn class_stats_waiters(&self) -> usize {
        self.classes.iter().map(|c| c.num_waiters).sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any byte stream, any header options, any split: no panic, the same
    /// frames as `LengthDelimitedCodec` (or an error where it errs), bounded
    /// memory, and every chunk back in the slab at the end.
    #[test]
    fn arbitrary_streams_decode_like_tokio_util_and_leak_nothing(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        splits in proptest::collection::vec(0usize..600, 0..6),
        field_len in 1usize..=8,
        offset in 0usize..3,
        adjust in -6isize..6,
        skip in proptest::option::of(0usize..12),
        big in any::<bool>(),
        max in 0usize..400,
    ) {
        let opts = Opts { field_len, offset, adjust, skip, big, max };
        let slab = Slab::builder().max_pages_per_class(2).page_size(4096).build().unwrap();
        let mut cuts: Vec<usize> = splits.into_iter().map(|s| s.min(data.len())).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            chunks.push(&data[at..cut]);
            at = cut;
        }
        let (ours, our_err) = decode_all(&mut opts.ours(&slab), &chunks);
        let (theirs, their_err) = decode_all(&mut opts.theirs(), &chunks);
        prop_assert_eq!(&ours, &theirs);
        match (&our_err, &their_err) {
            (Some(_), Some(_)) | (None, None) => {}
            // `LengthDelimitedCodec` ends quietly when the stream stops right
            // after a header; this codec reports the truncated frame.
            (Some(e), None) => prop_assert!(
                matches!(frame_error(e), FrameError::Truncated { .. }),
                "{:?}", e
            ),
            (None, Some(e)) => prop_assert!(false, "only tokio_util failed: {:?}", e),
        }
        let bound = (max as i64 + adjust.max(0) as i64) as usize;
        prop_assert!(ours.iter().all(|f| f.len() <= bound));
        let stats = slab.stats();
        prop_assert_eq!(stats.num_in_use(), 0);
        prop_assert!(stats.page_bytes() <= 2 * 4096 * stats.classes.len());
    }
}

/// An in-memory reader that returns at most `max` bytes per read, records
/// the room each read was offered, and can fail once `fail_at` bytes were
/// read.
struct ChunkedReader {
    data: Vec<u8>,
    at: usize,
    max: usize,
    offered: Vec<usize>,
    fail_at: Option<usize>,
}

impl ChunkedReader {
    fn new(data: Vec<u8>, max: usize) -> Self {
        Self {
            data,
            at: 0,
            max,
            offered: Vec::new(),
            fail_at: None,
        }
    }
}

impl tokio::io::AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.offered.push(buf.remaining());
        if self.fail_at.is_some_and(|at| self.at >= at) {
            return std::task::Poll::Ready(Err(io::Error::other("connection reset")));
        }
        let n = buf.remaining().min(self.max).min(self.data.len() - self.at);
        buf.put_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Frames encoded by `tokio_util` with `opts`.
fn encoded(opts: Opts, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut codec = opts.theirs();
    let mut wire = BytesMut::new();
    for p in payloads {
        codec.encode(Bytes::from(p.clone()), &mut wire).unwrap();
    }
    wire.to_vec()
}

/// Every frame of a stream read through `SlabFramedRead`, and the reader.
async fn read_direct(
    opts: Opts,
    slab: &Slab,
    reader: ChunkedReader,
) -> (Vec<Vec<u8>>, Option<io::Error>, ChunkedReader) {
    let mut frames = capacitor_pool::codec::SlabFramedRead::new(reader, opts.ours(slab));
    let mut got = Vec::new();
    let mut err = None;
    while let Some(item) = frames.next().await {
        match item {
            Ok(frame) => got.push(frame.to_vec()),
            Err(e) => err = Some(e),
        }
    }
    (got, err, frames.into_parts().0)
}

/// `SlabFramedRead` yields what `FramedRead<_, LengthDelimitedCodec>` would
/// for every header option an encoder makes, frames up to 70,000 bytes and
/// reads of 1 byte to 64 KiB; large payloads are read straight into their
/// chunk (a read is offered exactly the bytes the frame still misses), and
/// the read buffer never grows past its 8 KiB.
#[tokio::test]
async fn slab_framed_read_reads_large_payloads_straight_into_their_chunk() {
    let slab = Slab::new();
    for opts in ENCODABLE {
        let payloads = payloads(opts.max_payload());
        let wire = encoded(opts, &payloads);
        for max in [1, 7, 1000, 8192, 65536] {
            if max == 1 && wire.len() > 30_000 {
                continue; // a byte at a time: the small options only
            }
            let (got, err, reader) =
                read_direct(opts, &slab, ChunkedReader::new(wire.clone(), max)).await;
            assert!(err.is_none(), "{opts:?} reads of {max}: {err:?}");
            assert_eq!(got, payloads, "{opts:?} reads of {max}");
            if payloads.iter().any(|p| p.len() >= 20 * 1024) && max >= 8192 {
                let direct = reader.offered.iter().filter(|&&n| n > 8192).count();
                assert!(direct > 0, "{opts:?}: no read into a chunk");
            }
            assert!(
                reader.offered.iter().all(|&n| n <= 70_000),
                "{opts:?}: {:?}",
                reader.offered
            );
        }
    }
    assert_eq!(slab.stats().num_in_use(), 0);
}

/// Bad input through `SlabFramedRead`: a stream cut inside a large payload
/// is `InvalidData` (truncated) and gives its chunk back; a length over the
/// maximum is `InvalidData` before anything is read into a chunk; a reader
/// error comes through. Each ends the stream.
#[tokio::test]
async fn slab_framed_read_reports_truncation_oversize_and_reader_errors() {
    let slab = Slab::new();
    let opts = Opts::DEFAULT;
    let payloads = vec![vec![1u8; 100], vec![2u8; 40_000]];
    let wire = encoded(opts, &payloads);

    let cut = wire[..wire.len() - 10_000].to_vec();
    let (got, err, _) = read_direct(opts, &slab, ChunkedReader::new(cut, 8192)).await;
    assert_eq!(got, payloads[..1]);
    let err = err.expect("truncated");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(matches!(frame_error(&err), FrameError::Truncated { .. }));

    let small = Opts {
        max: 1000,
        ..Opts::DEFAULT
    };
    let (got, err, reader) =
        read_direct(small, &slab, ChunkedReader::new(wire.clone(), 8192)).await;
    assert_eq!(got, payloads[..1]);
    assert!(matches!(
        frame_error(&err.expect("too long")),
        FrameError::TooLong { len: 40_000, .. }
    ));
    assert_eq!(reader.offered.len(), 1, "nothing read after the bad header");

    let mut failing = ChunkedReader::new(wire, 8192);
    failing.fail_at = Some(20_000);
    let (got, err, _) = read_direct(opts, &slab, failing).await;
    assert_eq!(got, payloads[..1]);
    assert_eq!(err.expect("reader error").to_string(), "connection reset");
    assert_eq!(slab.stats().num_in_use(), 0, "chunks of cut frames back");
}

/// `Backpressure` wraps a `SlabFramedRead` as it wraps a `FramedRead`:
/// with the slab's 32 KiB class full (one page: two 20 KiB frames kept), the
/// next frame waits until one is dropped.
#[tokio::test]
async fn backpressure_holds_a_slab_framed_read_too() {
    let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let mut tx = FramedWrite::new(client, LengthDelimitedCodec::new());
    tokio::spawn(async move {
        for i in 0..4u8 {
            tx.send(Bytes::from(vec![i; 20 * 1024])).await.unwrap();
        }
    });
    let frames = capacitor_pool::codec::SlabFramedRead::new(server, LengthDelimited::new(&slab));
    let mut frames = Backpressure::new(frames, &slab, 20 * 1024);
    let first = frames.next().await.unwrap().unwrap();
    let second = frames.next().await.unwrap().unwrap();
    assert_eq!((first[0], second[0]), (0, 1));
    let next = tokio::time::timeout(Duration::from_millis(50), frames.next());
    assert!(next.await.is_err(), "the class is full: the reader waits");
    drop(first);
    let third = frames.next().await.unwrap().unwrap();
    assert_eq!((third.len(), third[0]), (20 * 1024, 2));
    drop((second, third));
    let fourth = frames.next().await.unwrap().unwrap();
    assert_eq!(fourth[0], 3);
    drop(fourth);
    assert!(frames.next().await.is_none());
    assert_eq!(slab.stats().num_in_use(), 0);
}

/// A reader that serves `wire` at most `max_read` bytes a read, and before
/// each write looks at everything its `ReadBuf` offers as initialized,
/// zeroing the rest first (`initialize_unfilled`): what a TLS stream or a
/// careless wrapper could see. It records every byte it saw that it had not
/// written itself, and how many bytes it had to zero.
struct Inspecting {
    wire: Vec<u8>,
    at: usize,
    max_read: usize,
    /// Bytes seen in the buffer that were neither zero nor what this reader
    /// is about to write there.
    foreign: Vec<u8>,
    zeroed: usize,
}

impl tokio::io::AsyncRead for Inspecting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = &mut *self;
        let known = buf.initialized().len();
        this.zeroed += buf.capacity() - known;
        let offered = buf.initialize_unfilled().to_vec();
        // What it wrote in an earlier read of the same buffer (past what
        // was counted as filled) is its own; zeros are `ReadBuf`'s.
        for (i, &b) in offered.iter().enumerate() {
            let own = this.wire.get(this.at + i).is_some_and(|&w| w == b);
            if b != 0 && !own {
                this.foreign.push(b);
            }
        }
        let n = this
            .max_read
            .min(buf.remaining())
            .min(this.wire.len() - this.at);
        buf.put_slice(&this.wire[this.at..this.at + n]);
        this.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// The stale-bytes guarantee of `SlabFramedRead`: a 20 KiB frame of 0xAB is
/// decoded and dropped, so the next 20 KiB frame reuses its chunk (the
/// slab's `zero_on_return` is off, the default); the reader, fed the rest
/// of that frame straight into the chunk, never sees a 0xAB, even though
/// it looks at the whole buffer before it writes.
#[tokio::test]
async fn slab_framed_read_never_shows_a_previous_frames_bytes_to_the_reader() {
    let slab = Slab::new();
    let mut wire = BytesMut::new();
    let mut encoder = LengthDelimitedCodec::new();
    for byte in [0xAB, 0x01, 0x02] {
        encoder
            .encode(Bytes::from(vec![byte; 20 * 1024]), &mut wire)
            .unwrap();
    }
    let reader = Inspecting {
        wire: wire.to_vec(),
        at: 0,
        max_read: 3000,
        foreign: Vec::new(),
        zeroed: 0,
    };
    let mut frames =
        capacitor_pool::codec::SlabFramedRead::new(reader, LengthDelimited::new(&slab));
    let mut addrs = Vec::new();
    for byte in [0xAB, 0x01, 0x02] {
        let frame = frames.next().await.unwrap().unwrap();
        assert_eq!(frame.len(), 20 * 1024);
        assert!(frame.iter().all(|&b| b == byte));
        addrs.push(frame.as_ptr());
    }
    assert_eq!(
        addrs[0], addrs[1],
        "the chunk was reused (the test's premise)"
    );
    assert!(frames.next().await.is_none());
    let reader = frames.get_ref();
    assert!(
        reader.foreign.is_empty(),
        "the reader saw {} bytes it did not write, such as {:?}",
        reader.foreign.len(),
        &reader.foreign[..reader.foreign.len().min(8)]
    );
}

/// The same through `LengthDelimited::poll_read_payload` directly, and the
/// bookkeeping that makes it cheap: what a reader zeroed or wrote in an
/// earlier read of the same frame is offered as initialized again, so each
/// byte of the frame is zeroed at most once.
#[test]
fn poll_read_payload_zeroes_each_byte_of_a_frame_at_most_once() {
    use std::task::{Context, Poll, Waker};

    let slab = Slab::new();
    let mut codec = LengthDelimited::new(&slab);
    let mut cx = Context::from_waker(Waker::noop());
    let len = 20 * 1024;
    for byte in [0xABu8, 0x01] {
        let mut src = BytesMut::from(&(len as u32).to_be_bytes()[..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        let mut reader = Inspecting {
            wire: vec![byte; len],
            at: 0,
            max_read: 1000,
            foreign: Vec::new(),
            zeroed: 0,
        };
        let mut reads = 0;
        while let Some(read) = codec.poll_read_payload(&mut cx, std::pin::Pin::new(&mut reader), 1)
        {
            assert!(matches!(read, Poll::Ready(Ok(1000 | 480))), "{read:?}");
            reads += 1;
        }
        assert_eq!(reads, 21);
        assert!(
            reader.foreign.is_empty(),
            "frame of {byte:#x}: saw a previous frame's bytes"
        );
        assert_eq!(reader.zeroed, len, "each byte zeroed once, none twice");
        let frame = codec.decode(&mut src).unwrap().unwrap();
        assert!(frame.iter().all(|&b| b == byte));
    }
}

// --- Conversions: clone, encode-only, any bytes-like item -------------------

#[test]
fn a_cloned_codec_starts_at_a_header_with_the_same_options() {
    let slab = Slab::new();
    let mut codec = LengthDelimited::builder()
        .length_field_length(2)
        .max_frame_length(1000)
        .new_codec(&slab)
        .unwrap();
    let mut half = BytesMut::from(&b"\x00\x05he"[..]);
    assert!(codec.decode(&mut half).unwrap().is_none());
    let mut copy = codec.clone();
    assert_eq!(copy.pending_frame_len(), None, "no frame in progress");
    assert_eq!(copy.max_frame_length(), 1000);
    let mut whole = BytesMut::from(&b"\x00\x02hi"[..]);
    assert_eq!(&copy.decode(&mut whole).unwrap().unwrap()[..], b"hi");
    // The original goes on with its frame, untouched by the clone.
    half.extend_from_slice(b"llo");
    assert_eq!(&codec.decode(&mut half).unwrap().unwrap()[..], b"hello");
    assert_eq!(slab.stats().alloc_count(), 2, "both frames from one slab");
}

#[test]
fn the_encoder_needs_no_slab_and_writes_what_the_codec_writes() {
    let slab = Slab::new();
    for opts in ENCODABLE {
        let mut b = LengthDelimited::builder()
            .length_field_length(opts.field_len)
            .length_field_offset(opts.offset)
            .length_adjustment(opts.adjust)
            .max_frame_length(opts.max);
        if !opts.big {
            b = b.little_endian();
        }
        let mut encoder = b.new_encoder().unwrap();
        let mut codec = opts.ours(&slab);
        assert_eq!(encoder.max_frame_length(), codec.max_frame_length());
        let mut from_codec = codec.encoder();
        for payload in payloads(opts.max_payload() + 1) {
            let (mut a, mut b, mut c) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
            let ra = encoder.encode(&payload[..], &mut a);
            let rb = codec.encode(&payload[..], &mut b);
            let rc = from_codec.encode(&payload[..], &mut c);
            assert_eq!(ra.is_ok(), rb.is_ok(), "{opts:?} len {}", payload.len());
            assert_eq!(rc.is_ok(), rb.is_ok(), "{opts:?} len {}", payload.len());
            assert_eq!((&a, &c), (&b, &b), "{opts:?} len {}", payload.len());
        }
    }
}

#[tokio::test]
async fn an_encode_only_writer_talks_to_a_slab_reader() {
    let slab = Slab::new();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut tx = FramedWrite::new(a, capacitor_pool::codec::LengthDelimitedEncoder::new());
    let mut rx = FramedRead::new(b, LengthDelimited::new(&slab));
    tx.send(&b"one"[..]).await.unwrap();
    tx.send(vec![2u8; 20_000]).await.unwrap();
    assert_eq!(&rx.next().await.unwrap().unwrap()[..], b"one");
    assert_eq!(rx.next().await.unwrap().unwrap().len(), 20_000);
}

/// `LengthDelimited` encodes anything that dereferences to bytes: the
/// crate's guards of `BytesMut`, `Vec<u8>` and `String` go out as they
/// are, and back to their pools once encoded.
#[tokio::test]
async fn pooled_guards_and_bytes_like_items_are_sent_without_slicing() {
    use capacitor_pool::{Pool, RingPool};
    let slab = Slab::new();
    let bytes_pool = Arc::new(Pool::new(BytesMut::new));
    let vec_pool = WorkerPool::new(Vec::<u8>::new);
    let string_pool = Pool::new(String::new);
    let ring = RingPool::new(1, BytesMut::new).unwrap();

    let mut sink = FramedWrite::new(Vec::new(), LengthDelimited::new(&slab));
    let mut owned = bytes_pool.get_owned();
    owned.extend_from_slice(b"owned");
    sink.send(owned).await.unwrap(); // OwnedPooled<BytesMut>
    let mut v = vec_pool.get();
    v.extend_from_slice(b"vec");
    sink.send(v).await.unwrap(); // WorkerPooled<Vec<u8>>
    let mut s = string_pool.get();
    s.push_str("str");
    sink.send(s).await.unwrap(); // Pooled<String>
    let mut r = ring.try_get().unwrap();
    r.extend_from_slice(b"ring");
    sink.send(r).await.unwrap(); // RingGuard<BytesMut>
    let frame = slab.copy_from_slice(b"slab");
    sink.send(&frame).await.unwrap(); // &SlabBuf
    sink.send(frame).await.unwrap(); // SlabBuf
    sink.send("text").await.unwrap(); // &str
    sink.send(String::from("s")).await.unwrap();
    sink.send(Bytes::from_static(b"b")).await.unwrap();
    sink.send(BytesMut::from("m")).await.unwrap();
    sink.send(b"arr").await.unwrap(); // &[u8; 3]

    assert_eq!(bytes_pool.stats().num_idle, 1, "guards back once encoded");
    assert_eq!(string_pool.stats().num_idle, 1);
    assert_eq!(vec_pool.stats().num_in_use, 0);
    assert_eq!(ring.stats().num_idle, 1);
    assert_eq!(slab.stats().num_in_use(), 0);

    let wire = sink.into_inner();
    let frames: Vec<SlabBuf> = FramedRead::new(&wire[..], LengthDelimited::new(&slab))
        .map(Result::unwrap)
        .collect()
        .await;
    let frames: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    let want: [&[u8]; 11] = [
        b"owned", b"vec", b"str", b"ring", b"slab", b"slab", b"text", b"s", b"b", b"m", b"arr",
    ];
    assert_eq!(frames, want);
}

// --- `worker_pool!` statics and other pools feeding the framed types --------

mod statics {
    use bytes::BytesMut;

    capacitor_pool::worker_pool! {
        pub static FRAMED: WorkerPool<BytesMut> =
            WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024));
    }
    capacitor_pool::worker_pool! {
        pub static SLAB_READ: WorkerPool<BytesMut> =
            WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024));
    }
    capacitor_pool::worker_pool! {
        pub static ECHO: WorkerPool<BytesMut> =
            WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024));
    }
    pub static LAZY: std::sync::LazyLock<capacitor_pool::Pool<BytesMut>> =
        std::sync::LazyLock::new(|| capacitor_pool::Pool::new(|| BytesMut::with_capacity(4096)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pool_static_feeds_pooled_framed() {
    use statics::FRAMED;
    let slab = Slab::new();
    let (a, b) = tokio::io::duplex(4096);
    let mut a = PooledFramed::framed(a, LengthDelimited::new(&slab), &FRAMED);
    let b = PooledFramed::framed_read(b, LengthDelimited::new(&slab), &FRAMED);
    assert!(
        a.get_ref().read_buffer().capacity() >= 8 * 1024,
        "the pool's"
    );
    // The static's guards are 'static: the connection moves into a task.
    let reader = tokio::spawn(async move {
        let mut b = b;
        let frame = b.next().await.unwrap().unwrap();
        frame.len()
    });
    a.send(&b"ping"[..]).await.unwrap();
    assert_eq!(reader.await.unwrap(), 4);
    assert_eq!(FRAMED.stats().num_in_use, 2, "`a`'s two buffers");
    drop(a);
    assert_eq!(FRAMED.stats().num_in_use, 0);

    // `from_guards` takes the static's guards as they come from `get`.
    let inner = FramedRead::with_capacity(&b"one\n"[..], LinesCodec::new(), 0);
    let mut lines = PooledFramed::from_guards(inner, Some(FRAMED.get()), None);
    assert_eq!(lines.next().await.unwrap().unwrap(), "one");
    drop(lines);
    assert_eq!(FRAMED.stats().num_in_use, 0);
}

#[tokio::test]
async fn pooled_framed_takes_a_lazy_lock_pool_and_an_arc_pool() {
    use statics::LAZY;
    let pool = Arc::new(capacitor_pool::Pool::new(|| BytesMut::with_capacity(4096)));
    let mut sink = PooledFramed::framed_write(Vec::new(), LinesCodec::new(), &LAZY);
    sink.send("lazy").await.unwrap();
    assert_eq!(&sink.get_ref().get_ref()[..], b"lazy\n");
    drop(sink);
    let mut sink = PooledFramed::framed_write(Vec::new(), LinesCodec::new(), &pool);
    sink.send("arc").await.unwrap();
    drop(sink);
    assert_eq!(LAZY.stats().num_idle, 1);
    assert_eq!(pool.stats().num_idle, 1);
}

#[tokio::test]
async fn slab_framed_read_takes_its_read_buffer_from_a_pool() {
    use statics::SLAB_READ;
    let slab = Slab::new();
    let mut wire = Vec::new();
    for payload in [&[7u8; 20_000][..], b"small"] {
        wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        wire.extend_from_slice(payload);
    }
    let mut frames = capacitor_pool::codec::SlabFramedRead::with_pool(
        &wire[..],
        LengthDelimited::new(&slab),
        &SLAB_READ,
    );
    assert!(frames.read_buffer().capacity() >= 8 * 1024);
    assert_eq!(SLAB_READ.stats().num_in_use, 1);
    let big = frames.next().await.unwrap().unwrap();
    assert!(big.len() == 20_000 && big.is_pooled());
    assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"small");
    assert!(frames.next().await.is_none());
    drop(frames);
    assert_eq!(SLAB_READ.stats().num_in_use, 0, "the buffer is back");

    // An `Arc<WorkerPool>` too; `into_parts` copies out what is left and
    // gives the buffer back.
    let pool = buffer_pool();
    let frames = capacitor_pool::codec::SlabFramedRead::with_pool(
        &b"\0\0\0\x02hi\0\0"[..],
        LengthDelimited::new(&slab),
        &pool,
    );
    let mut frames = frames;
    assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"hi");
    let (_reader, _codec, rest) = frames.into_parts();
    assert_eq!(&rest[..], b"\0\0");
    assert_eq!(pool.stats().num_idle, 1);
}

/// An echo server on one `SlabFramed`: frames small and large (read
/// straight into their chunks) go back as they came, over a pipe that
/// holds 1000 bytes.
#[tokio::test]
async fn slab_framed_echo_round_trip() {
    use statics::ECHO;
    let slab = Slab::builder().max_chunk(1 << 20).build().unwrap();
    let (client, server) = tokio::io::duplex(1000);
    let server_slab = slab.clone();
    let server = tokio::spawn(async move {
        let mut conn = capacitor_pool::codec::SlabFramed::with_pool(
            server,
            LengthDelimited::new(&server_slab),
            &ECHO,
        );
        let mut echoed = 0;
        while let Some(frame) = conn.next().await {
            conn.send(frame.unwrap()).await.unwrap();
            echoed += 1;
        }
        echoed
    });
    let mut client = capacitor_pool::codec::SlabFramed::new(client, LengthDelimited::new(&slab));
    let lens = [0usize, 1, 100, 5_000, 20_000, 300_000, 7];
    let mut got = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        client.send(vec![i as u8; len]).await.unwrap();
        got.push(client.next().await.unwrap().unwrap());
    }
    for (i, (frame, &len)) in got.iter().zip(&lens).enumerate() {
        assert_eq!(frame.len(), len, "frame {i}");
        assert!(frame.iter().all(|&b| b == i as u8), "frame {i}");
    }
    assert!(got[5].is_pooled(), "300 KB in a slab chunk");
    SinkExt::<&[u8]>::close(&mut client).await.unwrap();
    assert_eq!(server.await.unwrap(), lens.len());
    assert_eq!(ECHO.stats().num_in_use, 0, "the server's buffers are back");
    drop((client, got));
    assert_eq!(slab.stats().num_in_use(), 0);
}

/// `SlabFramed` over a scripted socket: frames split at every boundary
/// on the way in, written whole on the way out.
#[tokio::test]
async fn slab_framed_reads_splits_and_writes_scripted_frames() {
    let slab = Slab::new();
    let mut wire = BytesMut::new();
    let mut encoder = capacitor_pool::codec::LengthDelimitedEncoder::new();
    for n in [0usize, 5, 100] {
        encoder.encode(vec![n as u8; n], &mut wire).unwrap();
    }
    for split in 1..wire.len() {
        let mock = tokio_test::io::Builder::new()
            .read(&wire[..split])
            .read(&wire[split..])
            .write(&wire[..])
            .build();
        let mut framed = capacitor_pool::codec::SlabFramed::new(mock, LengthDelimited::new(&slab));
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(framed.next().await.unwrap().unwrap());
        }
        for frame in frames {
            framed.feed(frame).await.unwrap();
        }
        SinkExt::<SlabBuf>::flush(&mut framed).await.unwrap();
        assert!(framed.next().await.is_none(), "split at {split}");
    }
    assert_eq!(slab.stats().num_in_use(), 0);
}

#[test]
fn framed_types_fed_by_statics_are_send() {
    fn check<T: Send + 'static>() {}
    type Static =
        capacitor_pool::worker::StaticWorkerPool<BytesMut, capacitor_pool::UseReset, statics::ECHO>;
    check::<capacitor_pool::codec::SlabFramed<TcpStream>>();
    check::<capacitor_pool::codec::SlabFramed<TcpStream, Static>>();
    check::<capacitor_pool::codec::SlabFramedRead<TcpStream, Static>>();
    check::<PooledFramed<tokio_util::codec::Framed<TcpStream, LengthDelimited>, Static>>();
    check::<capacitor_pool::codec::LengthDelimitedEncoder>();
}

#[tokio::test]
async fn slab_framed_ends_its_stream_on_a_bad_frame_and_can_still_reply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let slab = Slab::new();
    let (mut client, server) = tokio::io::duplex(1024);
    let codec = LengthDelimited::builder()
        .max_frame_length(64)
        .new_codec(&slab)
        .unwrap();
    let mut conn = capacitor_pool::codec::SlabFramed::new(server, codec);
    client.write_all(b"\xff\xff\xff\xffpayload").await.unwrap(); // claims 4 GiB
    let err = conn.next().await.unwrap().unwrap_err();
    let why = err.get_ref().unwrap().downcast_ref::<FrameError>();
    assert!(matches!(why, Some(FrameError::TooLong { max: 64, .. })));
    assert!(
        conn.next().await.is_none(),
        "the stream ends after its error"
    );
    conn.send("ERR too long").await.unwrap(); // the sink still works
    drop(conn);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"\0\0\0\x0cERR too long");
}
