//! The one Pod: a container per compose service ([`container`]), `depends_on` as native
//! sidecars and init containers ([`order`]), the volumes behind the mounts, name resolution
//! ([`hosts`]) and the zone affinity.

mod container;
mod hosts;
mod order;

pub(crate) use hosts::{HOSTS_KEY, Hosts, hosts};

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Container, EmptyDirVolumeSource, LocalObjectReference, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource, PodSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::ctx::{Ctx, Names, bytes_quantity, generated_volume_name, literal, seconds};
use super::files::{DEFAULT_FILE_MODE, Derived, FileRef, FileTable, FileVolumes};
use super::network::service_ports;
use super::paths::{DiskBind, bind_on_disk, bind_path, mount_fields};
use super::storage::Storage;
use super::{ErrorReason, SUBPATH_INIT_CONTAINER, SUBPATH_INIT_IMAGE};
use crate::compose::{MountSource, Project, Service};
use crate::provider::ZONE_LABEL;

/// Where the init container mounts each app volume whose sub-directories it creates.
const SUBPATH_INIT_ROOT: &str = "/work";

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
    /// Compose service → its `spec.envOverrides` Secret and that Secret's keys (which win
    /// over `environment` and `env_file`).
    pub env_overrides: &'a BTreeMap<String, (String, BTreeSet<String>)>,
    /// `spec.imagePullSecrets`.
    pub image_pull_secrets: &'a [crate::api::LocalRef],
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
    let order::Order {
        roles,
        init: init_order,
    } = order::order(cx, project)?;
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
            mount: vols.files.mount(file, DEFAULT_FILE_MODE, hosts::ETC_HOSTS),
        });
    }
    let mut port_owner: BTreeMap<(u16, &str), &str> = BTreeMap::new();
    let mut containers: BTreeMap<&str, Container> = BTreeMap::new();
    for (name, svc) in &project.services {
        let role = roles.get(name.as_str()).copied().unwrap_or(Role::Main);
        let mounts = planned.remove(name.as_str()).unwrap_or_default();
        let c = container::ServiceContainer {
            name,
            svc,
            role,
            compose_mounts: mounts,
            global: &global,
        }
        .build(cx, inp, &mut vols);
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
        image_pull_secrets: (!inp.image_pull_secrets.is_empty()).then(|| {
            inp.image_pull_secrets
                .iter()
                .map(|r| LocalObjectReference {
                    name: r.name.clone(),
                })
                .collect()
        }),
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
                let file_path = bind_path(&m.source);
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
