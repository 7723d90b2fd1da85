#!/usr/bin/env python3
"""Generates generated.rs: `ToJson` impls for the k8s-pb messages reachable from ROOTS.

Usage: generate.py K8S_PB_SRC K8S_OPENAPI_VERSION_SRC > generated.rs && rustfmt --edition 2024 generated.rs
  K8S_PB_SRC                e.g. ~/.cargo/registry/src/*/k8s-pb-0.9.0/src
  K8S_OPENAPI_VERSION_SRC   e.g. ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33

JSON field names come from k8s-openapi's deserializers ("clusterIP" => Field::Key_cluster_ip), so
acronyms are spelled as Kubernetes spells them; other names are prost's snake_case in camelCase.
Messages with a hand-written impl in mod.rs (MANUAL) are not generated.
"""
import os
import re
import sys

ROOTS = [
    "api::apps::v1::Deployment", "api::apps::v1::ReplicaSet", "api::apps::v1::StatefulSet",
    "api::apps::v1::DaemonSet",
    "api::autoscaling::v1::HorizontalPodAutoscaler", "api::autoscaling::v1::Scale",
    "api::autoscaling::v2::HorizontalPodAutoscaler",
    "api::batch::v1::Job", "api::batch::v1::CronJob",
    "api::core::v1::Namespace", "api::core::v1::ConfigMap", "api::core::v1::Secret",
    "api::core::v1::Service", "api::core::v1::Pod", "api::core::v1::ServiceAccount",
]
MANUAL = {
    "apimachinery::pkg::apis::meta::v1::Time", "apimachinery::pkg::apis::meta::v1::MicroTime",
    "apimachinery::pkg::apis::meta::v1::Duration", "apimachinery::pkg::apis::meta::v1::FieldsV1",
    "apimachinery::pkg::api::resource::Quantity", "apimachinery::pkg::util::intstr::IntOrString",
    "apimachinery::pkg::runtime::RawExtension",
}

pb_src, openapi_src = sys.argv[1], sys.argv[2]

json_names = {}
for dirpath, _, files in os.walk(openapi_src):
    for f in files:
        if f.endswith(".rs"):
            text = open(os.path.join(dirpath, f)).read()
            for js, key in re.findall(r'"([A-Za-z0-9$]+)" => Field::Key_([a-z0-9_]+)', text):
                json_names.setdefault(key.rstrip("_"), js)


def snake_case(name):
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


# prost's snake_case that does not round-trip to the Kubernetes JSON name.
OVERRIDES = {"target_ww_ns": "targetWWNs"}
# Go value fields tagged `omitempty`: gogo writes them even when zero, JSON omits them, so a zero
# here means "unset". Every other number or boolean is kept even when zero, because pointer fields
# (`replicas`, `runAsUser`, `automountServiceAccountToken`, ...) mean it.
OMIT_ZERO = {
    "apimachinery::pkg::apis::meta::v1::ObjectMeta": ["generation"],
    "api::core::v1::ContainerPort": ["host_port"],
    "api::core::v1::Container": ["stdin", "stdin_once", "tty"],
    "api::core::v1::PodSpec": ["host_network", "host_pid", "host_ipc"],
    "api::core::v1::VolumeMount": ["read_only"],
    "api::core::v1::Probe": ["initial_delay_seconds", "timeout_seconds", "period_seconds", "success_threshold",
                             "failure_threshold"],
    "api::core::v1::ServicePort": ["node_port"],
    "api::core::v1::ServiceSpec": ["publish_not_ready_addresses"],
    "api::apps::v1::DeploymentSpec": ["min_ready_seconds", "paused"],
    "api::apps::v1::DeploymentStatus": ["observed_generation", "replicas", "updated_replicas", "ready_replicas",
                                        "available_replicas", "unavailable_replicas"],
    "api::apps::v1::ReplicaSetSpec": ["min_ready_seconds"],
    "api::apps::v1::ReplicaSetStatus": ["fully_labeled_replicas", "ready_replicas", "available_replicas",
                                        "observed_generation"],
    "api::apps::v1::StatefulSetSpec": ["min_ready_seconds"],
    "api::apps::v1::DaemonSetSpec": ["min_ready_seconds"],
    "api::batch::v1::JobStatus": ["active", "succeeded", "failed"],
}
# Embedded Go structs whose field is not named after their type.
INLINE = {"api::core::v1::Probe.handler"}


def openapi_fields(path):
    """snake -> JSON name for the k8s-openapi struct matching k8s-pb `path`, or None if absent."""
    module, name = path.split("::")[:-1], path.split("::")[-1]
    if module[0] == "apimachinery":
        module = ["apimachinery"] + module[1:]
    candidate = os.path.join(openapi_src, *module, snake_case(name) + ".rs")
    if not os.path.exists(candidate):
        return None
    text = open(candidate).read()
    return {key.rstrip("_"): js for js, key in re.findall(r'"([A-Za-z0-9$]+)" => Field::Key_([a-z0-9_]+)', text)}


def camel(snake, local):
    snake = snake.removeprefix("r#")
    if snake in OVERRIDES:
        return OVERRIDES[snake]
    if local and snake in local:
        return local[snake]
    if snake in json_names:
        return json_names[snake]
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


structs = {}  # "a::b::Name" -> [(field, attr, type)]
for dirpath, _, files in os.walk(pb_src):
    for f in files:
        if f != "mod.rs":
            continue
        rel = os.path.relpath(dirpath, pb_src)
        if rel == ".":
            continue
        module = rel.split(os.sep)
        text = open(os.path.join(dirpath, f)).read()
        for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
            name, body = m.group(1), m.group(2) + "\n"
            fields = []
            for chunk in body.split("#[prost(")[1:]:
                fm = re.match(r"([^\]]*)\)\]\s*pub ([\w#]+):(.*?),\s*(?:///|$)", chunk, re.S)
                if not fm:
                    sys.exit(f"cannot parse a field of {name}: {chunk[:200]}")
                ty = re.sub(r"\s+", "", fm.group(3)).replace(",>", ">")
                fields.append((fm.group(1), fm.group(2), ty))
            structs["::".join(module + [name])] = (module, fields)


def resolve(module, ty):
    """The absolute path of the message type named inside `ty`, or None for scalars."""
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        while ty.startswith(wrapper):
            ty = ty[len(wrapper):-1]
    if ty.startswith("::prost::alloc::collections::BTreeMap<"):
        ty = ty[len("::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,"):-1]
    if ty.startswith("::prost::") or ty in ("i32", "i64", "bool", "f64", "u8"):
        return None
    parts = ty.split("::")
    base = list(module)
    while parts and parts[0] == "super":
        parts.pop(0)
        base.pop()
    return "::".join(base + parts)


todo = list(ROOTS)
seen = set()
while todo:
    path = todo.pop()
    if path in seen or path in MANUAL:
        continue
    if path not in structs:
        sys.exit(f"unknown message {path}")
    seen.add(path)
    module, fields = structs[path]
    for _, _, ty in fields:
        target = resolve(module, ty)
        if target:
            todo.append(target)

out = [
    "//! `ToJson` for the k8s-pb messages reachable from the kinds in `SUPPORTED`.",
    "//! @generated by generate.py from k8s-pb 0.9 and k8s-openapi 0.29 (v1_33). Do not edit by hand.",
    "",
    "use serde_json::{Map, Value};",
    "",
    "use super::{{{}}};",
    "",
]
used = set()
emitted_nonzero = set()
for path in sorted(seen):
    module, fields = structs[path]
    out.append(f"impl ToJson for k8s_pb::{path} {{")
    if not fields:
        out.append("    fn to_json(&self) -> Value {")
        out.append("        Value::Object(Map::new())")
        out.append("    }")
        out.append("}")
        continue
    out.append("    fn to_json(&self) -> Value {")
    out.append("        let mut m = Map::new();")
    local = openapi_fields(path)
    if local is None:
        print(f"note: no k8s-openapi struct for {path}", file=sys.stderr)
    for attr, field, ty in fields:
        js = camel(field, local)
        kind = attr.split(",")[0].strip()
        repeated = "repeated" in attr
        # Go's embedded structs (`json:",inline"`, e.g. Volume.volumeSource, Probe.handler) are
        # fields in protobuf but flattened in JSON: k8s-openapi's struct has no such key.
        type_name = re.sub(r"[>,\s]+$", "", ty).split("::")[-1].split("<")[-1]
        embedded = field == snake_case(type_name) or f"{path}.{field}" in INLINE
        if kind == "message" and not repeated and embedded and local is not None and field not in local:
            print(f"note: inlining {path}.{field}", file=sys.stderr)
            out.append(f"        inline(&mut m, &self.{field});")
            used.add("inline")
            continue
        if local is not None and field.removeprefix("r#") not in local:
            print(f"note: {path}.{field} unknown to k8s-openapi, named {js}", file=sys.stderr)
        if kind.startswith("btree_map"):
            value_kind = re.search(r'btree_map = "string, (\w+)"', attr).group(1)
            fn = {"string": "string_map", "message": "msg_map", "bytes": "bytes_map"}[value_kind]
        elif kind == "message":
            fn = "msgs" if repeated else "msg"
        elif kind == "string":
            fn = "strings" if repeated else "string"
        elif kind.startswith("bytes"):
            fn = "bytes"
        else:
            fn = "scalars" if repeated else "scalar"
            if fn == "scalar" and field in OMIT_ZERO.get(path, []):
                fn = "scalar_nonzero"
                emitted_nonzero.add(f"{path}.{field}")
        arg = f"self.{field}" if fn.startswith("scalar") and fn != "scalars" else f"&self.{field}"
        used.add(fn)
        out.append(f'        {fn}(&mut m, "{js}", {arg});')
    out.append("        Value::Object(m)")
    out.append("    }")
    out.append("}")
missing = {f"{p}.{f}" for p, fs in OMIT_ZERO.items() for f in fs} - emitted_nonzero
if missing:
    sys.exit(f"OMIT_ZERO names unknown fields: {sorted(missing)}")
out[5] = out[5].format(", ".join(["ToJson"] + sorted(used)))
print("\n".join(out))
