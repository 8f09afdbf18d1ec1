//! Table tests: one per mapping and per error message.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::hash::{ObjectDigests, env_hash_for_refs, pod_spec_env_refs};
use k8s_openapi::api::core::v1::PodSpec;

/// A test case: a bundle (KompoxApp `app1` in `ns1` plus disk `d1`, with extra spec lines
/// and documents), a compose file, a cluster and variables.
struct Fx {
    bundle: Bundle,
    compose: String,
    cluster: ClusterInfo,
    vars: BTreeMap<String, String>,
}

const BASE_DISK: &str = "apiVersion: k8s.kompox.dev/v1alpha1
kind: KompoxDisk
metadata: {name: d1}
spec: {size: 1Gi}
status: {pvName: pv-d1}
";

/// `spec` lines (indented by two spaces, no `compose:`); without `volumes:` the app gets
/// `[{name: default, diskRef: {name: d1}}]`.
/// The key the tests render with.
pub(super) fn test_key() -> HashKey {
    match HashKey::new(&[7; 32]) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

fn fx(compose: &str, spec: &str, docs: &str) -> Fx {
    let mut spec = spec.to_owned();
    if !spec.contains("volumes:") {
        spec.push_str("\n  volumes: [{name: default, diskRef: {name: d1}}]");
    }
    let text = format!(
        "apiVersion: k8s.kompox.dev/v1alpha1
kind: KompoxApp
metadata: {{name: app1, namespace: ns1}}
spec:
  compose: {{configMapRef: {{name: c, key: compose.yml}}}}
{spec}
---
{BASE_DISK}{docs}"
    );
    let bundle = match Bundle::parse(&text) {
        Ok(b) => b,
        Err(e) => panic!("fixture: {e:?}\n{text}"),
    };
    Fx {
        bundle,
        compose: compose.to_owned(),
        cluster: ClusterInfo {
            provider: ProviderType::Aks,
            region: Some("japaneast".to_owned()),
        },
        vars: BTreeMap::new(),
    }
}

impl Fx {
    fn run(&self) -> Result<Rendered, RenderError> {
        render(&RenderInput {
            app: &self.bundle.apps[0],
            compose: &self.compose,
            disks: &self.bundle.disks,
            sources: &self.bundle.sources,
            cluster: &self.cluster,
            interpolation: &self.vars,
            key: &test_key(),
        })
    }
    fn ok(&self) -> Rendered {
        match self.run() {
            Ok(r) => r,
            Err(e) => panic!("expected success, got:\n{e}"),
        }
    }
    fn err(&self) -> RenderError {
        match self.run() {
            Ok(r) => panic!("expected an error, got {} objects", r.objects.len()),
            Err(e) => e,
        }
    }
    fn app(&mut self) -> &mut KompoxApp {
        &mut self.bundle.apps[0]
    }
}

fn ok(compose: &str) -> Rendered {
    fx(compose, "", "").ok()
}

fn ok_err(compose: &str) -> RenderError {
    fx(compose, "", "").err()
}

fn obj<'a>(r: &'a Rendered, kind: &str, name: &str) -> &'a Value {
    r.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", names(r)))
}

fn has(r: &Rendered, kind: &str, name: &str) -> bool {
    r.objects
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn names(r: &Rendered) -> Vec<String> {
    r.objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn pod(r: &Rendered) -> &Value {
    &obj(r, "Deployment", "app1-app")["spec"]["template"]["spec"]
}

/// A container or init container by name.
fn ctr<'a>(r: &'a Rendered, name: &str) -> &'a Value {
    let p = pod(r);
    p["containers"]
        .as_array()
        .into_iter()
        .chain(p["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn init_names(r: &Rendered) -> Vec<&str> {
    pod(r)["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

fn warnings(r: &Rendered) -> Vec<String> {
    r.warnings.iter().map(ToString::to_string).collect()
}

/// Warnings other than the unused-volume ones.
fn other_warnings(r: &Rendered) -> Vec<String> {
    warnings(r)
        .into_iter()
        .filter(|w| !w.starts_with("spec.volumes["))
        .collect()
}

fn has_warning(r: &Rendered, want: &str) -> bool {
    warnings(r).iter().any(|w| w == want)
}

fn assert_error(e: &RenderError, reason: ErrorReason, want: &str) {
    let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l == want),
        "missing error {want:?} in {lines:#?}"
    );
    assert_eq!(e.reason, reason, "{lines:#?}");
}

const WEB: &str = "services:\n  web:\n    image: nginx:1.27\n";

#[test]
fn objects_metadata_and_order() {
    let r = fx(
        "services:
  web:
    image: nginx:1.27
    env_file: [./web.env]
    ports: ['8080:80']
    volumes: [./html:/usr/share/nginx/html]
    configs: [site]
configs:
  site: {content: hello}
",
        "  ingress: {rules: [{name: http, port: 8080, hosts: [a.example.com]}]}
  files: {mounts: [{path: /kompox/project/web.env, secretRef: {name: src, key: web.env}}]}",
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src}\nstringData: {web.env: \"A=1\"}\n",
    )
    .ok();
    assert_eq!(
        names(&r),
        [
            "Secret/app1-web-env",
            "ConfigMap/app1-configs",
            "PersistentVolumeClaim/app1-default",
            "Service/app1-app",
            "Service/web",
            "Deployment/app1-app",
            "Ingress/app1-app",
        ]
    );
    let sources: Vec<&str> = r
        .objects
        .iter()
        .filter_map(|o| o["metadata"]["annotations"][SOURCE_ANNOTATION].as_str())
        .collect();
    assert_eq!(
        sources,
        [
            "services.web.env_file",
            "configs",
            "spec.volumes[0]",
            "spec.ingress",
            "services.web",
            "services",
            "spec.ingress"
        ]
    );
    for o in &r.objects {
        assert_eq!(o["metadata"]["namespace"], "ns1");
        let l = &o["metadata"]["labels"];
        assert_eq!(l[NAME_LABEL], "app1");
        assert_eq!(l[INSTANCE_LABEL], "app1");
        assert_eq!(l["app.kubernetes.io/managed-by"], "kompox");
        assert_eq!(l[APP_LABEL], "app1");
        assert!(o["metadata"].get("ownerReferences").is_none());
    }
    let d = obj(&r, "Deployment", "app1-app");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    let sel = json!({"app.kubernetes.io/component": "app", "kompox.dev/app": "app1"});
    assert_eq!(d["spec"]["selector"]["matchLabels"], sel);
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        "app"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"][crate::naming::ENV_HASH_ANNOTATION],
        r.env_hash.as_str()
    );
    assert_eq!(pod(&r)["enableServiceLinks"], false);
    assert_eq!(pod(&r)["automountServiceAccountToken"], false);
    assert_eq!(obj(&r, "Service", "web")["spec"]["selector"], sel);
    assert!(r.hash.starts_with("hmac-sha256:") && r.hash.len() == 76);
    assert_eq!(
        r.hash,
        crate::hash::rendered_hash(&test_key(), &json!(r.objects))
    );
}

#[test]
fn output_is_deterministic_and_hash_follows_content() {
    let a = ok(WEB);
    let b = ok(WEB);
    assert_eq!(a, b);
    let c = ok("services:\n  web:\n    image: nginx:1.28\n");
    assert_ne!(a.hash, c.hash);
    assert_eq!(a.env_hash, c.env_hash);
}

#[test]
fn no_namespace_and_long_names() {
    let mut f = fx(WEB, "", "");
    f.app().metadata.namespace = None;
    let r = f.ok();
    assert!(
        r.objects
            .iter()
            .all(|o| o["metadata"].get("namespace").is_none())
    );

    let long = "a".repeat(70);
    let mut f = fx(WEB, "", "");
    f.app().metadata.name = Some(long.clone());
    let r = f.ok();
    for o in &r.objects {
        let n = o["metadata"]["name"].as_str().unwrap_or_default();
        assert!(crate::naming::is_dns1123_label(n), "{n}");
        assert!(
            o["metadata"]["labels"][APP_LABEL]
                .as_str()
                .unwrap_or_default()
                .len()
                <= 63
        );
    }
    assert!(has(
        &r,
        "Deployment",
        &crate::naming::truncate_with_hash(&format!("{long}-app"), 63)
    ));
}

#[test]
fn an_unpublished_port_is_named_by_its_service_name() {
    // Other Pods reach the derived Service name; the compose name resolves only inside the Pod.
    let r = ok("services:
  my_api:
    image: nginx
    ports: ['9000:90']
");
    assert!(has(&r, "Service", "my-api"));
    assert!(has_warning(
        &r,
        "services.my_api.ports: published port 9000 is not exposed outside the cluster (no spec.ingress.rules entry has port 9000); in the cluster it is my-api:90"
    ));
}

#[test]
fn headless_services() {
    let r = ok("services:
  web:
    image: nginx
    ports: ['8080:80', {target: 81, app_protocol: http}, '53:53/udp']
    expose: ['9000', '80']
  db:
    image: postgres
  1st:
    image: busybox
");
    let s = obj(&r, "Service", "web");
    assert_eq!(s["spec"]["clusterIP"], "None");
    assert_eq!(s["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(
        s["spec"]["ports"],
        json!([
            {"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP"},
            {"name": "tcp-81", "port": 81, "targetPort": 81, "protocol": "TCP", "appProtocol": "http"},
            {"name": "udp-53", "port": 53, "targetPort": 53, "protocol": "UDP"},
            {"name": "tcp-9000", "port": 9000, "targetPort": 9000, "protocol": "TCP"},
        ])
    );
    assert_eq!(
        ctr(&r, "web")["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 81, "protocol": "TCP"},
            {"containerPort": 53, "protocol": "UDP"},
            {"containerPort": 9000, "protocol": "TCP"},
        ])
    );
    let db = obj(&r, "Service", "db");
    assert!(db["spec"].get("ports").is_none());
    assert_eq!(db["spec"]["clusterIP"], "None");
    // Service names start with a letter: `1st` gets a prefixed one and a hostAliases entry.
    assert!(has(&r, "Service", "k4x-1st"));
    assert_eq!(
        pod(&r)["hostAliases"],
        json!([{"ip": "127.0.0.1", "hostnames": ["1st"]}])
    );
    assert!(has_warning(
        &r,
        "services.web.ports: published port 8080 is not exposed outside the cluster (no spec.ingress.rules entry has port 8080); in the cluster it is web:80"
    ));
}

#[test]
fn ingress_service_and_traefik_annotations() {
    let compose = "services:
  web:
    image: nginx
    ports: ['8080:80', '9090:9000']
";
    let r = fx(
        compose,
        "  ingress:
    className: traefik
    certResolver: staging
    annotations: {traefik.ingress.kubernetes.io/router.entrypoints: web, x: y}
    rules:
      - {name: http, port: 8080, hosts: [a.example.com, '*.b.example.com']}
      - {name: admin-console-port, port: 9090, hosts: [admin.example.com]}",
        "",
    )
    .ok();
    let s = obj(&r, "Service", "app1-app");
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(
        s["spec"]["ports"],
        json!([
            {"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP"},
            {"name": "p9090", "port": 9090, "targetPort": 9000, "protocol": "TCP"},
        ])
    );
    let i = obj(&r, "Ingress", "app1-app");
    assert_eq!(i["spec"]["ingressClassName"], "traefik");
    let a = &i["metadata"]["annotations"];
    assert_eq!(a[TRAEFIK_ENTRYPOINTS], "web", "the user's annotation wins");
    assert_eq!(a[TRAEFIK_TLS], "true");
    assert_eq!(a[TRAEFIK_CERT_RESOLVER], "staging");
    assert_eq!(a["x"], "y");
    assert_eq!(a[SOURCE_ANNOTATION], "spec.ingress");
    let hosts: Vec<&str> = i["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["host"].as_str())
        .collect();
    assert_eq!(
        hosts,
        ["a.example.com", "*.b.example.com", "admin.example.com"]
    );
    assert_eq!(
        i["spec"]["rules"][2]["http"]["paths"][0],
        json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "app1-app", "port": {"number": 9090}}}})
    );
    assert!(other_warnings(&r).is_empty(), "{:?}", warnings(&r));

    // Without certResolver or className: no TLS annotations, the cluster's default class.
    let r = fx(
        compose,
        "  ingress: {rules: [{name: http, port: 8080, hosts: [a.example.com]}]}",
        "",
    )
    .ok();
    let i = obj(&r, "Ingress", "app1-app");
    assert!(i["spec"].get("ingressClassName").is_none());
    assert_eq!(
        i["metadata"]["annotations"],
        json!({SOURCE_ANNOTATION: "spec.ingress"})
    );
    // No rules: neither Service nor Ingress.
    let r = fx(compose, "  ingress: {className: traefik}", "").ok();
    assert!(!has(&r, "Ingress", "app1-app") && !has(&r, "Service", "app1-app"));
}

#[rstest::rstest]
#[case::own_secret("{secretName: web-cert}", None, "web-cert")]
#[case::cluster_issuer("{clusterIssuer: letsencrypt}", Some((CERT_MANAGER_CLUSTER_ISSUER, "letsencrypt")), "app1-app-tls")]
#[case::issuer_into_a_named_secret("{issuer: team-ca, secretName: s}", Some((CERT_MANAGER_ISSUER, "team-ca")), "s")]
fn ingress_tls_for_any_controller(
    #[case] tls: &str,
    #[case] annotation: Option<(&str, &str)>,
    #[case] secret: &str,
) {
    let compose = "services:
  web:
    image: nginx
    ports: ['8080:80', '9090:9000']
";
    let r = fx(
        compose,
        &format!(
            "  ingress:
    className: nginx
    tls: {tls}
    rules:
      - {{name: http, port: 8080, hosts: [a.example.com]}}
      - {{name: admin, port: 9090, hosts: [admin.example.com]}}"
        ),
        "",
    )
    .ok();
    let i = obj(&r, "Ingress", "app1-app");
    assert_eq!(
        i["spec"]["tls"],
        json!([{"hosts": ["a.example.com", "admin.example.com"], "secretName": secret}])
    );
    let a = &i["metadata"]["annotations"];
    for key in [CERT_MANAGER_CLUSTER_ISSUER, CERT_MANAGER_ISSUER] {
        match annotation {
            Some((k, v)) if k == key => assert_eq!(a[key], v),
            _ => assert!(a.get(key).is_none(), "{key}: {a}"),
        }
    }
    assert!(
        a.get(TRAEFIK_TLS).is_none(),
        "no Traefik annotation without certResolver"
    );
}

#[test]
fn ingress_errors() {
    let compose = "services:
  a: {image: x, ports: ['8080:80']}
  b: {image: x, ports: ['8080:81', '53:53/udp']}
";
    let e = fx(
        compose,
        "  ingress:
    rules:
      - {name: one, port: 8080, hosts: [a.example.com]}
      - {name: two, port: 8080, hosts: [b.example.com]}
      - {name: three, port: 7000, hosts: [c.example.com]}
      - {name: four, port: 53, hosts: [d.example.com]}",
        "",
    )
    .err();
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.ingress.rules[0].port: port 8080 is published more than once: a (container port 80), b (container port 81)",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.ingress.rules[1].port: port 8080 is already used by rule \"one\": put all its hosts in one rule",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.ingress.rules[2].port: no compose service publishes TCP port 7000 (e.g. ports: [\"7000:8080\"])",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.ingress.rules[3].port: no compose service publishes TCP port 53 (e.g. ports: [\"53:8080\"])",
    );
    let e = fx(
        "services:\n  app1-app: {image: x, ports: ['80:80']}\n",
        "  ingress: {rules: [{name: h, port: 80, hosts: [a.example.com]}]}",
        "",
    )
    .err();
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.app1-app: the Service for this compose service would have the name of the app's ingress Service \"app1-app\": rename the compose service",
    );
}

#[test]
fn port_conflicts_in_one_pod() {
    let e = ok_err(
        "services:\n  a: {image: x, ports: ['80']}\n  b: {image: x, expose: ['80']}\n  c: {image: x, expose: ['80/udp']}\n",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.b.ports: container port 80/tcp is also used by service \"a\": all services share one Pod network",
    );
    assert_eq!(e.errors.len(), 1);
}

#[test]
fn app_volumes_and_pvcs() {
    let r = fx(
        "services:
  web:
    image: x
    volumes:
      - ./data/web:/data
      - .:/project:ro
      - db/sub/dir:/db
      - {type: volume, source: db, target: /db2, volume: {subpath: other}}
      - db:/db3
volumes:
  db: {}
",
        "  volumes: [{name: default, diskRef: {name: d1}}, {name: db, diskRef: {name: d2}}]",
        "---\napiVersion: k8s.kompox.dev/v1alpha1\nkind: KompoxDisk\nmetadata: {name: d2}\nspec: {size: 5Gi}\nstatus: {pvName: pv-d2, storageClassName: k4x-static}\n",
    )
    .ok();
    let pvc = obj(&r, "PersistentVolumeClaim", "app1-db");
    assert_eq!(
        pvc["spec"],
        json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "k4x-static",
            "volumeMode": "Filesystem",
            "volumeName": "pv-d2",
        })
    );
    assert_eq!(pvc["metadata"]["labels"]["kompox.dev/disk"], "d2");
    // A disk whose PV has no class: the PVC names none either.
    let other = obj(&r, "PersistentVolumeClaim", "app1-default");
    assert_eq!(other["spec"]["storageClassName"], "");
    assert_eq!(
        pvc["metadata"]["annotations"][SOURCE_ANNOTATION],
        "spec.volumes[1]"
    );
    assert_eq!(
        ctr(&r, "web")["volumeMounts"],
        json!([
            {"name": "default", "mountPath": "/data", "subPath": "data/web"},
            {"name": "default", "mountPath": "/project", "readOnly": true},
            {"name": "db", "mountPath": "/db", "subPath": "sub/dir"},
            {"name": "db", "mountPath": "/db2", "subPath": "other"},
            {"name": "db", "mountPath": "/db3"},
        ])
    );
    assert_eq!(
        ctr(&r, SUBPATH_INIT_CONTAINER),
        &json!({
            "name": "init-volume-subpaths",
            "image": "busybox:1.35",
            "command": ["mkdir", "-p", "-m", "1777", "/work/db/other", "/work/db/sub/dir", "/work/default/data/web"],
            "volumeMounts": [
                {"name": "db", "mountPath": "/work/db"},
                {"name": "default", "mountPath": "/work/default"},
            ],
        })
    );
    assert_eq!(
        pod(&r)["volumes"],
        json!([
            {"name": "default", "persistentVolumeClaim": {"claimName": "app1-default"}},
            {"name": "db", "persistentVolumeClaim": {"claimName": "app1-db"}},
        ])
    );
    assert!(has_warning(
        &r,
        "services.web.volumes[2]: the image's files at /db are not copied into the volume as Docker does for a new named volume (volume.nocopy: true silences this)"
    ));
    assert!(
        !warnings(&r)
            .iter()
            .any(|w| w.starts_with("services.web.volumes[0]")),
        "binds never copy"
    );
    let r = fx(
        "services:\n  web: {image: x, volumes: [{type: volume, source: db, target: /d, volume: {nocopy: true}}], ports: ['127.0.0.1:80:80']}\nvolumes:\n  db: {}\n",
        "  volumes: [{name: db, diskRef: {name: d1}}]",
        "",
    )
    .ok();
    assert_eq!(
        warnings(&r),
        [
            "services.web.ports: host_ip 127.0.0.1 ignored: a Pod publishes no host ports",
            "services.web.ports: published port 80 is not exposed outside the cluster (no spec.ingress.rules entry has port 80); in the cluster it is web:80",
        ]
    );
    // Without sub-directories there is no init container.
    let r = ok("services:\n  web: {image: x, volumes: ['.:/p']}\n");
    assert!(pod(&r).get("initContainers").is_none());
}

#[test]
fn typed_parts_are_those_in_objects() {
    let r = fx(
        "services:\n  web: {image: x, ports: ['8080:80', '9090:90'], volumes: ['db:/db', './d:/d']}\nvolumes:\n  db: {}\n",
        "  volumes: [{name: default, diskRef: {name: d1}}, {name: db, diskRef: {name: d2}}]
  ingress:
    rules:
      - {name: http, port: 8080, hosts: [b.example.com, a.example.com]}
      - {name: admin, port: 9090, hosts: [c.example.com]}",
        "---\napiVersion: k8s.kompox.dev/v1alpha1\nkind: KompoxDisk\nmetadata: {name: d2}\nspec: {size: 5Gi}\nstatus: {pvName: pv-d2}\n",
    )
    .ok();
    let typed = |v: &dyn erased::Ser| v.value().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&typed(&r.deployment), obj(&r, "Deployment", "app1-app"));
    assert_eq!(r.deployment_name(), "app1-app");
    let Some(ingress) = &r.ingress else {
        panic!("an Ingress is rendered");
    };
    assert_eq!(&typed(ingress), obj(&r, "Ingress", "app1-app"));
    assert_eq!(r.ingress_name(), Some("app1-app"));
    assert_eq!(
        r.ingress_hosts(),
        ["a.example.com", "b.example.com", "c.example.com"],
        "sorted"
    );
    let claims: Vec<(&str, &str)> = r
        .volume_claims
        .iter()
        .map(|v| (v.volume.as_str(), v.claim.as_str()))
        .collect();
    assert_eq!(claims, [("default", "app1-default"), ("db", "app1-db")]);
    for (i, (volume, claim)) in claims.iter().enumerate() {
        let pvc = obj(&r, "PersistentVolumeClaim", claim);
        assert_eq!(
            pvc["metadata"]["annotations"][SOURCE_ANNOTATION],
            format!("spec.volumes[{i}]").as_str(),
            "{volume}"
        );
        assert_eq!(r.claim_of(volume), Some(*claim));
    }
    assert_eq!(r.claim_of("nope"), None);

    // No ingress rules, no volumes: no Ingress, no claims.
    let r = fx("services:\n  web: {image: x}\n", "  volumes: []", "").ok();
    assert!(r.ingress.is_none() && r.ingress_hosts().is_empty());
    assert!(r.volume_claims.is_empty());
    assert_eq!(&typed(&r.deployment), obj(&r, "Deployment", "app1-app"));
}

#[test]
fn volume_errors_and_warnings() {
    let e = fx(
        "services:
  web:
    image: x
    volumes: [/srv/data:/data, 'cache:/cache', './x:/x']
volumes:
  cache: {}
",
        "  volumes: []",
        "",
    )
    .err();
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.volumes[0]: bind \"/srv/data\" needs an app volume: binds are directories on spec.volumes[0], and spec.volumes is empty",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.volumes[1]: compose volume \"cache\" is not bound to a disk: add {name: cache, diskRef: {name: …}} to spec.volumes",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.volumes[2]: bind \"x\" needs an app volume: binds are directories on spec.volumes[0], and spec.volumes is empty",
    );

    let r = fx(
        "services:\n  web:\n    image: x\n    tmpfs: [/run]\n    volumes: [/anon, {type: tmpfs, target: /t, tmpfs: {size: 1m}}]\n    shm_size: 256m\n",
        "",
        "",
    )
    .ok();
    assert!(has_warning(
        &r,
        "services.web.volumes[0]: anonymous volume at /anon becomes an emptyDir: its content is lost when the Pod is replaced"
    ));
    assert!(has_warning(
        &r,
        "spec.volumes[0]: volume \"default\" is not used by any compose service (relative binds use spec.volumes[0])"
    ));
    assert_eq!(
        ctr(&r, "web")["volumeMounts"],
        json!([
            {"name": "k4x-tmpfs-web-1", "mountPath": "/run"},
            {"name": "k4x-anon-web-1", "mountPath": "/anon"},
            {"name": "k4x-tmpfs-web-2", "mountPath": "/t"},
            {"name": "k4x-shm-web", "mountPath": "/dev/shm"},
        ])
    );
    assert_eq!(
        pod(&r)["volumes"],
        json!([
            {"name": "k4x-anon-web-1", "emptyDir": {}},
            {"name": "k4x-shm-web", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
            {"name": "k4x-tmpfs-web-1", "emptyDir": {"medium": "Memory"}},
            {"name": "k4x-tmpfs-web-2", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        ])
    );
}

#[test]
fn disk_errors() {
    let mut f = fx(
        WEB,
        "  volumes: [{name: a, diskRef: {name: d1}}, {name: b, diskRef: {name: d1}}, {name: c, diskRef: {name: nope}}, {name: d, diskRef: {name: fresh}}, {name: e, diskRef: {name: bad}}]",
        "---\napiVersion: k8s.kompox.dev/v1alpha1\nkind: KompoxDisk\nmetadata: {name: fresh}\nspec: {size: 1Gi}\n---\napiVersion: k8s.kompox.dev/v1alpha1\nkind: KompoxDisk\nmetadata: {name: bad}\nspec: {size: 0}\nstatus: {pvName: pv}\n",
    );
    let e = f.err();
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.volumes[1].diskRef: KompoxDisk \"d1\" is already used by spec.volumes[0]; a disk backs one volume",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.volumes[2].diskRef: KompoxDisk \"nope\" not found",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.volumes[3].diskRef: KompoxDisk \"fresh\" is not Ready (no status.pvName)",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.volumes[4].diskRef: KompoxDisk \"bad\" is invalid: spec.size: size must be greater than zero",
    );
    // Only missing references: the reason says so.
    f.app().spec.volumes.truncate(4);
    f.app().spec.volumes.remove(1);
    let e = f.err();
    assert_eq!(e.reason, ErrorReason::MissingReference);
    assert_eq!(e.errors.len(), 2);
}

#[test]
fn zones() {
    let disk = |name: &str, zone: &str, status_zone: &str| {
        format!(
            "---\napiVersion: k8s.kompox.dev/v1alpha1\nkind: KompoxDisk\nmetadata: {{name: {name}}}\nspec: {{size: 1Gi{}}}\nstatus: {{pvName: pv-{name}{}}}\n",
            if zone.is_empty() {
                String::new()
            } else {
                format!(", zone: '{zone}'")
            },
            if status_zone.is_empty() {
                String::new()
            } else {
                format!(", zone: '{status_zone}'")
            },
        )
    };
    let affinity = |r: &Rendered| {
        pod(r)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0].clone()
    };
    let vols = "  volumes: [{name: default, diskRef: {name: z1}}, {name: b, diskRef: {name: z2}}]";

    // The deployment zone (a number) maps through the provider and region.
    let r = fx(
        WEB,
        &format!("  deployment: {{zone: '2'}}\n{vols}"),
        &(disk("z1", "2", "") + &disk("z2", "", "japaneast-2")),
    )
    .ok();
    assert_eq!(
        affinity(&r),
        json!({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["japaneast-2"]})
    );
    // Without it, the disks' zone is used; eks maps numbers to letters.
    let mut f = fx(WEB, vols, &(disk("z1", "1", "") + &disk("z2", "", "")));
    f.cluster = ClusterInfo {
        provider: ProviderType::Eks,
        region: Some("us-east-1".into()),
    };
    assert_eq!(affinity(&f.ok())["values"], json!(["us-east-1a"]));
    // No zone anywhere: no affinity.
    let r = fx(WEB, vols, &(disk("z1", "", "") + &disk("z2", "", ""))).ok();
    assert!(pod(&r).get("affinity").is_none());

    let e = fx(
        WEB,
        &format!("  deployment: {{zone: '1'}}\n{vols}"),
        &(disk("z1", "2", "") + &disk("z2", "", "japaneast-1")),
    )
    .err();
    assert_error(
        &e,
        ErrorReason::ZoneMismatch,
        "spec.deployment.zone: zone \"1\" (japaneast-1) does not match zone \"2\" (japaneast-2) of KompoxDisk \"z1\" (spec.volumes[0]); the Pod can only run where its disks are",
    );
    assert_eq!(e.errors.len(), 1);
    let e = fx(
        WEB,
        vols,
        &(disk("z1", "1", "") + &disk("z2", "", "japaneast-3")),
    )
    .err();
    assert_error(
        &e,
        ErrorReason::ZoneMismatch,
        "spec.volumes[1].diskRef: KompoxDisk \"z2\" is in zone \"japaneast-3\" but KompoxDisk \"z1\" (spec.volumes[0]) is in zone \"1\" (japaneast-1); one Pod cannot use disks in two zones",
    );
    let mut f = fx(
        WEB,
        &format!("  deployment: {{zone: '1'}}\n{vols}"),
        &(disk("z1", "1", "") + &disk("z2", "", "")),
    );
    f.cluster.region = None;
    let e = f.err();
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.deployment.zone: zone \"1\": provider aks needs the region (node label topology.kubernetes.io/region) to map a zone number",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.volumes[0].diskRef: KompoxDisk \"z1\" spec.zone \"1\": provider aks needs the region (node label topology.kubernetes.io/region) to map a zone number",
    );
}

const ENV_DOCS: &str = "---
apiVersion: v1
kind: Secret
metadata: {name: src}
stringData:
  a.env: \"# comment\\nexport A=1\\nB='two words'\\nC=from-a\\nSECRET=hunter2\\n\"
  b.env: \"C=from-b\\nD=\\n\"
  bad.env: \"OK=1\\nhunter2 secret=x\\n\"
";

const ENV_MOUNTS: &str = "  files:
    mounts:
      - {path: /kompox/project/a.env, secretRef: {name: src, key: a.env}}
      - {path: /etc/b.env, secretRef: {name: src, key: b.env}}
      - {path: /kompox/project/bad.env, secretRef: {name: src, key: bad.env}}";

#[test]
fn env_files_become_a_derived_secret() {
    let r = fx(
        "services:
  web:
    image: x
    env_file: [./a.env, /etc/b.env, {path: missing.env, required: false}]
    environment: {SECRET: override, Z: '$$(not-expanded) $$$$'}
",
        ENV_MOUNTS,
        ENV_DOCS,
    )
    .ok();
    let s = obj(&r, "Secret", "app1-web-env");
    assert_eq!(s["type"], "Opaque");
    use base64::Engine as _;
    let enc = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    assert_eq!(
        s["data"],
        json!({"A": enc("1"), "B": enc("two words"), "C": enc("from-b"), "D": enc("")}),
        "later files win; keys set by environment are left out"
    );
    assert_eq!(
        ctr(&r, "web")["envFrom"],
        json!([{"secretRef": {"name": "app1-web-env"}}])
    );
    assert_eq!(
        ctr(&r, "web")["env"],
        json!([{"name": "SECRET", "value": "override"}, {"name": "Z", "value": "$$(not-expanded) $$$$"}])
    );
    assert!(has_warning(
        &r,
        "services.web.env_file[2]: env file \"missing.env\" not found (no spec.files.mounts entry with path /kompox/project/missing.env); skipped as required: false"
    ));
    // Env files used by the compose file are not mounted anywhere; the unused entry is.
    let pod_text = serde_json::to_string(pod(&r)).unwrap_or_default();
    assert!(!pod_text.contains("/kompox/project/a.env") && !pod_text.contains("/etc/b.env"));
    assert!(pod_text.contains("/kompox/project/bad.env"));
}

#[test]
fn env_file_errors_never_show_values() {
    let e = fx(
        "services:
  web:
    image: x
    env_file: [./bad.env, ./none.env, ../up.env, {path: ./a.env, format: yaml}]
",
        ENV_MOUNTS,
        ENV_DOCS,
    )
    .err();
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.env_file[0]: env file /kompox/project/bad.env (spec.files.mounts[2], Secret \"src\" key \"bad.env\"): line 2: a variable name cannot contain a space",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.env_file[1]: env file \"./none.env\" not found: add a spec.files.mounts entry with path /kompox/project/none.env (a Secret key holding the file)",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.env_file[2]: env file \"../up.env\" is outside the project directory",
    );
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "services.web.env_file[3]: env file /kompox/project/a.env (spec.files.mounts[0], Secret \"src\" key \"a.env\"): unknown env_file format \"yaml\" (expected raw or none)",
    );
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn file_mount_sources_must_exist() {
    let e = fx(
        WEB,
        "  files:
    mounts:
      - {path: /a, secretRef: {name: nope, key: k}}
      - {path: /b, configMapRef: {name: cm, key: nope}}
      - {path: /c, secretRef: {name: app1-web-env, key: k}}",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v}\n",
    )
    .err();
    assert_error(
        &e,
        ErrorReason::MissingReference,
        "spec.files.mounts[0].secretRef: Secret \"nope\" not found",
    );
    assert_error(
        &e,
        ErrorReason::MissingReference,
        "spec.files.mounts[1].configMapRef: ConfigMap \"cm\" has no key \"nope\"",
    );
    // A source named like a generated object would be overwritten by it.
    let e = fx(
        "services:\n  web: {image: x, env_file: [/c]}\n",
        "  files: {mounts: [{path: /c, secretRef: {name: app1-web-env, key: k}}]}",
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: app1-web-env}\nstringData: {k: A=1}\n",
    )
    .err();
    assert_error(
        &e,
        ErrorReason::InvalidSpec,
        "spec.files.mounts[0].secretRef.name: Secret \"app1-web-env\" has the name of a Secret Kompox generates for this app: rename it",
    );
}

#[test]
fn files_mounts_are_mounted_everywhere_and_binds_can_use_them() {
    let r = fx(
        "services:
  web:
    image: x
    volumes: ['./nginx.conf:/etc/nginx/nginx.conf:ro', '/etc/site.key:/k']
    depends_on: [db]
  db:
    image: y
",
        "  files:
    mounts:
      - {path: /etc/ssl/ca.pem, configMapRef: {name: ca, key: ca.pem}}
      - {path: /kompox/project/nginx.conf, configMapRef: {name: ca, key: nginx.conf}, mode: 256}
      - {path: /etc/site.key, secretRef: {name: key, key: k}}",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.pem: pem, nginx.conf: conf}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: key}\nstringData: {k: v}\n",
    )
    .ok();
    let web = &ctr(&r, "web")["volumeMounts"];
    assert_eq!(web[0]["mountPath"], "/etc/nginx/nginx.conf");
    assert_eq!(
        (web[0]["subPath"].clone(), web[0]["readOnly"].clone()),
        (json!("file"), json!(true))
    );
    assert!(
        web[0]["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("k4x-cm-ca-nginx-conf-400-")
    );
    assert_eq!(web[1]["mountPath"], "/k");
    assert_eq!(web[2]["mountPath"], "/etc/ssl/ca.pem");
    assert_eq!(
        web.as_array().map(Vec::len),
        Some(3),
        "used entries are not mounted at their own path"
    );
    assert_eq!(
        ctr(&r, "db")["volumeMounts"],
        json!([web[2]]),
        "sidecars get the global mounts too"
    );
    assert!(has_warning(
        &r,
        "services.web.volumes[1]: mounted read-only from Secret \"key\" key \"k\" (spec.files.mounts[2])"
    ));
    let vols = &pod(&r)["volumes"];
    let ca = vols
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["configMap"]["items"][0]["key"] == "ca.pem")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ca["configMap"],
        json!({"name": "ca", "items": [{"key": "ca.pem", "path": "file"}], "defaultMode": 420})
    );
    // The env hash covers the mounted sources: changing one changes it.
    let mut f = fx(
        WEB,
        "  files: {mounts: [{path: /etc/x, configMapRef: {name: ca, key: ca.pem}}]}",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.pem: pem}\n",
    );
    let before = f.ok().env_hash;
    if let Some(cm) = f.bundle.sources.config_maps.get_mut("ca") {
        cm.data = Some(BTreeMap::from([("ca.pem".to_owned(), "other".to_owned())]));
    }
    assert_ne!(before, f.ok().env_hash);
}

#[test]
fn compose_configs_and_secrets() {
    let mut f = fx(
        "services:
  web:
    image: x
    configs:
      - inline
      - {source: from-file, target: /etc/app.conf, mode: 0440, uid: '1000'}
      - {source: from-secret, target: /etc/s.conf}
      - {source: from-env, target: /etc/e.conf}
    secrets: [token, {source: token, target: custom}]
configs:
  inline: {content: 'a: 1'}
  from-file: {file: ./app.conf}
  from-secret: {file: /etc/kompox/s.conf}
  from-env: {environment: CFG}
  unused: {external: true}
secrets:
  token: {environment: TOKEN}
",
        "  files:
    mounts:
      - {path: /kompox/project/app.conf, configMapRef: {name: cm, key: app.conf}}
      - {path: /etc/kompox/s.conf, secretRef: {name: sec, key: s.conf}}",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {app.conf: conf}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: sec}\nstringData: {s.conf: s}\n",
    );
    f.vars.insert("CFG".into(), "from-env".into());
    f.vars.insert("TOKEN".into(), "t0ken".into());
    let r = f.ok();
    assert_eq!(
        obj(&r, "ConfigMap", "app1-configs")["data"],
        json!({"inline": "a: 1", "from-file": "conf", "from-env": "from-env"})
    );
    use base64::Engine as _;
    let enc = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    assert_eq!(
        obj(&r, "Secret", "app1-configs")["data"],
        json!({"from-secret": enc("s")})
    );
    assert_eq!(
        obj(&r, "Secret", "app1-secrets")["data"],
        json!({"token": enc("t0ken")})
    );
    let mounts: Vec<(String, String)> = ctr(&r, "web")["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap_or("").to_owned(),
                m["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let targets: Vec<&str> = mounts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/inline",
            "/etc/app.conf",
            "/etc/s.conf",
            "/etc/e.conf",
            "/run/secrets/token",
            "/run/secrets/custom"
        ]
    );
    let vol = |name: &str| {
        pod(&r)["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(vol(&mounts[1].1)["configMap"]["defaultMode"], 0o440);
    assert_eq!(vol(&mounts[0].1)["configMap"]["defaultMode"], 0o444);
    assert_eq!(vol(&mounts[2].1)["secret"]["secretName"], "app1-configs");
    assert_eq!(vol(&mounts[4].1)["secret"]["secretName"], "app1-secrets");
    assert!(has_warning(
        &r,
        "services.web.configs[1]: uid/gid ignored: Kubernetes owns projected files by root (or the Pod's fsGroup)"
    ));

    let e = ok_err(
        "services:
  web: {image: x, configs: [ext, missing], secrets: [env]}
configs:
  ext: {external: true}
  missing: {file: ./missing.conf}
secrets:
  env: {environment: NOPE}
",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "configs.ext.external: external configs are not supported: give the content with `file:` and a spec.files.mounts entry",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "configs.missing.file: file \"missing.conf\" not found: add a spec.files.mounts entry with path /kompox/project/missing.conf",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "secrets.env.environment: variable \"NOPE\" is not set",
    );
}

#[test]
fn healthchecks_become_probes() {
    let r = fx(
        "services:
  web:
    image: x
    healthcheck:
      test: curl -f http://localhost/
      interval: 15s
      timeout: 1500ms
      retries: 4
      start_period: 1m
  cmd:
    image: x
    healthcheck: {test: [CMD, /bin/check, --quick]}
  none:
    image: x
    healthcheck: {interval: 5s}
  off:
    image: x
    healthcheck: {disable: true}
",
        "  volumes: []",
        "",
    )
    .ok();
    let web = ctr(&r, "web");
    let exec = json!({"command": ["/bin/sh", "-c", "curl -f http://localhost/"]});
    assert_eq!(
        web["readinessProbe"],
        json!({"exec": exec, "periodSeconds": 15, "timeoutSeconds": 2, "failureThreshold": 4})
    );
    assert_eq!(
        web["livenessProbe"],
        json!({"exec": exec, "periodSeconds": 15, "timeoutSeconds": 2, "failureThreshold": 4, "initialDelaySeconds": 60})
    );
    assert!(web.get("startupProbe").is_none());
    assert_eq!(
        ctr(&r, "cmd")["readinessProbe"],
        json!({"exec": {"command": ["/bin/check", "--quick"]}, "periodSeconds": 30, "timeoutSeconds": 30, "failureThreshold": 3})
    );
    assert!(ctr(&r, "none").get("readinessProbe").is_none());
    assert!(ctr(&r, "off").get("livenessProbe").is_none());
    assert!(has_warning(
        &r,
        "services.none.healthcheck: no test: the image's HEALTHCHECK is not run by Kubernetes, so there are no probes"
    ));
    assert_eq!(r.warnings.len(), 1, "{:?}", warnings(&r));
}

#[test]
fn depends_on_becomes_sidecars_and_init_containers() {
    let r = ok("services:
  app:
    image: app
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
      cache: {condition: service_started}
  migrate:
    image: app
    depends_on: {db: {condition: service_healthy}}
    healthcheck: {test: [CMD, 'true']}
  db:
    image: postgres
    healthcheck: {test: [CMD, pg_isready], interval: 10s, retries: 5, start_period: 30s, start_interval: 2s}
  cache:
    image: redis
    healthcheck: {test: [CMD, redis-cli, ping]}
  worker:
    image: app
    depends_on: [cache]
");
    assert_eq!(init_names(&r), ["cache", "db", "migrate"]);
    let main: Vec<&str> = pod(&r)["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(main, ["app", "worker"]);
    assert_eq!(ctr(&r, "db")["restartPolicy"], "Always");
    assert_eq!(ctr(&r, "cache")["restartPolicy"], "Always");
    assert!(ctr(&r, "migrate").get("restartPolicy").is_none());
    assert!(ctr(&r, "migrate").get("readinessProbe").is_none());
    assert_eq!(
        ctr(&r, "db")["startupProbe"],
        json!({"exec": {"command": ["pg_isready"]}, "periodSeconds": 2, "timeoutSeconds": 30, "failureThreshold": 40})
    );
    assert!(
        ctr(&r, "cache").get("startupProbe").is_none(),
        "service_started needs no startup probe"
    );
    assert!(ctr(&r, "cache").get("readinessProbe").is_some());
    assert!(has_warning(
        &r,
        "services.migrate.healthcheck: ignored: the service runs to completion before the others (service_completed_successfully), as an init container without probes"
    ));

    let e = ok_err(
        "services:
  a: {image: x, depends_on: [b]}
  b: {image: x, depends_on: [c]}
  c: {image: x, depends_on: [a]}
  d: {image: x, depends_on: {e: {condition: service_healthy}}}
  e: {image: x}
",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.a.depends_on: dependency cycle: a -> b -> c -> a",
    );
    assert_eq!(e.errors.len(), 1);
    let e = ok_err(
        "services:
  d: {image: x, depends_on: {e: {condition: service_healthy}}}
  e: {image: x, healthcheck: {interval: 1s}}
",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.d.depends_on.e: condition service_healthy needs a healthcheck with a test on service \"e\" (Kubernetes does not run an image's HEALTHCHECK)",
    );
}

#[test]
fn container_settings() {
    // privileged and cap_add beyond the default set need the privileged level.
    let r = fx(
        "services:
  web:
    image: x
    entrypoint: [/bin/sh, -c]
    command: 'echo $$(date) $${HOME}'
    working_dir: /srv
    stdin_open: true
    tty: true
    user: '1000:2000'
    cap_add: [net_admin, CAP_SYS_TIME]
    cap_drop: [ALL]
    privileged: true
    read_only: true
    pull_policy: always
    stop_grace_period: 1m30s
    extra_hosts: ['db.local:10.0.0.1', 'cache.local=10.0.0.1', 'gw:host-gateway']
    deploy: {resources: {limits: {cpus: '1.5', memory: 1G}, reservations: {cpus: '0.1', memory: 100M}}}
  root:
    image: x
    user: root
    pull_policy: missing
    stop_grace_period: 10s
  named:
    image: x
    user: www-data:staff
    pull_policy: daily
    extra_hosts: ['db.local:10.0.0.2']
",
        "  podSecurity: privileged",
        "",
    )
    .ok();
    let web = ctr(&r, "web");
    assert_eq!(web["command"], json!(["/bin/sh", "-c"]));
    assert_eq!(web["args"], json!(["echo", "$$(date)", "${HOME}"]));
    assert_eq!(web["workingDir"], "/srv");
    assert_eq!(
        (web["stdin"].clone(), web["tty"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(web["imagePullPolicy"], "Always");
    assert_eq!(
        web["securityContext"],
        json!({
            "runAsUser": 1000, "runAsGroup": 2000, "privileged": true, "readOnlyRootFilesystem": true,
            "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"], "drop": ["ALL"]},
        })
    );
    assert_eq!(
        web["resources"],
        json!({"limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "100Mi"}})
    );
    assert_eq!(ctr(&r, "root")["securityContext"], json!({"runAsUser": 0}));
    assert_eq!(ctr(&r, "root")["imagePullPolicy"], "IfNotPresent");
    assert!(ctr(&r, "named").get("securityContext").is_none());
    assert_eq!(pod(&r)["terminationGracePeriodSeconds"], 90);
    assert_eq!(
        pod(&r)["hostAliases"],
        json!([
            {"ip": "10.0.0.1", "hostnames": ["cache.local"]},
            {"ip": "10.0.0.2", "hostnames": ["db.local"]},
        ])
    );
    for w in [
        "services.named.user: user name \"www-data\" ignored: Kubernetes needs a numeric UID (e.g. user: \"1000:1000\"); the image's user applies",
        "services.named.user: group name \"staff\" ignored: Kubernetes needs a numeric GID",
        "services.named.pull_policy: \"daily\" ignored: Kubernetes knows Always, Never and IfNotPresent",
        "services.web.extra_hosts: gw: host-gateway ignored: a Pod has no Docker host gateway",
        "services.web.extra_hosts: db.local: 10.0.0.1 ignored: services.named maps it to 10.0.0.2 and all services share one /etc/hosts",
    ] {
        assert!(has_warning(&r, w), "missing {w:?} in {:#?}", warnings(&r));
    }
}

#[test]
fn dropped_keys_warn() {
    let r = ok("services:
  web:
    image: x
    build: .
    labels: {a: b}
    annotations: {c: d}
    hostname: web1
    profiles: [debug]
    restart: 'no'
  job:
    image: x
    restart: on-failure:3
");
    for w in [
        "services.web.build: ignored: Kompox deploys the image \"x\"; build and push it first",
        "services.web.labels: ignored: compose labels are container metadata; Kompox sets the Kubernetes labels and annotations",
        "services.web.annotations: ignored: compose annotations are container metadata; Kompox sets the Kubernetes labels and annotations",
        "services.web.hostname: ignored: all services share the Pod's hostname",
        "services.web.profiles: ignored: Kompox renders every service, whatever its profiles",
        "services.web.restart: \"no\" is not honoured: Kubernetes restarts the containers of a Deployment's Pod whenever they exit",
        "services.job.restart: \"on-failure\" is not honoured: Kubernetes restarts the containers of a Deployment's Pod whenever they exit",
    ] {
        assert!(has_warning(&r, w), "missing {w:?} in {:#?}", warnings(&r));
    }
}

#[test]
fn compose_and_spec_errors() {
    let e = ok_err("services:\n  web:\n    build: .\n  other:\n    command: x\n");
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.web.build: Kompox deploys images and does not build them: build and push the image, then set services.web.image",
    );
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.other.image: required",
    );

    let e = ok_err("services:\n  web:\n    ports: [x]\n");
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.web.ports[0]: invalid port \"x\"",
    );
    let e = ok_err("services: {}\n");
    assert!(!e.errors.is_empty());
    assert_eq!(e.reason, ErrorReason::InvalidCompose);

    let mut f = fx("services:\n  web: {ports: [x]}\n", "", "");
    f.app().metadata.name = None;
    f.app().spec.compose.config_map_ref.key = String::new();
    let e = f.err();
    assert_error(&e, ErrorReason::InvalidSpec, "metadata.name: required");
    assert!(
        e.errors
            .iter()
            .any(|d| d.path == "spec.compose.configMapRef.key"),
        "{e}"
    );
    assert!(
        e.errors.iter().any(|d| d.path == "services.web.ports[0]"),
        "compose errors are reported too: {e}"
    );
    assert_eq!(
        e.to_string().lines().count(),
        e.errors.len(),
        "Display prints one path: message per line"
    );

    let e = ok_err("services:\n  init-volume-subpaths: {image: x, volumes: ['./d:/d']}\n");
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.init-volume-subpaths: the name \"init-volume-subpaths\" is taken by Kompox's init container: rename the service",
    );
    let e =
        ok_err("services:\n  web: {image: x, volumes: ['./d:/d', {type: tmpfs, target: /d}]}\n");
    assert_error(
        &e,
        ErrorReason::InvalidCompose,
        "services.web.volumes[1]: /d is already mounted by services.web.volumes[0] in container \"web\"",
    );
}

#[test]
fn reasons_map_to_conditions() {
    for (r, want) in [
        (ErrorReason::InvalidCompose, "InvalidCompose"),
        (ErrorReason::ZoneMismatch, "ZoneMismatch"),
        (ErrorReason::MissingReference, "ReferenceNotFound"),
        (ErrorReason::InvalidSpec, "InvalidSpec"),
    ] {
        assert_eq!(r.condition_reason(), want);
    }
}

#[test]
fn referenced_objects() {
    let f = fx(
        WEB,
        "  volumes: [{name: a, diskRef: {name: d2}}, {name: b, diskRef: {name: d1}}, {name: c, diskRef: {name: d1}}]
  files:
    mounts:
      - {path: /a, secretRef: {name: s1, key: k}}
      - {path: /b, configMapRef: {name: c1, key: k}}
      - {path: /c, secretRef: {name: s1, key: j}}",
        "",
    );
    let refs = referenced_sources(&f.bundle.apps[0]);
    assert_eq!(refs.secrets.into_iter().collect::<Vec<_>>(), ["s1"]);
    assert_eq!(refs.config_maps.into_iter().collect::<Vec<_>>(), ["c1"]);
    assert_eq!(referenced_disks(&f.bundle.apps[0]), ["d1", "d2"]);
}

/// The webhook computes the env hash from the applied Pod and the objects in the cluster;
/// it must get the renderer's value.
#[test]
fn env_hash_matches_what_the_webhook_computes() {
    let r = fx(
        "services:
  web:
    image: x
    env_file: [./a.env]
    configs: [c]
configs:
  c: {content: x}
",
        "  files:
    mounts:
      - {path: /kompox/project/a.env, secretRef: {name: src, key: a.env}}
      - {path: /etc/ca.pem, configMapRef: {name: ca, key: ca.pem}}",
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src}\nstringData: {a.env: A=1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.pem: pem}\n",
    )
    .ok();
    let spec: PodSpec = match serde_json::from_value(pod(&r).clone()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    // What the cluster holds after apply: the rendered Secrets/ConfigMaps and the sources.
    let mut cluster: BTreeMap<(SourceKind, String), ObjectDigests> = BTreeMap::new();
    for o in &r.objects {
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match o["kind"].as_str() {
            Some("Secret") => {
                let s: Secret = serde_json::from_value(o.clone()).unwrap_or_default();
                cluster.insert((SourceKind::Secret, name), ObjectDigests::from_secret(&s));
            }
            Some("ConfigMap") => {
                let c: ConfigMap = serde_json::from_value(o.clone()).unwrap_or_default();
                cluster.insert(
                    (SourceKind::ConfigMap, name),
                    ObjectDigests::from_config_map(&c),
                );
            }
            _ => {}
        }
    }
    let ca = ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("ca".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("ca.pem".into(), "pem".into())])),
        ..Default::default()
    };
    cluster.insert(
        (SourceKind::ConfigMap, "ca".into()),
        ObjectDigests::from_config_map(&ca),
    );
    let refs = pod_spec_env_refs(&spec);
    assert_eq!(refs.len(), 3, "{refs:?}");
    let webhook = env_hash_for_refs(&test_key(), "ns1", &refs, |k, n| {
        cluster.get(&(k, n.to_owned()))
    });
    assert_eq!(webhook, r.env_hash);
}

#[test]
fn no_secret_value_in_any_message() {
    let mut f = fx(
        "services:
  web:
    image: x
    env_file: [./a.env]
    secrets: [tok]
secrets:
  tok: {environment: TOKEN}
",
        "  files: {mounts: [{path: /kompox/project/a.env, secretRef: {name: src, key: a.env}}]}",
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src}\nstringData: {a.env: \"GOOD=s3cr3t-value\\n'unterminated s3cr3t-value\\n\"}\n",
    );
    f.vars.insert("TOKEN".into(), "s3cr3t-value".into());
    let e = f.err();
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    assert!(!format!("{e:?}").contains("s3cr3t"));
    assert!(!format!("{:?}", f.bundle.sources).contains("s3cr3t"));
}

/// Compose names that are not Kubernetes names: every object gets the derived name
/// ([`crate::naming::k8s_names`]) and the compose name still resolves inside the Pod.
#[test]
fn compose_names_become_kubernetes_names() {
    struct Case {
        name: &'static str,
        compose: &'static str,
        /// (kind, name) that must exist.
        objects: &'static [(&'static str, &'static str)],
        containers: &'static [&'static str],
        host_aliases: Value,
        /// Lines the /etc/hosts ConfigMap must hold (none: no such ConfigMap).
        hosts_file: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "underscore service and volume",
            compose: "services:
  my_db:
    image: mariadb
    env_file: [./db.env]
    volumes: [db_data:/var/lib/mysql]
  web:
    image: wordpress
    environment: {WORDPRESS_DB_HOST: my_db}
volumes:
  db_data: {}
",
            objects: &[
                ("Service", "my-db"),
                ("Service", "web"),
                ("Secret", "app1-my-db-env"),
                ("PersistentVolumeClaim", "app1-db-data"),
                ("ConfigMap", "app1-hosts"),
            ],
            containers: &["my-db", "web"],
            host_aliases: Value::Null,
            hosts_file: &["127.0.0.1\tapp1\tmy_db", "127.0.0.1\tlocalhost"],
        },
        Case {
            name: "dotted and upper-case names use hostAliases",
            compose: "services:
  db.local: {image: postgres}
  Web: {image: nginx, extra_hosts: ['api.example.com=10.0.0.1']}
",
            objects: &[("Service", "db-local"), ("Service", "web")],
            containers: &["db-local", "web"],
            host_aliases: json!([
                {"ip": "10.0.0.1", "hostnames": ["api.example.com"]},
                {"ip": "127.0.0.1", "hostnames": ["db.local", "web"]},
            ]),
            hosts_file: &[],
        },
        Case {
            name: "colliding names: the valid one keeps its name",
            compose: "services:
  db-1: {image: a}
  db_1: {image: b}
",
            objects: &[("Service", "db-1")],
            containers: &["db-1"],
            host_aliases: Value::Null,
            hosts_file: &["127.0.0.1\tapp1\tdb_1"],
        },
    ];
    for c in cases {
        let spec = if c.compose.contains("db_data") {
            "  volumes: [{name: db_data, diskRef: {name: d1}}]
  files: {mounts: [{path: /kompox/project/db.env, secretRef: {name: src, key: db.env}}]}"
        } else {
            ""
        };
        let docs = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src}\nstringData: {db.env: \"A=1\"}\n";
        let r = match fx(c.compose, spec, docs).run() {
            Ok(r) => r,
            Err(e) => panic!("{}: {e}", c.name),
        };
        for (kind, n) in c.objects {
            assert!(
                has(&r, kind, n),
                "{}: no {kind}/{n} in {:?}",
                c.name,
                names(&r)
            );
        }
        let p = pod(&r);
        let ctrs: Vec<&str> = p["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["name"].as_str())
            .collect();
        for want in c.containers {
            assert!(ctrs.contains(want), "{}: containers {ctrs:?}", c.name);
        }
        assert_eq!(p["hostAliases"], c.host_aliases, "{}", c.name);
        if c.hosts_file.is_empty() {
            assert!(!has(&r, "ConfigMap", "app1-hosts"), "{}", c.name);
            continue;
        }
        let text = obj(&r, "ConfigMap", "app1-hosts")["data"]["hosts"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for line in c.hosts_file {
            assert!(
                text.lines().any(|l| l == *line),
                "{}: {line:?} not in {text}",
                c.name
            );
        }
        assert_eq!(p["hostname"], "app1", "{}", c.name);
        for ctr in p["containers"].as_array().into_iter().flatten() {
            let mounts = ctr["volumeMounts"].as_array().cloned().unwrap_or_default();
            assert!(
                mounts
                    .iter()
                    .any(|m| m["mountPath"] == "/etc/hosts" && m["readOnly"] == true),
                "{}: {ctr}",
                c.name
            );
        }
    }
}

/// Bind sources no spec.files.mounts entry provides: named case table.
#[test]
fn binds_on_the_default_disk_or_refused() {
    struct Case {
        name: &'static str,
        bind: &'static str,
        /// (subPath on the default volume, warning) or the error.
        want: Result<(Option<&'static str>, Option<&'static str>), &'static str>,
    }
    let cases = [
        Case {
            name: "relative directory",
            bind: "./data:/data",
            want: Ok((Some("data"), None)),
        },
        Case {
            name: "absolute data directory",
            bind: "/etc/pihole:/etc/pihole",
            want: Ok((
                Some("_host/etc/pihole"),
                Some(
                    "services.web.volumes[0]: host path /etc/pihole becomes the directory _host/etc/pihole on volume \"default\" (spec.volumes[0]), empty at first: copy the host's data there if the app needs it",
                ),
            )),
        },
        Case {
            name: "home directory",
            bind: "~/data:/data",
            want: Ok((
                Some("_home/data"),
                Some(
                    "services.web.volumes[0]: host path ~/data becomes the directory _home/data on volume \"default\" (spec.volumes[0]), empty at first: copy the host's data there if the app needs it",
                ),
            )),
        },
        Case {
            name: "docker socket",
            bind: "/var/run/docker.sock:/var/run/docker.sock",
            want: Err(
                "services.web.volumes[0]: bind source \"/var/run/docker.sock\" is refused: the Docker daemon's socket: a Pod has no Docker daemon, and Kompox gives containers no access to the node",
            ),
        },
        Case {
            name: "docker socket elsewhere",
            bind: "/home/me/docker.sock:/docker.sock",
            want: Err(
                "services.web.volumes[0]: bind source \"/home/me/docker.sock\" is refused: the Docker daemon's socket: a Pod has no Docker daemon, and Kompox gives containers no access to the node",
            ),
        },
        Case {
            name: "device",
            bind: "/dev/ttyUSB0:/dev/ttyUSB0",
            want: Err(
                "services.web.volumes[0]: bind source \"/dev/ttyUSB0\" is refused: the host's devices: Kompox gives containers no access to the node's devices",
            ),
        },
        Case {
            name: "proc",
            bind: "/proc:/host/proc:ro",
            want: Err(
                "services.web.volumes[0]: bind source \"/proc\" is refused: the host kernel's process interface: a container sees its own /proc",
            ),
        },
        Case {
            name: "sys",
            bind: "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            want: Err(
                "services.web.volumes[0]: bind source \"/sys/fs/cgroup\" is refused: the host kernel's interfaces: Kompox gives containers no access to the node's",
            ),
        },
        Case {
            name: "run",
            bind: "/run/dbus:/run/dbus",
            want: Err(
                "services.web.volumes[0]: bind source \"/run/dbus\" is refused: runtime sockets and state of the host (such as the Docker daemon's socket): a Pod has no access to the node's",
            ),
        },
        Case {
            name: "root",
            bind: "/:/host",
            want: Err(
                "services.web.volumes[0]: bind source \"/\" is refused: the host's root filesystem: Kompox gives containers no access to the node's",
            ),
        },
        Case {
            name: "not a prefix match",
            bind: "/srv/devices:/d",
            want: Ok((Some("_host/srv/devices"), None)),
        },
        Case {
            name: "time zone left out",
            bind: "/etc/localtime:/etc/localtime:ro",
            want: Ok((
                None,
                Some(
                    "services.web.volumes[0]: bind source \"/etc/localtime\" left out: the host's time zone: a Pod runs on any node; set the TZ environment variable instead",
                ),
            )),
        },
    ];
    for c in cases {
        let compose = format!(
            "services:\n  web:\n    image: x\n    volumes: ['{}']\n",
            c.bind
        );
        let got = fx(&compose, "", "").run();
        match (&c.want, got) {
            (Ok((sub, warning)), Ok(r)) => {
                let mounts = ctr(&r, "web")["volumeMounts"].clone();
                match sub {
                    Some(sub) => assert_eq!(mounts[0]["subPath"], *sub, "{}: {mounts}", c.name),
                    None => assert!(mounts.is_null(), "{}: {mounts}", c.name),
                }
                if let Some(w) = warning {
                    assert!(has_warning(&r, w), "{}: {:#?}", c.name, warnings(&r));
                }
            }
            (Err(want), Err(e)) => assert_error(&e, ErrorReason::InvalidCompose, want),
            (want, got) => panic!("{}: want {want:?}, got {got:?}", c.name),
        }
    }
}

/// A read-only directory bind provided file by file (what `apply` makes of `./conf.d:…:ro`):
/// one projected volume with every file at its relative path.
#[test]
fn directory_bind_from_file_entries() {
    let r = fx(
        "services:\n  web:\n    image: nginx\n    volumes: ['./conf.d:/etc/nginx/conf.d:ro']\n",
        "  files: {mounts: [
    {path: /kompox/project/conf.d/a.conf, configMapRef: {name: dir, key: a.conf}},
    {path: /kompox/project/conf.d/sub/b.conf, configMapRef: {name: dir, key: sub_b.conf}, mode: 0o600}]}",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: dir}\ndata: {a.conf: a, sub_b.conf: b}\n",
    )
    .ok();
    let m = &ctr(&r, "web")["volumeMounts"][0];
    assert_eq!(m["mountPath"], "/etc/nginx/conf.d");
    assert_eq!(m["readOnly"], true);
    assert!(m.get("subPath").is_none(), "{m}");
    let vol = pod(&r)["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == m["name"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        vol["projected"]["sources"],
        json!([
            {"configMap": {"name": "dir", "items": [{"key": "a.conf", "path": "a.conf", "mode": 420}]}},
            {"configMap": {"name": "dir", "items": [{"key": "sub_b.conf", "path": "sub/b.conf", "mode": 384}]}},
        ])
    );
    // The entries are used by the bind, not mounted at their own paths.
    assert!(
        !r.objects
            .iter()
            .any(|o| o.to_string().contains("/kompox/project/conf.d"))
    );
}

// ---------------------------------------------------------------- spec.compose.envFrom

/// `spec.compose.envFrom` lines and the Secret `vars` (PW, TAG, DB_PORT) and ConfigMap
/// `plain` (TAG, HOST) they name.
const VARS_SPEC: &str =
    "  files: {mounts: [{path: /kompox/project/app.env, secretRef: {name: files, key: app.env}}]}";
const VARS_DOCS: &str = "---
apiVersion: v1
kind: Secret
metadata: {name: vars}
stringData: {PW: hunter2-secret, TAG: '1.27', DB_PORT: 5432x, EMPTY: ''}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
data: {TAG: '1.26', HOST: db.internal}
---
apiVersion: v1
kind: Secret
metadata: {name: files}
stringData: {app.env: \"FROM_FILE=${PW}-x\\nHOST_COPY=$HOST\\n\"}
";

fn env_from(secret: Option<&str>, config_map: Option<&str>) -> crate::api::ComposeEnvFrom {
    let r = |n: &str| crate::api::OptionalRef {
        name: n.to_owned(),
        optional: None,
    };
    crate::api::ComposeEnvFrom {
        prefix: None,
        secret_ref: secret.map(r),
        config_map_ref: config_map.map(r),
    }
}

/// A fixture with `spec.compose.envFrom` = `sources` (`s:NAME` a Secret, `c:NAME` a
/// ConfigMap), in order.
fn fx_vars(compose: &str, sources: &[&str]) -> Fx {
    let mut f = fx(compose, VARS_SPEC, VARS_DOCS);
    f.app().spec.compose.env_from = sources
        .iter()
        .map(|s| match s.split_once(':') {
            Some(("s", n)) => env_from(Some(n), None),
            _ => env_from(None, Some(s.trim_start_matches("c:"))),
        })
        .collect();
    f
}

fn all_text(r: &Rendered) -> String {
    serde_json::to_string(&r.objects).unwrap_or_default()
}

#[test]
fn env_from_variables_interpolate_with_precedence() {
    let compose = "services:\n  web:\n    image: nginx:${TAG}\n    environment: {HOST: $HOST}\n";
    let cases: &[(&str, &[&str], &str)] = &[
        ("a ConfigMap alone", &["c:plain"], "nginx:1.26"),
        ("later entries win", &["c:plain", "s:vars"], "nginx:1.27"),
        (
            "the Secret first, the ConfigMap wins",
            &["s:vars", "c:plain"],
            "nginx:1.26",
        ),
    ];
    for (name, sources, image) in cases {
        let r = fx_vars(compose, sources).ok();
        assert_eq!(ctr(&r, "web")["image"], *image, "case {name}");
        assert_eq!(
            ctr(&r, "web")["env"],
            json!([{"name": "HOST", "value": "db.internal"}]),
            "case {name}"
        );
    }
    // --var (RenderInput::interpolation) wins over envFrom.
    let mut f = fx_vars(compose, &["c:plain"]);
    f.vars.insert("TAG".into(), "2.0".into());
    assert_eq!(ctr(&f.ok(), "web")["image"], "nginx:2.0");
    // A prefix.
    let mut f = fx_vars(
        "services:\n  web:\n    image: nginx:${CM_TAG}\n",
        &["c:plain"],
    );
    f.app().spec.compose.env_from[0].prefix = Some("CM_".into());
    assert_eq!(ctr(&f.ok(), "web")["image"], "nginx:1.26");
}

#[test]
fn env_from_missing_sources() {
    let compose = "services:\n  web:\n    image: nginx\n";
    let e = fx_vars(compose, &["s:nope", "c:gone"]).err();
    assert_error(
        &e,
        ErrorReason::MissingReference,
        "spec.compose.envFrom[0].secretRef.name: Secret \"nope\" not found",
    );
    assert_error(
        &e,
        ErrorReason::MissingReference,
        "spec.compose.envFrom[1].configMapRef.name: ConfigMap \"gone\" not found",
    );
    let mut f = fx_vars(compose, &["s:nope"]);
    if let Some(r) = f.app().spec.compose.env_from[0].secret_ref.as_mut() {
        r.optional = Some(true);
    }
    assert_eq!(ctr(&f.ok(), "web")["image"], "nginx");
    let refs = referenced_sources(&fx_vars(compose, &["s:vars", "c:plain"]).bundle.apps[0]);
    assert!(refs.secrets.contains("vars") && refs.config_maps.contains("plain"));
}

#[test]
fn secret_held_environment_values_become_secret_key_refs() {
    let compose = "services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${PW}
      URL: postgres://app:${PW}@db:${DB_PORT:-5432}/app
      PLAIN: literal
      HOST: $HOST
  web:
    image: nginx
    environment: [PW, \"odd key=${PW}\"]
";
    let r = fx_vars(compose, &["s:vars", "c:plain"]).ok();
    let text = all_text(&r);
    let sref = |key: &str| json!({"secretKeyRef": {"name": "app1-environment", "key": key}});
    assert_eq!(
        ctr(&r, "db")["env"],
        json!([
            {"name": "HOST", "value": "db.internal"},
            {"name": "PLAIN", "value": "literal"},
            {"name": "POSTGRES_PASSWORD", "valueFrom": sref("db.POSTGRES_PASSWORD")},
            {"name": "URL", "valueFrom": sref("db.URL")},
        ])
    );
    let web_env = ctr(&r, "web")["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(web_env.len(), 2);
    assert_eq!(web_env[1]["name"], "odd key");
    assert!(
        web_env[1]["valueFrom"]["secretKeyRef"]["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("web.env-")),
        "{web_env:?}"
    );
    let s = obj(&r, "Secret", "app1-environment");
    let data = s["data"].as_object().cloned().unwrap_or_default();
    assert_eq!(data.len(), 4, "{data:?}");
    // The values are in the Secret (base64), nowhere in plain text.
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(warnings(&r).iter().all(|w| !w.contains("hunter2")));
    // The env hash covers the derived Secret: a new password rolls the Pod.
    let mut f = fx_vars(compose, &["s:vars", "c:plain"]);
    if let Some(s) = f.bundle.sources.secrets.get_mut("vars") {
        s.string_data
            .get_or_insert_with(BTreeMap::new)
            .insert("PW".into(), "another".into());
    }
    assert_ne!(f.ok().env_hash, r.env_hash);
    // A variable from a ConfigMap stays plain.
    let r = fx_vars(compose, &["c:plain"]).ok();
    assert!(!has(&r, "Secret", "app1-environment") || !all_text(&r).contains("db.HOST"));
}

#[test]
fn fields_that_hold_no_credential() {
    for (name, path, want) in [
        ("image", "services.web.image", true),
        (
            "image of a dotted service",
            "services[\"Web.Front\"].image",
            true,
        ),
        ("short volume entry", "services.db.volumes[0]", true),
        ("long volume source", "services.db.volumes[12].source", true),
        ("long volume target", "services.db.volumes[1].target", false),
        ("command word", "services.web.command[1]", false),
        ("label", "services.web.labels.pw", false),
        ("top-level volume name", "volumes.data.name", false),
    ] {
        assert_eq!(super::no_credential(path), want, "{name}: {path}");
    }
}

#[test]
fn secret_held_variables_elsewhere_warn_without_the_value() {
    let compose = "services:
  web:
    image: nginx:${TAG}
    command: [run, \"--password=${PW}\"]
    labels: {pw: $PW}
configs:
  app:
    content: pw=${PW}
  other:
    environment: PW
secrets:
  s:
    environment: PW
";
    let mut compose = compose.to_owned();
    compose = compose.replace(
        "    labels: {pw: $PW}\n",
        "    labels: {pw: $PW}\n    configs: [app, other]\n    secrets: [s]\n",
    );
    let r = fx_vars(&compose, &["s:vars"]).ok();
    let w = warnings(&r);
    let secret_warning = |path: &str, var: &str| {
        format!(
            "{path}: uses the secret-held variable ${{{var}}}: its value is in plain text in the rendered objects (only environment entries, configs and secrets are kept in Secrets)"
        )
    };
    for want in [
        secret_warning("services.web.command[1]", "PW"),
        secret_warning("services.web.labels.pw", "PW"),
    ] {
        assert!(w.contains(&want), "missing {want:?} in {w:#?}");
    }
    // An image reference holds no credential: a tag from .env is not warned about.
    assert!(
        !w.iter().any(|w| w.starts_with("services.web.image")),
        "{w:#?}"
    );
    assert!(
        !w.iter()
            .any(|w| w.starts_with("configs") || w.starts_with("secrets")),
        "{w:#?}"
    );
    assert!(w.iter().all(|w| !w.contains("hunter2")), "{w:#?}");
    // Configs whose content came from a secret-held variable are kept in a Secret.
    assert!(!has(&r, "ConfigMap", "app1-configs"), "{:?}", names(&r));
    let s = obj(&r, "Secret", "app1-configs");
    assert!(s["data"]["app"].is_string() && s["data"]["other"].is_string());
}

#[test]
fn values_invalid_after_interpolation_are_errors_naming_field_and_variable() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "empty tag from an unset variable",
            "image: nginx:${NOPE}",
            "services.web.image: invalid image reference \"nginx:\": the tag after \":\" is empty (interpolated from ${NOPE} (not set))",
        ),
        (
            "empty tag from an empty secret variable",
            "image: nginx:${EMPTY}",
            "services.web.image: invalid image reference \"nginx:${EMPTY}\": the tag after \":\" is empty (interpolated from ${EMPTY})",
        ),
        (
            "a port from a secret variable: the value is not shown",
            "image: nginx\n    ports: [\"${DB_PORT}:80\"]",
            "services.web.ports[0]: invalid port \"${DB_PORT}:80\" (interpolated from ${DB_PORT})",
        ),
        (
            "a size",
            "image: nginx\n    shm_size: ${HOST}",
            "services.web.shm_size: invalid size \"db.internal\" (expected bytes or e.g. \"512M\", \"1.5g\") (interpolated from ${HOST})",
        ),
        (
            "a duration",
            "image: nginx\n    stop_grace_period: ${TAG}",
            "services.web.stop_grace_period: invalid duration \"1.26\" (expected e.g. \"10s\", \"1m30s\", \"500ms\") (interpolated from ${TAG})",
        ),
    ];
    for (name, body, want) in cases {
        let compose = format!("services:\n  web:\n    {body}\n");
        let e = fx_vars(&compose, &["s:vars", "c:plain"]).err();
        let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        assert!(lines.iter().any(|l| l == want), "case {name}: {lines:#?}");
        assert!(
            lines.iter().all(|l| !l.contains("5432x")),
            "case {name}: {lines:#?}"
        );
        assert_eq!(e.reason, ErrorReason::InvalidCompose, "case {name}");
    }
}

#[test]
fn env_files_interpolate_with_the_variables() {
    let compose = "services:\n  web:\n    image: nginx\n    env_file: [./app.env]\n";
    let r = fx_vars(compose, &["s:vars", "c:plain"]).ok();
    let s = obj(&r, "Secret", "app1-web-env");
    let decoded: BTreeMap<String, String> = s["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let b = v.as_str().unwrap_or_default();
            let bytes = serde_json::from_value::<k8s_openapi::ByteString>(json!(b))
                .map(|b| b.0)
                .unwrap_or_default();
            (k.clone(), String::from_utf8(bytes).unwrap_or_default())
        })
        .collect();
    assert_eq!(
        decoded,
        BTreeMap::from([
            ("FROM_FILE".to_owned(), "hunter2-secret-x".to_owned()),
            ("HOST_COPY".to_owned(), "db.internal".to_owned()),
        ])
    );
}

/// The rendered Pod is checked against `spec.podSecurity` (baseline by default); each refusal
/// names the compose field and nothing is rendered.
#[test]
fn pod_security_levels() {
    let bad = "services:
  web:
    image: x
    privileged: true
    cap_add: [CHOWN, sys_admin]
  db:
    image: y
    user: root
";
    let level = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("  podSecurity: {l}")
        }
    };
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "baseline by default",
            "",
            &["services.web.privileged", "services.web.cap_add[1]"],
        ),
        (
            "baseline",
            "baseline",
            &["services.web.privileged", "services.web.cap_add[1]"],
        ),
        (
            "restricted",
            "restricted",
            &[
                "services.db.user",
                "services.web.privileged",
                "services.web.cap_add[0]",
                "services.web.cap_add[1]",
            ],
        ),
        ("privileged", "privileged", &[]),
    ];
    for (name, l, want) in cases {
        let f = fx(bad, &level(l), "");
        if want.is_empty() {
            let r = f.ok();
            assert_eq!(ctr(&r, "web")["securityContext"]["privileged"], true);
            continue;
        }
        let e = f.err();
        let paths: Vec<&str> = e.errors.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(&paths, want, "case {name:?}");
        assert_eq!(e.reason, ErrorReason::PodSecurity, "case {name:?}");
        assert_eq!(e.reason.condition_reason(), "PodSecurityViolation");
    }
    let e = fx(bad, "", "").err();
    assert_eq!(
        e.errors[0].message,
        "privileged containers are not allowed at Pod Security level \"baseline\" (spec.podSecurity); only a cluster admin can allow it, with spec.podSecurity: privileged (docs/security.md)"
    );
    assert_eq!(
        e.errors[1].message.split(" at ").next(),
        Some("adding capability SYS_ADMIN is not allowed")
    );
}

/// `restricted` sets what the level needs on the Pod and every container, init containers
/// (Kompox's own and dependencies) included.
#[test]
fn restricted_pod_is_hardened() {
    let r = fx(
        "services:
  web:
    image: x
    user: '1000'
    cap_add: [NET_BIND_SERVICE]
    volumes: [default/sub:/srv]
    depends_on: [db]
  db:
    image: y
volumes:
  default: {}
",
        "  podSecurity: restricted",
        "",
    )
    .ok();
    let p = pod(&r);
    // Volumes are the fsGroup's (no service names a group: nobody's).
    assert_eq!(
        p["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"},
               "fsGroup": 65534, "fsGroupChangePolicy": "OnRootMismatch"})
    );
    for c in [SUBPATH_INIT_CONTAINER, "db", "web"] {
        let sc = &ctr(&r, c)["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{c}");
    }
    // Kompox's busybox creates the sub-directories without root, in the fsGroup.
    let init = &ctr(&r, SUBPATH_INIT_CONTAINER)["securityContext"];
    assert_eq!(
        (&init["runAsUser"], &init["runAsGroup"]),
        (&json!(65534), &json!(65534))
    );
    // db names no user: the image's applies, which the render cannot see — a warning names it.
    assert_eq!(
        warnings(&r)
            .iter()
            .filter(|w| w.contains("restricted"))
            .map(|w| w.split(':').next().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["services.db.user"],
        "{:?}",
        warnings(&r)
    );
    assert_eq!(
        ctr(&r, "web")["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND_SERVICE"])
    );
    let spec: PodSpec = serde_json::from_value(p.clone()).unwrap_or_default();
    assert_eq!(
        podsecurity::check(PodSecurityLevel::Restricted, &spec),
        Vec::new()
    );
    // baseline leaves the Pod as the compose file says.
    let r = ok("services:\n  web:\n    image: x\n");
    assert!(pod(&r).get("securityContext").is_none());
    assert!(ctr(&r, "web").get("securityContext").is_none());
}

/// Under `restricted` the Pod's fsGroup is the first non-root group a service names; `user:
/// root` or UID 0 is refused naming the field.
#[rstest::rstest]
#[case::group_of_the_first_service("    user: '1000:2000'\n", Ok(2000))]
#[case::root_group_is_not_taken("    user: '1000:0'\n", Ok(65534))]
#[case::uid_only("    user: '1000'\n", Ok(65534))]
#[case::root_by_name("    user: root\n", Err("services.web.user"))]
#[case::root_by_id("    user: '0'\n", Err("services.web.user"))]
fn restricted_fs_group_and_root(#[case] user: &str, #[case] want: Result<i64, &str>) {
    let compose = format!(
        "services:\n  web:\n    image: x\n{user}    volumes: [default/sub:/srv]\nvolumes:\n  default: {{}}\n"
    );
    let f = fx(&compose, "  podSecurity: restricted", "");
    match want {
        Ok(group) => assert_eq!(pod(&f.ok())["securityContext"]["fsGroup"], json!(group)),
        Err(path) => {
            let e = f.err();
            assert!(e.errors.iter().any(|d| d.path == path), "{:?}", e.errors);
        }
    }
}

/// A service others depend on runs as a native sidecar (an init container); under
/// `restricted` its `user` counts like any service's: no "not set" warning for it, and its
/// group is the fsGroup when it is the first non-root one (the nextcloud sample's redis).
#[test]
fn restricted_sidecar_users_count() {
    let r = fx(
        "services:
  web:
    image: x
    user: '1000'
    volumes: [default/sub:/srv]
    depends_on: [cache]
  cache:
    image: redis
    user: '999:999'
volumes:
  default: {}
",
        "  podSecurity: restricted",
        "",
    )
    .ok();
    let p = pod(&r);
    assert!(
        p["initContainers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["name"] == "cache")),
        "cache is no sidecar here: {p}"
    );
    assert_eq!(p["securityContext"]["fsGroup"], json!(999));
    let restricted: Vec<_> = warnings(&r)
        .into_iter()
        .filter(|w| w.contains("restricted"))
        .collect();
    assert!(restricted.is_empty(), "{restricted:?}");
}

/// Values given as `interpolation` (`render --var`) may be secrets: errors and warnings name the
/// variable and show the text as written, never the value.
#[test]
fn var_values_are_never_quoted_in_errors() {
    let mut f = fx(
        "services:\n  web:\n    image: nginx\n    ports: [\"${PORT}\"]\n",
        "",
        "",
    );
    f.vars.insert("PORT".into(), "s3cret:80".into());
    let text = f.err().to_string();
    assert!(text.contains("services.web.ports[0]"), "{text}");
    assert!(text.contains("${PORT}"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    let mut f = fx(
        "services:\n  web:\n    image: nginx\n    user: \"${WHO}\"\n",
        "",
        "",
    );
    f.vars.insert("WHO".into(), "hunter2name".into());
    let warnings: Vec<String> = f.ok().warnings.iter().map(ToString::to_string).collect();
    let text = warnings.join("\n");
    assert!(text.contains("services.web.user"), "{text}");
    assert!(!text.contains("hunter2name"), "{text}");
}

const OVERRIDE_DOCS: &str = "---
apiVersion: v1
kind: Secret
metadata: {name: ov}
stringData: {DB_PASSWORD: from-secret, EXTRA: x}
";

#[test]
fn env_overrides_win_over_environment_and_roll_the_pod() {
    let compose = "services:
  web:
    image: nginx
    environment: {DB_PASSWORD: literal, KEEP: k}
  db:
    image: postgres
    environment: {DB_PASSWORD: literal}
";
    let mut f = fx(
        compose,
        "  envOverrides: [{service: web, secretRef: {name: ov}}]\n  imagePullSecrets: [{name: pull}]",
        OVERRIDE_DOCS,
    );
    let r = f.ok();
    // The overridden key leaves `env` (which would win over envFrom); the Secret comes last.
    assert_eq!(
        ctr(&r, "web")["env"],
        json!([{"name": "KEEP", "value": "k"}])
    );
    assert_eq!(
        ctr(&r, "web")["envFrom"],
        json!([{"secretRef": {"name": "ov"}}])
    );
    // Another service is untouched.
    assert_eq!(
        ctr(&r, "db")["env"],
        json!([{"name": "DB_PASSWORD", "value": "literal"}])
    );
    assert!(ctr(&r, "db").get("envFrom").is_none());
    assert_eq!(pod(&r)["imagePullSecrets"], json!([{"name": "pull"}]));
    // A changed override value changes the env hash (the app rolls).
    let before = r.env_hash;
    if let Some(s) = f.bundle.sources.secrets.get_mut("ov") {
        s.string_data = Some(BTreeMap::from([
            ("DB_PASSWORD".to_owned(), "rotated".to_owned()),
            ("EXTRA".to_owned(), "x".to_owned()),
        ]));
    }
    assert_ne!(before, f.ok().env_hash);
    let refs = referenced_sources(&f.bundle.apps[0]);
    assert!(refs.secrets.contains("ov"), "{refs:?}");
}

#[test]
fn env_overrides_behind_an_env_file() {
    let mut f = fx(
        "services:\n  web:\n    image: nginx\n    env_file: app.env\n",
        "  envOverrides: [{service: web, secretRef: {name: ov}}]
  files: {mounts: [{path: /kompox/project/app.env, secretRef: {name: files, key: app.env}}]}",
        &format!(
            "{OVERRIDE_DOCS}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: files}}\nstringData: {{app.env: \"DB_PASSWORD=file\\n\"}}\n"
        ),
    );
    let r = f.ok();
    let from = &ctr(&r, "web")["envFrom"];
    assert_eq!(from.as_array().map(Vec::len), Some(2), "{from}");
    assert_eq!(from[1], json!({"secretRef": {"name": "ov"}}), "{from}");
    f.app().spec.env_overrides.clear();
    assert_eq!(
        ctr(&f.ok(), "web")["envFrom"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn env_override_errors_name_the_entry() {
    let cases = [
        (
            "a service the compose file lacks",
            "  envOverrides: [{service: nope, secretRef: {name: ov}}]",
            OVERRIDE_DOCS,
            ErrorReason::InvalidSpec,
            "spec.envOverrides[0].service: no service \"nope\" in the compose file",
        ),
        (
            "a Secret that does not exist",
            "  envOverrides: [{service: web, secretRef: {name: gone}}]",
            "",
            ErrorReason::MissingReference,
            "spec.envOverrides[0].secretRef.name: Secret \"gone\" not found",
        ),
        (
            "a key that is no variable name",
            "  envOverrides: [{service: web, secretRef: {name: ov}}]",
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: ov}\nstringData: {\"A=B\": x}\n",
            ErrorReason::InvalidSpec,
            "spec.envOverrides[0].secretRef.name: Secret \"ov\" key \"A=B\" is not an environment variable name",
        ),
    ];
    for (name, spec, docs, reason, want) in cases {
        let e = fx(WEB, spec, docs).err();
        assert_error(&e, reason, want);
        let text = format!("{e}");
        assert!(!text.contains("from-secret"), "case {name}: {text}");
    }
}
