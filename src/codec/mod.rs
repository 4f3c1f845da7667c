//! `tokio_util::codec` integration (feature `codec`): frames in slab
//! chunks, pooled `Framed` buffers, and backpressure on slab capacity.
//!
//! See [`LengthDelimited`] for the native decoder, [`SlabDecoder`] to wrap
//! any other decoder, [`PooledFramed`] for pooled connection buffers and
//! [`Backpressure`] for the stream wrapper that waits for slab capacity.
//!
//! # Why
//!
//! `tokio_util`'s `LengthDelimitedCodec` hands out each frame as a
//! `split_to` view of the connection's read buffer. A frame kept by another
//! task keeps the whole buffer alive (one 100-byte frame pins 8 KiB or
//! more), the read buffer must then be reallocated, and a frame longer than
//! the buffer grows it. Here each frame is copied once, as it arrives, into
//! a slab chunk of its own size class: a kept frame pins only its chunk,
//! the read buffer stays small and is reused, and in the steady state
//! nothing is allocated.
//!
//! # Layout
//!
//! One file per type, as in `tokio_util::codec`: [`LengthDelimited`] and its
//! decoding (`length_delimited.rs`), [`LengthDelimitedBuilder`]
//! (`builder.rs`), [`LengthDelimitedEncoder`] and the `Encoder` impls
//! (`encoder.rs`), [`SlabDecoder`], [`SlabFramedRead`], [`SlabFramed`],
//! [`PooledFramed`] with the traits it takes, [`FramedPool`] and
//! [`Backpressure`].

mod backpressure;
mod builder;
mod encoder;
mod error;
mod framed_pool;
mod framed_read;
mod length_delimited;
mod pooled_framed;
mod slab_decoder;
mod slab_framed;

pub use self::backpressure::Backpressure;
pub use self::builder::{DEFAULT_MAX_FRAME_LENGTH, LengthDelimitedBuilder};
pub use self::encoder::LengthDelimitedEncoder;
pub use self::error::{BuildError, FrameError, MAX_HEADER_LENGTH};
pub use self::framed_pool::FramedPool;
pub use self::framed_read::{DIRECT_READ_MIN, SlabFramedRead};
pub use self::length_delimited::LengthDelimited;
pub use self::pooled_framed::{FramedBuffers, FramedGuard, Guard, PooledFramed};
pub use self::slab_decoder::SlabDecoder;
pub use self::slab_framed::SlabFramed;

/// [`SlabFramedRead`]'s read buffer size (`FramedRead`'s too).
const READ_BUF_CAPACITY: usize = 8 * 1024;
/// The write buffer length past which a sink flushes before it takes
/// another frame (`FramedWrite`'s default).
const BACKPRESSURE_BOUNDARY: usize = 8 * 1024;
