//! [`SlabBuf`], a byte buffer in a slab chunk or on the heap, and
//! [`CapacityError`].

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes};

use super::class::LentChunk;

/// Where a [`SlabBuf`]'s bytes come from.
enum Origin {
    /// A chunk of a class, given back when the `SlabBuf` drops.
    Chunk(LentChunk),
    /// A `Box<[u8]>` of `cap` bytes (a heap fallback).
    Heap,
}

/// A byte buffer in a slab chunk (or, from the fallback methods, on the
/// heap), returned to its slab when dropped, on any thread.
///
/// It derefs to the bytes written so far and can be written up to its
/// [`capacity`](SlabBuf::capacity) (its class size) through [`BufMut`],
/// [`io::Write`] or [`extend_from_slice`](SlabBuf::extend_from_slice).
/// Bytes past the written length are never readable, so a chunk's previous
/// contents cannot leak into its next user.
///
/// ```
/// use capacitor_pool::Slab;
/// use std::io::Write;
///
/// let slab = Slab::new();
/// let mut buf = slab.alloc(64).unwrap();
/// write!(buf, "{}-{}", 4, 2).unwrap();
/// assert_eq!(&buf[..], b"4-2");
/// buf[0] = b'5';
/// assert_eq!(&buf[..], b"5-2");
/// ```
pub struct SlabBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    origin: Origin,
}

// SAFETY: a `SlabBuf` owns its bytes (a chunk no one else uses, or a heap
// box); its return path (`LentChunk::drop`) works from any thread.
unsafe impl Send for SlabBuf {}
// SAFETY: `&SlabBuf` only reads the bytes.
unsafe impl Sync for SlabBuf {}

// A panic never leaves a chunk half-returned (the return path runs no user
// code), so buffers may cross `catch_unwind`.
impl std::panic::UnwindSafe for SlabBuf {}
impl std::panic::RefUnwindSafe for SlabBuf {}

/// The error of [`SlabBuf::try_extend_from_slice`]: the bytes do not fit.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::CapacityError;
///
/// let slab = Slab::new();
/// let mut buf = slab.alloc(64).unwrap();
/// let err = buf.try_extend_from_slice(&[0; 100]).unwrap_err();
/// assert_eq!(err, CapacityError { requested: 100, remaining: 64 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes of room left.
    pub remaining: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes do not fit in the {} bytes left in the slab buffer",
            self.requested, self.remaining
        )
    }
}

impl std::error::Error for CapacityError {}

impl SlabBuf {
    /// An empty buffer over a lent chunk, as long as its class's chunks.
    #[inline]
    pub(super) fn lent(chunk: LentChunk) -> SlabBuf {
        SlabBuf {
            ptr: chunk.ptr(),
            len: 0,
            cap: chunk.class().chunk_size,
            origin: Origin::Chunk(chunk),
        }
    }

    /// An empty heap buffer of `len` bytes (a fallback).
    pub(super) fn heap(len: usize) -> SlabBuf {
        let boxed: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let cap = boxed.len();
        let ptr = NonNull::new(Box::into_raw(boxed).cast::<u8>()).expect("boxes are not null");
        SlabBuf {
            ptr,
            len: 0,
            cap,
            origin: Origin::Heap,
        }
    }

    /// The number of bytes written.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.extend_from_slice(b"abc");
    /// assert_eq!(buf.len(), 3);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte was written.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// assert!(buf.is_empty());
    /// buf.extend_from_slice(b"a");
    /// assert!(!buf.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most bytes the buffer can hold (its class size).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let buf = Slab::new().alloc(1000).unwrap();
    /// assert_eq!(buf.capacity(), 1024); // the class of 1000 bytes
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes of room left.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.extend_from_slice(&[7; 10]);
    /// assert_eq!(buf.spare_capacity(), 54);
    /// ```
    #[inline]
    pub fn spare_capacity(&self) -> usize {
        self.cap - self.len
    }

    /// Whether the bytes are in a slab chunk (`false` for a heap fallback).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// assert!(slab.alloc(100).unwrap().is_pooled());
    /// assert!(!slab.alloc_or_heap(1 << 20).is_pooled()); // over the largest class
    /// ```
    pub fn is_pooled(&self) -> bool {
        matches!(self.origin, Origin::Chunk { .. })
    }

    /// Forgets the written bytes (the capacity stays).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().copy_from_slice(b"hello");
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), 64);
    /// ```
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `len` written bytes (no effect if `len` is not less
    /// than [`len`](SlabBuf::len)).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().copy_from_slice(b"hello");
    /// buf.truncate(2);
    /// assert_eq!(&buf[..], b"he");
    /// buf.truncate(10); // no effect
    /// assert_eq!(&buf[..], b"he");
    /// ```
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends `data`.
    ///
    /// # Panics
    /// If `data` does not fit; see
    /// [`try_extend_from_slice`](SlabBuf::try_extend_from_slice).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.extend_from_slice(b"ab");
    /// buf.extend_from_slice(b"cd");
    /// assert_eq!(&buf[..], b"abcd");
    /// ```
    #[inline]
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if let Err(e) = self.try_extend_from_slice(data) {
            panic!("{e}");
        }
    }

    /// Appends `data`, or says how much room is left.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let mut buf = slab.alloc(64).unwrap();
    /// assert!(buf.try_extend_from_slice(&[1; 64]).is_ok());
    /// let err = buf.try_extend_from_slice(&[2]).unwrap_err();
    /// assert_eq!(err.remaining, 0);
    /// ```
    #[inline]
    pub fn try_extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityError> {
        if data.len() > self.spare_capacity() {
            return Err(CapacityError {
                requested: data.len(),
                remaining: self.spare_capacity(),
            });
        }
        // SAFETY: `len + data.len() <= cap`, the bytes are ours (see
        // `full_mut`), and `data` cannot overlap them (it is borrowed
        // shared while we hold `&mut self`).
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), data.len());
        }
        self.len += data.len();
        Ok(())
    }

    /// Resizes the written part to `new_len`, filling new bytes with
    /// `value`.
    ///
    /// # Panics
    /// If `new_len` is over the capacity.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.resize(4, b'x');
    /// assert_eq!(&buf[..], b"xxxx");
    /// buf.resize(2, 0);
    /// assert_eq!(&buf[..], b"xx");
    /// ```
    pub fn resize(&mut self, new_len: usize, value: u8) {
        assert!(
            new_len <= self.cap,
            "new length {new_len} is over the slab buffer's capacity of {}",
            self.cap
        );
        if new_len > self.len {
            let len = self.len;
            self.full_mut()[len..new_len].fill(value);
        }
        self.len = new_len;
    }

    /// All `cap` bytes, written or not.
    fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `cap` initialized bytes (pages are zeroed
        // when allocated, heap buffers are `vec![0; len]`) that only this
        // `SlabBuf` uses: a chunk is handed to one `SlabBuf` at a time (the
        // pool's slot protocol), and its page outlives it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// A [`Bytes`] over the written bytes, without a copy: the chunk goes
    /// back to its slab when the last clone of the `Bytes` drops.
    ///
    /// This makes one small allocation (the `Bytes`' shared header, from
    /// [`Bytes::from_owner`]); keep frames as `SlabBuf` where you can.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let bytes = slab.copy_from_slice(b"hello world").into_bytes();
    /// let world = bytes.slice(6..);
    /// drop(bytes);
    /// assert_eq!(&world[..], b"world");
    /// assert_eq!(slab.stats().num_in_use(), 1); // held by `world`
    /// ```
    pub fn into_bytes(self) -> Bytes {
        if self.is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }
}

impl From<SlabBuf> for Bytes {
    /// [`SlabBuf::into_bytes`]: no copy, the chunk goes back to its slab
    /// when the last clone of the `Bytes` drops.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let bytes = Bytes::from(slab.copy_from_slice(b"frame"));
    /// assert_eq!(&bytes[..], b"frame");
    /// assert_eq!(slab.stats().num_in_use(), 1); // the chunk, held by `bytes`
    /// drop(bytes);
    /// assert_eq!(slab.stats().num_in_use(), 0);
    /// ```
    fn from(buf: SlabBuf) -> Bytes {
        buf.into_bytes()
    }
}

impl Drop for SlabBuf {
    fn drop(&mut self) {
        match &self.origin {
            Origin::Chunk(chunk) => {
                if chunk.class().zero_on_return {
                    let len = self.len;
                    self.full_mut()[..len].fill(0);
                }
                // The chunk goes back to its class when `origin` drops,
                // right after this.
            }
            Origin::Heap => {
                let raw = ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.cap);
                // SAFETY: `ptr` and `cap` came from `Box::into_raw` of a
                // `Box<[u8]>` in `SlabBuf::heap`, freed only here.
                drop(unsafe { Box::from_raw(raw) });
            }
        }
    }
}

impl Deref for SlabBuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized and ours (see
        // `full_mut`); `&self` only allows reads.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for SlabBuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.full_mut()[..len]
    }
}

impl AsRef<[u8]> for SlabBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for SlabBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl std::borrow::Borrow<[u8]> for SlabBuf {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for SlabBuf {
    fn eq(&self, other: &SlabBuf) -> bool {
        **self == **other
    }
}

impl Eq for SlabBuf {}

impl PartialEq<[u8]> for SlabBuf {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl fmt::Debug for SlabBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabBuf")
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("pooled", &self.is_pooled())
            .finish()
    }
}

// SAFETY: `remaining_mut` is the room left; `chunk_mut` hands out exactly
// that room; `advance_mut` only moves `len` within `cap`.
unsafe impl BufMut for SlabBuf {
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.spare_capacity()
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(
            cnt <= self.spare_capacity(),
            "cannot advance past the slab buffer's capacity"
        );
        self.len += cnt;
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let len = self.len;
        UninitSlice::new(&mut self.full_mut()[len..])
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }
}

impl io::Write for SlabBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.spare_capacity());
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
