//! Server-side apply and update tracking over managedFields, after structured-merge-diff's
//! `merge.Updater` (`Apply`, `Update`, `prune`) and kube-apiserver's fieldmanager: the applied
//! configuration is merged into the object, fields the applier dropped are pruned unless another
//! manager owns them, and changing a field another manager owns is a conflict unless forced.
//! Ordinary writes (`track_update`) move the fields they change to their manager.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::field_validation::PathSegment;
use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, Path, PathElement, canonical_json, path_string};
use super::managed_fields::{self, APPLY, Entry, UPDATE};
use super::merge_keys::{Field, ListType, Ty, key_default};
use super::{ApplyConflict, PatchError};

/// Top-level fields no manager owns: type meta, and status (its own subresource).
const IGNORED_TOP: &[&str] = &["apiVersion", "kind", "status"];
/// Metadata the server sets (upstream's managed-fields stripper, plus deletion fields).
const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];
/// Fields that Go always serializes (value structs, lists without omitempty), so that upstream's
/// comparison with the zero object never "adds" them and they get no `.` marker of their own.
const ALWAYS_SERIALIZED: &[&str] =
    &["metadata", "spec", "status", "template", "strategy", "updateStrategy", "jobTemplate", "containers"];
/// The manager kube-apiserver gives the fields of an object first applied without managedFields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

fn root_field(group: &str, kind: &str) -> Field {
    Field { ty: Ty::root(group, kind), list: ListType::Atomic, atomic: false }
}

/// The field describing one item of a list field.
fn item_field(list: Field) -> Field {
    Field { ty: list.ty, list: ListType::Atomic, atomic: false }
}

fn without_ignored(mut set: FieldSet) -> FieldSet {
    for top in IGNORED_TOP {
        set.remove_subtree(&[PathElement::Field((*top).to_string())]);
    }
    for meta in IGNORED_META {
        set.remove_subtree(&[PathElement::Field("metadata".to_string()), PathElement::Field((*meta).to_string())]);
    }
    set
}

/// The path element of a list item, or None when the list has no item identity (atomic) or the
/// item lacks its keys.
fn item_element(item: &Value, field: Field) -> Option<PathElement> {
    match field.list {
        ListType::Atomic => None,
        ListType::Set => (!item.is_object() && !item.is_array()).then(|| PathElement::value(item)),
        ListType::Map { keys, .. } => {
            let obj = item.as_object()?;
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                let value = match obj.get(*key) {
                    Some(v) => v.clone(),
                    None => Value::String(key_default(key)?.to_string()),
                };
                fields.push(((*key).to_string(), value));
            }
            Some(PathElement::key(fields))
        }
    }
}

/// A field path of `obj` as structured-merge-diff prints it: associative list items by their
/// keys (`.spec.containers[name="c"].imagee`), other list items by position.
pub(crate) fn typed_path(group: &str, kind: &str, obj: &Value, path: &[PathSegment]) -> String {
    let mut field = root_field(group, kind);
    let mut at = Some(obj);
    let mut out = String::new();
    for seg in path {
        let pe = match seg {
            PathSegment::Field(name) => {
                field = field.ty.field(name);
                at = at.and_then(|v| v.get(name));
                PathElement::Field(name.clone())
            }
            PathSegment::Index(i) => {
                let item = at.and_then(|v| v.get(*i));
                let pe = item.and_then(|item| item_element(item, field)).unwrap_or(PathElement::Index(*i));
                field = item_field(field);
                at = item;
                pe
            }
        };
        out.push_str(&pe.to_string());
    }
    out
}

/// The path elements of all items, or None when the list must be treated as atomic.
fn list_elements(items: &[Value], field: Field) -> Option<Vec<PathElement>> {
    items.iter().map(|i| item_element(i, field)).collect()
}

/// The fields an applied configuration sets (structured-merge-diff `ToFieldSet`): leaves, atomic
/// values and list items; not the maps that merely contain them.
fn applied_set(v: &Value, field: Field, path: &mut Path, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !field.atomic => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                applied_set(child, field.ty.field(k), path, set);
                path.pop();
            }
        }
        Value::Array(items) if field.list != ListType::Atomic => match list_elements(items, field) {
            Some(elements) => {
                for (pe, item) in elements.into_iter().zip(items) {
                    path.push(pe);
                    set.insert(path);
                    if let (ListType::Map { .. }, Value::Object(_)) = (field.list, item) {
                        applied_set(item, item_field(field), path, set);
                    }
                    path.pop();
                }
            }
            None => set.insert(path),
        },
        _ => set.insert(path),
    }
}

/// Adds `path` and everything under `v` (a value that appeared or disappeared).
fn insert_all(v: &Value, field: Field, path: &mut Path, set: &mut FieldSet) {
    let always_serialized =
        matches!(path.last(), Some(PathElement::Field(f)) if ALWAYS_SERIALIZED.contains(&f.as_str()));
    match v {
        Value::Object(m) if !field.atomic && !m.is_empty() => {
            if !always_serialized {
                set.insert(path);
            }
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                insert_all(child, field.ty.field(k), path, set);
                path.pop();
            }
        }
        Value::Array(items) if field.list != ListType::Atomic && !items.is_empty() => {
            if !always_serialized {
                set.insert(path);
            }
            if let Some(elements) = list_elements(items, field) {
                for (pe, item) in elements.into_iter().zip(items) {
                    path.push(pe);
                    insert_item(item, field, path, set);
                    path.pop();
                }
            }
        }
        _ => set.insert(path),
    }
}

/// What changed between two versions of an object (structured-merge-diff `Comparison`).
#[derive(Default)]
struct Comparison {
    modified: FieldSet,
    added: FieldSet,
    removed: FieldSet,
}

fn compare(old: Option<&Value>, new: Option<&Value>, field: Field, path: &mut Path, c: &mut Comparison) {
    let (o, n) = match (old, new) {
        (None, None) => return,
        (None, Some(n)) => return insert_all(n, field, path, &mut c.added),
        (Some(o), None) => return insert_all(o, field, path, &mut c.removed),
        (Some(o), Some(n)) => (o, n),
    };
    match (o, n) {
        (Value::Object(om), Value::Object(nm)) if !(field.atomic || om.is_empty() && nm.is_empty()) => {
            for k in om.keys().chain(nm.keys().filter(|k| !om.contains_key(*k))) {
                path.push(PathElement::Field(k.clone()));
                compare(om.get(k), nm.get(k), field.ty.field(k), path, c);
                path.pop();
            }
        }
        (Value::Array(oa), Value::Array(na)) if field.list != ListType::Atomic => {
            let (Some(ope), Some(npe)) = (list_elements(oa, field), list_elements(na, field)) else {
                if o != n {
                    c.modified.insert(path);
                }
                return;
            };
            let mut old_items: BTreeMap<&PathElement, &Value> = BTreeMap::new();
            for (pe, item) in ope.iter().zip(oa) {
                old_items.entry(pe).or_insert(item);
            }
            let mut new_items: BTreeMap<&PathElement, &Value> = BTreeMap::new();
            for (pe, item) in npe.iter().zip(na) {
                new_items.entry(pe).or_insert(item);
            }
            let mut seen = BTreeSet::new();
            for pe in ope.iter().chain(npe.iter()) {
                if !seen.insert(pe) {
                    continue;
                }
                path.push(pe.clone());
                match (old_items.get(pe), new_items.get(pe)) {
                    (Some(oi), Some(ni)) => {
                        if matches!(field.list, ListType::Map { .. }) {
                            compare(Some(oi), Some(ni), item_field(field), path, c);
                        }
                    }
                    (None, Some(ni)) => insert_item(ni, field, path, &mut c.added),
                    (Some(oi), None) => insert_item(oi, field, path, &mut c.removed),
                    (None, None) => {}
                }
                path.pop();
            }
        }
        _ => {
            if o != n {
                c.modified.insert(path);
            }
        }
    }
}

/// Adds a list item's path and its fields.
fn insert_item(item: &Value, list: Field, path: &mut Path, set: &mut FieldSet) {
    set.insert(path);
    if let (ListType::Map { .. }, Value::Object(m)) = (list.list, item) {
        for (k, child) in m {
            path.push(PathElement::Field(k.clone()));
            insert_all(child, list.ty.field(k), path, set);
            path.pop();
        }
    }
}

/// Merges an applied configuration into the live object (structured-merge-diff `Merge`): maps
/// key by key, keyed lists item by item, everything else replaced.
fn merge(live: Option<&Value>, applied: &Value, field: Field) -> Value {
    match (live, applied) {
        (Some(Value::Object(lm)), Value::Object(am)) if !field.atomic => {
            let mut out = lm.clone();
            for (k, av) in am {
                out.insert(k.clone(), merge(lm.get(k), av, field.ty.field(k)));
            }
            Value::Object(out)
        }
        (Some(Value::Array(la)), Value::Array(aa)) if field.list != ListType::Atomic => {
            match (list_elements(la, field), list_elements(aa, field)) {
                (Some(lpes), Some(apes)) => Value::Array(merge_list(la, &lpes, aa, &apes, field)),
                _ => applied.clone(),
            }
        }
        _ => applied.clone(),
    }
}

/// Merges two keyed lists keeping the live order, with applied items placed as
/// structured-merge-diff's `visitListItems` places them.
fn merge_list(lhs: &[Value], lpes: &[PathElement], rhs: &[Value], rpes: &[PathElement], field: Field) -> Vec<Value> {
    let mut l_index: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in lpes.iter().enumerate() {
        l_index.entry(pe).or_insert(i);
    }
    let mut r_index: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in rpes.iter().enumerate() {
        r_index.entry(pe).or_insert(i);
    }
    let merge_item = |pe: &PathElement| -> Value {
        let r = &rhs[r_index[pe]];
        match field.list {
            ListType::Map { .. } => merge(l_index.get(pe).map(|&i| &lhs[i]), r, item_field(field)),
            _ => r.clone(),
        }
    };
    let mut shared = rpes.iter().filter(|pe| l_index.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len() + rhs.len());
    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe);
                out.push(merge_item(pe));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if r_index.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !r_index.contains_key(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe);
            out.push(merge_item(pe));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// Whether list item `item` is the one `pe` names.
fn item_matches(item: &Value, pe: &PathElement) -> bool {
    match pe {
        PathElement::Key(k) => {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(k) else { return false };
            key.iter().all(|(name, want)| match item.get(name) {
                Some(v) => v == want,
                None => key_default(name).is_some_and(|d| want.as_str() == Some(d)),
            })
        }
        PathElement::Value(v) => canonical_json(item) == *v,
        PathElement::Field(_) | PathElement::Index(_) => false,
    }
}

/// Removes the value at `path` from `v`; false when there is none.
fn remove_path(v: &mut Value, path: &[PathElement]) -> bool {
    let Some((first, rest)) = path.split_first() else { return false };
    match (first, v) {
        (PathElement::Field(k), Value::Object(m)) => {
            if rest.is_empty() {
                m.shift_remove(k).is_some()
            } else {
                m.get_mut(k).is_some_and(|child| remove_path(child, rest))
            }
        }
        (PathElement::Index(i), Value::Array(items)) => {
            if *i >= items.len() {
                false
            } else if rest.is_empty() {
                items.remove(*i);
                true
            } else {
                remove_path(&mut items[*i], rest)
            }
        }
        (pe, Value::Array(items)) => match items.iter().position(|item| item_matches(item, pe)) {
            Some(i) if rest.is_empty() => {
                items.remove(i);
                true
            }
            Some(i) => remove_path(&mut items[i], rest),
            None => false,
        },
        _ => false,
    }
}

/// Whether `path` names a key field of the list item it is in (those go with the item).
fn is_key_field(path: &[PathElement]) -> bool {
    let [.., PathElement::Key(key), PathElement::Field(name)] = path else { return false };
    serde_json::from_str::<Value>(key).ok().and_then(|k| k.get(name).cloned()).is_some()
}

/// Rejects keyed lists with two items of the same key in an applied configuration, as
/// structured-merge-diff's validation does.
fn check_duplicates(v: &Value, field: Field, path: &mut Path) -> Result<(), String> {
    match v {
        Value::Object(m) if !field.atomic => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                check_duplicates(child, field.ty.field(k), path)?;
                path.pop();
            }
        }
        Value::Array(items) if field.list != ListType::Atomic => {
            if let Some(elements) = list_elements(items, field) {
                let mut seen = BTreeSet::new();
                for (pe, item) in elements.iter().zip(items) {
                    if !seen.insert(pe) {
                        return Err(format!("{}: duplicate entries for key {pe}", path_string(path)));
                    }
                    if matches!(field.list, ListType::Map { .. }) {
                        path.push(pe.clone());
                        check_duplicates(item, item_field(field), path)?;
                        path.pop();
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Drops `null`s from an applied configuration: an explicit null sets nothing.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn api_version_of(v: &Value) -> Option<&str> {
    v.get("apiVersion").and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Server-side apply at time `now` (RFC 3339); see `patch::server_side_apply`.
pub(crate) fn server_side_apply(
    group: &str,
    kind: &str,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    if !applied.is_object() {
        return Err(PatchError::BadRequest("the apply configuration must be an object".to_string()));
    }
    if applied.get("metadata").and_then(|m| m.get("managedFields")).is_some_and(|v| !v.is_null()) {
        return Err(PatchError::BadRequest("metadata.managedFields must be nil".to_string()));
    }
    let root = root_field(group, kind);
    let applied = strip_nulls(applied);
    let api_version =
        api_version_of(&applied).or_else(|| current.and_then(api_version_of)).unwrap_or_default().to_string();
    check_duplicates(&applied, root, &mut Vec::new()).map_err(|e| {
        PatchError::Invalid(format!("failed to create typed patch object ({api_version}, Kind={kind}): {e}"))
    })?;

    let mut live = current.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = managed_fields::decode(&live);
    managed_fields::strip(&mut live);
    if current.is_some() && entries.is_empty() {
        let mut c = Comparison::default();
        compare(None, Some(&live), root, &mut Vec::new(), &mut c);
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.to_string(),
            operation: UPDATE.to_string(),
            api_version: api_version_of(&live).unwrap_or_default().to_string(),
            time: Some(now.to_string()),
            subresource: None,
            set: without_ignored(c.added),
        });
    }

    let mut new_obj = merge(Some(&live), &applied, root);
    let mut new_set = FieldSet::default();
    applied_set(&applied, root, &mut Vec::new(), &mut new_set);
    let new_set = without_ignored(new_set);
    let mine = entries.iter().position(|e| e.is(manager, APPLY, &api_version));

    // Prune what this manager applied before and no longer does, unless someone else owns it.
    if let Some(i) = mine {
        let mut kept = new_set.clone();
        for (j, e) in entries.iter().enumerate() {
            if j != i {
                kept = kept.union(&e.set);
            }
        }
        for path in entries[i].set.difference(&new_set).paths() {
            if kept.contains(&path) || kept.has_members_under(&path) || is_key_field(&path) {
                continue;
            }
            remove_path(&mut new_obj, &path);
        }
    }

    let mut c = Comparison::default();
    compare(Some(&live), Some(&new_obj), root, &mut Vec::new(), &mut c);
    let changed = without_ignored(c.modified.union(&c.added));
    let removed = without_ignored(c.removed);

    let mut conflicts = Vec::new();
    for (j, e) in entries.iter().enumerate() {
        if Some(j) == mine {
            continue;
        }
        for path in e.set.intersection(&changed).paths() {
            conflicts.push((e.manager.clone(), path, (e.operation == UPDATE).then(|| e.api_version.clone())));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort();
        return Err(PatchError::Conflicts(
            conflicts
                .into_iter()
                .map(|(manager, path, api_version)| ApplyConflict { manager, field: path_string(&path), api_version })
                .collect(),
        ));
    }
    let taken = changed.union(&removed);
    for (j, e) in entries.iter_mut().enumerate() {
        if Some(j) != mine {
            e.set = e.set.difference(&taken);
        }
    }
    let object_changed = !changed.is_empty() || !removed.is_empty();
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if object_changed || e.set != new_set || e.api_version != api_version {
                e.time = Some(now.to_string());
            }
            e.set = new_set;
            e.api_version = api_version;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: APPLY.to_string(),
            api_version,
            time: Some(now.to_string()),
            subresource: None,
            set: new_set,
        }),
    }
    managed_fields::encode(&mut new_obj, entries);
    Ok(new_obj)
}

/// Records an ordinary write at time `now`; see `patch::track_update`.
pub(crate) fn track_update(group: &str, kind: &str, old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    if !new.is_object() {
        return;
    }
    let root = root_field(group, kind);
    let mut entries = if managed_fields::has_managed_fields(new) {
        managed_fields::decode(new)
    } else {
        old.map(managed_fields::decode).unwrap_or_default()
    };
    let api_version = api_version_of(new).or_else(|| old.and_then(api_version_of)).unwrap_or_default().to_string();

    let mut old_clean = old.cloned();
    if let Some(o) = old_clean.as_mut() {
        managed_fields::strip(o);
    }
    let mut new_clean = new.clone();
    managed_fields::strip(&mut new_clean);
    let mut c = Comparison::default();
    match &old_clean {
        Some(o) => compare(Some(o), Some(&new_clean), root, &mut Vec::new(), &mut c),
        None => compare(None, Some(&new_clean), root, &mut Vec::new(), &mut c),
    }
    let mut changed = without_ignored(c.modified.union(&c.added));
    let removed = without_ignored(c.removed);
    if old.is_none() {
        // A create that server-side apply already recorded: the applier owns what it set, and
        // the maps and lists holding those fields.
        let mut owned = FieldSet::default();
        for e in entries.iter().filter(|e| e.manager == manager) {
            owned = owned.union(&e.set);
        }
        let mut kept = FieldSet::default();
        for path in changed.paths() {
            if !owned.contains(&path) && !owned.has_members_under(&path) {
                kept.insert(&path);
            }
        }
        changed = kept;
    }

    let taken = changed.union(&removed);
    for e in entries.iter_mut() {
        e.set = e.set.difference(&taken);
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.is(manager, UPDATE, &api_version)) {
            Some(e) => {
                e.set = e.set.union(&changed);
                e.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: UPDATE.to_string(),
                api_version,
                time: Some(now.to_string()),
                subresource: None,
                set: changed,
            }),
        }
    }
    managed_fields::encode(new, entries);
}

#[cfg(test)]
mod tests;
