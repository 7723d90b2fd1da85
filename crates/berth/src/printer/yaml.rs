//! A YAML emitter for JSON values in the style kubectl prints (sigs.k8s.io/yaml on go-yaml):
//! two-space indent, list items at their key's indent, strings quoted only when YAML would read
//! them as something else, multi-line strings as literal blocks.

use serde_json::Value;

/// Renders a JSON value as a YAML document (keys in the order given).
pub fn emit(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other, 0, 0));
            out.push('\n');
        }
    }
    out
}

/// go-yaml's preferred line width: long scalars are folded at spaces past this column.
const BEST_WIDTH: usize = 80;

/// The column the next character on the last line of `out` will be written at.
fn column(out: &str) -> usize {
    out.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0)
}

/// go-yaml's line folding inside flow scalars: a single space past BEST_WIDTH becomes a line
/// break plus `indent` spaces. `edge_ok` forbids breaking at the first and last character
/// (quoted styles); `escape_next_space` writes `\` before a following space (double quotes).
fn fold(text: &str, start_col: usize, indent: usize, quoted: bool, double: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut col = start_col;
    let mut prev_space = false;
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            let edge = quoted && (i == 0 || i + 1 == chars.len());
            let may_break = !prev_space && col > BEST_WIDTH && !edge && (double || !next_space);
            if may_break {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
                col = indent;
                if double && next_space {
                    out.push('\\');
                    col += 1;
                }
            } else {
                out.push(' ');
                col += 1;
            }
            prev_space = true;
        } else {
            out.push(*c);
            col += 1;
            prev_space = false;
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, ind: usize) {
    for (i, (k, v)) in map.iter().enumerate() {
        // The first key of a map inside a list item follows "- " on the same line.
        if i > 0 || !out.ends_with("- ") {
            indent(out, ind);
        }
        // Keys are simple keys: never folded.
        out.push_str(&string(k, ind, None));
        out.push(':');
        write_value_after_key(out, v, ind);
    }
}

fn write_value_after_key(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, ind + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, ind);
        }
        other => {
            out.push(' ');
            let col = column(out);
            out.push_str(&scalar(other, ind + 2, col));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], ind: usize) {
    for item in items {
        indent(out, ind);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, ind + 2),
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, ind + 2);
            }
            other => {
                let col = column(out);
                out.push_str(&scalar(other, ind + 2, col));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value, ind: usize, col: usize) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, ind, Some(col)),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// A string scalar: plain, double-quoted (would resolve to another type), single-quoted (plain
/// not allowed), or a literal block (contains a newline). `col` is where it starts, for folding
/// (None: a key, never folded).
fn string(s: &str, ind: usize, col: Option<usize>) -> String {
    if s.contains('\n') && !s.chars().any(|c| c.is_control() && c != '\n') && !s.starts_with(' ') {
        let chomp = if s.ends_with("\n\n") {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let mut out = format!("|{chomp}");
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(&mut out, ind);
                out.push_str(line);
            }
        }
        return out;
    }
    if s.chars().any(|c| c.is_control()) || resolves_to_non_string(s) {
        let inner = escape_double(s);
        return match col {
            Some(col) => format!("\"{}\"", fold(&inner, col + 1, ind, true, true)),
            None => format!("\"{inner}\""),
        };
    }
    if needs_quotes(s) {
        let inner = s.replace('\'', "''");
        return match col {
            Some(col) => format!("'{}'", fold(&inner, col + 1, ind, true, false)),
            None => format!("'{inner}'"),
        };
    }
    match col {
        Some(col) => fold(s, col, ind, false, false),
        None => s.to_string(),
    }
}

/// go-yaml's double-quoted escapes.
fn escape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Whether the whole string is a YAML timestamp (`2006-1-2`, `2006-1-2T15:4:5Z`, with optional
/// fraction and offset, `t` or space as separator), which go-yaml would not read as a string.
fn is_timestamp(s: &str) -> bool {
    fn digits(s: &str, min: usize, max: usize) -> Option<&str> {
        let n = s.chars().take_while(char::is_ascii_digit).count();
        (n >= min && n <= max).then(|| &s[n..])
    }
    let Some(rest) = digits(s, 4, 4).and_then(|r| r.strip_prefix('-')) else { return false };
    let Some(rest) = digits(rest, 1, 2).and_then(|r| r.strip_prefix('-')) else { return false };
    let Some(rest) = digits(rest, 1, 2) else { return false };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']) else { return false };
    let Some(rest) = digits(rest, 1, 2).and_then(|r| r.strip_prefix(':')) else { return false };
    let Some(rest) = digits(rest, 1, 2).and_then(|r| r.strip_prefix(':')) else { return false };
    let Some(mut rest) = digits(rest, 1, 2) else { return false };
    if let Some(frac) = rest.strip_prefix('.') {
        let Some(r) = digits(frac, 1, 9) else { return false };
        rest = r;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.is_empty() || rest == "Z" {
        return true;
    }
    let Some(offset) = rest.strip_prefix(['+', '-']) else { return false };
    match digits(offset, 1, 2) {
        Some("") => true,
        Some(r) => r.strip_prefix(':').and_then(|r| digits(r, 2, 2)) == Some(""),
        None => false,
    }
}

/// YAML 1.1 values go-yaml would not read back as a string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True",
        "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", "-.inf",
        "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let numeric = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_' || c == 'e' || c == 'E' || c == '-' || c == '+')
        && t.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.')
        && (t.parse::<f64>().is_ok() || t.replace('_', "").parse::<f64>().is_ok());
    let hex_or_octal = t.starts_with("0x") && t.len() > 2 && t[2..].chars().all(|c| c.is_ascii_hexdigit())
        || t.starts_with("0o") && t.len() > 2 && t[2..].chars().all(|c| c.is_digit(8))
        || t.starts_with("0b") && t.len() > 2 && t[2..].chars().all(|c| c == '0' || c == '1');
    let timestamp = is_timestamp(s);
    numeric || hex_or_octal || timestamp
}

/// Strings a plain scalar cannot hold.
fn needs_quotes(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // "-x", "?x" and ":x" are fine plain when not followed by a space.
        let second = s.chars().nth(1);
        let indicator_ok = matches!(first, '-' | '?' | ':') && second.is_some_and(|c| c != ' ');
        if !indicator_ok {
            return true;
        }
    }
    s.starts_with(' ')
        || s.ends_with(' ')
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains(['\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_layout_for_a_deployment() {
        let v = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"annotations": {"a": "{\"x\":1}\n"}, "name": "web", "resourceVersion": "12", "labels": {}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "nginx", "name": "web", "ports": [{"containerPort": 80}], "args": ["-c", "*"]}]}}}
        });
        let want = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  annotations:\n    a: |\n      {\"x\":1}\n  name: web\n  resourceVersion: \"12\"\n  labels: {}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - image: nginx\n        name: web\n        ports:\n        - containerPort: 80\n        args:\n        - -c\n        - '*'\n";
        assert_eq!(emit(&v), want);
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        let at = Some(0);
        assert_eq!(string("true", 0, at), "\"true\"");
        assert_eq!(string("", 0, at), "\"\"");
        assert_eq!(string("2024-01-02T03:04:05Z", 0, at), "\"2024-01-02T03:04:05Z\"");
        assert_eq!(string("1.5", 0, at), "\"1.5\"");
        assert_eq!(string("a: b", 0, at), "'a: b'");
        assert_eq!(string("nginx:1.25", 0, at), "nginx:1.25");
        assert_eq!(string("10.43.0.1", 0, at), "10.43.0.1");
    }

    #[test]
    fn only_whole_timestamps_are_quoted_and_controls_escaped() {
        assert!(is_timestamp("2024-01-02"));
        assert!(is_timestamp("2024-1-2T03:04:05.123Z"));
        assert!(is_timestamp("2024-01-02 03:04:05 +02:00"));
        assert!(!is_timestamp("2024-01-02 y"));
        assert!(!is_timestamp("2024-01-02T"));
        assert_eq!(string("bell\u{7}!", 0, Some(0)), "\"bell\\a!\"");
    }

    #[test]
    fn long_plain_strings_fold_past_column_80_as_go_yaml_does() {
        // kubectl get cm -o yaml output for a 22-word value.
        let words = vec!["word"; 22].join(" ");
        let got = emit(&json!({"data": {"long": words}}));
        let want = "data:\n  long: word word word word word word word word word word word word word word word\n    word word word word word word word\n";
        assert_eq!(got, want);
    }
}
