//! The files of configMap, secret, downwardAPI and projected volumes, computed from the pod and
//! the objects it refers to (upstream `MakePayload` of pkg/volume/{configmap,secret,downwardapi,
//! projected}). Pure: the caller fetches the objects and writes the files.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume};

use crate::kubelet::container::{self, EnvSources};

/// `0644`, the default mode of the files of these volumes (`defaultMode: 420`).
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume: its content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// The files of a volume by relative path.
pub type Payload = BTreeMap<String, FileProjection>;

/// The permission bits of a `mode`/`defaultMode` (`0..=0777`; anything else keeps the low bits).
fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(0) & 0o777
}

/// The files of a ConfigMap: every key (`data` and `binaryData`), or only the `items`, each at
/// its `path` with its `mode` or `default_mode`. A missing item key is an error unless `optional`.
pub fn config_map_payload(
    items: Option<&[KeyToPath]>,
    cm: &ConfigMap,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let text = cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec()));
    let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    let all: BTreeMap<String, Vec<u8>> = binary.chain(text).collect();
    project(items, &all, default_mode, optional, "configmap references non-existent config key", &mut payload)?;
    Ok(payload)
}

/// The files of a Secret, as [`config_map_payload`].
pub fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let all = container::secret_entries(secret);
    project(items, &all, default_mode, optional, "references non-existent secret key", &mut payload)?;
    Ok(payload)
}

fn project(
    items: Option<&[KeyToPath]>,
    all: &BTreeMap<String, Vec<u8>>,
    default_mode: i32,
    optional: bool,
    missing: &str,
    payload: &mut Payload,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in all {
                payload.insert(k.clone(), FileProjection { data: v.clone(), mode: mode_bits(default_mode) });
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = all.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{missing}: {}", item.key));
                };
                let mode = mode_bits(item.mode.unwrap_or(default_mode));
                payload.insert(item.path.clone(), FileProjection { data: data.clone(), mode });
            }
        }
    }
    Ok(())
}

/// The files of a downwardAPI volume (or projection): pod fields and container resources.
/// Resource references need `containerName`; a missing limit counts as the node's allocatable.
pub fn downward_api_payload(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    default_mode: i32,
    sources: &EnvSources,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            container::field_value(pod, &f.field_path, &sources.pod_ips, sources.host_ip.as_deref())
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            match pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == name)) {
                Some(c) => container::resource_field_value(
                    &container::default_limits(c, &sources.node_allocatable),
                    &r.resource,
                    r.divisor.as_ref(),
                ),
                None => Err(format!("container {name:?} not found in the pod")),
            }
        } else {
            Err(format!("downwardAPI item {:?} has neither fieldRef nor resourceFieldRef", item.path))
        };
        match value {
            Ok(v) => {
                let mode = mode_bits(item.mode.unwrap_or(default_mode));
                payload.insert(item.path.clone(), FileProjection { data: v.into_bytes(), mode });
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(payload) } else { Err(errors.join(", ")) }
}

/// Whether a volume's files come from the API and change with it (refreshed periodically).
pub fn is_projected(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

/// What the volumes refer to: ConfigMap names, Secret names, and whether a resource reference
/// needs the node's allocatable resources.
pub fn references<'a>(volumes: impl IntoIterator<Item = &'a Volume>) -> (BTreeSet<String>, BTreeSet<String>, bool) {
    let (mut cms, mut secrets, mut allocatable) = (BTreeSet::new(), BTreeSet::new(), false);
    let mut downward = |items: Option<&Vec<DownwardAPIVolumeFile>>| {
        allocatable |= items.into_iter().flatten().any(|i| i.resource_field_ref.is_some());
    };
    for v in volumes {
        if let Some(cm) = &v.config_map {
            cms.insert(cm.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(name);
        }
        if let Some(d) = &v.downward_api {
            downward(d.items.as_ref());
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                cms.insert(cm.name.clone());
            }
            if let Some(s) = &source.secret {
                secrets.insert(s.name.clone());
            }
            if let Some(d) = &source.downward_api {
                downward(d.items.as_ref());
            }
        }
    }
    (cms, secrets, allocatable)
}

/// The files of a configMap, secret, downwardAPI or projected volume; `Ok(None)` for other
/// volume types. Missing objects that are not `optional` are errors with upstream's wording
/// (`configmap "x" not found`). `skipped` collects projection sources Berth does not serve
/// (serviceAccountToken, clusterTrustBundle).
pub fn volume_payload(
    volume: &Volume,
    pod: &Pod,
    sources: &EnvSources,
    skipped: &mut Vec<String>,
) -> Result<Option<Payload>, String> {
    let config_map = |name: &str| sources.config_maps.get(name).and_then(Option::as_ref);
    let secret = |name: &str| sources.secrets.get(name).and_then(Option::as_ref);
    if let Some(v) = &volume.config_map {
        let optional = v.optional == Some(true);
        let mode = v.default_mode.unwrap_or(DEFAULT_MODE);
        return match config_map(&v.name) {
            Some(cm) => config_map_payload(v.items.as_deref(), cm, mode, optional).map(Some),
            None if optional => Ok(Some(Payload::new())),
            None => Err(format!("configmap {:?} not found", v.name)),
        };
    }
    if let Some(v) = &volume.secret {
        let optional = v.optional == Some(true);
        let mode = v.default_mode.unwrap_or(DEFAULT_MODE);
        let name = v.secret_name.clone().unwrap_or_default();
        return match secret(&name) {
            Some(s) => secret_payload(v.items.as_deref(), s, mode, optional).map(Some),
            None if optional => Ok(Some(Payload::new())),
            None => Err(format!("secret {name:?} not found")),
        };
    }
    if let Some(v) = &volume.downward_api {
        let mode = v.default_mode.unwrap_or(DEFAULT_MODE);
        return downward_api_payload(v.items.as_deref().unwrap_or_default(), pod, mode, sources).map(Some);
    }
    let Some(v) = &volume.projected else { return Ok(None) };
    let mode = v.default_mode.unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    for source in v.sources.iter().flatten() {
        if let Some(p) = &source.config_map {
            let optional = p.optional == Some(true);
            match config_map(&p.name) {
                Some(cm) => payload.extend(config_map_payload(p.items.as_deref(), cm, mode, optional)?),
                None if optional => {}
                None => return Err(format!("configmap {:?} not found", p.name)),
            }
        }
        if let Some(p) = &source.secret {
            let optional = p.optional == Some(true);
            match secret(&p.name) {
                Some(s) => payload.extend(secret_payload(p.items.as_deref(), s, mode, optional)?),
                None if optional => {}
                None => return Err(format!("secret {:?} not found", p.name)),
            }
        }
        if let Some(p) = &source.downward_api {
            payload.extend(downward_api_payload(p.items.as_deref().unwrap_or_default(), pod, mode, sources)?);
        }
        if let Some(p) = &source.service_account_token {
            skipped.push(format!("serviceAccountToken at {:?} (Berth has no token API yet)", p.path));
        }
        if let Some(p) = &source.cluster_trust_bundle {
            skipped.push(format!("clusterTrustBundle at {:?} (not supported)", p.path));
        }
    }
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeSource,
        ObjectFieldSelector, PodSpec, ProjectedVolumeSource, SecretProjection, SecretVolumeSource,
        ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into()),
            binary_data: Some([("bin".to_string(), ByteString(vec![0, 1]))].into()),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath { key: key.into(), path: path.into(), mode }
    }

    fn file(data: &[u8], mode: u32) -> FileProjection {
        FileProjection { data: data.to_vec(), mode }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                labels: Some([("app".to_string(), "shop".to_string()), ("tier".to_string(), "fe".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    fn sources() -> EnvSources {
        let secret =
            Secret { data: Some([("token".to_string(), ByteString(b"t0k".to_vec()))].into()), ..Default::default() };
        EnvSources {
            config_maps: [("app".to_string(), Some(cm())), ("absent".to_string(), None)].into(),
            secrets: [("creds".to_string(), Some(secret))].into(),
            ..Default::default()
        }
    }

    #[test]
    fn all_keys_get_the_default_mode_and_items_pick_keys_paths_and_modes() {
        let all = config_map_payload(None, &cm(), 0o440, false).expect("all");
        let expected: Payload =
            [("a".into(), file(b"1", 0o440)), ("b".into(), file(b"2", 0o440)), ("bin".into(), file(&[0, 1], 0o440))]
                .into();
        assert_eq!(all, expected);
        let items = [item("a", "conf/a.txt", None), item("b", "b.txt", Some(0o400))];
        let some = config_map_payload(Some(&items), &cm(), DEFAULT_MODE, false).expect("items");
        let expected: Payload = [("conf/a.txt".into(), file(b"1", 0o644)), ("b.txt".into(), file(b"2", 0o400))].into();
        assert_eq!(some, expected);
        let missing = [item("zzz", "z", None)];
        assert_eq!(
            config_map_payload(Some(&missing), &cm(), DEFAULT_MODE, false),
            Err("configmap references non-existent config key: zzz".to_string())
        );
        assert_eq!(config_map_payload(Some(&missing), &cm(), DEFAULT_MODE, true), Ok(Payload::new()));
    }

    #[test]
    fn volumes_name_missing_objects_unless_optional() {
        let mut skipped = Vec::new();
        let cm_vol = |name: &str, optional: Option<bool>| Volume {
            name: "v".into(),
            config_map: Some(ConfigMapVolumeSource { name: name.into(), optional, ..Default::default() }),
            ..Default::default()
        };
        let got = volume_payload(&cm_vol("absent", None), &pod(), &sources(), &mut skipped);
        assert_eq!(got, Err("configmap \"absent\" not found".to_string()));
        let got = volume_payload(&cm_vol("absent", Some(true)), &pod(), &sources(), &mut skipped);
        assert_eq!(got, Ok(Some(Payload::new())));
        let secret_vol = Volume {
            name: "s".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("creds".into()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        };
        let got = volume_payload(&secret_vol, &pod(), &sources(), &mut skipped).expect("secret");
        assert_eq!(got, Some([("token".into(), file(b"t0k", 0o400))].into()));
        let other = Volume { name: "e".into(), empty_dir: Some(Default::default()), ..Default::default() };
        assert_eq!(volume_payload(&other, &pod(), &sources(), &mut skipped), Ok(None));
        assert!(skipped.is_empty());
    }

    #[test]
    fn downward_api_writes_labels_as_sorted_quoted_lines() {
        let field = |path: &str, field_path: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector { field_path: field_path.into(), ..Default::default() }),
            ..Default::default()
        };
        let vol = Volume {
            name: "info".into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![field("labels", "metadata.labels"), field("name", "metadata.name")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let got = volume_payload(&vol, &pod(), &sources(), &mut Vec::new()).expect("payload").expect("some");
        assert_eq!(got["labels"], file(b"app=\"shop\"\ntier=\"fe\"", 0o644));
        assert_eq!(got["name"], file(b"web", 0o644));
        let bad = DownwardAPIVolumeFile { path: "x".into(), ..Default::default() };
        assert!(downward_api_payload(&[bad], &pod(), DEFAULT_MODE, &sources()).is_err());
    }

    #[test]
    fn projected_volumes_merge_sources_and_skip_token_sources_with_a_note() {
        let vol = Volume {
            name: "all".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o600),
                sources: Some(vec![
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "app".into(),
                            items: Some(vec![item("a", "cfg/a", None)]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection { name: "creds".into(), items: None, optional: None }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection { name: "gone".into(), items: None, optional: Some(true) }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "ns".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        };
        let mut skipped = Vec::new();
        let got = volume_payload(&vol, &pod(), &sources(), &mut skipped).expect("payload").expect("some");
        let expected: Payload = [
            ("cfg/a".into(), file(b"1", 0o600)),
            ("token".into(), file(b"t0k", 0o600)),
            ("ns".into(), file(b"prod", 0o600)),
        ]
        .into();
        assert_eq!(got, expected);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("serviceAccountToken"), "{skipped:?}");
        let (cms, secrets, allocatable) = references([&vol]);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), ["app"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["creds", "gone"]);
        assert!(!allocatable);
    }
}
