//! The `tunnel` binary: parses the command line, sets up logging, runs the command
//! and turns its outcome into an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

use tunnel::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tunnel::logging::init(&cli.log);
    let json = cli.log.log_format == LogFormat::Json;

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(tunnel::config::worker_threads(cli.threads))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tunnel::commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = err.exit_code();
            if json {
                // Log collectors read one JSON object per line, fatal errors included.
                tracing::error!(error = %format!("{err:#}"), exit_code = code, "cannot run");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
