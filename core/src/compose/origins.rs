//! Where interpolated variables went: for each scalar whose text used `${VAR}`, the
//! variables it used and which of them are secret-held. Diagnostics about such a scalar name
//! the variables, and never show a secret-held variable's value.

use std::collections::BTreeMap;
use std::fmt;

use super::interpolate::Interpolated;

/// One interpolated scalar.
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    /// The text as written in the compose file.
    pub template: String,
    /// Variables whose values were inserted, in order of use.
    pub used: Vec<String>,
    /// Variables referenced without a default that were not set.
    pub unset: Vec<String>,
    /// The secret-held ones among `used`.
    pub secret: Vec<String>,
    /// The interpolated text (kept to redact it from messages; never shown).
    value: String,
    /// Values of the `secret` variables (kept to redact them; never shown).
    secret_values: Vec<String>,
    /// The value is kept in a Secret by the renderer (an `environment` entry).
    kept_in_secret: bool,
}

impl Origin {
    /// Whether the renderer keeps this value in a Secret (an `environment` entry).
    #[must_use]
    pub fn kept_in_secret(&self) -> bool {
        self.kept_in_secret
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("template", &self.template)
            .field("used", &self.used)
            .field("unset", &self.unset)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// The interpolated scalars of a compose file, by path (`services.web.image`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interpolations {
    by_path: BTreeMap<String, Origin>,
}

impl Interpolations {
    /// Records a scalar at `path` (nothing when it used no variable).
    pub(crate) fn record(
        &mut self,
        path: &str,
        template: &str,
        done: &Interpolated,
        env: &dyn Fn(&str) -> Option<String>,
        secret: &dyn Fn(&str) -> bool,
    ) {
        let Interpolated { value, used, unset } = done;
        if used.is_empty() && unset.is_empty() {
            return;
        }
        let secret: Vec<String> = used.iter().filter(|n| secret(n)).cloned().collect();
        let secret_values = secret
            .iter()
            .filter_map(|n| env(n))
            .filter(|v| !v.is_empty())
            .collect();
        self.by_path.insert(
            path.to_owned(),
            Origin {
                template: template.to_owned(),
                used: used.clone(),
                unset: unset.clone(),
                secret,
                value: value.to_owned(),
                secret_values,
                kept_in_secret: false,
            },
        );
    }

    /// The scalar at `path`, if it was interpolated.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Origin> {
        self.by_path.get(path)
    }

    /// Marks the scalar at `path` as kept in a Secret.
    pub(crate) fn keep_in_secret(&mut self, path: &str) {
        if let Some(o) = self.by_path.get_mut(path) {
            o.kept_in_secret = true;
        }
    }

    /// Whether the scalar at `path` used a secret-held variable.
    #[must_use]
    pub fn uses_secret(&self, path: &str) -> bool {
        self.get(path).is_some_and(|o| !o.secret.is_empty())
    }

    /// Every scalar that used a secret-held variable, by path.
    pub fn secret_uses(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.by_path
            .iter()
            .filter(|(_, o)| !o.secret.is_empty())
            .map(|(p, o)| (p.as_str(), o))
    }

    /// The scalars at `path`, under it, or above it.
    fn related<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Origin> + 'a {
        self.by_path
            .iter()
            .filter(move |(p, _)| {
                !path.is_empty() && (related_path(p, path) || related_path(path, p))
            })
            .map(|(_, o)| o)
    }

    /// Makes an error about an interpolated scalar name the variables it came from, and
    /// removes secret-held values from it.
    pub fn explain(&self, path: &str, message: &mut String) {
        let mut names: Vec<String> = Vec::new();
        for o in self.related(path) {
            for n in &o.used {
                push_unique(&mut names, format!("${{{n}}}"));
            }
            for n in &o.unset {
                push_unique(&mut names, format!("${{{n}}} (not set)"));
            }
        }
        self.redact(path, message);
        if !names.is_empty() {
            message.push_str(&format!(" (interpolated from {})", names.join(", ")));
        }
    }

    /// Removes secret-held values from a message about `path`: the interpolated text is
    /// replaced by the text as written; if a secret value still shows, the whole message is.
    pub fn redact(&self, path: &str, message: &mut String) {
        let secret: Vec<&Origin> = self
            .related(path)
            .filter(|o| !o.secret.is_empty())
            .collect();
        if secret.is_empty() {
            return;
        }
        for o in &secret {
            if !o.value.is_empty() {
                *message = message.replace(&format!("{:?}", o.value), &format!("{:?}", o.template));
            }
        }
        // A parser may quote a piece of the value (an image reference's component): quoted
        // text with an alphanumeric run of 3 or more characters of a secret value shows it.
        let leaks = secret
            .iter()
            .flat_map(|o| &o.secret_values)
            .any(|v| shows_part_of(message, v));
        if leaks {
            let names: Vec<String> = secret
                .iter()
                .flat_map(|o| &o.secret)
                .map(|n| format!("${{{n}}}"))
                .collect();
            *message = format!(
                "invalid value (not shown: it uses the secret-held {})",
                names.join(", ")
            );
        }
    }
}

/// Whether `message` contains `value`, or quotes text holding one of its alphanumeric runs of
/// 3+ characters (a parser quoting a piece of the value, as an image reference's component).
fn shows_part_of(message: &str, value: &str) -> bool {
    message.contains(value)
        || message.split('"').skip(1).step_by(2).any(|quoted| {
            value
                .split(|c: char| !c.is_alphanumeric())
                .filter(|part| part.chars().count() >= 3)
                .any(|part| quoted.contains(part))
        })
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Whether `inner` is `outer` or a path under it.
fn related_path(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interps() -> Interpolations {
        let env = |n: &str| match n {
            "PW" => Some("hunter2".to_owned()),
            "TAG" => Some(String::new()),
            "PORT" => Some("80x".to_owned()),
            _ => None,
        };
        let secret = |n: &str| n == "PW";
        let mut i = Interpolations::default();
        i.record(
            "services.web.image",
            "nginx:${TAG}",
            &Interpolated {
                value: "nginx:".into(),
                used: vec!["TAG".into()],
                unset: vec![],
            },
            &env,
            &secret,
        );
        i.record(
            "services.web.ports[0]",
            "${PORT}:80",
            &Interpolated {
                value: "80x:80".into(),
                used: vec!["PORT".into()],
                unset: vec![],
            },
            &env,
            &secret,
        );
        i.record(
            "services.db.user",
            "${PW}",
            &Interpolated {
                value: "hunter2".into(),
                used: vec!["PW".into()],
                unset: vec![],
            },
            &env,
            &secret,
        );
        i.record(
            "services.db.command",
            "run ${PW} ${NOPE}",
            &Interpolated {
                value: "run hunter2 ".into(),
                used: vec!["PW".into()],
                unset: vec!["NOPE".into()],
            },
            &env,
            &secret,
        );
        i
    }

    #[test]
    fn explain() {
        let i = interps();
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "names the variable",
                "services.web.image",
                "invalid image reference \"nginx:\"",
                "invalid image reference \"nginx:\" (interpolated from ${TAG})",
            ),
            (
                "a plain value stays",
                "services.web.ports[0]",
                "invalid port \"80x\"",
                "invalid port \"80x\" (interpolated from ${PORT})",
            ),
            (
                "a path above the scalar",
                "services.web",
                "broken",
                "broken (interpolated from ${TAG}, ${PORT})",
            ),
            (
                "the secret value becomes the template",
                "services.db.user",
                "expected a number, found \"hunter2\"",
                "expected a number, found \"${PW}\" (interpolated from ${PW})",
            ),
            (
                "a secret value elsewhere in the message hides the message",
                "services.db.command",
                "word hunter2 is odd",
                "invalid value (not shown: it uses the secret-held ${PW}) (interpolated from ${PW}, ${NOPE} (not set))",
            ),
            (
                "an unrelated path",
                "services.other.image",
                "bad \"hunter2\"",
                "bad \"hunter2\"",
            ),
        ];
        for (name, path, msg, want) in cases {
            let mut m = (*msg).to_owned();
            i.explain(path, &mut m);
            assert_eq!(m, *want, "case {name}");
        }
        let debug = format!("{i:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let uses: Vec<&str> = i.secret_uses().map(|(p, _)| p).collect();
        assert_eq!(uses, ["services.db.command", "services.db.user"]);
    }

    #[test]
    fn pieces_of_a_secret_value_in_quotes_show_it() {
        for (name, message, value, shows) in [
            ("whole value", "bad x=hunter2/y", "hunter2/y", true),
            (
                "quoted component",
                "invalid component \"nginx:hunter2\"",
                "hunter2/",
                true,
            ),
            ("short runs ignored", "invalid \"ab\"", "ab/cd", false),
            (
                "unquoted pieces ignored",
                "uses the secret-held ${PW}",
                "held/x",
                false,
            ),
            ("template only", "invalid \"${PW}\"", "hunter2", false),
        ] {
            assert_eq!(super::shows_part_of(message, value), shows, "{name}");
        }
    }
}
