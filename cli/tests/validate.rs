//! `kubectl-kompox validate`, run as a process: findings by level, exit status 1 on an error,
//! nothing contacted (no kubeconfig needed), no value printed.

use std::path::PathBuf;
use std::process::Command;

use rstest::rstest;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kompox-validate-{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// (exit code, stdout, stderr) of `validate -f <compose> <args>` with `compose` written to a
/// fresh directory (plus `.env` when given).
fn validate(name: &str, compose: &str, env: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let d = dir(name);
    let f = d.join("compose.yml");
    let _ = std::fs::write(&f, compose);
    if let Some(env) = env {
        let _ = std::fs::write(d.join(".env"), env);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-kompox"))
        .arg("validate")
        .arg("-f")
        .arg(&f)
        .args(args)
        .env("KUBECONFIG", "/nonexistent")
        .output();
    let _ = std::fs::remove_dir_all(&d);
    match out {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => panic!("running kubectl-kompox: {e}"),
    }
}

#[rstest]
#[case::valid(
    "services:\n  web:\n    image: nginx\n",
    None,
    0,
    &["INFO  inferred: app name", ": 0 errors, 0 warnings"]
)]
#[case::a_bad_port_is_an_error(
    "services:\n  web:\n    image: nginx\n    ports: [\"x\"]\n",
    None,
    1,
    &["ERROR services.web.ports[0]", ": 1 errors"]
)]
#[case::an_unpublished_port_is_a_warning(
    "services:\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n",
    None,
    0,
    &["WARN  services.web.ports: published port 8080 is not exposed", ": 0 errors, 1 warnings"]
)]
#[case::variables_by_name_only(
    "services:\n  web:\n    image: nginx\n    environment:\n      PASSWORD: ${DB_PASSWORD}\n",
    Some("DB_PASSWORD=hunter2-secret\n"),
    0,
    &["INFO  variables: DB_PASSWORD"]
)]
#[case::a_literal_password_is_a_warning_by_path(
    "services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: hunter2-literal\n",
    None,
    0,
    &["WARN  services.db.environment.POSTGRES_PASSWORD: a literal credential", ": 0 errors, 1 warnings"]
)]
fn findings(
    #[case] compose: &str,
    #[case] env: Option<&str>,
    #[case] code: i32,
    #[case] lines: &[&str],
) {
    // One directory per case (cases run in parallel).
    let name = format!("{code}-{}-{}", lines.len(), compose.len());
    let (got, out, err) = validate(&name, compose, env, &[]);
    assert_eq!(got, code, "stdout:\n{out}\nstderr:\n{err}");
    for l in lines {
        assert!(out.contains(l), "no {l:?} in:\n{out}");
    }
    assert!(!out.contains("hunter2"), "a value was printed:\n{out}");
    assert!(err.is_empty(), "stderr: {err}");
}

#[test]
fn json_findings_parse() {
    let (code, out, _) = validate(
        "json",
        "services:\n  web:\n    image: nginx\n    ports: [\"x\"]\n",
        None,
        &["-o", "json"],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let levels: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["level"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        levels.contains(&"ERROR") && levels.contains(&"INFO"),
        "{out}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-kompox"))
        .args(["validate", "-f", "/nonexistent/compose.yml"])
        .output();
    let Ok(out) = out else {
        panic!("running kubectl-kompox");
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/compose.yml"));
}
