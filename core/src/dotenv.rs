//! `.env` and `env_file` parsing, as compose-go v2 (the reference loader) does it.
//!
//! - Statements start at the first non-blank character; a statement starting with `#` is a
//!   comment to the end of its line. A UTF-8 byte order mark at the start is skipped.
//! - `KEY=value` or `KEY: value`, with an optional `export ` prefix. Keys hold letters,
//!   digits, `_`, `.`, `-`, `[`, `]`; blanks around the key are dropped, a blank inside it
//!   is an error.
//! - `KEY` alone on its line inherits: its value is looked up (the process environment for
//!   a project `.env`; the project's variables then the service's `environment` for an
//!   `env_file`), and the key is left out when the lookup finds nothing.
//! - Unquoted values run to the end of the line; ` #` (a space, then `#`) starts a comment;
//!   trailing blanks are trimmed; `${VAR}` is interpolated.
//! - `'single quoted'` values are literal (`\'` is a quote; other backslashes stay) and may
//!   span lines.
//! - `"double quoted"` values may span lines; `\a \b \f \n \r \t \v \" \\`, `\$` (a literal
//!   `$`) and `\0ooo` (octal) are escapes, other backslashes stay; then `${VAR}` is
//!   interpolated.
//! - After a closing quote the line goes on with the next statement (`A="x" B=y` sets both).
//! - Interpolation inside values looks a variable up first with the caller's lookup, then
//!   among the values parsed so far (earlier lines and earlier files).
//! - A later value for a key replaces the earlier one.
//!
//! Deviations from compose-go, none of which changes a file compose-go reads sensibly (each
//! is a declared, exactly asserted difference of the compose-oracle differential test,
//! `cli/tests/compose-corpus/dotenv-deviations`):
//! - an empty key (`=value`) is skipped (compose-go stores a variable named "");
//! - `KEY` alone on the last line without a final newline inherits like any other
//!   `KEY` line (compose-go stores its name as the value of a variable named "").
//!
//! Errors carry a line number and at most a key, never a value or the line's content: env
//! files hold secrets.

use std::collections::BTreeMap;

/// Largest env file accepted (a Secret holds at most 1 MiB).
pub const MAX_DOTENV_BYTES: usize = 1024 * 1024;

/// Why an env file could not be parsed. Messages never include values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// A key with a character outside compose's set.
    #[error("line {line}: invalid character in a variable name")]
    InvalidKey {
        /// 1-based line of the statement.
        line: usize,
    },
    /// A key with a blank inside.
    #[error("line {line}: a variable name cannot contain a space")]
    SpaceInKey {
        /// 1-based line of the statement.
        line: usize,
    },
    /// A quoted value without its closing quote.
    #[error("line {line}: unterminated quoted value")]
    Unterminated {
        /// 1-based line where the value starts.
        line: usize,
    },
    /// `${…}` inside a value could not be interpolated.
    #[error("line {line}: {key}: {reason}")]
    Interpolation {
        /// 1-based line of the statement.
        line: usize,
        /// The key whose value failed.
        key: String,
        /// Why (no value, no message from the file).
        reason: String,
    },
    /// The file is larger than [`MAX_DOTENV_BYTES`].
    #[error("env file is larger than {MAX_DOTENV_BYTES} bytes")]
    TooLarge,
}

/// Parses an env file into a new map (see the module docs for the format), looking
/// variables up with `lookup` first.
///
/// # Errors
/// The first malformed statement, by line.
pub fn parse_dotenv(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut vars = BTreeMap::new();
    parse_dotenv_into(text, &mut vars, lookup)?;
    Ok(vars)
}

/// Parses an env file into `vars` (later files of a list go into the same map: their
/// values replace earlier ones, and interpolation sees them).
///
/// # Errors
/// The first malformed statement, by line.
pub fn parse_dotenv_into(
    text: &str,
    vars: &mut BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), DotenvError> {
    if text.len() > MAX_DOTENV_BYTES {
        return Err(DotenvError::TooLarge);
    }
    let src = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser { src, pos: 0 };
    while let Some(stmt) = p.statement_start() {
        let line = p.line_at(stmt);
        let (key, inherited) = p.key(line)?;
        if inherited {
            if !key.is_empty()
                && let Some(v) = lookup(&key)
            {
                vars.insert(key, v);
            }
            continue;
        }
        // A statement that does not start its line follows a closing quote (`A='x'B=…`):
        // its "key" may be the rest of a value whose quotes went wrong, so errors do not
        // quote it.
        let starts_line = src.get(..stmt).is_none_or(|before| {
            before.trim_end_matches(is_space).ends_with('\n')
                || before.trim_end_matches(is_space).is_empty()
        });
        let named = if starts_line {
            key.as_str()
        } else {
            "the text after a closing quote"
        };
        let value = p.value(line, named, vars, lookup)?;
        if !key.is_empty() {
            vars.insert(key, value);
        }
    }
    Ok(())
}

/// compose-go's `isSpace`: blanks, but not line breaks.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn is_key_char(c: char) -> bool {
    c.is_alphabetic() || c.is_numeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of what is left.
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    /// 1-based line of byte offset `at` (computed only per statement).
    fn line_at(&self, at: usize) -> usize {
        1 + self
            .src
            .get(..at)
            .map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count())
    }

    /// Skips blanks, line breaks and comment lines; the offset of the next statement.
    fn statement_start(&mut self) -> Option<usize> {
        loop {
            let rest = self.rest();
            let skipped = rest.len() - rest.trim_start().len();
            self.pos += skipped;
            let rest = self.rest();
            if rest.is_empty() {
                return None;
            }
            if !rest.starts_with('#') {
                return Some(self.pos);
            }
            match rest.find('\n') {
                Some(n) => self.pos += n,
                None => {
                    self.pos = self.src.len();
                    return None;
                }
            }
        }
    }

    /// The key of the statement at `pos`, and whether it is inherited (`KEY` alone).
    fn key(&mut self, line: usize) -> Result<(String, bool), DotenvError> {
        let mut rest = self.rest();
        let mut base = self.pos;
        // `^export\s+`
        if let Some(after) = rest.strip_prefix("export")
            && after.starts_with([' ', '\t', '\n', '\u{c}', '\r'])
        {
            let trimmed = after.trim_start_matches(is_space);
            base += rest.len() - trimmed.len();
            rest = trimmed;
        }
        let mut end = None;
        for (i, c) in rest.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c == '\n'));
                    break;
                }
                c if is_key_char(c) => {}
                _ => return Err(DotenvError::InvalidKey { line }),
            }
        }
        let (key, inherited, next) = match end {
            Some((i, inherited)) => (rest.get(..i).unwrap_or_default(), inherited, base + i + 1),
            // The last line, without a line break: `KEY` alone.
            None => (rest, true, self.src.len()),
        };
        let key = key.trim_end();
        if key.contains(' ') {
            return Err(DotenvError::SpaceInKey { line });
        }
        self.pos = next;
        if !inherited {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
        }
        Ok((key.to_owned(), inherited))
    }

    /// The value at `pos`, quoted or not, escapes expanded and interpolated.
    fn value(
        &mut self,
        line: usize,
        key: &str,
        vars: &BTreeMap<String, String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, DotenvError> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let expand = |text: &str| -> Result<String, DotenvError> {
            let env = |k: &str| lookup(k).or_else(|| vars.get(k).cloned());
            crate::compose::interpolate::interpolate(text, &env)
                .map(|i| i.value)
                .map_err(|e| DotenvError::Interpolation {
                    line,
                    key: key.to_owned(),
                    reason: match e {
                        crate::compose::interpolate::InterpolationError::Required {
                            name, ..
                        } => format!("required variable {name} is missing a value"),
                        other => other.to_string(),
                    },
                })
        };
        let quote = match bytes.first() {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                let (raw, next) = match rest.find('\n') {
                    Some(n) => (rest.get(..n).unwrap_or_default(), self.pos + n + 1),
                    None => (rest, self.src.len()),
                };
                let raw = raw.split_once(" #").map_or(raw, |(v, _)| v);
                let value = expand(raw.trim_end())?;
                self.pos = next;
                return Ok(value);
            }
        };
        let mut chars: Vec<u8> = Vec::new();
        let mut escaped = false;
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            if b != quote {
                if !escaped && b == b'\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push(b'\\');
                }
                chars.push(b);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(b);
                continue;
            }
            // Only ASCII backslashes were dropped: still UTF-8.
            let text = String::from_utf8(chars).unwrap_or_default();
            let value = if quote == b'"' {
                expand(&expand_escapes(&text))?
            } else {
                text
            };
            self.pos += i + 1;
            return Ok(value);
        }
        Err(DotenvError::Unterminated { line })
    }
}

/// compose-go's escapes of double-quoted values: `\a \b \f \n \r \t \v \" \\`, `\$` (kept
/// as `$$` for the interpolation that follows) and `\0ooo` (octal, at most 255); anything
/// else stays as written.
fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        let mut it = after.chars();
        let simple = match it.next() {
            Some('a') => Some("\u{7}"),
            Some('b') => Some("\u{8}"),
            Some('f') => Some("\u{c}"),
            Some('n') => Some("\n"),
            Some('r') => Some("\r"),
            Some('t') => Some("\t"),
            Some('v') => Some("\u{b}"),
            Some('"') => Some("\""),
            Some('\\') => Some("\\"),
            Some('$') => Some("$$"),
            Some('c') => Some("\\c"),
            _ => None,
        };
        if let Some(rep) = simple {
            out.push_str(rep);
            rest = after.get(1..).unwrap_or_default();
            continue;
        }
        if after.starts_with('0') {
            let digits = after
                .bytes()
                .skip(1)
                .take(3)
                .take_while(u8::is_ascii_digit)
                .count();
            let matched = after.get(..1 + digits).unwrap_or_default();
            let octal = after.get(1..1 + digits).unwrap_or_default();
            let value = (digits == 3 && octal.bytes().all(|b| b <= b'7'))
                .then(|| u32::from_str_radix(octal, 8).ok())
                .flatten()
                .filter(|&v| v <= 255)
                .and_then(char::from_u32);
            match value {
                Some(c) => out.push(c),
                None => {
                    out.push('\\');
                    out.push_str(matched);
                }
            }
            rest = after.get(1 + digits..).unwrap_or_default();
            continue;
        }
        out.push('\\');
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn lookup(k: &str) -> Option<String> {
        match k {
            "HOME" => Some("/home/u".to_owned()),
            "FROM_ENV" => Some("env".to_owned()),
            "EMPTY_ENV" => Some(String::new()),
            _ => None,
        }
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        match parse_dotenv(text, &lookup) {
            Ok(p) => p.into_iter().collect(),
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn kv(items: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("empty", "", &[]),
            ("blank lines", "\n\n  \n", &[]),
            ("comment", "# comment\nA=1", &[("A", "1")]),
            ("indented comment", "   # c\nA=1", &[("A", "1")]),
            ("two", "A=1\nB=2", &[("A", "1"), ("B", "2")]),
            ("crlf", "A=1\r\nB=2\r\n", &[("A", "1"), ("B", "2")]),
            ("bom", "\u{feff}A=1", &[("A", "1")]),
            ("export", "export A=1", &[("A", "1")]),
            ("export blanks", "export   A=1", &[("A", "1")]),
            ("export as key", "export=1", &[("export", "1")]),
            ("export prefix of key", "exportA=1", &[("exportA", "1")]),
            ("empty value", "A=", &[("A", "")]),
            ("blank value", "A=   ", &[("A", "")]),
            (
                "inherited set",
                "FROM_ENV\nB=2",
                &[("B", "2"), ("FROM_ENV", "env")],
            ),
            ("inherited unset", "NOPE\nB=2", &[("B", "2")]),
            ("inherited last line", "FROM_ENV", &[("FROM_ENV", "env")]),
            ("inherited empty", "EMPTY_ENV\n", &[("EMPTY_ENV", "")]),
            ("blanks around", "  A  =  value  ", &[("A", "value")]),
            ("yaml style", "A: value", &[("A", "value")]),
            ("yaml style tight", "A:value", &[("A", "value")]),
            ("inline comment", "A=value # comment", &[("A", "value")]),
            (
                "tab hash is no comment",
                "A=value\t# c",
                &[("A", "value\t# c")],
            ),
            ("hash without space", "A=value#not", &[("A", "value#not")]),
            ("hash first", "A=#not-comment", &[("A", "#not-comment")]),
            ("blank then hash", "A= # only", &[("A", "# only")]),
            ("spaces inside", "A=a b c", &[("A", "a b c")]),
            ("equals in value", "A=x=y", &[("A", "x=y")]),
            (
                "url",
                "A=postgres://u:p@h:5432/db",
                &[("A", "postgres://u:p@h:5432/db")],
            ),
            (
                "single literal",
                "A='lit \\n $HOME # x'",
                &[("A", "lit \\n $HOME # x")],
            ),
            ("single escaped quote", "A='it\\'s'", &[("A", "it's")]),
            ("single comment after", "A='a'  # c", &[("A", "a")]),
            ("double newline", "A=\"x\\ny\"", &[("A", "x\ny")]),
            ("double quote escape", "A=\"q\\\"q\"", &[("A", "q\"q")]),
            ("double backslash", "A=\"b\\\\s\"", &[("A", "b\\s")]),
            ("double tab", "A=\"t\\tx\"", &[("A", "t\tx")]),
            (
                "double bell etc",
                "A=\"\\a\\b\\f\\v\\r\"",
                &[("A", "\u{7}\u{8}\u{c}\u{b}\r")],
            ),
            (
                "double unknown escape stays",
                "A=\"\\x\\c\\'\"",
                &[("A", "\\x\\c\\'")],
            ),
            ("double octal", "A=\"\\0101\\0102\"", &[("A", "AB")]),
            ("double short octal stays", "A=\"\\012\"", &[("A", "\\012")]),
            ("double big octal stays", "A=\"\\0777\"", &[("A", "\\0777")]),
            ("double escaped dollar", "A=\"\\$HOME\"", &[("A", "$HOME")]),
            (
                "double trailing backslash",
                "A=\"ends\\\\\"",
                &[("A", "ends\\")],
            ),
            (
                "double multi-line",
                "A=\"m\nl\"\nB=2",
                &[("A", "m\nl"), ("B", "2")],
            ),
            (
                "single multi-line",
                "A='m\nl'\nB=2",
                &[("A", "m\nl"), ("B", "2")],
            ),
            ("double hash", "A=\"# not\"", &[("A", "# not")]),
            ("empty double", "A=\"\"", &[("A", "")]),
            ("empty single", "A=''", &[("A", "")]),
            (
                "two on a line after quotes",
                "A=\"x\" B=y",
                &[("A", "x"), ("B", "y")],
            ),
            ("repeat", "A=1\nA=2", &[("A", "2")]),
            (
                "repeat keeps others",
                "A=1\nB=2\nA=3",
                &[("A", "3"), ("B", "2")],
            ),
            ("odd key chars", "my.key-1[0]=v", &[("my.key-1[0]", "v")]),
            ("unicode key", "clé=v", &[("clé", "v")]),
            ("tab in key", "A\tB=1", &[("A\tB", "1")]),
            ("empty key skipped", "=value\nB=2", &[("B", "2")]),
            (
                "interpolated from lookup",
                "A=$HOME/x",
                &[("A", "/home/u/x")],
            ),
            ("interpolated braces", "A=${HOME}", &[("A", "/home/u")]),
            (
                "interpolated earlier",
                "A=1\nB=${A}2",
                &[("A", "1"), ("B", "12")],
            ),
            (
                "lookup before earlier",
                "HOME=mine\nB=$HOME",
                &[("B", "/home/u"), ("HOME", "mine")],
            ),
            ("default", "A=${NOPE:-d}", &[("A", "d")]),
            ("unset is empty", "A=x${NOPE}y", &[("A", "xy")]),
            ("escaped dollar unquoted", "A=$$x", &[("A", "$x")]),
            (
                "double quoted interpolated",
                "A=\"${HOME}\"",
                &[("A", "/home/u")],
            ),
            (
                "single not interpolated",
                "A='${HOME}'",
                &[("A", "${HOME}")],
            ),
            ("lone dollar", "A=5$", &[("A", "5$")]),
        ];
        for (name, input, want) in cases {
            assert_eq!(pairs(input), kv(want), "case {name}: {input:?}");
        }
    }

    #[test]
    fn into_shares_earlier_files() {
        let mut vars = BTreeMap::new();
        parse_dotenv_into("A=1\nB=2", &mut vars, &lookup).expect("first");
        parse_dotenv_into("B=${A}${B}3", &mut vars, &lookup).expect("second");
        assert_eq!(vars.get("B").map(String::as_str), Some("123"));
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let interp = |line: usize, key: &str, reason: &str| DotenvError::Interpolation {
            line,
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let cases: &[(&str, &str, DotenvError)] = &[
            (
                "space in key",
                "A=1\nBAD KEY=secret",
                DotenvError::SpaceInKey { line: 2 },
            ),
            (
                "bad char",
                "A=1\n\nB@=secret",
                DotenvError::InvalidKey { line: 3 },
            ),
            (
                "unterminated",
                "A=\"secret",
                DotenvError::Unterminated { line: 1 },
            ),
            (
                "unterminated single",
                "A=1\nB='secret\nmore",
                DotenvError::Unterminated { line: 2 },
            ),
            (
                "words",
                "not a key line",
                DotenvError::SpaceInKey { line: 1 },
            ),
            (
                "bad interpolation",
                "A=1\nPW=${secret",
                interp(
                    2,
                    "PW",
                    &crate::compose::interpolate::InterpolationError::Invalid.to_string(),
                ),
            ),
            (
                "required",
                "PW=${NOPE:?secret hint}",
                interp(1, "PW", "required variable NOPE is missing a value"),
            ),
            // Quotes gone wrong: after the closing quote, the rest of the value reads as a
            // statement whose "key" is value text (found by the soak run).
            (
                "after a closing quote",
                "V1='secret-a\nV1='secret:${'",
                interp(
                    2,
                    "the text after a closing quote",
                    &crate::compose::interpolate::InterpolationError::Invalid.to_string(),
                ),
            ),
        ];
        for (name, input, want) in cases {
            let got = parse_dotenv(input, &lookup);
            assert_eq!(got.as_ref().err(), Some(want), "case {name}: {input:?}");
            let msg = want.to_string();
            assert!(!msg.contains("secret"), "case {name}: {msg}");
        }
        assert_eq!(
            DotenvError::InvalidKey { line: 2 }.to_string(),
            "line 2: invalid character in a variable name"
        );
    }

    #[test]
    fn line_numbers_count_multiline_values() {
        let got = parse_dotenv("A=\"1\n2\n3\"\nB=ok\nC=\"open", &lookup);
        assert_eq!(got, Err(DotenvError::Unterminated { line: 5 }));
    }

    #[test]
    fn too_large() {
        let big = "A=".to_owned() + &"x".repeat(MAX_DOTENV_BYTES);
        assert_eq!(parse_dotenv(&big, &lookup), Err(DotenvError::TooLarge));
    }

    /// Property: no input panics, errors never quote the input, and what parses parses the
    /// same again when written back as `KEY='value'` lines (values without `'`).
    #[test]
    fn never_panics_and_errors_never_quote_input() {
        const ALPHABET: &[char] = &[
            'A', 'b', '_', '=', ':', '"', '\'', '\\', '#', ' ', '\t', '\n', '\r', '$', '{', '}',
            'e', 'x', 'p', 'o', 'r', 't', '\u{feff}', 'é', '€', '0', '7', '-', '?', '+', '.', '[',
            '@', '\u{a0}', '\u{85}',
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..30_000 {
            let len = rng.below(48);
            let s: String = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
            match parse_dotenv(&s, &lookup) {
                Ok(vars) => {
                    let back: String = vars
                        .iter()
                        .filter(|(k, v)| {
                            !v.contains(['\'', '\\'])
                                && !k.contains(['\t', '\u{a0}', '\u{85}', '\r'])
                        })
                        .map(|(k, v)| format!("{k}='{v}'\n"))
                        .collect();
                    let again = parse_dotenv(&back, &|_| None);
                    assert!(again.is_ok(), "{s:?} → {back:?}: {again:?}");
                }
                Err(e) => {
                    // Keys may be named; nothing else from the input.
                    let shown = match &e {
                        DotenvError::Interpolation { reason, .. } => reason.clone(),
                        other => other.to_string(),
                    };
                    assert!(!shown.contains(['é', '€']), "{s:?}: {e}");
                }
            }
        }
    }
}
