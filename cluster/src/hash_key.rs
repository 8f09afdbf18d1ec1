//! The install's hash key: every digest a Kompox server publishes is keyed with it
//! ([`kompox_core::hash`]), so all three servers must hold the same one.
//!
//! It lives in one Secret (`k4x-system/kompox-hash-key`, key [`DATA_KEY`]). A server started
//! with `--hash-key-secret` reads it through the API and, when the Secret does not exist yet,
//! creates it with fresh material — whichever server starts first wins the create, the others
//! read what it wrote. So no installer (Helm, kustomize, `kubectl kompox install`) has to
//! generate a secret value, and none ever publishes one in a manifest.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kompox_core::hash::HashKey;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::{Error, is_conflict};

/// Where a server takes the hash key from (`--hash-key-file` or `--hash-key-secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file holding the material (a mounted Secret, or `install --local`'s file).
    File(std::path::PathBuf),
    /// The Secret `namespace/name`, read through the API and created when absent.
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl Source {
    /// The source the flags name: exactly one of `file` and `secret` (`NAMESPACE/NAME`).
    ///
    /// # Errors
    ///
    /// A message naming the flags when neither or both are given, or the Secret reference is
    /// not `NAMESPACE/NAME`.
    pub fn from_flags(
        file: Option<&std::path::Path>,
        secret: Option<&str>,
    ) -> Result<Source, String> {
        match (file, secret) {
            (Some(f), None) => Ok(Source::File(f.to_owned())),
            (None, Some(s)) => {
                let (namespace, name) =
                    parse_namespaced_name(s).map_err(|e| format!("--hash-key-secret {e}"))?;
                Ok(Source::Secret { namespace, name })
            }
            (None, None) => Err("give --hash-key-file or --hash-key-secret".into()),
            (Some(_), Some(_)) => {
                Err("give one of --hash-key-file and --hash-key-secret, not both".into())
            }
        }
    }

    /// Reads the key (creating the Secret when it is the source and absent).
    ///
    /// # Errors
    ///
    /// [`Error::HashKey`] naming the file or Secret, [`Error::Kube`] when the API fails.
    pub async fn load(&self, client: &Client) -> Result<HashKey, Error> {
        match self {
            Source::File(path) => {
                let what = format!("--hash-key-file {}", path.display());
                let material = std::fs::read(path).map_err(|e| Error::HashKey {
                    secret: what.clone(),
                    reason: e.to_string(),
                })?;
                HashKey::from_file_contents(&material).map_err(|e| Error::HashKey {
                    secret: what,
                    reason: e.to_string(),
                })
            }
            Source::Secret { namespace, name } => load_or_create(client, namespace, name).await,
        }
    }
}

/// Parses `NAMESPACE/NAME`.
///
/// # Errors
///
/// `"VALUE": want NAMESPACE/NAME`.
pub fn parse_namespaced_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{s:?}: want NAMESPACE/NAME")),
    }
}

/// Key of the material in the Secret.
pub const DATA_KEY: &str = "key";

/// Fresh material: 32 random bytes as 64 hex characters (text, so `kubectl get secret` and a
/// mounted file show it plainly to whoever may read it).
#[must_use]
pub fn generate() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The usable material a Secret holds, if any.
#[must_use]
pub fn material(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|m| HashKey::from_file_contents(m.as_bytes()).is_ok())
}

/// The Secret `namespace/name` holding `material`.
#[must_use]
pub fn secret(namespace: &str, name: &str, material: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "kompox".to_owned(),
                ),
                ("app.kubernetes.io/part-of".to_owned(), "kompox".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            DATA_KEY.to_owned(),
            ByteString(material.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Reads the hash key from `namespace/name`, creating the Secret with fresh material when it
/// does not exist (a lost create race reads the winner's).
///
/// # Errors
///
/// [`Error::Kube`] when reading or creating fails; [`Error::HashKey`] when the Secret exists
/// but holds no usable key (it is never overwritten: every digest already published depends
/// on it).
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<HashKey, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let what = format!("Secret {namespace}/{name}");
    for _ in 0..3 {
        let existing = api.get_opt(name).await.map_err(|source| Error::Kube {
            what: format!("getting {what}"),
            source,
        })?;
        let material = match existing {
            Some(s) => material(&s).ok_or_else(|| Error::HashKey {
                secret: what.clone(),
                reason: format!(
                    "no usable {DATA_KEY:?} (at least {} bytes)",
                    HashKey::MIN_LEN
                ),
            })?,
            None => {
                let fresh = generate();
                match api
                    .create(&PostParams::default(), &secret(namespace, name, &fresh))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(secret = %what, "created the hash key");
                        fresh
                    }
                    // Another server created it first: read theirs.
                    Err(e) if is_conflict(&e) => continue,
                    Err(source) => {
                        return Err(Error::Kube {
                            what: format!("creating {what}"),
                            source,
                        });
                    }
                }
            }
        };
        return HashKey::from_file_contents(material.as_bytes()).map_err(|e| Error::HashKey {
            secret: what.clone(),
            reason: e.to_string(),
        });
    }
    Err(Error::HashKey {
        secret: what,
        reason: "created and deleted again while reading".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_is_a_usable_key_and_fresh_each_time() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let s = secret("ns", "k", &a);
        assert_eq!(material(&s).as_deref(), Some(a.as_str()));
    }

    #[rstest::rstest]
    #[case::file_only(Some("k"), None, Ok(Source::File("k".into())))]
    #[case::secret_only(None, Some("ns/n"), Ok(Source::Secret { namespace: "ns".into(), name: "n".into() }))]
    #[case::neither(None, None, Err("give --hash-key-file or --hash-key-secret".into()))]
    #[case::both(Some("k"), Some("ns/n"), Err("give one of --hash-key-file and --hash-key-secret, not both".into()))]
    #[case::no_namespace(None, Some("n"), Err("--hash-key-secret \"n\": want NAMESPACE/NAME".into()))]
    #[case::extra_slash(None, Some("a/b/c"), Err("--hash-key-secret \"a/b/c\": want NAMESPACE/NAME".into()))]
    fn flags_name_one_source(
        #[case] file: Option<&str>,
        #[case] secret: Option<&str>,
        #[case] want: Result<Source, String>,
    ) {
        assert_eq!(
            Source::from_flags(file.map(std::path::Path::new), secret),
            want
        );
    }

    #[test]
    fn a_short_key_is_not_material() {
        assert_eq!(material(&secret("ns", "k", "short")), None);
    }
}
