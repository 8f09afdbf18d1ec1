//! Collecting field errors for the `validate()` methods.

use super::{Error, FieldError};
use crate::naming;

/// Accumulates [`FieldError`]s so a caller sees every problem at once.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}

pub(crate) fn check_label(errs: &mut Errors, field: &str, value: &str) {
    if let Err(e) = naming::validate_dns1123_label(value) {
        errs.push(field, e.to_string());
    }
}

pub(crate) fn check_subdomain(errs: &mut Errors, field: &str, value: &str) {
    if let Err(e) = naming::validate_dns1123_subdomain(value) {
        errs.push(field, e.to_string());
    }
}

/// ConfigMap/Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub(crate) fn check_configmap_key(errs: &mut Errors, field: &str, key: &str) {
    if key.is_empty() {
        errs.push(field, "key must not be empty");
    } else if key.len() > 253 {
        errs.push(
            field,
            format!("key is {} characters long, at most 253 allowed", key.len()),
        );
    } else if key == "." || key == ".." {
        errs.push(field, format!("key {key:?} is not allowed"));
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        errs.push(
            field,
            format!("key {key:?} may contain only letters, digits, '-', '_' and '.'"),
        );
    }
}
