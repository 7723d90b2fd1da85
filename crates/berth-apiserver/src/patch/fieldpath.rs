//! Field paths and sets of them, as structured-merge-diff's `fieldpath` package has them: path
//! elements `f:<field>`, `k:<key fields as JSON>`, `v:<value as JSON>`, `i:<index>`, sets
//! serialized as the FieldsV1 tree of `metadata.managedFields` (with `.` marking a member that
//! also has children), and paths printed as `.spec.containers[name="a"].image`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// One step of a path. Keys and values are held as canonical JSON (object keys sorted), so that
/// equality and order are plain string comparisons.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathElement {
    /// A struct field or map key.
    Field(String),
    /// An associative list item, by its key fields: `{"name":"a"}`.
    Key(String),
    /// A set item, by its value.
    Value(String),
    /// A list item by position (only in paths read from clients).
    Index(usize),
}

/// A path from the object root.
pub(crate) type Path = Vec<PathElement>;

/// JSON text of `v` with object keys sorted at every level.
pub(crate) fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect::<Map<_, _>>())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

impl PathElement {
    /// A list-map key element from (key field, value) pairs.
    pub(crate) fn key(fields: Vec<(String, Value)>) -> PathElement {
        PathElement::Key(canonical_json(&Value::Object(fields.into_iter().collect())))
    }

    /// A set element.
    pub(crate) fn value(v: &Value) -> PathElement {
        PathElement::Value(canonical_json(v))
    }

    /// The FieldsV1 key of this element.
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key.
    fn decode(s: &str) -> Result<PathElement, String> {
        let (prefix, rest) = s.split_at_checked(2).ok_or_else(|| format!("invalid path element {s:?}"))?;
        let json = |rest: &str| -> Result<Value, String> {
            serde_json::from_str(rest).map_err(|e| format!("invalid path element {s:?}: {e}"))
        };
        match prefix {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "k:" => match json(rest)? {
                v @ Value::Object(_) => Ok(PathElement::Key(canonical_json(&v))),
                _ => Err(format!("invalid path element {s:?}: key is not an object")),
            },
            "v:" => Ok(PathElement::Value(canonical_json(&json(rest)?))),
            "i:" => rest.parse().map(PathElement::Index).map_err(|e| format!("invalid path element {s:?}: {e}")),
            _ => Err(format!("invalid path element {s:?}")),
        }
    }
}

impl std::fmt::Display for PathElement {
    /// As structured-merge-diff prints it: `.name`, `[name="a",protocol="TCP"]`, `[="x"]`, `[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(k) => {
                let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> =
                    parsed.as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect()).unwrap_or_default();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as structured-merge-diff prints it.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    let mut s = String::new();
    for pe in path {
        let _ = write!(s, "{pe}");
    }
    s
}

/// A set of paths, as a tree. A node is a member when its own path is in the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// Adds `path` (the root itself is never a member).
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        if !path.is_empty() {
            node.member = true;
        }
    }

    fn node(&self, path: &[PathElement]) -> Option<&FieldSet> {
        let mut node = self;
        for pe in path {
            node = node.children.get(pe)?;
        }
        Some(node)
    }

    /// Whether `path` is in the set.
    pub(crate) fn contains(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether some path strictly under `path` is in the set.
    pub(crate) fn has_members_under(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| n.children.values().any(|c| !c.is_empty()))
    }

    /// Whether no path is in the set.
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Every path in the set, parents before children, in order.
    pub(crate) fn paths(&self) -> Vec<Path> {
        fn walk(node: &FieldSet, prefix: &mut Path, out: &mut Vec<Path>) {
            for (pe, child) in &node.children {
                prefix.push(pe.clone());
                if child.member {
                    out.push(prefix.clone());
                }
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The paths in either set.
    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// The paths in `self` but not in `other`.
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && !other.member, children: BTreeMap::new() };
        for (pe, child) in &self.children {
            let d = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// The paths in both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let i = child.intersection(theirs);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    /// Removes `path` and everything under it.
    pub(crate) fn remove_subtree(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else { return };
        let mut node = self;
        for pe in parents {
            match node.children.get_mut(pe) {
                Some(n) => node = n,
                None => return,
            }
        }
        node.children.remove(last);
    }

    /// The FieldsV1 JSON of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            m.insert(pe.encode(), child.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Parses FieldsV1 JSON.
    pub(crate) fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        fn parse(m: &Map<String, Value>, node: &mut FieldSet) -> Result<(), String> {
            for (k, v) in m {
                let Value::Object(child_map) = v else { return Err(format!("value of {k:?} is not an object")) };
                if k == "." {
                    node.member = true;
                    continue;
                }
                let pe = PathElement::decode(k)?;
                let child = node.children.entry(pe).or_default();
                if child_map.is_empty() {
                    child.member = true;
                } else {
                    parse(child_map, child)?;
                }
            }
            Ok(())
        }
        let Value::Object(m) = v else { return Err("fieldsV1 is not an object".to_string()) };
        let mut set = FieldSet::default();
        parse(m, &mut set)?;
        set.member = false;
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.to_string())
    }

    #[test]
    fn fields_v1_round_trips_with_dot_markers_and_keys() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
            }
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert!(set.contains(&[f("spec"), f("replicas")]));
        assert!(set.contains(&[f("metadata"), f("labels")]));
        assert!(!set.contains(&[f("spec")]));
        let item = PathElement::key(vec![("name".into(), json!("nginx"))]);
        assert!(set.contains(&[f("spec"), f("template"), f("spec"), f("containers"), item.clone()]));
        assert_eq!(set.to_fields_v1(), v);
        assert_eq!(
            path_string(&[f("spec"), f("template"), f("spec"), f("containers"), item, f("image")]),
            ".spec.template.spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn keys_are_canonical_and_values_print_as_upstream() {
        let a = PathElement::key(vec![("protocol".into(), json!("TCP")), ("containerPort".into(), json!(80))]);
        let b = PathElement::decode("k:{\"protocol\":\"TCP\",\"containerPort\":80}").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.encode(), "k:{\"containerPort\":80,\"protocol\":\"TCP\"}");
        assert_eq!(a.to_string(), "[containerPort=80,protocol=\"TCP\"]");
        assert_eq!(PathElement::value(&json!("x")).to_string(), "[=\"x\"]");
        assert_eq!(PathElement::value(&json!("x")).encode(), "v:\"x\"");
        assert!(PathElement::decode("z:1").is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = FieldSet::default();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("metadata"), f("labels"), f("x")]);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("spec"), f("replicas")]]);
        assert_eq!(a.difference(&b).paths(), vec![vec![f("spec"), f("paused")]]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(b.has_members_under(&[f("metadata")]));
        assert!(!a.difference(&a).has_members_under(&[f("spec")]));
        assert!(a.difference(&a).is_empty());
        a.remove_subtree(&[f("spec")]);
        assert!(a.is_empty());
    }
}
