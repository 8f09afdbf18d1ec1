//! Interpolation variables: `spec.compose.envFrom` (each key of each Secret or ConfigMap,
//! later entries winning, like a container's envFrom), then the caller's plain extras
//! ([`RenderInput::interpolation`](super::RenderInput::interpolation)). Variables from
//! Secrets are secret-held: their values never appear in plain text in a rendered object.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{ErrorReason, Sources};
use crate::api::KompoxApp;
use crate::render::ctx::Ctx;

/// One variable.
#[derive(Clone, PartialEq, Eq)]
struct Var {
    value: String,
    secret: bool,
}

/// The variables of one render. `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Variables {
    map: BTreeMap<String, Var>,
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Variables {
    /// Gathers the variables; a missing (not optional) Secret/ConfigMap is a
    /// MissingReference error, a value that is not UTF-8 an InvalidSpec error (naming the
    /// key, never the value).
    pub(crate) fn gather(
        cx: &mut Ctx,
        app: &KompoxApp,
        sources: &Sources,
        extra: &BTreeMap<String, String>,
    ) -> Variables {
        let mut vars = Variables::default();
        for (i, e) in app.spec.compose.env_from.iter().enumerate() {
            let field = format!("spec.compose.envFrom[{i}]");
            let prefix = e.prefix.as_deref().unwrap_or_default();
            let (secret, r, ref_field, kind) = match (&e.secret_ref, &e.config_map_ref) {
                (Some(r), None) => (true, r, format!("{field}.secretRef"), "Secret"),
                (None, Some(r)) => (false, r, format!("{field}.configMapRef"), "ConfigMap"),
                // Refused by spec validation already.
                _ => continue,
            };
            let data: Option<Vec<(String, Vec<u8>)>> = if secret {
                sources.secrets.get(&r.name).map(|s| {
                    let keys = s
                        .data
                        .iter()
                        .flat_map(|d| d.keys())
                        .chain(s.string_data.iter().flat_map(|d| d.keys()));
                    keys.filter_map(|k| secret_value(s, k).map(|v| (k.clone(), v)))
                        .collect()
                })
            } else {
                sources.config_maps.get(&r.name).map(|c| {
                    c.data
                        .iter()
                        .flat_map(|d| d.keys())
                        .filter_map(|k| config_map_value(c, k).map(|v| (k.clone(), v)))
                        .collect()
                })
            };
            let Some(data) = data else {
                if !r.optional.unwrap_or(false) {
                    cx.error(
                        ErrorReason::MissingReference,
                        format!("{ref_field}.name"),
                        format!("{kind} {:?} not found", r.name),
                    );
                }
                continue;
            };
            for (k, v) in data {
                match String::from_utf8(v) {
                    Ok(value) => {
                        vars.map
                            .insert(format!("{prefix}{k}"), Var { value, secret });
                    }
                    Err(_) => cx.error(
                        ErrorReason::InvalidSpec,
                        format!("{ref_field}.name"),
                        format!("{kind} {:?} key {k:?}: not UTF-8 text", r.name),
                    ),
                }
            }
        }
        for (k, v) in extra {
            vars.map.insert(
                k.clone(),
                Var {
                    value: v.clone(),
                    secret: false,
                },
            );
        }
        vars
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.map.get(name).map(|v| v.value.clone())
    }

    /// Whether `name` is set and secret-held.
    pub(crate) fn is_secret(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| v.secret)
    }
}

/// The value of a Secret key: `stringData` wins over `data`, as the apiserver does.
pub(crate) fn secret_value(s: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.as_bytes().to_vec());
    }
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
}

/// The value of a ConfigMap key: `data`, else `binaryData`.
pub(crate) fn config_map_value(c: &ConfigMap, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = c.data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.as_bytes().to_vec());
    }
    c.binary_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
}
