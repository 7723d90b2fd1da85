//! The describe output machinery: kubectl's PrefixWriter over Go's tab-writer, field accessors,
//! and the sections every describer shares (labels, annotations, tolerations, selectors,
//! conditions, events).

use serde_json::Value;

use crate::printer::age::human_duration;
use crate::printer::tabwriter::align;
use crate::threeway::LAST_APPLIED;

/// kubectl's limit before annotations are printed on their own lines.
const MAX_ANNOTATION_LEN: usize = 140;

/// kubectl's PrefixWriter over a tab-writer that can be flushed mid-way.
#[derive(Default)]
pub struct Writer {
    pending: String,
    done: String,
}

impl Writer {
    pub fn w(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.push_str(text);
    }

    pub fn flush(&mut self) {
        self.done.push_str(&align(&self.pending, 0, 2));
        self.pending.clear();
    }

    pub fn finish(mut self) -> String {
        self.flush();
        self.done
    }

    /// The text as written, tabs kept (kubectl's PrefixWriter without a tab-writer, as
    /// `rollout history --revision` prints a pod template).
    pub fn into_raw(self) -> String {
        self.done + &self.pending
    }
}

pub(super) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

pub(super) fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// RFC 1123 with numeric zone, in local time, as kubectl prints timestamps.
pub fn rfc1123z(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => t.to_zoned(jiff::tz::TimeZone::system()).strftime("%a, %d %b %Y %H:%M:%S %z").to_string(),
        Err(_) => ts.to_string(),
    }
}

pub(super) fn since(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".to_string(),
    }
}

/// `Labels:` with one `key=value` per line (sorted), `<none>` when empty.
pub fn labels_multiline(w: &mut Writer, title: &str, labels: Option<&Value>) {
    w.w(0, &format!("{title}:\t"));
    let map = labels.and_then(Value::as_object).filter(|m| !m.is_empty());
    let Some(map) = map else {
        w.w(0, "<none>\n");
        return;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for (n, k) in keys.iter().enumerate() {
        if n > 0 {
            w.w(0, "\t");
        }
        w.w(0, &format!("{k}={}\n", map[*k].as_str().unwrap_or_default()));
    }
}

/// `Annotations:` as kubectl prints them (last-applied skipped, long values on their own lines).
pub fn annotations_multiline(w: &mut Writer, title: &str, annotations: Option<&Value>) {
    w.w(0, &format!("{title}:\t"));
    let empty = serde_json::Map::new();
    let map = annotations.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = map.keys().filter(|k| k.as_str() != LAST_APPLIED).collect();
    if keys.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    keys.sort();
    for (n, k) in keys.iter().enumerate() {
        if n > 0 {
            w.w(0, "\t");
        }
        let value = map[*k].as_str().unwrap_or_default();
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.w(0, &format!("{k}:\n"));
            for line in value.split('\n') {
                w.w(0, &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)));
            }
        } else {
            w.w(0, &format!("{k}: {value}\n"));
        }
    }
}

pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let cut = (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s.to_string()
    }
}

pub(super) fn tolerations_multiline(w: &mut Writer, title: &str, tolerations: &[Value]) {
    w.w(0, &format!("{title}:\t"));
    if tolerations.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    let mut tolerations: Vec<&Value> = tolerations.iter().collect();
    tolerations.sort_by_key(|t| s(t, "/key").to_string());
    for (n, t) in tolerations.iter().enumerate() {
        if n > 0 {
            w.w(0, "\t");
        }
        let (key, value, effect) = (s(t, "/key"), s(t, "/value"), s(t, "/effect"));
        let mut line = key.to_string();
        if !value.is_empty() {
            line.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            line.push_str(&format!(":{effect}"));
        }
        if s(t, "/operator") == "Exists" && value.is_empty() {
            line.push_str(if key.is_empty() && effect.is_empty() { "op=Exists" } else { " op=Exists" });
        }
        if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
            line.push_str(&format!(" for {secs}s"));
        }
        w.w(0, &format!("{line}\n"));
    }
}

/// metav1.FormatLabelSelector.
pub fn format_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|v| v.is_object()) else { return "<none>".to_string() };
    let mut parts = Vec::new();
    if let Some(Value::Object(m)) = sel.get("matchLabels") {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        parts.extend(keys.iter().map(|k| format!("{k}={}", m[*k].as_str().unwrap_or_default())));
    }
    for e in arr(sel, "/matchExpressions") {
        let values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        let (key, op) = (s(e, "/key"), s(e, "/operator"));
        parts.push(match op {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        });
    }
    if parts.is_empty() { "<none>".to_string() } else { parts.join(",") }
}

pub(super) fn controller_of(obj: &Value) -> Option<String> {
    arr(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| format!("{}/{}", s(r, "/kind"), s(r, "/name")))
}

pub(super) fn describe_conditions(w: &mut Writer, conditions: &[Value], with_reason: bool) {
    if conditions.is_empty() {
        return;
    }
    if with_reason {
        w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.w(1, "----\t------\t------\n");
        for c in conditions {
            w.w(1, &format!("{} \t{}\t{}\n", s(c, "/type"), s(c, "/status"), s(c, "/reason")));
        }
    } else {
        w.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w.w(1, &format!("{} \t{} \n", s(c, "/type"), s(c, "/status")));
        }
    }
}

/// The Events section (kubectl's DescribeEvents), events sorted by last timestamp.
pub fn describe_events(w: &mut Writer, events: &[Value]) {
    if events.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    let mut events: Vec<&Value> = events.iter().collect();
    let last = |e: &Value| {
        let t = s(e, "/lastTimestamp");
        if t.is_empty() { s(e, "/eventTime").to_string() } else { t.to_string() }
    };
    events.sort_by_key(|e| {
        let t = last(e);
        t.parse::<jiff::Timestamp>().map(|t| t.as_nanosecond()).unwrap_or(0)
    });
    w.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.w(1, "----\t------\t----\t----\t-------\n");
    for e in events {
        let first =
            if !s(e, "/eventTime").is_empty() { since(s(e, "/eventTime")) } else { since(s(e, "/firstTimestamp")) };
        let count = i(e, "/count");
        let interval = if e.get("series").is_some_and(|v| v.is_object()) {
            format!("{} (x{} over {first})", since(s(e, "/series/lastObservedTime")), i(e, "/series/count"))
        } else if count > 1 {
            format!("{} (x{count} over {first})", since(s(e, "/lastTimestamp")))
        } else {
            first
        };
        let mut source = s(e, "/source/component").to_string();
        if source.is_empty() {
            source = s(e, "/reportingComponent").to_string();
        }
        // kubectl 1.33 prints the message alone (newer kubectl prefixes involvedObject.fieldPath).
        let message = s(e, "/message").trim();
        w.w(1, &format!("{}\t{}\t{interval}\t{source}\t{message}\n", s(e, "/type"), s(e, "/reason")));
    }
}
