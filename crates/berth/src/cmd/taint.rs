//! `berth taint`: adds (`k=v:Effect`, `k:Effect`), overwrites (`--overwrite`) and removes
//! (`k:Effect-`, `k-`) node taints with kubectl's parsing, checks and wording (`node/n tainted`,
//! `untainted`, `modified`), sending the new taint list as a strategic-merge PATCH.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::label::{STRATEGIC_MERGE_PATCH, Target, TargetArgs, for_each_target, select};

/// `berth taint`.
#[derive(Debug, Args)]
#[command(
    mut_arg("args", |a| a.help("nodes NAME... or node/NAME..., then KEY[=VAL]:EFFECT... and KEY[:EFFECT]-...")),
    mut_arg("overwrite", |a| a.help("Allow taints to be overwritten")),
    mut_arg("all", |a| a.help("Select all nodes in the cluster"))
)]
pub struct TaintArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

/// One taint (an empty effect only in removals).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

impl Taint {
    fn from_value(v: &Value) -> Taint {
        let s = |f: &str| v.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
        Taint { key: s("key"), value: s("value"), effect: s("effect") }
    }

    /// kubectl's `Taint.ToString`: `key=value:effect`, parts left out when empty.
    pub fn to_spec(&self) -> String {
        let mut out = self.key.clone();
        if !self.value.is_empty() {
            out.push('=');
            out.push_str(&self.value);
        }
        if !self.effect.is_empty() {
            out.push(':');
            out.push_str(&self.effect);
        }
        out
    }

    fn matches(&self, other: &Taint) -> bool {
        self.key == other.key && self.effect == other.effect
    }
}

/// The taint changes of one command.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TaintChanges {
    pub add: Vec<Taint>,
    pub remove: Vec<Taint>,
}

/// kubectl's split of `taint` arguments: anything with `=`, `:` or a trailing `-` is a taint.
pub fn split_args(args: &[String]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut resources = Vec::new();
    let mut taints = Vec::new();
    for s in args {
        let is_taint = s.contains('=') || s.contains(':') || s.ends_with('-');
        match (taints.is_empty(), is_taint) {
            (_, true) => taints.push(s.clone()),
            (true, false) => resources.push(s.clone()),
            (false, false) => anyhow::bail!("all resources must be specified before taint changes: {s}"),
        }
    }
    Ok((resources, taints))
}

fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

fn parse_taint(spec: &str) -> anyhow::Result<Taint> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (key, value, effect) = match parts.as_slice() {
        [key] => (key.to_string(), String::new(), String::new()),
        [kv, effect] => {
            if !matches!(*effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                anyhow::bail!("invalid taint effect: {effect}, unsupported taint effect");
            }
            let kv: Vec<&str> = kv.split('=').collect();
            match kv.as_slice() {
                [k] => (k.to_string(), String::new(), effect.to_string()),
                [k, v] => {
                    if !super::label::is_valid_label_value(v) {
                        anyhow::bail!(
                            "invalid taint spec: {spec}, a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                        );
                    }
                    (k.to_string(), v.to_string(), effect.to_string())
                }
                _ => anyhow::bail!("invalid taint spec: {spec}"),
            }
        }
        _ => anyhow::bail!("invalid taint spec: {spec}"),
    };
    if !is_qualified_name(&key) {
        anyhow::bail!(
            "invalid taint spec: {spec}, name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
    }
    Ok(Taint { key, value, effect })
}

/// kubectl's `ParseTaints` plus its modify-and-remove check.
pub fn parse_taints(specs: &[String]) -> anyhow::Result<TaintChanges> {
    let mut changes = TaintChanges::default();
    for spec in specs {
        if let Some(rest) = spec.strip_suffix('-') {
            let t = parse_taint(rest)?;
            changes.remove.push(Taint { value: String::new(), ..t });
        } else {
            let t = parse_taint(spec)?;
            if t.effect.is_empty() {
                anyhow::bail!("invalid taint spec: {spec}");
            }
            if changes.add.iter().any(|a| a.matches(&t)) {
                anyhow::bail!("duplicated taints with the same key and effect: {}", t.to_spec());
            }
            changes.add.push(t);
        }
    }
    let both: Vec<String> = changes
        .remove
        .iter()
        .filter(|r| changes.add.iter().any(|a| a.key == r.key && (r.effect.is_empty() || a.effect == r.effect)))
        .map(Taint::to_spec)
        .collect();
    if !both.is_empty() {
        anyhow::bail!("can not both modify and remove the following taint(s) in the same command: {}", both.join(", "));
    }
    if changes.add.is_empty() && changes.remove.is_empty() {
        anyhow::bail!("at least one taint update is required");
    }
    Ok(changes)
}

/// kubectl's `reorganizeTaints`: the new taint list and the operation word, or the error for
/// taints that were asked to be removed but are not there.
pub fn reorganize(
    node: &str,
    old: &[Taint],
    changes: &TaintChanges,
    overwrite: bool,
) -> anyhow::Result<(&'static str, Vec<Taint>)> {
    if !overwrite {
        let clashes: Vec<String> = changes
            .add
            .iter()
            .filter(|t| old.iter().any(|o| o.matches(t)))
            .map(|t| format!("node {node} already has {} taint(s) with same effect(s) and --overwrite is false", t.key))
            .collect();
        if !clashes.is_empty() {
            anyhow::bail!("{}", clashes.join("\n"));
        }
    }
    let mut new: Vec<Taint> = changes.add.clone();
    for o in old {
        if !new.iter().any(|t| t.matches(o)) {
            new.push(o.clone());
        }
    }
    let added = old.len() != new.len();
    let mut deleted = false;
    let mut missing = Vec::new();
    for r in &changes.remove {
        let before = new.len();
        new.retain(|t| !(t.key == r.key && (r.effect.is_empty() || t.effect == r.effect)));
        if new.len() == before {
            missing.push(format!("taint {:?} not found", r.to_spec()));
        } else {
            deleted = true;
        }
    }
    if !missing.is_empty() {
        anyhow::bail!("{}", missing.join("\n"));
    }
    let op = if (added && deleted) || overwrite {
        "modified"
    } else if added {
        "tainted"
    } else {
        "untainted"
    };
    Ok((op, new))
}

fn taint_json(t: &Taint, old: &[Value]) -> Value {
    // Keep timeAdded of a taint that stays as it was.
    if let Some(same) = old.iter().find(|o| Taint::from_value(o) == *t) {
        return same.clone();
    }
    let mut v = json!({"key": t.key, "effect": t.effect});
    if !t.value.is_empty() {
        v["value"] = json!(t.value);
    }
    if t.effect == "NoExecute" {
        v["timeAdded"] = json!(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    v
}

pub async fn run(ctx: &Ctx, args: TaintArgs) -> anyhow::Result<ExitCode> {
    let (resources, specs) = split_args(&args.target.args)?;
    let changes = parse_taints(&specs)?;
    if resources.is_empty() {
        anyhow::bail!("one or more resources must be specified as <resource> <name>");
    }
    let targets = select(ctx, &resources, args.target.selector.as_deref(), args.target.all).await?;
    if let Some(t) = targets.iter().find(|t| t.res.plural != "nodes" || !t.res.group.is_empty()) {
        anyhow::bail!("invalid resource type {}, only [\"node\" \"nodes\"] are supported", t.res.plural);
    }
    Ok(for_each_target(&targets, |t| taint_one(ctx, t, &changes, args.target.overwrite)).await)
}

async fn taint_one(ctx: &Ctx, t: &Target, changes: &TaintChanges, overwrite: bool) -> anyhow::Result<()> {
    let node = ctx.api.get_json(&t.path()).await?;
    let old_json: Vec<Value> = node.pointer("/spec/taints").and_then(Value::as_array).cloned().unwrap_or_default();
    let old: Vec<Taint> = old_json.iter().map(Taint::from_value).collect();
    let (op, new) = reorganize(&t.name, &old, changes, overwrite)?;
    let taints: Vec<Value> = new.iter().map(|n| taint_json(n, &old_json)).collect();
    let value = if taints.is_empty() { Value::Null } else { Value::Array(taints) };
    ctx.api.patch(&t.path(), STRATEGIC_MERGE_PATCH, &json!({"spec": {"taints": value}})).await?;
    println!("{} {op}", t.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::label::strings as s;
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint { key: key.into(), value: value.into(), effect: effect.into() }
    }

    #[test]
    fn taint_specs_parse_as_kubectl() {
        let c = parse_taints(&s(&["dedicated=gpu:NoSchedule", "spot:PreferNoSchedule", "old:NoExecute-", "gone-"]))
            .unwrap();
        assert_eq!(c.add, vec![taint("dedicated", "gpu", "NoSchedule"), taint("spot", "", "PreferNoSchedule")]);
        assert_eq!(c.remove, vec![taint("old", "", "NoExecute"), taint("gone", "", "")]);
        assert_eq!(
            parse_taints(&s(&["k=v:Sometimes"])).unwrap_err().to_string(),
            "invalid taint effect: Sometimes, unsupported taint effect"
        );
        assert_eq!(
            parse_taints(&s(&["k=v"])).unwrap_err().to_string().split(',').next(),
            Some("invalid taint spec: k=v")
        );
        assert!(
            parse_taints(&s(&["a:NoSchedule", "a:NoSchedule-"])).unwrap_err().to_string().starts_with("can not both")
        );
        assert!(
            parse_taints(&s(&["a:NoSchedule", "a=b:NoSchedule"])).unwrap_err().to_string().starts_with("duplicated")
        );
    }

    #[test]
    fn arguments_split_at_the_first_taint() {
        let (r, t) = split_args(&s(&["nodes", "n1", "a=b:NoSchedule", "c-"])).unwrap();
        assert_eq!((r, t), (s(&["nodes", "n1"]), s(&["a=b:NoSchedule", "c-"])));
        assert!(split_args(&s(&["nodes", "a:NoSchedule", "n1"])).is_err());
    }

    #[test]
    fn reorganize_names_the_operation() {
        let old = vec![taint("a", "1", "NoSchedule")];
        let add = parse_taints(&s(&["b=2:NoExecute"])).unwrap();
        let (op, new) = reorganize("n", &old, &add, false).unwrap();
        assert_eq!((op, new.len()), ("tainted", 2));
        let rm = parse_taints(&s(&["a-"])).unwrap();
        let (op, new) = reorganize("n", &old, &rm, false).unwrap();
        assert_eq!((op, new.len()), ("untainted", 0));
        let same = parse_taints(&s(&["a=9:NoSchedule"])).unwrap();
        assert_eq!(
            reorganize("n", &old, &same, false).unwrap_err().to_string(),
            "node n already has a taint(s) with same effect(s) and --overwrite is false"
        );
        let (op, new) = reorganize("n", &old, &same, true).unwrap();
        assert_eq!((op, new), ("modified", vec![taint("a", "9", "NoSchedule")]));
        let missing = parse_taints(&s(&["zz:NoSchedule-"])).unwrap();
        assert_eq!(
            reorganize("n", &old, &missing, false).unwrap_err().to_string(),
            "taint \"zz:NoSchedule\" not found"
        );
    }
}
