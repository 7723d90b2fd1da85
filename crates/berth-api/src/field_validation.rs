//! Server-side field validation: which fields of a request body the kind's schema does not
//! declare (`unknown field "spec.containers[0].imagee"`) and which keys a JSON body repeats
//! (`duplicate field "spec.paused"`), as kube-apiserver's strict decoding reports them.
//!
//! The schemas are the ones `/openapi/v3` serves (generated from the k8s-openapi types), compiled
//! once into a small tree of [`Node`]s: an object with its declared properties, a map (free-form
//! keys such as `labels`, `data`, `resources.limits`), a list, or "anything" (scalars,
//! int-or-string, `FieldsV1`, `RawExtension`, JSON). Only objects with declared properties can
//! have unknown fields; maps and "anything" accept every key, so labels, annotations, ConfigMap
//! data and quantities never count as unknown. Custom resources have no typed schema; a CRD
//! version's structural schema compiles to one with [`compile_structural`] (pruning as the
//! apiextensions-apiserver does, `x-kubernetes-preserve-unknown-fields` honoured).
//!
//! Unknown fields are always removed (a typed decode drops them upstream); whether they are then
//! reported as warnings or fail the request is the caller's choice (`fieldValidation`). Pure
//! functions: no I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// One strict-decoding finding, printed as upstream prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    /// A field the schema does not declare: `unknown field "spec.foo"`.
    Unknown(String),
    /// A key repeated in one JSON object (the last value wins): `duplicate field "spec.paused"`.
    Duplicate(String),
}

impl FieldProblem {
    /// The field path (`spec.template.spec.containers[0].imagee`).
    pub fn path(&self) -> &str {
        match self {
            FieldProblem::Unknown(p) | FieldProblem::Duplicate(p) => p,
        }
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Unknown(p) => write!(f, "unknown field {p:?}"),
            FieldProblem::Duplicate(p) => write!(f, "duplicate field {p:?}"),
        }
    }
}

/// Index of a [`Node`] in [`Schemas::nodes`].
type NodeId = u32;

/// A compiled schema node.
#[derive(Debug)]
enum Node {
    /// No structure to check below (scalars, int-or-string, free-form objects).
    Any,
    /// An object with declared properties (and, rarely, typed additional properties).
    Object { props: HashMap<String, NodeId>, additional: Option<NodeId> },
    /// Free-form keys, each value of one schema.
    Map(NodeId),
    /// A list, each item of one schema.
    Array(NodeId),
}

/// Every kind's compiled schema.
#[derive(Debug)]
struct Schemas {
    nodes: Vec<Node>,
    kinds: HashMap<(&'static str, &'static str, &'static str), NodeId>,
}

/// The compiled schema of one kind in one version (a cheap handle).
#[derive(Clone, Copy, Debug)]
pub struct KindSchema {
    schemas: &'static Schemas,
    root: NodeId,
}

/// The schema of `kind` in `group`/`version`, if it has a typed one (built-in kinds and the
/// subresource bodies `autoscaling/v1` Scale, `v1` Binding, `policy/v1` Eviction).
pub fn kind_schema(group: &str, version: &str, kind: &str) -> Option<KindSchema> {
    let schemas = schemas();
    schemas.kinds.get(&(group, version, kind)).map(|&root| KindSchema { schemas, root })
}

/// Compiles the structural schema of a custom resource version (a CRD's
/// `spec.versions[].schema.openAPIV3Schema`) as the apiextensions-apiserver prunes with it:
/// an object keeps only its `properties` (all of them with `x-kubernetes-preserve-unknown-fields`),
/// `additionalProperties` makes a map, and `apiVersion`, `kind` and `metadata` are always
/// allowed at the root (and in embedded resources). `None` when the whole object is preserved.
///
/// The compiled schema lives for the rest of the process (as the CRD's registry entry does).
pub fn compile_structural(schema: &Value) -> Option<KindSchema> {
    let mut nodes = vec![Node::Any];
    let root = structural(schema, true, &mut nodes);
    if root == ANY {
        return None;
    }
    let schemas: &'static Schemas = Box::leak(Box::new(Schemas { nodes, kinds: HashMap::new() }));
    Some(KindSchema { schemas, root })
}

/// One node of a structural schema (see [`compile_structural`]); `resource` marks the root or
/// an embedded resource.
fn structural(schema: &Value, resource: bool, nodes: &mut Vec<Node>) -> NodeId {
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") {
        return ANY;
    }
    let resource = resource || flag("x-kubernetes-embedded-resource");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    fn push(node: Node, nodes: &mut Vec<Node>) -> NodeId {
        nodes.push(node);
        NodeId::try_from(nodes.len() - 1).unwrap_or(ANY)
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object") || props.is_some();
    if is_object || resource {
        if let Some(a) = additional.filter(|a| a.is_object()) {
            let item = structural(a, false, nodes);
            return push(Node::Map(item), nodes);
        }
        if additional.and_then(Value::as_bool) == Some(true) || (preserve && props.is_none()) {
            return ANY;
        }
        let mut out = HashMap::new();
        for (k, v) in props.into_iter().flatten() {
            out.insert(k.clone(), structural(v, false, nodes));
        }
        if resource {
            for k in ["apiVersion", "kind", "metadata"] {
                out.entry(k.to_string()).or_insert(ANY);
            }
        }
        return push(Node::Object { props: out, additional: preserve.then_some(ANY) }, nodes);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let item = structural(items, false, nodes);
        return if item == ANY { ANY } else { push(Node::Array(item), nodes) };
    }
    ANY
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let (defs, roots) = crate::openapi::known_kind_schemas();
        let mut compiler = Compiler { defs: &defs, nodes: vec![Node::Any], by_name: HashMap::new() };
        let mut kinds = HashMap::new();
        for (gvk, name) in roots {
            let id = compiler.definition(&name);
            kinds.insert(gvk, id);
        }
        Schemas { nodes: compiler.nodes, kinds }
    })
}

/// Node 0 is always [`Node::Any`].
const ANY: NodeId = 0;
const REF_PREFIX: &str = "#/components/schemas/";

struct Compiler<'a> {
    defs: &'a Map<String, Value>,
    nodes: Vec<Node>,
    by_name: HashMap<String, NodeId>,
}

impl Compiler<'_> {
    /// The node of a named definition (compiled once; recursive definitions refer to
    /// themselves through the reserved id).
    fn definition(&mut self, name: &str) -> NodeId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let Some(schema) = self.defs.get(name) else { return ANY };
        let id = self.push(Node::Any);
        self.by_name.insert(name.to_string(), id);
        let node = self.node(schema);
        self.nodes[id as usize] = node;
        id
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        NodeId::try_from(self.nodes.len() - 1).unwrap_or(ANY)
    }

    /// The node id of an inline schema: a `$ref` (or a lone `allOf` entry, as a property with
    /// its own description refers to a type) is its definition's id, so recursive types work.
    fn id(&mut self, schema: &Value) -> NodeId {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(REF_PREFIX)) {
            return self.definition(name);
        }
        if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            return self.id(only);
        }
        match self.node(schema) {
            Node::Any => ANY,
            node => self.push(node),
        }
    }

    fn node(&mut self, schema: &Value) -> Node {
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let mut out = HashMap::with_capacity(props.len());
            for (k, v) in props {
                let id = self.id(v);
                out.insert(k.clone(), id);
            }
            let additional = additional.map(|a| self.id(a));
            return Node::Object { props: out, additional };
        }
        if let Some(a) = additional {
            return Node::Map(self.id(a));
        }
        if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
            return Node::Array(self.id(items));
        }
        Node::Any
    }
}

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    /// An object field (or map key).
    Field(String),
    /// A list item by position.
    Index(usize),
}

/// `spec.containers[0].imagee`.
fn render(path: &[PathSegment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSegment::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            PathSegment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// A field path, built on the stack while walking and printed only when something is reported.
#[derive(Clone, Copy)]
enum Seg<'p> {
    Root,
    Field(&'p Seg<'p>, &'p str),
    Index(&'p Seg<'p>, usize),
}

impl Seg<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Seg::Root => {}
            Seg::Field(parent, name) => {
                parent.write(out);
                if !matches!(parent, Seg::Root) {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(parent, i) => {
                parent.write(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
}

impl KindSchema {
    fn node(&self, id: NodeId) -> &'static Node {
        &self.schemas.nodes[id as usize]
    }

    /// The schema of `key` inside an object of schema `id`: `Some(child)` when the key is
    /// allowed, `None` when it is unknown.
    fn child(&self, id: NodeId, key: &str) -> Option<NodeId> {
        match self.node(id) {
            Node::Object { props, additional } => props.get(key).copied().or(*additional),
            Node::Map(c) => Some(*c),
            Node::Any | Node::Array(_) => Some(ANY),
        }
    }

    fn item(&self, id: NodeId) -> NodeId {
        match self.node(id) {
            Node::Array(c) => *c,
            _ => ANY,
        }
    }

    /// Removes the fields of `obj` the schema does not declare and returns them in document
    /// order (`unknown field "spec.replica"`).
    pub fn prune(&self, obj: &mut Value) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        self.prune_at(self.root, obj, &Seg::Root, &mut out);
        out
    }

    /// The fields of `obj` the schema does not declare, in document order, leaving `obj` as it is.
    pub fn unknown_fields(&self, obj: &Value) -> Vec<FieldProblem> {
        self.unknown_field_paths(obj).iter().map(|p| FieldProblem::Unknown(render(p))).collect()
    }

    /// [`KindSchema::unknown_fields`] as paths of segments, for callers that print paths in
    /// another form (server-side apply's `.spec.containers[name="c"].imagee`).
    pub fn unknown_field_paths(&self, obj: &Value) -> Vec<Vec<PathSegment>> {
        let mut out = Vec::new();
        self.find_at(self.root, obj, &mut Vec::new(), &mut out);
        out
    }

    fn find_at(&self, id: NodeId, v: &Value, path: &mut Vec<PathSegment>, out: &mut Vec<Vec<PathSegment>>) {
        if id == ANY {
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(PathSegment::Field(k.clone()));
                    match self.child(id, k) {
                        Some(c) => self.find_at(c, child, path, out),
                        None => out.push(path.clone()),
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let c = self.item(id);
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSegment::Index(i));
                    self.find_at(c, item, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn prune_at(&self, id: NodeId, v: &mut Value, path: &Seg<'_>, out: &mut Vec<FieldProblem>) {
        if id == ANY {
            return;
        }
        match v {
            Value::Object(m) => m.retain(|k, child| match self.child(id, k) {
                Some(c) => {
                    self.prune_at(c, child, &Seg::Field(path, k), out);
                    true
                }
                None => {
                    out.push(FieldProblem::Unknown(Seg::Field(path, k).render()));
                    false
                }
            }),
            Value::Array(items) => {
                let c = self.item(id);
                for (i, item) in items.iter_mut().enumerate() {
                    self.prune_at(c, item, &Seg::Index(path, i), out);
                }
            }
            _ => {}
        }
    }
}

/// Decodes a JSON document, reporting repeated keys and, given a schema, dropping and reporting
/// fields it does not declare, all in document order (upstream's strict decoder). A field that
/// is both unknown and repeated is reported once, as unknown.
///
/// # Errors
/// The JSON is malformed.
pub fn decode_json(body: &[u8], schema: Option<KindSchema>) -> Result<(Value, Vec<FieldProblem>), serde_json::Error> {
    let problems = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Seed { schema, node: schema.map_or(ANY, |s| s.root), path: &Seg::Root, problems: &problems };
    let value = seed.deserialize(&mut de)?;
    de.end()?;
    Ok((value, problems.into_inner()))
}

struct Seed<'a, 'p> {
    schema: Option<KindSchema>,
    node: NodeId,
    path: &'p Seg<'p>,
    problems: &'a RefCell<Vec<FieldProblem>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = self.schema.map_or(ANY, |s| s.item(self.node));
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let path = Seg::Index(self.path, out.len());
            let seed = Seed { schema: self.schema, node: item, path: &path, problems: self.problems };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut unknown: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = Seg::Field(self.path, &key);
            let child = match self.schema {
                Some(s) if self.node != ANY => s.child(self.node, &key),
                _ => Some(ANY),
            };
            let Some(child) = child else {
                map.next_value::<IgnoredAny>()?;
                if !unknown.contains(&key) {
                    self.problems.borrow_mut().push(FieldProblem::Unknown(path.render()));
                    unknown.push(key);
                }
                continue;
            };
            let seed = Seed { schema: self.schema, node: child, path: &path, problems: self.problems };
            let value = map.next_value_seed(seed)?;
            let duplicate = out.contains_key(&key);
            if duplicate {
                self.problems.borrow_mut().push(FieldProblem::Duplicate(path.render()));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests;
