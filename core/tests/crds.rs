//! The committed CRD manifests match the Rust types, and the schemas are structural.
//!
//! Regenerate the manifests with:
//!
//! ```text
//! KOMPOX_UPDATE_GOLDEN=1 cargo test -p kompox-core --test crds
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kompox_core::api::{self, REGENERATE_COMMAND, crds, crds_yaml};
use serde_json::Value;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds/kompox.yaml")
}

#[test]
fn committed_yaml_matches_types() {
    let want = crds_yaml().expect("render CRDs");
    let path = golden_path();
    if std::env::var("KOMPOX_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &want).expect("write golden");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with core/src/api; regenerate it with:\n\n    {REGENERATE_COMMAND}\n",
        path.display()
    );
}

#[test]
fn yaml_round_trips_to_the_same_objects() {
    let text = crds_yaml().expect("render CRDs");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("parse rendered YAML");
    let want: Vec<Value> = crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(docs, want);
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(crds_yaml().unwrap(), crds_yaml().unwrap());
}

#[test]
fn names_and_subresources() {
    let crds = crds();
    let want = [
        (
            "kompoxapps.k8s.kompox.dev",
            "KompoxApp",
            "kapp",
            ["READY", "HOSTS", "AGE"].as_slice(),
        ),
        (
            "kompoxdisks.k8s.kompox.dev",
            "KompoxDisk",
            "kdisk",
            ["READY", "ZONE", "SIZE", "HANDLE", "ATTACHED", "AGE"].as_slice(),
        ),
        (
            "kompoxsnapshots.k8s.kompox.dev",
            "KompoxSnapshot",
            "ksnap",
            ["READY", "DISK", "SIZE", "AGE"].as_slice(),
        ),
    ];
    assert_eq!(crds.len(), want.len());
    for (crd, (name, kind, short, columns)) in crds.iter().zip(want) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, api::GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some([short.to_string()].as_slice())
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, api::VERSION);
        assert!(v.served && v.storage);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind}: status subresource"
        );
        let cols: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, columns, "{kind}: printer columns");
    }
}

/// Walks a schema the way the apiserver's structural-schema check does and collects problems.
fn structural_problems(path: &str, s: &Value, root: bool, out: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "$schema",
        "additionalItems",
        "patternProperties",
        "dependencies",
        "id",
        "uniqueItems",
    ] {
        if obj.contains_key(forbidden)
            && !(forbidden == "uniqueItems" && obj[forbidden] == Value::Bool(false))
        {
            out.push(format!("{path}: {forbidden} is not allowed"));
        }
    }
    for comb in ["anyOf", "oneOf", "allOf", "not"] {
        if obj.contains_key(comb) {
            // Allowed by the apiserver only as pure value validation; Kompox never needs it.
            out.push(format!("{path}: {comb} is not expected in Kompox schemas"));
        }
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = obj.get("type").and_then(Value::as_str);
    if ty.is_none() && !int_or_string && !preserve {
        out.push(format!("{path}: missing type"));
    }
    if let Some(t) = ty
        && !["object", "array", "string", "integer", "number", "boolean"].contains(&t)
    {
        out.push(format!("{path}: type {t:?} is not allowed"));
    }
    if obj.get("type").is_some_and(|t| !t.is_string()) {
        out.push(format!("{path}: type must be a single string"));
    }
    if obj.contains_key("properties") && ty != Some("object") {
        out.push(format!("{path}: properties without type object"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties are mutually exclusive"
        ));
    }
    if ty == Some("array") && !obj.contains_key("items") {
        out.push(format!("{path}: array without items"));
    }
    if let Some(Value::Array(enums)) = obj.get("enum")
        && enums.iter().any(Value::is_null)
    {
        out.push(format!("{path}: null in enum"));
    }
    if obj.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let keys: Vec<&str> = obj["x-kubernetes-list-map-keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let required: Vec<&str> = obj["items"]["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if keys.is_empty() || !keys.iter().all(|k| required.contains(k)) {
            out.push(format!(
                "{path}: list-map keys {keys:?} must be required in items"
            ));
        }
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        if let Some(Value::Array(req)) = obj.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !props.contains_key(r) {
                    out.push(format!("{path}: required {r:?} is not a property"));
                }
            }
        }
        for (name, sub) in props {
            if root && name == "metadata" {
                // The apiserver only allows restricting name/generateName here.
                if sub
                    .as_object()
                    .is_some_and(|m| m.keys().any(|k| k != "type" && k != "description"))
                {
                    out.push(format!(
                        "{path}.metadata: only type is allowed at the root metadata"
                    ));
                }
                continue;
            }
            structural_problems(&format!("{path}.{name}"), sub, false, out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_problems(&format!("{path}[]"), items, false, out);
    }
    if let Some(ap) = obj.get("additionalProperties")
        && ap.is_object()
    {
        structural_problems(&format!("{path}{{}}"), ap, false, out);
    }
}

fn schema_of(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(
        &crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap()
}

#[test]
fn schemas_are_structural() {
    for crd in crds() {
        let schema = schema_of(&crd.spec.names.kind);
        let mut problems = Vec::new();
        structural_problems(&crd.spec.names.kind, &schema, true, &mut problems);
        assert!(
            problems.is_empty(),
            "{} is not structural:\n{}",
            crd.spec.names.kind,
            problems.join("\n")
        );
    }
}

#[test]
fn schema_details() {
    let app = schema_of("KompoxApp");
    let spec = &app["properties"]["spec"]["properties"];
    assert_eq!(
        spec["provider"]["properties"]["type"]["enum"],
        serde_json::json!(["auto", "aks", "eks", "gke", "oke", "k3s", "csi"])
    );
    assert_eq!(spec["provider"]["properties"]["type"]["default"], "auto");
    assert_eq!(
        spec["ingress"]["properties"]["rules"]["items"]["properties"]["port"]["minimum"],
        1.0
    );
    assert_eq!(
        spec["ingress"]["properties"]["rules"]["items"]["properties"]["port"]["maximum"],
        65535.0
    );
    let mount = &spec["files"]["properties"]["mounts"]["items"];
    assert_eq!(
        mount["x-kubernetes-validations"][0]["rule"],
        "has(self.secretRef) != has(self.configMapRef)"
    );
    let status = &app["properties"]["status"]["properties"];
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        status["volumeSwitch"]["properties"]["phase"]["enum"],
        serde_json::json!(["ScaleDown", "Rebind", "ScaleUp"])
    );
    assert_eq!(
        app["properties"]["spec"]["required"],
        serde_json::json!(["compose"])
    );

    let disk = schema_of("KompoxDisk");
    let spec = &disk["properties"]["spec"]["properties"];
    assert_eq!(spec["size"]["type"], "string");
    assert_eq!(spec["size"]["pattern"], api::QUANTITY_PATTERN);
    assert_eq!(
        spec["deletionPolicy"]["enum"],
        serde_json::json!(["Orphan", "Delete"])
    );
    assert_eq!(spec["deletionPolicy"]["default"], "Orphan");
    assert_eq!(spec["options"]["additionalProperties"]["type"], "string");
    assert_eq!(
        disk["properties"]["status"]["properties"]["provider"]["type"],
        "string"
    );

    let snap = schema_of("KompoxSnapshot");
    assert_eq!(
        snap["properties"]["status"]["properties"]["restoreSize"]["type"],
        "string"
    );
    // diskRef or handle (adoption), exactly one, checked by the API server; handle immutable.
    let spec = &snap["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::Value::Null);
    let messages: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .map(|rules| rules.iter().filter_map(|r| r["message"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        messages,
        [
            "exactly one of diskRef or handle must be set",
            "handle is immutable"
        ]
    );
}
