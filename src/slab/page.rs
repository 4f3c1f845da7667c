//! Pages, the zeroed allocations chunks are carved from, and [`Chunk`]s,
//! the disjoint ranges of a page that each keep it alive.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

use super::PAGE_ALIGN;
use super::class::Class;

/// A zeroed allocation chunks are carved from; freed when its last chunk
/// is dropped.
pub(super) struct Page {
    mem: NonNull<u8>,
    layout: Layout,
    class: Arc<Class>,
}

// SAFETY: a page is a plain allocation; which chunk of it a thread may
// touch is decided by the `Chunk`s, each owned by one holder at a time.
unsafe impl Send for Page {}
// SAFETY: as above; `&Page` gives access to nothing but its fields.
unsafe impl Sync for Page {}

impl Page {
    /// A zeroed page of the class's page size, counted in its stats;
    /// `None` if the allocator has no memory for it.
    pub(super) fn new(class: &Arc<Class>) -> Option<Arc<Page>> {
        let layout = Layout::from_size_align(class.page_size, PAGE_ALIGN).ok()?;
        // SAFETY: the layout's size is at least 64 (the smallest chunk).
        let mem = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        class.page_allocated();
        Some(Arc::new(Page {
            mem,
            layout,
            class: Arc::clone(class),
        }))
    }

    /// The chunk of `len` bytes at `offset` in the page. The carver hands
    /// out each offset once, so chunks are disjoint.
    ///
    /// # Panics
    /// If the chunk does not lie inside the page.
    pub(super) fn chunk(this: &Arc<Page>, offset: usize, len: usize) -> Chunk {
        assert!(offset + len <= this.layout.size(), "chunk out of its page");
        // SAFETY: `offset` is inside the page's allocation (checked above).
        let ptr = unsafe { this.mem.add(offset) };
        Chunk {
            ptr,
            _page: Arc::clone(this),
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: `mem` was allocated in `Page::new` with `layout`, and
        // every chunk carved from it is gone (each held an `Arc` to this
        // page).
        unsafe { alloc::dealloc(self.mem.as_ptr(), self.layout) };
        self.class.page_released();
    }
}

/// One chunk of a page: `chunk_size` bytes at `ptr`, owned by whoever
/// holds this value.
pub(super) struct Chunk {
    ptr: NonNull<u8>,
    _page: Arc<Page>,
}

// SAFETY: the bytes at `ptr` belong to this chunk alone (chunks are
// disjoint ranges of their page), and the page outlives the chunk.
unsafe impl Send for Chunk {}
// SAFETY: as above.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// The chunk's bytes.
    #[inline]
    pub(super) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}
