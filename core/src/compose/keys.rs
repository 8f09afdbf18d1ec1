//! The one table of compose keys Kompox knows, with what it does with each.
//!
//! [`KEYS`] is the source of truth: the parser consults it for every key of the top level,
//! of a service, of `deploy` and of `deploy.resources.{limits,reservations}`. A key that is
//! not listed draws an "unknown key" warning, except `x-*` extension keys, which are ignored
//! silently everywhere.

/// Where a key appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The top level of the file.
    TopLevel,
    /// Inside `services.<name>`.
    Service,
    /// Inside `services.<name>.deploy`.
    Deploy,
    /// Inside `services.<name>.deploy.resources.limits` / `.reservations`.
    Resources,
}

impl Scope {
    /// How the scope is written in documentation.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TopLevel => "(top level)",
            Scope::Service => "services.*",
            Scope::Deploy => "services.*.deploy",
            Scope::Resources => "services.*.deploy.resources.*",
        }
    }
}

/// What Kompox does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Disposition {
    /// Parsed into the model (some values of it may still draw a warning).
    Supported,
    /// Accepted and ignored without a word (obsolete or purely informational).
    Silent,
    /// Accepted and ignored, with a warning naming the path and the note.
    Warned,
    /// Refused: an error naming the path and the note.
    Refused,
}

impl Disposition {
    /// Lower-case name for documentation.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Supported => "supported",
            Disposition::Silent => "ignored",
            Disposition::Warned => "ignored (warning)",
            Disposition::Refused => "refused (error)",
        }
    }
}

/// One row of [`KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRule {
    pub scope: Scope,
    pub key: &'static str,
    pub disposition: Disposition,
    /// Why (used as the warning/error message for Warned/Refused keys).
    pub note: &'static str,
}

const fn rule(
    scope: Scope,
    key: &'static str,
    disposition: Disposition,
    note: &'static str,
) -> KeyRule {
    KeyRule {
        scope,
        key,
        disposition,
        note,
    }
}

use Disposition::{Refused, Silent, Supported, Warned};
use Scope::{Deploy, Resources, Service, TopLevel};

const NOT_IN_POD: &str = "not supported on Kubernetes; ignored";
const ONE_POD_NET: &str =
    "ignored: all services share one Pod network (reach each other on localhost)";

/// Every compose key Kompox knows, with its disposition.
pub const KEYS: &[KeyRule] = &[
    // ---- top level
    rule(
        TopLevel,
        "services",
        Supported,
        "required mapping of services",
    ),
    rule(TopLevel, "volumes", Supported, "named volumes"),
    rule(
        TopLevel,
        "configs",
        Supported,
        "configs (file, content, environment, external)",
    ),
    rule(
        TopLevel,
        "secrets",
        Supported,
        "secrets (file, environment, external)",
    ),
    rule(TopLevel, "name", Supported, "project name"),
    rule(TopLevel, "version", Silent, "obsolete"),
    rule(TopLevel, "networks", Warned, ONE_POD_NET),
    rule(
        TopLevel,
        "include",
        Refused,
        "include is not supported: use a single compose file",
    ),
    rule(TopLevel, "models", Warned, NOT_IN_POD),
    // ---- service
    rule(Service, "image", Supported, "container image"),
    rule(
        Service,
        "build",
        Supported,
        "recorded; Kompox does not build images, so `image` is needed",
    ),
    rule(
        Service,
        "command",
        Supported,
        "string (split into words as compose splits it: no shell, nothing after `&&`, `;`, `|`, `>`) or list",
    ),
    rule(
        Service,
        "entrypoint",
        Supported,
        "string (split as `command`) or list; empty keeps the image's ENTRYPOINT (Kubernetes cannot clear it)",
    ),
    rule(Service, "environment", Supported, "map or KEY=VAL list"),
    rule(
        Service,
        "env_file",
        Supported,
        "string, list, or {path, required, format}",
    ),
    rule(
        Service,
        "ports",
        Supported,
        "short and long syntax; ranges expanded",
    ),
    rule(Service, "expose", Supported, "ports or ranges"),
    rule(
        Service,
        "volumes",
        Supported,
        "short and long syntax; bind, volume, tmpfs",
    ),
    rule(Service, "tmpfs", Supported, "paths with optional size"),
    rule(Service, "configs", Supported, "short and long syntax"),
    rule(Service, "secrets", Supported, "short and long syntax"),
    rule(
        Service,
        "healthcheck",
        Supported,
        "test, interval, timeout, retries, start_period, start_interval, disable",
    ),
    rule(
        Service,
        "depends_on",
        Supported,
        "list or map with condition/required/restart",
    ),
    rule(
        Service,
        "deploy",
        Supported,
        "replicas and resources; the rest is ignored with a warning",
    ),
    rule(
        Service,
        "cpus",
        Supported,
        "legacy form of deploy.resources.limits.cpus",
    ),
    rule(
        Service,
        "mem_limit",
        Supported,
        "legacy form of deploy.resources.limits.memory",
    ),
    rule(
        Service,
        "mem_reservation",
        Supported,
        "legacy form of deploy.resources.reservations.memory",
    ),
    rule(
        Service,
        "scale",
        Supported,
        "legacy form of deploy.replicas",
    ),
    rule(Service, "user", Supported, "uid[:gid] or name[:group]"),
    rule(Service, "working_dir", Supported, "absolute path"),
    rule(
        Service,
        "restart",
        Supported,
        "no | always | on-failure[:n] | unless-stopped",
    ),
    rule(Service, "labels", Supported, "map or list"),
    rule(Service, "annotations", Supported, "map or list"),
    rule(Service, "hostname", Supported, "recorded"),
    rule(Service, "stdin_open", Supported, "boolean"),
    rule(Service, "tty", Supported, "boolean"),
    rule(Service, "cap_add", Supported, "list of capabilities"),
    rule(Service, "cap_drop", Supported, "list of capabilities"),
    rule(Service, "privileged", Supported, "boolean"),
    rule(Service, "read_only", Supported, "boolean"),
    rule(Service, "stop_grace_period", Supported, "duration"),
    rule(
        Service,
        "extra_hosts",
        Supported,
        "host:ip / host=ip list or map",
    ),
    rule(Service, "shm_size", Supported, "bytes"),
    rule(
        Service,
        "profiles",
        Supported,
        "recorded; the caller decides which profiles are active",
    ),
    rule(Service, "pull_policy", Supported, "recorded"),
    rule(
        Service,
        "container_name",
        Warned,
        "ignored: Kubernetes names containers after the service",
    ),
    rule(
        Service,
        "platform",
        Warned,
        "ignored: the cluster's nodes decide the platform",
    ),
    rule(Service, "networks", Warned, ONE_POD_NET),
    rule(Service, "network_mode", Warned, ONE_POD_NET),
    rule(Service, "links", Warned, ONE_POD_NET),
    rule(Service, "external_links", Warned, ONE_POD_NET),
    rule(
        Service,
        "dns",
        Warned,
        "ignored: DNS is configured per Pod by the cluster",
    ),
    rule(
        Service,
        "dns_opt",
        Warned,
        "ignored: DNS is configured per Pod by the cluster",
    ),
    rule(
        Service,
        "dns_search",
        Warned,
        "ignored: DNS is configured per Pod by the cluster",
    ),
    rule(Service, "domainname", Warned, NOT_IN_POD),
    rule(Service, "mac_address", Warned, NOT_IN_POD),
    rule(
        Service,
        "logging",
        Warned,
        "ignored: the cluster collects container logs",
    ),
    rule(
        Service,
        "init",
        Warned,
        "ignored: Kubernetes has no init process injection",
    ),
    rule(Service, "stop_signal", Warned, NOT_IN_POD),
    rule(Service, "sysctls", Warned, NOT_IN_POD),
    rule(Service, "ulimits", Warned, NOT_IN_POD),
    rule(Service, "security_opt", Warned, NOT_IN_POD),
    rule(Service, "devices", Warned, NOT_IN_POD),
    rule(Service, "device_cgroup_rules", Warned, NOT_IN_POD),
    rule(Service, "gpus", Warned, NOT_IN_POD),
    rule(Service, "group_add", Warned, NOT_IN_POD),
    rule(Service, "ipc", Warned, NOT_IN_POD),
    rule(Service, "pid", Warned, NOT_IN_POD),
    rule(Service, "uts", Warned, NOT_IN_POD),
    rule(Service, "userns_mode", Warned, NOT_IN_POD),
    rule(Service, "cgroup", Warned, NOT_IN_POD),
    rule(Service, "cgroup_parent", Warned, NOT_IN_POD),
    rule(Service, "isolation", Warned, NOT_IN_POD),
    rule(Service, "runtime", Warned, NOT_IN_POD),
    rule(Service, "storage_opt", Warned, NOT_IN_POD),
    rule(Service, "driver_opts", Warned, NOT_IN_POD),
    rule(Service, "credential_spec", Warned, NOT_IN_POD),
    rule(Service, "blkio_config", Warned, NOT_IN_POD),
    rule(
        Service,
        "cpu_count",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(
        Service,
        "cpu_percent",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(
        Service,
        "cpu_shares",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(
        Service,
        "cpu_period",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(
        Service,
        "cpu_quota",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(
        Service,
        "cpu_rt_runtime",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(
        Service,
        "cpu_rt_period",
        Warned,
        "ignored: use deploy.resources",
    ),
    rule(Service, "cpuset", Warned, "ignored: use deploy.resources"),
    rule(Service, "mem_swappiness", Warned, NOT_IN_POD),
    rule(Service, "memswap_limit", Warned, NOT_IN_POD),
    rule(Service, "oom_kill_disable", Warned, NOT_IN_POD),
    rule(Service, "oom_score_adj", Warned, NOT_IN_POD),
    rule(Service, "pids_limit", Warned, NOT_IN_POD),
    rule(Service, "post_start", Warned, "not supported yet; ignored"),
    rule(Service, "pre_stop", Warned, "not supported yet; ignored"),
    rule(Service, "label_file", Warned, "not supported; ignored"),
    rule(
        Service,
        "attach",
        Warned,
        "ignored: only affects `docker compose up` output",
    ),
    rule(
        Service,
        "develop",
        Warned,
        "ignored: development-only (compose watch)",
    ),
    rule(Service, "models", Warned, NOT_IN_POD),
    rule(Service, "provider", Warned, NOT_IN_POD),
    rule(Service, "use_api_socket", Warned, NOT_IN_POD),
    rule(
        Service,
        "extends",
        Refused,
        "extends is not supported: write the service out (YAML anchors and `<<` merge keys work)",
    ),
    rule(
        Service,
        "volumes_from",
        Refused,
        "volumes_from is not supported: mount the same volumes explicitly",
    ),
    // ---- deploy
    rule(
        Deploy,
        "replicas",
        Supported,
        "warning unless 1: a Kompox app runs one Pod",
    ),
    rule(Deploy, "resources", Supported, "limits and reservations"),
    rule(Deploy, "mode", Warned, "ignored: a Kompox app runs one Pod"),
    rule(Deploy, "endpoint_mode", Warned, "ignored: swarm-only"),
    rule(Deploy, "labels", Warned, "ignored: swarm-only"),
    rule(Deploy, "placement", Warned, "ignored: swarm-only"),
    rule(Deploy, "restart_policy", Warned, "ignored: use `restart`"),
    rule(Deploy, "rollback_config", Warned, "ignored: swarm-only"),
    rule(Deploy, "update_config", Warned, "ignored: swarm-only"),
    // ---- deploy.resources.{limits,reservations}
    rule(
        Resources,
        "cpus",
        Supported,
        "number or string, millicore precision",
    ),
    rule(Resources, "memory", Supported, "bytes or size with unit"),
    rule(Resources, "pids", Warned, NOT_IN_POD),
    rule(Resources, "devices", Warned, NOT_IN_POD),
    rule(Resources, "generic_resources", Warned, NOT_IN_POD),
];

/// The rule for `key` in `scope`, if the key is known.
#[must_use]
pub fn rule_for(scope: Scope, key: &str) -> Option<&'static KeyRule> {
    KEYS.iter().find(|r| r.scope == scope && r.key == key)
}

/// The table as Markdown (scope, key, disposition, note), for documentation.
#[must_use]
pub fn keys_markdown() -> String {
    let mut out = String::from("| scope | key | disposition | note |\n| --- | --- | --- | --- |\n");
    for r in KEYS {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            r.scope.as_str(),
            r.key,
            r.disposition.as_str(),
            r.note.replace('|', "\\|")
        ));
    }
    out
}
