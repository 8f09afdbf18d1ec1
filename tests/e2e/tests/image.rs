//! Kompox's image: the Containerfile is the recipe (for a machine with a registry), and
//! hack/images.sh builds the same image here from static musl binaries. This checks that both
//! describe the same binaries, user and entrypoint: the Containerfile's build stage builds the
//! binaries its final stage copies, and the built archive (when there is one: always with the real
//! node) holds exactly those binaries where the Containerfile puts them, with its USER and
//! ENTRYPOINT.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use kompox_e2e::repo_root;
use serde_json::Value;

/// What `hack/images.sh containerfile-spec` reads from the Containerfile.
#[derive(Debug, Default)]
struct Spec {
    bins: Vec<String>,
    dir: String,
    user: String,
    entrypoint: Value,
}

fn images_sh(args: &[&str]) -> Result<String> {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/images.sh"))
        .args(args)
        .output()
        .context("running hack/images.sh")?;
    ensure!(
        out.status.success(),
        "hack/images.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn spec() -> Result<Spec> {
    let mut s = Spec::default();
    for line in images_sh(&["containerfile-spec"])?.lines() {
        match line.split_once(' ') {
            Some(("bin", b)) => s.bins.push(b.to_owned()),
            Some(("dir", d)) => s.dir = d.to_owned(),
            Some(("user", u)) => s.user = u.to_owned(),
            Some(("entrypoint", e)) => {
                s.entrypoint =
                    serde_json::from_str(e).with_context(|| format!("ENTRYPOINT {e}"))?;
            }
            _ => bail!("unexpected line {line:?}"),
        }
    }
    Ok(s)
}

#[test]
fn the_containerfile_builds_what_it_copies_as_nonroot() -> Result<()> {
    let s = spec()?;
    let cf = std::fs::read_to_string(repo_root().join("Containerfile"))?;
    let build = cf
        .split_once("cargo build")
        .and_then(|(_, rest)| rest.split("&&").next())
        .context("the Containerfile runs no cargo build")?;
    let built: BTreeSet<&str> = build
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1])
        .collect();
    let copied: BTreeSet<&str> = s.bins.iter().map(String::as_str).collect();
    ensure!(
        built == copied,
        "cargo build -p {built:?} but copies {copied:?}"
    );
    ensure!(
        copied == BTreeSet::from(["kompox-apiserver", "kompox-controller", "kompox-webhook"]),
        "the image's binaries: {copied:?}"
    );
    ensure!(s.user == "65532:65532", "USER {}", s.user);
    ensure!(s.dir == "/usr/local/bin/", "COPY destination {}", s.dir);
    ensure!(
        s.entrypoint == serde_json::json!([]),
        "ENTRYPOINT {}",
        s.entrypoint
    );
    Ok(())
}

/// `tar -xOf archive member`.
fn member(archive: &str, name: &str) -> Result<Vec<u8>> {
    let out = Command::new("tar").args(["-xOf", archive, name]).output()?;
    ensure!(out.status.success(), "{archive}: no {name}");
    Ok(out.stdout)
}

#[test]
fn the_built_image_matches_the_containerfile() -> Result<()> {
    let list = images_sh(&["list"])?;
    let archive = list
        .lines()
        .find_map(|l| l.strip_prefix("ghcr.io/kompox/kompox:dev "))
        .context("hack/images.sh list names no Kompox image")?
        .to_owned();
    if !std::path::Path::new(&archive).exists() {
        eprintln!(
            "the_built_image_matches_the_containerfile: skipped, {archive} not built (hack/images.sh build; the real node builds it)"
        );
        return Ok(());
    }
    let s = spec()?;
    let index: Value = serde_json::from_slice(&member(&archive, "index.json")?)?;
    let digest = |v: &Value| -> Result<String> {
        v["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .map(|d| format!("blobs/sha256/{d}"))
            .context("no sha256 digest")
    };
    let m = &index["manifests"][0];
    ensure!(
        m["annotations"]["io.containerd.image.name"] == "ghcr.io/kompox/kompox:dev",
        "index: {index}"
    );
    let manifest: Value = serde_json::from_slice(&member(&archive, &digest(m)?)?)?;
    let config: Value = serde_json::from_slice(&member(&archive, &digest(&manifest["config"])?)?)?;
    ensure!(
        config["config"]["User"] == s.user.as_str(),
        "User {}",
        config["config"]["User"]
    );
    let entrypoint = config["config"]
        .get("Entrypoint")
        .cloned()
        .unwrap_or(Value::Null);
    ensure!(entrypoint == s.entrypoint, "Entrypoint {entrypoint}");

    let layer = member(&archive, &digest(&manifest["layers"][0])?)?;
    let mut tar = Command::new("tar")
        .args(["-tvz"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = tar.stdin.take().context("stdin")?;
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &layer));
    let out = tar.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let listing = String::from_utf8_lossy(&out.stdout);
    let dir = s.dir.trim_start_matches('/');
    let in_dir: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|p| p.strip_prefix(dir))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let want: BTreeSet<String> = s.bins.iter().cloned().collect();
    ensure!(
        in_dir == want,
        "{dir} holds {in_dir:?}, the Containerfile copies {want:?}"
    );
    // Static binaries: nothing for a dynamic loader to find in this image.
    ensure!(
        !listing.contains("ld-linux") && !listing.contains("libc.so"),
        "the image has a libc: {listing}"
    );
    Ok(())
}
