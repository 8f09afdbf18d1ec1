//! The Kubernetes Pod Security Standards (`baseline`, `restricted`) checked on a Pod spec, the
//! same rules kube-apiserver's PodSecurity admission enforces for a namespace labelled
//! `pod-security.kubernetes.io/enforce`. Pure: [`check`] lists every violation with the path
//! in the Pod spec and what the renderer needs to name the compose field; [`harden`] sets what
//! `restricted` requires and a compose file cannot say (non-root, no privilege escalation,
//! `RuntimeDefault` seccomp, all capabilities dropped).
//!
//! The renderer runs the check on every Pod it renders, for the app's `spec.podSecurity`
//! (`baseline` when unset), and refuses the app when it fails, naming the compose field
//! (`services.web.privileged`, `services.web.cap_add[0]`, `services.web.user`); the controller
//! then reports `Degraded` and applies nothing. The namespace label makes kube-apiserver
//! refuse such Pods too, whoever creates them.
//!
//! Rules (Kubernetes "latest" policy):
//!
//! | level | field | allowed |
//! |---|---|---|
//! | baseline | `hostNetwork`, `hostPID`, `hostIPC` | unset or false |
//! | baseline | `securityContext.windowsOptions.hostProcess` | unset or false |
//! | baseline | `securityContext.privileged` | unset or false |
//! | baseline | `securityContext.capabilities.add` | the container runtime's default set ([`BASELINE_CAPABILITIES`]) |
//! | baseline | `volumes[*].hostPath` | unset |
//! | baseline | `ports[*].hostPort` | unset or 0 |
//! | baseline | `appArmorProfile.type` | unset, `RuntimeDefault`, `Localhost` |
//! | baseline | `seLinuxOptions` | `type` one of the container types, no `user`/`role` |
//! | baseline | `procMount` | unset or `Default` |
//! | baseline | `seccompProfile.type` | not `Unconfined` |
//! | baseline | `securityContext.sysctls` | the namespaced safe set ([`SAFE_SYSCTLS`]) |
//! | restricted | volume types | configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret |
//! | restricted | `allowPrivilegeEscalation` | false |
//! | restricted | `runAsNonRoot` | true (Pod or every container), never false |
//! | restricted | `runAsUser` | not 0 |
//! | restricted | `seccompProfile.type` | `RuntimeDefault` or `Localhost` (Pod or every container) |
//! | restricted | `capabilities` | drop `ALL`, add only `NET_BIND_SERVICE` |

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};

use crate::api::PodSecurityLevel;

/// Capabilities `baseline` allows a container to add (the container runtime's defaults).
pub const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls `baseline` allows (namespaced, isolated from the node).
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types `baseline` allows (besides unset).
const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume sources `restricted` allows.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// What a violation is about, for naming the compose field it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `securityContext.privileged` (compose `privileged`).
    Privileged,
    /// `securityContext.capabilities.add[i]` (compose `cap_add[i]`).
    CapabilityAdded(usize),
    /// `securityContext.runAsUser` / `runAsNonRoot` (compose `user`).
    User,
    /// Anything a compose file does not set.
    Other,
}

/// One rule the Pod spec breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The container's name; `None` for a Pod-level field.
    pub container: Option<String>,
    /// What the violation is about.
    pub field: Field,
    /// Where in the Pod spec, e.g. `containers[0].securityContext.privileged`.
    pub path: String,
    /// What is not allowed, e.g. `privileged containers are not allowed`.
    pub message: String,
}

/// One container of any kind, as the rules see it.
struct ContainerView<'a> {
    path: String,
    name: &'a str,
    sc: Option<&'a SecurityContext>,
    host_ports: Vec<(usize, i32)>,
}

fn views(spec: &PodSpec) -> Vec<ContainerView<'_>> {
    let mut out = Vec::new();
    for (list, items) in [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_slice()),
    ] {
        for (i, c) in items.iter().enumerate() {
            out.push(ContainerView {
                path: format!("{list}[{i}]"),
                name: &c.name,
                sc: c.security_context.as_ref(),
                host_ports: c
                    .ports
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(j, p)| p.host_port.filter(|h| *h != 0).map(|h| (j, h)))
                    .collect(),
            });
        }
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push(ContainerView {
            path: format!("ephemeralContainers[{i}]"),
            name: &c.name,
            sc: c.security_context.as_ref(),
            host_ports: c
                .ports
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, p)| p.host_port.filter(|h| *h != 0).map(|h| (j, h)))
                .collect(),
        });
    }
    out
}

struct Found {
    level: PodSecurityLevel,
    out: Vec<Violation>,
}

impl Found {
    fn pod(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation {
            container: None,
            field: Field::Other,
            path: path.into(),
            message: message.into(),
        });
    }

    fn container(
        &mut self,
        c: &ContainerView,
        field: Field,
        path: &str,
        message: impl Into<String>,
    ) {
        self.out.push(Violation {
            container: Some(c.name.to_owned()),
            field,
            path: format!("{}.{path}", c.path),
            message: message.into(),
        });
    }

    fn restricted(&self) -> bool {
        self.level == PodSecurityLevel::Restricted
    }
}

/// Every rule of `level` that `spec` breaks, Pod-level fields first, then each init
/// container, container and ephemeral container in order. Empty for `privileged`.
#[must_use]
pub fn check(level: PodSecurityLevel, spec: &PodSpec) -> Vec<Violation> {
    let mut f = Found {
        level,
        out: Vec::new(),
    };
    if level == PodSecurityLevel::Privileged {
        return f.out;
    }
    for (on, path) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if on == Some(true) {
            f.pod(path, "sharing the node's namespaces is not allowed");
        }
    }
    let psc = spec.security_context.as_ref();
    let containers = views(spec);
    // restricted: runAsNonRoot and seccompProfile on the Pod, or on every container.
    let every =
        |pick: fn(&SecurityContext) -> bool| containers.iter().all(|c| c.sc.is_some_and(pick));
    let covered = Covered {
        non_root: every(|s| s.run_as_non_root == Some(true)),
        seccomp: every(|s| s.seccomp_profile.is_some()),
    };
    pod_security_context(&mut f, psc, covered);
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if v.host_path.is_some() {
            f.pod(
                format!("volumes[{i}].hostPath"),
                "hostPath volumes are not allowed",
            );
        } else if f.restricted()
            && let Some(kind) = volume_kind(v)
            && !RESTRICTED_VOLUMES.contains(&kind)
        {
            f.pod(
                format!("volumes[{i}].{kind}"),
                format!("{kind} volumes are not allowed"),
            );
        }
    }
    for c in &containers {
        container(&mut f, c);
    }
    f.out
}

/// Whether every container sets what `restricted` otherwise needs on the Pod.
#[derive(Clone, Copy)]
struct Covered {
    non_root: bool,
    seccomp: bool,
}

fn pod_security_context(f: &mut Found, psc: Option<&PodSecurityContext>, covered: Covered) {
    let Some(psc) = psc else {
        if f.restricted() && !covered.non_root {
            f.pod(
                "securityContext.runAsNonRoot",
                "must be true (on the Pod or every container)",
            );
        }
        if f.restricted() && !covered.seccomp {
            f.pod(
                "securityContext.seccompProfile.type",
                "must be RuntimeDefault or Localhost (on the Pod or every container)",
            );
        }
        return;
    };
    if psc
        .windows_options
        .as_ref()
        .and_then(|w| w.host_process)
        .unwrap_or(false)
    {
        f.pod(
            "securityContext.windowsOptions.hostProcess",
            "host processes are not allowed",
        );
    }
    if let Some(t) = psc.app_armor_profile.as_ref().map(|p| p.type_.as_str())
        && !matches!(t, "RuntimeDefault" | "Localhost")
    {
        f.pod(
            "securityContext.appArmorProfile.type",
            format!("AppArmor profile {t:?} is not allowed"),
        );
    }
    if let Some(m) = selinux_problem(psc.se_linux_options.as_ref()) {
        f.pod("securityContext.seLinuxOptions", m);
    }
    let seccomp = psc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if (seccomp.is_some() || !covered.seccomp)
        && let Some(m) = seccomp_problem(f.level, seccomp)
    {
        f.pod("securityContext.seccompProfile.type", m);
    }
    for (i, s) in psc.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            f.pod(
                format!("securityContext.sysctls[{i}]"),
                format!("sysctl {:?} is not allowed", s.name),
            );
        }
    }
    if f.restricted() {
        if psc.run_as_user == Some(0) {
            f.pod(
                "securityContext.runAsUser",
                "running as root (UID 0) is not allowed",
            );
        }
        if psc.run_as_non_root == Some(false)
            || (psc.run_as_non_root.is_none() && !covered.non_root)
        {
            f.pod(
                "securityContext.runAsNonRoot",
                "must be true (on the Pod or every container)",
            );
        }
    }
}

fn container(f: &mut Found, c: &ContainerView) {
    for (j, port) in &c.host_ports {
        f.container(
            c,
            Field::Other,
            &format!("ports[{j}].hostPort"),
            format!("host port {port} is not allowed"),
        );
    }
    let sc = c.sc;
    let get = |pick: fn(&SecurityContext) -> Option<bool>| sc.and_then(pick);
    if get(|s| s.privileged) == Some(true) {
        f.container(
            c,
            Field::Privileged,
            "securityContext.privileged",
            "privileged containers are not allowed",
        );
    }
    if get(|s| s.windows_options.as_ref().and_then(|w| w.host_process)) == Some(true) {
        f.container(
            c,
            Field::Other,
            "securityContext.windowsOptions.hostProcess",
            "host processes are not allowed",
        );
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    for (i, cap) in caps
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = cap.strip_prefix("CAP_").unwrap_or(cap);
        let allowed = if f.restricted() {
            name == "NET_BIND_SERVICE"
        } else {
            BASELINE_CAPABILITIES.contains(&name)
        };
        if !allowed {
            f.container(
                c,
                Field::CapabilityAdded(i),
                &format!("securityContext.capabilities.add[{i}]"),
                format!("adding capability {name} is not allowed"),
            );
        }
    }
    if let Some(sc) = sc {
        if let Some(t) = sc.app_armor_profile.as_ref().map(|p| p.type_.as_str())
            && !matches!(t, "RuntimeDefault" | "Localhost")
        {
            f.container(
                c,
                Field::Other,
                "securityContext.appArmorProfile.type",
                format!("AppArmor profile {t:?} is not allowed"),
            );
        }
        if let Some(m) = selinux_problem(sc.se_linux_options.as_ref()) {
            f.container(c, Field::Other, "securityContext.seLinuxOptions", m);
        }
        if let Some(p) = sc.proc_mount.as_deref()
            && p != "Default"
        {
            f.container(
                c,
                Field::Other,
                "securityContext.procMount",
                format!("/proc mount type {p:?} is not allowed"),
            );
        }
    }
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    // Unset on the container falls back to the Pod's, reported there.
    if seccomp.is_some()
        && let Some(m) = seccomp_problem(f.level, seccomp)
    {
        f.container(c, Field::Other, "securityContext.seccompProfile.type", m);
    }
    if !f.restricted() {
        return;
    }
    if get(|s| s.allow_privilege_escalation) != Some(false) {
        f.container(
            c,
            Field::Other,
            "securityContext.allowPrivilegeEscalation",
            "must be false",
        );
    }
    if sc.and_then(|s| s.run_as_user) == Some(0) {
        f.container(
            c,
            Field::User,
            "securityContext.runAsUser",
            "running as root (UID 0) is not allowed",
        );
    }
    // A container without runAsNonRoot or seccompProfile inherits the Pod's; a miss on both
    // is reported once, on the Pod (see `check`).
    if get(|s| s.run_as_non_root) == Some(false) {
        f.container(
            c,
            Field::User,
            "securityContext.runAsNonRoot",
            "must not be false",
        );
    }
    let drops_all = caps
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|x| x == "ALL"));
    if !drops_all {
        f.container(
            c,
            Field::Other,
            "securityContext.capabilities.drop",
            "must include ALL",
        );
    }
}

fn selinux_problem(o: Option<&k8s_openapi::api::core::v1::SELinuxOptions>) -> Option<String> {
    let o = o?;
    if let Some(t) = o.type_.as_deref().filter(|t| !t.is_empty())
        && !SELINUX_TYPES.contains(&t)
    {
        return Some(format!("SELinux type {t:?} is not allowed"));
    }
    if o.user.as_deref().is_some_and(|u| !u.is_empty())
        || o.role.as_deref().is_some_and(|r| !r.is_empty())
    {
        return Some("setting the SELinux user or role is not allowed".to_owned());
    }
    None
}

fn seccomp_problem(level: PodSecurityLevel, t: Option<&str>) -> Option<String> {
    match (level, t) {
        (_, Some("Unconfined")) => Some("seccomp profile \"Unconfined\" is not allowed".into()),
        (PodSecurityLevel::Restricted, Some(t)) if !matches!(t, "RuntimeDefault" | "Localhost") => {
            Some(format!(
                "seccomp profile {t:?} is not allowed: use RuntimeDefault or Localhost"
            ))
        }
        (PodSecurityLevel::Restricted, None) => {
            Some("must be RuntimeDefault or Localhost (on the Pod or every container)".into())
        }
        _ => None,
    }
}

/// The API name of a volume's source (`hostPath`, `nfs`, ...); `None` for an empty one.
fn volume_kind(v: &k8s_openapi::api::core::v1::Volume) -> Option<&'static str> {
    let value = serde_json::to_value(v).ok()?;
    let obj = value.as_object()?;
    let key = obj.keys().find(|k| k.as_str() != "name")?;
    KNOWN_VOLUME_KINDS
        .iter()
        .copied()
        .find(|k| k == key)
        .or(Some("unknown"))
}

const KNOWN_VOLUME_KINDS: [&str; 30] = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// The user and group Kompox's own init container runs as under `restricted`, and the Pod's
/// `fsGroup` when no service names a group: `nobody`.
pub const UNPRIVILEGED_ID: i64 = 65534;

/// Sets on `spec` what `restricted` requires and a compose file does not say: the Pod runs as
/// non-root with the `RuntimeDefault` seccomp profile; every container drops all
/// capabilities (keeping those it adds, which [`check`] then judges) and may not escalate
/// privileges. What the compose file asked for (`user: root`, `cap_add`) is left for
/// [`check`] to refuse, naming the field.
///
/// Volumes: the Pod gets an `fsGroup` (the first non-root group a service names, else
/// [`UNPRIVILEGED_ID`]; `fsGroupChangePolicy: OnRootMismatch`), so the kubelet makes the
/// volumes group-writable for it and every container holds it as a supplementary group; Kompox's
/// init container (`init-volume-subpaths`) runs as [`UNPRIVILEGED_ID`] in that group, so it
/// creates the sub-directories without root.
pub fn harden(spec: &mut PodSpec) {
    // The services' containers, native sidecars (init containers) included.
    let fs_group = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter(|c| c.name != super::SUBPATH_INIT_CONTAINER)
        .filter_map(|c| c.security_context.as_ref()?.run_as_group)
        .find(|g| *g > 0)
        .unwrap_or(UNPRIVILEGED_ID);
    let psc = spec
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    psc.run_as_non_root.get_or_insert(true);
    let fs_group = *psc.fs_group.get_or_insert(fs_group);
    psc.fs_group_change_policy
        .get_or_insert_with(|| "OnRootMismatch".to_owned());
    psc.seccomp_profile.get_or_insert_with(|| SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    });
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let sc = c
            .security_context
            .get_or_insert_with(SecurityContext::default);
        sc.allow_privilege_escalation.get_or_insert(false);
        let caps = sc.capabilities.get_or_insert_with(Capabilities::default);
        caps.drop = Some(vec!["ALL".to_owned()]);
        if c.name == super::SUBPATH_INIT_CONTAINER {
            sc.run_as_user.get_or_insert(UNPRIVILEGED_ID);
            sc.run_as_group.get_or_insert(fs_group);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("a PodSpec")
    }

    /// A Pod that passes `restricted` (and so `baseline`).
    fn restricted_pod() -> serde_json::Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}],
            "containers": [{
                "name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                },
            }],
        })
    }

    /// Merges `patch` into `base` (JSON merge patch: null removes).
    fn with(mut base: serde_json::Value, patch: serde_json::Value) -> PodSpec {
        fn merge(to: &mut serde_json::Value, from: serde_json::Value) {
            match (to, from) {
                (serde_json::Value::Object(t), serde_json::Value::Object(f)) => {
                    for (k, v) in f {
                        if v.is_null() {
                            t.remove(&k);
                        } else {
                            merge(t.entry(k).or_insert(serde_json::Value::Null), v);
                        }
                    }
                }
                (t, f) => *t = f,
            }
        }
        merge(&mut base, patch);
        pod(base)
    }

    fn paths(level: PodSecurityLevel, spec: &PodSpec) -> Vec<String> {
        check(level, spec).into_iter().map(|v| v.path).collect()
    }

    #[test]
    fn a_restricted_pod_passes_every_level() {
        let p = pod(restricted_pod());
        for level in [
            PodSecurityLevel::Restricted,
            PodSecurityLevel::Baseline,
            PodSecurityLevel::Privileged,
        ] {
            assert_eq!(check(level, &p), Vec::new(), "{level}");
        }
    }

    #[test]
    fn baseline_rules() {
        use PodSecurityLevel::Baseline;
        let c0 = "containers[0].securityContext";
        let cases: Vec<(&str, serde_json::Value, Vec<String>)> = vec![
            (
                "hostNetwork",
                json!({"hostNetwork": true}),
                vec!["hostNetwork".into()],
            ),
            ("hostPID", json!({"hostPID": true}), vec!["hostPID".into()]),
            ("hostIPC", json!({"hostIPC": true}), vec!["hostIPC".into()]),
            (
                "hostNetwork false is fine",
                json!({"hostNetwork": false}),
                vec![],
            ),
            (
                "privileged",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"privileged": true}}]}),
                vec![format!("{c0}.privileged")],
            ),
            (
                "privileged init container",
                json!({"initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": true}}]}),
                vec!["initContainers[0].securityContext.privileged".into()],
            ),
            (
                "capability outside the default set",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"capabilities": {"add": ["CHOWN", "SYS_ADMIN", "CAP_NET_ADMIN"]}}}]}),
                vec![
                    format!("{c0}.capabilities.add[1]"),
                    format!("{c0}.capabilities.add[2]"),
                ],
            ),
            (
                "hostPath volume",
                json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
                vec!["volumes[0].hostPath".into()],
            ),
            (
                "host port",
                json!({"containers": [{"name": "web", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                vec!["containers[0].ports[0].hostPort".into()],
            ),
            (
                "host port 0 is fine",
                json!({"containers": [{"name": "web", "image": "x", "ports": [{"containerPort": 80, "hostPort": 0}]}]}),
                vec![],
            ),
            (
                "seccomp Unconfined on the Pod",
                json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
                vec!["securityContext.seccompProfile.type".into()],
            ),
            (
                "seccomp Unconfined on a container",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}),
                vec![format!("{c0}.seccompProfile.type")],
            ),
            (
                "AppArmor unconfined",
                json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
                vec!["securityContext.appArmorProfile.type".into()],
            ),
            (
                "SELinux type",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"seLinuxOptions": {"type": "spc_t"}}}]}),
                vec![format!("{c0}.seLinuxOptions")],
            ),
            (
                "SELinux user",
                json!({"securityContext": {"seLinuxOptions": {"user": "system_u"}}}),
                vec!["securityContext.seLinuxOptions".into()],
            ),
            (
                "procMount Unmasked",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"procMount": "Unmasked"}}]}),
                vec![format!("{c0}.procMount")],
            ),
            (
                "unsafe sysctl",
                json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]}}),
                vec!["securityContext.sysctls[1]".into()],
            ),
            (
                "host process",
                json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}),
                vec!["securityContext.windowsOptions.hostProcess".into()],
            ),
            (
                "root and missing restricted fields are fine",
                json!({"securityContext": null, "containers": [{"name": "web", "image": "x", "securityContext": {"runAsUser": 0}}]}),
                vec![],
            ),
        ];
        for (name, patch, want) in cases {
            let spec = with(restricted_pod(), patch);
            assert_eq!(paths(Baseline, &spec), want, "case {name:?}");
            assert_eq!(
                check(PodSecurityLevel::Privileged, &spec),
                Vec::new(),
                "case {name:?}"
            );
        }
    }

    #[test]
    fn restricted_rules() {
        use PodSecurityLevel::Restricted;
        let c0 = "containers[0].securityContext";
        let cases: Vec<(&str, serde_json::Value, Vec<String>)> = vec![
            (
                "nfs volume",
                json!({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}),
                vec!["volumes[0].nfs".into()],
            ),
            (
                "privilege escalation unset",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"allowPrivilegeEscalation": null, "capabilities": {"drop": ["ALL"]}}}]}),
                vec![format!("{c0}.allowPrivilegeEscalation")],
            ),
            (
                "root user",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "runAsUser": 0, "capabilities": {"drop": ["ALL"]}}}]}),
                vec![format!("{c0}.runAsUser")],
            ),
            (
                "runAsNonRoot false on a container",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": false, "capabilities": {"drop": ["ALL"]}}}]}),
                vec![format!("{c0}.runAsNonRoot")],
            ),
            (
                "no Pod securityContext",
                json!({"securityContext": null}),
                vec![
                    "securityContext.runAsNonRoot".into(),
                    "securityContext.seccompProfile.type".into(),
                ],
            ),
            (
                "root Pod",
                json!({"securityContext": {"runAsUser": 0}}),
                vec!["securityContext.runAsUser".into()],
            ),
            (
                "seccomp Localhost is fine",
                json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}),
                vec![],
            ),
            (
                "capabilities not dropped",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["NET_RAW"]}}}]}),
                vec![format!("{c0}.capabilities.drop")],
            ),
            (
                "a default capability baseline allows",
                json!({"containers": [{"name": "web", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}]}),
                vec![format!("{c0}.capabilities.add[0]")],
            ),
        ];
        for (name, patch, want) in cases {
            let spec = with(restricted_pod(), patch);
            assert_eq!(paths(Restricted, &spec), want, "case {name:?}");
        }
    }

    #[test]
    fn violations_name_container_and_field() {
        let spec = pod(json!({"containers": [
            {"name": "ok", "image": "x"},
            {"name": "bad", "image": "x", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}}},
        ]}));
        let v = check(PodSecurityLevel::Baseline, &spec);
        let got: Vec<(Option<&str>, Field)> = v
            .iter()
            .map(|v| (v.container.as_deref(), v.field))
            .collect();
        assert_eq!(
            got,
            [
                (Some("bad"), Field::Privileged),
                (Some("bad"), Field::CapabilityAdded(0))
            ]
        );
        assert_eq!(v[1].message, "adding capability SYS_ADMIN is not allowed");
    }

    #[test]
    fn harden_makes_a_plain_pod_restricted() {
        let mut spec = pod(json!({
            "volumes": [{"name": "e", "emptyDir": {}}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "web", "image": "x", "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["NET_RAW"]}}}],
        }));
        assert!(!check(PodSecurityLevel::Restricted, &spec).is_empty());
        harden(&mut spec);
        assert_eq!(check(PodSecurityLevel::Restricted, &spec), Vec::new());
        // What the compose file asked for stays, for the check to judge.
        let mut root = pod(
            json!({"containers": [{"name": "web", "image": "x", "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}}}]}),
        );
        harden(&mut root);
        assert_eq!(
            paths(PodSecurityLevel::Restricted, &root),
            [
                "containers[0].securityContext.capabilities.add[0]",
                "containers[0].securityContext.runAsUser"
            ]
        );
    }
}
