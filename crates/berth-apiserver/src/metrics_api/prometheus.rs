//! A parser for the part of the Prometheus text exposition format (version 0.0.4) that the
//! kubelet's `/metrics/resource` uses: `name{label="value",...} value [timestamp_ms]` lines,
//! `#` comments. Only samples of the wanted metric names are parsed; other lines are skipped, so
//! an unexpected family elsewhere in the page cannot fail a scrape.

use std::collections::BTreeMap;

/// One sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the epoch, when the line has one.
    pub timestamp_ms: Option<i64>,
}

/// A malformed sample line of a wanted metric.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// The samples of the metrics named in `wanted`, in page order.
pub fn parse(text: &str, wanted: &[&str]) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
        let name = &line[..name_end];
        if !wanted.contains(&name) {
            continue;
        }
        let err = |message: &str| ParseError { line: i + 1, message: message.to_string() };
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let (parsed, remaining) = parse_labels(after).map_err(|m| err(&m))?;
            labels = parsed;
            rest = remaining;
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| err("missing value"))?;
        let value = parse_value(value).ok_or_else(|| err(&format!("invalid value {value:?}")))?;
        let timestamp_ms = match fields.next() {
            Some(t) => Some(t.parse::<i64>().map_err(|_| err(&format!("invalid timestamp {t:?}")))?),
            None => None,
        };
        out.push(Sample { name: name.to_string(), labels, value, timestamp_ms });
    }
    Ok(out)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses `k="v",...}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start().strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                },
                Some((idx, '"')) => break idx,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.insert(key, value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-1"} 12.5 1700000000123
container_memory_working_set_bytes{container="app",namespace="default",pod="web-1"} 1.2e+07 1700000000123
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 4567.25 1700000000000
node_memory_working_set_bytes 2.5e+09
scrape_error 0
resource_scrape_error{weird="a\"b\\c"} 0
"#;

    #[test]
    fn parses_the_wanted_samples_with_labels_and_timestamps() {
        let s = parse(PAGE, &["container_cpu_usage_seconds_total", "node_memory_working_set_bytes"]).expect("parse");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["pod"], "web-1");
        assert_eq!(s[0].labels["namespace"], "default");
        assert_eq!(s[0].value, 12.5);
        assert_eq!(s[0].timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(s[1].value, 2.5e9);
        assert_eq!(s[1].timestamp_ms, None);
    }

    #[test]
    fn escaped_label_values_are_unescaped() {
        let s = parse(PAGE, &["resource_scrape_error"]).expect("parse");
        assert_eq!(s[0].labels["weird"], "a\"b\\c");
    }

    #[test]
    fn a_malformed_wanted_line_is_an_error_with_its_line_number() {
        let err = parse("x 1\nnode_cpu_usage_seconds_total abc\n", &["node_cpu_usage_seconds_total"]).expect_err("bad");
        assert_eq!(err.line, 2);
        let err = parse("node_cpu_usage_seconds_total{a=\"b} 1\n", &["node_cpu_usage_seconds_total"]).expect_err("bad");
        assert_eq!(err.line, 1);
    }
}
