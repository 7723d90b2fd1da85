//! Name syntax checks from apimachinery's `util/validation/validation.go`: DNS-1123 labels and
//! subdomains, DNS-1035 labels, qualified names (label and annotation keys), label values,
//! C identifiers, port names. Each returns the messages upstream returns (empty when valid).

use std::sync::LazyLock;

use regex::Regex;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const C_IDENTIFIER_FMT: &str = "[A-Za-z_][A-Za-z0-9_]*";
const C_IDENTIFIER_ERR: &str = "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'";
const CONFIG_MAP_KEY_FMT: &str = r"[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// Maximum length of a DNS-1123 / DNS-1035 label.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of a label value and of a qualified name's name part.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

fn anchored(fmt: &str) -> Regex {
    // The patterns are constants above; failing to compile one is a programming error.
    Regex::new(&format!("^(?:{fmt})$")).expect("constant regex compiles")
}

/// A syntax upstream checks with a regex: the pattern and what it says when a value breaks it.
struct Format {
    fmt: &'static str,
    msg: &'static str,
    regex: LazyLock<Regex>,
}

impl Format {
    fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    /// Upstream's `RegexError` for this format.
    fn error(&self, examples: &[&str]) -> String {
        regex_error(self.msg, self.fmt, examples)
    }

    /// The checks most formats make: a [`max_len_error`] when `value` is longer than `max_len`,
    /// then this format's error when it does not match.
    fn check(&self, value: &str, max_len: usize, examples: &[&str]) -> Vec<String> {
        let mut errs = Vec::new();
        if value.len() > max_len {
            errs.push(max_len_error(max_len));
        }
        if !self.is_match(value) {
            errs.push(self.error(examples));
        }
        errs
    }
}

static DNS1123_LABEL: Format =
    Format { fmt: DNS1123_LABEL_FMT, msg: DNS1123_LABEL_ERR, regex: LazyLock::new(|| anchored(DNS1123_LABEL_FMT)) };
static DNS1123_SUBDOMAIN: Format = Format {
    fmt: DNS1123_SUBDOMAIN_FMT,
    msg: DNS1123_SUBDOMAIN_ERR,
    regex: LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT)),
};
static DNS1035_LABEL: Format =
    Format { fmt: DNS1035_LABEL_FMT, msg: DNS1035_LABEL_ERR, regex: LazyLock::new(|| anchored(DNS1035_LABEL_FMT)) };
static QUALIFIED_NAME: Format =
    Format { fmt: QUALIFIED_NAME_FMT, msg: QUALIFIED_NAME_ERR, regex: LazyLock::new(|| anchored(QUALIFIED_NAME_FMT)) };
static LABEL_VALUE: Format =
    Format { fmt: LABEL_VALUE_FMT, msg: LABEL_VALUE_ERR, regex: LazyLock::new(|| anchored(LABEL_VALUE_FMT)) };
static C_IDENTIFIER: Format =
    Format { fmt: C_IDENTIFIER_FMT, msg: C_IDENTIFIER_ERR, regex: LazyLock::new(|| anchored(C_IDENTIFIER_FMT)) };
static CONFIG_MAP_KEY: Format =
    Format { fmt: CONFIG_MAP_KEY_FMT, msg: CONFIG_MAP_KEY_ERR, regex: LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT)) };

/// Upstream's `RegexError`: the message, examples, and the pattern (note the double space
/// between examples, as upstream prints it).
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// Upstream's `MaxLenError`.
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream's `EmptyError`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// A DNS-1123 label (`my-name`), as Namespace names must be.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    DNS1123_LABEL.check(value, DNS1123_LABEL_MAX_LENGTH, &["my-name", "123-abc"])
}

/// A DNS-1123 subdomain (`example.com`), as most object names must be.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    DNS1123_SUBDOMAIN.check(value, DNS1123_SUBDOMAIN_MAX_LENGTH, &["example.com"])
}

/// A DNS-1035 label (`my-name`, starting with a letter), as Service names must be.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    DNS1035_LABEL.check(value, DNS1123_LABEL_MAX_LENGTH, &["my-name", "abc-123"])
}

/// Upstream's `maskTrailingDash`: a `generateName` prefix may end in `-`.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') { format!("{}a", &name[..name.len() - 1]) } else { name.to_string() }
}

/// `NameIsDNSSubdomain`.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix { is_dns1123_subdomain(&mask_trailing_dash(name)) } else { is_dns1123_subdomain(name) }
}

/// `NameIsDNSLabel`.
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix { is_dns1123_label(&mask_trailing_dash(name)) } else { is_dns1123_label(name) }
}

/// `NameIsDNS1035Label`.
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix { is_dns1035_label(&mask_trailing_dash(name)) } else { is_dns1035_label(name) }
}

/// `path.IsValidPathSegmentName` (RBAC object names).
pub fn is_valid_path_segment_name(name: &str, _prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if name == "." || name == ".." {
        errs.push(format!("may not be '{name}'"));
        return errs;
    }
    for illegal in ["/", "%"] {
        if name.contains(illegal) {
            errs.push(format!("may not contain '{illegal}'"));
        }
    }
    errs
}

/// A qualified name (`example.com/MyName`): label keys, annotation keys, finalizers.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                QUALIFIED_NAME.error(&["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(format!("name part {}", max_len_error(LABEL_VALUE_MAX_LENGTH)));
    }
    if !QUALIFIED_NAME.is_match(name) {
        errs.push(format!("name part {}", QUALIFIED_NAME.error(&["MyName", "my.name", "123-abc"])));
    }
    errs
}

/// A label value: empty, or up to 63 alphanumerics with `-`, `_`, `.` inside.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    LABEL_VALUE.check(value, LABEL_VALUE_MAX_LENGTH, &["MyValue", "my_value", "12345"])
}

/// A C identifier (environment variable names in strict mode).
pub fn is_c_identifier(value: &str) -> Vec<String> {
    if C_IDENTIFIER.is_match(value) { Vec::new() } else { vec![C_IDENTIFIER.error(&["my_name", "MY_NAME", "MyName"])] }
}

/// A ConfigMap or Secret data key.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = CONFIG_MAP_KEY.check(value, DNS1123_SUBDOMAIN_MAX_LENGTH, &["key.name", "KEY_NAME", "key-name"]);
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// An IANA_SVC_NAME (named container and service ports): at most 15 characters, lowercase
/// alphanumerics and `-`, at least one letter, no `--`, not starting or ending with `-`.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// A port number in 1..65535.
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) { Vec::new() } else { vec![inclusive_range_error(1, 65535)] }
}

/// Upstream's `InclusiveRangeError`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_label_accepts_and_rejects_as_upstream() {
        assert!(is_dns1123_label("my-name").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        let errs = is_dns1123_label("My_Name");
        assert_eq!(
            errs,
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(is_dns1123_label(&"a".repeat(64))[0], "must be no more than 63 characters");
    }

    #[test]
    fn dns1123_subdomain_allows_dots_and_caps_length() {
        assert!(is_dns1123_subdomain("example.com").is_empty());
        assert!(!is_dns1123_subdomain("-example.com").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254)), vec!["must be no more than 253 characters"]);
    }

    #[test]
    fn dns1035_label_must_start_with_a_letter() {
        assert!(is_dns1035_label("web").is_empty());
        assert!(!is_dns1035_label("1web").is_empty());
    }

    #[test]
    fn generate_name_prefix_may_end_in_dash() {
        assert!(name_is_dns_subdomain("web-", true).is_empty());
        assert!(!name_is_dns_subdomain("web-", false).is_empty());
    }

    #[test]
    fn qualified_names_check_prefix_and_name_parts() {
        assert!(is_qualified_name("app").is_empty());
        assert!(is_qualified_name("example.com/My.Name").is_empty());
        assert_eq!(is_qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert!(is_qualified_name("Example.com/x")[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
        assert_eq!(is_qualified_name(&"a".repeat(64)), vec!["name part must be no more than 63 characters"]);
        assert!(is_qualified_name("-x")[0].starts_with("name part must consist"));
    }

    #[test]
    fn label_values_may_be_empty_but_not_malformed() {
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("my_value.1").is_empty());
        assert!(!is_valid_label_value("a b").is_empty());
        assert_eq!(is_valid_label_value(&"a".repeat(64)), vec!["must be no more than 63 characters"]);
    }

    #[test]
    fn path_segment_names_forbid_slash_percent_and_dots() {
        assert!(is_valid_path_segment_name("system:admin", false).is_empty());
        assert_eq!(is_valid_path_segment_name("..", false), vec!["may not be '..'"]);
        assert_eq!(is_valid_path_segment_name("a/b%", false), vec!["may not contain '/'", "may not contain '%'"]);
    }

    #[test]
    fn config_map_keys() {
        assert!(is_config_map_key("app.properties").is_empty());
        assert!(!is_config_map_key("a/b").is_empty());
        assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
    }

    #[test]
    fn port_names_follow_iana_svc_name() {
        assert!(is_valid_port_name("http").is_empty());
        assert!(!is_valid_port_name("80").is_empty());
        assert!(!is_valid_port_name("a--b").is_empty());
        assert!(!is_valid_port_name("sixteen-chars-xx").is_empty());
        assert!(!is_valid_port_name("HTTP").is_empty());
    }
}
