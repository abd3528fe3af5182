//! The `sightline` binary: see `sightline --help`.

fn main() -> std::process::ExitCode {
    sightline_server::cli::main()
}
