//! A component of the envmgr world that returns at once. Without the `std`
//! feature it is `no_std` and imports nothing of WASI (a bump allocator
//! and its own `cabi_realloc`, which wit-bindgen's runtime provides only
//! with std); with it, what std's runtime pulls in. See `Cargo.toml` for
//! how it is built and measured.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod bindings {
    wit_bindgen::generate!({
        world: "environment-manager",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::envmgr::environments::types::{Failure, Message, Outcome};

struct Floor;

impl bindings::Guest for Floor {
    fn handle(_message: Message) -> Result<Outcome, Failure> {
        Ok(Outcome::Done(alloc::string::String::from("floor")))
    }
}

bindings::export!(Floor with_types_in bindings);

#[cfg(not(feature = "std"))]
mod without_std {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        core::arch::wasm32::unreachable()
    }

    /// Enough for a message lowered in; nothing is freed (one instance
    /// per message).
    const ARENA: usize = 1 << 16;

    struct Bump(UnsafeCell<(usize, [u8; ARENA])>);

    // SAFETY: a component instance runs on one thread.
    unsafe impl Sync for Bump {}

    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: one thread, and no reference to the state outlives
            // this call.
            let state = unsafe { &mut *self.0.get() };
            let start = (state.0 + layout.align() - 1) & !(layout.align() - 1);
            if start + layout.size() > ARENA {
                return core::ptr::null_mut();
            }
            state.0 = start + layout.size();
            // SAFETY: `start + size` is within the arena.
            unsafe { state.1.as_mut_ptr().add(start) }
        }

        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static ALLOCATOR: Bump = Bump(UnsafeCell::new((0, [0; ARENA])));

    /// The canonical ABI's allocator.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cabi_realloc(
        old: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        let Ok(layout) = Layout::from_size_align(new_len, align) else {
            core::arch::wasm32::unreachable()
        };
        // SAFETY: the layout is valid; the allocator is the global one.
        let new = unsafe { ALLOCATOR.alloc(layout) };
        if new.is_null() {
            core::arch::wasm32::unreachable()
        }
        if !old.is_null() {
            // SAFETY: both blocks are at least this long and do not overlap
            // (a bump allocator never hands out a block twice).
            unsafe { core::ptr::copy_nonoverlapping(old, new, old_len.min(new_len)) };
        }
        new
    }
}
