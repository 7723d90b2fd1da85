//! Image reference normalisation, as containerd and the kubelet do it (docker's
//! `reference.ParseNormalizedNamed`): `busybox` -> `docker.io/library/busybox:latest`. Pure code.

use super::ImageError;

/// The registry assumed when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// Normalises an image reference to its fully-qualified form: `domain/path[:tag][@digest]`,
/// adding `docker.io`, `library/` and `:latest` where docker would.
///
/// # Errors
///
/// [`ImageError::InvalidReference`] for empty names, upper-case repository paths, bad tags or
/// digests.
pub fn normalize_reference(reference: &str) -> Result<String, ImageError> {
    let invalid =
        |reason: &str| ImageError::InvalidReference { reference: reference.to_string(), reason: reason.into() };
    let input = reference.trim();
    if input.is_empty() {
        return Err(invalid("empty reference"));
    }
    let (name_tag, digest) = match input.split_once('@') {
        Some((n, d)) => {
            super::validate_digest(d).map_err(|_| invalid("invalid digest"))?;
            (n, Some(d))
        }
        None => (input, None),
    };
    // A tag is a ':' after the last '/'; a ':' before it is a registry port.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(invalid("invalid tag"));
        }
    }
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if let Some((host, port)) = domain.split_once(':')
        && (host.is_empty() || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(invalid("registry port must be numeric"));
    }
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    if path.is_empty() || path.split('/').any(|c| c.is_empty()) {
        return Err(invalid("empty path component"));
    }
    let path_ok = path.split('/').all(|component| {
        component.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
            && component.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && component.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    });
    if !path_ok {
        return Err(invalid("repository path must be lower-case alphanumerics separated by '.', '_' or '-'"));
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), Some(d)) => out.push_str(&format!(":{t}@{d}")),
        (Some(t), None) => out.push_str(&format!(":{t}")),
        (None, Some(d)) => out.push_str(&format!("@{d}")),
        (None, None) => out.push_str(&format!(":{DEFAULT_TAG}")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn short_names_get_docker_io_library_and_latest() {
        assert_eq!(normalize_reference("busybox").unwrap(), "docker.io/library/busybox:latest");
        assert_eq!(normalize_reference("busybox:1.36").unwrap(), "docker.io/library/busybox:1.36");
        assert_eq!(normalize_reference("user/app").unwrap(), "docker.io/user/app:latest");
        assert_eq!(normalize_reference("index.docker.io/library/nginx").unwrap(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn registries_with_ports_and_localhost_are_kept() {
        assert_eq!(normalize_reference("localhost:5000/app").unwrap(), "localhost:5000/app:latest");
        assert_eq!(normalize_reference("localhost/app:v1").unwrap(), "localhost/app:v1");
        assert_eq!(normalize_reference("registry.k8s.io/pause:3.9").unwrap(), "registry.k8s.io/pause:3.9");
        assert_eq!(normalize_reference("quay.io/a/b/c").unwrap(), "quay.io/a/b/c:latest");
    }

    #[test]
    fn digests_are_kept_without_adding_latest() {
        assert_eq!(normalize_reference(&format!("busybox@{D}")).unwrap(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(normalize_reference(&format!("busybox:1@{D}")).unwrap(), format!("docker.io/library/busybox:1@{D}"));
    }

    #[test]
    fn invalid_references_are_rejected() {
        for bad in ["", "Busybox", "busybox:", "busybox@sha256:xyz", "a//b", "busybox:bad/tag", "-a", "a:b c"] {
            assert!(normalize_reference(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
