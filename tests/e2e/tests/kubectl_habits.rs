//! kubectl's habits in `kubectl-kompox`, against the real local kube-apiserver (no Kompox
//! servers needed: `apply --wait=false`):
//!
//! - `apply --dry-run=client` works without a cluster and records nothing; `--dry-run=server`
//!   stores nothing;
//! - a field another manager owns is a conflict: listed with the field and the manager, nothing
//!   applied, until `--force-conflicts`; `--field-manager` names the applier;
//! - `-o name|jsonpath=…` and `-A` on the list commands; `--as` impersonates; `version` shows
//!   the client and the API server.

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_e2e::cli::{Run, kompox, temp_dir};
use kompox_e2e::ensure_crds;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const COMPOSE: &str =
    "name: habits\nservices:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n";

fn run(cache: &std::path::Path, args: &[&str]) -> Result<Run> {
    kompox(cache, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_conflicts_outputs_and_impersonation() -> Result<()> {
    ensure_crds().await?;
    let client = kompox_e2e::admin_client().await?;
    let dir = temp_dir("habits")?;
    let ws = format!("habits{:04x}", rand::random::<u16>());
    let compose = dir.join("compose.yml");
    std::fs::write(&compose, COMPOSE)?;
    let f = compose.to_string_lossy().into_owned();
    let state = dir.join(".kompox/state.json");

    // --dry-run=client: no cluster at all, nothing recorded.
    let r = run(
        &dir,
        &[
            "apply",
            "-f",
            &f,
            "--workspace",
            &ws,
            "--dry-run=client",
            "--kubeconfig",
            "/nonexistent",
        ],
    )?
    .ok()?;
    ensure!(
        r.stdout.contains("KompoxApp") && r.stdout.contains("(dry run)"),
        "{r:?}"
    );
    ensure!(
        !state.exists(),
        "client dry run recorded a namespace: {r:?}"
    );

    // --dry-run=server of a new app: the namespace is checked, nothing stored or recorded.
    let r = run(
        &dir,
        &["apply", "-f", &f, "--workspace", &ws, "--dry-run=server"],
    )?
    .ok()?;
    ensure!(r.stdout.contains("(server dry run)"), "{r:?}");
    ensure!(
        !state.exists(),
        "server dry run recorded a namespace: {r:?}"
    );

    let r = run(
        &dir,
        &["apply", "-f", &f, "--workspace", &ws, "--wait=false"],
    )?
    .ok()?;
    let st: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state)?)?;
    let ns = st["apps"][format!("{ws}/habits")]["namespace"]
        .as_str()
        .with_context(|| format!("no namespace recorded: {st}\n{r:?}"))?
        .to_owned();
    let result = in_namespace(&client, &dir, &f, &ws, &ns).await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
    result
}

async fn in_namespace(
    client: &Client,
    dir: &std::path::Path,
    f: &str,
    ws: &str,
    ns: &str,
) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let apps: Api<KompoxApp> = Api::namespaced(client.clone(), ns);
    let compose_of = |cm: ConfigMap| {
        cm.data
            .and_then(|d| d.get("compose.yml").cloned())
            .unwrap_or_default()
    };
    ensure!(compose_of(cms.get("habits-compose").await?).contains("nginx:1.27"));

    // An edit, checked by the server only.
    std::fs::write(dir.join("compose.yml"), COMPOSE.replace("1.27", "1.28"))?;
    let r = run(
        dir,
        &["apply", "-f", f, "--workspace", ws, "--dry-run=server"],
    )?
    .ok()?;
    ensure!(
        r.stdout.contains(&format!(
            "ConfigMap {ns}/habits-compose applied (server dry run)"
        )),
        "{r:?}"
    );
    ensure!(
        compose_of(cms.get("habits-compose").await?).contains("nginx:1.27"),
        "dry run stored"
    );

    // Another manager (a GitOps tool) takes the compose key over.
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "habits-compose", "namespace": ns},
        "data": {"compose.yml": COMPOSE.replace("1.27", "1.26")}});
    cms.patch(
        "habits-compose",
        &PatchParams::apply("argocd-controller").force(),
        &Patch::Apply(&theirs),
    )
    .await?;
    let app_before = apps.get("habits").await?.metadata.resource_version;
    let r = run(dir, &["apply", "-f", f, "--workspace", ws, "--wait=false"])?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(
        r.stderr
            .contains(".data.compose.yml is managed by \"argocd-controller\""),
        "the conflict names the field and the manager: {r:?}"
    );
    ensure!(
        r.stderr.contains("--force-conflicts") && r.stderr.contains("nothing was applied"),
        "{r:?}"
    );
    ensure!(
        compose_of(cms.get("habits-compose").await?).contains("nginx:1.26"),
        "conflict applied"
    );
    ensure!(
        apps.get("habits").await?.metadata.resource_version == app_before,
        "the KompoxApp changed although a conflict was reported"
    );
    let r = run(
        dir,
        &[
            "apply",
            "-f",
            f,
            "--workspace",
            ws,
            "--wait=false",
            "--force-conflicts",
        ],
    )?
    .ok()?;
    ensure!(
        compose_of(cms.get("habits-compose").await?).contains("nginx:1.28"),
        "{r:?}"
    );
    // --field-manager: the applier named in managedFields.
    std::fs::write(dir.join("compose.yml"), COMPOSE.replace("1.27", "1.29"))?;
    run(
        dir,
        &[
            "apply",
            "-f",
            f,
            "--workspace",
            ws,
            "--wait=false",
            "--field-manager",
            "flux",
            "--force-conflicts",
        ],
    )?
    .ok()?;
    let managers: Vec<String> = cms
        .get("habits-compose")
        .await?
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    ensure!(managers.iter().any(|m| m == "flux"), "{managers:?}");

    // -o and -A on a list.
    let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
    let mut d: KompoxDisk = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": "habits-disk"}, "spec": {"size": "1Gi"}}))?;
    d.metadata.namespace = Some(ns.to_owned());
    disks.create(&PostParams::default(), &d).await?;
    let r = run(dir, &["disk", "list", "-n", ns, "-o", "name"])?.ok()?;
    ensure!(
        r.stdout == "kompoxdisk.k8s.kompox.dev/habits-disk\n",
        "{r:?}"
    );
    let r = run(
        dir,
        &[
            "disk",
            "list",
            "-n",
            ns,
            "-o",
            "jsonpath={.items[*].spec.size}",
        ],
    )?
    .ok()?;
    ensure!(r.stdout == "1Gi", "{r:?}");
    let r = run(dir, &["disk", "list", "-A"])?.ok()?;
    ensure!(r.stdout.starts_with("NAMESPACE "), "{r:?}");
    ensure!(
        r.stdout
            .lines()
            .any(|l| l.starts_with(ns) && l.contains("habits-disk")),
        "{r:?}"
    );
    let r = run(dir, &["disk", "list", "-n", ns, "-o", "bogus"])?;
    ensure!(r.code != 0 && r.stderr.contains("--output"), "{r:?}");

    // --as: the same list as a user without rights is refused, naming the user.
    let r = run(
        dir,
        &[
            "disk",
            "list",
            "-n",
            ns,
            "--as",
            "jane",
            "--as-group",
            "devs",
        ],
    )?;
    ensure!(r.code == 1, "{r:?}");
    ensure!(r.stderr.contains("User \"jane\" cannot"), "{r:?}");

    // version: the client, and the server it reached.
    let r = run(dir, &["version"])?.ok()?;
    ensure!(r.stdout.contains("Client Version: kubectl-kompox"), "{r:?}");
    ensure!(r.stdout.contains("Server Version: v1."), "{r:?}");
    let r = run(
        dir,
        &[
            "version",
            "--client",
            "--kubeconfig",
            "/nonexistent",
            "-o",
            "json",
        ],
    )?
    .ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.stdout)?;
    ensure!(
        v["clientVersion"]["version"].is_string() && v.get("serverVersion").is_none(),
        "{r:?}"
    );
    Ok(())
}

const TWO_SERVICES: &str = "name: pods\nservices:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n  db:\n    image: postgres:17\n";

/// `logs`, `exec` and `port-forward` against a Pod of the app on a kwok node: kwok serves the
/// kubelet API for its fake nodes (hack/cluster.sh: logs from a file, exec on this machine,
/// a forwarded port echoes), so the requests go the real way, through kube-apiserver's
/// node proxy; then `delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_exec_port_forward_and_delete() -> Result<()> {
    ensure_crds().await?;
    let client = kompox_e2e::admin_client().await?;
    let dir = temp_dir("pods")?;
    let ws = format!("pods{:04x}", rand::random::<u16>());
    let compose = dir.join("compose.yml");
    std::fs::write(&compose, TWO_SERVICES)?;
    let f = compose.to_string_lossy().into_owned();
    run(
        &dir,
        &["apply", "-f", &f, "--workspace", &ws, "--wait=false"],
    )?
    .ok()?;
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".kompox/state.json"))?)?;
    let ns = st["apps"][format!("{ws}/pods")]["namespace"]
        .as_str()
        .context("no namespace recorded")?
        .to_owned();
    let result = pods_in(&client, &dir, &f, &ns).await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
    result
}

async fn pods_in(client: &Client, dir: &std::path::Path, f: &str, ns: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    use std::io::{BufRead as _, Read as _, Write as _};

    // Before any Pod: said plainly.
    let r = run(dir, &["logs", "pods", "-n", ns])?;
    ensure!(r.code == 1 && r.stderr.contains("has no Pod yet"), "{r:?}");
    // The Pod the controller would render (two containers named after the services).
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pods-0", "labels": {"kompox.dev/app": "pods"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "db", "image": "postgres:17"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let running = pods.clone();
    kompox_e2e::wait_until(
        "Pod pods-0 running on a kwok node",
        std::time::Duration::from_secs(90),
        || {
            let pods = running.clone();
            async move {
                let p = pods.get("pods-0").await?;
                Ok(p.status.and_then(|s| s.phase).as_deref() == Some("Running"))
            }
        },
    )
    .await?;

    // logs: every service prefixed; one service bare; --tail; --previous; -f sees a new line.
    let log = kompox_e2e::cluster()
        .admin_kubeconfig
        .parent()
        .context("no cluster dir")?
        .join("kwok/container.log");
    let mark = format!("habits-{:08x}", rand::random::<u32>());
    let cri = |text: &str| format!("2026-12-07T00:00:00.000000000Z stdout F {text}\n");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)?
        .write_all(cri(&mark).as_bytes())?;
    let r = run(dir, &["logs", "pods", "-n", ns])?.ok()?;
    ensure!(
        r.stdout.contains(&format!("[web] {mark}")) && r.stdout.contains(&format!("[db] {mark}")),
        "{r:?}"
    );
    let r = run(dir, &["logs", "pods", "-n", ns, "-S", "web", "--tail", "1"])?.ok()?;
    ensure!(r.stdout == format!("{mark}\n"), "{r:?}");
    let r = run(dir, &["logs", "pods", "-n", ns, "-S", "db", "--previous"])?.ok()?;
    ensure!(r.stdout.contains("previous instance"), "{r:?}");
    let r = run(dir, &["logs", "pods", "-n", ns, "-S", "cache"])?;
    ensure!(
        r.code == 1
            && r.stderr.contains(
                "-S cache: KompoxApp pods has no service \"cache\" (its services: db, web)"
            ),
        "{r:?}"
    );
    let bin = kompox_e2e::cli::binary()?;
    let kubeconfig = &kompox_e2e::cluster().admin_kubeconfig;
    let mut follow = std::process::Command::new(&bin)
        .args(["logs", "pods", "-n", ns, "-S", "web", "-f", "--tail", "0"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let later = format!("{mark}-later");
    let stdout = follow.stdout.take().context("no stdout")?;
    let seen = std::thread::spawn({
        let later = later.clone();
        move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|l| l == later)
        }
    });
    // Appended until the follower shows it (it may attach after the first append).
    let mut found = false;
    for _ in 0..60 {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)?
            .write_all(cri(&later).as_bytes())?;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if seen.is_finished() {
            found = true;
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    ensure!(
        found && seen.join().unwrap_or(false),
        "logs -f never showed {later}"
    );

    // exec: the command runs (on this machine, kwok's exec). kwok reports a failing command
    // as an internal error rather than a kubelet's ExitCode cause (exec::outcome's unit
    // table has that), so here: exit 1 and kwok's words.
    let r = run(
        dir,
        &[
            "exec",
            "pods",
            "-n",
            ns,
            "-S",
            "web",
            "--",
            "sh",
            "-c",
            "echo hello-$((1+1))",
        ],
    )?;
    ensure!(r.code == 0 && r.stdout == "hello-2\n", "{r:?}");
    let r = run(
        dir,
        &[
            "exec",
            "pods",
            "-n",
            ns,
            "-S",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; exit 3",
        ],
    )?;
    ensure!(
        r.code == 1 && r.stdout == "out\n" && r.stderr.contains("exit status 3"),
        "{r:?}"
    );
    let r = run(dir, &["exec", "pods", "-n", ns, "--", "true"])?;
    ensure!(
        r.code == 1 && r.stderr.contains("choose one with -S/--service"),
        "{r:?}"
    );

    // port-forward: a free local port, printed; kwok's forwarded port echoes.
    let mut pf = std::process::Command::new(&bin)
        .args(["port-forward", "pods", "-n", ns, "-S", "web", ":80"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut first = String::new();
    let mut reader = std::io::BufReader::new(pf.stdout.take().context("no stdout")?);
    reader.read_line(&mut first)?;
    let addr = first
        .strip_prefix("Forwarding from ")
        .and_then(|s| s.split_whitespace().next())
        .with_context(|| format!("no address in {first:?}"))?
        .to_owned();
    let echoed = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut c = std::net::TcpStream::connect(&addr)?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
        c.write_all(b"ping through the API server\n")?;
        let mut buf = [0u8; 28];
        c.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await?;
    let _ = pf.kill();
    let _ = pf.wait();
    ensure!(echoed? == "ping through the API server\n");
    // A local port in use is named.
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port();
    let r = run(
        dir,
        &[
            "port-forward",
            "pods",
            "-n",
            ns,
            "-S",
            "web",
            &format!("{port}:80"),
        ],
    )?;
    ensure!(
        r.code == 1
            && r.stderr.contains(&format!("local port 127.0.0.1:{port}"))
            && r.stderr.contains("in use"),
        "{r:?}"
    );

    // delete: the app and its inputs; --delete-namespace asks first.
    let r = run(
        dir,
        &["delete", "pods", "-n", ns, "-f", f, "--delete-namespace"],
    )?;
    ensure!(r.code == 1 && r.stderr.contains("give --yes"), "{r:?}");
    ensure!(
        Api::<KompoxApp>::namespaced(client.clone(), ns)
            .get_opt("pods")
            .await?
            .is_some(),
        "deleted without --yes"
    );
    let r = run(dir, &["delete", "pods", "-n", ns, "--wait=false"])?.ok()?;
    ensure!(
        r.stdout.contains(&format!("kompoxapp {ns}/pods deleted"))
            && r.stdout
                .contains(&format!("configmap {ns}/pods-compose deleted")),
        "{r:?}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    ensure!(
        cms.get_opt("pods-compose").await?.is_none(),
        "the compose ConfigMap stayed"
    );
    let r = run(dir, &["delete", "pods", "-n", ns])?;
    ensure!(r.code == 1 && r.stderr.contains("not found"), "{r:?}");
    Ok(())
}
