//! The everyday app commands that need Kompox's servers, against the real local control plane
//! with the servers from `install --local`:
//!
//! - `secret env set|unset|list`: per-service overrides in a Secret named by
//!   `spec.envOverrides`; the controller renders them over compose `environment`, the Pod
//!   rolls, no value is ever printed, a re-`apply` keeps them, bad input changes nothing;
//! - `secret pull set|unset`: a `kubernetes.io/dockerconfigjson` Secret in the Pod's
//!   `imagePullSecrets`;
//! - `suspend` / `resume` and `status --watch`.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kompox_core::api::KompoxApp;
use kompox_e2e::cli::{LocalInstall, Run, pods_at, rolled_since, with_local_install};
use kompox_e2e::wait_until;
use kube::api::Api;
use serde_json::{Value, json};

const COMPOSE: &str = "\
name: sec
services:
  web:
    image: nginx:1.27
    ports: [\"8080:80\"]
    environment:
      DB_PASSWORD: compose-literal
      KEEP: kept
  db:
    image: postgres:17
    environment:
      POSTGRES_DB: app
";

const DEPLOYMENT: &str = "sec-app";
const OVERRIDE: &str = "sec-web-env-override";
const PW_1: &str = "override-pw-first-4c1e";
const PW_2: &str = "override-pw-second-0b7d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_suspend_and_status_watch() -> Result<()> {
    with_local_install("d2", |env| Box::pin(flow(env))).await
}

async fn apply(env: &LocalInstall) -> Result<Run> {
    let compose = env.dir.join("compose.yml");
    env.kompox(&[
        "apply",
        "-f",
        &compose.to_string_lossy(),
        "--workspace",
        &env.ws,
        "--timeout",
        "180s",
    ])
    .await
}

async fn flow(env: &LocalInstall) -> Result<()> {
    std::fs::write(env.dir.join("compose.yml"), COMPOSE)?;
    let first = apply(env).await?.ok()?;
    env.step("first apply");
    // The compose file's literal credential is warned about by path, never by value.
    ensure!(
        first.stderr.contains(
            "services.web.environment.DB_PASSWORD: a literal credential: it is stored in plain text"
        ) && !first.stderr.contains("compose-literal"),
        "{first:?}"
    );
    let ns = env
        .namespace_of("sec")
        .with_context(|| format!("{first:?}"))?;
    diffs(env, &ns).await?;
    env.step("diff");
    secret_env(env, &ns).await?;
    env.step("secret env");
    secret_pull(env, &ns).await?;
    env.step("secret pull");
    suspend_resume_and_watch(env, &ns).await?;
    env.step("suspend, resume, status --watch");
    Ok(())
}

/// `diff APP` and `diff -f`: the same right after apply (exit 0); an edited compose file shows
/// as a hunk of the compose ConfigMap (exit 1) and nothing is changed.
async fn diffs(env: &LocalInstall, ns: &str) -> Result<()> {
    let d = env.kompox(&["diff", "sec", "-n", ns]).await?;
    ensure!(d.code == 0 && d.stdout.contains("no differences"), "{d:?}");
    let compose = env.dir.join("compose.yml");
    let f = compose.to_string_lossy().into_owned();
    let d = env
        .kompox(&["diff", "-f", &f, "--workspace", &env.ws])
        .await?;
    ensure!(d.code == 0 && d.stdout.contains("no differences"), "{d:?}");
    std::fs::write(&compose, COMPOSE.replace("nginx:1.27", "nginx:1.28"))?;
    let d = env
        .kompox(&["diff", "-f", &f, "--workspace", &env.ws])
        .await?;
    std::fs::write(&compose, COMPOSE)?;
    ensure!(
        d.code == 1
            && d.stdout
                .contains(&format!("--- live ConfigMap {ns}/sec-compose"))
            && d.stdout.contains("@@ -")
            && d.stdout
                .lines()
                .any(|l| l.starts_with('-') && l.contains("image: nginx:1.27"))
            && d.stdout
                .lines()
                .any(|l| l.starts_with('+') && l.contains("image: nginx:1.28")),
        "{d:?}"
    );
    ensure!(
        !d.stdout.contains("KompoxApp"),
        "the app did not change: {d:?}"
    );
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), ns)
        .get("sec-compose")
        .await?;
    ensure!(
        cm.data
            .and_then(|d| d.get("compose.yml").cloned())
            .is_some_and(|c| c.contains("nginx:1.27")),
        "diff changed the ConfigMap"
    );
    // list: a table row per app; -A -o name.
    let l = env.kompox(&["list", "-n", ns]).await?.ok()?;
    let t = kompox_e2e::cli::table(&l.stdout);
    let row = kompox_e2e::cli::row(&t, "sec")?;
    ensure!(
        row.get("READY").map(String::as_str) == Some("true"),
        "{l:?}"
    );
    ensure!(
        row.get("SUSPENDED").map(String::as_str) == Some("false"),
        "{l:?}"
    );
    let l = env.kompox(&["ls", "-A", "-o", "name"]).await?.ok()?;
    ensure!(
        l.stdout
            .lines()
            .any(|x| x == "kompoxapp.k8s.kompox.dev/sec"),
        "{l:?}"
    );
    // apply -o name: the applied objects on stdout, the progress on stderr.
    let a = env
        .kompox(&[
            "apply",
            "-f",
            &f,
            "--workspace",
            &env.ws,
            "--wait=false",
            "-o",
            "name",
        ])
        .await?
        .ok()?;
    ensure!(
        a.stdout.lines().any(|x| x == "configmap/sec-compose")
            && a.stdout
                .lines()
                .any(|x| x == "kompoxapp.k8s.kompox.dev/sec")
            && a.stderr.contains("applied"),
        "{a:?}"
    );
    // An unknown app: exit 2, as kubectl diff's errors.
    let d = env.kompox(&["diff", "nope", "-n", ns]).await?;
    ensure!(d.code == 2 && d.stderr.starts_with("error: "), "{d:?}");
    Ok(())
}

/// The web container of the Deployment, as JSON.
async fn web(env: &LocalInstall, ns: &str) -> Result<Value> {
    let d = Api::<Deployment>::namespaced(env.client.clone(), ns)
        .get(DEPLOYMENT)
        .await?;
    let v = serde_json::to_value(d)?;
    v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "web").cloned())
        .context("no web container")
}

fn never_printed(r: &Run, values: &[&str]) -> Result<()> {
    for v in values {
        ensure!(
            !r.stdout.contains(v) && !r.stderr.contains(v),
            "a value was printed: {r:?}"
        );
    }
    Ok(())
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

#[allow(clippy::too_many_lines)]
async fn secret_env(env: &LocalInstall, ns: &str) -> Result<()> {
    let client = &env.client;
    let apps: Api<KompoxApp> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let bad = env.dir.join("bad.env");
    std::fs::write(&bad, format!("OK=1\nBAD KEY={PW_1}\n"))?;
    let good = env.dir.join("web.secret.env");
    std::fs::write(&good, format!("DB_PASSWORD={PW_1}\nNEW_ONE=1\n"))?;
    let bad_s = bad.to_string_lossy().into_owned();
    let good_s = good.to_string_lossy().into_owned();

    // Bad input: a clear error naming it, exit 1, nothing changed.
    let cases: [(&str, Vec<&str>, String); 3] = [
        (
            "an env file that does not parse",
            vec![
                "secret", "env", "set", "sec", "-n", ns, "-S", "web", "-f", &bad_s,
            ],
            format!("error: {bad_s}: line 2: a variable name cannot contain a space"),
        ),
        (
            "an unknown service",
            vec![
                "secret", "env", "set", "sec", "-n", ns, "-S", "cache", "-f", &good_s,
            ],
            "error: -S cache: KompoxApp sec has no service \"cache\" (its services: db, web)"
                .into(),
        ),
        (
            "an unknown app",
            vec![
                "secret", "env", "set", "nope", "-n", ns, "-S", "web", "-f", &good_s,
            ],
            format!("error: KompoxApp {ns}/nope: not found"),
        ),
    ];
    for (name, args, want) in &cases {
        let r = env.kompox(args).await?;
        ensure!(
            r.code == 1 && r.stderr.contains(want.as_str()),
            "{name}: {r:?}"
        );
        never_printed(&r, &[PW_1])?;
    }
    ensure!(
        secrets.get_opt(OVERRIDE).await?.is_none(),
        "a bad input created the Secret"
    );
    ensure!(apps.get("sec").await?.spec.env_overrides.is_empty());

    // set -f: the Secret holds the file's variables, the app names it, the Pod rolls with the
    // override in place of the compose literal.
    let before = pods_at(client, ns, DEPLOYMENT).await?;
    let r = env
        .kompox(&[
            "secret", "env", "set", "sec", "-n", ns, "-S", "web", "-f", &good_s,
        ])
        .await?
        .ok()?;
    never_printed(&r, &[PW_1])?;
    ensure!(
        r.stdout.contains(&format!(
            "secret/{OVERRIDE}: web: set DB_PASSWORD, NEW_ONE (values not shown)"
        )),
        "{r:?}"
    );
    let s = secrets.get(OVERRIDE).await?;
    ensure!(secret_value(&s, "DB_PASSWORD").as_deref() == Some(PW_1));
    let spec = apps.get("sec").await?.spec;
    ensure!(
        serde_json::to_value(&spec.env_overrides)?
            == json!([{"service": "web", "secretRef": {"name": OVERRIDE}}]),
        "{:?}",
        spec.env_overrides
    );
    let rolled = roll(env, ns, &before, "set -f").await?;
    let c = web(env, ns).await?;
    ensure!(
        c["env"] == json!([{"name": "KEEP", "value": "kept"}])
            && c["envFrom"] == json!([{"secretRef": {"name": OVERRIDE}}]),
        "{c}"
    );
    ensure!(
        !c.to_string().contains(PW_1),
        "the value is in the Deployment"
    );

    // set --from-literal adds to what is there; the Pod rolls again (the value changed).
    let r = env
        .kompox(&[
            "secret",
            "env",
            "set",
            "sec",
            "-n",
            ns,
            "-S",
            "web",
            "--from-literal",
            &format!("DB_PASSWORD={PW_2}"),
        ])
        .await?
        .ok()?;
    never_printed(&r, &[PW_1, PW_2])?;
    let s = secrets.get(OVERRIDE).await?;
    ensure!(
        secret_value(&s, "DB_PASSWORD").as_deref() == Some(PW_2)
            && secret_value(&s, "NEW_ONE").as_deref() == Some("1"),
        "set merges"
    );
    let rolled2 = roll(env, ns, &rolled, "set --from-literal").await?;
    ensure!(rolled2.hash != rolled.hash, "the env hash did not change");

    // list: keys, never values.
    let r = env
        .kompox(&["secret", "env", "list", "sec", "-n", ns])
        .await?
        .ok()?;
    never_printed(&r, &[PW_2])?;
    ensure!(
        r.stdout.contains("web") && r.stdout.contains("DB_PASSWORD,NEW_ONE"),
        "{r:?}"
    );

    // A re-apply of the compose project keeps the overrides (apply does not own them).
    let r = apply(env).await?.ok()?;
    ensure!(
        !apps.get("sec").await?.spec.env_overrides.is_empty(),
        "apply dropped spec.envOverrides: {r:?}"
    );
    ensure!(
        web(env, ns).await?["envFrom"] == json!([{"secretRef": {"name": OVERRIDE}}]),
        "apply took the override out of the Deployment"
    );

    // unset KEY; unset a key that is not there (nothing changed); unset all.
    env.kompox(&[
        "secret", "env", "unset", "sec", "-n", ns, "-S", "web", "NEW_ONE",
    ])
    .await?
    .ok()?;
    let s = secrets.get(OVERRIDE).await?;
    ensure!(secret_value(&s, "NEW_ONE").is_none() && secret_value(&s, "DB_PASSWORD").is_some());
    let r = env
        .kompox(&[
            "secret", "env", "unset", "sec", "-n", ns, "-S", "web", "GONE",
        ])
        .await?;
    ensure!(
        r.code == 1
            && r.stderr
                .contains("\"GONE\" not overridden (nothing changed)"),
        "{r:?}"
    );
    let before = pods_at(client, ns, DEPLOYMENT).await?;
    env.kompox(&["secret", "env", "unset", "sec", "-n", ns, "-S", "web"])
        .await?
        .ok()?;
    ensure!(apps.get("sec").await?.spec.env_overrides.is_empty());
    ensure!(
        secrets.get_opt(OVERRIDE).await?.is_none(),
        "the Secret stayed"
    );
    roll(env, ns, &before, "unset").await?;
    let c = web(env, ns).await?;
    ensure!(
        c["env"]
            == json!([{"name": "DB_PASSWORD", "value": "compose-literal"}, {"name": "KEEP", "value": "kept"}])
            && c.get("envFrom").is_none(),
        "{c}"
    );
    Ok(())
}

/// Waits until the Pod has rolled since `before`; returns the new state.
async fn roll(
    env: &LocalInstall,
    ns: &str,
    before: &kompox_e2e::cli::PodsAt,
    after: &str,
) -> Result<kompox_e2e::cli::PodsAt> {
    let client = &env.client;
    wait_until(
        &format!("the Pod rolled after {after}"),
        Duration::from_secs(120),
        || async { Ok(rolled_since(client, ns, before).await.is_ok()) },
    )
    .await?;
    pods_at(client, ns, DEPLOYMENT).await
}

async fn secret_pull(env: &LocalInstall, ns: &str) -> Result<()> {
    let client = &env.client;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let bad = env.dir.join("bad.json");
    std::fs::write(&bad, "{\"auths\": {")?;
    let bad_s = bad.to_string_lossy().into_owned();
    let r = env
        .kompox(&[
            "secret",
            "pull",
            "set",
            "sec",
            "-n",
            ns,
            "--docker-config",
            &bad_s,
        ])
        .await?;
    ensure!(
        r.code == 1
            && r.stderr
                .contains(&format!("error: {bad_s}: not a Docker config.json")),
        "{r:?}"
    );
    ensure!(secrets.get_opt("sec-pull").await?.is_none());

    let good = env.dir.join("config.json");
    // base64("robot:pull-token-93a1")
    std::fs::write(
        &good,
        r#"{"auths": {"registry.example.com": {"auth": "cm9ib3Q6cHVsbC10b2tlbi05M2Ex"}}}"#,
    )?;
    let r = env
        .kompox(&[
            "secret",
            "pull",
            "set",
            "sec",
            "-n",
            ns,
            "--docker-config",
            &good.to_string_lossy(),
        ])
        .await?
        .ok()?;
    ensure!(
        r.stdout.contains("registry.example.com") && !r.stdout.contains("cm9ib3Q"),
        "{r:?}"
    );
    let s = secrets.get("sec-pull").await?;
    ensure!(
        s.type_.as_deref() == Some("kubernetes.io/dockerconfigjson"),
        "{:?}",
        s.type_
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pulls = |d: Deployment| {
        d.spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.image_pull_secrets)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
    };
    wait_until(
        "the Deployment pulls with sec-pull",
        Duration::from_secs(90),
        || async { Ok(pulls(deployments.get(DEPLOYMENT).await?) == ["sec-pull"]) },
    )
    .await?;
    env.kompox(&["secret", "pull", "unset", "sec", "-n", ns])
        .await?
        .ok()?;
    ensure!(secrets.get_opt("sec-pull").await?.is_none());
    wait_until(
        "the Deployment no longer names sec-pull",
        Duration::from_secs(90),
        || async { Ok(pulls(deployments.get(DEPLOYMENT).await?).is_empty()) },
    )
    .await?;
    Ok(())
}

async fn suspend_resume_and_watch(env: &LocalInstall, ns: &str) -> Result<()> {
    use std::io::{BufRead as _, Read as _};

    // status --watch prints the app's state again as it changes: started before the suspend,
    // it shows the Suspended condition turning True.
    let bin = kompox_e2e::cli::binary()?;
    let mut watch = std::process::Command::new(&bin)
        .args(["status", "sec", "-n", ns, "--watch"])
        .env("KUBECONFIG", &kompox_e2e::cluster().admin_kubeconfig)
        .env("KOMPOX_CACHE", &env.cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stdout = watch.stdout.take().context("no stdout")?;
    let lines = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = l.contains("Suspended") && l.contains("True");
            seen.push(l);
            if done {
                break;
            }
        }
        seen
    });

    let r = env
        .kompox(&["suspend", "sec", "-n", ns, "--timeout", "120s"])
        .await?
        .ok()?;
    ensure!(
        r.stdout
            .contains(&format!("kompoxapp {ns}/sec is suspended: no Pod runs")),
        "{r:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), ns);
    let d = deployments.get(DEPLOYMENT).await?;
    ensure!(
        d.spec.and_then(|s| s.replicas) == Some(0),
        "suspended with replicas"
    );
    let a = Api::<KompoxApp>::namespaced(env.client.clone(), ns)
        .get("sec")
        .await?;
    ensure!(a.spec.suspend, "spec.suspend not set");

    // The watcher saw it (or is killed after a deadline and says what it saw).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !lines.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let mut err = String::new();
    if let Some(mut e) = watch.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let seen = lines.join().unwrap_or_default();
    ensure!(
        seen.iter()
            .any(|l| l.contains("Suspended") && l.contains("True")),
        "status --watch never showed Suspended True: {seen:#?}\nstderr: {err}"
    );

    let r = env
        .kompox(&["resume", "sec", "-n", ns, "--timeout", "120s"])
        .await?
        .ok()?;
    ensure!(
        r.stdout.contains(&format!("kompoxapp {ns}/sec is Ready")),
        "{r:?}"
    );
    let a = Api::<KompoxApp>::namespaced(env.client.clone(), ns)
        .get("sec")
        .await?;
    ensure!(
        !a.spec.suspend && a.status.is_some_and(|s| s.ready),
        "not Ready after resume"
    );
    // Unknown app: named, exit 1.
    let r = env.kompox(&["suspend", "nope", "-n", ns]).await?;
    ensure!(
        r.code == 1
            && r.stderr
                .contains(&format!("KompoxApp {ns}/nope: not found")),
        "{r:?}"
    );
    Ok(())
}
