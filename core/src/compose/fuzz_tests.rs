//! Seeded fuzz-style tests: `parse` must return (never panic, never hang) on arbitrary
//! strings, on mutations of valid compose files, and on random trees of known keys.
//! The generator is a fixed-seed xorshift, so any failure reproduces; the seed and
//! iteration are printed on panic by the assertion messages.

use super::keys::{KEYS, Scope};
use super::parse;
use super::tests::GITEA;
use crate::test_rng::Rng;

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("8080".into()),
        "DB_PASSWORD" => Some("pw".into()),
        _ => None,
    }
}

/// Runs `parse` and checks the result's invariants. Returns whether it parsed.
fn check(text: &str) -> bool {
    match parse(text, &env) {
        Ok(parsed) => {
            for w in &parsed.warnings {
                assert!(!w.message.is_empty(), "empty warning at {:?}", w.path);
            }
            true
        }
        Err(e) => {
            assert!(
                !e.errors.is_empty(),
                "an Error without diagnostics for {text:?}"
            );
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

const TOKENS: &[&str] = &[
    "${",
    "$",
    "$$",
    "}",
    "{",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    ",",
    "\"",
    "'",
    "\n",
    "\n  ",
    "\n    ",
    "#",
    "&a ",
    "*a",
    "<<: ",
    "<<: *a",
    "!!binary ",
    "!reset ",
    "!!str ",
    "? ",
    "|\n  ",
    ">-\n  ",
    "0",
    "-1",
    "0x1F",
    "0o17",
    "99999999999999999999999",
    ".inf",
    ".nan",
    "~",
    "null",
    "true",
    "yes",
    "1.5",
    "65536",
    "8080:80",
    "./",
    "../",
    "/",
    "x-",
    "services",
    "volumes",
    "ports",
    "image",
    "${A:-${B:-x}}",
    "${A:?err}",
    "\t",
    "\u{feff}",
    "é",
    "\\",
    "%",
    "@",
    "`",
    "---\n",
    "...\n",
];

#[test]
fn random_strings_never_panic() {
    const CHARS: &[char] = &[
        'a', 'b', 's', ':', ' ', '\n', '-', '[', ']', '{', '}', '"', '\'', '$', '&', '*', '!', '#',
        '|', '>', '?', ',', '0', '1', '.', '/', '\\', '\t', '<', '%', '@', '~', 'é',
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..4_000 {
        let len = rng.below(80);
        let mut s = String::new();
        for _ in 0..len {
            if rng.below(4) == 0 {
                s.push_str(rng.pick::<&str>(TOKENS));
            } else {
                s.push(*rng.pick(CHARS));
            }
        }
        let _ = i;
        let _ = check(&s);
    }
}

const SAMPLES: &[&str] = &[
    GITEA,
    "services:\n  web:\n    image: nginx\n    ports: [\"8080:80\", {target: 443, published: 8443}]\n    \
     volumes: [\"./html:/usr/share/nginx/html:ro\", \"data:/data\", {type: tmpfs, target: /tmp}]\n    \
     healthcheck: {test: [\"CMD\", \"curl\", \"-f\", \"http://localhost\"], interval: 10s}\n    \
     deploy: {resources: {limits: {cpus: \"0.5\", memory: 256M}}}\n    user: \"1000:1000\"\n    \
     environment: {A: $A, B: \"${EMPTY:-x}\"}\n    configs: [conf]\n    secrets: [{source: key, target: k, mode: 0400}]\n\
     volumes: {data: {}}\nconfigs: {conf: {content: hi}}\nsecrets: {key: {environment: KEY}}\n",
    "x-base: &base\n  image: app\n  restart: always\nservices:\n  a:\n    <<: *base\n    depends_on: [b]\n  \
     b:\n    <<: *base\n    command: [\"sh\", \"-c\", \"echo $$HOME\"]\n    expose: [\"3000-3002\"]\n",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = chars.len();
        match rng.below(6) {
            // Delete a range.
            0 => {
                let start = rng.below(len + 1);
                let end = (start + rng.below(12)).min(len);
                chars.drain(start..end);
            }
            // Insert a token.
            1 | 2 => {
                let at = rng.below(len + 1);
                let token = *rng.pick(TOKENS);
                for (i, c) in token.chars().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            // Replace one character.
            3 => {
                if let Some(c) = chars.get_mut(rng.below(len)) {
                    *c = ['x', ':', ' ', '\n', '-', '$', '"', '0'][rng.below(8)];
                }
            }
            // Duplicate a line.
            4 => {
                let s: String = chars.iter().collect();
                let lines: Vec<&str> = s.lines().collect();
                let n = rng.below(lines.len());
                let mut out: Vec<&str> = lines.clone();
                if let Some(line) = lines.get(n) {
                    out.insert(n, line);
                }
                chars = out.join("\n").chars().collect();
            }
            // Swap two lines.
            _ => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                if a < lines.len() && b < lines.len() {
                    lines.swap(a, b);
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_compose_files_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut parsed = 0;
    for sample in SAMPLES {
        assert!(check(sample), "sample must parse:\n{sample}");
        for _ in 0..1_500 {
            let mutated = mutate(&mut rng, sample);
            if check(&mutated) {
                parsed += 1;
            }
        }
    }
    // The mutations must leave enough files valid to exercise the walker, not only YAML errors.
    assert!(parsed > 300, "only {parsed} mutated files parsed");
}

/// Random scalar or small structure, as JSON (which is YAML).
fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    const STRINGS: &[&str] = &[
        "",
        "x",
        "80",
        "8080:80",
        "127.0.0.1:80:80/udp",
        "1-3",
        "./a:/b:ro",
        "data:/d",
        "/abs",
        "../up:/x",
        "~/h:/h",
        "10s",
        "1m30s",
        "512M",
        "0.5",
        "CMD",
        "CMD-SHELL",
        "NONE",
        "1000:1000",
        "on-failure:3",
        "no",
        "always",
        "A=1",
        "KEY",
        "${A}",
        "${MISSING:?m}",
        "$",
        "${",
        "service_healthy",
        "bind",
        "volume",
        "tmpfs",
        "web",
        "db",
        "ghost",
        "true",
        "0440",
        "host",
        "-1",
        "é",
    ];
    let kinds = if depth >= 4 { 5 } else { 8 };
    match rng.below(kinds) {
        0 => J::Null,
        1 => J::Bool(rng.below(2) == 0),
        2 => J::from(i64::try_from(rng.next() % 70_000).unwrap_or(0) - 5),
        3 => J::from(f64::from(u32::try_from(rng.next() % 1000).unwrap_or(0)) / 100.0),
        4 => J::String(rng.pick(STRINGS).to_string()),
        5 | 6 => {
            let n = rng.below(4);
            J::Array((0..n).map(|_| random_value(rng, depth + 1)).collect())
        }
        _ => {
            const KEYS_POOL: &[&str] = &[
                "target",
                "published",
                "protocol",
                "source",
                "type",
                "read_only",
                "volume",
                "subpath",
                "tmpfs",
                "size",
                "condition",
                "required",
                "path",
                "test",
                "interval",
                "retries",
                "limits",
                "reservations",
                "cpus",
                "memory",
                "replicas",
                "resources",
                "uid",
                "mode",
                "db",
                "web",
                "A",
                "x-e",
                "file",
                "content",
                "external",
                "name",
                "environment",
            ];
            let n = rng.below(4);
            let mut map = serde_json::Map::new();
            for _ in 0..n {
                let key = rng.pick(KEYS_POOL).to_string();
                map.insert(key, random_value(rng, depth + 1));
            }
            J::Object(map)
        }
    }
}

#[test]
fn random_trees_of_known_keys_never_panic() {
    let service_keys: Vec<&str> = KEYS
        .iter()
        .filter(|r| r.scope == Scope::Service)
        .map(|r| r.key)
        .collect();
    let top_keys: Vec<&str> = KEYS
        .iter()
        .filter(|r| r.scope == Scope::TopLevel && r.key != "services")
        .map(|r| r.key)
        .collect();
    let mut rng = Rng(0x0bad_5eed_0000_0001);
    let mut parsed = 0;
    for _ in 0..2_000 {
        let mut services = serde_json::Map::new();
        for name in ["web", "db"] {
            let mut svc = serde_json::Map::new();
            for _ in 0..rng.below(6) {
                let key = *rng.pick(&service_keys);
                svc.insert(key.to_owned(), random_value(&mut rng, 1));
            }
            services.insert(name.to_owned(), serde_json::Value::Object(svc));
        }
        let mut root = serde_json::Map::new();
        root.insert("services".to_owned(), serde_json::Value::Object(services));
        for _ in 0..rng.below(3) {
            let key = *rng.pick(&top_keys);
            root.insert(key.to_owned(), random_value(&mut rng, 1));
        }
        let text = serde_json::Value::Object(root).to_string();
        if check(&text) {
            parsed += 1;
        }
    }
    assert!(parsed > 20, "only {parsed} random trees parsed");
}
