//! Compose-spec variable interpolation on string scalars, as compose-go v2 (the reference
//! loader) does it.
//!
//! | form | value |
//! |---|---|
//! | `$VAR`, `${VAR}` | the value; unset → `""` (the caller warns) |
//! | `${VAR:-default}` / `${VAR-default}` | the default when unset or empty / when unset |
//! | `${VAR:+alt}` / `${VAR+alt}` | `alt` when set and not empty / when set, else the value (`""`) |
//! | `${VAR:?msg}` / `${VAR?msg}` | an error when unset or empty / when unset |
//! | `$$` | a literal `$` |
//! | `$` followed by anything else (`$1`, `$-`, a final `$`) | itself, literally |
//!
//! Names are `[_A-Za-z][_A-Za-z0-9]*`. Defaults, alternatives and messages are interpolated
//! themselves (`${A:-${B:-x}}`), only when selected; substituted values are not.
//!
//! compose-go's matching of a `${NAME<op>…}` expression is kept exactly, quirks included:
//! the expression needs a `}` later on the same line, and it ends at the `}` that balances
//! the opening `{` when every `{` (with or without `$`, skipping the character after it)
//! counts as an opening; without a balancing `}` it runs to the last `}` of the line.
//! `${` followed by anything but `NAME}` or `NAME<op>` is an error.
//!
//! The one deviation: defaults nested deeper than [`MAX_NESTING`] levels are an error
//! (compose-go has no limit; a declared refusal difference of the compose-oracle test).
//!
//! Messages never quote the text being interpolated or a variable's value.

/// Deepest nesting of `${…}` inside defaults that is accepted.
pub(crate) const MAX_NESTING: usize = 16;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${` not followed by `NAME}` or `NAME` and an operator with a `}` on the same line.
    Invalid,
    /// `${VAR:?msg}` / `${VAR?msg}` with the variable missing.
    Required {
        name: String,
        message: String,
        /// Variables whose values are in `message`.
        message_used: Vec<String>,
    },
    /// Defaults nested deeper than [`MAX_NESTING`].
    TooDeep,
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid => f.write_str(
                "invalid interpolation: \"${\" must be followed by NAME} or NAME and one of \
                 :- - :+ + :? ? with a closing \"}\" on the same line (write \"$$\" for a literal \"$\")",
            ),
            Self::Required { name, message, .. } if message.is_empty() => {
                write!(f, "required variable {name} is missing a value")
            }
            Self::Required { name, message, .. } => {
                write!(f, "required variable {name} is missing a value: {message}")
            }
            Self::TooDeep => write!(
                f,
                "invalid interpolation: \"${{\" nested deeper than {MAX_NESTING} levels"
            ),
        }
    }
}

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Interpolated {
    pub value: String,
    /// Variables referenced without a default that were not set (substituted by "").
    pub unset: Vec<String>,
    /// Variables whose values were inserted into `value`, in order of use.
    pub used: Vec<String>,
}

impl Interpolated {
    fn note(list: &mut Vec<String>, name: &str) {
        if !list.iter().any(|n| n == name) {
            list.push(name.to_owned());
        }
    }
}

/// Interpolates `text` with variables from `env`.
pub(crate) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let mut out = Interpolated {
        value: String::with_capacity(text.len()),
        ..Interpolated::default()
    };
    expand(text, env, 0, &mut out)?;
    Ok(out)
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// The line being scanned and the last `}` on it (so that a long line with many
/// expressions is scanned once, not once per expression).
struct LineCache {
    /// Index of the line's `\n` (or the text's end).
    end: usize,
    last_brace: Option<usize>,
}

/// Expands `text` into `out`.
fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    out: &mut Interpolated,
) -> Result<(), InterpolationError> {
    if depth > MAX_NESTING {
        return Err(InterpolationError::TooDeep);
    }
    let bytes = text.as_bytes();
    let mut line: Option<LineCache> = None;
    let mut i = 0;
    while let Some(rel) = text.get(i..).and_then(|t| t.find('$')) {
        let pos = i + rel;
        out.value.push_str(text.get(i..pos).unwrap_or_default());
        match bytes.get(pos + 1).copied() {
            Some(b'$') => {
                out.value.push('$');
                i = pos + 2;
            }
            Some(b'{') => {
                i = braced(text, pos, env, depth, out, &mut line)?;
            }
            Some(b) if is_name_start(b) => {
                let start = pos + 1;
                let len = bytes
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&b| is_name_char(b))
                    .count();
                let name = text.get(start..start + len).unwrap_or_default();
                substitute(name, env, out);
                i = start + len;
            }
            _ => {
                // compose-go's pattern does not match: the `$` stays as written.
                out.value.push('$');
                i = pos + 1;
            }
        }
    }
    out.value.push_str(text.get(i..).unwrap_or_default());
    Ok(())
}

fn substitute(name: &str, env: &dyn Fn(&str) -> Option<String>, out: &mut Interpolated) {
    match env(name) {
        Some(v) => {
            out.value.push_str(&v);
            Interpolated::note(&mut out.used, name);
        }
        None => Interpolated::note(&mut out.unset, name),
    }
}

/// Evaluates the `${…}` starting at `text[pos]` (`$`) into `out`; returns the index after it.
fn braced(
    text: &str,
    pos: usize,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    out: &mut Interpolated,
    line: &mut Option<LineCache>,
) -> Result<usize, InterpolationError> {
    let bytes = text.as_bytes();
    let name_start = pos + 2;
    if !bytes.get(name_start).copied().is_some_and(is_name_start) {
        return Err(InterpolationError::Invalid);
    }
    let name_len = bytes
        .get(name_start..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| is_name_char(b))
        .count();
    let name_end = name_start + name_len;
    let name = text.get(name_start..name_end).unwrap_or_default();
    let (colon, op_at) = match bytes.get(name_end) {
        Some(b'}') => {
            substitute(name, env, out);
            return Ok(name_end + 1);
        }
        Some(b':') => (true, name_end + 1),
        _ => (false, name_end),
    };
    let op = match bytes.get(op_at) {
        Some(&op @ (b'-' | b'+' | b'?')) => op,
        _ => return Err(InterpolationError::Invalid),
    };
    let arg_start = op_at + 1;
    // The pattern's `(.*)}`: the match runs to the last `}` on this line.
    if line.as_ref().is_none_or(|c| arg_start > c.end) {
        let end = text
            .get(arg_start..)
            .and_then(|t| t.find('\n'))
            .map_or(text.len(), |n| arg_start + n);
        let last_brace = text
            .get(arg_start..end)
            .and_then(|t| t.rfind('}'))
            .map(|n| arg_start + n);
        *line = Some(LineCache { end, last_brace });
    }
    let match_end = match line.as_ref().and_then(|c| c.last_brace) {
        Some(b) if b >= arg_start => b,
        _ => return Err(InterpolationError::Invalid),
    };
    let close = first_closing_brace(bytes.get(pos..=match_end).unwrap_or_default())
        .map_or(match_end, |c| pos + c);
    let arg = text.get(arg_start..close).unwrap_or_default();
    let value = env(name);
    // With a colon, an empty value counts as missing.
    let present = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
    match op {
        b'-' => {
            if present {
                out.value.push_str(value.as_deref().unwrap_or_default());
                Interpolated::note(&mut out.used, name);
            } else {
                expand(arg, env, depth + 1, out)?;
            }
        }
        b'+' => {
            // Not present: the value, which is empty or unset.
            if present {
                expand(arg, env, depth + 1, out)?;
            }
        }
        _ => {
            if present {
                out.value.push_str(value.as_deref().unwrap_or_default());
                Interpolated::note(&mut out.used, name);
            } else {
                let mut msg = Interpolated::default();
                expand(arg, env, depth + 1, &mut msg)?;
                return Err(InterpolationError::Required {
                    name: name.to_owned(),
                    message: msg.value,
                    message_used: msg.used,
                });
            }
        }
    }
    Ok(close + 1)
}

/// compose-go's `getFirstBraceClosingIndex`: the index of the `}` that balances the first
/// `{` of `s`, where every `{` opens (and the byte after it is skipped).
fn first_closing_brace(s: &[u8]) -> Option<usize> {
    let mut open = 0i64;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'}' {
            open -= 1;
            if open == 0 {
                return Some(i);
            }
        }
        if b == b'{' {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".to_owned()),
            "EMPTY" => Some(String::new()),
            "B" => Some("bee".to_owned()),
            "DOLLAR" => Some("$HOME ${X}".to_owned()),
            "lower" => Some("low".to_owned()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, InterpolationError> {
        interpolate(text, &env).map(|i| i.value)
    }

    #[test]
    fn forms() {
        let cases: &[(&str, &str, &str)] = &[
            ("plain text", "no dollar", "no dollar"),
            ("named", "$SET", "value"),
            ("named in text", "a-$SET-b", "a-value-b"),
            ("named stops at non-name", "$SET.x", "value.x"),
            ("named lower case", "$lower", "low"),
            ("braced", "${SET}", "value"),
            ("braced in text", "x${SET}y", "xvaluey"),
            ("unset named", "[$NOPE]", "[]"),
            ("unset braced", "[${NOPE}]", "[]"),
            ("empty", "[${EMPTY}]", "[]"),
            ("escaped dollar", "$$SET", "$SET"),
            ("escaped braces", "$${SET}", "${SET}"),
            ("two escaped", "$$$$", "$$"),
            ("escape then var", "$$$SET", "$value"),
            ("lone dollar at end", "cost: 5$", "cost: 5$"),
            ("dollar digit", "$1", "$1"),
            ("dollar dash", "$-x", "$-x"),
            ("dollar space", "$ x", "$ x"),
            ("dollar paren", "$(cmd)", "$(cmd)"),
            ("dollar paren around a variable", "$($B)", "$(bee)"),
            ("dollar non-ascii", "$é", "$é"),
            (":- unset", "${NOPE:-def}", "def"),
            (":- empty", "${EMPTY:-def}", "def"),
            (":- set", "${SET:-def}", "value"),
            ("- unset", "${NOPE-def}", "def"),
            ("- empty", "${EMPTY-def}", ""),
            ("- set", "${SET-def}", "value"),
            (":- empty default", "${NOPE:-}", ""),
            (":+ set", "${SET:+alt}", "alt"),
            (":+ empty", "${EMPTY:+alt}", ""),
            (":+ unset", "${NOPE:+alt}", ""),
            ("+ set", "${SET+alt}", "alt"),
            ("+ empty", "${EMPTY+alt}", "alt"),
            ("+ unset", "${NOPE+alt}", ""),
            (":? set", "${SET:?msg}", "value"),
            ("? empty", "${EMPTY?msg}", ""),
            ("nested default", "${NOPE:-${B}}", "bee"),
            ("nested twice", "${NOPE:-${NOPE2:-${B}}}", "bee"),
            ("nested unused", "${SET:-${NOPE:?never}}", "value"),
            ("nested alt", "${SET:+<${B}>}", "<bee>"),
            ("default with text after", "${NOPE:-a}-${B}", "a-bee"),
            (
                "two defaults on a line",
                "${NOPE:-x} and ${NOPE:-y}",
                "x and y",
            ),
            ("default with colon", "${NOPE:-a:b}", "a:b"),
            ("default with dash", "${NOPE:--x}", "-x"),
            (
                "default with url",
                "${NOPE:-http://h:80/p}",
                "http://h:80/p",
            ),
            ("default with escaped dollar", "${NOPE:-$$x}", "$x"),
            ("default with plain var", "${NOPE:-$B}", "bee"),
            ("default with bare braces", "${NOPE:-{x}}", "{x}"),
            ("default closes at balance", "${NOPE:-{a}b}c", "{a}bc"),
            ("value not re-interpolated", "${DOLLAR}", "$HOME ${X}"),
            (
                "value with default not re-interpolated",
                "${DOLLAR:-x}",
                "$HOME ${X}",
            ),
            ("multi-line, braces per line", "${NOPE:-a}\n${B}", "a\nbee"),
            ("unicode around", "é${SET}€", "évalue€"),
            ("underscore name", "${_X:-u}", "u"),
            ("adjacent named", "$SET$B", "valuebee"),
            ("adjacent braced", "${SET}${B}", "valuebee"),
            ("lone closing brace", "}", "}"),
            ("braces around named", "{$B}", "{bee}"),
            ("alt with two variables", "${SET:+${B}-${SET}}", "bee-value"),
            ("default then stray brace", "${NOPE:-a}b}", "ab}"),
            (
                "default with spaces",
                "${NOPE:-with space : colon}",
                "with space : colon",
            ),
            ("image tag", "img:${TAG:-latest}", "img:latest"),
        ];
        for (name, input, want) in cases {
            assert_eq!(run(input).as_deref(), Ok(*want), "case {name}: {input:?}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str, InterpolationError)] = &[
            ("unterminated", "${SET", InterpolationError::Invalid),
            ("empty braces", "${}", InterpolationError::Invalid),
            ("digit name", "${1}", InterpolationError::Invalid),
            ("space in braces", "${ SET }", InterpolationError::Invalid),
            ("bad operator", "${SET:x}", InterpolationError::Invalid),
            ("colon alone", "${SET:}", InterpolationError::Invalid),
            (
                "operator without closing brace on the line",
                "${NOPE:-a\n}",
                InterpolationError::Invalid,
            ),
            (
                ":? unset",
                "${NOPE:?need it}",
                InterpolationError::Required {
                    name: "NOPE".into(),
                    message: "need it".into(),
                    message_used: vec![],
                },
            ),
            (
                ":? empty",
                "${EMPTY:?}",
                InterpolationError::Required {
                    name: "EMPTY".into(),
                    message: String::new(),
                    message_used: vec![],
                },
            ),
            (
                "? unset, message interpolated",
                "${NOPE?set ${B}}",
                InterpolationError::Required {
                    name: "NOPE".into(),
                    message: "set bee".into(),
                    message_used: vec!["B".into()],
                },
            ),
            (
                "required in a default",
                "${NOPE:-${NOPE2:?inner}}",
                InterpolationError::Required {
                    name: "NOPE2".into(),
                    message: "inner".into(),
                    message_used: vec![],
                },
            ),
            (
                "invalid in a selected default",
                "${NOPE:-${}}",
                InterpolationError::Invalid,
            ),
            (
                "a default that does not balance runs to the line's last brace",
                "${NOPE:-{} ${B}",
                InterpolationError::Invalid,
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(run(input).as_ref(), Err(want), "case {name}: {input:?}");
        }
        assert_eq!(
            InterpolationError::Required {
                name: "PW".into(),
                message: "set it in .env".into(),
                message_used: vec![]
            }
            .to_string(),
            "required variable PW is missing a value: set it in .env"
        );
    }

    #[test]
    fn used_and_unset_variables() {
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            ("plain", "$SET ${B}", &["SET", "B"], &[]),
            ("unset", "$NOPE ${NOPE2}", &[], &["NOPE", "NOPE2"]),
            ("default taken", "${NOPE:-${B}}", &["B"], &[]),
            ("default not taken", "${SET:-${B}}", &["SET"], &[]),
            (
                "alt: the variable's value is not inserted",
                "${SET:+x}",
                &[],
                &[],
            ),
            ("alt with a variable", "${SET:+${B}}", &["B"], &[]),
            ("repeated once", "$SET$SET", &["SET"], &[]),
            ("escaped is no use", "$$SET", &[], &[]),
        ];
        for (name, input, used, unset) in cases {
            let got = interpolate(input, &env).unwrap_or_default();
            assert_eq!(got.used, *used, "case {name}: used");
            assert_eq!(got.unset, *unset, "case {name}: unset");
        }
    }

    #[test]
    fn nesting_limit() {
        let mut s = "x".to_owned();
        for _ in 0..=MAX_NESTING {
            s = format!("${{NOPE:-{s}}}");
        }
        assert_eq!(run(&s), Err(InterpolationError::TooDeep));
        let mut ok = "x".to_owned();
        for _ in 0..MAX_NESTING {
            ok = format!("${{NOPE:-{ok}}}");
        }
        assert_eq!(run(&ok).as_deref(), Ok("x"));
    }

    #[test]
    fn long_lines_are_linear() {
        let line = "${NOPE:-x}".repeat(50_000);
        let t = std::time::Instant::now();
        assert_eq!(run(&line).map(|v| v.len()), Ok(50_000));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
