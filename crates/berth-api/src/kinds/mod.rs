//! Per-kind strategies: which defaulting, validation, name rule and version conversion each
//! built-in kind uses. The registry table (`registry/builtin.rs`) points at these statics; the
//! rules themselves live in `defaults/`, `validation/` and `conversion/`.

pub mod prepare;

use serde_json::Value;

use crate::FieldError;
use crate::conversion;
use crate::defaults;
use crate::registry::Strategy;
use crate::validation::{self, ErrorList, names};

/// A version conversion: `(object, target apiVersion) -> converted object`.
pub type ConvertFn = fn(Value, &str) -> Result<Value, FieldError>;

/// A strategy assembled from plain functions, so each kind is one static value.
pub struct KindStrategy {
    /// The object-name rule (`NameIsDNSSubdomain`, `NameIsDNSLabel`, ...).
    pub name: fn(&str, bool) -> Vec<String>,
    /// Defaulting, in place.
    pub default: fn(&mut Value),
    /// Validation of the kind-specific fields of a new object.
    pub validate: fn(&Value) -> ErrorList,
    /// Validation of an update; `None` validates the new object as on create.
    pub validate_update: Option<fn(&Value, &Value) -> ErrorList>,
    /// Conversion between served versions; `None` only rewrites `apiVersion`.
    pub convert: Option<ConvertFn>,
    /// Update preparation (`PrepareForUpdate`): `(new, old)`, before defaulting.
    pub prepare_for_update: Option<fn(&mut Value, &Value)>,
}

fn no_default(_: &mut Value) {}

fn no_errors(_: &Value) -> ErrorList {
    Vec::new()
}

impl KindStrategy {
    /// No defaults, no kind rules, DNS-1123 subdomain names, identity conversion.
    pub const BASIC: KindStrategy = KindStrategy {
        name: names::name_is_dns_subdomain,
        default: no_default,
        validate: no_errors,
        validate_update: None,
        convert: None,
        prepare_for_update: None,
    };
}

impl Strategy for KindStrategy {
    fn default(&self, obj: &mut Value) {
        (self.default)(obj)
    }

    fn validate_name(&self, name: &str, prefix: bool) -> Vec<String> {
        (self.name)(name, prefix)
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        (self.validate)(obj)
    }

    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldError> {
        match self.validate_update {
            Some(f) => f(obj, old),
            None => (self.validate)(obj),
        }
    }

    fn prepare_for_update(&self, obj: &mut Value, old: &Value) {
        if let Some(f) = self.prepare_for_update {
            f(obj, old)
        }
    }

    fn convert(&self, mut obj: Value, to_api_version: &str) -> Result<Value, FieldError> {
        match self.convert {
            Some(f) => f(obj, to_api_version),
            None => {
                obj["apiVersion"] = Value::String(to_api_version.to_string());
                Ok(obj)
            }
        }
    }
}

// core/v1
pub static NAMESPACE: KindStrategy = KindStrategy {
    name: names::name_is_dns_label,
    default: defaults::core::default_namespace,
    validate: validation::core::validate_namespace,
    validate_update: Some(validation::core::validate_namespace_update),
    prepare_for_update: Some(prepare::namespace),
    ..KindStrategy::BASIC
};
pub static POD: KindStrategy = KindStrategy {
    default: defaults::pod::default_pod,
    validate: validation::pod::validate_pod,
    validate_update: Some(validation::pod::validate_pod_update),
    ..KindStrategy::BASIC
};
pub static NODE: KindStrategy = KindStrategy {
    default: defaults::core::default_node,
    validate: validation::core::validate_node,
    ..KindStrategy::BASIC
};
pub static SERVICE: KindStrategy = KindStrategy {
    name: names::name_is_dns1035_label,
    default: defaults::service::default_service,
    validate: validation::service::validate_service,
    validate_update: Some(validation::service::validate_service_update),
    prepare_for_update: Some(prepare::service),
    ..KindStrategy::BASIC
};
pub static ENDPOINTS: KindStrategy = KindStrategy {
    default: defaults::core::default_endpoints,
    validate: validation::core::validate_endpoints,
    ..KindStrategy::BASIC
};
pub static CONFIG_MAP: KindStrategy = KindStrategy {
    validate: validation::core::validate_config_map,
    validate_update: Some(validation::core::validate_config_map_update),
    ..KindStrategy::BASIC
};
pub static SECRET: KindStrategy = KindStrategy {
    default: defaults::core::default_secret,
    validate: validation::core::validate_secret,
    validate_update: Some(validation::core::validate_secret_update),
    ..KindStrategy::BASIC
};
pub static EVENT: KindStrategy = KindStrategy { validate: validation::core::validate_event, ..KindStrategy::BASIC };
pub static SERVICE_ACCOUNT: KindStrategy = KindStrategy::BASIC;
pub static REPLICATION_CONTROLLER: KindStrategy = KindStrategy {
    default: defaults::apps::default_replication_controller,
    validate: validation::apps::validate_replication_controller,
    validate_update: Some(validation::apps::validate_replication_controller_update),
    ..KindStrategy::BASIC
};
pub static PERSISTENT_VOLUME: KindStrategy = KindStrategy {
    default: defaults::core::default_persistent_volume,
    validate: validation::core::validate_persistent_volume,
    ..KindStrategy::BASIC
};
pub static PERSISTENT_VOLUME_CLAIM: KindStrategy = KindStrategy {
    default: defaults::core::default_persistent_volume_claim,
    validate: validation::core::validate_persistent_volume_claim,
    ..KindStrategy::BASIC
};

// apps/v1
pub static REPLICA_SET: KindStrategy = KindStrategy {
    default: defaults::apps::default_replica_set,
    validate: validation::apps::validate_replica_set,
    validate_update: Some(validation::apps::validate_replica_set_update),
    ..KindStrategy::BASIC
};
pub static DEPLOYMENT: KindStrategy = KindStrategy {
    default: defaults::apps::default_deployment,
    validate: validation::apps::validate_deployment,
    validate_update: Some(validation::apps::validate_deployment_update),
    ..KindStrategy::BASIC
};
pub static STATEFUL_SET: KindStrategy = KindStrategy {
    default: defaults::apps::default_stateful_set,
    validate: validation::apps::validate_stateful_set,
    validate_update: Some(validation::apps::validate_stateful_set_update),
    ..KindStrategy::BASIC
};
pub static DAEMON_SET: KindStrategy = KindStrategy {
    default: defaults::apps::default_daemon_set,
    validate: validation::apps::validate_daemon_set,
    validate_update: Some(validation::apps::validate_daemon_set_update),
    ..KindStrategy::BASIC
};
pub static CONTROLLER_REVISION: KindStrategy =
    KindStrategy { validate: validation::apps::validate_controller_revision, ..KindStrategy::BASIC };

// events.k8s.io/v1
pub static EVENT_V1: KindStrategy =
    KindStrategy { validate: validation::core::validate_event_v1, ..KindStrategy::BASIC };

// autoscaling
pub static HORIZONTAL_POD_AUTOSCALER: KindStrategy = KindStrategy {
    default: defaults::autoscaling::default_hpa,
    validate: validation::autoscaling::validate_hpa,
    convert: Some(conversion::hpa::convert),
    ..KindStrategy::BASIC
};

// batch/v1
pub static JOB: KindStrategy = KindStrategy {
    default: defaults::apps::default_job,
    validate: validation::apps::validate_job,
    validate_update: Some(validation::apps::validate_job_update),
    ..KindStrategy::BASIC
};
pub static CRON_JOB: KindStrategy = KindStrategy {
    name: validation::apps::cron_job_name,
    default: defaults::apps::default_cron_job,
    validate: validation::apps::validate_cron_job,
    ..KindStrategy::BASIC
};

// networking.k8s.io/v1
pub static INGRESS: KindStrategy = KindStrategy {
    default: defaults::misc::default_ingress,
    validate: validation::misc::validate_ingress,
    ..KindStrategy::BASIC
};
pub static INGRESS_CLASS: KindStrategy = KindStrategy {
    validate: validation::misc::validate_ingress_class,
    validate_update: Some(validation::misc::validate_ingress_class_update),
    ..KindStrategy::BASIC
};
pub static NETWORK_POLICY: KindStrategy = KindStrategy {
    default: defaults::misc::default_network_policy,
    validate: validation::misc::validate_network_policy,
    ..KindStrategy::BASIC
};

// policy/v1
pub static POD_DISRUPTION_BUDGET: KindStrategy =
    KindStrategy { validate: validation::misc::validate_pod_disruption_budget, ..KindStrategy::BASIC };

// rbac.authorization.k8s.io/v1: names are path segments (`system:node`), not DNS names.
pub static ROLE: KindStrategy = KindStrategy {
    name: names::is_valid_path_segment_name,
    validate: validation::misc::validate_role,
    ..KindStrategy::BASIC
};
pub static CLUSTER_ROLE: KindStrategy = KindStrategy {
    name: names::is_valid_path_segment_name,
    validate: validation::misc::validate_cluster_role,
    ..KindStrategy::BASIC
};
pub static ROLE_BINDING: KindStrategy = KindStrategy {
    name: names::is_valid_path_segment_name,
    validate: validation::misc::validate_role_binding,
    validate_update: Some(validation::misc::validate_role_binding_update),
    ..KindStrategy::BASIC
};
pub static CLUSTER_ROLE_BINDING: KindStrategy = KindStrategy {
    name: names::is_valid_path_segment_name,
    validate: validation::misc::validate_cluster_role_binding,
    validate_update: Some(validation::misc::validate_cluster_role_binding_update),
    ..KindStrategy::BASIC
};

// storage.k8s.io/v1
pub static STORAGE_CLASS: KindStrategy = KindStrategy {
    default: defaults::misc::default_storage_class,
    validate: validation::misc::validate_storage_class,
    ..KindStrategy::BASIC
};

// apiextensions.k8s.io/v1
pub static CUSTOM_RESOURCE_DEFINITION: KindStrategy =
    KindStrategy { validate: validation::misc::validate_crd, ..KindStrategy::BASIC };

// scheduling.k8s.io/v1
pub static PRIORITY_CLASS: KindStrategy = KindStrategy {
    default: defaults::misc::default_priority_class,
    validate: validation::misc::validate_priority_class,
    validate_update: Some(validation::misc::validate_priority_class_update),
    ..KindStrategy::BASIC
};

// coordination.k8s.io/v1
pub static LEASE: KindStrategy = KindStrategy { validate: validation::misc::validate_lease, ..KindStrategy::BASIC };

// discovery.k8s.io/v1
pub static ENDPOINT_SLICE: KindStrategy = KindStrategy {
    default: defaults::misc::default_endpoint_slice,
    validate: validation::misc::validate_endpoint_slice,
    ..KindStrategy::BASIC
};
