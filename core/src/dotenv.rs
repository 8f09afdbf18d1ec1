//! `env_file` parsing, following compose's dotenv format.
//!
//! - Blank lines and lines whose first non-blank character is `#` are skipped.
//! - `KEY=value` (also `KEY: value`, as compose accepts); an optional `export ` prefix.
//!   Whitespace around the key and before the value is trimmed.
//! - Unquoted values run to the end of the line; ` #` (whitespace then `#`) starts an inline
//!   comment; trailing whitespace is trimmed. `KEY=` is the empty string.
//! - `'single quoted'` values are literal (no escapes) and may span lines.
//! - `"double quoted"` values may span lines and understand `\n`, `\r`, `\t`, `\"`, `\\`,
//!   `\$` (and `\a \b \f \v \'`); any other `\x` is `x`.
//! - After a closing quote only whitespace or a `# comment` may follow on that line.
//! - A line with a key alone (`KEY`) means "inherit from the environment" in compose; core
//!   has no environment, so such lines are skipped.
//! - Values are taken literally: unlike compose, `${VAR}` inside a value is not expanded.
//! - Keys: letters, digits, `_`, `.`, `-`, `[`, `]` (compose's set).
//! - Order is preserved; when a key repeats, the later value wins and the key keeps the
//!   position of its first occurrence.
//!
//! Errors carry a line number and never the line's content: env files hold secrets.

/// Largest env file accepted (a Secret holds at most 1 MiB).
pub const MAX_DOTENV_BYTES: usize = 1024 * 1024;

/// Why an env file could not be parsed. Messages never include values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// The key of a `KEY=value` line is empty or has characters outside compose's set.
    #[error("line {line}: invalid variable name")]
    InvalidKey {
        /// 1-based line of the statement.
        line: usize,
    },
    /// A quoted value without its closing quote.
    #[error("line {line}: unterminated quoted value")]
    Unterminated {
        /// 1-based line where the value starts.
        line: usize,
    },
    /// Something other than whitespace or a comment after a closing quote.
    #[error("line {line}: unexpected text after the closing quote")]
    TrailingText {
        /// 1-based line of the closing quote.
        line: usize,
    },
    /// The file is larger than [`MAX_DOTENV_BYTES`].
    #[error("env file is larger than {MAX_DOTENV_BYTES} bytes")]
    TooLarge,
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(is_key_char)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses an env file into `(key, value)` pairs (see the module docs for the format).
///
/// # Errors
/// The first malformed line, by number.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    if text.len() > MAX_DOTENV_BYTES {
        return Err(DotenvError::TooLarge);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = text.replace("\r\n", "\n");
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = normalized.as_str();
    let mut line = 1usize;
    while !rest.is_empty() {
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let this_line = &rest[..line_end];
        let next = rest.get(line_end + 1..).unwrap_or("");
        let stmt = this_line.trim_start_matches(is_blank);
        if stmt.is_empty() || stmt.starts_with('#') {
            rest = next;
            line += 1;
            continue;
        }
        let stmt = match stmt.strip_prefix("export") {
            Some(after) if after.starts_with(is_blank) => after.trim_start_matches(is_blank),
            _ => stmt,
        };
        let Some(sep) = stmt.find(['=', ':']) else {
            // `KEY` alone: inherited from the environment in compose; skipped here.
            if !valid_key(stmt.trim_end_matches(is_blank)) {
                return Err(DotenvError::InvalidKey { line });
            }
            rest = next;
            line += 1;
            continue;
        };
        let key = stmt[..sep].trim_end_matches(is_blank);
        if !valid_key(key) {
            return Err(DotenvError::InvalidKey { line });
        }
        let key = key.to_owned();
        // The value, from after the separator to the end of the whole remaining input
        // (quoted values may span lines).
        let value_offset = (this_line.len() - stmt.len()) + sep + 1;
        let after_sep = rest.get(value_offset..).unwrap_or("");
        let value_text = after_sep.trim_start_matches(is_blank);
        let value;
        match value_text.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let body = &value_text[1..];
                let close = if q == '\'' {
                    body.find('\'')
                } else {
                    find_closing_double(body)
                };
                let Some(close) = close else {
                    return Err(DotenvError::Unterminated { line });
                };
                let inner = &body[..close];
                let newlines = inner.matches('\n').count();
                value = if q == '"' {
                    unescape(inner)
                } else {
                    inner.to_owned()
                };
                let tail = &body[close + 1..];
                let tail_end = tail.find('\n').unwrap_or(tail.len());
                let trailing = tail[..tail_end].trim_start_matches(is_blank);
                line += newlines;
                if !trailing.is_empty() && !trailing.starts_with('#') {
                    return Err(DotenvError::TrailingText { line });
                }
                rest = tail.get(tail_end + 1..).unwrap_or("");
                line += 1;
            }
            _ => {
                let raw_end = after_sep.find('\n').unwrap_or(after_sep.len());
                let raw = &after_sep[..raw_end];
                let without_comment = match inline_comment(raw) {
                    Some(i) => &raw[..i],
                    None => raw,
                };
                value = without_comment.trim().to_owned();
                rest = next;
                line += 1;
            }
        }
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => out.push((key, value)),
        }
    }
    Ok(out)
}

/// Byte index of an inline comment in an unquoted value: a `#` preceded by whitespace.
fn inline_comment(raw: &str) -> Option<usize> {
    let bytes = raw.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes.get(i) == Some(&b'#') && matches!(bytes.get(i - 1), Some(b' ' | b'\t')))
}

/// Index of the closing `"` in `body`, skipping backslash escapes.
fn find_closing_double(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i);
        }
    }
    None
}

/// Expands the escapes of a double-quoted value.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn pairs(text: &str) -> Vec<(String, String)> {
        match parse_dotenv(text) {
            Ok(p) => p,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn kv(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("\n\n  \n", &[]),
            ("# comment\nA=1", &[("A", "1")]),
            ("   # indented comment\nA=1", &[("A", "1")]),
            ("A=1\nB=2", &[("A", "1"), ("B", "2")]),
            ("A=1\r\nB=2\r\n", &[("A", "1"), ("B", "2")]),
            ("\u{feff}A=1", &[("A", "1")]),
            ("export A=1", &[("A", "1")]),
            ("export   A=1", &[("A", "1")]),
            ("export=1", &[("export", "1")]),
            ("exportA=1", &[("exportA", "1")]),
            ("A=", &[("A", "")]),
            ("A=   ", &[("A", "")]),
            ("A", &[]),
            ("A\nB=2", &[("B", "2")]),
            ("  A  =  value  ", &[("A", "value")]),
            ("A: value", &[("A", "value")]),
            ("A=value # comment", &[("A", "value")]),
            ("A=value\t# comment", &[("A", "value")]),
            ("A=value#not-comment", &[("A", "value#not-comment")]),
            ("A=#not-comment", &[("A", "#not-comment")]),
            ("A= # only comment", &[("A", "")]),
            ("A=a b c", &[("A", "a b c")]),
            ("A=x=y", &[("A", "x=y")]),
            (
                "A=postgres://u:p@h:5432/db",
                &[("A", "postgres://u:p@h:5432/db")],
            ),
            (
                "A='literal \\n $X # not comment'",
                &[("A", "literal \\n $X # not comment")],
            ),
            ("A='a'  # comment", &[("A", "a")]),
            ("A=\"x\\ny\"", &[("A", "x\ny")]),
            ("A=\"q\\\"q\"", &[("A", "q\"q")]),
            ("A=\"back\\\\slash\"", &[("A", "back\\slash")]),
            ("A=\"tab\\tend\"", &[("A", "tab\tend")]),
            ("A=\"\\$HOME\"", &[("A", "$HOME")]),
            (
                "A=\"ends with backslash\\\\\"",
                &[("A", "ends with backslash\\")],
            ),
            (
                "A=\"multi\nline\"\nB=2",
                &[("A", "multi\nline"), ("B", "2")],
            ),
            ("A='multi\nline'\nB=2", &[("A", "multi\nline"), ("B", "2")]),
            ("A=\"# not a comment\"", &[("A", "# not a comment")]),
            ("A=\"\"", &[("A", "")]),
            ("A=''", &[("A", "")]),
            ("A=1\nA=2", &[("A", "2")]),
            ("A=1\nB=2\nA=3", &[("A", "3"), ("B", "2")]),
            ("my.key-1[0]=v", &[("my.key-1[0]", "v")]),
            ("A=$B", &[("A", "$B")]),
            ("A=${B:-x}", &[("A", "${B:-x}")]),
        ];
        for (input, want) in cases {
            assert_eq!(pairs(input), kv(want), "input {input:?}");
        }
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        let cases: &[(&str, DotenvError)] = &[
            ("=value", DotenvError::InvalidKey { line: 1 }),
            ("A=1\nBAD KEY=secret", DotenvError::InvalidKey { line: 2 }),
            ("A=1\n\nB@=secret", DotenvError::InvalidKey { line: 3 }),
            ("A=\"secret", DotenvError::Unterminated { line: 1 }),
            (
                "A=1\nB='secret\nmore",
                DotenvError::Unterminated { line: 2 },
            ),
            ("A=\"sec\nret\"tail", DotenvError::TrailingText { line: 2 }),
            ("A='x' y", DotenvError::TrailingText { line: 1 }),
            ("not a key line", DotenvError::InvalidKey { line: 1 }),
        ];
        for (input, want) in cases {
            let got = parse_dotenv(input);
            assert_eq!(got.as_ref().err(), Some(want), "input {input:?}");
            let msg = want.to_string();
            assert!(!msg.contains("secret"), "{msg}");
        }
        assert_eq!(
            DotenvError::InvalidKey { line: 2 }.to_string(),
            "line 2: invalid variable name"
        );
    }

    #[test]
    fn line_numbers_count_multiline_values() {
        let got = parse_dotenv("A=\"1\n2\n3\"\nB=ok\nC=\"open");
        assert_eq!(got, Err(DotenvError::Unterminated { line: 5 }));
    }

    #[test]
    fn too_large() {
        let big = "A=".to_owned() + &"x".repeat(MAX_DOTENV_BYTES);
        assert_eq!(parse_dotenv(&big), Err(DotenvError::TooLarge));
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        const ALPHABET: &[char] = &[
            'A', 'b', '_', '=', ':', '"', '\'', '\\', '#', ' ', '\t', '\n', '\r', '$', '{', '}',
            'e', 'x', 'p', 'o', 'r', 't', '\u{feff}', 'é', '€', '0',
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(40);
            let s: String = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
            let _ = parse_dotenv(&s);
        }
    }
}
