//! The `scengen` binary: parse, run, and turn any error into a message and a non-zero exit.

use clap::Parser;

fn main() {
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
