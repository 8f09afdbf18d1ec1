//! `kubectl kompox rendered APP`: the server's rendered objects of an app (Secrets redacted).

use std::io::Write;

use clap::Args;

use crate::CliError;
use crate::output::{Output, write_as};
use crate::target::{AppRef, connect, fetch_rendered};

/// Arguments of `rendered`.
#[derive(Debug, Args)]
pub struct RenderedArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Output format: yaml (default), json, name or jsonpath=TEMPLATE.
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = Output::parse, default_value = "yaml")]
    pub output: Output,
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
    write_as(out, &items, &args.output, true)
}
