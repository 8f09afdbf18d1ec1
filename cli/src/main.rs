//! `kubectl-kompox`: argument parsing and error reporting; the commands live in the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kubectl_kompox::{Cli, Command, exit_code, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `diff` exits as `kubectl diff` does: 0 the same, 1 differences, 2 an error.
    let diff = matches!(cli.command, Command::Diff(_));
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = run(cli, &mut stdout.lock(), &mut stderr.lock())
        .map_err(anyhow::Error::from)
        .and_then(|()| stdout.lock().flush().map_err(anyhow::Error::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cli_error = e.downcast_ref();
            if !matches!(
                cli_error,
                Some(
                    kubectl_kompox::CliError::Differs(_)
                        | kubectl_kompox::CliError::Found(_)
                        | kubectl_kompox::CliError::Exited(_)
                )
            ) {
                let mut err = stderr.lock();
                for line in e.to_string().lines() {
                    let _ = writeln!(err, "error: {line}");
                }
            }
            ExitCode::from(exit_code(diff, cli_error))
        }
    }
}
