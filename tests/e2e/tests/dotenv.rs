//! The project `.env` in the cluster, against the real local control plane with the Kompox
//! servers from `install --local`: `apply` keeps the variables in the Secret `<app>-dotenv`
//! named by `spec.compose.envFrom`; an `environment` entry using one is a `secretKeyRef` into
//! `<app>-environment`, so the password is in Secrets only (not in the Deployment, not in
//! `rendered`, never printed); editing `.env` and re-applying rolls the Pod before `apply`
//! returns; editing the Secret itself rolls it too (the controller watches it).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kompox_core::api::KompoxApp;
use kompox_e2e::cli::{LocalInstall, Run, pods_at, rolled_since, with_local_install};
use kompox_e2e::wait_until;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

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

const DEPLOYMENT: &str = "pgapp-app";
const PASSWORD_1: &str = "dotenv-pw-first-5e1d";
const PASSWORD_2: &str = "dotenv-pw-second-a9c0";
const PASSWORD_3: &str = "dotenv-pw-third-77b4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotenv_values_live_in_secrets_and_roll_the_pod() -> Result<()> {
    with_local_install("de", |env| Box::pin(flow(env))).await
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

fn write_dotenv(dir: &Path, password: &str) -> Result<()> {
    std::fs::write(
        dir.join(".env"),
        format!("# credentials\nPOSTGRES_PASSWORD=\"{password}\"\nPG_TAG=16.4\n"),
    )?;
    Ok(())
}

async fn flow(env: &LocalInstall) -> Result<()> {
    std::fs::write(env.dir.join("compose.yml"), COMPOSE)?;
    write_dotenv(&env.dir, PASSWORD_1)?;
    let first = apply(env).await?;
    env.step("first apply");
    let ns = env
        .namespace_of("pgapp")
        .with_context(|| format!("{first:?}"))?;
    checks(env, &ns, first).await
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

#[allow(clippy::too_many_lines)]
async fn checks(env: &LocalInstall, ns: &str, first: Run) -> Result<()> {
    let client = &env.client;
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
    let dep = serde_json::to_value(deployments.get(DEPLOYMENT).await?)?;
    ensure!(
        !dep.to_string().contains(PASSWORD_1),
        "the password is in the Deployment"
    );
    let ctr = &dep["spec"]["template"]["spec"]["containers"][0];
    ensure!(ctr["image"] == "postgres:16.4", "{}", ctr["image"]);
    let ctr_env = ctr["env"].as_array().cloned().unwrap_or_default();
    let by_name = |n: &str| {
        ctr_env
            .iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    ensure!(
        by_name("POSTGRES_PASSWORD")["valueFrom"]
            == json!({"secretKeyRef": {"name": "pgapp-environment", "key": "db.POSTGRES_PASSWORD"}}),
        "{ctr_env:?}"
    );
    ensure!(by_name("POSTGRES_USER")["value"] == "app", "{ctr_env:?}");

    // `rendered` redacts it; so does `render`.
    let r = env
        .kompox(&["rendered", "pgapp", "-n", ns, "-o", "json"])
        .await?
        .ok()?;
    ensure!(
        !r.stdout.contains(PASSWORD_1),
        "the password is in rendered"
    );
    ensure!(r.stdout.contains("pgapp-environment"), "{}", r.stdout);

    // A new password in .env, re-applied: the derived Secret changes, and the Pod has rolled
    // when apply returns.
    let before = pods_at(client, ns, DEPLOYMENT).await?;
    ensure!(before.pods.len() == 1, "{before:?}");
    write_dotenv(&env.dir, PASSWORD_2)?;
    let second = apply(env).await?.ok()?;
    env.step("apply after editing .env");
    ensure!(!second.stderr.contains(PASSWORD_2), "{second:?}");
    let rolled = rolled_since(client, ns, &before)
        .await
        .with_context(|| format!("right after apply returned: {second:?}"))?;
    ensure!(rolled.hash != before.hash, "the env-hash did not change");
    let before = pods_at(client, ns, DEPLOYMENT).await?;
    let derived = secrets.get("pgapp-environment").await?;
    ensure!(
        secret_value(&derived, "db.POSTGRES_PASSWORD").as_deref() == Some(PASSWORD_2),
        "pgapp-environment follows .env"
    );

    // Editing the variables Secret in the cluster re-renders (the controller watches it).
    secrets
        .patch(
            "pgapp-dotenv",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"POSTGRES_PASSWORD": PASSWORD_3}})),
        )
        .await?;
    wait_until(
        "the Pod rolled after pgapp-dotenv changed",
        Duration::from_secs(120),
        || async {
            Ok(rolled_since(client, ns, &before)
                .await
                .is_ok_and(|now| now.hash != before.hash))
        },
    )
    .await?;
    env.step("rolled after the Secret edit");
    let derived = secrets.get("pgapp-environment").await?;
    ensure!(
        secret_value(&derived, "db.POSTGRES_PASSWORD").as_deref() == Some(PASSWORD_3),
        "pgapp-environment follows pgapp-dotenv"
    );
    let dep = serde_json::to_value(deployments.get(DEPLOYMENT).await?)?;
    ensure!(
        !dep.to_string().contains(PASSWORD_3),
        "the password is in the Deployment"
    );
    Ok(())
}
