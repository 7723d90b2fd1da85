//! `berth api-resources`: the served resources as kubectl lists them (NAME SHORTNAMES APIVERSION
//! NAMESPACED KIND, sorted by group then name; VERBS and CATEGORIES with -o wide).

use std::io::Write;
use std::process::ExitCode;

use super::Ctx;
use crate::cli::{ApiResourcesArgs, OutputFormat};
use crate::discovery::ResourceInfo;
use crate::printer::tabwriter::TabWriter;

/// Filters and sorts as kubectl does (stable: group, then plural).
pub fn select<'a>(resources: &'a [ResourceInfo], args: &ApiResourcesArgs) -> Vec<&'a ResourceInfo> {
    let mut out: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| args.namespaced.is_none_or(|n| r.namespaced == n))
        .filter(|r| args.api_group.as_deref().is_none_or(|g| r.group == g))
        .collect();
    out.sort_by(|a, b| a.group.cmp(&b.group).then_with(|| a.plural.cmp(&b.plural)));
    out
}

/// The rendered table (or names).
pub fn render(resources: &[&ResourceInfo], args: &ApiResourcesArgs) -> String {
    if args.output == Some(OutputFormat::Name) {
        return resources
            .iter()
            .map(|r| if r.group.is_empty() { format!("{}\n", r.plural) } else { format!("{}.{}\n", r.plural, r.group) })
            .collect();
    }
    let wide = args.output == Some(OutputFormat::Wide);
    let mut tw = TabWriter::new();
    if !args.no_headers {
        let mut header: Vec<String> =
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"].iter().map(|s| s.to_string()).collect();
        if wide {
            header.extend(["VERBS".to_string(), "CATEGORIES".to_string()]);
        }
        tw.row(header);
    }
    for r in resources {
        let mut row =
            vec![r.plural.clone(), r.short_names.join(","), r.api_version(), r.namespaced.to_string(), r.kind.clone()];
        if wide {
            let mut verbs = r.verbs.clone();
            verbs.sort();
            row.push(verbs.join(","));
            row.push(r.categories.join(","));
        }
        tw.row(row);
    }
    tw.flush()
}

pub async fn run(ctx: &Ctx, args: ApiResourcesArgs) -> anyhow::Result<ExitCode> {
    let discovery = ctx.discovery().await?;
    let selected = select(&discovery.resources, &args);
    let mut out = std::io::stdout().lock();
    write!(out, "{}", render(&selected, &args))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::sample;

    fn args() -> ApiResourcesArgs {
        ApiResourcesArgs { namespaced: None, api_group: None, output: None, no_headers: false }
    }

    #[test]
    fn sorted_by_group_then_name_in_kubectl_columns() {
        let d = sample();
        let got = render(&select(&d.resources, &args()), &args());
        let want = "NAME          SHORTNAMES   APIVERSION         NAMESPACED   KIND\n\
                    configmaps    cm           v1                 true         ConfigMap\n\
                    events        ev           v1                 true         Event\n\
                    namespaces    ns           v1                 false        Namespace\n\
                    pods          po           v1                 true         Pod\n\
                    services      svc          v1                 true         Service\n\
                    deployments   deploy       apps/v1            true         Deployment\n\
                    replicasets   rs           apps/v1            true         ReplicaSet\n\
                    events        ev           events.k8s.io/v1   true         Event\n";
        assert_eq!(got, want);
    }

    #[test]
    fn namespaced_filter() {
        let d = sample();
        let a = ApiResourcesArgs { namespaced: Some(false), ..args() };
        let names: Vec<&str> = select(&d.resources, &a).iter().map(|r| r.plural.as_str()).collect();
        assert_eq!(names, ["namespaces"]);
    }
}
