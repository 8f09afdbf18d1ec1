//! `kubectl-kompox`: argument parsing and error reporting; the commands live in the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kubectl_kompox::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = run(cli, &mut stdout.lock(), &mut stderr.lock())
        .map_err(anyhow::Error::from)
        .and_then(|()| stdout.lock().flush().map_err(anyhow::Error::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = stderr.lock();
            for line in e.to_string().lines() {
                let _ = writeln!(err, "error: {line}");
            }
            ExitCode::from(1)
        }
    }
}
