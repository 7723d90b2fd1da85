//! `GET /version`: the server's version.Info. kubectl's dispatcher on these machines picks its
//! binary from `minor`, so the numbers must say 1.33. Pure: no I/O.

use axum::Json;
use axum::response::IntoResponse;

/// The Kubernetes version Berth serves.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";
pub const GIT_VERSION: &str = "v1.33.0+berth";

/// Upstream's `version.Info` (k8s.io/apimachinery/pkg/version), field order as upstream prints it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub major: String,
    pub minor: String,
    pub emulation_major: String,
    pub emulation_minor: String,
    pub min_compatibility_major: String,
    pub min_compatibility_minor: String,
    pub git_version: String,
    pub git_commit: String,
    pub git_tree_state: String,
    pub build_date: String,
    pub go_version: String,
    pub compiler: String,
    pub platform: String,
}

/// This build's version.Info. `BERTH_GIT_COMMIT`, `BERTH_GIT_TREE_STATE` and `BERTH_BUILD_DATE`
/// may be set at compile time (e.g. by CI); otherwise neutral placeholders are used.
pub fn info() -> Info {
    Info {
        major: MAJOR.to_string(),
        minor: MINOR.to_string(),
        emulation_major: MAJOR.to_string(),
        emulation_minor: MINOR.to_string(),
        min_compatibility_major: MAJOR.to_string(),
        min_compatibility_minor: "32".to_string(),
        git_version: GIT_VERSION.to_string(),
        git_commit: option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown").to_string(),
        git_tree_state: option_env!("BERTH_GIT_TREE_STATE").unwrap_or("clean").to_string(),
        build_date: option_env!("BERTH_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z").to_string(),
        go_version: "rust".to_string(),
        compiler: "rustc".to_string(),
        platform: format!("{}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH)),
    }
}

/// The axum handler for `GET /version`.
pub async fn handler() -> impl IntoResponse {
    Json(info())
}

/// Rust's architecture names as Go's `GOARCH` spells them.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_json_has_upstream_fields_and_says_1_33() {
        let v = serde_json::to_value(info()).expect("serializes");
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "33");
        assert_eq!(v["gitVersion"], "v1.33.0+berth");
        assert_eq!(v["goVersion"], "rust");
        for field in ["gitCommit", "gitTreeState", "buildDate", "compiler", "platform"] {
            assert!(v[field].as_str().is_some_and(|s| !s.is_empty()), "{field}");
        }
        let platform = v["platform"].as_str().expect("platform");
        assert!(platform.starts_with("linux/"), "{platform}");
        assert!(!platform.contains("x86_64") && !platform.contains("aarch64"), "Go arch names: {platform}");
    }

    #[test]
    fn go_arch_maps_rust_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
    }
}
