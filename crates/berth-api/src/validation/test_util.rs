//! Helpers shared by the validation test modules: editing a JSON object at a pointer and
//! checking table-driven cases by the prefix of the message each one must produce.

use serde_json::Value;

use super::ErrorList;

/// A validation function under test.
pub(crate) type Validate = fn(&Value) -> ErrorList;

/// `o` with the value at JSON `pointer` replaced by `v`, or inserted when only the parent exists.
pub(crate) fn with(mut o: Value, pointer: &str, v: Value) -> Value {
    if let Some(slot) = o.pointer_mut(pointer) {
        *slot = v;
    } else {
        let (parent, k) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        if let Some(obj) = o.pointer_mut(parent).and_then(Value::as_object_mut) {
            obj.insert(k.replace("~1", "/").replace("~0", "~"), v);
        }
    }
    o
}

/// The errors as the strings clients see.
pub(crate) fn strings(errs: ErrorList) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// Asserts that `errs` is empty when `want` is, and otherwise that one error starts with `want`.
pub(crate) fn assert_case(name: &str, errs: &[String], want: &str) {
    if want.is_empty() {
        assert!(errs.is_empty(), "case {name:?}: want no errors, got {errs:#?}");
    } else {
        assert!(errs.iter().any(|e| e.starts_with(want)), "case {name:?}: want {want:?}, got {errs:#?}");
    }
}

/// Runs `(name, validate, object, wanted message prefix)` cases; see [`assert_case`].
pub(crate) fn check(cases: Vec<(&str, Validate, Value, &str)>) {
    for (name, f, obj, want) in cases {
        assert_case(name, &strings(f(&obj)), want);
    }
}
