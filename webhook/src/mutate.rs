//! The admission decision, pure: given an object and a [`Lookup`] over the cluster's state,
//! the JSON Patch to apply (or a [`Denial`]). No HTTP, no I/O, no clock.
//!
//! # Pods (CREATE)
//!
//! - **Zone affinity.** Each `persistentVolumeClaim` volume is traced to its KompoxDisk: the
//!   PVC's [`DISK_LABEL`] (disk in the PVC's namespace), else the label on the PV the claim is
//!   bound to ([`DISK_LABEL`] + [`DISK_NAMESPACE_LABEL`]). The disk's zone (`spec.zone`, else
//!   `status.zone`) is mapped to a node label value with [`provider::node_zone`]. When all
//!   disks agree, the requirement `topology.kubernetes.io/zone In [<zone>]` is appended to
//!   every required `nodeSelectorTerms` entry that does not already hold it (terms are ORed,
//!   so each must carry it); disks in different zones deny the Pod, naming both.
//! - **Env hash.** [`ENV_HASH_ANNOTATION`] is set to [`hash::env_hash_for_refs`] over the
//!   Secrets/ConfigMaps the pod references, unless the creator already set it (Pods made by a
//!   ReplicaSet carry their template's value). A pod without references gets none.
//!
//! # Deployments / StatefulSets (CREATE, UPDATE)
//!
//! The env hash of the pod template goes to `spec.template.metadata.annotations`. The
//! annotation is Kompox's: on UPDATE it is refreshed unless the request itself changed it
//! (the controller bumping it, or a user pinning a value), so any `kubectl apply` of a
//! workload carries the current hash and a changed Secret rolls the pods. A template the
//! Kompox renderer made (it carries [`APP_LABEL`]) keeps the value it was sent: the
//! controller computes that hash from quorum reads on every render and re-renders when a
//! Secret changes, while this webhook's cache can lag a Secret change, and refreshing from it
//! would roll the app a second time (to the stale hash and back).
//!
//! # Guarantees
//!
//! Only `add` (to an existing parent, creating parent maps first) and `replace` (of the env
//! hash only) operations; user-set fields are never overwritten. Applying the patch and
//! deciding again yields no operations (idempotent). Problems that should not block a Pod (a
//! disk not found, a zone that cannot be mapped) become warnings, which kube-apiserver shows
//! to the client.

use std::fmt;
use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{
    NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompox_core::api::{KompoxDisk, ProviderType};
use kompox_core::hash::{self, HashKey, ObjectDigests, SourceKind};
use kompox_core::naming::{DISK_LABEL, DISK_NAMESPACE_LABEL, ENV_HASH_ANNOTATION};
use kompox_core::provider::{self, ZONE_LABEL};
use kompox_core::well_known::APP_LABEL;
use serde_json::{Value, json};

/// Read access to the cluster state the decision needs (reflector caches in the server,
/// maps in tests). Every method is a cheap in-memory lookup.
pub trait Lookup: Send + Sync {
    /// A PersistentVolumeClaim by namespace and name.
    fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PersistentVolumeClaim>>;
    /// A PersistentVolume by name.
    fn persistent_volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// A KompoxDisk by namespace and name.
    fn disk(&self, namespace: &str, name: &str) -> Option<Arc<KompoxDisk>>;
    /// The digests of a Secret's or ConfigMap's values (never the values).
    fn env_object(
        &self,
        kind: SourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ObjectDigests>>;
    /// The cluster's region (`topology.kubernetes.io/region`), to map zone numbers.
    fn region(&self) -> Option<String>;
}

/// What the decision produced for an allowed object.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct Mutation {
    /// JSON Patch operations (empty: nothing to change).
    pub patch: Vec<PatchOperation>,
    /// Warnings for the client (no Secret data, ever).
    pub warnings: Vec<String>,
    /// The zone the Pod was pinned to, when an affinity requirement was added.
    pub zone: Option<String>,
    /// The env hash written, when the annotation was added or replaced.
    pub env_hash: Option<String>,
}

impl Mutation {
    /// Whether the patch changes anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.patch.is_empty()
    }
}

/// A KompoxDisk a Pod needs, with its zone as a node label value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskZone {
    /// The PVC (in the Pod's namespace) through which the Pod uses the disk.
    pub claim: String,
    /// Namespace of the KompoxDisk.
    pub disk_namespace: String,
    /// Name of the KompoxDisk.
    pub disk: String,
    /// The node zone label value.
    pub zone: String,
}

impl fmt::Display for DiskZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KompoxDisk {}/{} (PVC {}) is in zone {}",
            self.disk_namespace, self.disk, self.claim, self.zone
        )
    }
}

/// Why an object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The Pod's disks are in different zones, so no node can attach all of them.
    #[error(
        "kompox: the pod's disks are in different zones and no node can attach both: {first}, but {second}"
    )]
    ZoneConflict {
        /// One disk.
        first: Box<DiskZone>,
        /// A disk in another zone.
        second: Box<DiskZone>,
    },
}

impl Denial {
    /// A short fixed reason for metrics and the AdmissionResponse status.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::ZoneConflict { .. } => "ZoneConflict",
        }
    }
}

/// The decision for a Pod being created in `namespace` (taken from the request: a Pod sent
/// with `generateName` may lack `metadata.namespace`).
///
/// # Errors
///
/// [`Denial::ZoneConflict`] when the Pod's disks are in different zones.
pub fn mutate_pod(
    namespace: &str,
    pod: &Pod,
    lookup: &dyn Lookup,
    key: &HashKey,
) -> Result<Mutation, Denial> {
    let mut m = Mutation::default();
    let Some(spec) = &pod.spec else {
        return Ok(m);
    };
    if let Some(zone) = required_zone(namespace, spec, lookup, &mut m.warnings)? {
        add_zone_requirement(spec, &zone, &mut m);
    }
    let existing = annotation(Some(&pod.metadata), ENV_HASH_ANNOTATION);
    if existing.is_none() {
        stamp_env_hash(
            namespace,
            spec,
            Some(&pod.metadata),
            &["metadata"],
            lookup,
            key,
            &mut m,
        );
    }
    Ok(m)
}

/// The decision for a workload's pod template (Deployment, StatefulSet) at
/// `/spec/template`. `old_template` is the template of `oldObject` on UPDATE, `None` on
/// CREATE.
pub fn mutate_template(
    namespace: &str,
    template: &PodTemplateSpec,
    old_template: Option<&PodTemplateSpec>,
    lookup: &dyn Lookup,
    key: &HashKey,
) -> Mutation {
    let mut m = Mutation::default();
    let Some(spec) = &template.spec else {
        return m;
    };
    let current = annotation(template.metadata.as_ref(), ENV_HASH_ANNOTATION);
    let keep = match (current, old_template) {
        (None, _) => false,
        // CREATE: whoever created the object chose the value.
        (Some(_), None) => true,
        // UPDATE: the request changed the value on purpose (controller, user), or the
        // renderer made the template (its hash is authoritative); otherwise the value is
        // Kompox's to refresh.
        (Some(c), Some(old)) => {
            Some(c) != annotation(old.metadata.as_ref(), ENV_HASH_ANNOTATION)
                || template
                    .metadata
                    .as_ref()
                    .is_some_and(|m| label(m, APP_LABEL).is_some())
        }
    };
    if !keep {
        stamp_env_hash(
            namespace,
            spec,
            template.metadata.as_ref(),
            &["spec", "template", "metadata"],
            lookup,
            key,
            &mut m,
        );
    }
    m
}

fn annotation<'a>(meta: Option<&'a ObjectMeta>, key: &str) -> Option<&'a str> {
    meta?.annotations.as_ref()?.get(key).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn join<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    [a, b].concat()
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(tokens),
        value,
    })
}

/// Computes the env hash of `spec` and writes it into the annotations of the metadata at
/// `meta_path` when it differs. A spec without references gets nothing.
fn stamp_env_hash(
    namespace: &str,
    spec: &PodSpec,
    meta: Option<&ObjectMeta>,
    meta_path: &[&str],
    lookup: &dyn Lookup,
    key: &HashKey,
    m: &mut Mutation,
) {
    let refs = hash::pod_spec_env_refs(spec);
    if refs.is_empty() {
        return;
    }
    let value = hash::env_hash_for_refs(key, namespace, &refs, |kind, name| {
        lookup.env_object(kind, namespace, name)
    });
    let annotations = meta.and_then(|m| m.annotations.as_ref());
    let op = match (meta, annotations) {
        (None, _) => add(
            meta_path,
            json!({"annotations": {ENV_HASH_ANNOTATION: value}}),
        ),
        (Some(_), None) => add(
            &join(meta_path, &["annotations"]),
            json!({ENV_HASH_ANNOTATION: value}),
        ),
        (Some(_), Some(a)) => match a.get(ENV_HASH_ANNOTATION) {
            Some(current) if *current == value => return,
            Some(_) => PatchOperation::Replace(ReplaceOperation {
                path: pointer(&join(meta_path, &["annotations", ENV_HASH_ANNOTATION])),
                value: json!(value),
            }),
            None => add(
                &join(meta_path, &["annotations", ENV_HASH_ANNOTATION]),
                json!(value),
            ),
        },
    };
    m.patch.push(op);
    m.env_hash = Some(value);
}

/// The KompoxDisk behind a PVC of the Pod, if it is a Kompox volume.
fn claim_disk(namespace: &str, claim: &str, lookup: &dyn Lookup) -> Option<(String, String)> {
    let pvc = lookup.persistent_volume_claim(namespace, claim)?;
    if let Some(disk) = label(&pvc.metadata, DISK_LABEL) {
        return Some((namespace.to_owned(), disk.to_owned()));
    }
    let pv_name = pvc
        .spec
        .as_ref()?
        .volume_name
        .as_deref()
        .filter(|n| !n.is_empty())?;
    let pv = lookup.persistent_volume(pv_name)?;
    // A PV reserved for another claim does not belong to this one.
    if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref())
        && (r.namespace.as_deref() != Some(namespace) || r.name.as_deref() != Some(claim))
    {
        return None;
    }
    let disk = label(&pv.metadata, DISK_LABEL)?;
    let disk_ns = label(&pv.metadata, DISK_NAMESPACE_LABEL).unwrap_or(namespace);
    Some((disk_ns.to_owned(), disk.to_owned()))
}

/// The node zone label value of a disk, `Ok(None)` when the disk has no zone yet.
fn disk_zone(disk: &KompoxDisk, region: Option<&str>) -> Result<Option<String>, provider::Error> {
    let non_empty = |z: &Option<String>| z.clone().filter(|z| !z.trim().is_empty());
    let zone = non_empty(&disk.spec.zone)
        .or_else(|| disk.status.as_ref().and_then(|s| non_empty(&s.zone)));
    let Some(zone) = zone else {
        return Ok(None);
    };
    let provider = disk
        .status
        .as_ref()
        .and_then(|s| s.provider)
        .filter(|p| *p != ProviderType::Auto)
        .or_else(|| Some(disk.spec.provider.type_).filter(|p| *p != ProviderType::Auto))
        .unwrap_or(ProviderType::Csi);
    provider::node_zone(provider, region, &zone).map(Some)
}

/// The one zone all of the Pod's Kompox disks are in, if any.
fn required_zone(
    namespace: &str,
    spec: &PodSpec,
    lookup: &dyn Lookup,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, Denial> {
    let mut claims: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    claims.sort_unstable();
    claims.dedup();
    if claims.is_empty() {
        return Ok(None);
    }
    let region = lookup.region();
    // The first disk with a zone, in claim order (deterministic messages).
    let mut first: Option<DiskZone> = None;
    for claim in claims {
        let Some((disk_ns, disk_name)) = claim_disk(namespace, claim, lookup) else {
            continue;
        };
        let Some(disk) = lookup.disk(&disk_ns, &disk_name) else {
            warnings.push(format!(
                "kompox: PVC {claim} belongs to KompoxDisk {disk_ns}/{disk_name}, which was not found; no zone affinity added for it"
            ));
            continue;
        };
        let zone = match disk_zone(&disk, region.as_deref()) {
            Ok(Some(z)) => z,
            Ok(None) => {
                warnings.push(format!(
                    "kompox: KompoxDisk {disk_ns}/{disk_name} (PVC {claim}) has no zone yet; no zone affinity added for it"
                ));
                continue;
            }
            Err(e) => {
                warnings.push(format!(
                    "kompox: KompoxDisk {disk_ns}/{disk_name} (PVC {claim}): {e}; no zone affinity added for it"
                ));
                continue;
            }
        };
        let dz = DiskZone {
            claim: claim.to_owned(),
            disk_namespace: disk_ns,
            disk: disk_name,
            zone: zone.clone(),
        };
        match &first {
            None => first = Some(dz.clone()),
            Some(f) if f.zone != zone => {
                return Err(Denial::ZoneConflict {
                    first: Box::new(f.clone()),
                    second: Box::new(dz),
                });
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|f| f.zone))
}

fn has_zone_requirement(term: &NodeSelectorTerm, zone: &str) -> bool {
    term.match_expressions.iter().flatten().any(|e| {
        e.key == ZONE_LABEL
            && e.operator == "In"
            && e.values.as_deref() == Some(&[zone.to_owned()][..])
    })
}

/// Appends `zone In [zone]` to every required node selector term (creating the parents when
/// absent), skipping terms that already hold it.
fn add_zone_requirement(spec: &PodSpec, zone: &str, m: &mut Mutation) {
    let req = json!({"key": ZONE_LABEL, "operator": "In", "values": [zone]});
    let terms = || json!({"nodeSelectorTerms": [{"matchExpressions": [req.clone()]}]});
    const AFFINITY: &[&str] = &["spec", "affinity"];
    const NODE: &[&str] = &["spec", "affinity", "nodeAffinity"];
    const REQUIRED: &[&str] = &[
        "spec",
        "affinity",
        "nodeAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ];
    let before = m.patch.len();
    let affinity = spec.affinity.as_ref();
    let node = affinity.and_then(|a| a.node_affinity.as_ref());
    let required = node.and_then(|n| {
        n.required_during_scheduling_ignored_during_execution
            .as_ref()
    });
    match (affinity, node, required) {
        (None, _, _) => m.patch.push(add(
            AFFINITY,
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms()}}),
        )),
        (Some(_), None, _) => m.patch.push(add(
            NODE,
            json!({"requiredDuringSchedulingIgnoredDuringExecution": terms()}),
        )),
        (Some(_), Some(_), None) => m.patch.push(add(REQUIRED, terms())),
        (Some(_), Some(_), Some(sel)) if sel.node_selector_terms.is_empty() => m.patch.push(add(
            &[REQUIRED, &["nodeSelectorTerms"]].concat(),
            json!([{"matchExpressions": [req.clone()]}]),
        )),
        (Some(_), Some(_), Some(sel)) => {
            for (i, term) in sel.node_selector_terms.iter().enumerate() {
                if has_zone_requirement(term, zone) {
                    continue;
                }
                let i = i.to_string();
                let exprs = [REQUIRED, &["nodeSelectorTerms", &i, "matchExpressions"]].concat();
                m.patch.push(match term.match_expressions {
                    Some(_) => add(&[&exprs[..], &["-"]].concat(), req.clone()),
                    None => add(&exprs, json!([req.clone()])),
                });
            }
        }
    }
    if m.patch.len() > before {
        m.zone = Some(zone.to_owned());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
