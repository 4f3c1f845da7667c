//! Reusable heap storage for boxed futures, served by a [`RingPool`].
//!
//! ```
//! use capacitor_pool::{FutureSlot, RingPool};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Four slots: at most four requests in flight, no allocation per request
//! // once each slot has held a future as big as the biggest handler's.
//! let slots = RingPool::new(4, FutureSlot::<u64>::new).unwrap();
//! for request in 0..100u64 {
//!     let mut slot = slots.get().await.unwrap();
//!     slot.set(async move { request * 2 }); // in place of Box::pin(...)
//!     assert_eq!((&mut *slot).await, request * 2);
//! } // the slot goes back to the ring, its allocation kept
//! # }
//! ```
//!
//! [`RingPool`]: crate::RingPool

use std::alloc::{self, Layout};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};

use crate::reset::Reset;

/// The least alignment of a slot's allocation.
const MIN_ALIGN: usize = 16;

/// A reusable heap allocation that holds one `dyn Future<Output = O> + Send`
/// at a time, polled in place.
///
/// A request dispatcher that does `Box::pin(handler(request))` pays one
/// allocation (and one free) per request, as `tower`'s boxed services do.
/// `FutureSlot` keeps its allocation: [`set`](FutureSlot::set) drops the
/// previous future and writes the next one into the same memory when it
/// fits (size and alignment), and grows the allocation only when it does
/// not. Taken from a [`RingPool`](crate::RingPool) (it implements
/// [`Reset`]: the reset drops the future, the allocation stays), slots also
/// bound the number of requests in flight.
///
/// Prior art: `tokio_util::sync::ReusableBoxFuture` reuses the box only for
/// a future of the exact same layout; the `recycle-box` crate reuses it when
/// the next one fits, as here.
///
/// `FutureSlot` implements [`Future`] (it is `Unpin`): await `&mut slot`.
/// Once the future completes it is dropped at once, in place.
///
/// # Panics
///
/// Polling an empty slot (never set, completed, or cleared) panics, as
/// polling a completed `async` block does.
///
/// # Examples
///
/// ```
/// use capacitor_pool::FutureSlot;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut slot = FutureSlot::new();
/// slot.set(async { 1 + 1 });
/// assert_eq!((&mut slot).await, 2);
/// let grown = slot.grow_count();
/// slot.set(async { 40 + 2 }); // same size: the allocation is reused
/// assert_eq!((&mut slot).await, 42);
/// assert_eq!(slot.grow_count(), grown);
/// # }
/// ```
///
/// Handlers in spawned tasks, holding a [`worker_pool!`](crate::worker_pool)
/// guard across `.await`, with an output that names `dyn Error`:
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use capacitor_pool::{FutureSlot, RingPool, worker_pool};
/// use std::sync::Arc;
///
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
///
/// worker_pool! {
///     static BUFFERS: WorkerPool<BytesMut> = WorkerPool::builder(|| BytesMut::with_capacity(64));
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let slots = Arc::new(RingPool::new(4, FutureSlot::<Result<usize, BoxError>>::new).unwrap());
/// let task = tokio::spawn(async move {
///     let mut slot = slots.get().await?;
///     slot.set(async move {
///         let mut buf = BUFFERS.get();
///         buf.put_slice(b"reply");
///         tokio::task::yield_now().await;
///         Ok(buf.len())
///     });
///     (&mut *slot).await
/// });
/// assert_eq!(task.await.unwrap().unwrap(), 5);
/// # }
/// ```
pub struct FutureSlot<O> {
    /// The allocation (dangling while `layout.size() == 0`).
    buf: NonNull<u8>,
    layout: Layout,
    /// The live future, inside `buf`; `None` when empty.
    fut: Option<NonNull<dyn Future<Output = O> + Send>>,
    grows: u64,
}

// SAFETY: the slot owns its future, which is `Send`, and its allocation.
unsafe impl<O> Send for FutureSlot<O> {}
// SAFETY: no `&self` method touches the future (polling takes `&mut self`),
// so sharing `&FutureSlot` between threads shares nothing unsynchronised.
unsafe impl<O> Sync for FutureSlot<O> {}

impl<O> FutureSlot<O> {
    /// An empty slot; allocates nothing until the first
    /// [`set`](FutureSlot::set).
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// let slot = FutureSlot::<u32>::new();
    /// assert!(!slot.is_set());
    /// assert_eq!((slot.capacity(), slot.grow_count()), (0, 0)); // no allocation yet
    /// ```
    pub fn new() -> Self {
        Self {
            buf: NonNull::dangling(),
            layout: Layout::new::<()>(),
            fut: None,
            grows: 0,
        }
    }

    /// An empty slot with room for futures of up to `size` bytes aligned to
    /// at most 16.
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// let mut slot = FutureSlot::with_capacity(256);
    /// assert_eq!(slot.capacity(), 256);
    /// let made = slot.grow_count();
    /// slot.set(async { 7 });
    /// assert_eq!(slot.grow_count(), made); // fits: no new allocation
    /// ```
    pub fn with_capacity(size: usize) -> Self {
        let mut slot = Self::new();
        if let Ok(layout) = Layout::from_size_align(size, MIN_ALIGN) {
            slot.reserve(layout);
        }
        slot
    }

    /// Drops the current future (if any) and puts `future` in its place,
    /// reusing the allocation if `future` fits, else growing it.
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut slot = FutureSlot::new();
    /// slot.set(async { 1 });
    /// assert_eq!((&mut slot).await, 1);
    /// let big = [1u8; 1024];
    /// slot.set(async move { big.len() }); // too big for the allocation: grown
    /// assert!(slot.capacity() >= 1024);
    /// assert_eq!((&mut slot).await, 1024);
    /// # }
    /// ```
    #[inline]
    pub fn set<F>(&mut self, future: F)
    where
        F: Future<Output = O> + Send + 'static,
    {
        self.clear();
        let layout = Layout::new::<F>();
        if layout.size() > self.layout.size() || layout.align() > self.layout.align() {
            self.grow(layout);
        }
        let typed: *mut F = self.buf.as_ptr().cast();
        // SAFETY: `buf` is valid for writes of `F`: at least `F`'s size (or
        // `F` is zero-sized and `buf` is a dangling pointer aligned for it,
        // which `reserve` guarantees) and aligned to at least `F`'s
        // alignment; it holds no live value (`clear` above).
        unsafe { ptr::write(typed, future) };
        let erased: *mut (dyn Future<Output = O> + Send) = typed;
        self.fut = NonNull::new(erased);
    }

    /// Grows the allocation to hold `layout` (the slot is empty). Out of
    /// line and not generic: `set`'s inlined fast path stays a compare and
    /// a write, which lets the compiler build the future in place.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, layout: Layout) {
        // Grow to a multiple of 64 bytes aligned to at least 16, so that
        // futures of slightly different sizes and the usual alignments fit
        // the same allocation.
        let size = layout.size().max(self.layout.size());
        let align = layout.align().max(self.layout.align());
        // Rounded up while that stays a valid layout (under `isize::MAX`);
        // else the larger of both exactly; else the future's own layout,
        // which is valid since the future exists.
        let grown = Layout::from_size_align(size.next_multiple_of(64), align.max(MIN_ALIGN))
            .or_else(|_| Layout::from_size_align(size, align))
            .unwrap_or(layout);
        self.reserve(grown);
    }

    /// Drops the current future, if any; keeps the allocation.
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// let mut slot = FutureSlot::new();
    /// slot.set(async { 1 });
    /// let capacity = slot.capacity();
    /// slot.clear(); // the future is dropped unpolled
    /// assert!(!slot.is_set());
    /// assert_eq!(slot.capacity(), capacity);
    /// ```
    #[inline]
    pub fn clear(&mut self) {
        if let Some(fut) = self.fut.take() {
            // SAFETY: `fut` points to the live future written by `set`,
            // never moved since; `take` above means it is dropped once,
            // even if its destructor panics.
            unsafe { ptr::drop_in_place(fut.as_ptr()) };
        }
    }

    /// Whether a future is in the slot.
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut slot = FutureSlot::new();
    /// slot.set(async { "done" });
    /// assert!(slot.is_set());
    /// assert_eq!((&mut slot).await, "done");
    /// assert!(!slot.is_set()); // dropped once complete
    /// # }
    /// ```
    pub fn is_set(&self) -> bool {
        self.fut.is_some()
    }

    /// Bytes of future the slot holds without growing.
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// let mut slot = FutureSlot::new();
    /// assert_eq!(slot.capacity(), 0);
    /// slot.set(async { 1 });
    /// assert_eq!(slot.capacity(), 64); // rounded up to a multiple of 64 bytes
    /// ```
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// How many times the allocation was made or grown.
    ///
    /// ```
    /// use capacitor_pool::FutureSlot;
    ///
    /// let mut slot = FutureSlot::new();
    /// slot.set(async { 1 });
    /// slot.set(async { 2 }); // same size: reused
    /// assert_eq!(slot.grow_count(), 1);
    /// let big = [0u8; 1024];
    /// slot.set(async move { big[0] });
    /// assert_eq!(slot.grow_count(), 2);
    /// ```
    pub fn grow_count(&self) -> u64 {
        self.grows
    }

    /// Replaces the (empty) allocation with one of `layout`.
    fn reserve(&mut self, layout: Layout) {
        debug_assert!(self.fut.is_none());
        self.free();
        self.buf = if layout.size() == 0 {
            // Dangling but aligned for `layout`, as zero-sized values need.
            NonNull::new(ptr::without_provenance_mut(layout.align())).unwrap_or(NonNull::dangling())
        } else {
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { alloc::alloc(layout) };
            match NonNull::new(p) {
                Some(p) => p,
                None => alloc::handle_alloc_error(layout),
            }
        };
        self.layout = layout;
        if layout.size() != 0 {
            self.grows += 1;
        }
    }

    /// Frees the allocation (the slot must be empty).
    fn free(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: `buf` was allocated with `layout` by `reserve` and
            // holds no live value.
            unsafe { alloc::dealloc(self.buf.as_ptr(), self.layout) };
        }
        self.buf = NonNull::dangling();
        self.layout = Layout::new::<()>();
    }
}

impl<O> Default for FutureSlot<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O> Future for FutureSlot<O> {
    type Output = O;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.get_mut();
        let fut = this.fut.expect("`FutureSlot` polled while empty");
        // SAFETY: the future lives in `buf`, which neither moves nor is freed
        // while the future is in it (only `set`/`clear`/drop, after dropping
        // the future, touch the allocation), so it stays pinned; `&mut self`
        // makes this the only access.
        let pinned = unsafe { Pin::new_unchecked(&mut *fut.as_ptr()) };
        let out = pinned.poll(cx);
        if out.is_ready() {
            this.clear();
        }
        out
    }
}

impl<O> Reset for FutureSlot<O> {
    /// Drops the future (a handler cancelled before completion); keeps the
    /// allocation.
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<O> Drop for FutureSlot<O> {
    fn drop(&mut self) {
        /// Frees the allocation even if the future's destructor panics.
        struct FreeOnExit<'a, O>(&'a mut FutureSlot<O>);
        impl<O> Drop for FreeOnExit<'_, O> {
            fn drop(&mut self) {
                self.0.free();
            }
        }
        let slot = FreeOnExit(self);
        slot.0.clear();
    }
}

impl<O> fmt::Debug for FutureSlot<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutureSlot")
            .field("capacity", &self.capacity())
            .field("is_set", &self.is_set())
            .field("grow_count", &self.grows)
            .finish()
    }
}
