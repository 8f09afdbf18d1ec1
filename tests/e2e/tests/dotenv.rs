//! The project `.env` in the cluster, against the real local control plane with the Kompox
//! servers from `install --local`: `apply` keeps the variables in the Secret `<app>-dotenv`
//! named by `spec.compose.envFrom`; an `environment` entry using one is a `secretKeyRef` into
//! `<app>-environment`, so the password is in Secrets only (not in the Deployment, not in
//! `rendered`, never printed); editing `.env` and re-applying rolls the Pod; so does editing
//! the Secret itself (the controller watches it).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kompox_core::api::KompoxApp;
use kompox_e2e::cli::{Run, kompox_async, temp_dir};
use kompox_e2e::{admin_client, wait_until};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

const COMPOSE: &str = "\
name: pgapp
services:
  db:
    image: postgres:${PG_TAG:-16}
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it in .env}
      POSTGRES_USER: ${POSTGRES_USER:-app}
      POSTGRES_DB: app
    expose: [5432]
";

const PASSWORD_1: &str = "dotenv-pw-first-5e1d";
const PASSWORD_2: &str = "dotenv-pw-second-a9c0";
const PASSWORD_3: &str = "dotenv-pw-third-77b4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotenv_values_live_in_secrets_and_roll_the_pod() -> Result<()> {
    let cache = temp_dir("dotenv-cache")?;
    let dir = temp_dir("dotenv")?;
    let ws = format!("de{:06x}", rand::random::<u32>() & 0xff_ffff);
    let selector = format!("kompox.dev/tenant={ws}");
    let install = kompox_async(
        &cache,
        &["install", "--local", "--watch-namespaces", &selector],
    )
    .await;
    let result = match install.and_then(Run::ok) {
        Ok(_) => flow(&cache, &dir, &ws).await,
        Err(e) => Err(e),
    };
    let un = kompox_async(&cache, &["uninstall", "--local"]).await;
    result?;
    un?.ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

async fn apply(cache: &Path, dir: &Path, ws: &str) -> Result<Run> {
    let compose = dir.join("compose.yml");
    kompox_async(
        cache,
        &[
            "apply",
            "-f",
            &compose.to_string_lossy(),
            "--workspace",
            ws,
            "--timeout",
            "180s",
        ],
    )
    .await
}

fn write_dotenv(dir: &Path, password: &str) -> Result<()> {
    std::fs::write(
        dir.join(".env"),
        format!("# credentials\nPOSTGRES_PASSWORD=\"{password}\"\nPG_TAG=16.4\n"),
    )?;
    Ok(())
}

async fn flow(cache: &Path, dir: &Path, ws: &str) -> Result<()> {
    std::fs::write(dir.join("compose.yml"), COMPOSE)?;
    write_dotenv(dir, PASSWORD_1)?;
    let first = apply(cache, dir, ws).await?;
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".kompox/state.json"))
            .with_context(|| format!("{first:?}"))?,
    )?;
    let ns = state["apps"][format!("{ws}/pgapp")]["namespace"]
        .as_str()
        .with_context(|| format!("namespace in state.json: {state}"))?
        .to_owned();
    let client = admin_client().await?;
    let result = checks(cache, dir, ws, &client, &ns, first).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    wait_until(
        &format!("namespace {ns} gone"),
        Duration::from_secs(120),
        || {
            let namespaces = namespaces.clone();
            let ns = ns.clone();
            async move { Ok(namespaces.get_opt(&ns).await?.is_none()) }
        },
    )
    .await?;
    result
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// The Deployment's env-hash and Pod names once it is available with one updated replica.
async fn settled(client: &Client, ns: &str) -> Result<(String, Vec<String>)> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = serde_json::to_value(deployments.get("pgapp-app").await?)?;
    let hash = d["spec"]["template"]["metadata"]["annotations"]["kompox.dev/env-hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let names = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|p| p.name_any())
        .collect();
    Ok((hash, names))
}

/// Waits until the env-hash differs from `before` and the old Pods are gone.
async fn rolled(
    client: &Client,
    ns: &str,
    what: &str,
    before: &(String, Vec<String>),
) -> Result<()> {
    wait_until(what, Duration::from_secs(120), || {
        let (client, ns, before) = (client.clone(), ns.to_owned(), before.clone());
        async move {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let d = serde_json::to_value(deployments.get("pgapp-app").await?)?;
            let available = d["status"]["availableReplicas"] == 1
                && d["status"]["updatedReplicas"] == 1
                && d["status"]["replicas"] == 1;
            let (hash, names) = settled(&client, &ns).await?;
            Ok(available && hash != before.0 && !before.1.iter().any(|p| names.contains(p)))
        }
    })
    .await
}

#[allow(clippy::too_many_lines)]
async fn checks(
    cache: &Path,
    dir: &Path,
    ws: &str,
    client: &Client,
    ns: &str,
    first: Run,
) -> Result<()> {
    let first = first.ok()?;
    ensure!(
        first
            .stdout
            .contains(&format!("KompoxApp {ns}/pgapp is Ready")),
        "{first:?}"
    );
    ensure!(
        first.stderr.contains("PG_TAG, POSTGRES_PASSWORD")
            && first.stderr.contains("in Secret pgapp-dotenv"),
        "the variables are named: {first:?}"
    );
    ensure!(
        !first.stdout.contains(PASSWORD_1) && !first.stderr.contains(PASSWORD_1),
        "the password was printed: {first:?}"
    );

    // The app names the variables Secret; it holds the .env values.
    let kapp = Api::<KompoxApp>::namespaced(client.clone(), ns)
        .get("pgapp")
        .await?;
    let names: Vec<Option<String>> = kapp
        .spec
        .compose
        .env_from
        .iter()
        .map(|e| e.secret_ref.as_ref().map(|r| r.name.clone()))
        .collect();
    ensure!(names == [Some("pgapp-dotenv".to_owned())], "{names:?}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let dotenv = secrets.get("pgapp-dotenv").await?;
    ensure!(
        secret_value(&dotenv, "POSTGRES_PASSWORD").as_deref() == Some(PASSWORD_1)
            && secret_value(&dotenv, "PG_TAG").as_deref() == Some("16.4"),
        "pgapp-dotenv holds the .env values"
    );
    let derived = secrets.get("pgapp-environment").await?;
    ensure!(
        secret_value(&derived, "db.POSTGRES_PASSWORD").as_deref() == Some(PASSWORD_1),
        "pgapp-environment holds the password"
    );

    // The Deployment reads it by secretKeyRef; plain values stay plain.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let dep = serde_json::to_value(deployments.get("pgapp-app").await?)?;
    ensure!(
        !dep.to_string().contains(PASSWORD_1),
        "the password is in the Deployment"
    );
    let ctr = &dep["spec"]["template"]["spec"]["containers"][0];
    ensure!(ctr["image"] == "postgres:16.4", "{}", ctr["image"]);
    let env = ctr["env"].as_array().cloned().unwrap_or_default();
    let by_name = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    ensure!(
        by_name("POSTGRES_PASSWORD")["valueFrom"]
            == json!({"secretKeyRef": {"name": "pgapp-environment", "key": "db.POSTGRES_PASSWORD"}}),
        "{env:?}"
    );
    ensure!(by_name("POSTGRES_USER")["value"] == "app", "{env:?}");

    // `rendered` redacts it; so does `render`.
    let r = kompox_async(cache, &["rendered", "pgapp", "-n", ns, "-o", "json"])
        .await?
        .ok()?;
    ensure!(
        !r.stdout.contains(PASSWORD_1),
        "the password is in rendered"
    );
    ensure!(r.stdout.contains("pgapp-environment"), "{}", r.stdout);

    // A new password in .env, re-applied: the derived Secret changes, the Pod rolls.
    let before = settled(client, ns).await?;
    ensure!(before.1.len() == 1, "{before:?}");
    write_dotenv(dir, PASSWORD_2)?;
    let second = apply(cache, dir, ws).await?.ok()?;
    ensure!(!second.stderr.contains(PASSWORD_2), "{second:?}");
    rolled(client, ns, "the Pod rolled after .env changed", &before).await?;
    let derived = secrets.get("pgapp-environment").await?;
    ensure!(
        secret_value(&derived, "db.POSTGRES_PASSWORD").as_deref() == Some(PASSWORD_2),
        "pgapp-environment follows .env"
    );

    // Editing the variables Secret in the cluster re-renders (the controller watches it).
    let before = settled(client, ns).await?;
    secrets
        .patch(
            "pgapp-dotenv",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"POSTGRES_PASSWORD": PASSWORD_3}})),
        )
        .await?;
    rolled(
        client,
        ns,
        "the Pod rolled after pgapp-dotenv changed",
        &before,
    )
    .await?;
    let derived = secrets.get("pgapp-environment").await?;
    ensure!(
        secret_value(&derived, "db.POSTGRES_PASSWORD").as_deref() == Some(PASSWORD_3),
        "pgapp-environment follows pgapp-dotenv"
    );
    let dep = serde_json::to_value(deployments.get("pgapp-app").await?)?;
    ensure!(
        !dep.to_string().contains(PASSWORD_3),
        "the password is in the Deployment"
    );
    Ok(())
}
