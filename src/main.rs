use std::process::ExitCode;

use clap::Parser;
use flashback_devices::{
    cli,
    config::{Cli, Command},
    telemetry,
};

/// glibc's allocator spends much of a request in malloc/free and in arena
/// locks under many threads; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for configuration and start-up errors (bad URL, unreachable database, bad secret).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args = Cli::parse();
    telemetry::logging::init(args.common.log_format);
    let command = args.command.unwrap_or(Command::Serve(args.serve));
    match cli::run(command, &args.common) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
