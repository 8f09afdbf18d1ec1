//! Table tests for the compose parser. Fuzz-style tests live in `fuzz_tests.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::units::{parse_bytes, parse_duration, parse_millicpus};
use super::*;

// ---------------------------------------------------------------- helpers

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse_with(yaml: &str, env: &BTreeMap<String, String>) -> Result<Parsed, Error> {
    parse(yaml, &|k: &str| env.get(k).cloned())
}

fn ok(yaml: &str) -> Parsed {
    match parse(yaml, &no_env) {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors:\n{e}\n--- input:\n{yaml}"),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml, &no_env) {
        Ok(p) => panic!("expected errors, parsed:\n{p:?}\n--- input:\n{yaml}"),
        Err(e) => texts(&e.errors),
    }
}

/// Each item's `Display` text.
fn texts<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

fn warnings(yaml: &str) -> Vec<String> {
    texts(&ok(yaml).warnings)
}

/// `services: {web: <body>}` with `body` given as a block (indented here), plus extra
/// top-level YAML.
fn web(body: &str, top: &str) -> String {
    let mut out = String::from("services:\n  web:\n");
    for line in body.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(top);
    out
}

fn web_ok(body: &str) -> Service {
    web_ok_top(body, "")
}

fn web_ok_top(body: &str, top: &str) -> Service {
    let parsed = ok(&web(body, top));
    parsed
        .project
        .services
        .get("web")
        .cloned()
        .expect("service web")
}

fn web_errors(body: &str) -> Vec<String> {
    errors(&web(body, ""))
}

fn web_warnings(body: &str) -> Vec<String> {
    warnings(&web(body, ""))
}

// ---------------------------------------------------------------- interpolation

#[test]
fn interpolation_in_the_file_names_the_path() {
    let yaml = web(
        "image: ${REGISTRY:?set REGISTRY}/app\nenvironment:\n  - A=${B\n  - C=${1}\n",
        "",
    );
    let got: Vec<String> = match parse(&yaml, &no_env) {
        Err(e) => texts(&e.errors),
        Ok(_) => panic!("expected errors"),
    };
    assert_eq!(
        got,
        vec![
            "services.web.image: required variable REGISTRY is missing a value: set REGISTRY",
            "services.web.environment[0]: invalid interpolation: \"${\" must be followed by NAME} or NAME and one of :- - :+ + :? ? with a closing \"}\" on the same line (write \"$$\" for a literal \"$\")",
            "services.web.environment[1]: invalid interpolation: \"${\" must be followed by NAME} or NAME and one of :- - :+ + :? ? with a closing \"}\" on the same line (write \"$$\" for a literal \"$\")",
        ]
    );
}

#[test]
fn interpolation_applies_to_values_not_keys_and_skips_extensions() {
    let env = env_map(&[("TAG", "7"), ("PORT", "8080"), ("K", "nope")]);
    let yaml = "x-ignored: ${UNTERMINATED\n\
                services:\n  web:\n    x-also: ${BAD\n    image: app:${TAG}\n    \
                ports: [\"${PORT}:80\"]\n    environment:\n      $K: v\n      \
                DOLLAR: $$HOME\n    labels:\n      ${K}: x\n";
    let parsed = parse_with(yaml, &env).expect("parses");
    let svc = parsed.project.services.get("web").expect("web");
    assert_eq!(svc.image.as_deref(), Some("app:7"));
    assert_eq!(svc.ports.first().and_then(|p| p.published), Some(8080));
    assert_eq!(
        svc.environment.get("DOLLAR").map(String::as_str),
        Some("$HOME")
    );
    // `$K` as a key is not interpolated; in environment it's an invalid name? No: compose
    // allows any name without `=`; it is kept verbatim.
    assert!(svc.environment.contains_key("$K"));
    assert!(svc.labels.contains_key("${K}"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

#[test]
fn unset_variables_warn_once_per_variable() {
    let yaml = web(
        "image: app:1${TAG}\nlabels:\n  a: ${TAG}\n  b: ${OTHER}\n",
        "",
    );
    assert_eq!(
        warnings(&yaml),
        vec![
            "services.web.image: variable \"TAG\" is not set; using an empty string",
            "services.web.labels.b: variable \"OTHER\" is not set; using an empty string",
        ]
    );
}

// ---------------------------------------------------------------- units

#[test]
fn durations() {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    let cases: &[(&str, Duration)] = &[
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("10s", s(10)),
        ("1m30s", s(90)),
        ("1m", s(60)),
        ("1h", s(3600)),
        ("1h30m", s(5400)),
        ("1h2m3s", s(3723)),
        ("500ms", ms(500)),
        ("1.5s", ms(1500)),
        ("1.5h", s(5400)),
        (".5s", ms(500)),
        ("2d", s(172_800)),
        ("1w", s(604_800)),
        ("100us", Duration::from_micros(100)),
        ("100µs", Duration::from_micros(100)),
        ("7ns", Duration::from_nanos(7)),
        ("1s500ms", ms(1500)),
        (" 10s ", s(10)),
        ("+5s", s(5)),
    ];
    for (input, want) in cases {
        assert_eq!(parse_duration(input), Ok(*want), "input {input:?}");
    }
    for bad in [
        "",
        "10",
        "s",
        "-1s",
        "1x",
        "1.2.3s",
        "1 s",
        "..s",
        "1sm",
        "99999999999999999999999999999999w",
    ] {
        assert_eq!(
            parse_duration(bad),
            Err(format!(
                "invalid duration {bad:?} (expected e.g. \"10s\", \"1m30s\", \"500ms\")"
            )),
            "input {bad:?}"
        );
    }
}

#[test]
fn byte_sizes() {
    let cases: &[(&str, u64)] = &[
        ("0", 0),
        ("1024", 1024),
        ("100b", 100),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("512M", 512 * 1024 * 1024),
        ("512m", 512 * 1024 * 1024),
        ("512MB", 512 * 1024 * 1024),
        ("512 M", 512 * 1024 * 1024),
        ("1g", 1 << 30),
        ("1.5G", 1_610_612_736),
        ("0.5k", 512),
        ("2t", 2 << 40),
        ("1p", 1 << 50),
    ];
    for (input, want) in cases {
        assert_eq!(parse_bytes(input), Ok(*want), "input {input:?}");
    }
    for bad in [
        "",
        "M",
        "-1M",
        "1x",
        "1.M",
        ".5M",
        "1..5M",
        "1i",
        "1e3",
        "99999999999999p",
    ] {
        assert_eq!(
            parse_bytes(bad),
            Err(format!(
                "invalid size {bad:?} (expected bytes or e.g. \"512M\", \"1.5g\")"
            )),
            "input {bad:?}"
        );
    }
}

#[test]
fn cpus() {
    let cases: &[(&str, u64)] = &[
        ("0.5", 500),
        ("2", 2000),
        ("1.25", 1250),
        ("0.001", 1),
        ("0.0010", 1),
        ("1.", 1000),
        ("0", 0),
    ];
    for (input, want) in cases {
        assert_eq!(parse_millicpus(input), Ok(*want), "input {input:?}");
    }
    assert_eq!(
        parse_millicpus("0.0005"),
        Err("invalid cpus \"0.0005\": finer than one millicore (0.001)".to_owned())
    );
    for bad in ["", "-1", "abc", "1.2.3", ".", "1e3"] {
        assert_eq!(
            parse_millicpus(bad),
            Err(format!(
                "invalid cpus {bad:?} (expected a number such as \"0.5\" or 2)"
            )),
            "input {bad:?}"
        );
    }
}

// ---------------------------------------------------------------- top level

#[test]
fn top_level_keys() {
    let yaml = "version: \"3.9\"\nname: myapp\nx-common: {a: 1}\nnetworks: {front: {}}\n\
                services: {web: {image: nginx}}\nfoo: bar\nmodels: {}\n";
    let parsed = ok(yaml);
    assert_eq!(parsed.project.name.as_deref(), Some("myapp"));
    let w = texts(&parsed.warnings);
    assert_eq!(
        w,
        vec![
            "networks: ignored: all services share one Pod network (reach each other on localhost)",
            "foo: unknown key; ignored",
            "models: not supported on Kubernetes; ignored",
        ]
    );
}

#[test]
fn top_level_errors() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["services: required"]),
        ("version: '3'\n", &["services: required"]),
        (
            "services: []\n",
            &["services: expected a mapping of services, found a list"],
        ),
        (
            "- a\n",
            &["expected a mapping at the top level, found a list"],
        ),
        (
            "just text\n",
            &["expected a mapping at the top level, found a string"],
        ),
        (
            "services: {}\ninclude: [other.yml]\n",
            &["include: include is not supported: use a single compose file"],
        ),
        (
            "name: My_App\nservices: {}\n",
            &[
                "name: invalid project name \"My_App\" (lower-case letters, digits, '-' and '_', starting with a letter or digit)",
            ],
        ),
        (
            "services:\n  Web: {image: x}\n  db_1: {image: y}\n  \"a b\": {image: z}\n",
            &[
                "services[\"a b\"]: invalid service name \"a b\": letters, digits, '.', '_' and '-' only",
            ],
        ),
        (
            "services:\n  web: [x]\n",
            &["services.web: expected a mapping, found a list"],
        ),
        (
            "services: {a: {}}\nservices: {b: {}}\n",
            &["invalid YAML: duplicate mapping key: services at line 2, column 1"],
        ),
        (
            "a: 1\n---\nb: 2\n",
            &["invalid YAML: a compose file must hold a single YAML document"],
        ),
        ("services: {web: {image: [}}\n", &[]),
    ];
    for (input, want) in cases {
        let got = errors(input);
        if want.is_empty() {
            assert!(
                got.iter().all(|e| e.starts_with("invalid YAML: ")),
                "{got:?}"
            );
        } else {
            assert_eq!(&got, want, "input {input:?}");
        }
    }
    // Compose sets no length limit: Kubernetes names are derived (and shortened) later.
    let long = format!("services:\n  {}: {{image: x}}\n", "a".repeat(64));
    assert!(parse(&long, &no_env).is_ok());
}

#[test]
fn errors_are_collected_and_listed_one_per_line() {
    let yaml = web(
        "image: 5\nports: [\"x\", \"80\", \"99999\"]\nvolumes: [\"data:/d\"]\nrestart: sometimes\n",
        "",
    );
    let err = parse(&yaml, &no_env).expect_err("errors");
    assert_eq!(
        err.to_string(),
        "services.web.image: expected a string, found an integer\n\
         services.web.ports[0]: invalid port \"x\"\n\
         services.web.ports[2]: invalid port \"99999\"\n\
         services.web.volumes[0]: volume \"data\" is not declared in the top-level volumes\n\
         services.web.restart: invalid restart policy \"sometimes\" (expected no, always, on-failure[:n] or unless-stopped)"
    );
}

// ---------------------------------------------------------------- the key table

#[test]
fn key_table_has_no_duplicates() {
    for (i, a) in KEYS.iter().enumerate() {
        for b in KEYS.iter().skip(i + 1) {
            assert!(!(a.scope == b.scope && a.key == b.key), "duplicate {a:?}");
        }
    }
    let md = keys_markdown();
    assert!(md.contains("| `services.*` | `image` | supported |"));
    // Every row has exactly the four columns (pipes in notes are escaped).
    for line in md.lines() {
        assert_eq!(line.replace("\\|", "").matches('|').count(), 5, "{line}");
    }
}

#[test]
fn every_supported_service_key_is_handled_and_accepts_null() {
    for rule in KEYS.iter().filter(|r| r.scope == Scope::Service) {
        let yaml = web(&format!("image: x\n{}:\n", rule.key), "");
        let yaml = if rule.key == "image" {
            web("image:\n", "")
        } else {
            yaml
        };
        match rule.disposition {
            Disposition::Supported => {
                let parsed = parse(&yaml, &no_env);
                assert!(parsed.is_ok(), "{}: {:?}", rule.key, parsed.err());
            }
            Disposition::Warned => {
                let w = warnings(&yaml);
                assert_eq!(
                    w,
                    vec![format!("services.web.{}: {}", rule.key, rule.note)],
                    "{}",
                    rule.key
                );
            }
            Disposition::Refused => {
                assert_eq!(
                    errors(&yaml),
                    vec![format!("services.web.{}: {}", rule.key, rule.note)]
                );
            }
            Disposition::Silent => assert!(warnings(&yaml).is_empty()),
        }
    }
}

#[test]
fn every_supported_deploy_key_is_handled() {
    for rule in KEYS.iter().filter(|r| r.scope == Scope::Deploy) {
        let yaml = web(&format!("image: x\ndeploy:\n  {}:\n", rule.key), "");
        match rule.disposition {
            Disposition::Supported => assert!(parse(&yaml, &no_env).is_ok(), "{}", rule.key),
            Disposition::Warned => assert_eq!(
                warnings(&yaml),
                vec![format!("services.web.deploy.{}: {}", rule.key, rule.note)]
            ),
            Disposition::Refused | Disposition::Silent => {}
        }
    }
    for rule in KEYS.iter().filter(|r| r.scope == Scope::Resources) {
        let yaml = web(
            &format!(
                "image: x\ndeploy:\n  resources:\n    limits:\n      {}:\n",
                rule.key
            ),
            "",
        );
        match rule.disposition {
            Disposition::Supported => assert!(parse(&yaml, &no_env).is_ok(), "{}", rule.key),
            Disposition::Warned => assert_eq!(
                warnings(&yaml),
                vec![format!(
                    "services.web.deploy.resources.limits.{}: {}",
                    rule.key, rule.note
                )]
            ),
            Disposition::Refused | Disposition::Silent => {}
        }
    }
}

#[test]
fn unknown_and_extension_keys_in_a_service() {
    assert_eq!(
        web_warnings("image: x\nx-meta: {anything: [1]}\nimgae: typo\n\"odd key\": 1\n"),
        vec![
            "services.web.imgae: unknown key; ignored",
            "services.web[\"odd key\"]: unknown key; ignored",
        ]
    );
}

// ---------------------------------------------------------------- simple service keys

#[test]
fn command_and_entrypoint() {
    let svc = web_ok(
        "image: x\ncommand: echo \"hello world\" 'a b' c\\ d\nentrypoint: [\"/bin/sh\", \"-c\", 42]\n",
    );
    assert_eq!(
        svc.command,
        Some(vec![
            "echo".into(),
            "hello world".into(),
            "a b".into(),
            "c d".into()
        ])
    );
    assert_eq!(
        svc.entrypoint,
        Some(vec!["/bin/sh".into(), "-c".into(), "42".into()])
    );
    let svc = web_ok("image: x\ncommand: []\nentrypoint:\n");
    assert_eq!(svc.command, Some(vec![]));
    assert_eq!(svc.entrypoint, None);
    assert_eq!(
        web_errors("image: x\ncommand: echo \"unterminated\ncommand2: 1\n")
            .first()
            .map(String::as_str),
        Some("services.web.command: invalid command: unmatched \"\\\"\"")
    );
    assert_eq!(
        web_errors("image: x\nentrypoint: {a: b}\n"),
        vec!["services.web.entrypoint: expected a string or a list of strings, found a mapping"]
    );
}

#[test]
fn environment_forms() {
    let env = env_map(&[("FROM_ENV", "shell"), ("EMPTY", "")]);
    let yaml = web(
        "image: x\nenvironment:\n  STR: text\n  NUM: 5432\n  FLOAT: 0.5\n  BOOL: true\n  \
         YES: yes\n  NULL_SET: \n  FROM_ENV:\n  EMPTY:\n  QUOTED: \"a=b\"\n",
        "",
    );
    let parsed = parse_with(&yaml, &env).expect("parses");
    let svc = parsed.project.services.get("web").expect("web");
    let want = env_map(&[
        ("STR", "text"),
        ("NUM", "5432"),
        ("FLOAT", "0.5"),
        ("BOOL", "true"),
        ("YES", "yes"),
        ("FROM_ENV", "shell"),
        ("EMPTY", ""),
        ("QUOTED", "a=b"),
    ]);
    assert_eq!(svc.environment, want);
    let w = texts(&parsed.warnings);
    assert_eq!(
        w,
        vec![
            "services.web.environment.NULL_SET: variable \"NULL_SET\" is not set; left unset in the container"
        ]
    );

    let yaml = web(
        "image: x\nenvironment:\n  - A=1\n  - B=\n  - C=x=y\n  - FROM_ENV\n  - MISSING\n  - A=2\n",
        "",
    );
    let parsed = parse_with(&yaml, &env).expect("parses");
    let svc = parsed.project.services.get("web").expect("web");
    assert_eq!(
        svc.environment,
        env_map(&[("A", "2"), ("B", ""), ("C", "x=y"), ("FROM_ENV", "shell")])
    );
    assert_eq!(parsed.warnings.len(), 1);

    assert_eq!(
        web_errors("image: x\nenvironment:\n  - =v\n  - 5\n  - \"\"\n"),
        vec![
            "services.web.environment[0]: invalid variable name",
            "services.web.environment[1]: expected \"KEY=value\" or \"KEY\", found an integer",
            "services.web.environment[2]: invalid variable name",
        ]
    );
    assert_eq!(
        web_errors("image: x\nenvironment:\n  A: [1]\n"),
        vec![
            "services.web.environment.A: expected a string, number, boolean or null, found a list"
        ]
    );
    assert_eq!(
        web_errors("image: x\nenvironment: A=1\n"),
        vec![
            "services.web.environment: expected a mapping or a list of \"KEY=value\", found a string"
        ]
    );
}

#[test]
fn env_file_forms() {
    let file = |path: &str, required: bool, format: Option<&str>| EnvFile {
        path: path.to_owned(),
        required,
        format: format.map(str::to_owned),
    };
    assert_eq!(
        web_ok("image: x\nenv_file: .env\n").env_file,
        vec![file(".env", true, None)]
    );
    assert_eq!(
        web_ok("image: x\nenv_file: [a.env, /etc/b.env]\n").env_file,
        vec![file("a.env", true, None), file("/etc/b.env", true, None)]
    );
    assert_eq!(
        web_ok("image: x\nenv_file:\n  - path: a.env\n    required: false\n  - path: b.env\n    format: raw\n  - c.env\n").env_file,
        vec![file("a.env", false, None), file("b.env", true, Some("raw")), file("c.env", true, None)]
    );
    assert_eq!(
        web_errors("image: x\nenv_file:\n  - required: true\n  - \"\"\n  - 5\n"),
        vec![
            "services.web.env_file[0].path: required",
            "services.web.env_file[1]: empty path",
            "services.web.env_file[2]: expected a path or {path, required}, found an integer",
        ]
    );
}

#[test]
fn simple_scalars() {
    let svc = web_ok(
        "image: nginx:1.27\nworking_dir: /app\nhostname: web1\nstdin_open: true\ntty: \"true\"\n\
         privileged: false\nread_only: yes\ncap_add: [NET_ADMIN]\ncap_drop: [ALL]\n\
         stop_grace_period: 1m30s\nshm_size: 256m\nprofiles: [debug]\npull_policy: always\n\
         build: ./app\n",
    );
    assert_eq!(svc.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(svc.working_dir.as_deref(), Some("/app"));
    assert_eq!(svc.hostname.as_deref(), Some("web1"));
    assert!(svc.stdin_open && svc.tty && !svc.privileged && svc.read_only);
    assert_eq!(svc.cap_add, vec!["NET_ADMIN"]);
    assert_eq!(svc.cap_drop, vec!["ALL"]);
    assert_eq!(svc.stop_grace_period, Some(Duration::from_secs(90)));
    assert_eq!(svc.shm_size, Some(256 << 20));
    assert_eq!(svc.profiles, vec!["debug"]);
    assert_eq!(svc.pull_policy.as_deref(), Some("always"));
    assert_eq!(
        svc.build,
        Some(Build {
            context: Some("./app".into()),
            dockerfile: None
        })
    );
    let svc = web_ok("build:\n  context: .\n  dockerfile: Dockerfile.prod\n  args: {A: 1}\n");
    assert_eq!(
        svc.build,
        Some(Build {
            context: Some(".".into()),
            dockerfile: Some("Dockerfile.prod".into())
        })
    );
    assert_eq!(svc.image, None);

    assert_eq!(
        web_errors(
            "image: \"\"\nworking_dir: app\ntty: maybe\nprivileged: 1\nstop_grace_period: 10\n\
             shm_size: lots\ncap_add: {a: b}\n"
        ),
        vec![
            "services.web.image: must not be empty",
            "services.web.working_dir: \"app\" must be an absolute path",
            "services.web.tty: expected a boolean, found \"maybe\"",
            "services.web.privileged: expected a boolean, found an integer",
            "services.web.stop_grace_period: duration 10 needs a unit (e.g. \"10s\")",
            "services.web.shm_size: invalid size \"lots\" (expected bytes or e.g. \"512M\", \"1.5g\")",
            "services.web.cap_add: expected a list of strings, found a mapping",
        ]
    );
}

#[test]
fn user_forms() {
    let user = |yaml: &str| web_ok(&format!("image: x\nuser: {yaml}\n")).user;
    assert_eq!(
        user("\"1000\""),
        Some(User {
            user: IdOrName::Id(1000),
            group: None
        })
    );
    assert_eq!(
        user("1000"),
        Some(User {
            user: IdOrName::Id(1000),
            group: None
        })
    );
    assert_eq!(
        user("\"1000:1001\""),
        Some(User {
            user: IdOrName::Id(1000),
            group: Some(IdOrName::Id(1001))
        })
    );
    assert_eq!(
        user("postgres"),
        Some(User {
            user: IdOrName::Name("postgres".into()),
            group: None
        })
    );
    assert_eq!(
        user("\"app:staff\""),
        Some(User {
            user: IdOrName::Name("app".into()),
            group: Some(IdOrName::Name("staff".into()))
        })
    );
    for bad in ["\":1000\"", "\"1000:\"", "\"a:b:c\""] {
        assert_eq!(
            web_errors(&format!("image: x\nuser: {bad}\n")).len(),
            1,
            "{bad}"
        );
    }
    assert_eq!(
        web_errors("image: x\nuser: \"1000:\"\n"),
        vec![
            "services.web.user: invalid user \"1000:\" (expected \"uid[:gid]\" or \"name[:group]\")"
        ]
    );
}

#[test]
fn restart_forms() {
    let restart = |v: &str| web_ok(&format!("image: x\nrestart: {v}\n")).restart;
    assert_eq!(restart("no"), Some(Restart::No));
    assert_eq!(restart("\"no\""), Some(Restart::No));
    assert_eq!(restart("always"), Some(Restart::Always));
    assert_eq!(restart("unless-stopped"), Some(Restart::UnlessStopped));
    assert_eq!(
        restart("on-failure"),
        Some(Restart::OnFailure { max_retries: None })
    );
    assert_eq!(
        restart("on-failure:3"),
        Some(Restart::OnFailure {
            max_retries: Some(3)
        })
    );
    assert_eq!(
        web_errors("image: x\nrestart: on-failure:x\n"),
        vec![
            "services.web.restart: invalid restart policy \"on-failure:x\" (expected no, always, on-failure[:n] or unless-stopped)"
        ]
    );
}

#[test]
fn labels_annotations_extra_hosts() {
    let svc = web_ok(
        "image: x\nlabels:\n  traefik.enable: true\n  port: 80\n  empty:\nannotations:\n  - a=1\n  - b\n  - c=x=y\n\
         extra_hosts:\n  - \"db:10.0.0.2\"\n  - \"v6=::1\"\n  - \"br:[::2]\"\n",
    );
    assert_eq!(
        svc.labels,
        env_map(&[("traefik.enable", "true"), ("port", "80"), ("empty", "")])
    );
    assert_eq!(
        svc.annotations,
        env_map(&[("a", "1"), ("b", ""), ("c", "x=y")])
    );
    assert_eq!(
        svc.extra_hosts,
        vec![
            ("db".to_owned(), "10.0.0.2".to_owned()),
            ("v6".to_owned(), "::1".to_owned()),
            ("br".to_owned(), "::2".to_owned()),
        ]
    );
    let svc = web_ok("image: x\nextra_hosts:\n  db: 10.0.0.2\n  multi: [1.1.1.1, 2.2.2.2]\n");
    assert_eq!(svc.extra_hosts.len(), 3);
    assert_eq!(
        web_errors("image: x\nlabels:\n  - =x\nextra_hosts: [\"nohost\"]\n"),
        vec![
            "services.web.labels[0]: expected \"KEY=value\" with a non-empty KEY",
            "services.web.extra_hosts[0]: invalid extra host \"nohost\" (expected \"host=ip\")",
        ]
    );
    assert_eq!(
        web_errors("image: x\nlabels:\n  \"a.b\": [x]\n"),
        vec!["services.web.labels[\"a.b\"]: expected a string or number, found a list"]
    );
}

#[test]
fn warned_service_keys() {
    assert_eq!(
        web_warnings(
            "image: x\ncontainer_name: my-web\nplatform: linux/amd64\nnetworks: [front]\nlogging: {driver: json-file}\n"
        ),
        vec![
            "services.web.container_name: ignored: Kubernetes names containers after the service",
            "services.web.platform: ignored: the cluster's nodes decide the platform",
            "services.web.networks: ignored: all services share one Pod network (reach each other on localhost)",
            "services.web.logging: ignored: the cluster collects container logs",
        ]
    );
    assert_eq!(
        web_errors("image: x\nextends: {service: base}\nvolumes_from: [db]\n"),
        vec![
            "services.web.extends: extends is not supported: write the service out (YAML anchors and `<<` merge keys work)",
            "services.web.volumes_from: volumes_from is not supported: mount the same volumes explicitly",
        ]
    );
}

// ---------------------------------------------------------------- ports

fn port(target: u16, published: Option<u16>) -> Port {
    Port {
        target,
        published,
        ..Port::default()
    }
}

#[test]
fn ports_short_syntax() {
    let on = |host_ip: &str, p: Port| Port {
        host_ip: Some(host_ip.into()),
        ..p
    };
    let udp = |p: Port| Port {
        protocol: Protocol::Udp,
        ..p
    };
    let cases = [
        ("3000", vec![port(3000, None)]),
        ("\"3000\"", vec![port(3000, None)]),
        ("\"8080:80\"", vec![port(80, Some(8080))]),
        (
            "\"127.0.0.1:8080:80\"",
            vec![on("127.0.0.1", port(80, Some(8080)))],
        ),
        ("\"127.0.0.1::80\"", vec![on("127.0.0.1", port(80, None))]),
        ("\"[::1]:8080:80\"", vec![on("::1", port(80, Some(8080)))]),
        ("\"::1:8080:80\"", vec![on("::1", port(80, Some(8080)))]),
        ("\"53:53/udp\"", vec![udp(port(53, Some(53)))]),
        ("\"80/tcp\"", vec![port(80, None)]),
        (
            "\"8000-8002:9000-9002\"",
            vec![
                port(9000, Some(8000)),
                port(9001, Some(8001)),
                port(9002, Some(8002)),
            ],
        ),
        ("\"3000-3001\"", vec![port(3000, None), port(3001, None)]),
        (
            "\"3000-3001/udp\"",
            vec![udp(port(3000, None)), udp(port(3001, None))],
        ),
    ];
    for (input, want) in cases {
        let got = web_ok(&format!("image: x\nports: [{input}]\n")).ports;
        assert_eq!(got, want, "ports: [{input}]");
    }
}

#[test]
fn ports_short_syntax_errors() {
    let cases: &[(&str, &str)] = &[
        ("\"x\"", "invalid port \"x\""),
        ("0", "invalid port \"0\""),
        ("65536", "invalid port \"65536\""),
        ("-1", "invalid port \"-1\""),
        ("\"80:\"", "invalid port \"80:\""),
        ("\"a:b:c:80\"", "invalid port \"a:b:c:80\""),
        (
            "\"80/icmp\"",
            "invalid port \"80/icmp\": unknown protocol \"icmp\"",
        ),
        (
            "\"8000-8002:80\"",
            "invalid port \"8000-8002:80\": the published and target ranges differ in size",
        ),
        (
            "\"80:8000-8002\"",
            "invalid port \"80:8000-8002\": the published and target ranges differ in size",
        ),
        ("\"8002-8000\"", "invalid port \"8002-8000\""),
        (
            "\"1-2000\"",
            "invalid port \"1-2000\": ranges are limited to 1024 ports",
        ),
        ("\"[::1:80\"", "invalid port \"[::1:80\""),
        ("\":8080:80\"", "invalid port \":8080:80\""),
        (
            "1.5",
            "expected a port (\"8080:80\") or a mapping, found a number",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            web_errors(&format!("image: x\nports: [{input}]\n")),
            vec![format!("services.web.ports[0]: {want}")],
            "input {input}"
        );
    }
    assert_eq!(
        web_errors("image: x\nports: \"80\"\n"),
        vec!["services.web.ports: expected a list of ports, found a string"]
    );
}

#[test]
fn ports_long_syntax() {
    let svc = web_ok(
        "image: x\nports:\n  - target: 80\n    published: \"8080\"\n    protocol: udp\n    host_ip: 0.0.0.0\n    \
         name: web\n    app_protocol: http\n    mode: host\n  - target: \"443\"\n",
    );
    assert_eq!(
        svc.ports,
        vec![
            Port {
                target: 80,
                published: Some(8080),
                host_ip: Some("0.0.0.0".into()),
                protocol: Protocol::Udp,
                name: Some("web".into()),
                app_protocol: Some("http".into()),
                mode: Some("host".into()),
            },
            port(443, None),
        ]
    );
    assert_eq!(
        web_errors(
            "image: x\nports:\n  - published: 80\n  - target: 0\n  - target: 80\n    protocol: icmp\n  \
             - target: 80\n    name: Web_Port\n  - target: 80\n    mode: swarm\n  - target: 80\n    published: 8000-8001\n"
        ),
        vec![
            "services.web.ports[0].target: required",
            "services.web.ports[1].target: invalid port \"0\"",
            "services.web.ports[2].protocol: unknown protocol \"icmp\" (expected tcp, udp or sctp)",
            "services.web.ports[3].name: invalid port name \"Web_Port\" (at most 15 lower-case letters, digits or '-', with a letter)",
            "services.web.ports[4].mode: invalid mode \"swarm\" (expected host or ingress)",
            "services.web.ports[5].published: invalid port \"8000-8001\"",
        ]
    );
    assert_eq!(
        web_warnings("image: x\nports:\n  - target: 80\n    x-note: fine\n    extra: 1\n"),
        vec!["services.web.ports[0].extra: unknown key; ignored"]
    );
}

#[test]
fn expose_forms() {
    let svc = web_ok("image: x\nexpose: [3000, \"4000\", \"5000/udp\", \"6000-6002\"]\n");
    let got: Vec<(u16, Protocol)> = svc.expose.iter().map(|e| (e.port, e.protocol)).collect();
    assert_eq!(
        got,
        vec![
            (3000, Protocol::Tcp),
            (4000, Protocol::Tcp),
            (5000, Protocol::Udp),
            (6000, Protocol::Tcp),
            (6001, Protocol::Tcp),
            (6002, Protocol::Tcp),
        ]
    );
    assert_eq!(
        web_errors("image: x\nexpose: [\"x\", \"80/foo\", [1]]\n"),
        vec![
            "services.web.expose[0]: invalid port \"x\"",
            "services.web.expose[1]: invalid port \"80/foo\": unknown protocol \"foo\"",
            "services.web.expose[2]: expected a port, found a list",
        ]
    );
}

// ---------------------------------------------------------------- volumes

const VOLS: &str = "volumes:\n  data: {}\n  cache:\n";

fn mount(source: MountSource, target: &str) -> Mount {
    Mount {
        source,
        target: target.to_owned(),
        read_only: false,
        nocopy: false,
        create_host_path: true,
    }
}

fn rel(p: &str) -> MountSource {
    MountSource::RelativeBind { path: p.to_owned() }
}

fn vol(name: &str, sub: Option<&str>) -> MountSource {
    MountSource::Volume {
        name: name.to_owned(),
        subpath: sub.map(str::to_owned),
    }
}

#[test]
fn volumes_short_syntax() {
    let mounts = |v: &str| web_ok_top(&format!("image: x\nvolumes: [\"{v}\"]\n"), VOLS).mounts;
    let cases: Vec<(&str, Mount)> = vec![
        ("./data:/data", mount(rel("data"), "/data")),
        ("./:/src", mount(rel("."), "/src")),
        (".:/src", mount(rel("."), "/src")),
        ("./a/../b/./c/:/c", mount(rel("b/c"), "/c")),
        ("./a/..:/x", mount(rel("."), "/x")),
        (
            "/var/run/docker.sock:/var/run/docker.sock",
            mount(
                MountSource::AbsoluteBind {
                    path: "/var/run/docker.sock".into(),
                },
                "/var/run/docker.sock",
            ),
        ),
        (
            "//etc/../etc/x:/x/",
            mount(
                MountSource::AbsoluteBind {
                    path: "/etc/x".into(),
                },
                "/x",
            ),
        ),
        (
            "data:/var/lib/data",
            mount(vol("data", None), "/var/lib/data"),
        ),
        (
            "data/pg:/var/lib/pg",
            mount(vol("data", Some("pg")), "/var/lib/pg"),
        ),
        ("data/a/./b/:/b", mount(vol("data", Some("a/b")), "/b")),
        ("/anon", mount(MountSource::Anonymous, "/anon")),
        (
            "data:/ro:ro",
            Mount {
                read_only: true,
                ..mount(vol("data", None), "/ro")
            },
        ),
        (
            "data:/nc:nocopy,rw",
            Mount {
                nocopy: true,
                ..mount(vol("data", None), "/nc")
            },
        ),
        ("./x:/x:cached", mount(rel("x"), "/x")),
    ];
    for (input, want) in cases {
        assert_eq!(mounts(input), vec![want], "input {input:?}");
    }
    let w = warnings(&web(
        "image: x\nvolumes: [\"./x:/x:z\", \"./y:/y:rshared\"]\n",
        "",
    ));
    assert_eq!(
        w,
        vec![
            "services.web.volumes[0]: option \"z\" (SELinux relabel) is ignored",
            "services.web.volumes[1]: option \"rshared\" (bind propagation) is ignored",
        ]
    );
}

#[test]
fn volumes_short_syntax_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "../outside:/x",
            "bind source \"../outside\" escapes the project directory",
        ),
        (
            "./a/../../b:/x",
            "bind source \"./a/../../b\" escapes the project directory",
        ),
        (
            "~other/x:/x",
            "bind source \"~other/x\": only the own home directory (~ or ~/…) is supported",
        ),
        (
            "~/../x:/x",
            "bind source \"~/../x\" escapes the home directory",
        ),
        (
            "undeclared:/x",
            "volume \"undeclared\" is not declared in the top-level volumes",
        ),
        ("bad name:/x", "invalid volume name \"bad name\""),
        (
            "data/../..:/x",
            "invalid volume subpath \"../..\": must stay inside the volume",
        ),
        (":/x", "empty volume source"),
        ("./x:rel", "target \"rel\" must be an absolute path"),
        ("relative", "target \"relative\" must be an absolute path"),
        (
            "./x:/x:ro:extra",
            "invalid volume \"./x:/x:ro:extra\" (expected \"source:target[:options]\")",
        ),
        ("./x:/x:bogus", "unknown volume option \"bogus\""),
    ];
    for (input, want) in cases {
        assert_eq!(
            errors(&web(&format!("image: x\nvolumes: [\"{input}\"]\n"), VOLS)),
            vec![format!("services.web.volumes[0]: {want}")],
            "input {input:?}"
        );
    }
}

#[test]
fn volumes_long_syntax() {
    let body = "image: x\nvolumes:\n\
        \x20 - type: bind\n    source: ./conf\n    target: /etc/app\n    read_only: true\n    bind:\n      create_host_path: false\n\
        \x20 - type: bind\n    source: conf2\n    target: /etc/app2\n\
        \x20 - type: volume\n    source: data\n    target: /data\n    volume:\n      nocopy: true\n      subpath: sub/dir\n\
        \x20 - type: volume\n    target: /anon\n\
        \x20 - type: tmpfs\n    target: /tmp\n    tmpfs:\n      size: 64m\n      mode: 1777\n\
        \x20 - type: tmpfs\n    target: /tmp2\n    tmpfs:\n      size: 1048576\n";
    let svc = web_ok_top(body, VOLS);
    assert_eq!(
        svc.mounts,
        vec![
            Mount {
                read_only: true,
                create_host_path: false,
                ..mount(rel("conf"), "/etc/app")
            },
            mount(rel("conf2"), "/etc/app2"),
            Mount {
                nocopy: true,
                ..mount(vol("data", Some("sub/dir")), "/data")
            },
            mount(MountSource::Anonymous, "/anon"),
            mount(
                MountSource::Tmpfs {
                    size: Some(64 << 20)
                },
                "/tmp"
            ),
            mount(
                MountSource::Tmpfs {
                    size: Some(1 << 20)
                },
                "/tmp2"
            ),
        ]
    );
}

#[test]
fn volumes_long_syntax_errors() {
    let body = "image: x\nvolumes:\n\
        \x20 - target: /a\n\
        \x20 - type: bind\n    target: /b\n\
        \x20 - type: bind\n    source: ../up\n    target: /c\n\
        \x20 - type: volume\n    source: nope\n    target: /d\n\
        \x20 - type: npipe\n    source: x\n    target: /e\n\
        \x20 - type: tmpfs\n    source: x\n    target: /f\n\
        \x20 - type: volume\n    source: data\n\
        \x20 - type: volume\n    source: data\n    target: rel\n\
        \x20 - type: volume\n    target: /g\n    volume:\n      subpath: x\n\
        \x20 - type: volume\n    source: data/a\n    target: /h\n    volume:\n      subpath: b\n\
        \x20 - type: tmpfs\n    target: /i\n    tmpfs:\n      size: huge\n\
        \x20 - 5\n";
    assert_eq!(
        errors(&web(body, VOLS)),
        vec![
            "services.web.volumes[0].type: required (bind, volume or tmpfs)",
            "services.web.volumes[1].source: required for a bind mount",
            "services.web.volumes[2].source: bind source \"../up\" escapes the project directory",
            "services.web.volumes[3]: volume \"nope\" is not declared in the top-level volumes",
            "services.web.volumes[4].type: unsupported mount type \"npipe\" (expected bind, volume or tmpfs)",
            "services.web.volumes[5].source: a tmpfs mount has no source",
            "services.web.volumes[6].target: required",
            "services.web.volumes[7].target: target \"rel\" must be an absolute path",
            "services.web.volumes[8].source: required when volume.subpath is given",
            "services.web.volumes[9].source: subpath given both in the source and in volume.subpath",
            "services.web.volumes[10].tmpfs.size: invalid size \"huge\" (expected bytes or e.g. \"512M\", \"1.5g\")",
            "services.web.volumes[11]: expected a volume (\"src:dst\") or a mapping, found an integer",
        ]
    );
}

#[test]
fn tmpfs_key() {
    let svc = web_ok("image: x\ntmpfs: /run\n");
    assert_eq!(
        svc.mounts,
        vec![Mount {
            create_host_path: false,
            ..mount(MountSource::Tmpfs { size: None }, "/run")
        }]
    );
    let parsed = ok(&web(
        "image: x\ntmpfs:\n  - /a:size=10m,mode=1777\n  - /b:ro\n",
        "",
    ));
    let svc = parsed.project.services.get("web").expect("web");
    assert_eq!(
        svc.mounts
            .iter()
            .map(|m| (&m.source, m.read_only))
            .collect::<Vec<_>>(),
        vec![
            (
                &MountSource::Tmpfs {
                    size: Some(10 << 20)
                },
                false
            ),
            (&MountSource::Tmpfs { size: None }, true),
        ]
    );
    assert_eq!(
        texts(&parsed.warnings),
        vec!["services.web.tmpfs[0]: tmpfs option \"mode=1777\" is ignored"]
    );
    assert_eq!(
        web_errors("image: x\ntmpfs: [run, \"/x:size=big\"]\n"),
        vec![
            "services.web.tmpfs[0]: target \"run\" must be an absolute path",
            "services.web.tmpfs[1]: invalid size \"big\" (expected bytes or e.g. \"512M\", \"1.5g\")",
        ]
    );
}

// ---------------------------------------------------------------- top-level volumes, configs, secrets

#[test]
fn top_level_volumes() {
    let yaml = "services: {}\nvolumes:\n  a:\n  b: {}\n  c:\n    external: true\n    name: real-c\n  \
                d:\n    driver: local\n    labels: {k: v}\n    x-meta: 1\n  e:\n    driver: nfs\n    driver_opts: {o: 1}\n";
    let parsed = ok(yaml);
    let v = &parsed.project.volumes;
    assert_eq!(v.len(), 5);
    assert_eq!(
        v.get("c"),
        Some(&VolumeDef {
            external: true,
            name: Some("real-c".into()),
            ..VolumeDef::default()
        })
    );
    assert_eq!(v.get("d").map(|d| d.labels.len()), Some(1));
    assert_eq!(
        texts(&parsed.warnings),
        vec![
            "volumes.e.driver: ignored: Kompox provisions volumes itself",
            "volumes.e.driver_opts: ignored: Kompox provisions volumes itself",
        ]
    );
    // The obsolete `external: {name: x}` is `external: true` with `name: x`.
    let old = ok("services: {}\nvolumes:\n  legacy:\n    external:\n      name: shared_data\n");
    assert_eq!(
        old.project.volumes.get("legacy"),
        Some(&VolumeDef {
            external: true,
            name: Some("shared_data".into()),
            ..VolumeDef::default()
        })
    );
    assert_eq!(
        texts(&old.warnings),
        vec!["volumes.legacy.external: external: {name} is obsolete: use external: true and name"]
    );
    assert_eq!(
        errors("services: {}\nvolumes:\n  v:\n    external: {name: a}\n    name: b\n"),
        vec!["volumes.v.external: external.name \"a\" and name \"b\" differ: give only name"]
    );
    assert_eq!(
        errors("services: {}\nvolumes:\n  \"-bad\": {}\n  ok: [1]\n"),
        vec![
            "volumes.-bad: invalid volume name \"-bad\"",
            "volumes.ok: expected a mapping, found a list",
        ]
    );
}

#[test]
fn configs_and_secrets() {
    let yaml = "services:\n  web:\n    image: x\n    configs:\n      - app_conf\n      - source: inline\n        \
                target: /etc/inline.conf\n        mode: 0440\n        uid: \"1000\"\n        gid: 1000\n      \
                - source: inline\n        target: relative.conf\n    secrets:\n      - db_password\n      \
                - source: api_key\n        target: api\n        mode: 0o400\n      - source: api_key\n        \
                target: /abs/key\n        mode: \"0600\"\n\
                configs:\n  app_conf:\n    file: ./conf/app.conf\n  inline:\n    content: |\n      key=value\n  \
                from_env:\n    environment: CONF\n  ext:\n    external: true\n    name: shared\n\
                secrets:\n  db_password:\n    file: ./secrets/db.txt\n  api_key:\n    environment: API_KEY\n";
    let parsed = ok(yaml);
    let p = &parsed.project;
    assert_eq!(
        p.configs.get("app_conf").map(|c| &c.source),
        Some(&FileObjectSource::File("conf/app.conf".into()))
    );
    assert_eq!(
        p.configs.get("inline").map(|c| &c.source),
        Some(&FileObjectSource::Content("key=value\n".into()))
    );
    assert_eq!(
        p.configs.get("from_env").map(|c| &c.source),
        Some(&FileObjectSource::Environment("CONF".into()))
    );
    assert_eq!(
        p.configs.get("ext"),
        Some(&FileObjectDef {
            source: FileObjectSource::External,
            name: Some("shared".into()),
            labels: BTreeMap::new(),
        })
    );
    let svc = p.services.get("web").expect("web");
    let fm = |source: &str, target: &str, uid: Option<u32>, gid: Option<u32>, mode: Option<u32>| {
        FileMount {
            source: source.into(),
            target: target.into(),
            uid,
            gid,
            mode,
        }
    };
    assert_eq!(
        svc.configs,
        vec![
            fm("app_conf", "/app_conf", None, None, None),
            fm(
                "inline",
                "/etc/inline.conf",
                Some(1000),
                Some(1000),
                Some(0o440)
            ),
            fm("inline", "/relative.conf", None, None, None),
        ]
    );
    assert_eq!(
        svc.secrets,
        vec![
            fm("db_password", "/run/secrets/db_password", None, None, None),
            fm("api_key", "/run/secrets/api", None, None, Some(0o400)),
            fm("api_key", "/abs/key", None, None, Some(0o600)),
        ]
    );
}

#[test]
fn configs_and_secrets_errors() {
    let yaml = "services:\n  web:\n    image: x\n    configs: [missing, {target: /x}]\n    \
                secrets:\n      - source: s\n        mode: rwx\n      - nope\n\
                configs:\n  none: {}\n  two:\n    file: a\n    content: b\n  up:\n    file: ../x\n  nul:\n\
                secrets:\n  s:\n    file: ./s\n  c:\n    content: not allowed for secrets\n";
    assert_eq!(
        errors(yaml),
        vec![
            "configs.none: needs one of file, content, environment or external",
            "configs.two: only one of file, content, environment, external may be given",
            "configs.up.file: \"../x\" escapes the project directory",
            "configs.nul: needs one of file, content, environment or external",
            "secrets.c: needs one of file, environment or external",
            "services.web.configs[0]: config \"missing\" is not declared in the top-level configs",
            "services.web.configs[1].source: required",
            "services.web.secrets[0].mode: invalid file mode (expected e.g. 0440)",
            "services.web.secrets[1]: secret \"nope\" is not declared in the top-level secrets",
        ]
    );
}

// ---------------------------------------------------------------- healthcheck

#[test]
fn healthcheck_forms() {
    let hc = |body: &str| web_ok(&format!("image: x\nhealthcheck:\n{body}")).healthcheck;
    assert_eq!(
        hc(
            "  test: curl -f http://localhost\n  interval: 1m30s\n  timeout: 10s\n  retries: 3\n  start_period: 40s\n  start_interval: 5s\n"
        ),
        Some(Healthcheck {
            test: Some(HealthTest::Shell("curl -f http://localhost".into())),
            interval: Some(Duration::from_secs(90)),
            timeout: Some(Duration::from_secs(10)),
            retries: Some(3),
            start_period: Some(Duration::from_secs(40)),
            start_interval: Some(Duration::from_secs(5)),
            disable: false,
        })
    );
    assert_eq!(
        hc("  test: [\"CMD\", \"pg_isready\", \"-U\", \"postgres\"]\n").and_then(|h| h.test),
        Some(HealthTest::Cmd(vec![
            "pg_isready".into(),
            "-U".into(),
            "postgres".into()
        ]))
    );
    assert_eq!(
        hc("  test: [\"CMD-SHELL\", \"pg_isready || exit 1\"]\n").and_then(|h| h.test),
        Some(HealthTest::Shell("pg_isready || exit 1".into()))
    );
    let none = hc("  test: [\"NONE\"]\n").expect("healthcheck");
    assert!(none.disable && none.test.is_none());
    let disabled = hc("  disable: true\n  test: [\"CMD\", \"x\"]\n").expect("healthcheck");
    assert!(disabled.disable && disabled.test.is_none());
    assert_eq!(hc("  interval: 5s\n").and_then(|h| h.test), None);
    assert_eq!(
        web_errors(
            "image: x\nhealthcheck:\n  test: [\"RUN\", \"x\"]\n  interval: 5\n  timeout: soon\n  retries: -1\n"
        ),
        vec![
            "services.web.healthcheck.test: test must start with \"CMD\", \"CMD-SHELL\" or \"NONE\", found \"RUN\"",
            "services.web.healthcheck.interval: duration 5 needs a unit (e.g. \"5s\")",
            "services.web.healthcheck.timeout: invalid duration \"soon\" (expected e.g. \"10s\", \"1m30s\", \"500ms\")",
            "services.web.healthcheck.retries: integer -1 is out of range",
        ]
    );
    assert_eq!(
        web_errors("image: x\nhealthcheck:\n  test: [\"CMD\"]\n"),
        vec!["services.web.healthcheck.test: \"CMD\" needs a command after it"]
    );
}

// ---------------------------------------------------------------- depends_on

#[test]
fn depends_on_forms() {
    let yaml = "services:\n  web:\n    image: x\n    depends_on: [db, cache]\n  \
                api:\n    image: x\n    depends_on:\n      db:\n        condition: service_healthy\n        restart: true\n      \
                migrate:\n        condition: service_completed_successfully\n        required: false\n      cache:\n  \
                db: {image: pg}\n  cache: {image: redis}\n  migrate: {image: m}\n";
    let parsed = ok(yaml);
    let s = &parsed.project.services;
    let web = s.get("web").expect("web");
    assert_eq!(
        web.depends_on.keys().collect::<Vec<_>>(),
        vec!["cache", "db"]
    );
    assert_eq!(web.depends_on.get("db"), Some(&Dependency::default()));
    let api = s.get("api").expect("api");
    assert_eq!(
        api.depends_on.get("db"),
        Some(&Dependency {
            condition: DependencyCondition::Healthy,
            required: true,
            restart: true
        })
    );
    assert_eq!(
        api.depends_on.get("migrate"),
        Some(&Dependency {
            condition: DependencyCondition::CompletedSuccessfully,
            required: false,
            restart: false
        })
    );
    assert_eq!(api.depends_on.get("cache"), Some(&Dependency::default()));
}

#[test]
fn depends_on_errors() {
    let yaml = "services:\n  a:\n    depends_on: [ghost, a]\n  b:\n    depends_on:\n      c:\n        condition: service_ready\n  \
                c:\n    depends_on: [d]\n  d:\n    depends_on: [b]\n";
    assert_eq!(
        errors(yaml),
        vec![
            "services.b.depends_on.c.condition: unknown condition \"service_ready\" (expected service_started, service_healthy or service_completed_successfully)",
            "services.a.depends_on.a: a service cannot depend on itself",
            "services.a.depends_on.ghost: unknown service \"ghost\"",
            "services.b.depends_on: dependency cycle: b -> c -> d -> b",
        ]
    );
}

// ---------------------------------------------------------------- deploy and resources

#[test]
fn deploy_resources() {
    let svc = web_ok(
        "image: x\ndeploy:\n  replicas: 1\n  resources:\n    limits:\n      cpus: \"0.5\"\n      memory: 512M\n    \
         reservations:\n      cpus: 0.25\n      memory: 268435456\n",
    );
    assert_eq!(svc.replicas, Some(1));
    assert_eq!(
        svc.resources,
        Resources {
            limits: ResourceSpec {
                millicpus: Some(500),
                memory: Some(512 << 20)
            },
            reservations: ResourceSpec {
                millicpus: Some(250),
                memory: Some(256 << 20)
            },
        }
    );
    let svc = web_ok("image: x\ncpus: 1.5\nmem_limit: 1g\nmem_reservation: 1.5G\n");
    assert_eq!(svc.resources.limits.millicpus, Some(1500));
    assert_eq!(svc.resources.limits.memory, Some(1 << 30));
    assert_eq!(svc.resources.reservations.memory, Some(1_610_612_736));
    // Zero means "no limit" in compose.
    let svc =
        web_ok("image: x\ndeploy:\n  resources:\n    limits:\n      cpus: 0\n      memory: 0\n");
    assert_eq!(svc.resources, Resources::default());
    // Same value in both places is fine.
    let svc = web_ok("image: x\ncpus: \"2\"\ndeploy:\n  resources:\n    limits:\n      cpus: 2\n");
    assert_eq!(svc.resources.limits.millicpus, Some(2000));
}

#[test]
fn deploy_warnings_and_errors() {
    assert_eq!(
        web_warnings(
            "image: x\ndeploy:\n  replicas: 3\n  restart_policy: {condition: any}\n  resources:\n    reservations:\n      devices: []\n"
        ),
        vec![
            "services.web.deploy.restart_policy: ignored: use `restart`",
            "services.web.deploy.resources.reservations.devices: not supported on Kubernetes; ignored",
            "services.web.deploy.replicas: 3 replicas requested; a Kompox app runs one Pod, so 1 is used",
        ]
    );
    assert_eq!(
        web_warnings("image: x\nscale: 0\n"),
        vec!["services.web.scale: 0 replicas requested; a Kompox app runs one Pod, so 1 is used"]
    );
    assert_eq!(
        web_errors(
            "image: x\ncpus: 1\nmem_limit: 1g\nscale: 2\ndeploy:\n  replicas: 1\n  resources:\n    limits:\n      \
             cpus: \"0.0001\"\n      memory: lots\n    reservations:\n      cpus: [1]\n    other: {}\n"
        ),
        vec![
            "services.web.deploy.resources.limits.cpus: invalid cpus \"0.0001\": finer than one millicore (0.001)",
            "services.web.deploy.resources.limits.memory: invalid size \"lots\" (expected bytes or e.g. \"512M\", \"1.5g\")",
            "services.web.deploy.resources.reservations.cpus: expected a number of CPUs such as \"0.5\", found a list",
            "services.web.scale: conflicts with deploy.replicas",
        ]
    );
    assert_eq!(
        web_errors(
            "image: x\nmem_limit: 2g\ndeploy:\n  resources:\n    limits:\n      memory: 1g\n"
        ),
        vec!["services.web.mem_limit: conflicts with deploy.resources.limits.memory"]
    );
}

// ---------------------------------------------------------------- anchors and merge keys

#[test]
fn anchors_and_merge_keys() {
    let yaml = r#"
x-env: &env
  TZ: UTC
  LANG: C.UTF-8
x-base: &base
  image: app:1
  restart: unless-stopped
  environment: *env
  labels: &labels
    team: a
x-hc: &hc
  interval: 10s
  retries: 3
services:
  web:
    <<: *base
    ports: ["80"]
    healthcheck:
      <<: *hc
      test: ["CMD", "true"]
  worker:
    <<: [*base]
    image: app:2
    labels:
      <<: *labels
      role: worker
"#;
    let parsed = ok(yaml);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let s = &parsed.project.services;
    let web = s.get("web").expect("web");
    let worker = s.get("worker").expect("worker");
    assert_eq!(web.image.as_deref(), Some("app:1"));
    assert_eq!(worker.image.as_deref(), Some("app:2"));
    assert_eq!(web.restart, Some(Restart::UnlessStopped));
    assert_eq!(
        web.environment,
        env_map(&[("TZ", "UTC"), ("LANG", "C.UTF-8")])
    );
    assert_eq!(worker.environment, web.environment);
    assert_eq!(worker.labels, env_map(&[("team", "a"), ("role", "worker")]));
    let hc = web.healthcheck.as_ref().expect("healthcheck");
    assert_eq!(hc.retries, Some(3));
    assert_eq!(hc.interval, Some(Duration::from_secs(10)));
}

#[test]
fn resource_limits_on_input() {
    // Too large.
    let big = format!("services: {{}}\n# {}\n", "x".repeat(MAX_INPUT_BYTES));
    assert_eq!(
        errors(&big),
        vec![format!(
            "invalid YAML: compose file is {} bytes; the limit is {MAX_INPUT_BYTES}",
            big.len()
        )]
    );
    // Too deep.
    let deep = format!(
        "services: {{}}\nx: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(
        errors(&deep),
        vec![format!(
            "invalid YAML: nested deeper than {MAX_DEPTH} levels"
        )]
    );
    // Billion laughs.
    let mut bomb = String::from(
        "services: {}\nx-a: &a [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .windows(2)
        .map(|w| (w[0], w[1]))
    {
        bomb.push_str(&format!(
            "x-{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    let got = errors(&bomb);
    assert_eq!(got.len(), 1);
    assert!(
        got.iter().all(|e| e.starts_with("invalid YAML: ")),
        "{got:?}"
    );
}

// ---------------------------------------------------------------- a real-world file

pub(super) const GITEA: &str = r#"
name: gitea
x-db-env: &db-env
  POSTGRES_USER: ${DB_USER:-gitea}
  POSTGRES_DB: gitea
services:
  gitea:
    image: gitea/gitea:${GITEA_TAG:-1.22}
    restart: unless-stopped
    environment:
      - USER_UID=1000
      - USER_GID=1000
      - GITEA__database__DB_TYPE=postgres
      - GITEA__database__HOST=db:5432
      - GITEA__database__NAME=gitea
      - GITEA__database__USER=${DB_USER:-gitea}
      - GITEA__database__PASSWD=${DB_PASSWORD:?set DB_PASSWORD}
    volumes:
      - ./data:/data
      - /etc/timezone:/etc/timezone:ro
      - /etc/localtime:/etc/localtime:ro
    ports:
      - "3000:3000"
      - "222:22"
    depends_on:
      db:
        condition: service_healthy
    deploy:
      resources:
        limits:
          cpus: "1"
          memory: 1G
  db:
    image: postgres:16-alpine
    restart: always
    environment:
      <<: *db-env
      POSTGRES_PASSWORD: ${DB_PASSWORD}
      PGDATA: /var/lib/postgresql/data/pgdata
    volumes:
      - db:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U $${POSTGRES_USER}"]
      interval: 10s
      timeout: 5s
      retries: 5
      start_period: 30s
    shm_size: 128mb
    networks: [backend]
volumes:
  db: {}
networks:
  backend: {}
"#;

#[test]
fn gitea_with_postgres() {
    let env = env_map(&[("DB_PASSWORD", "s3cret")]);
    let parsed = parse_with(GITEA, &env).expect("gitea parses");
    let p = &parsed.project;
    assert_eq!(p.name.as_deref(), Some("gitea"));
    assert_eq!(p.services.keys().collect::<Vec<_>>(), vec!["db", "gitea"]);
    let gitea = p.services.get("gitea").expect("gitea");
    assert_eq!(gitea.image.as_deref(), Some("gitea/gitea:1.22"));
    assert_eq!(
        gitea
            .environment
            .get("GITEA__database__PASSWD")
            .map(String::as_str),
        Some("s3cret")
    );
    assert_eq!(
        gitea.ports,
        vec![port(3000, Some(3000)), port(22, Some(222))]
    );
    assert_eq!(gitea.mounts.first().map(|m| &m.source), Some(&rel("data")));
    assert_eq!(gitea.mounts.get(1).map(|m| m.read_only), Some(true));
    assert_eq!(
        gitea.depends_on.get("db").map(|d| d.condition),
        Some(DependencyCondition::Healthy)
    );
    assert_eq!(gitea.resources.limits.millicpus, Some(1000));
    assert_eq!(gitea.resources.limits.memory, Some(1 << 30));
    let db = p.services.get("db").expect("db");
    assert_eq!(
        db.environment.get("POSTGRES_USER").map(String::as_str),
        Some("gitea")
    );
    assert_eq!(
        db.environment.get("POSTGRES_PASSWORD").map(String::as_str),
        Some("s3cret")
    );
    assert_eq!(
        db.healthcheck.as_ref().and_then(|h| h.test.clone()),
        Some(HealthTest::Shell("pg_isready -U ${POSTGRES_USER}".into()))
    );
    assert_eq!(
        db.mounts,
        vec![mount(vol("db", None), "/var/lib/postgresql/data")]
    );
    assert_eq!(db.shm_size, Some(128 << 20));
    assert_eq!(
        texts(&parsed.warnings),
        vec![
            "networks: ignored: all services share one Pod network (reach each other on localhost)",
            "services.db.networks: ignored: all services share one Pod network (reach each other on localhost)",
        ]
    );

    // Without DB_PASSWORD the `:?` fails and names the path.
    let err = parse(GITEA, &no_env).expect_err("needs DB_PASSWORD");
    assert_eq!(
        err.to_string(),
        "services.gitea.environment[6]: required variable DB_PASSWORD is missing a value: set DB_PASSWORD"
    );
}

#[test]
fn kompox_extensions() {
    let p = ok("services:
  web:
    image: wordpress
    ports: ['8080:80']
    x-kompox: {host: blog.example.com, port: 8080}
  api:
    image: x
    x-kompox: {hosts: [a.example.com, '*.b.example.com']}
volumes:
  db_data: {x-kompox: {size: 20Gi}}
  other: {}
");
    let web = &p.project.services["web"].kompox;
    assert_eq!(web.hosts, ["blog.example.com"]);
    assert_eq!(web.port, Some(8080));
    assert_eq!(
        p.project.services["api"].kompox.hosts,
        ["a.example.com", "*.b.example.com"]
    );
    assert_eq!(
        p.project.volumes["db_data"].kompox.size.as_deref(),
        Some("20Gi")
    );
    assert_eq!(p.project.volumes["other"].kompox.size, None);
    // (case, compose, error)
    for (case, yaml, want) in [
        (
            "bad size",
            "services: {web: {image: x}}\nvolumes: {d: {x-kompox: {size: lots}}}\n",
            "volumes.d.x-kompox.size: \"lots\" is not a Kubernetes quantity (expected e.g. 10Gi, 500M, 1e9)",
        ),
        (
            "zero size",
            "services: {web: {image: x}}\nvolumes: {d: {x-kompox: {size: 0}}}\n",
            "volumes.d.x-kompox.size: must be more than 0",
        ),
        (
            "bad host",
            "services: {web: {image: x, x-kompox: {hosts: [ok.example.com, Bad_Host]}}}\n",
            "services.web.x-kompox.hosts[1]: \"Bad_Host\" is not a host name (lower-case letters, digits, '-' and '.')",
        ),
        (
            "bad port",
            "services: {web: {image: x, x-kompox: {port: 70000}}}\n",
            "services.web.x-kompox.port: 70000 is not a port (1-65535)",
        ),
    ] {
        assert_eq!(errors(yaml), [want], "{case}");
    }
    assert_eq!(
        warnings("services: {web: {image: x, x-kompox: {hostz: a}}}\n"),
        ["services.web.x-kompox.hostz: unknown key; ignored"]
    );
}

#[test]
fn too_many_services_is_an_error_naming_services() {
    let many: String = (0..=MAX_SERVICES)
        .map(|i| format!("  s{i}:\n    image: nginx\n"))
        .collect();
    let errs = errors(&format!("services:\n{many}"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("services: 101 services; at most 100")),
        "{errs:?}"
    );
    let ok_count: String = (0..MAX_SERVICES)
        .map(|i| format!("  s{i}:\n    image: nginx\n"))
        .collect();
    assert_eq!(
        ok(&format!("services:\n{ok_count}")).project.services.len(),
        MAX_SERVICES
    );
}
