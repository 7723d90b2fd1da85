//! Image pulls from OCI registries (the distribution API, with token auth, through `oci-client`)
//! into the store: the manifest (an index is resolved to the host platform), the config and each
//! layer missing from the store, every blob verified by digest, then the name recorded. Progress is
//! reported per layer. Registries on loopback (`localhost`, `127.0.0.1`, `[::1]`) are spoken to
//! over plain HTTP, as docker and containerd do; all others over HTTPS.
//!
//! Credentials come from `imagePullSecrets` (`kubernetes.io/dockerconfigjson` or
//! `kubernetes.io/dockercfg`), matched to the registry as the kubelet does.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use super::archive::host_platform;
use super::{ImageError, ImageRef, ImageStore, Index, Manifest, media_type, normalize_reference, parse};

/// What a pull reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is known: how many layers and bytes the image has.
    Resolved { digest: String, layers: usize, bytes: u64 },
    /// One layer is in the store (`cached`: it was there already).
    Layer { digest: String, bytes: u64, cached: bool },
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub image: ImageRef,
    /// Bytes of the image (config and layers, compressed).
    pub size: u64,
    /// Bytes actually downloaded.
    pub downloaded: u64,
    pub elapsed: std::time::Duration,
}

/// Registry credentials: anonymous, or a user and password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The registry host of a normalised reference (`docker.io`, `127.0.0.1:5000`).
pub fn registry_of(normalized: &str) -> &str {
    normalized.split('/').next().unwrap_or(normalized)
}

/// The host part of an auth key: `https://index.docker.io/v1/` → `index.docker.io`.
fn auth_key_host(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Credentials for `registry` from pull secrets' data: each item is the content of a
/// `.dockerconfigjson` (`{"auths": {...}}`) or a legacy `.dockercfg` (the `auths` map itself).
/// The first secret with an entry for the registry wins (docker.io also matches
/// `index.docker.io`). Pure.
pub fn credentials_for(registry: &str, secrets: &[Vec<u8>]) -> Credentials {
    let same = |key: &str| {
        let host = auth_key_host(key);
        host == registry || (registry == "docker.io" && host == "index.docker.io")
    };
    for data in secrets {
        let auths = match serde_json::from_slice::<DockerConfig>(data) {
            Ok(c) if !c.auths.is_empty() => c.auths,
            _ => serde_json::from_slice::<BTreeMap<String, DockerAuth>>(data).unwrap_or_default(),
        };
        for (key, entry) in auths {
            if !same(&key) {
                continue;
            }
            if let (Some(username), Some(password)) = (entry.username.clone(), entry.password.clone()) {
                return Credentials::Basic { username, password };
            }
            let decoded = entry
                .auth
                .as_deref()
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Credentials::Basic { username: username.into(), password: password.into() };
            }
        }
    }
    Credentials::Anonymous
}

/// Whether a registry host is on loopback (spoken to over plain HTTP).
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn pull_err(reference: &str) -> impl Fn(oci_client::errors::OciDistributionError) -> ImageError {
    let reference = reference.to_string();
    move |e| ImageError::Pull { reference: reference.clone(), message: crate::kubelet::error_chain(&e) }
}

const ACCEPTED: &[&str] =
    &[media_type::OCI_MANIFEST, media_type::OCI_INDEX, media_type::DOCKER_MANIFEST, media_type::DOCKER_MANIFEST_LIST];

/// Pulls `reference` into `store`, reporting progress to `progress`.
///
/// # Errors
/// [`ImageError::Pull`] with the registry's answer (not found, unauthorized, unreachable), or a
/// store error.
pub async fn pull(
    store: &ImageStore,
    reference: &str,
    credentials: &Credentials,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
) -> Result<Pulled, ImageError> {
    let started = Instant::now();
    let name = normalize_reference(reference)?;
    let registry = registry_of(&name).to_string();
    let image: Reference = name.parse().map_err(|e: oci_client::ParseError| ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: e.to_string(),
    })?;
    let protocol = if is_loopback_registry(&registry) {
        ClientProtocol::HttpsExcept(vec![registry.clone()])
    } else {
        ClientProtocol::Https
    };
    // The process-wide TLS provider (ring); a no-op when the server already installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig { protocol, ..Default::default() });
    let auth = match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
    };
    let err = pull_err(reference);
    let (mut data, mut digest) = client.pull_manifest_raw(&image, &auth, ACCEPTED).await.map_err(&err)?;
    // An index: pick the host platform's manifest.
    let mut manifest_ref = image.clone();
    for _ in 0..2 {
        let value: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|source| ImageError::Parse { what: format!("manifest of {name}"), source })?;
        if value.get("manifests").is_none() {
            break;
        }
        let index: Index = parse(&data, || format!("image index of {name}"))?;
        let host = host_platform();
        let chosen = index
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p.os == host.os && p.architecture == host.architecture))
            .ok_or_else(|| ImageError::NoMatchingPlatform {
                digest: digest.clone(),
                os: host.os.clone(),
                architecture: host.architecture.clone(),
            })?;
        manifest_ref = image.clone_with_digest(chosen.digest.clone());
        (data, digest) = client.pull_manifest_raw(&manifest_ref, &auth, ACCEPTED).await.map_err(&err)?;
    }
    let manifest: Manifest = parse(&data, || format!("manifest of {name}"))?;
    let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
    progress(PullEvent::Resolved { digest: digest.clone(), layers: manifest.layers.len(), bytes: size });
    let mut downloaded = 0;
    for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
        super::validate_digest(&desc.digest)?;
        let cached = blocking(store, {
            let d = desc.digest.clone();
            move |s| s.has_blob(&d)
        })
        .await?;
        if !cached {
            let tmp = store.temp_path("pull");
            if let Some(parent) = tmp.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(crate::io_error::io_err("create", parent))?;
            }
            let file = tokio::fs::File::create(&tmp).await.map_err(crate::io_error::io_err("create", &tmp))?;
            let fetched = client.pull_blob(&manifest_ref, desc.digest.as_str(), file).await.map_err(&err);
            let stored = match fetched {
                Ok(()) => {
                    let (d, t) = (desc.digest.clone(), tmp.clone());
                    blocking(store, move |s| {
                        let mut f = std::fs::File::open(&t).map_err(crate::io_error::io_err("open", &t))?;
                        s.write_blob(&mut f, Some(&d))
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            let _ = tokio::fs::remove_file(&tmp).await;
            stored?;
            downloaded += desc.size;
        }
        if desc.digest != manifest.config.digest {
            progress(PullEvent::Layer { digest: desc.digest.clone(), bytes: desc.size, cached });
        }
    }
    let stored_digest = blocking(store, move |s| s.write_blob_bytes(&data)).await?;
    if stored_digest != digest {
        return Err(ImageError::DigestMismatch { expected: digest, actual: stored_digest });
    }
    let image_ref = ImageRef { name: name.clone(), digest: digest.clone() };
    let tagged = image_ref.clone();
    blocking(store, move |s| s.tag(&tagged)).await?;
    Ok(Pulled { image: image_ref, size, downloaded, elapsed: started.elapsed() })
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    store: &ImageStore,
    f: impl FnOnce(&ImageStore) -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ImageError::Pull { reference: String::new(), message: e.to_string() })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_matching_registry_entry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = format!(
            r#"{{"auths": {{"other.example:5000": {{"auth": "eDp5"}}, "https://index.docker.io/v1/": {{"auth": "{auth}"}}}}}}"#
        );
        let legacy = br#"{"127.0.0.1:5000": {"username": "bob", "password": "pw"}}"#.to_vec();
        let secrets = [config.into_bytes(), legacy];
        assert_eq!(
            credentials_for("docker.io", &secrets),
            Credentials::Basic { username: "alice".into(), password: "s3cret".into() }
        );
        assert_eq!(
            credentials_for("127.0.0.1:5000", &secrets),
            Credentials::Basic { username: "bob".into(), password: "pw".into() }
        );
        assert_eq!(credentials_for("quay.io", &secrets), Credentials::Anonymous);
        assert_eq!(credentials_for("quay.io", &[b"not json".to_vec()]), Credentials::Anonymous);
    }

    #[test]
    fn only_loopback_registries_are_spoken_to_over_http() {
        for r in ["localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "localhost"] {
            assert!(is_loopback_registry(r), "{r}");
        }
        for r in ["docker.io", "10.0.0.1:5000", "localhost.example.com", "quay.io:443"] {
            assert!(!is_loopback_registry(r), "{r}");
        }
        assert_eq!(registry_of("127.0.0.1:5000/team/app:v1"), "127.0.0.1:5000");
    }
}
