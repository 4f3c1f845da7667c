//! Decoding length-delimited frames from memory: the slab decoder
//! (`LengthDelimited`, frames in slab chunks) and the adapter
//! (`SlabDecoder<LengthDelimitedCodec>`) beside plain `tokio_util`
//! `LengthDelimitedCodec` (frames split off the read buffer).
//!
//! Groups, each timed in frames/s (`Throughput::Elements`):
//!
//! - `codec_small_dropped`: 1,000 frames of 100 B, each dropped at once.
//! - `codec_small_kept_1000`: 1,000 frames of 100 B per iteration, kept by
//!   a consumer in a ring of the last 1,000 (push the new one, drop the
//!   oldest); the ring stays full from one iteration to the next.
//! - `codec_20k_dropped`: 100 frames of 20 KiB, each dropped at once.
//! - `codec_20k_stream`: the same frames through the real stream types,
//!   `SlabFramedRead` (`slab_framed_read`) against
//!   `FramedRead<_, LengthDelimitedCodec>` (`framed_read_codec`), over an
//!   in-memory reader that returns at most 8 KiB a read; polled with a
//!   no-op waker (the reader is always ready). This is the path of
//!   `LengthDelimited::poll_read_payload`: a `ReadBuf` over the chunk's
//!   uninitialized room, and the per-frame count of initialized bytes.
//!
//! Contestants: `length_delimited_codec` (plain `tokio_util`, the base),
//! `slab_length_delimited` (this crate's native decoder, read as
//! `FramedRead` reads), `slab_decoder_adapter` (`SlabDecoder` around
//! `LengthDelimitedCodec`) and `slab_direct_read` (the native decoder read
//! as `SlabFramedRead` reads: while a frame still misses 4 KiB or more, the
//! simulated read goes straight into its chunk).
//!
//! There is no I/O: a wire buffer of encoded frames is fed into a long-lived
//! read buffer the way `FramedRead` reads a socket (start at 8 KiB,
//! `reserve(1)` before each read, read into the spare capacity), except that
//! a read returns at most 8 KiB, as a socket with a full receive queue
//! would. Then `decode` runs until it returns `None`. The loop is the same
//! for every contestant; only the codec differs.
//!
//! Before the groups run, `main` prints allocations per frame (allocations
//! and reallocations on the bench thread, counted by the counting allocator
//! over 20 passes after 5 warm-up passes) and the peak heap bytes while
//! 10,000 consecutive 100 B frames are decoded and kept (fresh slab, fresh
//! read buffer; the `Vec` that keeps them is allocated beforehand and not
//! counted), and the same for 10,000 frames kept out of 100,000 (every 10th).
//!
//! ```text
//! cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3
//! python3 scripts/bench_ratios.py codec_ --base length_delimited_codec --also ''
//! ```

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::collections::VecDeque;
use std::fmt::Debug;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use capacitor_pool::Slab;
use capacitor_pool::codec::{DIRECT_READ_MIN, LengthDelimited, SlabDecoder, SlabFramedRead};
use criterion::{Criterion, Throughput};
use tokio_util::codec::{Decoder, Encoder, FramedRead, LengthDelimitedCodec};

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// `FramedRead`'s initial read buffer capacity.
const READ_BUF: usize = 8 * 1024;
/// The most one simulated socket read returns.
const MAX_READ: usize = 8 * 1024;
/// Frames a consumer keeps in `codec_small_kept_1000`.
const KEEP: usize = 1000;
/// Passes run before allocations are counted.
const WARM_PASSES: usize = 5;
/// Passes over which allocations are counted.
const COUNT_PASSES: usize = 20;

/// One benchmark case: a wire buffer of `frames` frames of `size` bytes.
struct Case {
    group: &'static str,
    label: &'static str,
    frames: usize,
    size: usize,
    keep: bool,
}

const CASES: [Case; 3] = [
    Case {
        group: "codec_small_dropped",
        label: "(a) 100 B dropped",
        frames: 1000,
        size: 100,
        keep: false,
    },
    Case {
        group: "codec_small_kept_1000",
        label: "(b) 100 B kept 1000",
        frames: 1000,
        size: 100,
        keep: true,
    },
    Case {
        group: "codec_20k_dropped",
        label: "(c) 20 KiB dropped",
        frames: 100,
        size: 20 * 1024,
        keep: false,
    },
];

/// `frames` length-delimited frames of `size` bytes, each with different
/// contents, encoded by `tokio_util`.
fn wire(frames: usize, size: usize) -> Bytes {
    let mut codec = LengthDelimitedCodec::new();
    let mut out = BytesMut::new();
    for i in 0..frames {
        let payload: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
        codec
            .encode(Bytes::from(payload), &mut out)
            .expect("frame under the maximum");
    }
    out.freeze()
}

/// Feeds `wire` through `buf` into `codec` as `FramedRead` would, handing
/// every frame to `on_frame`; returns the number of frames.
#[inline(always)]
fn drive<D>(codec: &mut D, buf: &mut BytesMut, wire: &[u8], on_frame: impl FnMut(D::Item)) -> usize
where
    D: Decoder,
    D::Error: Debug,
{
    drive_with(codec, buf, wire, on_frame, no_direct_read)
}

/// As [`drive`], but each read first goes to `direct`, which may read (up
/// to `MAX_READ` bytes of) the given rest of the wire into the frame in
/// progress and returns how many bytes it took; 0 sends the read to `buf`.
#[inline(always)]
fn drive_with<D>(
    codec: &mut D,
    buf: &mut BytesMut,
    wire: &[u8],
    mut on_frame: impl FnMut(D::Item),
    mut direct: impl FnMut(&mut D, &[u8]) -> usize,
) -> usize
where
    D: Decoder,
    D::Error: Debug,
{
    let mut at = 0;
    let mut frames = 0;
    loop {
        while let Some(frame) = codec.decode(buf).expect("valid wire") {
            on_frame(frame);
            frames += 1;
        }
        if at == wire.len() {
            assert!(buf.is_empty(), "bytes left over after the last frame");
            return frames;
        }
        let taken = direct(codec, &wire[at..]);
        if taken > 0 {
            at += taken;
            continue;
        }
        // As `FramedRead`: room for at least one byte, then read into the
        // spare capacity.
        buf.reserve(1);
        let n = (buf.capacity() - buf.len())
            .min(MAX_READ)
            .min(wire.len() - at);
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
    }
}

/// The read of `slab_direct_read`, as `SlabFramedRead` does it: while a
/// frame still misses `DIRECT_READ_MIN` bytes or more, a read goes straight
/// into its chunk (`payload_room`); 0 sends it to the read buffer.
#[inline(always)]
fn read_into_chunk(codec: &mut LengthDelimited, rest: &[u8]) -> usize {
    let Some(room) = codec.payload_room(DIRECT_READ_MIN) else {
        return 0;
    };
    let n = room.len().min(MAX_READ).min(rest.len());
    room[..n].copy_from_slice(&rest[..n]);
    // SAFETY: the `n` bytes were written just above.
    unsafe { codec.payload_advance(n) };
    n
}

/// The read of every other contestant: always into the read buffer.
#[inline(always)]
fn no_direct_read<D>(_: &mut D, _: &[u8]) -> usize {
    0
}

/// One contestant: a codec and the read buffer of its "connection", both
/// long-lived, and the ring its consumer keeps frames in.
trait Contestant {
    fn name(&self) -> &'static str;
    /// Decodes all of `wire`, dropping each frame or keeping it in the ring.
    fn pass(&mut self, wire: &[u8], keep: bool) -> usize;
    /// Heap fallbacks of its slab, if it has one.
    fn heap_count(&self) -> u64;
}

/// A decoder fed as `FramedRead` feeds it, each read offered to `direct`
/// first (see [`drive_with`]).
struct Runner<D: Decoder, F> {
    name: &'static str,
    codec: D,
    buf: BytesMut,
    kept: VecDeque<D::Item>,
    slab: Option<Slab>,
    direct: F,
}

impl<D: Decoder, F> Runner<D, F> {
    fn new(name: &'static str, codec: D, slab: Option<Slab>, direct: F) -> Self {
        Runner {
            name,
            codec,
            buf: BytesMut::with_capacity(READ_BUF),
            kept: VecDeque::with_capacity(KEEP),
            slab,
            direct,
        }
    }
}

impl<D, F> Contestant for Runner<D, F>
where
    D: Decoder,
    D::Error: Debug,
    D::Item: AsRef<[u8]>,
    F: FnMut(&mut D, &[u8]) -> usize,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn pass(&mut self, wire: &[u8], keep: bool) -> usize {
        let kept = &mut self.kept;
        let on_frame = |frame: D::Item| {
            black_box(frame.as_ref().first());
            if keep {
                if kept.len() == KEEP {
                    kept.pop_front();
                }
                kept.push_back(frame);
            }
        };
        drive_with(
            &mut self.codec,
            &mut self.buf,
            wire,
            on_frame,
            &mut self.direct,
        )
    }

    fn heap_count(&self) -> u64 {
        self.slab.as_ref().map_or(0, |s| s.stats().heap_count())
    }
}

/// The contestants, each with its own slab (the default one: 256
/// pages of 64 KiB per class, far more than any case needs).
fn contestants() -> Vec<Box<dyn Contestant>> {
    let native = Slab::new();
    let adapter = Slab::new();
    let direct = Slab::new();
    vec![
        Box::new(Runner::new(
            "length_delimited_codec",
            LengthDelimitedCodec::new(),
            None,
            no_direct_read,
        )),
        Box::new(Runner::new(
            "slab_length_delimited",
            LengthDelimited::new(&native),
            Some(native),
            no_direct_read,
        )),
        Box::new(Runner::new(
            "slab_decoder_adapter",
            SlabDecoder::new(LengthDelimitedCodec::new(), &adapter),
            Some(adapter),
            no_direct_read,
        )),
        Box::new(Runner::new(
            "slab_direct_read",
            LengthDelimited::new(&direct),
            Some(direct),
            read_into_chunk,
        )),
    ]
}

/// Allocations per frame, steady state, on this thread.
fn allocs_per_frame(c: &mut dyn Contestant, wire: &[u8], keep: bool) -> f64 {
    for _ in 0..WARM_PASSES {
        c.pass(wire, keep);
    }
    let before = counting_alloc::thread_allocs();
    let mut frames = 0;
    for _ in 0..COUNT_PASSES {
        frames += c.pass(wire, keep);
    }
    (counting_alloc::thread_allocs() - before) as f64 / frames as f64
}

/// Peak and retained heap bytes while `wire` (of `frames` frames) is
/// decoded by a fresh codec (and slab) into a fresh read buffer, keeping
/// every `every`-th frame; and the slab's heap fallbacks.
fn peak_heap<D, F>(make: F, wire: &[u8], frames: usize, every: usize) -> (usize, usize, u64)
where
    D: Decoder,
    D::Error: Debug,
    F: FnOnce(&Slab) -> D,
{
    let slab = Slab::new();
    let mut codec = make(&slab);
    let mut kept: Vec<D::Item> = Vec::with_capacity(frames.div_ceil(every));
    let base = counting_alloc::live_bytes();
    counting_alloc::reset_peak();
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut i = 0;
    drive(&mut codec, &mut buf, wire, |frame| {
        if i % every == 0 {
            kept.push(frame);
        }
        i += 1;
    });
    let peak = counting_alloc::peak_bytes() - base;
    let retained = counting_alloc::live_bytes() - base;
    black_box(&kept);
    drop((kept, buf, codec));
    (peak, retained, slab.stats().heap_count())
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn print_peaks(title: &str, frames: usize, every: usize) {
    let wire = &wire(frames, 100);
    let rows = [
        (
            "length_delimited_codec",
            peak_heap(|_| LengthDelimitedCodec::new(), wire, frames, every),
        ),
        (
            "slab_length_delimited",
            peak_heap(LengthDelimited::new, wire, frames, every),
        ),
        (
            "slab_decoder_adapter",
            peak_heap(
                |slab| SlabDecoder::new(LengthDelimitedCodec::new(), slab),
                wire,
                frames,
                every,
            ),
        ),
    ];
    let plain = rows[0].1.0 as f64;
    println!("{title}");
    println!(
        "  {:<24} {:>12} {:>12} {:>10} {:>6}",
        "contestant", "peak", "retained", "vs plain", "heap"
    );
    for (name, (peak, retained, heap)) in rows {
        println!(
            "  {name:<24} {:>12} {:>12} {:>9.3}x {heap:>6}",
            kib(peak),
            kib(retained),
            peak as f64 / plain
        );
    }
}

/// An in-memory socket: `wire` at most `MAX_READ` bytes a read.
struct MemReader {
    wire: Bytes,
    at: usize,
}

impl tokio::io::AsyncRead for MemReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.wire.len() - self.at)
            .min(MAX_READ)
            .min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.wire[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

/// Polls `frames` to its end (the reader is always ready); returns the
/// number of frames.
fn drain_stream<S, T>(frames: S) -> usize
where
    S: futures_core::Stream<Item = std::io::Result<T>>,
    T: AsRef<[u8]>,
{
    let mut frames = pin!(frames);
    let mut cx = Context::from_waker(Waker::noop());
    let mut n = 0;
    loop {
        match frames.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(frame)) => {
                black_box(frame.expect("valid wire").as_ref().first());
                n += 1;
            }
            Poll::Ready(None) => return n,
            Poll::Pending => unreachable!("the reader is always ready"),
        }
    }
}

fn bench_streams(crit: &mut Criterion, wire: &Bytes, frames: usize) {
    let slab = Slab::new();
    let reader = || MemReader {
        wire: wire.clone(),
        at: 0,
    };
    let mut group = crit.benchmark_group("codec_20k_stream");
    group.throughput(Throughput::Elements(frames as u64));
    group.bench_function("framed_read_codec", |b| {
        b.iter(|| drain_stream(FramedRead::new(reader(), LengthDelimitedCodec::new())))
    });
    group.bench_function("slab_framed_read", |b| {
        b.iter(|| drain_stream(SlabFramedRead::new(reader(), LengthDelimited::new(&slab))))
    });
    group.finish();
    assert_eq!(slab.stats().heap_count(), 0, "slab fell back to heap");
}

fn main() {
    let wires: Vec<Bytes> = CASES.iter().map(|c| wire(c.frames, c.size)).collect();

    println!(
        "allocations per frame ({COUNT_PASSES} passes after {WARM_PASSES} warm-up passes, bench thread)"
    );
    print!("  {:<22}", "case");
    let names: Vec<&str> = contestants().iter().map(|c| c.name()).collect();
    for name in &names {
        print!(" {name:>24}");
    }
    println!();
    for (case, wire) in CASES.iter().zip(&wires) {
        print!("  {:<22}", case.label);
        for mut c in contestants() {
            let per_frame = allocs_per_frame(&mut *c, wire, case.keep);
            assert_eq!(c.heap_count(), 0, "{}: slab fell back to heap", c.name());
            print!(" {per_frame:>24.4}");
        }
        println!();
    }
    println!();
    print_peaks(
        "heap while 10,000 consecutive 100 B frames are decoded and kept",
        10_000,
        1,
    );
    print_peaks(
        "heap while 100,000 100 B frames are decoded and every 10th is kept (10,000 kept)",
        100_000,
        10,
    );
    println!();

    // Timed from here on: the allocator keeps only its per-thread count, so
    // contestants that allocate pay the system allocator's cost, not the
    // shared counters' atomics.
    counting_alloc::set_shared_counting(false);

    // Nine benchmarks in well under two minutes: fewer samples than the
    // default, and no plots (on a busy 2-CPU machine they took longer than
    // the measurements); bench_ratios.py reads the estimates.
    let mut crit = Criterion::default()
        .sample_size(50)
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (case, wire) in CASES.iter().zip(&wires) {
        let mut group = crit.benchmark_group(case.group);
        group.throughput(Throughput::Elements(case.frames as u64));
        for mut c in contestants() {
            group.bench_function(c.name(), |b| b.iter(|| c.pass(wire, case.keep)));
            assert_eq!(c.heap_count(), 0, "{}: slab fell back to heap", c.name());
        }
        group.finish();
    }
    bench_streams(&mut crit, &wires[2], CASES[2].frames);
    crit.final_summary();
}
