//! `kubectl kompox`: the Kompox command line. One module per subcommand; `main.rs` only
//! parses arguments and reports errors.
//!
//! Subcommands:
//! - [`install`]: `install` / `uninstall` (in the cluster, or `--local` processes: [`local`]),
//!   with the CA and serving certificate of [`certs`];
//! - [`apply`]: a compose app into its namespace, waiting until Ready;
//! - [`render`]: render a compose app to Kubernetes objects, offline; [`validate`]: its
//!   findings;
//! - [`rendered`], [`status`], [`diff`], [`delete`]: an app's server-rendered objects, its
//!   state, what differs from the live objects; deleting it;
//! - [`secret`]: per-service environment overrides and image pull credentials;
//! - [`disk`], [`snapshot`]: KompoxDisks and KompoxSnapshots;
//! - [`migrate`]: an app and its data to another cluster;
//! - [`version`]: `version` and `completion`.
//!
//! Shared below them: [`kubectx`] (kubectl's `--kubeconfig`/`--context`, the client, errors,
//! server-side apply, waiting by watching), [`target`] (which app or object a command acts
//! on), [`state`] (`.kompox/state.json`), [`output`] (tables and `-o` formats); for the
//! offline side [`project`] (default app and disk, input files), [`files`] (project files into
//! Secrets/ConfigMaps), [`vars`] (`${VAR}` interpolation) and [`infer`] (zero-config).
//! Modules depend downward only: no command module imports another, except `snapshot
//! restore` using [`disk`]'s wait.
//!
//! Errors go to stderr as `error: …` naming the failing field or object, with exit status 1.

use std::fmt;
use std::io::Write;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod certs;
pub mod delete;
pub mod diff;
pub mod disk;
pub mod exec;
pub mod files;
pub mod infer;
pub mod install;
pub mod jsonpath;
pub mod kubectx;
pub mod local;
pub mod logs;
pub mod migrate;
pub mod output;
pub mod pods;
pub mod port_forward;
pub mod project;
pub mod render;
pub mod rendered;
pub mod secret;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod suspend;
pub mod target;
pub mod validate;
pub mod vars;
pub mod version;

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
    /// Check a compose app offline: INFO, WARN and ERROR findings; exit 1 on an error.
    Validate(validate::ValidateArgs),
    /// Install Kompox into the cluster (or, with --local, run its servers on this machine).
    Install(install::InstallArgs),
    /// Remove what `install` created (the CRDs only with --crds).
    Uninstall(install::UninstallArgs),
    /// Apply a compose app: namespace, compose ConfigMap, env files, disks, KompoxApp; wait for Ready.
    Apply(apply::ApplyArgs),
    /// Print the server's rendered objects of an app (Secrets redacted).
    Rendered(rendered::RenderedArgs),
    /// List the KompoxApps of a namespace (-A: of every namespace).
    #[command(visible_alias = "ls")]
    List(target::ListArgs),
    /// Show an app's conditions, pods, zone, disks and ingress hosts.
    Status(status::StatusArgs),
    /// What would change: APP's server-rendered objects, or with -f what `apply -f` would
    /// write, dry-run applied against the live ones (exit 0: the same, 1: they differ, 2: an
    /// error, as `kubectl diff`).
    Diff(diff::DiffArgs),
    /// Delete an app and what it owns (its disks by their deletionPolicy; asks before
    /// destroying data unless --yes).
    Delete(delete::DeleteArgs),
    /// Print the logs of an app's services (-S one; -f to follow).
    Logs(logs::LogsArgs),
    /// Run a command in an app service's container (-i stdin, -t terminal; -- CMD…).
    Exec(exec::ExecArgs),
    /// Forward local ports to an app service's container ([LOCAL]:REMOTE; :REMOTE picks a
    /// free local port).
    PortForward(port_forward::PortForwardArgs),
    /// Scale an app to zero and hold it there (spec.suspend); waits until no Pod runs.
    Suspend(suspend::SuspendArgs),
    /// Run a suspended app again; waits until it is Ready.
    Resume(suspend::SuspendArgs),
    /// An app's secrets outside the compose file: per-service environment overrides
    /// (`secret env`) and image pull credentials (`secret pull`); values are never printed.
    #[command(subcommand)]
    Secret(secret::SecretCmd),
    /// Manage KompoxDisks.
    #[command(subcommand)]
    Disk(disk::DiskCmd),
    /// Manage KompoxSnapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Move an app and its disks' data to another cluster: verified, resumable, reversible.
    Migrate(migrate::MigrateArgs),
    /// Print the client's version, and the cluster's when it can be reached.
    Version(version::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(after_long_help = version::COMPLETION_HELP)]
    Completion(version::CompletionArgs),
}

/// Why a command failed. Each line is printed as `error: <line>`.
#[derive(Debug)]
pub enum CliError {
    /// The input is invalid; one `path: message` per problem.
    Invalid(Vec<String>),
    /// Something could not be read or written.
    Io(String),
    /// The cluster refused or could not be reached; the message says which and why.
    Cluster(String),
    /// A wait ran out of time; the message names what was awaited and the last state.
    Timeout(String),
    /// The named object does not exist.
    NotFound(String),
    /// `diff` found differences (already printed): exit code 1, as `kubectl diff`.
    Differs(usize),
    /// `validate` found errors (already printed): exit code 1.
    Found(usize),
    /// `exec`'s command exited with this status (passed on as ours).
    Exited(u8),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Invalid(lines) => f.write_str(&lines.join("\n")),
            CliError::Io(msg)
            | CliError::Cluster(msg)
            | CliError::Timeout(msg)
            | CliError::NotFound(msg) => f.write_str(msg),
            CliError::Differs(n) => write!(f, "{n} objects differ"),
            CliError::Found(n) => write!(f, "{n} errors found"),
            CliError::Exited(n) => write!(f, "the command exited with status {n}"),
        }
    }
}

impl std::error::Error for CliError {}

/// The exit code of a failed command: 1, as kubectl; for `diff` (`is_diff`) 1 when the
/// objects differ and 2 on an error, as `kubectl diff`. `error` is `None` for a failure that
/// is no [`CliError`] (writing the output).
#[must_use]
pub fn exit_code(is_diff: bool, error: Option<&CliError>) -> u8 {
    match (is_diff, error) {
        (_, Some(CliError::Differs(_))) => 1,
        (_, Some(CliError::Exited(code))) => *code,
        (true, _) => 2,
        (false, _) => 1,
    }
}

/// Runs `cli`, writing results to `out` and warnings to `err`.
///
/// # Errors
///
/// [`CliError`] for invalid input or I/O failures.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Render(args) => render::run(&args, out, err),
        Command::Validate(args) => validate::run(&args, out),
        Command::Completion(args) => version::completion(&args, out),
        cmd => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| CliError::Io(format!("starting the async runtime: {e}")))?;
            rt.block_on(run_cluster(cmd, out, err))
        }
    }
}

async fn run_cluster(
    cmd: Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        Command::Render(args) => render::run(&args, out, err),
        Command::Validate(args) => validate::run(&args, out),
        Command::Completion(args) => version::completion(&args, out),
        Command::Version(a) => version::run(&a, out).await,
        Command::Install(a) => install::run_install(&a, out, err).await,
        Command::Uninstall(a) => install::run_uninstall(&a, out, err).await,
        Command::Apply(a) => apply::run(&a, out, err).await,
        Command::Rendered(a) => rendered::run(&a, out).await,
        Command::List(a) => status::list(&a, out).await,
        Command::Status(a) => status::run(&a, out).await,
        Command::Diff(a) => diff::run(&a, out, err).await,
        Command::Delete(a) => delete::run(&a, out, err).await,
        Command::Logs(a) => logs::run(&a, out).await,
        Command::Suspend(a) => suspend::run(&a, true, out).await,
        Command::Resume(a) => suspend::run(&a, false, out).await,
        Command::Exec(a) => exec::run(&a, out, err).await,
        Command::PortForward(a) => port_forward::run(&a, out).await,
        Command::Secret(c) => secret::run(&c, out).await,
        Command::Disk(c) => disk::run(&c, out, err).await,
        Command::Snapshot(c) => snapshot::run(&c, out).await,
        Command::Migrate(a) => migrate::run(&a, out).await,
    }
}

#[cfg(test)]
mod command_tree_tests;

#[cfg(test)]
mod exit_tests {
    use super::*;

    #[test]
    fn exit_codes_as_kubectl() {
        let cases = [
            ("diff: differences", true, Some(CliError::Differs(2)), 1),
            (
                "diff: an error",
                true,
                Some(CliError::NotFound("x".into())),
                2,
            ),
            ("diff: no CliError", true, None, 2),
            ("other: an error", false, Some(CliError::Invalid(vec![])), 1),
            ("other: no CliError", false, None, 1),
        ];
        for (name, diff, error, want) in cases {
            assert_eq!(exit_code(diff, error.as_ref()), want, "{name}");
        }
    }
}
