//! The `meetwire` binary: a thin shell that parses the command line, sets up logging and hands
//! over to the server and store crates.

mod admin;
mod bench;
mod cli;
mod demo;
mod listen;
mod open_files;
mod serve;
mod settings;
mod verify;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};

/// mimalloc instead of the system allocator: the hot path allocates and frees many small
/// buffers across threads (request bodies, rows, futures), and glibc's malloc was ~12 % of the
/// server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The developer tools print their own output on stdout, so by default only warnings are logged.
fn default_log_level(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) | Command::Admin(_) | Command::Bench(_) => "info",
        Command::Listen(_) | Command::Verify(_) | Command::Demo(_) => "warn",
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("MEETWIRE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only for a terminal: escape codes would clutter a log file or journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, default_log_level(&cli.command));
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args).await.map_err(|e| e.to_string()),
        Command::Admin(command) => admin::run(command).await.map_err(|e| e.to_string()),
        Command::Bench(args) => bench::run(args).await.map_err(|e| e.to_string()),
        Command::Listen(args) => listen::run(args).await.map_err(|e| e.to_string()),
        Command::Demo(args) => demo::run(args).await.map_err(|e| e.to_string()),
        // Its exit status tells valid (0) from invalid (1) and usage errors (2).
        Command::Verify(args) => return verify::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meetwire: {message}");
            ExitCode::FAILURE
        }
    }
}
