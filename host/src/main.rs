//! The `kvrun` command line; [`cli`] holds it, by job.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
