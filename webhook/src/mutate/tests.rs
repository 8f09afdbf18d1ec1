//! Table tests of the decision. Each case states the object and the exact patch expected;
//! every allowed case is also checked for idempotence (apply the patch, decide again: no
//! operations).

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use super::*;
use crate::testing::{Fake, from};

const NS: &str = "app1";

/// A Pod with `spec` merged over one container, its volumes named after the claims.
fn pod(claims: &[&str], extra_spec: Value) -> Value {
    let volumes: Vec<Value> = claims
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    let mut spec = json!({
        "containers": [{"name": "app", "image": "app:1"}],
        "volumes": volumes,
    });
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        s.extend(extra);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

fn zone_req(zone: &str) -> Value {
    json!({"key": ZONE_LABEL, "operator": "In", "values": [zone]})
}

fn affinity_value(zone: &str) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [zone_req(zone)]}]}}})
}

const REQ: &str = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution";

fn decide_pod(obj: &Value, lookup: &Fake) -> Result<Mutation, Denial> {
    let p: Pod = from(obj.clone());
    mutate_pod(NS, &p, lookup, &crate::testing::key())
}

fn patch_json(m: &Mutation) -> Value {
    serde_json::to_value(&m.patch).unwrap()
}

/// Applies `m` to `obj` and checks that deciding again changes nothing.
fn assert_idempotent(obj: &Value, m: &Mutation, again: impl Fn(&Value) -> Mutation) -> Value {
    let mut patched = obj.clone();
    if let Err(e) = json_patch::patch(&mut patched, &m.patch) {
        panic!("patch does not apply: {e}\npatch: {}", patch_json(m));
    }
    let second = again(&patched);
    assert!(
        second.patch.is_empty(),
        "second admission changed {}",
        patch_json(&second)
    );
    patched
}

struct Case {
    name: &'static str,
    lookup: Fake,
    pod: Value,
    patch: Value,
    warnings: &'static [&'static str],
}

fn pod_cases() -> Vec<Case> {
    let two = || Fake::new().kompox_claim(NS, "data", "main", "2");
    vec![
        Case {
            name: "no volumes, no refs: nothing",
            lookup: two(),
            pod: pod(&[], json!({})),
            patch: json!([]),
            warnings: &[],
        },
        Case {
            name: "claim bound to a Kompox PV: affinity created from scratch",
            lookup: two(),
            pod: pod(&["data"], json!({})),
            patch: json!([{"op": "add", "path": "/spec/affinity", "value": affinity_value("japaneast-2")}]),
            warnings: &[],
        },
        Case {
            name: "PVC labelled with its disk, not bound yet",
            lookup: Fake::new()
                .disk(NS, "main", json!({"zone": "3"}), json!({}))
                .pvc(NS, "data", json!({DISK_LABEL: "main"}), None),
            pod: pod(&["data"], json!({})),
            patch: json!([{"op": "add", "path": "/spec/affinity", "value": affinity_value("japaneast-3")}]),
            warnings: &[],
        },
        Case {
            name: "zone from status when spec has none; full zone names need no region",
            lookup: Fake {
                region: None,
                ..Fake::new()
                    .disk(NS, "main", json!({}), json!({"zone": "eastus-9"}))
                    .pvc(NS, "data", json!({DISK_LABEL: "main"}), None)
            },
            pod: pod(&["data"], json!({})),
            patch: json!([{"op": "add", "path": "/spec/affinity", "value": affinity_value("eastus-9")}]),
            warnings: &[],
        },
        Case {
            name: "provider from status maps the zone number its way (eks: letter)",
            lookup: Fake::new()
                .disk(
                    NS,
                    "main",
                    json!({"zone": "2", "provider": {"type": "auto"}}),
                    json!({"provider": "eks"}),
                )
                .pvc(NS, "data", json!({DISK_LABEL: "main"}), None),
            pod: pod(&["data"], json!({})),
            patch: json!([{"op": "add", "path": "/spec/affinity", "value": affinity_value("japaneastb")}]),
            warnings: &[],
        },
        Case {
            name: "affinity without nodeAffinity keeps podAntiAffinity",
            lookup: two(),
            pod: pod(&["data"], json!({"affinity": {"podAntiAffinity": {}}})),
            patch: json!([{"op": "add", "path": "/spec/affinity/nodeAffinity",
                "value": affinity_value("japaneast-2")["nodeAffinity"]}]),
            warnings: &[],
        },
        Case {
            name: "only preferred node affinity: required added beside it",
            lookup: two(),
            pod: pod(
                &["data"],
                json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}}),
            ),
            patch: json!([{"op": "add", "path": REQ,
                "value": {"nodeSelectorTerms": [{"matchExpressions": [zone_req("japaneast-2")]}]}}]),
            warnings: &[],
        },
        Case {
            name: "every ORed term gets the requirement unless it already has it",
            lookup: two(),
            pod: pod(
                &["data"],
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
                    {"matchExpressions": [zone_req("japaneast-2")]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                ]}}}}),
            ),
            patch: json!([
                {"op": "add", "path": format!("{REQ}/nodeSelectorTerms/0/matchExpressions/-"), "value": zone_req("japaneast-2")},
                {"op": "add", "path": format!("{REQ}/nodeSelectorTerms/2/matchExpressions"), "value": [zone_req("japaneast-2")]},
            ]),
            warnings: &[],
        },
        Case {
            name: "a wider user zone requirement is narrowed, not replaced",
            lookup: two(),
            pod: pod(
                &["data"],
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": ZONE_LABEL, "operator": "In", "values": ["japaneast-1", "japaneast-2"]}]}]}}}}),
            ),
            patch: json!([{"op": "add", "path": format!("{REQ}/nodeSelectorTerms/0/matchExpressions/-"), "value": zone_req("japaneast-2")}]),
            warnings: &[],
        },
        Case {
            name: "empty required term list gets one term",
            lookup: two(),
            pod: pod(
                &["data"],
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": []}}}}),
            ),
            patch: json!([{"op": "add", "path": format!("{REQ}/nodeSelectorTerms"),
                "value": [{"matchExpressions": [zone_req("japaneast-2")]}]}]),
            warnings: &[],
        },
        Case {
            name: "two disks in one zone: one requirement",
            lookup: two().kompox_claim(NS, "logs", "logs", "2"),
            pod: pod(&["data", "logs", "data"], json!({})),
            patch: json!([{"op": "add", "path": "/spec/affinity", "value": affinity_value("japaneast-2")}]),
            warnings: &[],
        },
        Case {
            name: "a claim that is not Kompox's is ignored",
            lookup: two().pv("plain", json!({}), Some((NS, "scratch"))).pvc(
                NS,
                "scratch",
                json!({}),
                Some("plain"),
            ),
            pod: pod(&["scratch", "missing-claim"], json!({})),
            patch: json!([]),
            warnings: &[],
        },
        Case {
            name: "a Kompox PV reserved for another claim is not this claim's disk",
            lookup: Fake::new()
                .disk(NS, "main", json!({"zone": "2"}), json!({}))
                .pv("pv-main", json!({DISK_LABEL: "main"}), Some((NS, "other")))
                .pvc(NS, "data", json!({}), Some("pv-main")),
            pod: pod(&["data"], json!({})),
            patch: json!([]),
            warnings: &[],
        },
        Case {
            name: "disk not found: warning, no affinity",
            lookup: Fake::new().pvc(NS, "data", json!({DISK_LABEL: "gone"}), None),
            pod: pod(&["data"], json!({})),
            patch: json!([]),
            warnings: &["KompoxDisk app1/gone, which was not found"],
        },
        Case {
            name: "disk without a zone: warning, other disks still count",
            lookup: two().disk(NS, "nozone", json!({}), json!({})).pvc(
                NS,
                "tmp",
                json!({DISK_LABEL: "nozone"}),
                None,
            ),
            pod: pod(&["data", "tmp"], json!({})),
            patch: json!([{"op": "add", "path": "/spec/affinity", "value": affinity_value("japaneast-2")}]),
            warnings: &["KompoxDisk app1/nozone (PVC tmp) has no zone yet"],
        },
        Case {
            name: "zone number without a known region: warning",
            lookup: Fake {
                region: None,
                ..two()
            },
            pod: pod(&["data"], json!({})),
            patch: json!([]),
            warnings: &["needs the region"],
        },
    ]
}

#[test]
fn pod_zone_affinity_cases() {
    for case in pod_cases() {
        let m = match decide_pod(&case.pod, &case.lookup) {
            Ok(m) => m,
            Err(d) => panic!("{}: denied: {d}", case.name),
        };
        assert_eq!(patch_json(&m), case.patch, "{}", case.name);
        assert_eq!(
            m.warnings.len(),
            case.warnings.len(),
            "{}: {:?}",
            case.name,
            m.warnings
        );
        for (w, want) in m.warnings.iter().zip(case.warnings) {
            assert!(w.contains(want), "{}: {w:?} lacks {want:?}", case.name);
        }
        assert_eq!(m.zone.is_some(), !m.patch.is_empty(), "{}", case.name);
        assert_idempotent(&case.pod, &m, |p| match decide_pod(p, &case.lookup) {
            Ok(m) => m,
            Err(d) => panic!("{}: second admission denied: {d}", case.name),
        });
    }
}

#[test]
fn disks_in_two_zones_deny_naming_both() {
    let lookup = Fake::new()
        .kompox_claim(NS, "a-data", "alpha", "1")
        .kompox_claim(NS, "b-data", "beta", "2");
    let denial = decide_pod(&pod(&["b-data", "a-data"], json!({})), &lookup);
    let Err(d) = denial else {
        panic!("allowed: {denial:?}");
    };
    assert_eq!(d.reason(), "ZoneConflict");
    let msg = d.to_string();
    for needle in [
        "KompoxDisk app1/alpha (PVC a-data) is in zone japaneast-1",
        "KompoxDisk app1/beta (PVC b-data) is in zone japaneast-2",
    ] {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
}

#[test]
fn pod_env_hash_is_stamped_once_and_never_overwritten() {
    let lookup = Fake::new().secret(NS, "env", &[("PASSWORD", "hunter2")]);
    let with_env_from = |meta: Value| {
        let mut p = pod(
            &[],
            json!({"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "env"}}]}]}),
        );
        p["metadata"] = meta;
        p
    };
    let want = hash::env_hash(
        &crate::testing::key(),
        &[hash::HashInput::present(
            SourceKind::Secret,
            NS,
            "env",
            "PASSWORD",
            "hunter2",
        )],
    );

    let bare = with_env_from(json!({"name": "p"}));
    let m = decide_pod(&bare, &lookup).unwrap();
    assert_eq!(
        patch_json(&m),
        json!([{"op": "add", "path": "/metadata/annotations", "value": {ENV_HASH_ANNOTATION: want}}])
    );
    assert_eq!(m.env_hash.as_deref(), Some(want.as_str()));
    assert!(!format!("{m:?}").contains("hunter2"));
    assert_idempotent(&bare, &m, |p| decide_pod(p, &lookup).unwrap());

    let annotated = with_env_from(json!({"name": "p", "annotations": {"team": "a"}}));
    let m = decide_pod(&annotated, &lookup).unwrap();
    assert_eq!(
        patch_json(&m),
        json!([{"op": "add", "path": "/metadata/annotations/kompox.dev~1env-hash", "value": want}])
    );
    let patched = assert_idempotent(&annotated, &m, |p| decide_pod(p, &lookup).unwrap());
    assert_eq!(patched["metadata"]["annotations"]["team"], "a");

    // A Pod created from a template carries the template's value: kept.
    let inherited =
        with_env_from(json!({"name": "p", "annotations": {ENV_HASH_ANNOTATION: "sha256:old"}}));
    assert!(decide_pod(&inherited, &lookup).unwrap().is_empty());

    // A referenced Secret that does not exist yet still gives a (different) hash.
    let m = decide_pod(&bare, &Fake::new()).unwrap();
    assert!(m.env_hash.is_some_and(|h| h != want));
}

#[test]
fn pod_gets_affinity_and_env_hash_together() {
    let lookup = Fake::new()
        .kompox_claim(NS, "data", "main", "1")
        .secret(NS, "env", &[("A", "1")]);
    let p = pod(
        &["data"],
        json!({"containers": [{"name": "app", "env": [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env", "key": "A"}}}]}]}),
    );
    let m = decide_pod(&p, &lookup).unwrap();
    assert_eq!(m.patch.len(), 2, "{}", patch_json(&m));
    assert_eq!(m.zone.as_deref(), Some("japaneast-1"));
    assert!(m.env_hash.is_some());
    assert_idempotent(&p, &m, |p| decide_pod(p, &lookup).unwrap());
}

fn deployment(template_meta: Option<Value>) -> Value {
    let mut template = json!({"spec": {"containers": [{"name": "app", "image": "app:1",
        "envFrom": [{"secretRef": {"name": "env"}}]}]}});
    if let Some(meta) = template_meta {
        template["metadata"] = meta;
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}})
}

fn decide_template(obj: &Value, old: Option<&Value>, lookup: &Fake) -> Mutation {
    let d: Deployment = from(obj.clone());
    let old: Option<Deployment> = old.map(|o| from(o.clone()));
    let template = d.spec.map(|s| s.template).unwrap_or_default();
    let old_template = old.and_then(|o| o.spec).map(|s| s.template);
    mutate_template(
        NS,
        &template,
        old_template.as_ref(),
        lookup,
        &crate::testing::key(),
    )
}

#[test]
fn template_env_hash_create_and_update() {
    let v1 = Fake::new().secret(NS, "env", &[("K", "v1")]);
    let v2 = Fake::new().secret(NS, "env", &[("K", "v2")]);
    let h = |f: &Fake| {
        decide_template(&deployment(None), None, f)
            .env_hash
            .unwrap_or_default()
    };
    let (h1, h2) = (h(&v1), h(&v2));
    assert_ne!(h1, h2);

    // CREATE without template metadata: the parent map is created.
    let d = deployment(None);
    let m = decide_template(&d, None, &v1);
    assert_eq!(
        patch_json(&m),
        json!([{"op": "add", "path": "/spec/template/metadata", "value": {"annotations": {ENV_HASH_ANNOTATION: h1}}}])
    );
    let stamped = assert_idempotent(&d, &m, |o| decide_template(o, None, &v1));

    // CREATE with labels only: the annotations map is created.
    let labelled = deployment(Some(json!({"labels": {"app": "web"}})));
    let m = decide_template(&labelled, None, &v1);
    assert_eq!(
        patch_json(&m),
        json!([{"op": "add", "path": "/spec/template/metadata/annotations", "value": {ENV_HASH_ANNOTATION: h1}}])
    );

    // UPDATE that leaves the annotation alone, Secret unchanged: nothing (no rollout).
    assert!(decide_template(&stamped, Some(&stamped), &v1).is_empty());
    // UPDATE that leaves it alone after the Secret changed: refreshed (rollout).
    let m = decide_template(&stamped, Some(&stamped), &v2);
    assert_eq!(
        patch_json(&m),
        json!([{"op": "replace", "path": "/spec/template/metadata/annotations/kompox.dev~1env-hash", "value": h2}])
    );
    let refreshed = assert_idempotent(&stamped, &m, |o| decide_template(o, Some(&stamped), &v2));
    // UPDATE that sets a value on purpose (the controller's bump): kept.
    assert!(decide_template(&refreshed, Some(&stamped), &v1).is_empty());
    // UPDATE that drops the annotation (server-side apply without it): restored.
    let m = decide_template(&labelled, Some(&stamped), &v2);
    assert_eq!(m.env_hash.as_deref(), Some(h2.as_str()));
    // CREATE with a value chosen by the creator: kept.
    let pinned = deployment(Some(
        json!({"annotations": {ENV_HASH_ANNOTATION: "sha256:pinned"}}),
    ));
    assert!(decide_template(&pinned, None, &v2).is_empty());
}

#[test]
fn a_rendered_template_keeps_the_hash_it_was_sent() {
    // The controller's render computed this hash from quorum reads; the webhook's view of the
    // Secret may be older or newer, and refreshing from it would roll the app a second time.
    let v1 = Fake::new().secret(NS, "env", &[("K", "v1")]);
    let v2 = Fake::new().secret(NS, "env", &[("K", "v2")]);
    let h1 = decide_template(&deployment(None), None, &v1)
        .env_hash
        .unwrap_or_default();
    let rendered = deployment(Some(json!({
        "labels": {APP_LABEL: "web"},
        "annotations": {ENV_HASH_ANNOTATION: h1},
    })));
    assert!(decide_template(&rendered, Some(&rendered), &v2).is_empty());
    // The same template without the label is refreshed (see template_env_hash_create_and_update).
    let plain = deployment(Some(json!({"annotations": {ENV_HASH_ANNOTATION: h1}})));
    assert!(!decide_template(&plain, Some(&plain), &v2).is_empty());
    // An empty label is no claim.
    let empty = deployment(Some(json!({
        "labels": {APP_LABEL: ""},
        "annotations": {ENV_HASH_ANNOTATION: h1},
    })));
    assert!(!decide_template(&empty, Some(&empty), &v2).is_empty());
}

#[test]
fn template_without_references_gets_nothing() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}});
    assert!(decide_template(&d, None, &Fake::new()).is_empty());
    let no_spec =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    assert!(decide_template(&no_spec, None, &Fake::new()).is_empty());
}

/// Odd but decodable shapes never panic and, when allowed, yield patches that apply.
#[test]
fn odd_pods_do_not_panic() {
    let lookup = Fake::new()
        .kompox_claim(NS, "data", "main", "2")
        .pvc(NS, "weird", json!({DISK_LABEL: ""}), Some(""))
        .disk(
            NS,
            "bad",
            json!({"zone": " "}),
            json!({"zone": "", "provider": "oke"}),
        )
        .pvc(NS, "bad", json!({DISK_LABEL: "bad"}), None)
        .disk(NS, "oke", json!({"zone": "1"}), json!({"provider": "oke"}))
        .pvc(NS, "oke", json!({DISK_LABEL: "oke"}), None);
    let pods = [
        json!({"metadata": {}}),
        json!({"metadata": {}, "spec": {"containers": []}}),
        json!({"metadata": {"annotations": {}}, "spec": {"containers": [], "volumes": [
            {"name": "x", "persistentVolumeClaim": {"claimName": ""}},
            {"name": "y", "persistentVolumeClaim": {"claimName": "weird"}},
            {"name": "z", "persistentVolumeClaim": {"claimName": "bad"}},
            {"name": "o", "persistentVolumeClaim": {"claimName": "oke"}},
            {"name": "s", "secret": {}},
            {"name": "p", "projected": {}},
        ]}}),
        json!({"metadata": {}, "spec": {"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {}}}, "volumes": [
            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
        json!({"metadata": {}, "spec": {"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}, {"matchExpressions": []}]}}},
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    ];
    for p in pods {
        let m = decide_pod(&p, &lookup).unwrap();
        assert_idempotent(&p, &m, |q| decide_pod(q, &lookup).unwrap());
    }
}
