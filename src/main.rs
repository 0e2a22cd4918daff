//! The `ddbsnap` binary: the command line of [`ddbsnap::app`].

fn main() -> std::process::ExitCode {
    bound_allocator_retention();
    std::process::ExitCode::from(ddbsnap::app::main(std::env::args_os()))
}

/// glibc's malloc raises its mmap threshold each time a large mapped buffer is freed (up to
/// 32 MiB); buffers of that size then come from the heap, and what they leave behind is kept,
/// so a long run's RSS grew with the table (the soak test: 81 MB at 20,000 items, 102 MB at
/// 200,000). A fixed 4 MiB threshold keeps pages, Arrow buffers and Parquet pages on the heap,
/// where they are reused, and maps the larger buffers (row groups, upload parts) on their own,
/// returned when freed: 88 MB at 200,000 items, at no measurable CPU cost (see
/// docs/performance.md). `MALLOC_MMAP_THRESHOLD_` in the environment still decides.
///
/// The trim threshold stays glibc's (128 KiB): keeping 16 MiB of each heap's free top saves
/// 15–20% of a snapshot's CPU (no page faults on fresh buffers), but raised the 1,000,000-item
/// soak from 100 to 120 MB. `MALLOC_TRIM_THRESHOLD_=16777216` trades that memory for the CPU.
/// Most of those faults are gone anyway: the largest page buffers (Scan bodies, item arenas)
/// are now kept for reuse (`src/spare.rs`); Parquet's own page buffers still fault.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator_retention() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt changes one malloc tunable; it is called before any other thread
        // exists, and a refusal (return value 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator_retention() {}
