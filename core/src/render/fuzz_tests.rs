//! Never-panic tests: the samples mutated byte-wise, line-wise and structurally, plus
//! generated compose files, rendered under a seeded PRNG (reproducible). A failure prints
//! the seed and the input.
//!
//! Then property tests (proptest, fixed seed in CI, shrinking to a minimal failing input) over
//! generated projects — names, binds, `.env` contents — and the `.env` parser and the
//! compose → Kubernetes name mapping on their own; see `mod props`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;
use crate::test_rng::Rng;

const SAMPLES: [(&str, &str, &str); 5] = [
    (
        "gitea",
        include_str!("../../../samples/gitea/compose.yml"),
        include_str!("../../../samples/gitea/app.yml"),
    ),
    (
        "wordpress",
        include_str!("../../../samples/wordpress/compose.yml"),
        include_str!("../../../samples/wordpress/app.yml"),
    ),
    (
        "nextcloud",
        include_str!("../../../samples/nextcloud/compose.yml"),
        include_str!("../../../samples/nextcloud/app.yml"),
    ),
    (
        "vaultwarden",
        include_str!("../../../samples/vaultwarden/compose.yml"),
        include_str!("../../../samples/vaultwarden/app.yml"),
    ),
    (
        "miniflux",
        include_str!("../../../samples/miniflux/compose.yml"),
        include_str!("../../../samples/miniflux/app.yml"),
    ),
];

const SNIPPETS: &[&str] = &[
    "\n",
    " ",
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "$",
    "${X}",
    "${X:?boom}",
    "$$",
    "#",
    "&a",
    "*a",
    "<<: *a",
    "!!str ",
    "|",
    ">",
    "..",
    "../",
    "./",
    "/",
    "~",
    "0",
    "-1",
    "65536",
    "1.5",
    "true",
    "null",
    "~",
    "x",
    "é",
    "\u{0}",
    "\t",
    "depends_on: [",
    "volumes:",
    "condition: service_healthy",
    "condition: service_completed_successfully",
    "ports: ['1:1']",
    "image: x",
    "env_file: ./nope.env",
    "healthcheck: {test: [CMD, x]}",
    "build: .",
    "configs: [c]",
    "secrets: [s]",
    "tmpfs: /t",
    "user: a:b",
    "extra_hosts: ['a:b']",
];

fn mutate_text(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !s.is_empty() => {
                let at = rng.below(s.len());
                let len = rng.below(20).min(s.len() - at);
                s.drain(at..at + len);
            }
            1 => {
                let at = rng.below(s.len() + 1);
                let snippet: Vec<char> = rng.pick(SNIPPETS).chars().collect();
                s.splice(at..at, snippet);
            }
            2 if !s.is_empty() => {
                let at = rng.below(s.len());
                s[at] = *rng.pick(&[' ', ':', '-', '\n', 'a', '"', '{', '/', '.', '$']);
            }
            3 => {
                // Duplicate or drop a whole line.
                let text: String = s.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    if rng.chance(50) {
                        let l = lines[i];
                        lines.insert(i, l);
                    } else {
                        lines.remove(i);
                    }
                }
                s = lines.join("\n").chars().collect();
            }
            4 => {
                // Swap two lines.
                let text: String = s.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                s = lines.join("\n").chars().collect();
            }
            _ => {
                // Re-indent a line.
                let text: String = s.iter().collect();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    if rng.chance(50) {
                        lines[i] = format!("  {}", lines[i]);
                    } else {
                        lines[i] = lines[i].trim_start().to_owned();
                    }
                }
                s = lines.join("\n").chars().collect();
            }
        }
    }
    s.into_iter().collect()
}

/// Structural mutations of the typed inputs.
fn mutate_inputs(
    rng: &mut Rng,
    b: &mut Bundle,
    cluster: &mut ClusterInfo,
    vars: &mut BTreeMap<String, String>,
) {
    for _ in 0..=rng.below(3) {
        match rng.below(10) {
            0 => {
                let names: Vec<String> = b.disks.keys().cloned().collect();
                if !names.is_empty() {
                    b.disks.remove(rng.pick(&names));
                }
            }
            1 => {
                for d in b.disks.values_mut() {
                    if let Some(s) = d.status.as_mut() {
                        s.pv_name = None;
                        s.zone = Some(rng.pick(&["", "1", "japaneast-9", "x"]).to_string());
                    }
                    d.spec.zone = Some(
                        rng.pick(&["", "1", "2", "27", "0", "us-east-1a"])
                            .to_string(),
                    );
                }
            }
            2 => {
                b.sources.secrets.clear();
            }
            3 => {
                b.sources.config_maps.clear();
                for s in b.sources.secrets.values_mut() {
                    s.string_data = Some(BTreeMap::from([(
                        "gitea.env".to_owned(),
                        "\u{0}\"unterminated demo-value".to_owned(),
                    )]));
                }
            }
            4 => {
                *cluster = ClusterInfo {
                    provider: *rng.pick(&ProviderType::ALL),
                    region: if rng.chance(50) {
                        None
                    } else {
                        Some(rng.pick(&["", "r", "us-east-1"]).to_string())
                    },
                };
            }
            5 => {
                if let Some(app) = b.apps.first_mut() {
                    app.spec.volumes.reverse();
                    if rng.chance(50) {
                        app.spec.volumes.clear();
                    }
                }
            }
            6 => {
                if let Some(i) = b.apps.first_mut().and_then(|a| a.spec.ingress.as_mut()) {
                    for r in &mut i.rules {
                        r.port = *rng.pick(&[0, 1, 22, 80, 3000, 8080, 65535, 70000, -1]);
                        r.name = rng
                            .pick(&["", "a", "x-y", "Bad_Name", "toolongportname-xyz"])
                            .to_string();
                    }
                }
            }
            7 => {
                if let Some(app) = b.apps.first_mut() {
                    for m in app.spec.files.iter_mut().flat_map(|f| f.mounts.iter_mut()) {
                        m.path = rng
                            .pick(&[
                                "",
                                "/",
                                "relative",
                                "/kompox/project/../x",
                                "/a//b",
                                "/kompox/project/gitea.env",
                            ])
                            .to_string();
                        m.mode = Some(*rng.pick(&[-1, 0, 420, 511, 4096]));
                    }
                }
            }
            8 => {
                vars.insert(
                    "X".to_owned(),
                    rng.pick(&["", "$(x)", "a:b", "\n"]).to_string(),
                );
            }
            _ => {
                if let Some(app) = b.apps.first_mut() {
                    app.metadata.name = Some(
                        rng.pick(&["", "a", "A", &"x".repeat(300), "a.b", "-a"])
                            .to_string(),
                    );
                    app.metadata.namespace = None;
                }
            }
        }
    }
}

fn run(
    compose: &str,
    b: &Bundle,
    cluster: &ClusterInfo,
    vars: &BTreeMap<String, String>,
) -> Option<Result<Rendered, RenderError>> {
    let app = b.apps.first()?;
    Some(render(&RenderInput {
        app,
        compose,
        disks: &b.disks,
        sources: &b.sources,
        cluster,
        interpolation: vars,
        key: &super::tests::test_key(),
    }))
}

fn check(seed: u64, what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("render panicked (seed {seed}) on {what}");
    }
}

fn base_cluster() -> ClusterInfo {
    ClusterInfo {
        provider: ProviderType::Aks,
        region: Some("japaneast".to_owned()),
    }
}

#[test]
fn mutated_compose_files_never_panic() {
    for seed in 1..=1500u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (name, compose, app) = *rng.pick(&SAMPLES);
        let Ok(mut b) = Bundle::parse(app) else {
            panic!("{name}: sample app.yml")
        };
        b.assume_fresh_disks();
        let text = mutate_text(&mut rng, compose);
        check(seed, &format!("{name} compose:\n{text}"), || {
            if let Some(Ok(r)) = run(&text, &b, &base_cluster(), &BTreeMap::new()) {
                assert!(!r.objects.is_empty());
            }
        });
    }
}

#[test]
fn mutated_app_files_never_panic() {
    for seed in 1..=800u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let (name, compose, app) = *rng.pick(&SAMPLES);
        let text = mutate_text(&mut rng, app);
        check(seed, &format!("{name} app.yml:\n{text}"), || {
            let Ok(mut b) = Bundle::parse(&text) else {
                return;
            };
            b.assume_fresh_disks();
            let _ = run(compose, &b, &base_cluster(), &BTreeMap::new());
        });
    }
}

#[test]
fn mutated_inputs_never_panic_nor_leak_secrets() {
    for seed in 1..=800u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F) | 1);
        let (name, compose, app) = *rng.pick(&SAMPLES);
        let Ok(mut b) = Bundle::parse(app) else {
            panic!("{name}: sample app.yml")
        };
        b.assume_fresh_disks();
        let mut cluster = base_cluster();
        let mut vars = BTreeMap::new();
        mutate_inputs(&mut rng, &mut b, &mut cluster, &mut vars);
        check(seed, &format!("{name} with mutated inputs"), || {
            let messages = match run(compose, &b, &cluster, &vars) {
                Some(Ok(r)) => r
                    .warnings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                Some(Err(e)) => e.errors.iter().map(ToString::to_string).collect(),
                None => Vec::new(),
            };
            for m in messages {
                assert!(!m.contains("demo-"), "a Secret value in {m:?}");
            }
        });
    }
}

/// Random compose files built from the keys the renderer maps.
fn generated_compose(rng: &mut Rng) -> String {
    let n = 1 + rng.below(6);
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let mut out = String::from("services:\n");
    for name in &names {
        out.push_str(&format!("  {name}:\n"));
        if rng.chance(90) {
            out.push_str("    image: img\n");
        } else {
            out.push_str("    build: .\n");
        }
        if rng.chance(50) {
            let dep = rng.pick(&names);
            let cond = rng.pick(&[
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ]);
            out.push_str(&format!(
                "    depends_on: {{{dep}: {{condition: {cond}}}}}\n"
            ));
        }
        if rng.chance(50) {
            out.push_str("    healthcheck: {test: [CMD, x], interval: 1s, start_period: 2s}\n");
        }
        if rng.chance(60) {
            let v = rng.pick(&[
                "./d:/d",
                ".:/p",
                "data:/data",
                "data/sub:/s",
                "/abs:/a",
                "/anon",
                "x:/x",
            ]);
            out.push_str(&format!("    volumes: ['{v}']\n"));
        }
        if rng.chance(50) {
            let p = rng.pick(&[
                "80",
                "8080:80",
                "53:53/udp",
                "3000-3002:3000-3002",
                "1:65535",
            ]);
            out.push_str(&format!("    ports: ['{p}']\n"));
        }
        if rng.chance(20) {
            out.push_str("    env_file: [./gitea.env, {path: x.env, required: false}]\n");
        }
        if rng.chance(20) {
            out.push_str("    configs: [c]\n    secrets: [s]\n");
        }
        if rng.chance(20) {
            out.push_str("    user: '1000:1000'\n    shm_size: 1g\n    tmpfs: [/t]\n");
        }
    }
    out.push_str("volumes:\n  data: {}\n  x: {}\nconfigs:\n  c: {content: x}\nsecrets:\n  s: {file: ./s.txt}\n");
    out
}

#[test]
fn generated_compose_files_never_panic() {
    let Ok(mut b) = Bundle::parse(SAMPLES[0].2) else {
        panic!("gitea app.yml")
    };
    b.assume_fresh_disks();
    for seed in 1..=1500u64 {
        let mut rng = Rng(seed.wrapping_mul(0x94D0_49BB_1331_11EB) | 1);
        let text = generated_compose(&mut rng);
        check(seed, &format!("generated compose:\n{text}"), || {
            if let Some(Ok(r)) = run(&text, &b, &base_cluster(), &BTreeMap::new()) {
                // Whatever renders is well-formed: named, labelled, in order.
                let mut last = 0;
                for o in &r.objects {
                    let name = o["metadata"]["name"].as_str().unwrap_or_default();
                    assert!(crate::naming::is_dns1123_subdomain(name), "{name}");
                    let rank = KIND_ORDER
                        .iter()
                        .position(|k| o["kind"] == *k)
                        .unwrap_or(99);
                    assert!(rank >= last && rank < KIND_ORDER.len());
                    last = rank;
                }
            }
        });
    }
}

/// Property tests (proptest, with shrinking) over generated projects: compose names as
/// compose allows them and beyond (`_`, `.`, capitals, unicode, too long), binds of every kind
/// (relative directories and single files, absolute, `~/`, sockets, devices, kernel
/// interfaces, named volumes, long syntax), `.env` contents (quoting, `export`, comments,
/// unterminated quotes, CRLF, BOM, NUL) feeding the interpolation of image, command, ports,
/// environment and bind sources.
///
/// Properties: render never panics; what renders is well-formed (DNS-1123 object names,
/// unique container names and mount paths per container) and deterministic; an `.env` parse
/// error never quotes a value (every generated value carries [`props::MARK`]); with the
/// variables held in a Secret (`spec.compose.envFrom`), no warning or error quotes one and
/// no container `env` entry holds one in plain text.
///
/// The CI run is [`props::CI_CASES`] cases from a fixed seed (reproducible);
/// `generated_projects_soak` (ignored) runs `KOMPOX_SOAK_CASES` (default 100,000) from a
/// random seed: see docs/performance.md.
mod props {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::{SAMPLES, base_cluster, run};
    use crate::api::{AppVolume, ComposeEnvFrom, LocalRef, OptionalRef};
    use crate::render::Bundle;

    /// Carried by every generated variable value; must never appear in a dotenv error.
    pub(super) const MARK: &str = "sekret";
    pub(super) const CI_CASES: u32 = 400;

    /// A generated project: compose text, `.env` text, and the named volumes the app binds.
    #[derive(Debug, Clone)]
    pub(super) struct Project {
        compose: String,
        dotenv: String,
        volumes: Vec<String>,
    }

    pub(super) fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z][a-z0-9]{0,8}",
            3 => "[a-z][a-z0-9]{0,4}[_.][a-z0-9]{1,5}",
            2 => "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,12}",
            1 => prop::sample::select(vec![
                "db_data", "my.app", "Web", "WEB", "web", "a_b", "a-b", "a.b", "服务", "dé_1",
                "_x", "-x", "x.", ".x", "x-", "1abc", "k4x-init", "app", "default",
                "volume-subpaths",
            ])
            .prop_map(str::to_owned),
            1 => Just("n".repeat(70)),
            1 => "[a-z_.]{60,70}",
        ]
    }

    fn variable() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["V1", "V2", "V3", "TAG", "PORT", "DIR"]).prop_map(str::to_owned)
    }

    /// A path segment, sometimes interpolated.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-z0-9_.-]{1,8}",
            1 => Just("..".to_owned()),
            1 => Just("é x".to_owned()),
            1 => variable().prop_map(|v| format!("${{{v}}}")),
        ]
    }

    fn rel_path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..4).prop_map(|s| s.join("/"))
    }

    /// The one call into the `.env` parser (the variables a file defines).
    pub(super) fn dotenv(
        text: &str,
    ) -> Result<BTreeMap<String, String>, crate::dotenv::DotenvError> {
        crate::dotenv::parse_dotenv(text, &|_| None)
    }

    /// Named volumes every generated project declares (and the app binds, each to a disk).
    const DECLARED: [&str; 3] = ["db_data", "my.vol", "Data"];

    fn source() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => rel_path().prop_map(|p| format!("./{p}")),
            2 => prop::sample::select(vec![
                "./nginx.conf", "./gitea.env", ".", "./", "..", "../up", "./data/../..", "./a//b",
            ])
            .prop_map(str::to_owned),
            3 => rel_path().prop_map(|p| format!("/{p}")),
            2 => rel_path().prop_map(|p| format!("~/{p}")),
            2 => prop::sample::select(vec![
                "/var/run/docker.sock", "/run/docker.sock", "/run/user/1000", "/dev/sda",
                "/dev/shm", "/dev/null", "/proc", "/proc/self", "/sys/fs/cgroup", "/sys",
                "/etc/localtime", "/etc/timezone", "/", "~", "~/", "/home/é x", "//",
                "/var/lib/docker/volumes/x/_data", "C:\\data", "\\\\srv\\share",
            ])
            .prop_map(str::to_owned),
            4 => prop::sample::select(DECLARED.to_vec()).prop_map(str::to_owned),
            1 => name(),
        ]
    }

    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => rel_path().prop_map(|p| format!("/{p}")),
            1 => prop::sample::select(vec![
                "/", "relative", "/data", "/etc/nginx/nginx.conf", "/var/run/docker.sock",
                "/kompox/project", "/dev/shm", "/a/../b",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn volume_entry() -> impl Strategy<Value = String> {
        let mode = prop_oneof![
            8 => prop::sample::select(vec!["", ":ro", ":rw", ":ro,z", ":Z", ":cached", ":nocopy"]),
            1 => prop::sample::select(vec![":bogus", ":ro:ro", ":"]),
        ];
        let kind = prop_oneof![
            8 => prop::sample::select(vec!["bind", "volume"]),
            1 => prop::sample::select(vec!["tmpfs", "npipe", "image", "cluster"]),
        ];
        prop_oneof![
            8 => (source(), target(), mode).prop_map(|(s, t, m)| {
                serde_json::Value::String(format!("{s}:{t}{m}")).to_string()
            }),
            1 => target().prop_map(|t| serde_json::Value::String(t).to_string()),
            2 => (kind, source(), target(), any::<bool>(), any::<bool>()).prop_map(
                |(ty, s, t, ro, create)| {
                    serde_json::json!({
                        "type": ty, "source": s, "target": t, "read_only": ro,
                        "bind": {"create_host_path": create},
                    })
                    .to_string()
                }
            ),
        ]
    }

    /// A value in the `.env`: always carrying [`MARK`].
    fn value() -> impl Strategy<Value = String> {
        "[a-z0-9 #$'\"\\\\{}:=/é-]{0,10}".prop_map(|v| format!("{MARK}{v}"))
    }

    pub(super) fn dotenv_line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (variable(), value()).prop_map(|(k, v)| format!("{k}={v}")),
            2 => (variable(), value()).prop_map(|(k, v)| {
                format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
            }),
            2 => (variable(), value()).prop_map(|(k, v)| format!("{k}='{}'", v.replace('\'', ""))),
            1 => (variable(), value()).prop_map(|(k, v)| format!("export {k}={v}")),
            1 => (variable(), value()).prop_map(|(k, v)| format!("{k} = {v} # comment")),
            1 => (variable(), value()).prop_map(|(k, v)| format!("{k}=\"{v}\nsecond line {MARK}\"")),
            1 => variable().prop_map(|k| format!("{k}=\"{MARK}-unterminated")),
            1 => variable().prop_map(|k| format!("{k}='{MARK}-unterminated")),
            1 => variable().prop_map(|k| format!("{k}=${{V1:-{MARK}-d}}")),
            1 => variable(),
            1 => prop::sample::select(vec![
                "", "# comment", "   ", "=novar", "1BAD=x", "\u{feff}V1=bom", "V2=x\r", "V3=\u{0}",
                "export", "V1", "V2:colon",
            ])
            .prop_map(str::to_owned),
        ]
    }

    /// Mostly what real files hold, sometimes something hostile.
    fn pick(common: Vec<&'static str>, odd: Vec<&'static str>) -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::sample::select(common).prop_map(str::to_owned),
            1 => prop::sample::select(odd).prop_map(str::to_owned),
        ]
    }

    fn service() -> impl Strategy<Value = String> {
        (
            pick(
                vec![
                    "nginx:1.27",
                    "nginx:${TAG:-1.27}",
                    "registry.example.com:5000/a/b:${TAG:-1}",
                ],
                vec!["${V1}", "", "img@sha256:0123", "nginx:${TAG}"],
            ),
            prop::collection::vec(volume_entry(), 0..4),
            prop::option::of(pick(
                vec![
                    "[\"${PORT:-8080}:8080\"]",
                    "[\"80\"]",
                    "[\"3000-3001:3000-3001/udp\"]",
                ],
                vec!["[\"${V2}:80\"]", "[\"${V3}\"]"],
            )),
            prop::option::of(pick(
                vec![
                    "{A: \"${V1}\", B: \"$V2-x\", C: \"${V3:-c}\"}",
                    "[\"A=${V1}\", V2, \"N=${MISSING}\"]",
                ],
                vec!["{C: \"${V3:?need}\"}"],
            )),
            prop::option::of(pick(
                vec!["\"echo ${V1} && ${V2}\"", "[\"sh\", \"-c\", \"${V3}\"]"],
                vec!["\"'${V1}\"", "\"echo (${V2})\""],
            )),
            prop::option::of(pick(vec!["./gitea.env"], vec!["./${V1}.env"])),
            prop::option::of(pick(vec!["\"1000:1000\"", "root"], vec!["\"${V1}:${V2}\""])),
        )
            .prop_map(|(image, volumes, ports, env, command, env_file, user)| {
                let mut s = format!("    image: {}\n", serde_json::Value::String(image));
                if !volumes.is_empty() {
                    s.push_str(&format!("    volumes: [{}]\n", volumes.join(", ")));
                }
                for (key, v) in [
                    ("ports", ports),
                    ("environment", env),
                    ("command", command),
                    ("env_file", env_file),
                    ("user", user),
                ] {
                    if let Some(v) = v {
                        s.push_str(&format!("    {key}: {v}\n"));
                    }
                }
                s
            })
    }

    pub(super) fn project() -> impl Strategy<Value = Project> {
        (
            prop::collection::btree_map(name(), service(), 1..4),
            prop::collection::btree_set(name(), 0..3),
            prop::collection::vec(dotenv_line(), 0..8),
            any::<bool>(),
        )
            .prop_map(|(services, extra, lines, crlf)| {
                let mut compose = String::from("services:\n");
                for (n, body) in &services {
                    compose.push_str(&format!(
                        "  {}:\n{body}",
                        serde_json::Value::String(n.clone())
                    ));
                }
                let mut volumes: BTreeSet<String> =
                    DECLARED.iter().map(|v| (*v).to_owned()).collect();
                volumes.extend(extra);
                compose.push_str("volumes:\n");
                for v in &volumes {
                    compose.push_str(&format!(
                        "  {}: {{}}\n",
                        serde_json::Value::String(v.clone())
                    ));
                }
                let nl = if crlf { "\r\n" } else { "\n" };
                Project {
                    compose,
                    dotenv: lines.join(nl),
                    volumes: volumes.into_iter().collect(),
                }
            })
    }

    /// Renders `p` twice with the gitea sample's app (plus one `spec.volumes` entry per named
    /// volume, and no ingress) and checks the properties. Counts the projects that rendered in `rendered`.
    pub(super) fn check(p: &Project, rendered: &AtomicUsize) -> Result<(), TestCaseError> {
        let mut vars = BTreeMap::new();
        match dotenv(&p.dotenv) {
            Ok(pairs) => vars.extend(pairs),
            Err(e) => prop_assert!(
                !e.to_string().contains(MARK),
                "dotenv error quotes a value: {e}"
            ),
        }
        let Ok(mut b) = Bundle::parse(SAMPLES[0].2) else {
            return Err(TestCaseError::fail("gitea app.yml"));
        };
        let Some(default_disk) = b.disks.get("default").cloned() else {
            return Err(TestCaseError::fail("gitea app.yml: no default disk"));
        };
        if let Some(app) = b.apps.first_mut() {
            // The sample's ingress rule needs a service publishing 3000; generated ones rarely do.
            app.spec.ingress = None;
            for (i, v) in p.volumes.iter().enumerate() {
                let disk = format!("d{i}");
                let mut d = default_disk.clone();
                d.metadata.name = Some(disk.clone());
                b.disks.insert(disk.clone(), d);
                app.spec.volumes.push(AppVolume {
                    name: v.clone(),
                    disk_ref: LocalRef { name: disk },
                });
            }
        }
        b.assume_fresh_disks();
        let first = run(&p.compose, &b, &base_cluster(), &vars);
        let second = run(&p.compose, &b, &base_cluster(), &vars);
        prop_assert!(first == second, "render is not deterministic");
        match &first {
            Some(Ok(r)) => {
                rendered.fetch_add(1, Ordering::Relaxed);
                let mut names = BTreeSet::new();
                for o in &r.objects {
                    let kind = o["kind"].as_str().unwrap_or_default();
                    let name = o["metadata"]["name"].as_str().unwrap_or_default();
                    prop_assert!(
                        crate::naming::is_dns1123_subdomain(name),
                        "{kind} name {name:?} is not DNS-1123"
                    );
                    prop_assert!(
                        names.insert((kind.to_owned(), name.to_owned())),
                        "two {kind}s {name:?}"
                    );
                    let pod = &o["spec"]["template"]["spec"];
                    let mut containers = BTreeSet::new();
                    for c in ["initContainers", "containers"]
                        .iter()
                        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
                    {
                        let cname = c["name"].as_str().unwrap_or_default();
                        prop_assert!(
                            crate::naming::is_dns1123_label(cname),
                            "container {cname:?}"
                        );
                        prop_assert!(
                            containers.insert(cname.to_owned()),
                            "two containers {cname:?}"
                        );
                        let mut paths = BTreeSet::new();
                        for m in c["volumeMounts"].as_array().into_iter().flatten() {
                            let path = m["mountPath"].as_str().unwrap_or_default();
                            prop_assert!(path.starts_with('/'), "mountPath {path:?}");
                            prop_assert!(
                                paths.insert(path.to_owned()),
                                "{cname}: two mounts at {path:?}"
                            );
                        }
                    }
                }
            }
            Some(Err(e)) => {
                prop_assert!(!e.errors.is_empty(), "an error without diagnostics");
            }
            None => {}
        }
        secret_held(p, b, &vars)
    }

    /// The same project with its `.env` variables held in a Secret (`spec.compose.envFrom`, as
    /// `apply` uploads them): no warning or error quotes a value, and no container `env` entry
    /// holds one in plain text (those read the derived Secret).
    fn secret_held(
        p: &Project,
        mut b: Bundle,
        vars: &BTreeMap<String, String>,
    ) -> Result<(), TestCaseError> {
        b.sources.secrets.insert(
            "dotenv".to_owned(),
            Secret {
                metadata: ObjectMeta {
                    name: Some("dotenv".to_owned()),
                    ..ObjectMeta::default()
                },
                string_data: Some(vars.clone()),
                ..Secret::default()
            },
        );
        if let Some(app) = b.apps.first_mut() {
            app.spec.compose.env_from.push(ComposeEnvFrom {
                secret_ref: Some(OptionalRef {
                    name: "dotenv".to_owned(),
                    optional: None,
                }),
                ..ComposeEnvFrom::default()
            });
        }
        let messages: Vec<String> = match run(&p.compose, &b, &base_cluster(), &BTreeMap::new()) {
            Some(Ok(r)) => {
                for o in r.objects.iter().filter(|o| o["kind"] != "Secret") {
                    let pod = &o["spec"]["template"]["spec"];
                    for c in ["initContainers", "containers"]
                        .iter()
                        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
                    {
                        for e in c["env"].as_array().into_iter().flatten() {
                            let v = e["value"].as_str().unwrap_or_default();
                            prop_assert!(
                                !v.contains(MARK),
                                "a secret-held value in plain text: {e}"
                            );
                        }
                    }
                }
                r.warnings.iter().map(ToString::to_string).collect()
            }
            Some(Err(e)) => e.errors.iter().map(ToString::to_string).collect(),
            None => Vec::new(),
        };
        for m in messages {
            prop_assert!(
                !m.contains(MARK),
                "a message quotes a secret-held value: {m}"
            );
        }
        Ok(())
    }

    pub(super) fn runner(cases: u32, deterministic: bool) -> TestRunner {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        if deterministic {
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
        } else {
            TestRunner::new(config)
        }
    }
}

#[test]
fn generated_projects_never_panic_and_render_well_formed() {
    let rendered = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = props::runner(props::CI_CASES, true);
    if let Err(e) = runner.run(&props::project(), |p| props::check(&p, &rendered)) {
        panic!("{e}");
    }
    // Enough projects must render for the well-formedness checks to mean something.
    let rendered = rendered.into_inner();
    assert!(
        rendered * 10 > props::CI_CASES as usize,
        "only {rendered} of {} rendered",
        props::CI_CASES
    );
}

/// `.env` texts: well-formed lines, or fragments of them mixed with any characters, line
/// ends, quotes, NUL, `#` and `=`.
fn dotenv_texts() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        3 => proptest::collection::vec(props::dotenv_line(), 0..12).prop_map(|l| l.join("\n")),
        1 => proptest::collection::vec(
            prop_oneof![
                3 => "\\PC{0,12}",
                1 => props::dotenv_line(),
                1 => proptest::sample::select(vec!["\n", "\r\n", "\r", "\u{0}", "\"", "'", "\\", "#", "="])
                    .prop_map(str::to_owned),
            ],
            0..24,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// Parses `cases` texts of [`dotenv_texts`]: no panic, and no error quotes a value.
fn dotenv_never_panics_nor_quotes(cases: u32, deterministic: bool) {
    let mut runner = props::runner(cases, deterministic);
    let result = runner.run(&dotenv_texts(), |text| {
        if let Err(e) = props::dotenv(&text) {
            let m = e.to_string();
            proptest::prop_assert!(
                !m.contains(props::MARK),
                "a dotenv error quotes a value: {m}"
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn dotenv_contents_parse_without_panic_nor_quoting_values() {
    dotenv_never_panics_nor_quotes(1_000, true);
}

/// The dotenv soak run: `KOMPOX_SOAK_CASES` (default 100,000) texts from a random seed.
/// `cargo test -p kompox-core --lib dotenv_soak -- --ignored --nocapture`
#[test]
#[ignore = "soak: run by hand or with `make soak` (docs/performance.md)"]
fn dotenv_soak() {
    let cases = std::env::var("KOMPOX_SOAK_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let start = std::time::Instant::now();
    dotenv_never_panics_nor_quotes(cases, false);
    eprintln!("{cases} generated .env texts in {:.1?}", start.elapsed());
}

#[test]
fn simple_dotenv_lines_read_back_exactly() {
    use proptest::prelude::*;
    let vars =
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "[a-zA-Z0-9_./:@-]{0,12}", 0..8);
    let mut runner = props::runner(1_000, true);
    let result = runner.run(&(vars, any::<bool>()), |(vars, export)| {
        let text: String = vars
            .iter()
            .map(|(k, v)| format!("{}{k}={v}\n", if export { "export " } else { "" }))
            .collect();
        prop_assert_eq!(props::dotenv(&text).ok(), Some(vars));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn compose_names_map_to_distinct_labels_whatever_the_order() {
    use proptest::prelude::*;
    let sets = (proptest::collection::vec(props::name(), 0..12), 8usize..70);
    let mut runner = props::runner(1_000, true);
    let result = runner.run(&sets, |(names, max)| {
        let got = crate::naming::k8s_names(names.iter().map(String::as_str), max);
        let reversed = crate::naming::k8s_names(names.iter().rev().map(String::as_str), max);
        prop_assert_eq!(&got, &reversed, "depends on the order");
        let mut seen = std::collections::BTreeSet::new();
        for n in &names {
            let Some(k) = got.get(n) else {
                return Err(proptest::test_runner::TestCaseError::fail(format!(
                    "no name for {n:?}"
                )));
            };
            prop_assert!(crate::naming::is_dns1123_label(k), "{n:?} → {k:?}");
            prop_assert!(
                k.len() <= max.clamp(crate::naming::SHORT_HASH_LEN + 2, 63),
                "{n:?} → {k:?}"
            );
            if seen.insert(n) {
                prop_assert!(got.values().filter(|v| *v == k).count() == 1, "{k:?} twice");
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The soak run: `KOMPOX_SOAK_CASES` (default 100,000) projects from a random seed.
/// `cargo test -p kompox-core --release --lib generated_projects_soak -- --ignored --nocapture`
#[test]
#[ignore = "soak: minutes; run by hand (docs/performance.md)"]
fn generated_projects_soak() {
    let cases = std::env::var("KOMPOX_SOAK_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let start = std::time::Instant::now();
    let rendered = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = props::runner(cases, false);
    if let Err(e) = runner.run(&props::project(), |p| props::check(&p, &rendered)) {
        panic!("{e}");
    }
    eprintln!(
        "{cases} generated projects ({} rendered) in {:.1?}",
        rendered.into_inner(),
        start.elapsed()
    );
}
