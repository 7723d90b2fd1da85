//! The kubelet's side of images: `imagePullPolicy` (Always, IfNotPresent, Never; the default
//! from the tag as upstream), credentials from `imagePullSecrets`, the pull itself with its
//! Pulling/Pulled events, and the air-gapped mode in which only loopback registries are asked.
//! Images that came from `berth image import` are pinned: used as they are, never re-pulled.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Api;

use super::Shared;
use crate::image::pull::{self, Credentials, PullEvent, is_loopback_registry, registry_of};
use crate::image::{Image, normalize_reference};

/// Why a container's image is not there: the waiting reason and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFailure {
    /// `ErrImagePull`, `ErrImageNeverPull` or `InvalidImageName`.
    pub reason: &'static str,
    pub message: String,
}

/// The effective pull policy: the container's, else `Always` for `:latest` or no tag (and no
/// digest), `IfNotPresent` otherwise, as the apiserver's defaulting does.
pub fn pull_policy(container: &Container) -> String {
    if let Some(p) = container.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = container.image.as_deref().unwrap_or_default();
    let (name, digest) = image.split_once('@').map_or((image, false), |(n, _)| (n, true));
    let tag = name.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, t)| t);
    if !digest && matches!(tag, None | Some("latest")) { "Always".into() } else { "IfNotPresent".into() }
}

/// What to do about an image, given the policy and what the store has. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    UseLocal,
    Pull,
    NeverPullMissing,
}

/// Decides between the local image and a pull: Never uses what is there; IfNotPresent pulls only
/// when missing; Always pulls unless the image was imported (pinned).
pub fn decide(policy: &str, present: bool, imported: bool) -> Decision {
    match (policy, present) {
        ("Never", true) => Decision::UseLocal,
        ("Never", false) => Decision::NeverPullMissing,
        ("IfNotPresent", true) => Decision::UseLocal,
        (_, true) if imported => Decision::UseLocal,
        _ => Decision::Pull,
    }
}

/// The pod's pull secrets' docker configs (`.dockerconfigjson` or `.dockercfg`); missing secrets
/// are skipped, as upstream does.
async fn pull_secrets(shared: &Shared, pod: &Pod) -> Vec<Vec<u8>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(shared.client.clone(), namespace);
    let mut out = Vec::new();
    for r in pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_ref()).into_iter().flatten() {
        let Ok(secret) = api.get(&r.name).await else {
            tracing::warn!(secret = %r.name, "image pull secret not found; pulling without it");
            continue;
        };
        let data = secret.data.unwrap_or_default();
        if let Some(v) = data.get(".dockerconfigjson").or_else(|| data.get(".dockercfg")) {
            out.push(v.0.clone());
        }
    }
    out
}

/// Makes sure the container's image is in the store, pulling it when the policy says so; records
/// the Pulling/Pulled events. Returns the image.
///
/// # Errors
/// The waiting reason and message when the image cannot be had.
pub async fn ensure_image(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    field_path: &str,
) -> Result<Image, ImageFailure> {
    let reference = container.image.clone().unwrap_or_default();
    let invalid = |message: String| ImageFailure { reason: "InvalidImageName", message };
    let name = normalize_reference(&reference)
        .map_err(|e| invalid(format!("Failed to apply default image tag {reference:?}: {e}")))?;
    let images = shared.images.clone();
    let (local, imported) = {
        let (images, reference) = (images.clone(), reference.clone());
        tokio::task::spawn_blocking(move || (images.get(&reference), images.is_imported(&reference)))
            .await
            .map_err(|e| invalid(e.to_string()))?
    };
    let local = local.map_err(|e| invalid(e.to_string()))?;
    let policy = pull_policy(container);
    let event = |warning: bool, reason: &'static str, message: String| {
        let fp = Some(field_path.to_string());
        async move { shared.events.pod_event(pod, fp, warning, reason, message).await }
    };
    match decide(&policy, local.is_some(), imported.unwrap_or(false)) {
        Decision::UseLocal => {
            event(false, "Pulled", format!("Container image {reference:?} already present on machine")).await;
            return local.ok_or_else(|| invalid("image vanished from the store".into()));
        }
        Decision::NeverPullMissing => {
            let message = format!("Container image {reference:?} is not present with pull policy of Never");
            event(true, "ErrImageNeverPull", message.clone()).await;
            return Err(ImageFailure { reason: "ErrImageNeverPull", message });
        }
        Decision::Pull => {}
    }
    let registry = registry_of(&name).to_string();
    if shared.config.airgap && !is_loopback_registry(&registry) {
        let message = format!(
            "image {reference:?} not found in the node's image store; import it with berth image import \
             (this node is air-gapped: it pulls only from registries on loopback)"
        );
        return Err(ImageFailure { reason: "ErrImagePull", message });
    }
    event(false, "Pulling", format!("Pulling image {reference:?}")).await;
    let credentials = pull::credentials_for(&registry, &pull_secrets(shared, pod).await);
    let started = Instant::now();
    let quiet = |_: PullEvent| {};
    match pull::pull(&images, &reference, &credentials, &quiet).await {
        Ok(pulled) => {
            let took = started.elapsed().as_secs_f64();
            event(
                false,
                "Pulled",
                format!(
                    "Successfully pulled image {reference:?} in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                    pulled.size
                ),
            )
            .await;
            let found = tokio::task::spawn_blocking(move || images.get(&reference)).await;
            match found {
                Ok(Ok(Some(image))) => Ok(image),
                Ok(Err(e)) => Err(ImageFailure { reason: "ErrImagePull", message: e.to_string() }),
                _ => Err(ImageFailure { reason: "ErrImagePull", message: "pulled image not in the store".into() }),
            }
        }
        Err(e) => {
            let credentials_note = if credentials == Credentials::Anonymous { "" } else { " (with pull secret)" };
            let message = format!("{e}{credentials_note}");
            Err(ImageFailure { reason: "ErrImagePull", message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn the_default_policy_follows_the_tag_as_upstream() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(pull_policy(&container("localhost:5000/app", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:1.36", None)), "IfNotPresent");
        assert_eq!(pull_policy(&container("localhost:5000/app:v1", None)), "IfNotPresent");
        assert_eq!(pull_policy(&container(&format!("busybox@sha256:{}", "a".repeat(64)), None)), "IfNotPresent");
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
    }

    #[test]
    fn pulls_happen_only_when_the_policy_and_the_store_call_for_one() {
        assert_eq!(decide("Never", false, false), Decision::NeverPullMissing);
        assert_eq!(decide("Never", true, false), Decision::UseLocal);
        assert_eq!(decide("IfNotPresent", true, false), Decision::UseLocal);
        assert_eq!(decide("IfNotPresent", false, false), Decision::Pull);
        assert_eq!(decide("Always", true, false), Decision::Pull, "a pulled image is re-resolved");
        assert_eq!(decide("Always", true, true), Decision::UseLocal, "an imported image is pinned");
        assert_eq!(decide("Always", false, false), Decision::Pull);
    }
}
