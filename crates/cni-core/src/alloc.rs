//! A bump allocator for one-shot plugin processes.
//!
//! A plugin runs for a millisecond, allocates a few hundred kilobytes and
//! exits. musl's allocator maps and unmaps memory for much of that (about 18
//! `mmap` and 15 `munmap` calls for an sbr ADD, 11% of its samples in a
//! profile), which costs back what musl's start-up saves. This arena hands
//! out memory from one zeroed static region (in .bss: pages cost only once
//! touched) and never gives it back, nor reuses it, so memory it hands out
//! zeroed is zero already; what does not fit goes to the system allocator.
//! `plugin_main!` installs it for the plugin binaries.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes the arena holds before it hands over to the system allocator.
pub const ARENA_BYTES: usize = 8 << 20;

pub struct Arena<const N: usize = ARENA_BYTES> {
    buf: UnsafeCell<[u8; N]>,
    /// Bytes of `buf` handed out so far.
    used: AtomicUsize,
}

// SAFETY: `buf` is only written through pointers handed out for disjoint
// ranges, claimed with an atomic compare-and-swap.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena {
            buf: UnsafeCell::new([0; N]),
            used: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.buf.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + N
    }

    /// Claims `layout` from the arena; null when it does not fit.
    fn bump(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + used).checked_next_multiple_of(layout.align()) else {
                return std::ptr::null_mut();
            };
            let end = start - base + layout.size();
            if end > N {
                return std::ptr::null_mut();
            }
            match self
                .used
                .compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // The pointer is derived from the buffer's, so it keeps its
                // provenance.
                Ok(_) => return self.buf.get().cast::<u8>().wrapping_add(start - base),
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `ptr` of `size` bytes when it is the newest allocation, so
    /// a growing vector reallocates in place.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.base() + self.used.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every pointer handed out is either a disjoint, suitably aligned
// range of the arena, never reused, or the system allocator's; `dealloc` and
// `realloc` tell the two apart by address.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.bump(layout);
        if p.is_null() {
            // SAFETY: the caller's layout, passed on.
            unsafe { System.alloc(layout) }
        } else {
            p
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.bump(layout);
        if p.is_null() {
            // SAFETY: the caller's layout, passed on.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            // Arena memory past `used` was never handed out: still the
            // zeroed .bss, untouched (a 64 KiB receive buffer costs no page
            // until the kernel writes into it).
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not the arena's, so the system allocator's, with the
            // layout it was made with.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.owns(ptr) {
            let old = layout.size();
            // The newest allocation grows in place. It never shrinks: what
            // lies past `used` must stay untouched zeros for alloc_zeroed.
            if new_size > old && self.is_last(ptr, old) {
                let start = ptr as usize - self.base();
                if start + new_size <= N
                    && self
                        .used
                        .compare_exchange(
                            start + old,
                            start + new_size,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    return ptr;
                }
            }
            if new_size <= old {
                return ptr;
            }
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: the allocator's own alloc with a non-zero layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for the smaller size and do not
            // overlap (the new one was just handed out).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block with its own layout.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn hands_out_aligned_disjoint_blocks_then_falls_back_to_the_system() {
        static A: Arena<4096> = Arena::new();
        let a = &A;
        // SAFETY: every block is used within its layout and given back
        // once, with the layout it was made with (or never, in the arena).
        unsafe {
            let p = a.alloc(layout(10, 1));
            let q = a.alloc(layout(64, 64));
            assert!(a.owns(p) && a.owns(q));
            assert_eq!(q as usize % 64, 0);
            assert!(q as usize >= p as usize + 10);
            // Too big for what is left: the system's, and freed there.
            let big = a.alloc(layout(8192, 8));
            assert!(!big.is_null() && !a.owns(big));
            big.write_bytes(7, 8192);
            a.dealloc(big, layout(8192, 8));
            a.dealloc(p, layout(10, 1));
            a.dealloc(q, layout(64, 64));
        }
    }

    #[test]
    fn the_newest_block_grows_in_place_others_move() {
        static A: Arena<4096> = Arena::new();
        let a = &A;
        // SAFETY: every block is used within its layout and given back
        // once, with the layout it was made with (or never, in the arena).
        unsafe {
            let p = a.alloc(layout(16, 8));
            p.write_bytes(1, 16);
            let grown = a.realloc(p, layout(16, 8), 256);
            assert_eq!(grown, p);
            let q = a.alloc(layout(8, 8));
            // Not the newest any more: moved, contents kept.
            let moved = a.realloc(grown, layout(256, 8), 512);
            assert_ne!(moved, grown);
            assert_eq!(std::slice::from_raw_parts(moved, 16), [1; 16]);
            // Beyond the arena: the system's, contents kept.
            let out = a.realloc(moved, layout(512, 8), 100_000);
            assert!(!a.owns(out));
            assert_eq!(std::slice::from_raw_parts(out, 16), [1; 16]);
            a.dealloc(out, layout(100_000, 8));
            a.dealloc(q, layout(8, 8));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_also_after_a_shrink_and_a_grow() {
        static A: Arena<4096> = Arena::new();
        let a = &A;
        // SAFETY: every block is used within its layout and given back
        // once, with the layout it was made with (or never, in the arena).
        unsafe {
            let p = a.alloc(layout(64, 8));
            p.write_bytes(0xff, 64);
            // Shrinking keeps the space: the next block starts after it.
            let p = a.realloc(p, layout(64, 8), 8);
            let z = a.alloc_zeroed(layout(64, 8));
            assert!(z as usize >= p as usize + 64);
            assert_eq!(std::slice::from_raw_parts(z, 64), [0; 64]);
            // Too big: the system's, zeroed too.
            let big = a.alloc_zeroed(layout(8192, 8));
            assert!(!a.owns(big));
            assert!(std::slice::from_raw_parts(big, 8192).iter().all(|b| *b == 0));
            a.dealloc(big, layout(8192, 8));
        }
    }

    #[test]
    fn threads_get_disjoint_blocks() {
        static A: Arena<{ 1 << 20 }> = Arena::new();
        let a = &A;
        let blocks: Vec<Vec<usize>> = std::thread::scope(|s| {
            (0..4)
                .map(|_| {
                    s.spawn(|| {
                        // SAFETY: a non-zero layout; the blocks are only counted.
                        (0..1000)
                            .map(|_| unsafe { a.alloc(layout(24, 8)) } as usize)
                            .collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        let mut all: Vec<usize> = blocks.into_iter().flatten().collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[1] >= w[0] + 24));
    }
}
