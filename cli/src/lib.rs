//! `kubectl kompox`: the Kompox command line. One module per subcommand; `main.rs` only
//! parses arguments and reports errors.
//!
//! Subcommands so far:
//! - [`render`]: render a compose app to Kubernetes objects, offline.

use std::fmt;
use std::io::Write;

use clap::{Parser, Subcommand};

pub mod render;

/// Command line of `kubectl-kompox`.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-kompox",
    version,
    about = "Kompox: run Docker Compose apps on Kubernetes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands (add new ones here, each in its own module).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a compose app to Kubernetes objects, offline (no cluster needed).
    #[command(after_long_help = render::LONG_HELP)]
    Render(render::RenderArgs),
}

/// Why a command failed. Each line is printed as `error: <line>`.
#[derive(Debug)]
pub enum CliError {
    /// The input is invalid; one `path: message` per problem.
    Invalid(Vec<String>),
    /// Something could not be read or written.
    Io(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Invalid(lines) => f.write_str(&lines.join("\n")),
            CliError::Io(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for CliError {}

/// Runs `cli`, writing results to `out` and warnings to `err`.
///
/// # Errors
///
/// [`CliError`] for invalid input or I/O failures.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Render(args) => render::run(&args, out, err),
    }
}
