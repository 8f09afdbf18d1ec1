//! Collecting field errors for the `validate()` methods.

use super::common::{LocalKeyRef, ProviderSpec};
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

/// `spec.provider` of KompoxApp and KompoxDisk: the credentials Secret's name.
pub(crate) fn check_provider(errs: &mut Errors, provider: &ProviderSpec) {
    if let Some(r) = &provider.credentials_secret_ref {
        check_subdomain(errs, "spec.provider.credentialsSecretRef.name", &r.name);
    }
}

/// A ConfigMap/Secret key reference at `field`: `field.name` and `field.key`.
pub(crate) fn check_key_ref(errs: &mut Errors, field: &str, r: &LocalKeyRef) {
    check_subdomain(errs, &format!("{field}.name"), &r.name);
    check_configmap_key(errs, &format!("{field}.key"), &r.key);
}

/// An optional string that, when set, must not be blank.
pub(crate) fn check_not_blank(errs: &mut Errors, field: &str, value: Option<&String>) {
    if value.is_some_and(|v| v.trim().is_empty()) {
        errs.push(field, "must not be empty when set");
    }
}

/// Map keys (annotations, options) must not be empty.
pub(crate) fn check_keys<'a>(
    errs: &mut Errors,
    field: &str,
    what: &str,
    keys: impl IntoIterator<Item = &'a String>,
) {
    for k in keys {
        if k.is_empty() {
            errs.push(field, format!("{what} key must not be empty"));
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
