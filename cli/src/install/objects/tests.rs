use super::*;

fn default_in_cluster() -> Placement {
    Placement::InCluster {
        image: DEFAULT_IMAGE.into(),
        watch_namespaces: None,
        scheduling: Scheduling::default(),
        webhook_client_ca: None,
        cert_manager: false,
    }
}

fn traefik() -> Ingress {
    Ingress::Traefik { acme_email: None }
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[test]
fn local_placement_wires_url_and_externalname() -> Result<(), CliError> {
    let objs = objects(
        &Placement::Local {
            apiserver_port: 4443,
            webhook_port: 5443,
            certs: Box::new(Certs::generate()?),
            hash_key: kompox_cluster::hash_key::generate(),
        },
        &Ingress::Traefik {
            acme_email: Some("a@example.com".into()),
        },
    )?;
    let apiservice = find(&objs, "APIService", APISERVICE)
        .cloned()
        .unwrap_or_default();
    assert_eq!(apiservice["spec"]["service"]["port"], 4443);
    assert!(apiservice["spec"]["caBundle"].is_string());
    let hooks = find(&objs, "MutatingWebhookConfiguration", WEBHOOK_CONFIG)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        hooks["webhooks"][0]["clientConfig"]["url"],
        "https://127.0.0.1:5443/mutate"
    );
    let svc = find(&objs, "Service", "kompox-apiserver")
        .cloned()
        .unwrap_or_default();
    assert_eq!(svc["spec"]["externalName"], "localhost");
    assert!(find(&objs, "Service", "kompox-webhook").is_none());
    assert!(
        !objs
            .iter()
            .any(|o| o["kind"] == "Deployment" && o["metadata"]["namespace"] == SYSTEM_NS)
    );
    for secret in [CERTS_SECRET, HASH_KEY_SECRET] {
        assert!(find(&objs, "Secret", secret).is_some(), "{secret}");
    }
    let traefik = find(&objs, "Deployment", "traefik")
        .cloned()
        .unwrap_or_default();
    let args = traefik["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("acme.email=a@example.com"), "{args}");
    Ok(())
}

/// In the cluster nothing is generated: no Secret at all (the servers make their certificates
/// and the hash key), no caBundle (the servers fill it in) — what every install path applies.
#[test]
fn in_cluster_objects_are_the_manifests_with_nothing_generated() -> Result<(), CliError> {
    let objs = objects(&default_in_cluster(), &traefik())?;
    assert!(!objs.iter().any(|o| o["kind"] == "Secret"));
    let apiservice = find(&objs, "APIService", APISERVICE)
        .cloned()
        .unwrap_or_default();
    assert!(apiservice["spec"].get("caBundle").is_none());
    let mut parsed = Vec::new();
    for m in MANIFESTS.iter().filter(|m| m.part != Part::CertManager) {
        parsed.extend(docs(m)?);
    }
    assert_eq!(objs, parsed, "defaults change nothing of manifests/");
    for o in &objs {
        assert!(
            is_ours(o),
            "{} lacks {PART_OF:?}",
            crate::kubectx::describe(o)
        );
    }
    Ok(())
}

#[test]
fn one_image_for_the_three_servers() -> Result<(), CliError> {
    let objs = objects(
        &Placement::InCluster {
            image: "registry.example/kompox:1".into(),
            watch_namespaces: None,
            scheduling: Scheduling::default(),
            webhook_client_ca: None,
            cert_manager: false,
        },
        &traefik(),
    )?;
    let mut servers = Vec::new();
    for d in objs.iter().filter(|o| o["kind"] == "Deployment") {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        if let Some(server) = server_of(d) {
            assert_eq!(c["image"], "registry.example/kompox:1", "{server}");
            servers.push(server.to_owned());
        } else {
            assert_eq!(c["image"], TRAEFIK_IMAGE);
        }
    }
    servers.sort();
    assert_eq!(
        servers,
        ["kompox-apiserver", "kompox-controller", "kompox-webhook"]
    );
    // The manifests name the same image as the flag's default.
    for m in MANIFESTS {
        for line in m
            .text
            .lines()
            .filter(|l| l.trim_start().starts_with("image:"))
        {
            assert!(
                line.contains(DEFAULT_IMAGE) || line.contains(TRAEFIK_IMAGE),
                "manifests/{}: {line}",
                m.path
            );
        }
    }
    Ok(())
}

#[test]
fn ingress_none_leaves_traefik_out() -> Result<(), CliError> {
    let objs = objects(&default_in_cluster(), &Ingress::None)?;
    assert!(
        !objs.iter().any(|o| o["metadata"]["namespace"] == TRAEFIK_NS
            || o["metadata"]["name"] == TRAEFIK_NS
            || o["kind"] == "IngressClass")
    );
    assert!(find(&objs, "Deployment", "kompox-controller").is_some());
    Ok(())
}

#[test]
fn watch_namespaces_scopes_only_the_controller() -> Result<(), CliError> {
    let objs = objects(
        &Placement::InCluster {
            image: "img".into(),
            watch_namespaces: Some("kompox.dev/tenant=a".into()),
            scheduling: Scheduling::default(),
            webhook_client_ca: Some("-----BEGIN CERTIFICATE-----".into()),
            cert_manager: false,
        },
        &traefik(),
    )?;
    let args = |name: &str| {
        find(&objs, "Deployment", name)
            .map(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].clone())
            .unwrap_or_default()
    };
    let selector = json!("--namespace-selector=kompox.dev/tenant=a");
    let has = |name: &str| args(name).as_array().is_some_and(|a| a.contains(&selector));
    assert!(has("kompox-controller"), "{}", args("kompox-controller"));
    assert!(!has("kompox-apiserver") && !has("kompox-webhook"));
    let webhook_args = args("kompox-webhook");
    assert!(
        webhook_args.as_array().is_some_and(|a| a.iter().any(|x| x
            .as_str()
            .is_some_and(|s| s.starts_with("--client-ca-file=")))),
        "{webhook_args}"
    );
    let cm = objs.iter().position(|o| {
        o["kind"] == "ConfigMap" && o["metadata"]["name"] == WEBHOOK_CLIENT_CA_CONFIG_MAP
    });
    let deploy = objs
        .iter()
        .position(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "kompox-webhook");
    assert!(
        cm.is_some() && cm < deploy,
        "the ConfigMap comes before the Deployment mounting it"
    );
    Ok(())
}

#[test]
fn scheduling_flags_place_the_servers_and_traefik() -> Result<(), CliError> {
    let scheduling = Scheduling::parse(
        &["kompox.dev/node=real".into()],
        &[
            "kompox.dev/real-node:NoSchedule".into(),
            "pool=system:NoExecute".into(),
        ],
    )?;
    let objs = objects(
        &Placement::InCluster {
            image: "img".into(),
            watch_namespaces: None,
            scheduling,
            webhook_client_ca: None,
            cert_manager: false,
        },
        &traefik(),
    )?;
    let deployments: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 4, "three servers and Traefik");
    for d in deployments {
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(
            spec["nodeSelector"],
            json!({"kompox.dev/node": "real"}),
            "{}",
            d["metadata"]["name"]
        );
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "kompox.dev/real-node", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "pool", "operator": "Equal", "value": "system", "effect": "NoExecute"},
            ])
        );
    }
    Ok(())
}

/// Every Pod install runs meets PodSecurity `restricted`, which both namespaces enforce.
#[test]
fn every_pod_meets_restricted() -> Result<(), CliError> {
    let objs = objects(&default_in_cluster(), &traefik())?;
    for ns in [SYSTEM_NS, TRAEFIK_NS] {
        let n = find(&objs, "Namespace", ns).cloned().unwrap_or_default();
        assert_eq!(
            n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
            "{ns}"
        );
    }
    for d in objs.iter().filter(|o| o["kind"] == "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for c in spec["containers"].as_array().into_iter().flatten() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
            assert!(c["resources"]["requests"].is_object(), "{name}: requests");
            assert!(c["readinessProbe"].is_object(), "{name}: readinessProbe");
        }
        assert!(
            spec["topologySpreadConstraints"].is_array(),
            "{name}: topology spread"
        );
        let volumes = spec["volumes"].to_string();
        assert!(
            !volumes.contains("secretName"),
            "{name} mounts a Secret: {volumes}"
        );
    }
    for name in ["kompox-apiserver", "kompox-webhook"] {
        let d = find(&objs, "Deployment", name).cloned().unwrap_or_default();
        assert_eq!(
            d["spec"]["template"]["spec"]["priorityClassName"], "system-cluster-critical",
            "{name}"
        );
    }
    Ok(())
}

/// The kustomize base lists exactly [`MANIFESTS`] (each directory's kustomization its files;
/// the top-level one the directories).
#[test]
fn kustomizations_list_the_manifests() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let read = |dir: &str| -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(root.join(dir).join("kustomization.yaml"))?;
        let k: Value = serde_saphyr::from_str(&text)?;
        Ok(k["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect())
    };
    let mut files = Vec::new();
    for dir in read(".")? {
        for f in read(&dir)? {
            files.push(format!("{dir}/{f}"));
        }
    }
    let mut want: Vec<String> = MANIFESTS
        .iter()
        .filter(|m| m.part != Part::CertManager)
        .map(|m| m.path.to_owned())
        .collect();
    files.sort();
    want.sort();
    assert_eq!(files, want);
    let without: Vec<String> = read("without-traefik")?;
    let mut dirs: Vec<String> = read(".")?
        .into_iter()
        .filter(|d| d != "traefik")
        .map(|d| format!("../{d}"))
        .collect();
    dirs.sort();
    let mut without = without;
    without.sort();
    assert_eq!(without, dirs);
    Ok(())
}

#[rstest::rstest]
#[case::selector_without_eq(&["zone"], &[], &["--node-selector[0] \"zone\": want KEY=VALUE"])]
#[case::selector_with_empty_key(&["a=b", "=x"], &[], &["--node-selector[1] \"=x\""])]
#[case::toleration_without_effect(&[], &["dedicated"], &["--toleration[0] \"dedicated\": want KEY[=VALUE]:EFFECT"])]
#[case::unknown_effect(&[], &["k:Never"], &["effect \"Never\" is not one of NoSchedule, PreferNoSchedule, NoExecute"])]
#[case::empty_key(&[], &["=v:NoSchedule"], &["--toleration[0] \"=v:NoSchedule\": empty key"])]
#[case::all_reported(&["x"], &["y"], &["--node-selector[0]", "--toleration[0]"])]
fn bad_scheduling_flags_are_named(
    #[case] selector: &[&str],
    #[case] toleration: &[&str],
    #[case] want: &[&str],
) {
    let sel: Vec<String> = selector.iter().map(|s| (*s).into()).collect();
    let tol: Vec<String> = toleration.iter().map(|s| (*s).into()).collect();
    match Scheduling::parse(&sel, &tol) {
        Err(CliError::Invalid(lines)) => {
            let text = lines.join("\n");
            for w in want {
                assert!(text.contains(w), "{text:?} lacks {w:?}");
            }
        }
        other => panic!("{other:?}"),
    }
}

/// `--cert-manager`: Certificates for both servers from a CA of cert-manager's, the servers
/// only follow their Secrets, cert-manager injects the CA into both registrations.
#[test]
fn cert_manager_issues_the_serving_certificates() -> Result<(), CliError> {
    let objs = objects(
        &Placement::InCluster {
            image: DEFAULT_IMAGE.into(),
            watch_namespaces: None,
            scheduling: Scheduling::default(),
            webhook_client_ca: None,
            cert_manager: true,
        },
        &traefik(),
    )?;
    for name in ["kompox-apiserver-tls", "kompox-webhook-tls", "kompox-ca"] {
        let c = find(&objs, "Certificate", name)
            .cloned()
            .unwrap_or_default();
        assert_eq!(c["spec"]["secretName"], name);
    }
    for (kind, name, secret) in [
        ("APIService", APISERVICE, "kompox-apiserver-tls"),
        (
            "MutatingWebhookConfiguration",
            WEBHOOK_CONFIG,
            "kompox-webhook-tls",
        ),
    ] {
        let o = find(&objs, kind, name).cloned().unwrap_or_default();
        assert_eq!(
            o["metadata"]["annotations"][INJECT_CA_FROM],
            format!("k4x-system/{secret}")
        );
    }
    for name in ["kompox-apiserver", "kompox-webhook"] {
        let d = find(&objs, "Deployment", name).cloned().unwrap_or_default();
        let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--tls-secret=k4x-system/"), "{name}: {args}");
        for gone in SELF_MANAGED_TLS_ARGS {
            assert!(!args.contains(gone), "{name}: {gone} in {args}");
        }
    }
    assert!(!objs.iter().any(|o| o["kind"] == "Secret"));
    Ok(())
}

/// Each server's Deployment says which version it runs (`kubectl kompox version` reads it):
/// the plugin's own, on the Deployment and its Pods.
#[test]
fn server_deployments_carry_the_version() -> Result<(), CliError> {
    let objs = objects(&default_in_cluster(), &traefik())?;
    let servers: Vec<&Value> = objs
        .iter()
        .filter(|o| o["kind"] == "Deployment" && server_of(o).is_some())
        .collect();
    assert_eq!(servers.len(), 3);
    for d in servers {
        for labels in [
            &d["metadata"]["labels"],
            &d["spec"]["template"]["metadata"]["labels"],
        ] {
            assert_eq!(
                labels["app.kubernetes.io/version"],
                env!("CARGO_PKG_VERSION"),
                "{}",
                d["metadata"]["name"]
            );
        }
    }
    Ok(())
}
