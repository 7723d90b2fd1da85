//! Strategic merge patch, after apimachinery/pkg/util/strategicpatch (patch.go, `mergeMap` with
//! `MergeParallelList` and `IgnoreUnmatchedNulls`, as kube-apiserver applies it): lists merged by
//! merge key or as sets where the schema (merge_keys) says so, other lists replaced, `null` deletes
//! a key, and the directives `$patch` (replace/delete/merge), `$retainKeys`, `$setElementOrder/<f>`
//! and `$deleteFromPrimitiveList/<f>`.

use serde_json::{Map, Value};

use super::PatchError;
use super::merge_keys::{Field, ListType, Ty};

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

// The mergepatch error texts (apimachinery/pkg/util/mergepatch/errors.go).
const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// Applies a strategic merge patch to `current`, an object of kind `group`/`kind`.
pub(crate) fn apply_strategic_merge_patch(
    group: &str,
    kind: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadRequest("invalid JSON document".to_string()));
    };
    let original = match current {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(original, patch.clone(), Ty::root(group, kind)).map(Value::Object)
}

fn bad_request(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    bad_request(format!("map: {item} does not contain declared merge key: {key}"))
}

/// Merges `patch` into `original` (mergeMap).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Ty,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE_MARKER);
                return merge_map(Map::new(), patch, ty);
            }
            Some("delete") => return Ok(Map::new()),
            // Upstream rejects `$patch: merge` on maps; merging is what it means, so do that.
            Some("merge") => {
                patch.shift_remove(DIRECTIVE_MARKER);
            }
            _ => {
                return Err(bad_request(format!(
                    "unknown patch type: {directive} in map: {}",
                    Value::Object(patch.clone())
                )));
            }
        }
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, ty)?;

    for (key, patch_value) in patch {
        if let Some(list_key) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(to_delete) = patch_value else { return Err(bad_request(ERR_PRIMITIVE_LIST)) };
            if list_key.is_empty() {
                return Err(bad_request(ERR_PRIMITIVE_LIST));
            }
            if let Some(Value::Array(list)) = original.get_mut(list_key) {
                list.retain(|v| !to_delete.contains(v));
            }
            continue;
        }
        if key.starts_with("$deleteFromPrimitiveList") {
            return Err(bad_request(ERR_PRIMITIVE_LIST));
        }
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let field = ty.field(&key);
        let merged = match original.get_mut(&key) {
            None => clean(patch_value, field)?,
            Some(original_value) => match (original_value.take(), patch_value) {
                (Value::Object(o), Value::Object(p)) => Value::Object(merge_map(o, p, field.ty)?),
                (Value::Array(o), Value::Array(p)) => Value::Array(merge_list(o, p, field)?),
                (_, p) => clean(p, field)?,
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value taken as a whole (no counterpart in the original): directives and nulls are
/// resolved against an empty original so that none of them is stored.
fn clean(value: Value, field: Field) -> Result<Value, PatchError> {
    Ok(match value {
        Value::Object(p) => Value::Object(merge_map(Map::new(), p, field.ty)?),
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, field)?),
        other => other,
    })
}

/// Merges two lists according to the field's list type (mergeSliceHandler).
fn merge_list(original: Vec<Value>, patch: Vec<Value>, field: Field) -> Result<Vec<Value>, PatchError> {
    match field.list {
        ListType::Atomic => patch
            .into_iter()
            .map(|item| match item {
                Value::Object(p) => merge_map(Map::new(), p, field.ty).map(Value::Object),
                other => Ok(other),
            })
            .collect(),
        ListType::Set => merge_slice(original, patch, "", field.ty),
        ListType::Map { patch_merge_key, .. } => merge_slice(original, patch, patch_merge_key, field.ty),
    }
}

/// The kind of the items of some lists, which must all be alike and not lists (sliceElementType).
/// None when all are empty.
fn element_kind(lists: &[&[Value]]) -> Result<Option<u8>, PatchError> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let k = match item {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => return Err(PatchError::Invalid(ERR_LIST_OF_LISTS.to_string())),
            Value::Object(_) => 5,
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(bad_request(format!(
                    "list element types are not identical: {}",
                    lists.iter().map(|l| Value::Array(l.to_vec()).to_string()).collect::<Vec<_>>().join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

const OBJECT_KIND: u8 = 5;

/// Merges a list with merge strategy (mergeSlice): scalars as a set, maps by `merge_key`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    item_ty: Ty,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let is_map = element_kind(&[&original, &patch])? == Some(OBJECT_KIND);
    if !is_map {
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (patch_items, server_only) = partition_primitives(merged, &patch);
        return normalize_element_order(patch_items, server_only, &patch, &original, "", false);
    }
    if merge_key.is_empty() {
        return Err(bad_request("cannot merge lists without merge key for type map"));
    }
    let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key)?;
    let merged = merge_slice_without_special_elements(original.clone(), &patch, merge_key, item_ty)?;
    let (patch_items, server_only) = partition_maps(merged, &patch, merge_key)?;
    normalize_element_order(patch_items, server_only, &patch, &original, merge_key, true)
}

/// Applies `$patch: delete` / `$patch: replace` items; returns the new original and the patch
/// without those items (mergeSliceWithSpecialElements).
fn merge_slice_with_special_elements(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut original = original;
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE_MARKER) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(key_value) = item.get(merge_key) else { return Err(no_merge_key(&item, merge_key)) };
                original.retain(|o| o.get(merge_key) != Some(key_value));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(bad_request("merging lists cannot yet be specified in the patch")),
            _ => return Err(bad_request(format!("unknown patch type: {directive} in map: {item}"))),
        }
    }
    if replace { Ok((rest, Vec::new())) } else { Ok((original, rest)) }
}

/// Merges each patch item into the original item with the same key, or appends it.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    item_ty: Ty,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        let Value::Object(p) = item else { return Err(no_merge_key(item, merge_key)) };
        let Some(key_value) = p.get(merge_key) else { return Err(no_merge_key(item, merge_key)) };
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            let Value::Object(o) = o else { return Err(bad_request(format!("value for key {i} is not a map."))) };
            if o.get(merge_key) == Some(key_value) {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                if let Value::Object(o) = &mut original[i] {
                    let taken = std::mem::take(o);
                    *o = merge_map(taken, p.clone(), item_ty)?;
                }
            }
            None => original.push(Value::Object(merge_map(Map::new(), p.clone(), item_ty)?)),
        }
    }
    Ok(original)
}

/// Splits `list` into the items present in `by` and the others (partitionPrimitivesByPresentInList).
fn partition_primitives(list: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    list.into_iter().partition(|v| by.contains(v))
}

/// Splits `list` into the items whose merge key is present in `by` and the others.
fn partition_maps(list: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut server_only = Vec::new();
    for v in list {
        let Some(key_value) = v.get(merge_key) else { return Err(no_merge_key(&v, merge_key)) };
        let mut found = false;
        for (i, b) in by.iter().enumerate() {
            if !b.is_object() {
                return Err(bad_request(format!("value for key {i} is not a map.")));
            }
            if b.get(merge_key) == Some(key_value) {
                found = true;
                break;
            }
        }
        if found { present.push(v) } else { server_only.push(v) }
    }
    Ok((present, server_only))
}

/// Position of `item` in `list`, by merge key for maps.
fn index_of(list: &[Value], item: &Value, merge_key: &str, is_map: bool) -> Option<usize> {
    if is_map {
        let key_value = item.get(merge_key);
        list.iter().position(|v| v.get(merge_key) == key_value)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// Sorts the patch items by `patch_order` and the server-only items by `server_order`, then
/// interleaves them (normalizeElementOrder).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, is_map)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, is_map)?;
    Ok(merge_sorted_slice(server_only, patch_items, server_order, merge_key, is_map))
}

/// Sorts `to_sort` by the positions of its items in `order`; `$patch: delete` items go last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let (mut to_sort, to_delete): (Vec<Value>, Vec<Value>) = if is_map {
        for item in to_sort.iter().chain(order.iter()) {
            if item.get(merge_key).is_none() {
                return Err(no_merge_key(item, merge_key));
            }
        }
        to_sort.into_iter().partition(|v| v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete"))
    } else {
        (to_sort, Vec::new())
    };
    to_sort.sort_by_key(|v| index_of(order, v, merge_key, is_map).unwrap_or(usize::MAX));
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// Inserts the (sorted) `left` items among the (sorted) `right` items, using their relative
/// order in `server_order` where both are there (mergeSortedSlice).
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    is_map: bool,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (index_of(server_order, l, merge_key, is_map), index_of(server_order, r, merge_key, is_map)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// `$retainKeys`: clears the original's keys missing from the list (applyRetainKeysDirective).
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(retain) = retain else { return Err(bad_request(ERR_RETAIN_KEYS)) };
    let keep = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !keep(k) {
            return Err(bad_request(ERR_RETAIN_KEYS));
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's list and orders it as the directive says
/// (mergePatchIntoOriginal). The merged list is removed from the patch.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Ty,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with("$setElementOrder")).cloned().collect();
    for key in keys {
        let Some(Value::Array(order)) = patch.shift_remove(&key) else {
            return Err(bad_request(ERR_SET_ELEMENT_ORDER));
        };
        let Some(list_key) = key.strip_prefix(SET_ELEMENT_ORDER).filter(|k| !k.is_empty()) else {
            return Err(bad_request(ERR_SET_ELEMENT_ORDER));
        };
        let field = ty.field(list_key);
        let merge_key = match field.list {
            ListType::Map { patch_merge_key, .. } => patch_merge_key,
            _ => "",
        };
        let original_list = match original.get(list_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_request(format!("expected a slice, but received {other}"))),
        };
        let patch_list = match patch.get(list_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(_) => return Err(bad_request(ERR_SET_ELEMENT_ORDER)),
        };
        validate_patch_with_set_order_list(patch_list.as_deref().unwrap_or_default(), &order, merge_key)?;
        let is_map = match element_kind(&[
            original_list.as_deref().unwrap_or_default(),
            patch_list.as_deref().unwrap_or_default(),
        ])? {
            Some(kind) => kind == OBJECT_KIND,
            None => !merge_key.is_empty(),
        };
        let merged = match (original_list.clone(), patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => merge_list(Vec::new(), p, field)?,
            (Some(o), Some(p)) => merge_list(o, p, field)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) =
            if is_map { partition_maps(merged, &order, merge_key)? } else { partition_primitives(merged, &order) };
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            original_list.as_deref().unwrap_or_default(),
            merge_key,
            is_map,
        )?;
        original.insert(list_key.to_string(), Value::Array(both));
        patch.shift_remove(list_key);
    }
    Ok(())
}

/// Checks that the patch list's items appear in the `$setElementOrder` list in the same relative
/// order (validatePatchWithSetOrderList).
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        patch_list.iter().filter(|v| v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete")).collect()
    };
    let (mut p, mut o) = (0, 0);
    while p < non_delete.len() && o < order.len() {
        if non_delete[p].get(DIRECTIVE_MARKER).is_some() {
            p += 1;
            continue;
        }
        let equal = if merge_key.is_empty() {
            non_delete[p] == &order[o]
        } else {
            let left = non_delete[p].get(merge_key).ok_or_else(|| no_merge_key(non_delete[p], merge_key))?;
            let right = order[o].get(merge_key).ok_or_else(|| no_merge_key(&order[o], merge_key))?;
            left == right
        };
        if equal {
            p += 1;
        }
        o += 1;
    }
    if p < non_delete.len() {
        return Err(bad_request(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
