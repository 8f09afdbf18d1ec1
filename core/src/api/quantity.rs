//! Parsing Kubernetes quantities (`10Gi`, `500M`, `1e9`) into byte counts, exactly.

use thiserror::Error;

/// A quantity that is not a byte count Kompox can use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The text does not follow the Kubernetes quantity grammar.
    #[error("{0:?} is not a Kubernetes quantity (expected e.g. 10Gi, 500M, 1e9)")]
    Syntax(String),
    /// The quantity is negative.
    #[error("{0:?} is negative")]
    Negative(String),
    /// The quantity does not fit in 128 bits.
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a quantity into a whole number of units (bytes for sizes), rounding fractions up.
///
/// Accepts the grammar of `resource.Quantity`: an optional sign, a decimal number, and a
/// binary (`Ki`..`Ei`), decimal (`n u m k M G T P E`) or exponent (`e3`, `E-2`) suffix.
///
/// # Errors
///
/// [`Error::Syntax`] for text outside the grammar, [`Error::Negative`] for values below
/// zero, [`Error::Overflow`] beyond `u128`.
pub fn parse_bytes(s: &str) -> Result<u128, Error> {
    let syntax = || Error::Syntax(s.to_string());
    let overflow = || Error::Overflow(s.to_string());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(syntax());
    }
    // mantissa = int_part ++ frac_part, value = mantissa * 10^-frac_len * multiplier
    let mut mantissa: u128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| overflow())?;
    let (binary_pow, mut dec_exp): (u32, i64) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => match other.strip_prefix(['e', 'E']) {
            Some(exp) => (0, parse_exponent(exp).ok_or_else(syntax)?),
            None => return Err(syntax()),
        },
    };
    if negative && mantissa != 0 {
        return Err(Error::Negative(s.to_string()));
    }
    dec_exp -= frac_len;
    let mut value = mantissa
        .checked_shl(binary_pow)
        .filter(|v| v >> binary_pow == mantissa)
        .ok_or_else(overflow)?;
    if dec_exp >= 0 {
        for _ in 0..dec_exp {
            if value == 0 {
                break;
            }
            value = value.checked_mul(10).ok_or_else(overflow)?;
        }
    } else {
        // Divide by 10^-dec_exp, rounding up; once the divisor exceeds the value the result is 0 or 1.
        let mut divisor: u128 = 1;
        for _ in 0..dec_exp.unsigned_abs() {
            match divisor.checked_mul(10) {
                Some(d) if d <= value.saturating_mul(10).max(10) => divisor = d,
                _ => return Ok(u128::from(value != 0)),
            }
        }
        value = value.div_ceil(divisor);
    }
    Ok(value)
}

/// Whether `s` is a non-negative quantity Kompox can turn into a byte count.
#[must_use]
pub fn is_valid(s: &str) -> bool {
    parse_bytes(s).is_ok()
}

fn parse_exponent(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        for (s, want) in [
            ("10Gi", 10u128 << 30),
            ("1Ki", 1024),
            ("1.5Gi", 3 << 29),
            ("500M", 500_000_000),
            ("1e9", 1_000_000_000),
            ("1E3", 1000),
            ("1E", 1_000_000_000_000_000_000),
            ("0", 0),
            ("+5", 5),
            (".5", 1),
            ("5.", 5),
            ("100m", 1),
            ("1500m", 2),
            ("1.0001k", 1001),
            ("12e-1", 2),
            ("1n", 1),
            ("0.0", 0),
            ("-0", 0),
        ] {
            assert_eq!(parse_bytes(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "Gi",
            "1.2.3",
            "10GB",
            "1e",
            "e3",
            "1 Gi",
            "١",
            "10gi",
            "--1",
            "1e1234567",
        ] {
            assert!(matches!(parse_bytes(s), Err(Error::Syntax(_))), "{s}");
        }
        assert!(matches!(parse_bytes("-1Gi"), Err(Error::Negative(_))));
        assert!(matches!(parse_bytes("1e100"), Err(Error::Overflow(_))));
        assert!(matches!(
            parse_bytes("99999999999999999999999999999999999999999"),
            Err(Error::Overflow(_))
        ));
        assert!(matches!(
            parse_bytes("1000000000000000000000000000000000000Ei"),
            Err(Error::Overflow(_))
        ));
    }

    #[test]
    fn tiny_fractions_round_up_without_overflow() {
        assert_eq!(parse_bytes("1e-999999"), Ok(1));
        assert_eq!(parse_bytes("0e-999999"), Ok(0));
    }
}
