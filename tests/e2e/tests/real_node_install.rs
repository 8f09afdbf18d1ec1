//! The production install on the real node (`KOMPOX_REAL_NODE=1`): `kubectl kompox install`
//! without `--local`, with the image hack/images.sh built from the Containerfile's recipe, runs
//! kompox-apiserver, kompox-webhook and kompox-controller as Pods on the containerd node. The
//! APIService is Available through its Service's endpoints, the webhook mutates a Pod through its
//! Service, the aggregated API answers, and a deleted apiserver Pod is replaced and the APIService
//! is Available again. Traefik, which install runs as the ingress controller, runs from the image
//! hack/images.sh built from the pinned module: its Service gets the local load balancer's address,
//! an Ingress is admitted (Traefik writes that address into its status) and its backend answers
//! through Traefik from this machine at 127.0.0.1:<nodePort>. Then `uninstall`. Cluster-wide registrations: this binary runs alone (cargo
//! runs test binaries one after another), like tests/demo.rs.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kompox_e2e::apps;
use kompox_e2e::cli::{kompox, temp_dir};
use kompox_e2e::node::{self, NODE};
use kompox_e2e::webhook::{dry_run_pod, env_hash, managed_labels, pod, test_id};
use kompox_e2e::{TestNamespace, admin_client, kubectl, wait_until};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const SYSTEM_NS: &str = "k4x-system";
const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
const SERVERS: [&str; 3] = ["kompox-apiserver", "kompox-webhook", "kompox-controller"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_runs_the_servers_as_pods_on_the_real_node() -> Result<()> {
    if node::skip("install_runs_the_servers_as_pods_on_the_real_node") {
        return Ok(());
    }
    let client = admin_client().await?;
    // `make test` builds the image (`make images`) before the cluster comes up, which imports it.
    let images = tokio::task::spawn_blocking(|| {
        std::process::Command::new("bash")
            .arg(kompox_e2e::repo_root().join("hack/images.sh"))
            .arg("import-node")
            .output()
    })
    .await??;
    ensure!(
        images.status.success(),
        "hack/images.sh import-node: {}",
        String::from_utf8_lossy(&images.stderr)
    );
    ensure!(
        node::has_image(node::KOMPOX_IMAGE)?,
        "{} is not on the real node: build it with `make images` (hack/images.sh build)",
        node::KOMPOX_IMAGE
    );
    let cache = temp_dir("node-install")?;
    let result = installed_and_serving(&cache, &client).await;
    let uninstall = tokio::task::spawn_blocking(move || kompox(&cache, &["uninstall"]))
        .await
        .context("joining")??
        .ok();
    result?;
    uninstall.map(|_| ())
}

async fn installed_and_serving(cache: &std::path::Path, client: &kube::Client) -> Result<()> {
    let started = Instant::now();
    let selector = format!("--node-selector={}={}", node::LABEL.0, node::LABEL.1);
    let toleration = format!("--toleration={}:NoSchedule", node::TAINT);
    let cache2 = cache.to_path_buf();
    let r = tokio::task::spawn_blocking(move || {
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
    .ok()?;
    ensure!(
        r.stdout
            .contains(&format!("APIService {APISERVICE} is Available")),
        "{r:?}"
    );
    eprintln!(
        "install (no --local) to an Available APIService: {:.1?}",
        started.elapsed()
    );

    // Every server runs as Pods of the image on the real node, all containers ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    for server in SERVERS {
        let deploy = Api::<Deployment>::namespaced(client.clone(), SYSTEM_NS);
        wait_until(
            &format!("Deployment {server} available"),
            Duration::from_secs(120),
            || async {
                let d = deploy.get(server).await?;
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                Ok(d.status.and_then(|s| s.available_replicas).unwrap_or(0) >= want)
            },
        )
        .await?;
        let list = pods
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={server}")))
            .await?;
        ensure!(!list.items.is_empty(), "no Pods of {server}");
        for p in &list.items {
            let spec = p.spec.clone().unwrap_or_default();
            ensure!(
                spec.node_name.as_deref() == Some(NODE),
                "{server} Pod on {:?}",
                spec.node_name
            );
            let c = spec.containers.first().context("no container")?;
            ensure!(
                c.image.as_deref() == Some(node::KOMPOX_IMAGE),
                "{server} image {:?}",
                c.image
            );
            let statuses = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            ensure!(
                statuses
                    .iter()
                    .all(|s| s.ready && s.state.as_ref().is_some_and(|st| st.running.is_some())),
                "{server} Pod not running and ready: {}",
                node::container_state(p)
            );
        }
    }

    // The APIService's Service has ready endpoints (Pod IPs on the node's bridge).
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), SYSTEM_NS)
        .list(&ListParams::default().labels("kubernetes.io/service-name=kompox-apiserver"))
        .await?;
    let ready: Vec<String> = slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .flat_map(|e| e.addresses.clone())
        .collect();
    ensure!(
        !ready.is_empty() && ready.iter().all(|a| a.starts_with(node::POD_PREFIX)),
        "kompox-apiserver endpoints: {ready:?}"
    );

    // The aggregated API answers through kube-apiserver.
    let discovery = tokio::task::spawn_blocking(|| {
        kubectl(&["get", "--raw", "/apis/subresources.k8s.kompox.dev/v1alpha1"])
    })
    .await??;
    ensure!(
        discovery.contains("kompoxapps/rendered"),
        "discovery: {discovery}"
    );

    // The webhook serves through its Service: a Pod using a Secret gets its env-hash.
    webhook_mutates(client).await?;

    // A deleted apiserver Pod is replaced; the APIService is Available again.
    let victim = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=kompox-apiserver"))
        .await?
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .context("no apiserver Pod")?;
    let t = Instant::now();
    pods.delete(&victim, &DeleteParams::default()).await?;
    let apiservices: Api<APIService> = Api::all(client.clone());
    wait_until(
        "the APIService Available with the replacement Pod",
        Duration::from_secs(60),
        || async {
            let replaced = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=kompox-apiserver"))
                .await?
                .items
                .iter()
                .filter(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|cs| cs.iter().all(|c| c.ready))
                })
                .count();
            let available = apiservices
                .get(APISERVICE)
                .await?
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            Ok(replaced >= 2 && available)
        },
    )
    .await?;
    eprintln!(
        "apiserver Pod deleted -> two ready Pods and Available again: {:.1?}",
        t.elapsed()
    );
    webhook_mutates(client).await?;

    // A deleted webhook Pod (failurePolicy Fail: a webhook that does not answer fails every
    // Pod create it covers): its Service keeps serving from the other replica, and within
    // seconds from the replacement too, while the old Pod terminates.
    let webhook_pods = ListParams::default().labels("app.kubernetes.io/name=kompox-webhook");
    let victim = pods
        .list(&webhook_pods)
        .await?
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .context("no webhook Pod")?;
    let t = Instant::now();
    pods.delete(&victim, &DeleteParams::default()).await?;
    webhook_mutates(client)
        .await
        .context("the webhook right after one of its Pods was deleted")?;
    eprintln!(
        "webhook Pod deleted -> the webhook mutates a Pod: {:.1?}",
        t.elapsed()
    );
    wait_until(
        "two ready webhook Pods again",
        Duration::from_secs(60),
        || async {
            let ready = pods
                .list(&webhook_pods)
                .await?
                .items
                .iter()
                .filter(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|cs| cs.iter().all(|c| c.ready))
                })
                .count();
            Ok(ready >= 2)
        },
    )
    .await?;
    eprintln!(
        "webhook Pod deleted -> two ready Pods again: {:.1?}",
        t.elapsed()
    );
    webhook_mutates(client).await?;
    traefik_serves_an_ingress(client).await?;
    an_app_is_ready_once_traefik_admits_its_ingress(client).await
}

/// The in-cluster controller counts an app's Ingress as admitted only once its ingress controller
/// reported it (`--ingress-admitted-by=controller`, the default): the app's Ready condition says
/// so, and the Ingress then has Traefik's address in its status. (The app's Pod is a kwok Pod: only
/// the admission is checked here, the routing above.)
async fn an_app_is_ready_once_traefik_admits_its_ingress(client: &kube::Client) -> Result<()> {
    use kompox_core::api::KompoxApp;
    let ns = TestNamespace::create(client, "node-app", &[]).await?;
    let result = async {
        let t = Instant::now();
        apps::put_compose(client, &ns.name, "web-compose", &apps::small_compose("web")).await?;
        let mut app = apps::small_app("web", "web-compose");
        app["spec"]["ingress"] = json!({"className": "traefik", "rules": [
            {"name": "main", "port": 8080, "hosts": ["app.example.test"]}]});
        apps::apply(client, &ns.name, &app).await?;
        let ready =
            apps::wait_ready(&ns.api::<KompoxApp>(), "web", Duration::from_secs(120)).await?;
        let message = ready
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(message.contains("admitted"), "Ready message: {message:?}");
        let ing = ns
            .api::<Ingress>()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .next()
            .context("the app has no Ingress")?;
        let lb = ing
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .unwrap_or_default();
        ensure!(
            lb.iter().any(|x| x.ip.as_deref() == Some(NODE_IP)),
            "the Ready app's Ingress has no address from Traefik: {lb:?}"
        );
        eprintln!(
            "app Ready with its Ingress admitted by Traefik: {:.1?}",
            t.elapsed()
        );
        anyhow::Ok(())
    }
    .await;
    let cleanup = ns.cleanup().await;
    result?;
    cleanup
}

/// The node's IP (hack/lib/node.sh `NODE_IP`): hack/lib/servicelb.sh gives LoadBalancer Services
/// this address.
const NODE_IP: &str = "10.85.0.1";

/// Traefik (install's ingress controller) admits an Ingress and routes it to its backend Pod.
async fn traefik_serves_an_ingress(client: &kube::Client) -> Result<()> {
    let t = Instant::now();
    let deploy = Api::<Deployment>::namespaced(client.clone(), "k4x-traefik");
    wait_until(
        "Deployment traefik available",
        Duration::from_secs(120),
        || async {
            let d = deploy.get("traefik").await?;
            Ok(d.status.and_then(|s| s.available_replicas).unwrap_or(0) >= 1)
        },
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), "k4x-traefik");
    wait_until(
        "Service traefik with the load balancer's address",
        Duration::from_secs(60),
        || async {
            let s = services.get("traefik").await?;
            Ok(lb_ips(s.status.and_then(|s| s.load_balancer))
                .iter()
                .any(|ip| ip == NODE_IP))
        },
    )
    .await?;
    let node_port = services
        .get("traefik")
        .await?
        .spec
        .and_then(|s| s.ports)
        .and_then(|ps| ps.into_iter().find(|p| p.name.as_deref() == Some("web")))
        .and_then(|p| p.node_port)
        .context("Service traefik has no nodePort for web")?;
    eprintln!(
        "Traefik available with its load balancer address: {:.1?}",
        t.elapsed()
    );

    let id = test_id();
    let ns = TestNamespace::create(client, "node-ingress", &managed_labels(&id)).await?;
    let result = async {
        let pods: Api<Pod> = ns.api();
        let web = node::busybox_pod(
            "web",
            "mkdir -p /www && echo \"served by $(hostname) through traefik\" > /www/index.html && exec httpd -f -p 8080 -h /www",
            "Always",
            json!({}),
        )?;
        node::run(&pods, &web, &["Running"]).await?;
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))?;
        ns.api::<Service>().create(&PostParams::default(), &svc).await?;
        let ing: Ingress = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "traefik", "rules": [{"host": "web.example.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
        }))?;
        let ingresses: Api<Ingress> = ns.api();
        let t = Instant::now();
        ingresses.create(&PostParams::default(), &ing).await?;
        wait_until(
            "Ingress web admitted by Traefik (its status has the load balancer's address)",
            Duration::from_secs(60),
            || async {
                let i = ingresses.get("web").await?;
                let lb = i
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|l| l.ingress)
                    .unwrap_or_default();
                Ok(lb.iter().any(|x| x.ip.as_deref() == Some(NODE_IP)))
            },
        )
        .await?;
        eprintln!("Ingress admitted by Traefik: {:.1?}", t.elapsed());
        // From this machine: 127.0.0.1:<nodePort> (kube-proxy) -> Traefik -> the web Pod.
        let port = node_port;
        let last = std::sync::Mutex::new(String::new());
        wait_until(
            "web.example.test through Traefik at 127.0.0.1",
            Duration::from_secs(60),
            || {
                let last = &last;
                async move {
                    let got =
                        tokio::task::spawn_blocking(move || http_get(port, "web.example.test"))
                            .await??;
                    let ok = status(&got) == Some(200)
                        && got.contains("served by web through traefik");
                    if let Ok(mut l) = last.lock() {
                        *l = got;
                    }
                    Ok(ok)
                }
            },
        )
        .await
        .with_context(|| format!("last answer: {:?}", last.lock().map(|l| l.clone())))?;
        eprintln!("Ingress answered through Traefik: {:.1?}", t.elapsed());
        let other = tokio::task::spawn_blocking(move || http_get(port, "other.example.test")).await??;
        ensure!(
            status(&other) == Some(404),
            "a host no Ingress names: {other:?}"
        );
        anyhow::Ok(())
    }
    .await;
    let cleanup = ns.cleanup().await;
    result?;
    cleanup
}

/// The status code of an HTTP answer.
fn status(answer: &str) -> Option<u16> {
    answer.split_whitespace().nth(1)?.parse().ok()
}

fn lb_ips(lb: Option<k8s_openapi::api::core::v1::LoadBalancerStatus>) -> Vec<String> {
    lb.and_then(|l| l.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect()
}

/// `GET /` with `Host: host` to 127.0.0.1:`port`; the whole answer (HTTP/1.0, so the server closes).
fn http_get(port: i32, host: &str) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let port = u16::try_from(port).context("node port")?;
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(3),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

async fn webhook_mutates(client: &kube::Client) -> Result<()> {
    let id = test_id();
    let ns = TestNamespace::create(client, "node-webhook", &managed_labels(&id)).await?;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "env"},
        "stringData": {"TOKEN": "t"},
    }))?;
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    let t = Instant::now();
    let mutated = dry_run_pod(client, &ns.name, &pod("probe", &[], Some("env"))?).await;
    let cleanup = ns.cleanup().await;
    let mutated = mutated.context("Pod create through the in-cluster webhook")?;
    ensure!(
        env_hash(&mutated).is_some(),
        "no env-hash: the webhook did not mutate the Pod"
    );
    eprintln!("webhook through its Service: {:.0?}", t.elapsed());
    cleanup
}
