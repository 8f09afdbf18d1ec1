//! Compose-spec variable interpolation on string scalars.
//!
//! Supported forms: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
//! `${VAR?message}`, `${VAR:+alternative}`, `${VAR+alternative}`, `$$` (a literal `$`), and
//! nested expressions inside the default/alternative text (`${A:-${B:-x}}`). Only the selected
//! branch is evaluated. Substituted values are not interpolated again.
//!
//! A `$` followed by anything else (`$(cmd)`, `$1`, `$ `, a trailing `$`) is kept as written,
//! as compose-spec's reference loader keeps it; only a malformed `${…}` is an error.
//!
//! Messages never quote the text being interpolated or a variable's value.

/// Deepest nesting of `${…}` inside defaults that is accepted.
const MAX_NESTING: usize = 16;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${` without its closing `}`.
    Unterminated,
    /// `${…}` whose content is not `NAME` optionally followed by an operator.
    InvalidExpression,
    /// `${VAR:?msg}` / `${VAR?msg}` with the variable missing.
    Required { name: String, message: String },
    /// Defaults nested deeper than [`MAX_NESTING`].
    TooDeep,
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unterminated => f.write_str("invalid interpolation: unterminated \"${\""),
            Self::InvalidExpression => f.write_str(
                "invalid interpolation: expected \"${NAME}\" optionally followed by one of \
                 :- - :? ? :+ +",
            ),
            Self::Required { name, message } if message.is_empty() => {
                write!(f, "required variable {name:?} is missing a value")
            }
            Self::Required { name, message } => {
                write!(
                    f,
                    "required variable {name:?} is missing a value: {message}"
                )
            }
            Self::TooDeep => write!(
                f,
                "invalid interpolation: \"${{\" nested deeper than {MAX_NESTING} levels"
            ),
        }
    }
}

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpolated {
    pub value: String,
    /// Variables referenced without a default that were not set (substituted by "").
    pub unset: Vec<String>,
}

/// Interpolates `text` with variables from `env`.
pub(crate) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let mut out = Interpolated {
        value: String::with_capacity(text.len()),
        unset: Vec::new(),
    };
    expand(text, env, 0, &mut out)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
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
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.value.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.value.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_and_more = &after[1..];
                let end = matching_brace(body_and_more).ok_or(InterpolationError::Unterminated)?;
                let body = &body_and_more[..end];
                braced(body, env, depth, out)?;
                rest = &body_and_more[end + 1..];
            }
            Some(c) if is_name_start(c) => {
                let len = after
                    .char_indices()
                    .find(|&(_, c)| !is_name_char(c))
                    .map_or(after.len(), |(i, _)| i);
                let name = &after[..len];
                substitute_plain(name, env, out);
                rest = &after[len..];
            }
            // Not an expression: the `$` is literal, as in compose-go.
            _ => {
                out.value.push('$');
                rest = after;
            }
        }
    }
    out.value.push_str(rest);
    Ok(())
}

/// The byte index of the `}` closing a `${` whose body starts at `s`, honouring nested `${`.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn substitute_plain(name: &str, env: &dyn Fn(&str) -> Option<String>, out: &mut Interpolated) {
    match env(name) {
        Some(v) => out.value.push_str(&v),
        None => out.unset.push(name.to_owned()),
    }
}

/// Evaluates the inside of `${…}`.
fn braced(
    body: &str,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    out: &mut Interpolated,
) -> Result<(), InterpolationError> {
    let name_len = body
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    let name = &body[..name_len];
    if !name.chars().next().is_some_and(is_name_start) {
        return Err(InterpolationError::InvalidExpression);
    }
    let op_and_arg = &body[name_len..];
    if op_and_arg.is_empty() {
        substitute_plain(name, env, out);
        return Ok(());
    }
    let (colon, rest) = match op_and_arg.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, op_and_arg),
    };
    let mut rest_chars = rest.chars();
    let op = rest_chars
        .next()
        .ok_or(InterpolationError::InvalidExpression)?;
    let arg = rest_chars.as_str();
    let value = env(name);
    // With a colon, an empty value counts as missing.
    let present = match &value {
        Some(v) => !colon || !v.is_empty(),
        None => false,
    };
    match op {
        '-' => {
            if present {
                out.value.push_str(value.as_deref().unwrap_or_default());
            } else {
                expand(arg, env, depth + 1, out)?;
            }
        }
        '?' => {
            if present {
                out.value.push_str(value.as_deref().unwrap_or_default());
            } else {
                let mut msg = Interpolated {
                    value: String::new(),
                    unset: Vec::new(),
                };
                expand(arg, env, depth + 1, &mut msg)?;
                return Err(InterpolationError::Required {
                    name: name.to_owned(),
                    message: msg.value,
                });
            }
        }
        '+' => {
            if present {
                expand(arg, env, depth + 1, out)?;
            }
        }
        _ => return Err(InterpolationError::InvalidExpression),
    }
    Ok(())
}
