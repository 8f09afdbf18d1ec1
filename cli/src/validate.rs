//! `kubectl kompox validate -f compose.yml [--app app.yml]`: renders the app offline and lists
//! what it found, as `INFO`, `WARN` and `ERROR` lines (or `-o json|yaml`); exit status 1 when
//! there is an error. Nothing is contacted and nothing printed is a value: the same checks
//! as `render` and `apply`, for CI.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kompox_core::api::ProviderType;
use serde::Serialize;

use crate::CliError;
use crate::infer::InferArgs;
use crate::render::{self, RenderArgs};

/// Output of `validate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ValidateOutput {
    /// `LEVEL  path: message` lines.
    Text,
    /// A JSON array of findings.
    Json,
    /// A YAML list of findings.
    Yaml,
}

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The compose file.
    #[arg(short = 'f', long = "file", value_name = "COMPOSE")]
    pub file: PathBuf,
    /// YAML with a KompoxApp and its KompoxDisks, Secrets and ConfigMaps.
    #[arg(long, value_name = "APP_YAML")]
    pub app: Option<PathBuf>,
    /// An env file of interpolation variables instead of the project .env (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Read the file the compose file names PATH from FILE.
    #[arg(long = "project-file", value_name = "PATH=FILE")]
    pub project_files: Vec<String>,
    /// A plain variable for ${VAR} interpolation (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// The cluster's provider (maps zone numbers to node zone labels).
    #[arg(long, default_value = "csi", value_parser = render::parse_provider)]
    pub provider: ProviderType,
    /// The cluster's region (needed to map zone numbers such as "1").
    #[arg(long, env = "KOMPOX_REGION")]
    pub region: Option<String>,
    #[command(flatten)]
    pub infer: InferArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ValidateOutput::Text)]
    pub output: ValidateOutput,
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// What was inferred or read (zero-config).
    Info,
    /// Applies, but probably not as meant.
    Warn,
    /// Does not apply.
    Error,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// What it is about (`services.web.ports[0]`, a file), when known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// What was found.
    pub message: String,
}

/// The findings of rendering `args`'s app, errors last.
///
/// # Errors
///
/// [`CliError::Io`] when a file cannot be read (there is nothing to validate then).
pub fn findings(args: &ValidateArgs) -> Result<Vec<Finding>, CliError> {
    let rargs = RenderArgs {
        file: args.file.clone(),
        app: args.app.clone(),
        output: render::Output::Yaml,
        env_files: args.env_files.clone(),
        project_files: args.project_files.clone(),
        vars: args.vars.clone(),
        provider: args.provider,
        region: args.region.clone(),
        namespace: None,
        show_secrets: false,
        infer: args.infer.clone(),
        hash_key_file: None,
    };
    let finding = |level, path: String, message: String| Finding {
        level,
        path,
        message,
    };
    let built = match render::build(&rargs) {
        Ok(b) => b,
        Err(CliError::Invalid(lines)) => {
            return Ok(lines
                .into_iter()
                .map(|l| finding(Level::Error, String::new(), l))
                .collect());
        }
        Err(e) => return Err(e),
    };
    let mut out: Vec<Finding> = built
        .notes
        .into_iter()
        .map(|n| finding(Level::Info, String::new(), format!("inferred: {n}")))
        .collect();
    if let Some(v) = built.vars {
        out.push(finding(
            Level::Info,
            String::new(),
            format!("variables: {v}"),
        ));
    }
    out.extend(
        built
            .warnings
            .into_iter()
            .map(|w| finding(Level::Warn, w.path, w.message)),
    );
    if let Err(errors) = built.rendered {
        out.extend(
            errors
                .into_iter()
                .map(|e| finding(Level::Error, String::new(), e)),
        );
    }
    Ok(out)
}

/// Runs `validate`.
///
/// # Errors
///
/// [`CliError::Found`] when there is an error finding (already printed), else as
/// [`findings`].
pub fn run(args: &ValidateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let found = findings(args)?;
    let text = match args.output {
        ValidateOutput::Text => {
            let mut s = String::new();
            for f in &found {
                let level = match f.level {
                    Level::Info => "INFO ",
                    Level::Warn => "WARN ",
                    Level::Error => "ERROR",
                };
                if f.path.is_empty() {
                    s.push_str(&format!("{level} {}\n", f.message));
                } else {
                    s.push_str(&format!("{level} {}: {}\n", f.path, f.message));
                }
            }
            let errors = found.iter().filter(|f| f.level == Level::Error).count();
            let warnings = found.iter().filter(|f| f.level == Level::Warn).count();
            s.push_str(&format!(
                "{}: {errors} errors, {warnings} warnings\n",
                args.file.display()
            ));
            s
        }
        ValidateOutput::Json => {
            let mut s = serde_json::to_string_pretty(&found)
                .map_err(|e| CliError::Io(format!("writing JSON: {e}")))?;
            s.push('\n');
            s
        }
        ValidateOutput::Yaml => serde_saphyr::to_string(&found)
            .map_err(|e| CliError::Io(format!("writing YAML: {e}")))?,
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))?;
    match found.iter().filter(|f| f.level == Level::Error).count() {
        0 => Ok(()),
        n => Err(CliError::Found(n)),
    }
}
