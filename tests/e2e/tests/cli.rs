//! `kubectl-kompox` error paths against the real local control plane: each failure exits
//! non-zero with a message on stderr that names the file, field, object or reason.

use anyhow::Result;
use kompox_e2e::cli::{kompox, temp_dir};
use kompox_e2e::{cluster, ensure_crds};

#[test]
fn missing_compose_file_is_named() -> Result<()> {
    let dir = temp_dir("cli-missing")?;
    let f = dir.join("nope.yml");
    let r = kompox(&dir, &["apply", "-f", &f.to_string_lossy()])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("nope.yml: compose file not found"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
    Ok(())
}

#[test]
fn invalid_compose_names_the_field_before_touching_the_cluster() -> Result<()> {
    let dir = temp_dir("cli-invalid")?;
    let f = dir.join("compose.yml");
    std::fs::write(
        &f,
        "services:\n  web:\n    image: nginx\n    ports: [\"x\"]\n",
    )?;
    // An unreachable cluster: the compose error must come first.
    let r = kompox(
        &dir,
        &[
            "apply",
            "-f",
            &f.to_string_lossy(),
            "--kubeconfig",
            "/nonexistent",
        ],
    )?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("services.web.ports[0]"), "{r:?}");
    assert!(!dir.join(".kompox").exists(), "no state for an invalid app");
    Ok(())
}

#[test]
fn unknown_app_is_not_found() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ensure_crds())?;
    let dir = temp_dir("cli-unknown")?;
    let r = kompox(&dir, &["status", "no-such-app", "-n", "default"])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("KompoxApp default/no-such-app: not found"),
        "{r:?}"
    );
    let r = kompox(&dir, &["status", "no-such-app-anywhere"])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not found in any namespace"), "{r:?}");
    Ok(())
}

#[test]
fn unreachable_cluster_is_said_plainly() -> Result<()> {
    let dir = temp_dir("cli-unreachable")?;
    let kc = dir.join("kubeconfig");
    // Port 1 on loopback: nothing listens.
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
    )?;
    let r = kompox(
        &dir,
        &[
            "disk",
            "list",
            "-n",
            "default",
            "--kubeconfig",
            &kc.to_string_lossy(),
        ],
    )?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("cannot reach the cluster at https://127.0.0.1:1"),
        "{r:?}"
    );
    let r = kompox(&dir, &["status", "x", "--context", "nope"])?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("--context \"nope\": no such context"),
        "{r:?}"
    );
    Ok(())
}

#[test]
fn forbidden_shows_the_403_reason() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ensure_crds())?;
    let dir = temp_dir("cli-rbac")?;
    let user = cluster().user_kubeconfig.to_string_lossy().into_owned();
    let r = kompox(
        &dir,
        &["status", "gitea", "-n", "default", "--kubeconfig", &user],
    )?;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Forbidden, HTTP 403"), "{r:?}");
    assert!(r.stderr.contains("User \"dev\" cannot get"), "{r:?}");
    Ok(())
}

#[test]
fn install_dry_run_client_prints_everything_without_secret_values() -> Result<()> {
    let dir = temp_dir("cli-dry")?;
    let r = kompox(
        &dir,
        &[
            "install",
            "--dry-run=client",
            "--acme-email",
            "a@example.com",
        ],
    )?
    .ok()?;
    for kind in [
        "kind: CustomResourceDefinition",
        "kind: APIService",
        "kind: MutatingWebhookConfiguration",
        "kind: NetworkPolicy",
        "kind: IngressClass",
        "kind: Deployment",
        "certificatesresolvers.production.acme.email=a@example.com",
        "image: ghcr.io/kompox/kompox:dev",
    ] {
        assert!(r.stdout.contains(kind), "missing {kind}");
    }
    assert!(!r.stdout.contains("PRIVATE KEY"), "a key was printed");
    assert!(
        r.stdout.contains("ca.key: <redacted>"),
        "the CA key is not redacted"
    );
    Ok(())
}
