//! The `scengen` binary: parse, run, and turn any error into a message and a non-zero exit.

use clap::Parser;

fn main() {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SCENGEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = scengen::cli::Cli::parse();
    if let Err(error) = scengen::cli::run(cli) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// candle allocates a fresh buffer for every op. glibc serves large ones with mmap and returns
/// them on free, so each training step page-faults its tensors in anew (about a third of the
/// time was kernel time). Keeping freed memory in the heap for reuse removes most of that.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
