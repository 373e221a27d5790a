//! The `scengen` binary: the command line's edge. It parses flags into the library's configs
//! (`cli/`), runs the demo (`demo.rs`), and turns any error into a message and a non-zero exit.

mod cli;
mod demo;

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
    count_candle_threads_once();
    let cli = cli::Cli::parse();
    if !cli.runs_candle_network() {
        keep_candle_pool_to_the_main_thread();
    }
    if let Err(error) = cli::run(cli) {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
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

/// candle asks for its thread count on every matrix product, and unless RAYON_NUM_THREADS is
/// set that means reading and parsing /proc/cpuinfo each time (`num_cpus::get_physical`),
/// thousands of times per training epoch. Counted once here, by candle's own rule, and set for
/// the run (rayon's pool, which candle's products run on, then has that many threads); an
/// explicit RAYON_NUM_THREADS is left as given.
fn count_candle_threads_once() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // Called before any other thread exists, so nothing reads the environment meanwhile.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// candle runs its element-wise CPU ops on a pool of its own threads, whose workers spin for a
/// while after every op before they sleep. In generation with the default engine the network
/// and the prior run on scengen's threads between short candle ops (the samplers' updates), and
/// a spinning worker takes a core from them: with the main thread alone in candle's pool,
/// `scengen bench` took 24–26 s per 10,000 paths against 29–35 s, alternating runs. Training
/// took the same time either way (its matrix products run on rayon's threads, not this pool).
/// The candle engine (`--engine candle`) runs the whole network on that pool, and was 16%
/// slower with one thread, so it keeps the pool; so does an explicit CANDLE_NUM_THREADS.
fn keep_candle_pool_to_the_main_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Called before any other thread exists, so nothing reads the environment meanwhile.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
