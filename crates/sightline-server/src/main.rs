//! The `sightline` binary: see `sightline --help`.

/// mimalloc rather than glibc's malloc: the server allocates and frees small objects on every request
/// and hands buffers between threads (tokio workers, SQLite's threads), where glibc's arenas and
/// consolidation cost measurably more (see `docs/benchmarks.md`, "Health endpoint").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sightline_server::cli::main()
}
