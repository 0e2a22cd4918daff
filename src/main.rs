//! The `ddbsnap` binary: the command line of [`ddbsnap::app`].

fn main() -> std::process::ExitCode {
    bound_allocator_retention();
    std::process::ExitCode::from(ddbsnap::app::main(std::env::args_os()))
}

/// Two glibc malloc tunables, each left to the environment when it sets it
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`):
///
/// - glibc raises its mmap threshold each time a large mapped buffer is freed (up to 32 MiB);
///   buffers of that size then come from the heap, and what they leave behind is kept, so a
///   long run's RSS grew with the table (the soak test: 81 MB at 20,000 items, 102 MB at
///   200,000). A fixed 4 MiB threshold keeps pages, Arrow buffers and Parquet pages on the heap,
///   where they are reused, and maps the larger buffers (row groups, upload parts) on their own,
///   returned when freed: 88 MB at 200,000 items.
/// - glibc gives the free top of a heap back to the system once it exceeds 128 KiB, so every
///   page of items (a 1 MB body, its arena, Parquet's page buffers) was allocated from fresh
///   pages and paid a page fault per 4 KiB: a fifth of a snapshot's CPU. Keeping up to 16 MiB
///   cuts the CPU per item by 15–20% for a few MB of RSS (see docs/performance.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator_retention() {
    let tunables = [
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 4 << 20),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 16 << 20),
    ];
    for (variable, parameter, value) in tunables {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt changes one malloc tunable; it is called before any other
            // thread exists, and a refusal (return value 0) leaves glibc's default in place.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator_retention() {}
