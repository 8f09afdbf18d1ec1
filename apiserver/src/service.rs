//! The decisions behind the endpoints, without HTTP or Kubernetes I/O: request bodies,
//! attach/detach rules and the patches that record them, and the shape of the `rendered`
//! List.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation};
use kompox_cluster::ClusterInfo;
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_core::hash::HashKey;
use kube::ResourceExt as _;
use serde_json::{Value, json};

use crate::api_error::ApiError;
pub use kompox_core::well_known::{
    ATTACH_INTENT_ANNOTATION, ENV_HASH_ANNOTATION, RENDERED_HASH_ANNOTATION, VALID_ANNOTATION,
    VALIDATION_ANNOTATION, WARNINGS_ANNOTATION,
};

/// Largest request body accepted (attach/detach bodies are tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body of `attach` and `detach`: which app volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTarget {
    /// KompoxApp name, in the disk's namespace.
    pub app: String,
    /// Volume name in the app (a compose volume).
    pub volume: String,
}

impl VolumeTarget {
    /// `app/volume`.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}", self.app, self.volume)
    }
}

fn is_json_content_type(ct: &str) -> bool {
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

fn check_subdomain(field: &str, v: &str) -> Result<(), ApiError> {
    kompox_core::naming::validate_dns1123_subdomain(v)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn check_volume_name(field: &str, v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'-' | b'_' | b'.')));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: {v:?} is not a valid volume name (1-63 of [a-zA-Z0-9_.-], starting with a letter or digit)"
        )))
    }
}

/// Parses an attach/detach body: a JSON object with exactly the string fields `app` and
/// `volume`. A `Content-Type` other than JSON is 415; anything else wrong is 400 naming the
/// field.
///
/// # Errors
///
/// 415 UnsupportedMediaType, 400 BadRequest.
pub fn parse_volume_target(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<VolumeTarget, ApiError> {
    if let Some(ct) = content_type
        && !is_json_content_type(ct)
    {
        return Err(ApiError::unsupported_media_type(format!(
            "Content-Type {ct:?} is not supported: send application/json"
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body: not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request(
            "body: must be a JSON object {\"app\": ..., \"volume\": ...}",
        ));
    };
    if let Some(k) = obj.keys().find(|k| *k != "app" && *k != "volume") {
        return Err(ApiError::bad_request(format!(
            "body.{k}: unknown field (expected app and volume)"
        )));
    }
    let field = |name: &str| -> Result<String, ApiError> {
        match obj.get(name) {
            None | Some(Value::Null) => {
                Err(ApiError::bad_request(format!("body.{name}: required")))
            }
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::bad_request(format!(
                "body.{name}: must be a string"
            ))),
        }
    };
    let app = field("app")?;
    let volume = field("volume")?;
    check_subdomain("body.app", &app)?;
    check_volume_name("body.volume", &volume)?;
    Ok(VolumeTarget { app, volume })
}

/// A zone as a node zone label value: zone numbers mapped with the cluster's provider and
/// region (`"1"` → `japaneast-1`), full names unchanged; when it cannot be mapped the text is
/// compared as written.
#[must_use]
pub fn normalize_zone(zone: &str, cluster: &ClusterInfo) -> String {
    kompox_core::provider::node_zone(cluster.provider, cluster.region.as_deref(), zone)
        .unwrap_or_else(|_| zone.trim().to_owned())
}

/// The zone a disk is in: `status.zone` once the controller has it, else `spec.zone`.
#[must_use]
pub fn disk_zone(disk: &KompoxDisk, cluster: &ClusterInfo) -> Option<String> {
    disk.status
        .as_ref()
        .and_then(|s| s.zone.as_deref())
        .filter(|z| !z.trim().is_empty())
        .map(|z| z.trim().to_owned())
        .or_else(|| {
            disk.spec
                .zone
                .as_deref()
                .filter(|z| !z.trim().is_empty())
                .map(|z| normalize_zone(z, cluster))
        })
}

/// Who holds a disk: `status.attachedTo` (set by the controller) or a recorded attach intent.
#[must_use]
pub fn disk_holders(disk: &KompoxDisk) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = disk.status.as_ref().and_then(|s| s.attached_to.as_ref())
        && !a.app.is_empty()
    {
        out.push(format!("{}/{}", a.app, a.volume));
    }
    if let Some(i) = disk.annotations().get(ATTACH_INTENT_ANNOTATION)
        && !i.is_empty()
        && !out.contains(i)
    {
        out.push(i.clone());
    }
    out
}

/// Checks that `disk` may be attached to `target` of `app`:
/// - nothing else holds it ([`disk_holders`] empty or only `target`), else 409 naming the
///   holder `app/volume`;
/// - its zone agrees with the app's `spec.deployment.zone` and with the zones of the app's
///   other disks (`app_disks`, by name), else 409 naming both zones.
///
/// # Errors
///
/// 409 Conflict.
pub fn check_attach(
    disk_name: &str,
    disk: &KompoxDisk,
    app: &KompoxApp,
    app_disks: &BTreeMap<String, KompoxDisk>,
    target: &VolumeTarget,
    cluster: &ClusterInfo,
) -> Result<(), ApiError> {
    let key = target.key();
    if let Some(holder) = disk_holders(disk).into_iter().find(|h| *h != key) {
        return Err(ApiError::conflict(format!(
            "kompoxdisk {disk_name:?} is attached to {holder}; detach it there first"
        ))
        .about("kompoxdisks", disk_name));
    }
    let Some(zone) = disk_zone(disk, cluster) else {
        return Ok(());
    };
    if let Some(app_zone) = app
        .spec
        .deployment
        .as_ref()
        .and_then(|d| d.zone.as_deref())
        .filter(|z| !z.trim().is_empty())
    {
        let app_zone_n = normalize_zone(app_zone, cluster);
        if app_zone_n != zone {
            return Err(ApiError::conflict(format!(
                "zone mismatch: kompoxdisk {disk_name:?} is in zone {zone:?} but kompoxapp {:?} runs in zone {app_zone_n:?} (spec.deployment.zone)",
                target.app
            ))
            .about("kompoxdisks", disk_name));
        }
    }
    for v in &app.spec.volumes {
        if v.name == target.volume || v.disk_ref.name == disk_name {
            continue;
        }
        let Some(other) = app_disks.get(&v.disk_ref.name) else {
            continue;
        };
        if let Some(other_zone) = disk_zone(other, cluster)
            && other_zone != zone
        {
            return Err(ApiError::conflict(format!(
                "zone mismatch: kompoxdisk {disk_name:?} is in zone {zone:?} but kompoxdisk {:?} (volume {:?} of kompoxapp {:?}) is in zone {other_zone:?}",
                v.disk_ref.name, v.name, target.app
            ))
            .about("kompoxdisks", disk_name));
        }
    }
    Ok(())
}

/// A JSON pointer from unescaped tokens (`/` and `~` in a token are escaped).
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

/// The guard of every patch here: the resourceVersion is still the one read.
fn rv_test(rv: Option<&str>) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(&["metadata", "resourceVersion"]),
        value: Value::from(rv.unwrap_or("")),
    })
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

/// The JSON patch binding `spec.volumes[volume].diskRef.name` to `disk_name` (adding the
/// volume if absent), guarded by a `test` of the resourceVersion read. `None` when the app
/// already says so.
///
/// # Errors
///
/// None: the `Result` is kept for the handlers' `?` (building the patch cannot fail).
pub fn attach_app_patch(
    app: &KompoxApp,
    volume: &str,
    disk_name: &str,
) -> Result<Option<json_patch::Patch>, ApiError> {
    let mut ops = vec![rv_test(app.metadata.resource_version.as_deref())];
    let entry = json!({"name": volume, "diskRef": {"name": disk_name}});
    match app.spec.volumes.iter().position(|v| v.name == volume) {
        Some(i) if app.spec.volumes[i].disk_ref.name == disk_name => return Ok(None),
        Some(i) => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(&["spec", "volumes", &i.to_string(), "diskRef", "name"]),
            value: Value::from(disk_name),
        })),
        None if app.spec.volumes.is_empty() => {
            ops.push(add(pointer(&["spec", "volumes"]), json!([entry])));
        }
        None => ops.push(add(pointer(&["spec", "volumes", "-"]), entry)),
    }
    Ok(Some(json_patch::Patch(ops)))
}

/// Checks a detach: 409 when the disk is held by another app volume than `target`.
///
/// # Errors
///
/// 409 Conflict naming the holder.
pub fn check_detach(
    disk_name: &str,
    disk: &KompoxDisk,
    target: &VolumeTarget,
) -> Result<(), ApiError> {
    let key = target.key();
    if let Some(holder) = disk_holders(disk).into_iter().find(|h| *h != key) {
        return Err(ApiError::conflict(format!(
            "kompoxdisk {disk_name:?} is attached to {holder}, not to {key}"
        ))
        .about("kompoxdisks", disk_name));
    }
    Ok(())
}

/// The JSON patch removing volume `volume` from the app when it is bound to `disk_name`;
/// `None` when it is not (nothing to release in the app).
///
/// # Errors
///
/// None: the `Result` is kept for the handlers' `?` (building the patch cannot fail).
pub fn detach_app_patch(
    app: &KompoxApp,
    volume: &str,
    disk_name: &str,
) -> Result<Option<json_patch::Patch>, ApiError> {
    match app
        .spec
        .volumes
        .iter()
        .position(|v| v.name == volume && v.disk_ref.name == disk_name)
    {
        None => Ok(None),
        Some(i) => Ok(Some(json_patch::Patch(vec![
            rv_test(app.metadata.resource_version.as_deref()),
            PatchOperation::Remove(RemoveOperation {
                path: pointer(&["spec", "volumes", &i.to_string()]),
            }),
        ]))),
    }
}

/// The JSON patch setting (`Some`) or removing (`None`) the attach-intent annotation on a
/// disk, guarded by its resourceVersion. `None` when nothing changes.
///
/// # Errors
///
/// None: the `Result` is kept for the handlers' `?` (building the patch cannot fail).
pub fn intent_patch(
    disk: &KompoxDisk,
    intent: Option<&str>,
) -> Result<Option<json_patch::Patch>, ApiError> {
    let current = disk.annotations().get(ATTACH_INTENT_ANNOTATION);
    if current.map(String::as_str) == intent {
        return Ok(None);
    }
    let path = pointer(&["metadata", "annotations", ATTACH_INTENT_ANNOTATION]);
    let mut ops = vec![rv_test(disk.metadata.resource_version.as_deref())];
    match (intent, disk.metadata.annotations.is_some()) {
        (Some(v), true) => ops.push(add(path, Value::from(v))),
        (Some(v), false) => ops.push(add(
            pointer(&["metadata", "annotations"]),
            json!({ATTACH_INTENT_ANNOTATION: v}),
        )),
        (None, _) => ops.push(PatchOperation::Remove(RemoveOperation { path })),
    }
    Ok(Some(json_patch::Patch(ops)))
}

/// Removes every occurrence of each secret (plain text and base64) from `text`. Used on
/// messages that came back from the API about objects that held Secret values.
#[must_use]
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    out
}

/// Every value (decoded, and as base64) held by Secrets among `objects` (typed `data` and
/// `stringData`), for [`scrub`]. Values shorter than 4 bytes are not scrubbed (they would
/// mangle unrelated text and reveal little).
#[must_use]
pub fn secret_values(objects: &[Value]) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for o in objects {
        if o.get("kind").and_then(Value::as_str) != Some("Secret") {
            continue;
        }
        for field in ["data", "stringData"] {
            let Some(Value::Object(map)) = o.get(field) else {
                continue;
            };
            for v in map.values().filter_map(Value::as_str) {
                out.push(v.to_owned());
                if field == "data" {
                    if let Ok(bytes) = b64.decode(v) {
                        out.push(String::from_utf8_lossy(&bytes).into_owned());
                    }
                } else {
                    out.push(b64.encode(v));
                }
            }
        }
    }
    out.retain(|s| s.len() >= 4);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// What rendering produced, in the form the List is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOutput {
    /// The objects, in apply order.
    pub objects: Vec<Value>,
    /// `path: message` warnings.
    pub warnings: Vec<String>,
    /// The env hash.
    pub env_hash: String,
    /// The rendered hash.
    pub hash: String,
}

/// The verdict of one server-side dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// `metadata.name` of the object.
    pub name: String,
    /// `None` when accepted; else the API's code, reason and (scrubbed) message.
    pub rejection: Option<(u16, String, String)>,
}

impl Verdict {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "apiVersion": self.api_version, "kind": self.kind, "name": self.name,
            "allowed": self.rejection.is_none(),
        });
        if let Some((code, reason, message)) = &self.rejection {
            v["code"] = json!(code);
            v["reason"] = json!(reason);
            v["message"] = json!(message);
        }
        v
    }
}

/// The `v1 List` answered by `rendered`: the objects with every Secret redacted
/// ([`kompox_core::redact::redact_objects`]), warnings, hashes and (with `validate`) the
/// verdicts as List annotations.
#[must_use]
pub fn rendered_list(key: &HashKey, out: &RenderOutput, verdicts: Option<&[Verdict]>) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        WARNINGS_ANNOTATION.into(),
        json!(serde_json::to_string(&out.warnings).unwrap_or_else(|_| "[]".into())),
    );
    annotations.insert(RENDERED_HASH_ANNOTATION.into(), json!(out.hash));
    annotations.insert(ENV_HASH_ANNOTATION.into(), json!(out.env_hash));
    if let Some(verdicts) = verdicts {
        let list: Vec<Value> = verdicts.iter().map(Verdict::to_json).collect();
        annotations.insert(
            VALIDATION_ANNOTATION.into(),
            json!(Value::Array(list).to_string()),
        );
        annotations.insert(
            VALID_ANNOTATION.into(),
            json!(verdicts.iter().all(|v| v.rejection.is_none()).to_string()),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": "", "annotations": annotations},
        "items": kompox_core::redact::redact_objects(key, &out.objects),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;
    use kompox_core::api::{
        AppVolume, AttachedTo, DeploymentSpec, KompoxAppSpec, KompoxDiskSpec, KompoxDiskStatus,
        LocalRef, ProviderType,
    };
    use rstest::rstest;

    fn cluster() -> ClusterInfo {
        ClusterInfo {
            provider: ProviderType::Aks,
            region: Some("japaneast".into()),
        }
    }

    fn disk(zone: Option<&str>, holder: Option<&str>, intent: Option<&str>) -> KompoxDisk {
        let mut d: KompoxDisk = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "d", "namespace": "ns", "resourceVersion": "7"},
            "spec": {"size": "1Gi"},
        }))
        .unwrap();
        d.spec = KompoxDiskSpec {
            zone: zone.map(Into::into),
            ..d.spec
        };
        if let Some(h) = holder {
            let (app, volume) = h.split_once('/').unwrap();
            d.status = Some(KompoxDiskStatus {
                attached_to: Some(AttachedTo {
                    app: app.into(),
                    volume: volume.into(),
                }),
                ..KompoxDiskStatus::default()
            });
        }
        if let Some(i) = intent {
            d.metadata.annotations = Some([(ATTACH_INTENT_ANNOTATION.into(), i.into())].into());
        }
        d
    }

    fn app(zone: Option<&str>, volumes: &[(&str, &str)]) -> KompoxApp {
        let mut a = KompoxApp::new(
            "a",
            KompoxAppSpec {
                deployment: zone.map(|z| DeploymentSpec {
                    zone: Some(z.into()),
                }),
                volumes: volumes
                    .iter()
                    .map(|(v, d)| AppVolume {
                        name: (*v).into(),
                        disk_ref: LocalRef { name: (*d).into() },
                    })
                    .collect(),
                ..KompoxAppSpec::default()
            },
        );
        a.metadata.resource_version = Some("42".into());
        a
    }

    fn target(app: &str, volume: &str) -> VolumeTarget {
        VolumeTarget {
            app: app.into(),
            volume: volume.into(),
        }
    }

    #[test]
    fn body_parsing_names_the_field() {
        let ok = parse_volume_target(
            Some("application/json; charset=utf-8"),
            br#"{"app":"a","volume":"data"}"#,
        )
        .unwrap();
        assert_eq!(ok, target("a", "data"));
        assert!(parse_volume_target(None, br#"{"app":"a","volume":"v_1"}"#).is_ok());
    }

    #[rstest]
    #[case::yaml(Some("application/yaml"), b"app: a", 415, "Content-Type")]
    #[case::not_json(None, b"{", 400, "body: not valid JSON")]
    #[case::array(None, b"[]", 400, "body: must be a JSON object")]
    #[case::missing_app(None, br#"{"volume":"v"}"#, 400, "body.app: required")]
    #[case::missing_volume(None, br#"{"app":"a"}"#, 400, "body.volume: required")]
    #[case::number(None, br#"{"app":1,"volume":"v"}"#, 400, "body.app: must be a string")]
    #[case::bad_app(None, br#"{"app":"A_b","volume":"v"}"#, 400, "body.app:")]
    #[case::bad_volume(None, br#"{"app":"a","volume":"-v"}"#, 400, "body.volume:")]
    #[case::unknown(None, br#"{"app":"a","volume":"v","x":1}"#, 400, "body.x: unknown")]
    fn bad_bodies_name_the_field(
        #[case] ct: Option<&str>,
        #[case] body: &[u8],
        #[case] code: u16,
        #[case] msg: &str,
    ) {
        let e = parse_volume_target(ct, body).unwrap_err();
        assert_eq!(e.code.as_u16(), code, "{e}");
        assert!(e.message.starts_with(msg) || e.message.contains(msg), "{e}");
    }

    #[test]
    fn attach_rules() {
        let c = cluster();
        let none = BTreeMap::new();
        let t = target("a", "data");
        let ok = |d: &KompoxDisk, a: &KompoxApp, disks: &BTreeMap<String, KompoxDisk>| {
            check_attach("d", d, a, disks, &t, &c)
        };
        assert!(ok(&disk(None, None, None), &app(None, &[]), &none).is_ok());
        assert!(
            ok(
                &disk(Some("1"), Some("a/data"), None),
                &app(Some("1"), &[]),
                &none
            )
            .is_ok()
        );
        assert!(
            ok(
                &disk(Some("1"), None, Some("a/data")),
                &app(None, &[]),
                &none
            )
            .is_ok()
        );
        assert!(
            ok(
                &disk(Some("japaneast-1"), None, None),
                &app(Some("1"), &[]),
                &none
            )
            .is_ok(),
            "zone numbers map through the region"
        );

        let e = ok(&disk(None, Some("b/db"), None), &app(None, &[]), &none).unwrap_err();
        assert_eq!(e.code.as_u16(), 409);
        assert!(e.message.contains("attached to b/db"), "{e}");
        let e = ok(&disk(None, None, Some("b/db")), &app(None, &[]), &none).unwrap_err();
        assert!(e.message.contains("attached to b/db"), "{e}");

        let e = ok(&disk(Some("2"), None, None), &app(Some("1"), &[]), &none).unwrap_err();
        assert_eq!(e.code.as_u16(), 409);
        assert!(
            e.message.contains("\"japaneast-2\"") && e.message.contains("\"japaneast-1\""),
            "{e}"
        );

        let others: BTreeMap<String, KompoxDisk> =
            [("d3".to_string(), disk(Some("3"), None, None))].into();
        let e = ok(
            &disk(Some("2"), None, None),
            &app(None, &[("db", "d3")]),
            &others,
        )
        .unwrap_err();
        assert!(
            e.message.contains("japaneast-2") && e.message.contains("japaneast-3"),
            "{e}"
        );
        assert!(e.message.contains("volume \"db\""), "{e}");
        // The volume being re-pointed does not count against itself.
        assert!(
            ok(
                &disk(Some("2"), None, None),
                &app(None, &[("data", "d3")]),
                &others
            )
            .is_ok()
        );
    }

    #[test]
    fn attach_and_detach_patches_apply() {
        let apply = |a: &KompoxApp, p: &json_patch::Patch| {
            let mut v = serde_json::to_value(a).unwrap();
            json_patch::patch(&mut v, p).map(|()| v)
        };
        let empty = app(None, &[]);
        let p = attach_app_patch(&empty, "data", "d").unwrap().unwrap();
        let v = apply(&empty, &p).unwrap();
        assert_eq!(
            v["spec"]["volumes"],
            json!([{"name": "data", "diskRef": {"name": "d"}}])
        );

        let two = app(None, &[("db", "x"), ("data", "y")]);
        let v = apply(&two, &attach_app_patch(&two, "data", "d").unwrap().unwrap()).unwrap();
        assert_eq!(v["spec"]["volumes"][1]["diskRef"]["name"], "d");
        let v = apply(&two, &attach_app_patch(&two, "new", "d").unwrap().unwrap()).unwrap();
        assert_eq!(v["spec"]["volumes"][2]["name"], "new");
        assert!(attach_app_patch(&two, "db", "x").unwrap().is_none());

        let mut stale = two.clone();
        stale.metadata.resource_version = Some("41".into());
        let p = attach_app_patch(&stale, "data", "d").unwrap().unwrap();
        assert!(
            apply(&two, &p).is_err(),
            "the resourceVersion test guards the patch"
        );

        let bound = app(None, &[("db", "x"), ("data", "d")]);
        let v = apply(
            &bound,
            &detach_app_patch(&bound, "data", "d").unwrap().unwrap(),
        )
        .unwrap();
        assert_eq!(
            v["spec"]["volumes"],
            json!([{"name": "db", "diskRef": {"name": "x"}}])
        );
        assert!(detach_app_patch(&bound, "data", "x").unwrap().is_none());

        for d in [disk(None, None, None), disk(None, None, Some("b/c"))] {
            let mut v = serde_json::to_value(&d).unwrap();
            json_patch::patch(&mut v, &intent_patch(&d, Some("a/data")).unwrap().unwrap()).unwrap();
            assert_eq!(
                v["metadata"]["annotations"][ATTACH_INTENT_ANNOTATION],
                "a/data"
            );
        }
        let held = disk(None, None, Some("a/data"));
        assert!(intent_patch(&held, Some("a/data")).unwrap().is_none());
        // On the wire: the annotation's `/` escaped, the resourceVersion test first.
        let wire = serde_json::to_value(intent_patch(&held, None).unwrap().unwrap()).unwrap();
        assert_eq!(
            wire,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "remove", "path": "/metadata/annotations/kompox.dev~1attach-intent"},
            ])
        );
        let mut v = serde_json::to_value(&held).unwrap();
        json_patch::patch(&mut v, &intent_patch(&held, None).unwrap().unwrap()).unwrap();
        assert!(
            v["metadata"]["annotations"]
                .get(ATTACH_INTENT_ANNOTATION)
                .is_none()
        );

        let e =
            check_detach("d", &disk(None, Some("b/c"), None), &target("a", "data")).unwrap_err();
        assert_eq!(e.code.as_u16(), 409);
        assert!(check_detach("d", &held, &target("a", "data")).is_ok());
    }

    #[test]
    fn list_redacts_and_annotates() {
        use base64::Engine as _;
        let secret = "s3cr3t-password-value";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let out = RenderOutput {
            objects: vec![
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "env"}, "data": {"PW": b64}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
            ],
            warnings: vec!["services.web.build: ignored".into()],
            env_hash: "sha256:e".into(),
            hash: "sha256:h".into(),
        };
        let verdicts = [Verdict {
            api_version: "v1".into(),
            kind: "Secret".into(),
            name: "env".into(),
            rejection: Some((
                422,
                "Invalid".into(),
                scrub(&format!("bad {secret}"), &secret_values(&out.objects)),
            )),
        }];
        let key = HashKey::new(&[5; 32]).unwrap();
        let list = rendered_list(&key, &out, Some(&verdicts));
        let text = list.to_string();
        assert!(!text.contains(secret) && !text.contains(&b64), "{text}");
        // `echo -n VALUE | sha256sum` finds nothing.
        {
            use sha2::Digest as _;
            let plain = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
            assert!(!text.contains(&plain), "{text}");
        }
        assert_eq!(list["kind"], "List");
        assert_eq!(
            list["items"][0]["metadata"]["annotations"]["kompox.dev/redacted"],
            "true"
        );
        assert_eq!(list["items"][1]["data"]["k"], "v");
        let ann = &list["metadata"]["annotations"];
        let warnings: Vec<String> =
            serde_json::from_str(ann[WARNINGS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(warnings, ["services.web.build: ignored"]);
        assert_eq!(ann[VALID_ANNOTATION], "false");
        let v: Value = serde_json::from_str(ann[VALIDATION_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(v[0]["allowed"], false);
        assert_eq!(v[0]["message"], "bad <redacted>");
        assert!(
            rendered_list(&key, &out, None)["metadata"]["annotations"]
                .get(VALIDATION_ANNOTATION)
                .is_none()
        );
    }
}
