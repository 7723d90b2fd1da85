//! Tests of label and field selector parsing, matching and messages against upstream behaviour.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn labels(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn label_selector_parses_every_operator_and_prints_canonically() {
    let cases = [
        ("", ""),
        ("x", "x"),
        ("!x", "!x"),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x>1", "x>1"),
        ("x<1", "x<1"),
        ("x in (b,a)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        ("  x  in  ( a , b ) , y ", "x in (a,b),y"),
        ("z=1,a=2", "a=2,z=1"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("x=", "x="),
        ("x in (in)", "x in (in)"),
        ("example.com/app=web", "example.com/app=web"),
        ("x\t=\ta", "x=a"),
    ];
    for (input, want) in cases {
        let s = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(s.to_string(), want, "{input:?}");
    }
}

#[test]
fn label_selector_errors_use_upstream_wording() {
    let cases = [
        ("x=a,", "found '', expected: identifier after ','"),
        (",x", "found ',', expected: !, identifier, or 'end of string'"),
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x (a)", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        ("a b=c", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("x=a b c", "found 'b', expected: ',' or 'end of string'"),
    ];
    for (input, want) in cases {
        let err = LabelSelector::parse(input).expect_err(input);
        assert_eq!(err.0, want, "{input:?}");
    }
    let err = LabelSelector::parse("a/b/c=d").expect_err("three parts");
    assert!(
        err.0.starts_with("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters"),
        "{}",
        err.0
    );
    let err = LabelSelector::parse("app=-bad").expect_err("bad value");
    assert_eq!(
        err.0,
        "unable to parse requirement: values[0][app]: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    let err = LabelSelector::parse("Example.com/x").expect_err("bad prefix");
    assert!(err.0.contains("prefix part a lowercase RFC 1123 subdomain"), "{}", err.0);
}

#[test]
fn label_selector_matches_as_upstream() {
    let l = labels(json!({ "app": "web", "tier": "front", "n": "5" }));
    let yes = [
        "",
        "app",
        "app=web",
        "app==web",
        "tier!=db",
        "missing!=x",
        "app in (web,db)",
        "app notin (db)",
        "missing notin (a)",
        "!missing",
        "n>4",
        "n<6",
        "app,tier=front",
    ];
    let no = [
        "missing",
        "app=db",
        "app!=web",
        "app in (db)",
        "app notin (web)",
        "missing in (a)",
        "!app",
        "n>5",
        "n<5",
        "app>1",
        "missing>1",
    ];
    for s in yes {
        assert!(LabelSelector::parse(s).expect(s).matches(&l), "{s} should match");
    }
    for s in no {
        assert!(!LabelSelector::parse(s).expect(s).matches(&l), "{s} should not match");
    }
}

#[test]
fn label_selector_from_metav1_json() {
    let l = labels(json!({ "app": "web", "env": "prod" }));
    let s = LabelSelector::from_label_selector_json(&json!({
        "matchLabels": { "app": "web" },
        "matchExpressions": [
            { "key": "env", "operator": "In", "values": ["prod", "staging"] },
            { "key": "legacy", "operator": "DoesNotExist" },
        ],
    }))
    .expect("valid");
    assert!(s.matches(&l));
    assert_eq!(s.to_string(), "app=web,env in (prod,staging),!legacy");
    assert!(
        !LabelSelector::from_label_selector_json(&json!({ "matchLabels": { "app": "db" } })).expect("ok").matches(&l)
    );
    assert!(LabelSelector::from_label_selector_json(&json!({})).expect("ok").matches(&l));
    assert!(!LabelSelector::from_label_selector_json(&Value::Null).expect("ok").matches(&l));
    let err =
        LabelSelector::from_label_selector_json(&json!({ "matchExpressions": [{ "key": "a", "operator": "Foo" }] }))
            .expect_err("bad op");
    assert_eq!(err.0, "\"Foo\" is not a valid label selector operator");
    let err = LabelSelector::from_label_selector_json(
        &json!({ "matchExpressions": [{ "key": "a", "operator": "In", "values": [] }] }),
    )
    .expect_err("empty in");
    assert_eq!(err.0, "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty");
    let err = LabelSelector::from_label_selector_json(
        &json!({ "matchExpressions": [{ "key": "a", "operator": "Exists", "values": ["x"] }] }),
    )
    .expect_err("exists with values");
    assert_eq!(err.0, "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist");
}

#[test]
fn field_selector_parses_escapes_and_operators() {
    let s = FieldSelector::parse("metadata.name=a\\,b,status.phase!=Running,spec.nodeName==n1").expect("valid");
    assert_eq!(s.fields(), ["metadata.name", "spec.nodeName", "status.phase"]);
    assert_eq!(s.requires_exact_match("metadata.name"), Some("a,b"));
    assert_eq!(s.to_string(), "metadata.name=a\\,b,spec.nodeName==n1,status.phase!=Running");
    assert!(FieldSelector::parse("").expect("empty").is_empty());
    assert!(FieldSelector::parse(",,").expect("empty terms").is_empty());
    assert_eq!(FieldSelector::parse("foo").expect_err("no op").0, "invalid selector: 'foo'; can't understand 'foo'");
    assert_eq!(
        FieldSelector::parse("a=b=c").expect_err("unescaped").0,
        "invalid field selector: unescaped character in value: 61"
    );
    assert_eq!(
        FieldSelector::parse("a=b\\q").expect_err("bad escape").0,
        "invalid field selector: invalid escape sequence: \\q"
    );
    assert_eq!(
        FieldSelector::parse("a=b\\").expect_err("trailing").0,
        "invalid field selector: invalid escape sequence: \\"
    );
}

#[test]
fn field_selector_matches_dotted_paths_and_computed_fields() {
    let pod = json!({ "kind": "Pod", "metadata": { "name": "p", "namespace": "default" },
        "spec": { "nodeName": "n1" }, "status": { "phase": "Running" } });
    let m = |s: &str, obj: &Value| FieldSelector::parse(s).expect(s).matches(obj);
    assert!(m("metadata.name=p,metadata.namespace=default", &pod));
    assert!(m("spec.nodeName=n1,status.phase!=Pending", &pod));
    assert!(!m("status.phase!=Running", &pod));
    assert!(m("spec.hostNetwork=false", &pod));
    assert!(m("status.podIP=", &pod), "absent fields read as empty");
    let node = json!({ "metadata": { "name": "n" }, "spec": { "unschedulable": true } });
    assert!(m("spec.unschedulable=true", &node));
    assert!(m("spec.unschedulable=false", &json!({ "metadata": { "name": "n" } })));
    let event = json!({ "metadata": { "name": "e" }, "involvedObject": { "kind": "Pod", "name": "p", "uid": "u1" },
        "source": { "component": "kubelet" }, "type": "Warning", "reason": "BackOff" });
    assert!(m(
        "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.uid=u1,source=kubelet,type=Warning",
        &event
    ));
    let new_event = json!({ "metadata": { "name": "e" }, "regarding": { "kind": "Pod", "name": "p" },
        "reportingController": "berth/kubelet", "deprecatedSource": { "component": "kubelet" } });
    assert!(m("involvedObject.name=p,reportingComponent=berth/kubelet,source=kubelet", &new_event));
    assert!(m("regarding.name=p,reportingController=berth/kubelet", &new_event));
    assert!(m(
        "regarding.kind=Pod,reportingController=kubelet",
        &json!({ "involvedObject": { "kind": "Pod" }, "reportingComponent": "kubelet" })
    ));
    let pod_ips = json!({ "status": { "podIPs": [{ "ip": "10.0.0.9" }] } });
    assert!(m("status.podIP=10.0.0.9", &pod_ips));
    let rs = json!({ "status": { "replicas": 3 } });
    assert!(m("status.replicas=3", &rs));
}

#[test]
fn field_selector_rejects_unsupported_fields_with_upstream_messages() {
    let s = FieldSelector::parse("foo=bar").expect("valid");
    assert_eq!(
        s.check_supported("apps", "Deployment").expect_err("generic").0,
        "\"foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    assert_eq!(s.check_supported("", "Pod").expect_err("pod").0, "field label not supported: foo");
    assert!(FieldSelector::parse("spec.nodeName=x").expect("ok").check_supported("", "Pod").is_ok());
    assert!(FieldSelector::parse("involvedObject.uid=x").expect("ok").check_supported("", "Event").is_ok());
    assert!(FieldSelector::parse("regarding.uid=x").expect("ok").check_supported("events.k8s.io", "Event").is_ok());
    assert!(
        FieldSelector::parse("involvedObject.uid=x").expect("ok").check_supported("events.k8s.io", "Event").is_err()
    );
    assert!(FieldSelector::parse("metadata.name=x").expect("ok").check_supported("apps", "Deployment").is_ok());
    assert!(supported_fields("", "Node").contains(&"spec.unschedulable"));
}

fn key_strategy() -> impl Strategy<Value = String> {
    let name = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?";
    let prefix = "[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\\.[a-z0-9]{1,5})?";
    (proptest::option::of(prefix), name).prop_map(|(p, n)| match p {
        Some(p) => format!("{p}/{n}"),
        None => n,
    })
}

fn value_strategy() -> impl Strategy<Value = String> {
    "([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?"
}

fn requirement_strategy() -> impl Strategy<Value = String> {
    (key_strategy(), 0..7usize, proptest::collection::vec(value_strategy(), 1..4)).prop_map(|(k, op, vals)| match op {
        0 => k,
        1 => format!("!{k}"),
        2 => format!("{k}={}", vals[0]),
        3 => format!("{k}=={}", vals[0]),
        4 => format!("{k}!={}", vals[0]),
        5 => format!("{k} in ({})", vals.join(",")),
        _ => format!("{k} notin ({})", vals.join(",")),
    })
}

proptest! {
    #[test]
    fn label_parse_never_panics(s in ".{0,64}") {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn label_parse_never_panics_on_selector_alphabet(s in "[a-z=!(), \\-/.\\x00]{0,32}") {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn field_parse_never_panics(s in ".{0,64}") {
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn valid_label_selectors_round_trip(reqs in proptest::collection::vec(requirement_strategy(), 0..5)) {
        let input = reqs.join(",");
        let parsed = LabelSelector::parse(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        let printed = parsed.to_string();
        let reparsed = LabelSelector::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
        prop_assert_eq!(&reparsed, &parsed);
        prop_assert_eq!(reparsed.to_string(), printed);
    }

    #[test]
    fn field_selectors_round_trip(terms in proptest::collection::vec(("[a-z]{1,5}(\\.[a-zA-Z]{1,5})?", 0..3usize, ".{0,8}"), 0..4)) {
        let sel = FieldSelector {
            requirements: {
                let mut r: Vec<FieldRequirement> = terms.iter().map(|(f, op, v)| FieldRequirement {
                    field: f.clone(),
                    operator: [FieldOperator::Equals, FieldOperator::DoubleEquals, FieldOperator::NotEquals][*op],
                    value: v.clone(),
                }).collect();
                r.sort_by_key(|r| r.to_string_for_sort());
                r
            },
        };
        let printed = sel.to_string();
        let parsed = FieldSelector::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
        prop_assert_eq!(parsed.to_string(), printed);
    }
}

impl FieldRequirement {
    fn to_string_for_sort(&self) -> String {
        FieldSelector { requirements: vec![self.clone()] }.to_string()
    }
}
