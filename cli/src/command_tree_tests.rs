//! The command tree as a whole: every subcommand's `--help` parses, every cluster command takes
//! kubectl's connection flags, and the get/list/namespace flags are where kubectl users expect
//! them (named cases).

use clap::CommandFactory as _;
use clap::error::ErrorKind;
use rstest::rstest;

use crate::Cli;

/// Every subcommand path (`["disk", "list"]`), leaves and groups.
fn paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        let mut p = prefix.to_vec();
        p.push(sub.get_name().to_owned());
        out.push(p.clone());
        paths(sub, &p, out);
    }
}

fn all_paths() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    paths(&Cli::command(), &[], &mut out);
    out
}

fn find<'a>(cmd: &'a clap::Command, path: &[&str]) -> Option<&'a clap::Command> {
    path.iter().try_fold(cmd, |c, name| {
        c.get_subcommands().find(|s| s.get_name() == *name)
    })
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    use clap::Parser as _;
    Cli::try_parse_from(std::iter::once("kubectl-kompox").chain(args.iter().copied()))
}

#[test]
fn the_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_subcommand_shows_its_help() {
    let paths = all_paths();
    assert!(paths.len() > 15, "{paths:?}");
    let failing: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
            args.push("--help");
            match parse(&args) {
                Err(e) if e.kind() == ErrorKind::DisplayHelp => None,
                Err(e) => Some(format!("{}: {e}", p.join(" "))),
                Ok(_) => Some(format!("{}: --help parsed as a command", p.join(" "))),
            }
        })
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
}

/// Every command that talks to a cluster takes kubectl's connection and impersonation flags.
#[test]
fn every_cluster_command_takes_the_connection_flags() {
    let root = Cli::command();
    let offline = ["render", "validate", "completion"];
    let mut missing = Vec::new();
    for p in all_paths() {
        let path: Vec<&str> = p.iter().map(String::as_str).collect();
        let Some(cmd) = find(&root, &path) else {
            continue;
        };
        if cmd.has_subcommands() || offline.contains(&path[0]) {
            continue;
        }
        for flag in ["kubeconfig", "context", "as", "as-group"] {
            if !cmd.get_arguments().any(|a| a.get_long() == Some(flag)) {
                missing.push(format!("{}: --{flag}", p.join(" ")));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The flags a kubectl user reaches for, per command.
#[rstest]
#[case::rendered(&["rendered"], &["namespace", "output"])]
#[case::status(&["status"], &["namespace", "output"])]
#[case::list(&["list"], &["namespace", "all-namespaces", "output"])]
#[case::diff(&["diff"], &["namespace"])]
#[case::disk_list(&["disk", "list"], &["namespace", "all-namespaces", "output"])]
#[case::disk_create(&["disk", "create"], &["namespace", "wait", "timeout"])]
#[case::disk_delete(&["disk", "delete"], &["namespace", "yes"])]
#[case::snapshot_list(&["snapshot", "list"], &["namespace", "all-namespaces", "output"])]
#[case::snapshot_create(&["snapshot", "create"], &["namespace", "wait"])]
#[case::apply(&["apply"], &["file", "dry-run", "field-manager", "force-conflicts", "wait", "output"])]
#[case::version(&["version"], &["client", "output"])]
#[case::secret_env_set(&["secret", "env", "set"], &["namespace", "service", "env-file", "from-literal", "replace"])]
#[case::secret_env_unset(&["secret", "env", "unset"], &["namespace", "service"])]
#[case::secret_pull_set(&["secret", "pull", "set"], &["namespace", "docker-config"])]
fn takes(#[case] path: &[&str], #[case] longs: &[&str]) {
    let root = Cli::command();
    let cmd = find(&root, path).unwrap_or_else(|| panic!("no command {path:?}"));
    for long in longs {
        assert!(
            cmd.get_arguments().any(|a| a.get_long() == Some(long)),
            "{path:?} has no --{long}"
        );
    }
}

/// Command lines that parse, and those refused with the flag named.
#[rstest]
#[case::output_name(&["disk", "list", "-o", "name"], None)]
#[case::output_jsonpath(&["snapshot", "list", "-o", "jsonpath={.items[*].metadata.name}"], None)]
#[case::output_unknown(&["disk", "list", "-o", "table"], Some("--output"))]
#[case::output_bad_template(&["rendered", "web", "-o", "jsonpath={.items"], Some("unclosed"))]
#[case::all_namespaces(&["disk", "list", "-A"], None)]
#[case::app_list_alias(&["ls", "-A", "-o", "wide"], None)]
#[case::all_namespaces_and_n(&["disk", "list", "-A", "-n", "x"], Some("--namespace"))]
#[case::impersonation(&["status", "web", "--as", "jane", "--as-group", "dev"], None)]
#[case::group_needs_user(&["status", "web", "--as-group", "dev"], Some("--as"))]
#[case::dry_run_bare(&["apply", "-f", "c.yml", "--dry-run"], None)]
#[case::dry_run_server(&["apply", "-f", "c.yml", "--dry-run=server"], None)]
#[case::dry_run_unknown(&["apply", "-f", "c.yml", "--dry-run=maybe"], Some("--dry-run"))]
#[case::secret_env_file(&["secret", "env", "set", "web", "-S", "db", "-f", "db.env"], None)]
#[case::secret_env_literals(&["secret", "env", "set", "web", "--from-literal", "A=1", "--from-literal", "B=2"], None)]
#[case::secret_env_unset_keys(&["secret", "env", "unset", "web", "-S", "db", "A", "B"], None)]
#[case::secret_pull_needs_config(&["secret", "pull", "set", "web"], Some("--docker-config"))]
#[case::completion_shell(&["completion", "zsh"], None)]
#[case::completion_unknown(&["completion", "tcsh"], Some("tcsh"))]
fn command_lines(#[case] args: &[&str], #[case] refused: Option<&str>) {
    match (parse(args), refused) {
        (Ok(_), None) => {}
        (Err(e), Some(named)) => {
            let text = e.to_string();
            assert!(text.contains(named), "{args:?}: {text}");
        }
        (Ok(cli), Some(_)) => panic!("{args:?} parsed: {cli:?}"),
        (Err(e), None) => panic!("{args:?}: {e}"),
    }
}

#[test]
fn bare_dry_run_is_client_as_kubectl() {
    let cli = parse(&["apply", "-f", "c.yml", "--dry-run"]).map(|c| c.command);
    assert!(
        matches!(cli, Ok(crate::Command::Apply(a)) if a.dry_run == crate::apply::DryRun::Client)
    );
}

#[test]
fn completion_scripts_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let Ok(crate::Command::Completion(args)) = parse(&["completion", shell]).map(|c| c.command)
        else {
            panic!("completion {shell} did not parse");
        };
        let mut out = Vec::new();
        assert!(crate::version::completion(&args, &mut out).is_ok());
        let text = String::from_utf8_lossy(&out);
        for word in ["apply", "snapshot", "port-forward", "kubeconfig"] {
            assert!(text.contains(word), "{shell}: no {word}");
        }
    }
}
