//! samples/gitea on the real node (`KOMPOX_REAL_NODE=1`), with Kompox installed as a user on a
//! real cluster installs it (`kubectl kompox install`, no `--local`: the servers and Traefik are
//! Pods of the images hack/images.sh built): Gitea (built from its Go module) and Postgres (from
//! Debian's packages) run under the sample's image names, Gitea answers through Traefik on
//! 127.0.0.1, a user and a repository created through Gitea's API survive deleting the Pod (their
//! data is on the KompoxDisk), a rotated Secret rolls the Pod and the new Pod sees the new value.
//! Postgres is a native sidecar whose startupProbe must pass before Gitea starts
//! (`depends_on: service_healthy`), and the Pod runs in the disk's zone. A snapshot of the disk
//! restored into a second app's disk holds the repository. Cluster-wide
//! registrations: this binary runs alone, as tests/real_node_install.rs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot};
use kompox_e2e::cli::{kompox, temp_dir};
use kompox_e2e::node::{self, NODE};
use kompox_e2e::{TestNamespace, admin_client, kubectl, wait_until};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const HOST: &str = "gitea.example.com";
/// The second app's host (the restore).
const HOST2: &str = "gitea2.example.com";
const USER: &str = "e2e-admin";
const PASSWORD: &str = "e2e-Passw0rd-for-gitea";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_sample_runs_through_traefik_and_keeps_its_data() -> Result<()> {
    if node::skip("gitea_sample_runs_through_traefik_and_keeps_its_data") {
        return Ok(());
    }
    let sample = kompox_e2e::repo_root().join("samples/gitea");
    let compose = std::fs::read_to_string(sample.join("compose.yml"))?;
    let images: Vec<String> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(full_image_name)
        .collect();
    ensure!(
        images.len() == 2,
        "samples/gitea names two images: {images:?}"
    );
    let mut wanted: Vec<&str> = images.iter().map(String::as_str).collect();
    wanted.push(node::KOMPOX_IMAGE);
    node::import_images(&wanted).await?;

    let client = admin_client().await?;
    let cache = temp_dir("node-gitea")?;
    let selector = format!("--node-selector={}={}", node::LABEL.0, node::LABEL.1);
    let toleration = format!("--toleration={}:NoSchedule", node::TAINT);
    let cache2 = cache.clone();
    let installed = tokio::task::spawn_blocking(move || {
        kompox(
            &cache2,
            &[
                "install",
                "--image",
                node::KOMPOX_IMAGE,
                &selector,
                &toleration,
                "--timeout=180s",
            ],
        )
    })
    .await
    .context("joining")??
    .ok();
    let result = match installed {
        Ok(_) => gitea(&client, &compose).await,
        Err(e) => Err(e),
    };
    let uninstall = tokio::task::spawn_blocking(move || kompox(&cache, &["uninstall"]))
        .await
        .context("joining")??
        .ok();
    result?;
    uninstall.map(|_| ())
}

/// `postgres:15` → `docker.io/library/postgres:15`, as containerd's CRI resolves it.
fn full_image_name(name: &str) -> String {
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_owned()
        }
        Some(_) => format!("docker.io/{name}"),
    }
}

/// The test in its namespace, which goes afterwards whatever happened, while the controller
/// still runs to serve the KompoxApps' and disks' finalizers (uninstall follows).
async fn gitea(client: &kube::Client, compose: &str) -> Result<()> {
    let ns = TestNamespace::create(client, "rn-gitea", &[]).await?;
    let ns2 = TestNamespace::create(client, "rn-gitea-restored", &[]).await?;
    let result = gitea_in(client, &ns, &ns2, compose).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut gone = Ok(());
    for ns in [ns, ns2] {
        let name = ns.name.clone();
        let deleted = match ns.cleanup().await {
            Ok(()) => {
                wait_until(
                    &format!("namespace {name} deleted"),
                    Duration::from_secs(240),
                    || async { Ok(namespaces.get_opt(&name).await?.is_none()) },
                )
                .await
            }
            Err(e) => Err(e),
        };
        gone = gone.and(deleted);
    }
    result?;
    gone
}

async fn gitea_in(
    client: &kube::Client,
    ns: &TestNamespace,
    ns2: &TestNamespace,
    compose: &str,
) -> Result<()> {
    let started = Instant::now();
    node::send_pods_to_real_node(client, &ns.name).await?;
    node::send_pods_to_real_node(client, &ns2.name).await?;
    apply_sample(ns, compose).await?;

    let apps = ns.api::<KompoxApp>();
    wait_until(
        "KompoxApp gitea Ready",
        Duration::from_secs(420),
        || async { Ok(apps.get("gitea").await?.status.is_some_and(|s| s.ready)) },
    )
    .await
    .with_context(|| diagnose(&ns.name, "gitea"))?;
    eprintln!("KompoxApp gitea Ready: {:.1?}", started.elapsed());

    let pods = ns.api::<Pod>();
    let pod = app_pod(&pods).await?;
    placement_and_order(&pod)?;

    let port = traefik_port(client).await?;
    let first = wait_for_page(port).await?;
    eprintln!(
        "first 200 from Gitea through Traefik: {:.1?}",
        started.elapsed()
    );
    ensure!(
        first.contains("Gitea"),
        "Gitea's page: {}",
        first.chars().take(300).collect::<String>()
    );

    // A user (Gitea's own admin command, as upstream's image runs it: as user git) and a
    // repository with a first commit, through the API.
    let pod_name = pod.metadata.name.clone().context("pod name")?;
    kubectl(&[
        "exec",
        "-n",
        &ns.name,
        &pod_name,
        "-c",
        "gitea",
        "--",
        "su-exec",
        "git",
        "gitea",
        "admin",
        "user",
        "create",
        "--username",
        USER,
        "--password",
        PASSWORD,
        "--email",
        "e2e@example.com",
        "--admin",
        "--must-change-password=false",
    ])?;
    let auth = format!("{USER}:{PASSWORD}");
    let (code, body) = node::https_via_traefik(
        port,
        HOST,
        "/api/v1/user/repos",
        &[
            "-u",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name": "kept", "auto_init": true}"#,
        ],
    )?;
    ensure!(code == 201, "creating a repository: {code} {body}");
    readme(port, &auth).await?;
    pod_commands(&ns.name).await?;

    // The Pod goes; its replacement finds the user, the repository and its commit on the disk.
    let old_uid = pod.metadata.uid.clone().context("pod uid")?;
    pods.delete(&pod_name, &DeleteParams::default()).await?;
    let t = Instant::now();
    let pod = replaced_pod(&pods, &old_uid).await?;
    wait_for_page(port).await?;
    readme(port, &auth).await?;
    eprintln!(
        "Pod deleted → Gitea answering again with the repository: {:.1?}",
        t.elapsed()
    );

    // A Secret rotation: a changed env file rolls the Pod, and the new Pod has the new value.
    let old_uid = pod.metadata.uid.clone().context("pod uid")?;
    let secrets = ns.api::<Secret>();
    let env = secrets.get("gitea-env-files").await?;
    let gitea_env = env
        .data
        .as_ref()
        .and_then(|d| d.get("gitea.env"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .context("Secret gitea-env-files has gitea.env")?;
    let rotated = format!("{gitea_env}\nE2E_ROTATED=value-two\n");
    secrets
        .patch(
            "gitea-env-files",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"gitea.env": rotated}})),
        )
        .await?;
    let t = Instant::now();
    let pod = replaced_pod(&pods, &old_uid).await?;
    let pod_name = pod.metadata.name.clone().context("pod name")?;
    let seen = kubectl(&[
        "exec",
        "-n",
        &ns.name,
        &pod_name,
        "-c",
        "gitea",
        "--",
        "printenv",
        "E2E_ROTATED",
    ])?;
    ensure!(seen.trim() == "value-two", "the rolled Pod sees {seen:?}");
    wait_for_page(port).await?;
    readme(port, &auth).await?;
    eprintln!(
        "Secret rotated → new Pod with the new value, Gitea answering: {:.1?}",
        t.elapsed()
    );

    // Snapshot → restore into a second app in another namespace (two apps of one compose file
    // in one namespace would both own Services `gitea` and `postgres`: the controller refuses
    // that): a KompoxSnapshot of the disk; in the second namespace a KompoxSnapshot adopting it
    // by its provider handle, a KompoxDisk from that, the compose and env files, and the app
    // as `gitea2` on that disk with its own host; the repository is there. (Gitea is idle: the
    // copy of Postgres's files is what a crash would leave, which it recovers from.)
    let t = Instant::now();
    let snapshot: KompoxSnapshot = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxSnapshot",
        "metadata": {"name": "gitea-snap"}, "spec": {"diskRef": {"name": "default"}},
    }))?;
    let handle = snapshot_ready(ns, snapshot).await?;
    let imported: KompoxSnapshot = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxSnapshot",
        "metadata": {"name": "imported"}, "spec": {"handle": handle},
    }))?;
    snapshot_ready(ns2, imported).await?;
    let disk: KompoxDisk = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": "restored"},
        "spec": {"size": "10Gi", "zone": "1", "fromSnapshot": {"name": "imported"}},
    }))?;
    ns2.api::<KompoxDisk>()
        .create(&PostParams::default(), &disk)
        .await?;
    let mut cm = ns.api::<ConfigMap>().get("gitea-compose").await?;
    cm.metadata = kube::api::ObjectMeta {
        name: cm.metadata.name,
        ..Default::default()
    };
    ns2.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await?;
    let mut env = secrets.get("gitea-env-files").await?;
    env.metadata = kube::api::ObjectMeta {
        name: env.metadata.name,
        ..Default::default()
    };
    ns2.api::<Secret>()
        .create(&PostParams::default(), &env)
        .await?;
    let mut second = apps.get("gitea").await?;
    second.metadata = kube::api::ObjectMeta {
        name: Some("gitea2".into()),
        ..Default::default()
    };
    second.status = None;
    second
        .spec
        .volumes
        .first_mut()
        .context("the sample has a volume")?
        .disk_ref
        .name = "restored".into();
    let rules = &mut second
        .spec
        .ingress
        .as_mut()
        .context("the sample has an ingress")?
        .rules;
    rules.first_mut().context("the sample has a rule")?.hosts = vec![HOST2.into()];
    let apps2 = ns2.api::<KompoxApp>();
    apps2.create(&PostParams::default(), &second).await?;
    wait_until(
        "KompoxApp gitea2 Ready",
        Duration::from_secs(420),
        || async { Ok(apps2.get("gitea2").await?.status.is_some_and(|s| s.ready)) },
    )
    .await
    .with_context(|| diagnose(&ns2.name, "gitea2"))?;
    wait_until(
        "the restored repository through gitea2",
        Duration::from_secs(240),
        || {
            let auth = auth.clone();
            async move {
                let (code, _) = tokio::task::spawn_blocking(move || {
                    node::https_via_traefik(
                        port,
                        HOST2,
                        &format!("/api/v1/repos/{USER}/kept/contents/README.md"),
                        &["-u", &auth],
                    )
                })
                .await??;
                Ok(code == 200)
            }
        },
    )
    .await?;
    eprintln!(
        "snapshot → restored disk → second app with the repository: {:.1?}",
        t.elapsed()
    );
    Ok(())
}

/// Creates `snapshot` in `ns` and waits until it is ready to use; returns its provider handle.
async fn snapshot_ready(ns: &TestNamespace, snapshot: KompoxSnapshot) -> Result<String> {
    let name = snapshot.metadata.name.clone().context("snapshot name")?;
    let snapshots = ns.api::<KompoxSnapshot>();
    snapshots.create(&PostParams::default(), &snapshot).await?;
    let handle = Mutex::new(None);
    wait_until(
        &format!("KompoxSnapshot {}/{name} ready to use", ns.name),
        Duration::from_secs(180),
        || async {
            let status = snapshots.get(&name).await?.status.unwrap_or_default();
            if status.ready_to_use {
                *handle.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = status.snapshot_handle;
            }
            Ok(status.ready_to_use)
        },
    )
    .await?;
    handle
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .with_context(|| {
            format!(
                "KompoxSnapshot {}/{name} is ready without a handle",
                ns.name
            )
        })
}

/// `kubectl kompox logs`, `exec` and `port-forward` against the app's real processes, through
/// kube-apiserver and the node's kubelet: Postgres's log says it accepts connections, a
/// command's output and exit status come back as the container's shell gave them, and Gitea's
/// API answers through a forwarded port.
async fn pod_commands(ns: &str) -> Result<()> {
    let dir = temp_dir("node-gitea-pods")?;
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || pod_commands_blocking(&dir, &ns))
        .await
        .context("joining")?
}

fn pod_commands_blocking(dir: &std::path::Path, ns: &str) -> Result<()> {
    use std::io::BufRead as _;

    let r = kompox(dir, &["logs", "gitea", "-n", ns, "-S", "postgres"])?.ok()?;
    ensure!(
        r.stdout
            .contains("database system is ready to accept connections"),
        "Postgres's log: {}",
        r.stdout
    );
    let r = kompox(dir, &["logs", "gitea", "-n", ns])?.ok()?;
    ensure!(
        r.stdout.lines().any(|l| l.starts_with("[gitea] "))
            && r.stdout.lines().any(|l| l.starts_with("[postgres] ")),
        "every service's log, prefixed: {}",
        r.stdout.chars().take(600).collect::<String>()
    );

    // The command's exit status is the kubelet's ExitCode cause (kwok cannot give one).
    let r = kompox(
        dir,
        &[
            "exec",
            "gitea",
            "-n",
            ns,
            "-S",
            "gitea",
            "--",
            "sh",
            "-c",
            "echo $((6 * 7)) $(id -un); exit 3",
        ],
    )?;
    ensure!(r.code == 3 && r.stdout == "42 root\n", "exec: {r:?}");
    let r = kompox(
        dir,
        &[
            "exec",
            "gitea",
            "-n",
            ns,
            "-S",
            "gitea",
            "--",
            "git",
            "--version",
        ],
    )?
    .ok()?;
    ensure!(r.stdout.starts_with("git version "), "exec: {r:?}");

    // port-forward: Gitea's own port (3000), not Traefik's, answers its API.
    let bin = kompox_e2e::cli::binary()?;
    let mut pf = std::process::Command::new(&bin)
        .args(["port-forward", "gitea", "-n", ns, "-S", "gitea", ":3000"])
        .env("KUBECONFIG", &kompox_e2e::cluster().admin_kubeconfig)
        .env("KOMPOX_CACHE", dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let result = (|| -> Result<()> {
        let mut first = String::new();
        let mut reader = std::io::BufReader::new(pf.stdout.take().context("no stdout")?);
        reader.read_line(&mut first)?;
        let addr = first
            .strip_prefix("Forwarding from ")
            .and_then(|s| s.split_whitespace().next())
            .with_context(|| format!("no address in {first:?}"))?
            .to_owned();
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
            .arg(format!("http://{addr}/api/v1/version"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.ends_with("\n200") && text.contains("\"version\""),
            "Gitea's API through port-forward {addr}: {text}"
        );
        Ok(())
    })();
    let _ = pf.kill();
    let _ = pf.wait();
    result
}

/// What a failed wait for an app shows: its status, its Pods and the namespace's events.
fn diagnose(ns: &str, app: &str) -> String {
    let show = |args: &[&str]| kubectl(args).unwrap_or_else(|e| format!("{e:#}"));
    format!(
        "KompoxApp {app}:\n{}\nPods:\n{}\nEvents:\n{}",
        show(&[
            "get",
            "kompoxapp",
            "-n",
            ns,
            app,
            "-o",
            "jsonpath={.status}"
        ]),
        show(&[
            "describe",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("kompox.dev/app={app}")
        ]),
        show(&["get", "events", "-n", ns, "--sort-by=.lastTimestamp"]),
    )
}

/// The sample's objects as a user writes them (app.yml: the KompoxApp, its disk, the env
/// files Secret) and the compose ConfigMap.
async fn apply_sample(ns: &TestNamespace, compose: &str) -> Result<()> {
    let text = std::fs::read_to_string(kompox_e2e::repo_root().join("samples/gitea/app.yml"))?;
    for doc in text.split("\n---") {
        let o: Value = match serde_saphyr::from_str(doc) {
            Ok(v @ Value::Object(_)) => v,
            _ => continue,
        };
        match o["kind"].as_str() {
            Some("KompoxApp") => {
                let r = &o["spec"]["compose"]["configMapRef"];
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": r["name"]},
                    "data": {r["key"].as_str().unwrap_or("compose.yml"): compose},
                }))?;
                ns.api::<ConfigMap>()
                    .create(&PostParams::default(), &cm)
                    .await?;
                let app: KompoxApp = serde_json::from_value(o)?;
                ns.api::<KompoxApp>()
                    .create(&PostParams::default(), &app)
                    .await?;
            }
            Some("KompoxDisk") => {
                let d: KompoxDisk = serde_json::from_value(o)?;
                ns.api::<KompoxDisk>()
                    .create(&PostParams::default(), &d)
                    .await?;
            }
            Some("Secret") => {
                let s: Secret = serde_json::from_value(o)?;
                ns.api::<Secret>()
                    .create(&PostParams::default(), &s)
                    .await?;
            }
            other => bail!("samples/gitea/app.yml: unexpected kind {other:?}"),
        }
    }
    Ok(())
}

/// The app's one Running Pod with every container ready.
async fn app_pod(pods: &Api<Pod>) -> Result<Pod> {
    let lp = ListParams::default().labels("kompox.dev/app=gitea");
    let found = Mutex::new(None);
    wait_until(
        "the gitea Pod Running and ready",
        node::START_TIMEOUT * 3,
        || async {
            for p in pods.list(&lp).await?.items {
                let s = p.status.as_ref();
                let running = s.and_then(|s| s.phase.as_deref()) == Some("Running");
                let ready = s
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if running && ready && p.metadata.deletion_timestamp.is_none() {
                    *found.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(p);
                    return Ok(true);
                }
            }
            Ok(false)
        },
    )
    .await?;
    found
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .context("no Pod")
}

/// A Ready Pod of the app other than `old_uid`'s.
async fn replaced_pod(pods: &Api<Pod>, old_uid: &str) -> Result<Pod> {
    let lp = ListParams::default().labels("kompox.dev/app=gitea");
    wait_until("the old Pod gone", node::START_TIMEOUT * 2, || async {
        Ok(pods
            .list(&lp)
            .await?
            .items
            .iter()
            .all(|p| p.metadata.uid.as_deref() != Some(old_uid)))
    })
    .await?;
    app_pod(pods).await
}

/// The Pod is on the real node, in the disk's zone (zone 1, which the webhook requires), and
/// Postgres — a native sidecar with a startupProbe — started before Gitea.
fn placement_and_order(pod: &Pod) -> Result<()> {
    let spec = pod.spec.as_ref().context("pod spec")?;
    ensure!(
        spec.node_name.as_deref() == Some(NODE),
        "on {:?}",
        spec.node_name
    );
    let zones: Vec<String> = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| {
            r.node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .filter(|e| e.key == "topology.kubernetes.io/zone")
                .flat_map(|e| e.values.iter().flatten().cloned())
                .collect()
        })
        .unwrap_or_default();
    ensure!(zones == vec![node::zone(1)?], "zone affinity {zones:?}");

    let pg = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "postgres")
        .context("postgres is an init container")?;
    ensure!(
        pg.restart_policy.as_deref() == Some("Always"),
        "postgres is a native sidecar"
    );
    ensure!(pg.startup_probe.is_some(), "postgres has a startupProbe");
    let status = pod.status.as_ref().context("pod status")?;
    let started = |list: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>, name: &str| {
        list.into_iter()
            .flatten()
            .find(|c| c.name == name)
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone())
            .with_context(|| format!("{name} is running"))
    };
    let pg_started = started(status.init_container_statuses.as_ref(), "postgres")?;
    let gitea_started = started(status.container_statuses.as_ref(), "gitea")?;
    ensure!(
        pg_started.0 <= gitea_started.0,
        "postgres started {:?}, gitea {:?}",
        pg_started.0,
        gitea_started.0
    );
    Ok(())
}

/// The nodePort of Traefik's `websecure` port (the sample's Ingress is on websecure, with TLS).
async fn traefik_port(client: &kube::Client) -> Result<i32> {
    let services: Api<Service> = Api::namespaced(client.clone(), "k4x-traefik");
    services
        .get("traefik")
        .await?
        .spec
        .and_then(|s| s.ports)
        .and_then(|ps| {
            ps.into_iter()
                .find(|p| p.name.as_deref() == Some("websecure"))
        })
        .and_then(|p| p.node_port)
        .context("Service k4x-traefik/traefik has no nodePort for websecure")
}

/// Polls Gitea's front page through Traefik until it answers 200; returns the page.
async fn wait_for_page(port: i32) -> Result<String> {
    let page = Mutex::new((0, String::new()));
    let poisoned = || anyhow::anyhow!("poisoned");
    wait_until(
        "Gitea's page through Traefik",
        Duration::from_secs(240),
        || async {
            let (code, body) =
                tokio::task::spawn_blocking(move || node::https_via_traefik(port, HOST, "/", &[]))
                    .await??;
            *page.lock().map_err(|_| poisoned())? = (code, body);
            Ok(code == 200)
        },
    )
    .await
    .with_context(|| {
        let last = page
            .lock()
            .map(|p| (p.0, p.1.chars().take(200).collect::<String>()));
        format!("last answer: {last:?}")
    })?;
    Ok(page.into_inner().map_err(|_| poisoned())?.1)
}

/// The repository's README (its first commit) through the API.
async fn readme(port: i32, auth: &str) -> Result<()> {
    let auth = auth.to_owned();
    let (code, body) = tokio::task::spawn_blocking(move || {
        node::https_via_traefik(
            port,
            HOST,
            &format!("/api/v1/repos/{USER}/kept/contents/README.md"),
            &["-u", &auth],
        )
    })
    .await??;
    ensure!(code == 200, "README of {USER}/kept: {code} {body}");
    Ok(())
}
