//! A global allocator that counts the allocations each thread makes, for the
//! tests (and benchmarks) that prove the audio path allocates nothing.
//! Tests reach it as `support::counting_alloc` (benches include the file by path) and
//! install with `#[global_allocator] static A: CountingAllocator = CountingAllocator;`.
//!
//! Implementing `GlobalAlloc` needs `unsafe`; this is the one place outside
//! src/obs/ that has it, and it only forwards to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations (and reallocations) made so far by the calling thread.
pub fn thread_allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    // try_with: the thread-local may already be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
