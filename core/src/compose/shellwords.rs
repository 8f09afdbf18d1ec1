//! The string form of `command` and `entrypoint`, split into words exactly as compose-spec's
//! reference loader splits it (go-shellwords, with variable and backtick expansion off), so a
//! container gets the arguments `docker compose` would give it.
//!
//! - Words are separated by unquoted spaces, tabs, CR and LF.
//! - `'…'` is literal; `"…"` groups words; a backslash outside single quotes takes the next
//!   character literally, inside double quotes too (`"a\nb"` is `anb`, unlike POSIX sh).
//! - `` `…` `` and `$(…)` are kept as written, spaces included, and never run.
//! - An unquoted `;`, `&`, `|`, `<` or `>` ends the command: compose drops it and everything
//!   after it (a digit word right before `>`, as in `2>&1`, goes too). [`Split::operator`]
//!   names the operator so the caller can warn (without quoting the rest, which may hold an
//!   interpolated secret).
//! - An unquoted `(` not preceded by `$`, an unterminated quote, `` ` ``, `$(` or a trailing
//!   backslash is an error.

/// The words of a command string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub words: Vec<String>,
    /// The shell operator (`&&`, `|`, `>`…) where compose stopped, dropping the rest.
    pub operator: Option<String>,
}

/// Why a command string cannot be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// A quote, backquote or `$(` left open at the end (the opening text).
    Unterminated(&'static str),
    /// A backslash with nothing after it.
    TrailingBackslash,
    /// A `(` outside quotes that does not follow `$`.
    Parenthesis,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unterminated(what) => {
                return write!(f, "invalid command: unmatched {what:?}");
            }
            Self::TrailingBackslash => "invalid command: trailing backslash",
            Self::Parenthesis => "invalid command: \"(\" outside quotes (quote it)",
        })
    }
}

/// Splits `line` into words (see the module documentation).
pub(crate) fn split(line: &str) -> Result<Split, SplitError> {
    #[derive(PartialEq)]
    enum Got {
        No,
        Single,
        Quoted,
    }
    let mut words = Vec::new();
    let mut buf = String::new();
    let (mut escaped, mut double, mut single, mut back, mut dollar) =
        (false, false, false, false, false);
    let mut got = Got::No;
    let mut operator = None;
    let mut dollar_open = "$(";
    for (i, c) in line.char_indices() {
        if escaped {
            buf.push(c);
            escaped = false;
            got = Got::Single;
            continue;
        }
        if c == '\\' {
            if single {
                buf.push(c);
            } else {
                escaped = true;
            }
            continue;
        }
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if single || double || back || dollar {
                buf.push(c);
            } else if got != Got::No {
                words.push(std::mem::take(&mut buf));
                got = Got::No;
            }
            continue;
        }
        match c {
            '`' if !single && !double && !dollar => back = !back,
            ')' if !single && !double && !back => {
                // A `)` outside `$(…)` opens one, as in go-shellwords.
                dollar_open = if dollar { "$(" } else { ")" };
                dollar = !dollar;
            }
            '(' if !single && !double && !back => {
                if !dollar && buf.ends_with('$') {
                    dollar = true;
                    dollar_open = "$(";
                    buf.push(c);
                    continue;
                }
                return Err(SplitError::Parenthesis);
            }
            '"' if !single && !dollar => {
                if double {
                    got = Got::Quoted;
                }
                double = !double;
                continue;
            }
            '\'' if !double && !dollar => {
                if single {
                    got = Got::Quoted;
                }
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !(single || double || back || dollar) => {
                // `2>&1`: the file descriptor word goes with the redirection.
                if c == '>' && buf.starts_with(|d: char| d.is_ascii_digit()) {
                    got = Got::No;
                }
                operator = Some(
                    line[i..]
                        .chars()
                        .take_while(|c| matches!(c, ';' | '&' | '|' | '<' | '>'))
                        .collect(),
                );
                break;
            }
            _ => {}
        }
        got = Got::Single;
        buf.push(c);
    }
    if got != Got::No {
        words.push(buf);
    }
    for (open, what) in [
        (single, "'"),
        (double, "\""),
        (back, "`"),
        (dollar, dollar_open),
    ] {
        if open {
            return Err(SplitError::Unterminated(what));
        }
    }
    if escaped {
        return Err(SplitError::TrailingBackslash);
    }
    Ok(Split { words, operator })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        match split(line) {
            Ok(s) => s.words,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    #[test]
    fn splits_as_compose_does() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("plain words", "echo a  b\tc", &["echo", "a", "b", "c"]),
            ("empty", "", &[]),
            ("blanks", "  \n ", &[]),
            ("double quotes", r#"echo "a b" "#, &["echo", "a b"]),
            ("single quotes", "echo 'a \"b\" c'", &["echo", "a \"b\" c"]),
            ("empty quoted word", r#"a "" ''"#, &["a", "", ""]),
            ("quotes join", r#"a"b"'c'd"#, &["abcd"]),
            ("escaped space", r"back\ slash", &["back slash"]),
            (
                "backslash in double quotes",
                r#"printf "%s\n" "a\"b""#,
                &["printf", "%sn", "a\"b"],
            ),
            ("backslash in single quotes", r"'a\nb'", &["a\\nb"]),
            ("escaped backslash", r"e\\f", &["e\\f"]),
            ("dollar kept", "echo $HOME ${X}", &["echo", "$HOME", "${X}"]),
            (
                "command substitution kept",
                "echo $(date +%s) x",
                &["echo", "$(date +%s)", "x"],
            ),
            (
                "backquotes kept",
                "echo `id -u` x",
                &["echo", "`id -u`", "x"],
            ),
            (
                "operators quoted",
                "sh -c 'a && b; c | d > e'",
                &["sh", "-c", "a && b; c | d > e"],
            ),
            ("newline separates", "a\nb", &["a", "b"]),
            ("unicode", "écho «x»", &["écho", "«x»"]),
        ];
        for (name, line, want) in cases {
            assert_eq!(words(line), *want, "{name}: {line:?}");
            assert_eq!(split(line).map(|s| s.operator), Ok(None), "{name}");
        }
    }

    #[test]
    fn stops_at_shell_operators() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("echo a && echo b", &["echo", "a"], "&&"),
            ("echo a&&b", &["echo", "a"], "&&"),
            ("a; b", &["a"], ";"),
            ("a | b", &["a"], "|"),
            ("a < in", &["a"], "<"),
            ("a > out", &["a"], ">"),
            ("run 2>&1", &["run"], ">&"),
            ("2>&1 x", &[], ">&"),
            ("a & ", &["a"], "&"),
        ];
        for (line, want, op) in cases {
            match split(line) {
                Ok(s) => {
                    assert_eq!(s.words, *want, "{line:?}");
                    assert_eq!(s.operator.as_deref(), Some(*op), "{line:?}");
                }
                Err(e) => panic!("{line:?}: {e}"),
            }
        }
    }

    #[test]
    fn errors() {
        for (line, want) in [
            ("echo 'open", SplitError::Unterminated("'")),
            ("echo \"open", SplitError::Unterminated("\"")),
            ("echo `open", SplitError::Unterminated("`")),
            ("echo $(open", SplitError::Unterminated("$(")),
            ("echo a)", SplitError::Unterminated(")")),
            ("trailing\\", SplitError::TrailingBackslash),
            ("echo (x)", SplitError::Parenthesis),
            ("f()", SplitError::Parenthesis),
        ] {
            assert_eq!(split(line), Err(want), "{line:?}");
        }
    }
}
