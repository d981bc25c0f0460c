//! The wasm32 boundary: raw exports, the heap, the panic handler. The only `unsafe` code of the
//! crate, all of it here.
//!
//! # The calling convention (what `scanner-web/js/verifier.js` does)
//!
//! 1. For each input, `alloc(len)` returns a pointer to `len` zeroed bytes; the loader writes
//!    the input there (UTF-8 text or raw bytes).
//! 2. The loader calls an export with `(ptr, len)` pairs. The export only reads them.
//! 3. The export returns a `u64`: the result's pointer in the high 32 bits, its length in the
//!    low 32 (the result is UTF-8 JSON).
//! 4. The loader copies the result out, then calls `dealloc(ptr, len)` once for every input and
//!    for the result.
//!
//! The soundness of every `unsafe` block below rests on this contract: the loader passes only
//! `(ptr, len)` pairs it got from `alloc` (or from a packed result), with the same length, and
//! frees each exactly once, after the call that uses it.
//!
//! # The heap
//!
//! A bump allocator over the memory above the module's initial memory (stack and data live
//! below it): allocation moves a top pointer up (growing the memory when needed); freeing the
//! topmost block moves it back, and when no allocation is live at all (after every call, once
//! the loader has freed the inputs and the result) the whole heap is reused from the start. A
//! verification allocates a few MB at most and frees everything, so this is all the page
//! needs, in a few hundred bytes of code (dlmalloc is ~10 KB; `wee_alloc` is unmaintained).
//! wasm32 without the threads proposal is single-threaded, so the atomics below are plain loads
//! and stores; they only make the statics `Sync` without more `unsafe`.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::checks;

const PAGE: usize = 65536;

/// The bump allocator (see the module doc).
struct Heap;

/// Where the heap starts (0 until the first allocation), its top, the end of memory and the
/// number of live allocations.
static START: AtomicUsize = AtomicUsize::new(0);
static TOP: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

impl Heap {
    /// Grows the memory so that addresses below `end` exist; false if the engine refuses.
    fn reserve(end: usize) -> bool {
        if START.load(Relaxed) == 0 {
            let start = wasm32::memory_size(0) * PAGE;
            START.store(start, Relaxed);
            TOP.store(start, Relaxed);
            END.store(start, Relaxed);
        }
        let have = END.load(Relaxed);
        if end <= have {
            return true;
        }
        let pages = (end - have).div_ceil(PAGE);
        if wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        END.store(have + pages * PAGE, Relaxed);
        true
    }

    /// Reserves `size` bytes aligned to `align` at the top; the address, or None.
    fn bump(size: usize, align: usize) -> Option<usize> {
        if !Heap::reserve(0) {
            return None;
        }
        let addr = TOP.load(Relaxed).checked_next_multiple_of(align)?;
        let top = addr.checked_add(size)?;
        if !Heap::reserve(top) {
            return None;
        }
        TOP.store(top, Relaxed);
        Some(addr)
    }
}

// SAFETY: `alloc` returns blocks of at least `layout.size()` bytes aligned to `layout.align()`
// (rounded up by `checked_next_multiple_of`), inside linear memory that exists (`reserve`
// grew it) and above the initial memory, which no one else uses; blocks never overlap because
// the top only moves back over a block once it is freed (`dealloc`: the topmost block, or
// everything when nothing is live); `realloc` extends only the topmost block, in place.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Heap::bump(layout.size(), layout.align()) {
            Some(addr) => {
                LIVE.store(LIVE.load(Relaxed) + 1, Relaxed);
                addr as *mut u8
            }
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let live = LIVE.load(Relaxed).saturating_sub(1);
        LIVE.store(live, Relaxed);
        if live == 0 {
            TOP.store(START.load(Relaxed), Relaxed);
        } else if ptr as usize + layout.size() == TOP.load(Relaxed) {
            TOP.store(ptr as usize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let addr = ptr as usize;
        if addr + layout.size() == TOP.load(Relaxed) {
            // The topmost block grows or shrinks in place.
            let Some(top) = addr.checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if !Heap::reserve(top) {
                return core::ptr::null_mut();
            }
            TOP.store(top, Relaxed);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size (it exceeds the old one).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: the old block holds `layout.size()` bytes, the new one more, and they do
            // not overlap (the new one is above the top the old one was under); the caller
            // gives up the old block, as `realloc`'s contract says.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static HEAP: Heap = Heap;

/// Nothing in this crate panics on input; should anything (an allocation failure) panic
/// anyway, the call traps and the loader reports a `RuntimeError`.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    wasm32::unreachable()
}

/// Allocates `len` zeroed bytes for an input; the loader frees them with `dealloc`.
#[unsafe(export_name = "alloc")]
pub extern "C" fn wasm_alloc(len: usize) -> *mut u8 {
    Box::into_raw(alloc::vec![0u8; len].into_boxed_slice()).cast::<u8>()
}

/// Frees an input from `alloc` or a result.
///
/// # Safety
/// `(ptr, len)` came from `alloc(len)` or from a packed result, and is freed once.
#[unsafe(export_name = "dealloc")]
pub unsafe extern "C" fn wasm_dealloc(ptr: *mut u8, len: usize) {
    if ptr.is_null() || len == 0 {
        return; // A zero-length box owns no memory.
    }
    // SAFETY: by the contract, `ptr` is what `Box::into_raw` gave for a `Box<[u8]>` of exactly
    // `len` bytes (`wasm_alloc` or `output`), not freed yet; rebuilding the box and dropping it
    // frees it with the layout it was allocated with.
    drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)) });
}

/// Views an input.
///
/// # Safety
/// `(ptr, len)` came from `alloc(len)`, holds the input, and outlives the returned slice (the
/// loader frees it only after the export returns).
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: by the contract, `ptr` points to `len` initialised bytes of one live allocation,
    // which nothing writes while the export runs (wasm32 is single-threaded and the export
    // only reads its inputs).
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// Hands a result to the loader: `(pointer << 32) | length`; freed by `dealloc`.
fn output(bytes: Vec<u8>) -> u64 {
    let len = bytes.len();
    let ptr = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
    ((ptr as usize as u64) << 32) | len as u64
}

/// Declares exports taking `(ptr, len)` pairs and returning a packed JSON result.
macro_rules! export_pairs {
    ($( $(#[$doc:meta])* $name:literal => fn $rust:ident($($ptr:ident, $len:ident => $arg:ident),*) $body:expr; )*) => {
        $(
            $(#[$doc])*
            ///
            /// # Safety
            /// Each `(ptr, len)` pair came from `alloc(len)` and holds the input (see the
            /// module doc).
            #[unsafe(export_name = $name)]
            pub unsafe extern "C" fn $rust($($ptr: *const u8, $len: usize),*) -> u64 {
                // SAFETY: the loader's contract (module doc), forwarded by this fn's own.
                $(let $arg = unsafe { input($ptr, $len) };)*
                $body
            }
        )*
    };
}

export_pairs! {
    /// `verify_bundle(bundle, trust)`: the report JSON (SPEC §6).
    "verify_bundle" => fn wasm_verify_bundle(bp, bl => bundle, tp, tl => trust)
        output(checks::verify_bundle_json(bundle, trust).to_json());
    /// `verify_event(message, key_sec1)`.
    "verify_event" => fn wasm_verify_event(mp, ml => message, kp, kl => key)
        output(checks::verify_event(message, key));
    /// `verify_registry_record(message, trust)`.
    "verify_registry_record" => fn wasm_verify_registry_record(mp, ml => message, tp, tl => trust)
        output(checks::verify_registry_record(message, trust));
    /// `verify_inclusion(input)`.
    "verify_inclusion" => fn wasm_verify_inclusion(ip, il => input_json)
        output(checks::verify_inclusion(input_json));
    /// `verify_consistency(input)`.
    "verify_consistency" => fn wasm_verify_consistency(ip, il => input_json)
        output(checks::verify_consistency(input_json));
    /// `open_checkpoint(note, gateway_key)`.
    "open_checkpoint" => fn wasm_open_checkpoint(np, nl => note, kp, kl => key)
        output(checks::open_checkpoint(note, key));
    /// `verify_tlog_proof(proof, entry, gateway_key)`.
    "verify_tlog_proof" => fn wasm_verify_tlog_proof(pp, pl => proof, ep, el => entry, kp, kl => key)
        output(checks::verify_tlog_proof(proof, entry, key));
    /// `tree_root(input)`.
    "tree_root" => fn wasm_tree_root(ip, il => input_json)
        output(checks::tree_root(input_json));
    /// `verify_chain(input, gateway_key)`.
    "verify_chain" => fn wasm_verify_chain(ip, il => input_json, kp, kl => key)
        output(checks::verify_chain(input_json, key));
}
