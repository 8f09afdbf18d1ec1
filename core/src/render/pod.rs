//! The one Pod: a container per compose service, `depends_on` as native sidecars and init
//! containers, volumes, probes, resources and security settings.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, ExecAction, HostAlias, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolumeClaimVolumeSource, PodSpec, Probe, ResourceRequirements,
    SecretEnvSource, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::ctx::{
    Ctx, Names, bytes_quantity, cpu_quantity, generated_volume_name, literal, seconds,
};
use super::files::{
    DEFAULT_COMPOSE_FILE_MODE, DEFAULT_FILE_MODE, Derived, DiskBind, FileRef, FileTable,
    FileVolumes, bind_on_disk, mount_fields, project_path,
};
use super::network::{protocol_name, service_ports};
use super::storage::Storage;
use super::{ErrorReason, SUBPATH_INIT_CONTAINER, SUBPATH_INIT_IMAGE};
use crate::compose::{
    DependencyCondition, HealthTest, Healthcheck, IdOrName, MountSource, Project, Restart, Service,
};
use crate::provider::ZONE_LABEL;

/// Where the init container mounts each app volume whose sub-directories it creates.
const SUBPATH_INIT_ROOT: &str = "/work";

/// Compose healthcheck defaults.
const HC_INTERVAL: i32 = 30;
const HC_TIMEOUT: i32 = 30;
const HC_RETRIES: i32 = 3;
const HC_START_INTERVAL: i32 = 5;

/// How a compose service runs inside the Pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A regular container.
    Main,
    /// A native sidecar (init container with `restartPolicy: Always`): others depend on it
    /// being started (or healthy: then it has a startupProbe).
    Sidecar { startup: bool },
    /// An init container run to completion: others depend on it with
    /// `service_completed_successfully`.
    Job,
}

/// What the pod builder needs besides the compose project.
pub(crate) struct PodInputs<'a> {
    pub project: &'a Project,
    pub storage: &'a Storage,
    /// Names of `spec.volumes[]` (bound or not).
    pub spec_volumes: BTreeSet<&'a str>,
    /// Compose service → derived env Secret.
    pub env_secrets: &'a BTreeMap<String, String>,
    /// (service, environment key) → (Secret, key) for values kept in a Secret.
    pub env_refs: &'a BTreeMap<(String, String), (String, String)>,
    pub derived: &'a Derived,
    pub names: &'a Names,
    /// How compose service names resolve inside the Pod ([`hosts`]).
    pub hosts: &'a Hosts,
}

/// A mount planned for one container, with the compose/spec field it comes from.
struct PlannedMount {
    field: String,
    mount: VolumeMount,
}

#[derive(Default)]
struct Volumes {
    /// App volumes used by some container.
    app_used: BTreeSet<String>,
    /// (app volume, sub-path) the init container creates.
    subpaths: BTreeSet<(String, String)>,
    /// emptyDir volumes by name.
    empty_dirs: BTreeMap<String, Volume>,
    files: FileVolumes,
}

/// Builds the pod spec, or `None` when errors were recorded.
pub(crate) fn build(cx: &mut Ctx, inp: &PodInputs, files: &mut FileTable) -> Option<PodSpec> {
    let project = inp.project;
    if project.services.is_empty() {
        cx.error(
            ErrorReason::InvalidCompose,
            "services",
            "at least one service is required",
        );
        return None;
    }
    let (roles, init_order) = roles(cx, project)?;
    let mut vols = Volumes::default();

    // Pass 1: compose mounts (binds may take files.mounts entries, so this comes before the
    // remaining entries are mounted everywhere).
    let mut planned: BTreeMap<&str, Vec<PlannedMount>> = BTreeMap::new();
    for (name, svc) in &project.services {
        let m = compose_mounts(cx, inp, files, &mut vols, name, svc);
        planned.insert(name.as_str(), m);
    }

    // Pass 2: containers.
    let mut global: Vec<PlannedMount> = files
        .unused()
        .map(|e| PlannedMount {
            field: e.field.clone(),
            mount: vols.files.mount(
                &FileRef {
                    kind: e.kind,
                    name: e.name.clone(),
                    key: e.key.clone(),
                },
                e.mode.unwrap_or(DEFAULT_FILE_MODE),
                &e.path,
            ),
        })
        .collect();
    if let Some(file) = &inp.hosts.file {
        global.push(PlannedMount {
            field: "services".to_owned(),
            mount: vols.files.mount(file, DEFAULT_FILE_MODE, ETC_HOSTS),
        });
    }
    let mut port_owner: BTreeMap<(u16, &str), &str> = BTreeMap::new();
    let mut containers: BTreeMap<&str, Container> = BTreeMap::new();
    for (name, svc) in &project.services {
        let role = roles.get(name.as_str()).copied().unwrap_or(Role::Main);
        let mounts = planned.remove(name.as_str()).unwrap_or_default();
        let c = container(cx, inp, &mut vols, role, name, svc, mounts, &global);
        for (port, proto, _) in service_ports(svc) {
            if let Some(other) = port_owner.insert((port, proto.as_str()), name) {
                cx.error(
                    ErrorReason::InvalidCompose,
                    format!("{}.ports", crate::compose::service_path(name)),
                    format!(
                        "container port {port}/{} is also used by service {other:?}: all services share one Pod network",
                        proto.as_str()
                    ),
                );
            }
        }
        containers.insert(name.as_str(), c);
    }

    let mut init = Vec::new();
    if !vols.subpaths.is_empty() {
        init.push(subpath_init(&vols.subpaths));
    }
    for n in &init_order {
        if let Some(c) = containers.remove(n) {
            init.push(c);
        }
    }
    let main: Vec<Container> = containers.into_values().collect();
    if !vols.subpaths.is_empty()
        && project
            .services
            .keys()
            .any(|n| inp.names.container(n) == SUBPATH_INIT_CONTAINER)
    {
        cx.error(
            ErrorReason::InvalidCompose,
            crate::compose::service_path(SUBPATH_INIT_CONTAINER),
            format!("the name {SUBPATH_INIT_CONTAINER:?} is taken by Kompox's init container: rename the service"),
        );
    }

    // Volumes: app volumes in spec order, then emptyDirs and file volumes by name.
    let mut volumes = Vec::new();
    for v in &inp.storage.volumes {
        if vols.app_used.contains(&v.pod_name) {
            volumes.push(Volume {
                name: v.pod_name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: v.claim.clone(),
                    read_only: None,
                }),
                ..Volume::default()
            });
        } else {
            cx.warn(
                &v.field,
                format!(
                    "volume {:?} is not used by any compose service (relative binds use spec.volumes[0])",
                    v.name
                ),
            );
        }
    }
    volumes.extend(vols.empty_dirs.into_values());
    volumes.extend(vols.files.into_volumes());
    let mut names = BTreeSet::new();
    for v in &volumes {
        if !names.insert(v.name.as_str()) {
            cx.error(
                ErrorReason::InvalidSpec,
                "spec.volumes",
                format!(
                    "volume name {:?} clashes with a volume Kompox generates",
                    v.name
                ),
            );
        }
    }

    let affinity = inp.storage.zone.as_ref().map(|zone| Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: ZONE_LABEL.to_owned(),
                        operator: "In".to_owned(),
                        values: Some(vec![zone.clone()]),
                    }]),
                    match_fields: None,
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    });

    Some(PodSpec {
        containers: main,
        init_containers: (!init.is_empty()).then_some(init),
        volumes: (!volumes.is_empty()).then_some(volumes),
        affinity,
        host_aliases: inp.hosts.aliases.clone(),
        hostname: inp.hosts.hostname.clone(),
        termination_grace_period_seconds: project
            .services
            .values()
            .filter_map(|s| s.stop_grace_period)
            .max()
            .map(|d| i64::from(seconds(d))),
        // Compose has no service-link variables (FOO_SERVICE_HOST, ...); some images
        // misread them.
        enable_service_links: Some(false),
        // Compose containers get no API credentials.
        automount_service_account_token: Some(false),
        ..PodSpec::default()
    })
}

/// The roles of all services and the order of the init containers, or `None` on a cycle.
#[allow(clippy::type_complexity)]
fn roles<'p>(
    cx: &mut Ctx,
    project: &'p Project,
) -> Option<(BTreeMap<&'p str, Role>, Vec<&'p str>)> {
    if let Some(cycle) = find_cycle(project) {
        let first = cycle.first().copied().unwrap_or_default();
        cx.error(
            ErrorReason::InvalidCompose,
            format!("{}.depends_on", crate::compose::service_path(first)),
            format!("dependency cycle: {}", cycle.join(" -> ")),
        );
        return None;
    }
    let mut sidecars: BTreeSet<&str> = BTreeSet::new();
    let mut startup: BTreeSet<&str> = BTreeSet::new();
    let mut jobs: BTreeSet<&str> = BTreeSet::new();
    for (name, svc) in &project.services {
        for (dep, d) in &svc.depends_on {
            let Some((dep, dsvc)) = project.services.get_key_value(dep) else {
                continue;
            };
            match d.condition {
                DependencyCondition::CompletedSuccessfully => {
                    jobs.insert(dep);
                }
                DependencyCondition::Started => {
                    sidecars.insert(dep);
                }
                DependencyCondition::Healthy => {
                    sidecars.insert(dep);
                    if probe_exec(dsvc.healthcheck.as_ref()).is_some() {
                        startup.insert(dep);
                    } else {
                        cx.error(
                            ErrorReason::InvalidCompose,
                            format!("{}.depends_on.{dep}", crate::compose::service_path(name)),
                            format!(
                                "condition service_healthy needs a healthcheck with a test on service {dep:?} (Kubernetes does not run an image's HEALTHCHECK)"
                            ),
                        );
                    }
                }
            }
        }
    }
    let mut roles = BTreeMap::new();
    for name in project.services.keys() {
        let n = name.as_str();
        let role = if jobs.contains(n) {
            Role::Job
        } else if sidecars.contains(n) {
            Role::Sidecar {
                startup: startup.contains(n),
            }
        } else {
            Role::Main
        };
        roles.insert(n, role);
    }
    // Kahn's algorithm over the init services, ties broken by name.
    let init: BTreeSet<&str> = jobs.union(&sidecars).copied().collect();
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &n in &init {
        let deps = project.depends_on(n, |d| init.contains(d));
        waiting.insert(n, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(n);
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, w)| **w == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::new();
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for &m in dependents.get(n).map(Vec::as_slice).unwrap_or_default() {
            if let Some(w) = waiting.get_mut(m) {
                *w = w.saturating_sub(1);
                if *w == 0 {
                    ready.insert(m);
                }
            }
        }
    }
    Some((roles, order))
}

/// The first `depends_on` cycle (services in name order), as `a, b, a`.
fn find_cycle(project: &Project) -> Option<Vec<&str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        Grey,
        Black,
    }
    let deps = |n: &str| project.depends_on(n, |d| project.services.contains_key(d));
    let mut color: BTreeMap<&str, Color> = BTreeMap::new();
    for start in project.services.keys() {
        if color.contains_key(start.as_str()) {
            continue;
        }
        // Iterative DFS: (node, its dependencies, next index).
        let mut stack: Vec<(&str, Vec<&str>, usize)> = vec![(start, deps(start), 0)];
        color.insert(start, Color::Grey);
        while let Some((node, ds, idx)) = stack.last_mut() {
            if let Some(&next) = ds.get(*idx) {
                *idx += 1;
                match color.get(next) {
                    None => {
                        color.insert(next, Color::Grey);
                        stack.push((next, deps(next), 0));
                    }
                    Some(Color::Grey) => {
                        let from = stack.iter().position(|(n, _, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<&str> =
                            stack[from..].iter().map(|(n, _, _)| *n).collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    Some(Color::Black) => {}
                }
            } else {
                let done = *node;
                color.insert(done, Color::Black);
                stack.pop();
            }
        }
    }
    None
}

/// Resolves the compose `volumes`/`tmpfs` of one service into volume mounts.
fn compose_mounts(
    cx: &mut Ctx,
    inp: &PodInputs,
    files: &mut FileTable,
    vols: &mut Volumes,
    name: &str,
    svc: &Service,
) -> Vec<PlannedMount> {
    let mut out = Vec::new();
    let fields = mount_fields(name, svc);
    let (mut anon, mut tmp) = (0usize, 0usize);
    for (field, m) in fields.into_iter().zip(&svc.mounts) {
        let read_only = m.read_only.then_some(true);
        let on_volume = |vols: &mut Volumes, vol: &str, sub: Option<&str>| {
            vols.app_used.insert(vol.to_owned());
            if let Some(s) = sub {
                vols.subpaths.insert((vol.to_owned(), s.to_owned()));
            }
            VolumeMount {
                name: vol.to_owned(),
                mount_path: m.target.clone(),
                sub_path: sub.map(str::to_owned),
                read_only,
                ..VolumeMount::default()
            }
        };
        let mount = match &m.source {
            MountSource::RelativeBind { path }
            | MountSource::AbsoluteBind { path }
            | MountSource::HomeBind { path } => {
                let home = matches!(m.source, MountSource::HomeBind { .. });
                let file_path = if home { None } else { project_path(path) };
                let covered = file_path.as_deref().and_then(|p| files.take(p));
                if let Some(e) = covered {
                    // A single-file bind provided by a files.mounts entry.
                    if !m.read_only {
                        cx.warn(
                            &field,
                            format!("mounted read-only from {} ({})", e.describe(), e.field),
                        );
                    }
                    let file = FileRef {
                        kind: e.kind,
                        name: e.name.clone(),
                        key: e.key.clone(),
                    };
                    let mode = e.mode.unwrap_or(DEFAULT_FILE_MODE);
                    vols.files.mount(&file, mode, &m.target)
                } else if let Some(dir_files) = file_path
                    .as_deref()
                    .map(|p| files.take_dir(p))
                    .filter(|f| !f.is_empty())
                {
                    // A directory provided file by file by files.mounts entries under it.
                    if !m.read_only {
                        cx.warn(
                            &field,
                            format!(
                                "mounted read-only: its {} files come from spec.files.mounts entries under {}",
                                dir_files.len(),
                                file_path.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                    vols.files.mount_dir(
                        &format!("{}-{}", inp.names.container(name), path),
                        &dir_files,
                        &m.target,
                    )
                } else {
                    match bind_on_disk(&m.source) {
                        Some(DiskBind::Refused(why)) => {
                            cx.error(
                                ErrorReason::InvalidCompose,
                                &field,
                                format!("bind source {path:?} is refused: {why}"),
                            );
                            continue;
                        }
                        Some(DiskBind::Dropped(why)) => {
                            cx.warn(&field, format!("bind source {path:?} left out: {why}"));
                            continue;
                        }
                        Some(DiskBind::Directory { subpath, host }) => {
                            if let Some(first) = inp.storage.volumes.first() {
                                if host {
                                    let shown = if home {
                                        format!("~/{path}")
                                    } else {
                                        path.clone()
                                    };
                                    cx.warn(
                                        &field,
                                        format!(
                                            "host path {shown} becomes the directory {} on volume {:?} (spec.volumes[0]), empty at first: copy the host's data there if the app needs it",
                                            subpath.as_deref().unwrap_or("."),
                                            first.name
                                        ),
                                    );
                                }
                                on_volume(vols, &first.pod_name, subpath.as_deref())
                            } else if inp.spec_volumes.is_empty() {
                                cx.error(
                                    ErrorReason::InvalidSpec,
                                    &field,
                                    format!(
                                        "bind {path:?} needs an app volume: binds are directories on spec.volumes[0], and spec.volumes is empty"
                                    ),
                                );
                                continue;
                            } else {
                                continue; // the first volume's disk is in error already
                            }
                        }
                        None => continue,
                    }
                }
            }
            MountSource::Volume { name: vol, subpath } => {
                if let Some(v) = inp.storage.volume(vol) {
                    if !m.nocopy {
                        cx.warn(
                            &field,
                            format!(
                                "the image's files at {} are not copied into the volume as Docker does for a new named volume (volume.nocopy: true silences this)",
                                m.target
                            ),
                        );
                    }
                    on_volume(vols, &v.pod_name, subpath.as_deref())
                } else if inp.spec_volumes.contains(vol.as_str()) {
                    continue; // its disk is in error already
                } else {
                    cx.error(
                        ErrorReason::InvalidSpec,
                        &field,
                        format!(
                            "compose volume {vol:?} is not bound to a disk: add {{name: {vol}, diskRef: {{name: …}}}} to spec.volumes"
                        ),
                    );
                    continue;
                }
            }
            MountSource::Anonymous => {
                cx.warn(
                    &field,
                    format!(
                        "anonymous volume at {} becomes an emptyDir: its content is lost when the Pod is replaced",
                        m.target
                    ),
                );
                anon += 1;
                let vname = generated_volume_name("anon", &format!("{name}-{anon}"));
                vols.empty_dirs.insert(
                    vname.clone(),
                    Volume {
                        name: vname.clone(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    },
                );
                VolumeMount {
                    name: vname,
                    mount_path: m.target.clone(),
                    read_only,
                    ..VolumeMount::default()
                }
            }
            MountSource::Tmpfs { size } => {
                tmp += 1;
                let vname = generated_volume_name("tmpfs", &format!("{name}-{tmp}"));
                vols.empty_dirs
                    .insert(vname.clone(), memory_volume(&vname, *size));
                VolumeMount {
                    name: vname,
                    mount_path: m.target.clone(),
                    read_only,
                    ..VolumeMount::default()
                }
            }
        };
        out.push(PlannedMount { field, mount });
    }
    out
}

fn memory_volume(name: &str, size: Option<u64>) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: size.map(|s| Quantity(bytes_quantity(s))),
        }),
        ..Volume::default()
    }
}

/// The container of one compose service.
#[allow(clippy::too_many_arguments)]
fn container(
    cx: &mut Ctx,
    inp: &PodInputs,
    vols: &mut Volumes,
    role: Role,
    name: &str,
    svc: &Service,
    compose_mounts: Vec<PlannedMount>,
    global: &[PlannedMount],
) -> Container {
    let field = crate::compose::service_path(name);
    match (&svc.image, &svc.build) {
        (None, Some(_)) => cx.error(
            ErrorReason::InvalidCompose,
            format!("{field}.build"),
            format!(
                "Kompox deploys images and does not build them: build and push the image, then set {field}.image"
            ),
        ),
        (None, None) => cx.error(ErrorReason::InvalidCompose, format!("{field}.image"), "required"),
        (Some(image), Some(_)) => cx.warn(
            format!("{field}.build"),
            format!("ignored: Kompox deploys the image {image:?}; build and push it first"),
        ),
        (Some(_), None) => {}
    }

    // Mounts: compose volumes, configs, secrets, shm, then files.mounts entries.
    let mut mounts = compose_mounts;
    for (secret, list) in [(false, &svc.configs), (true, &svc.secrets)] {
        let kind = if secret { "secrets" } else { "configs" };
        for (i, fm) in list.iter().enumerate() {
            let f = format!("{field}.{kind}[{i}]");
            if fm.uid.is_some() || fm.gid.is_some() {
                cx.warn(
                    &f,
                    "uid/gid ignored: Kubernetes owns projected files by root (or the Pod's fsGroup)",
                );
            }
            let Some(file) = inp.derived.resolved.get(&(secret, fm.source.clone())) else {
                continue; // error recorded when resolving the top-level entry
            };
            let mode = fm
                .mode
                .and_then(|m| i32::try_from(m & 0o7777).ok())
                .unwrap_or(DEFAULT_COMPOSE_FILE_MODE);
            let mount = vols.files.mount(file, mode, &fm.target);
            mounts.push(PlannedMount { field: f, mount });
        }
    }
    if let Some(size) = svc.shm_size {
        let vname = generated_volume_name("shm", name);
        vols.empty_dirs
            .insert(vname.clone(), memory_volume(&vname, Some(size)));
        mounts.push(PlannedMount {
            field: format!("{field}.shm_size"),
            mount: VolumeMount {
                name: vname,
                mount_path: "/dev/shm".to_owned(),
                ..VolumeMount::default()
            },
        });
    }
    for g in global {
        mounts.push(PlannedMount {
            field: g.field.clone(),
            mount: g.mount.clone(),
        });
    }
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    let mut volume_mounts = Vec::new();
    for p in mounts {
        if let Some(prev) = targets.insert(p.mount.mount_path.clone(), p.field.clone()) {
            cx.error(
                ErrorReason::InvalidCompose,
                &p.field,
                format!(
                    "{} is already mounted by {prev} in container {name:?}",
                    p.mount.mount_path
                ),
            );
            continue;
        }
        volume_mounts.push(p.mount);
    }

    let env: Vec<EnvVar> = svc
        .environment
        .iter()
        .map(
            |(k, v)| match inp.env_refs.get(&(name.to_owned(), k.clone())) {
                // A value from a Secret is not expanded by Kubernetes: no `$` doubling.
                Some((secret, key)) => EnvVar {
                    name: k.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.clone(),
                            key: key.clone(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                },
                None => EnvVar {
                    name: k.clone(),
                    value: Some(literal(v)),
                    value_from: None,
                },
            },
        )
        .collect();
    let env_from = inp.env_secrets.get(name).map(|s| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: s.clone(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]
    });
    let ports: Vec<ContainerPort> = service_ports(svc)
        .into_iter()
        .map(|(port, proto, _)| ContainerPort {
            container_port: i32::from(port),
            protocol: Some(protocol_name(proto).to_owned()),
            ..ContainerPort::default()
        })
        .collect();

    let mut c = Container {
        name: inp.names.container(name).to_owned(),
        image: svc.image.clone(),
        command: svc
            .entrypoint
            .as_ref()
            .map(|v| v.iter().map(|s| literal(s)).collect()),
        args: svc
            .command
            .as_ref()
            .map(|v| v.iter().map(|s| literal(s)).collect()),
        env: (!env.is_empty()).then_some(env),
        env_from,
        ports: (!ports.is_empty()).then_some(ports),
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        working_dir: svc.working_dir.clone(),
        stdin: svc.stdin_open.then_some(true),
        tty: svc.tty.then_some(true),
        resources: resources(svc),
        security_context: security_context(cx, &field, svc),
        image_pull_policy: pull_policy(cx, &field, svc),
        ..Container::default()
    };

    let probe = probe_exec(svc.healthcheck.as_ref());
    match role {
        Role::Job => {
            if probe.is_some() {
                cx.warn(
                    format!("{field}.healthcheck"),
                    "ignored: the service runs to completion before the others (service_completed_successfully), as an init container without probes",
                );
            }
        }
        Role::Main | Role::Sidecar { .. } => {
            if let (Some(h), Some(exec)) = (svc.healthcheck.as_ref(), probe) {
                let (ready, live, start) = probes(h, exec);
                c.readiness_probe = Some(ready);
                c.liveness_probe = Some(live);
                if role == (Role::Sidecar { startup: true }) {
                    c.startup_probe = Some(start);
                }
            } else if let Some(h) = &svc.healthcheck
                && !h.disable
            {
                cx.warn(
                    format!("{field}.healthcheck"),
                    "no test: the image's HEALTHCHECK is not run by Kubernetes, so there are no probes",
                );
            }
            if let Some(r @ (Restart::No | Restart::OnFailure { .. })) = svc.restart {
                let what = if r == Restart::No { "no" } else { "on-failure" };
                cx.warn(
                    format!("{field}.restart"),
                    format!(
                        "{what:?} is not honoured: Kubernetes restarts the containers of a Deployment's Pod whenever they exit"
                    ),
                );
            }
        }
    }
    if let Role::Sidecar { .. } = role {
        c.restart_policy = Some("Always".to_owned());
    }
    for (key, what) in [
        (!svc.labels.is_empty(), "labels"),
        (!svc.annotations.is_empty(), "annotations"),
    ] {
        if key {
            cx.warn(
                format!("{field}.{what}"),
                format!("ignored: compose {what} are container metadata; Kompox sets the Kubernetes labels and annotations"),
            );
        }
    }
    if svc.hostname.is_some() {
        cx.warn(
            format!("{field}.hostname"),
            "ignored: all services share the Pod's hostname",
        );
    }
    if !svc.profiles.is_empty() {
        cx.warn(
            format!("{field}.profiles"),
            "ignored: Kompox renders every service, whatever its profiles",
        );
    }
    c
}

/// The exec action of a usable healthcheck (not disabled, with a test).
fn probe_exec(h: Option<&Healthcheck>) -> Option<ExecAction> {
    let h = h.filter(|h| !h.disable)?;
    let command = match h.test.as_ref()? {
        HealthTest::Cmd(args) if !args.is_empty() => args.clone(),
        HealthTest::Cmd(_) => return None,
        HealthTest::Shell(s) => vec!["/bin/sh".to_owned(), "-c".to_owned(), s.clone()],
    };
    Some(ExecAction {
        command: Some(command),
    })
}

/// Readiness, liveness and startup probes of a healthcheck (compose defaults: interval 30s,
/// timeout 30s, retries 3, start_period 0, start_interval 5s).
fn probes(h: &Healthcheck, exec: ExecAction) -> (Probe, Probe, Probe) {
    let interval = h.interval.map_or(HC_INTERVAL, seconds);
    let timeout = h.timeout.map_or(HC_TIMEOUT, seconds);
    let retries = h
        .retries
        .map_or(HC_RETRIES, |r| i32::try_from(r).unwrap_or(i32::MAX).max(1));
    let start_period = h.start_period.filter(|d| !d.is_zero()).map(seconds);
    let base = Probe {
        exec: Some(exec),
        period_seconds: Some(interval),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(retries),
        ..Probe::default()
    };
    let ready = base.clone();
    let live = Probe {
        initial_delay_seconds: start_period,
        ..base.clone()
    };
    // The startup probe polls every start_interval for as long as compose would wait
    // before calling the service unhealthy: start_period + retries × interval.
    let every = h.start_interval.map_or(HC_START_INTERVAL, seconds);
    let budget = i64::from(start_period.unwrap_or(0)) + i64::from(retries) * i64::from(interval);
    let attempts = (budget + i64::from(every) - 1) / i64::from(every);
    let start = Probe {
        period_seconds: Some(every),
        failure_threshold: Some(i32::try_from(attempts.max(1)).unwrap_or(i32::MAX)),
        ..base
    };
    (ready, live, start)
}

fn resources(svc: &Service) -> Option<ResourceRequirements> {
    let list = |spec: &crate::compose::ResourceSpec| {
        let mut m = BTreeMap::new();
        if let Some(c) = spec.millicpus {
            m.insert("cpu".to_owned(), Quantity(cpu_quantity(c)));
        }
        if let Some(b) = spec.memory {
            m.insert("memory".to_owned(), Quantity(bytes_quantity(b)));
        }
        (!m.is_empty()).then_some(m)
    };
    let limits = list(&svc.resources.limits);
    let requests = list(&svc.resources.reservations);
    (limits.is_some() || requests.is_some()).then_some(ResourceRequirements {
        limits,
        requests,
        claims: None,
    })
}

fn security_context(cx: &mut Ctx, field: &str, svc: &Service) -> Option<SecurityContext> {
    let mut sc = SecurityContext::default();
    let mut set = false;
    if let Some(u) = &svc.user {
        match &u.user {
            IdOrName::Id(id) => {
                sc.run_as_user = Some(i64::from(*id));
                set = true;
            }
            IdOrName::Name(n) if n == "root" => {
                sc.run_as_user = Some(0);
                set = true;
            }
            IdOrName::Name(n) => cx.warn(
                format!("{field}.user"),
                format!(
                    "user name {n:?} ignored: Kubernetes needs a numeric UID (e.g. user: \"1000:1000\"); the image's user applies"
                ),
            ),
        }
        match &u.group {
            Some(IdOrName::Id(id)) => {
                sc.run_as_group = Some(i64::from(*id));
                set = true;
            }
            Some(IdOrName::Name(n)) if n == "root" => {
                sc.run_as_group = Some(0);
                set = true;
            }
            Some(IdOrName::Name(n)) => cx.warn(
                format!("{field}.user"),
                format!("group name {n:?} ignored: Kubernetes needs a numeric GID"),
            ),
            None => {}
        }
    }
    let caps = |list: &[String]| -> Option<Vec<String>> {
        let v: Vec<String> = list
            .iter()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                c.strip_prefix("CAP_").map(str::to_owned).unwrap_or(c)
            })
            .collect();
        (!v.is_empty()).then_some(v)
    };
    let (add, drop) = (caps(&svc.cap_add), caps(&svc.cap_drop));
    if add.is_some() || drop.is_some() {
        sc.capabilities = Some(Capabilities { add, drop });
        set = true;
    }
    if svc.privileged {
        sc.privileged = Some(true);
        set = true;
    }
    if svc.read_only {
        sc.read_only_root_filesystem = Some(true);
        set = true;
    }
    set.then_some(sc)
}

fn pull_policy(cx: &mut Ctx, field: &str, svc: &Service) -> Option<String> {
    let p = svc.pull_policy.as_deref()?;
    match p {
        "always" => Some("Always".to_owned()),
        "never" => Some("Never".to_owned()),
        "missing" | "if_not_present" => Some("IfNotPresent".to_owned()),
        other => {
            cx.warn(
                format!("{field}.pull_policy"),
                format!("{other:?} ignored: Kubernetes knows Always, Never and IfNotPresent"),
            );
            None
        }
    }
}

/// Where the hosts file is mounted.
const ETC_HOSTS: &str = "/etc/hosts";
/// The key of the hosts file in its ConfigMap.
pub(crate) const HOSTS_KEY: &str = "hosts";

/// How names resolve inside the Pod: `extra_hosts`, and the compose service names that no
/// Service name serves.
#[derive(Default)]
pub(crate) struct Hosts {
    /// Pod `hostAliases` (kubelet adds them to the /etc/hosts it writes).
    pub aliases: Option<Vec<HostAlias>>,
    /// The hosts file to mount at /etc/hosts instead, when a service name cannot be a
    /// `hostAliases` entry (kubelet then leaves /etc/hosts alone).
    pub file: Option<FileRef>,
    /// Its content.
    pub file_content: Option<String>,
    /// The Pod's hostname when the hosts file is used (so it resolves, as kubelet's does).
    pub hostname: Option<String>,
}

/// Plans name resolution. All services share the Pod's network, so each compose service
/// name must resolve to the Pod: a name that is its own Service name resolves through the
/// Service (cluster DNS); another name that is a DNS-1123 subdomain once lowercased
/// (`db.local`, `1db`, `Web`) becomes a `hostAliases` entry for 127.0.0.1; a name with `_`
/// (`my_db`), which neither DNS nor `hostAliases` accepts, makes Kompox write the Pod's
/// /etc/hosts itself: ConfigMap `hosts_config_map` key `hosts`, mounted into every
/// container, with the localhost entries kubelet writes, the `extra_hosts`, the names, and the
/// Pod's `hostname` (set to `app_host`).
pub(crate) fn hosts(
    cx: &mut Ctx,
    project: &Project,
    names: &Names,
    hosts_config_map: &str,
    app_host: &str,
) -> Hosts {
    let mut by_ip: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_host: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for (name, svc) in &project.services {
        for (host, ip) in &svc.extra_hosts {
            let field = format!("{}.extra_hosts", crate::compose::service_path(name));
            if ip == "host-gateway" {
                cx.warn(
                    field,
                    format!("{host}: host-gateway ignored: a Pod has no Docker host gateway"),
                );
                continue;
            }
            match by_host.get(host.as_str()) {
                Some((prev, _)) if prev == ip => {}
                Some((prev, owner)) => {
                    cx.warn(
                        field,
                        format!(
                            "{host}: {ip} ignored: {} maps it to {prev} and all services share one /etc/hosts",
                            crate::compose::service_path(owner)
                        ),
                    );
                }
                None => {
                    by_host.insert(host.clone(), (ip.clone(), name));
                    by_ip.entry(ip.clone()).or_default().insert(host.clone());
                }
            }
        }
    }
    let mut need_file = false;
    for name in project.services.keys() {
        if names.service(name) == *name || by_host.contains_key(name.as_str()) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        need_file |= !crate::naming::is_dns1123_subdomain(&lower);
        by_ip.entry(LOOPBACK.to_owned()).or_default().insert(lower);
    }
    let mut out = Hosts::default();
    if need_file {
        let hostname = crate::naming::k8s_name(app_host, crate::naming::MAX_LABEL_LEN);
        let mut text = String::from(
            "# Written by Kompox: compose service names resolve to this Pod.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        by_ip
            .entry(LOOPBACK.to_owned())
            .or_default()
            .insert(hostname.clone());
        for (ip, hosts) in &by_ip {
            text.push_str(ip);
            for h in hosts {
                text.push('\t');
                text.push_str(h);
            }
            text.push('\n');
        }
        out.file = Some(FileRef {
            kind: crate::hash::SourceKind::ConfigMap,
            name: hosts_config_map.to_owned(),
            key: HOSTS_KEY.to_owned(),
        });
        out.file_content = Some(text);
        out.hostname = Some(hostname);
    } else {
        let v: Vec<HostAlias> = by_ip
            .into_iter()
            .map(|(ip, hosts)| HostAlias {
                ip,
                hostnames: Some(hosts.into_iter().collect()),
            })
            .collect();
        out.aliases = (!v.is_empty()).then_some(v);
    }
    out
}

/// The address every compose service name resolves to when no Service name serves it: the
/// Pod's loopback, which all its containers share.
const LOOPBACK: &str = "127.0.0.1";

/// The init container creating every sub-directory used as `subPath` (Kubernetes would
/// create missing ones owned by root with mode 0755; compose users expect writable ones).
fn subpath_init(subpaths: &BTreeSet<(String, String)>) -> Container {
    let vols: BTreeSet<&str> = subpaths.iter().map(|(v, _)| v.as_str()).collect();
    let mut command = vec![
        "mkdir".to_owned(),
        "-p".to_owned(),
        "-m".to_owned(),
        "1777".to_owned(),
    ];
    command.extend(
        subpaths
            .iter()
            .map(|(v, s)| literal(&format!("{SUBPATH_INIT_ROOT}/{v}/{s}"))),
    );
    Container {
        name: SUBPATH_INIT_CONTAINER.to_owned(),
        image: Some(SUBPATH_INIT_IMAGE.to_owned()),
        command: Some(command),
        volume_mounts: Some(
            vols.into_iter()
                .map(|v| VolumeMount {
                    name: v.to_owned(),
                    mount_path: format!("{SUBPATH_INIT_ROOT}/{v}"),
                    ..VolumeMount::default()
                })
                .collect(),
        ),
        ..Container::default()
    }
}
