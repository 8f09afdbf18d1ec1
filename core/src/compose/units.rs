//! Compose unit syntaxes: durations (`1m30s`), byte sizes (`512M`, `1.5g`) and CPU counts
//! (`"0.5"`). Each parser returns a message suitable after `path: `.

use std::time::Duration;

/// Parses a compose duration such as `10s`, `1m30s`, `500ms`, `1h`, `1.5h`, `2d`, `0`.
///
/// Units: `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, `d` (24h), `w` (7d). A number needs a unit
/// (except `0`); negative durations are refused.
///
/// # Errors
/// A message naming the offending text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid duration {text:?} (expected e.g. \"10s\", \"1m30s\", \"500ms\")");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|&(_, c)| c.is_ascii_digit() || c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return Err(invalid()),
        };
        total_nanos = total_nanos
            .checked_add(scale_decimal(num, unit_nanos).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = next;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid())?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, nanos))
}

/// `digits[.digits] * unit`, exact up to the unit's resolution (extra fraction digits are
/// truncated). `None` on overflow or malformed numbers.
fn scale_decimal(num: &str, unit: u128) -> Option<u128> {
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if int_part.len() > 30 {
        return None;
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let total = int.checked_mul(unit)?;
    // Fraction: exact as digits / 10^n, truncated to the unit (at most 18 digits are used).
    let frac_digits = frac_part.get(..frac_part.len().min(18)).unwrap_or("");
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = if frac_digits.is_empty() {
        0
    } else {
        let digits: u128 = frac_digits.parse().ok()?;
        let denom = 10u128.checked_pow(u32::try_from(frac_digits.len()).ok()?)?;
        digits.checked_mul(unit)? / denom
    };
    let total = total.checked_add(frac)?;
    Some(total)
}

/// Parses a byte size the way compose (docker's `RAMInBytes`) does: a number with an optional
/// binary unit `b`, `k`, `m`, `g`, `t`, `p` (case-insensitive, 1024-based, optional `i`/`b`
/// suffix: `512M`, `512mb`, `512MiB`, `1.5g`, `1024`). Fractions of a byte are truncated.
///
/// # Errors
/// A message naming the offending text.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?} (expected bytes or e.g. \"512M\", \"1.5g\")");
    let s = text.trim();
    let num_len = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (num, unit) = s.split_at(num_len);
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let multiplier: u128 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        "p" | "pb" | "pi" | "pib" => 1 << 50,
        _ => return Err(invalid()),
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(invalid());
    }
    let bytes = scale_decimal(num, multiplier).ok_or_else(invalid)?;
    u64::try_from(bytes).map_err(|_| invalid())
}

/// Parses a CPU count (`"0.5"`, `2`, `"1.25"`) into millicores. Precision finer than one
/// millicore is refused, as are negative values.
///
/// # Errors
/// A message naming the offending text.
pub fn parse_millicpus(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid cpus {text:?} (expected a number such as \"0.5\" or 2)");
    let s = text.trim();
    if s.is_empty()
        || !s.chars().all(|c| c.is_ascii_digit() || c == '.')
        || s.matches('.').count() > 1
        || s == "."
    {
        return Err(invalid());
    }
    let frac = s.split_once('.').map_or("", |(_, f)| f);
    let significant = frac.trim_end_matches('0');
    if significant.len() > 3 {
        return Err(format!(
            "invalid cpus {text:?}: finer than one millicore (0.001)"
        ));
    }
    let millis = scale_decimal(s, 1000).ok_or_else(invalid)?;
    u64::try_from(millis).map_err(|_| invalid())
}
