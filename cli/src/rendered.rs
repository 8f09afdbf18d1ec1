//! `kubectl kompox rendered APP`: the server's rendered objects of an app (Secrets redacted).

use std::io::Write;

use clap::Args;

use crate::CliError;
use crate::output::{Format, write_objects};
use crate::target::{AppRef, connect, fetch_rendered};

/// Arguments of `rendered`.
#[derive(Debug, Args)]
pub struct RenderedArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
}

/// Runs `rendered`.
///
/// # Errors
///
/// See [`fetch_rendered`].
pub async fn run(args: &RenderedArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let list = fetch_rendered(&client, &ns, &args.app.app).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    write_objects(out, &items, args.output)
}
