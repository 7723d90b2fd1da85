//! `berth create`: objects from files (`-f`), or a Deployment / Namespace by name as
//! `kubectl create deployment|namespace` builds them.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::Ctx;
use super::apply::{add_source, print_failure, target_of};
use crate::api::path;
use crate::cli::{CreateArgs, CreateCommand};
use crate::manifest::read_all;

pub async fn run(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Some(CreateCommand::Deployment { name, image, replicas, port }) => {
            let body = deployment(&name, &image, replicas, port);
            let res = ctx.discovery().await?.resolve("deployments.apps")?.clone();
            ctx.api.post(&path(&res, ctx.scope(&res).or(Some(ctx.namespace.as_str())), None), &body).await?;
            println!("deployment.apps/{name} created");
            Ok(ExitCode::SUCCESS)
        }
        Some(CreateCommand::Namespace { name }) => {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            ctx.api.post("/api/v1/namespaces", &body).await?;
            println!("namespace/{name} created");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            if args.filenames.is_empty() {
                anyhow::bail!("must specify one of -f and -k, or a resource to create (deployment, namespace)");
            }
            let mut failed = false;
            for m in read_all(&args.filenames)? {
                let result = async {
                    let t = target_of(ctx, &m).await?;
                    let mut body = m.object.clone();
                    if let (Some(ns), Some(meta)) =
                        (&t.namespace, body.get_mut("metadata").and_then(Value::as_object_mut))
                    {
                        meta.entry("namespace").or_insert_with(|| Value::String(ns.clone()));
                    }
                    ctx.api
                        .post(&path(&t.res, t.namespace.as_deref(), None), &body)
                        .await
                        .map_err(|e| add_source(e, "creating", &m.source))?;
                    anyhow::Ok(t)
                }
                .await;
                match result {
                    Ok(t) => println!("{}/{} created", t.res.kind_group(), t.name),
                    Err(err) => {
                        failed = true;
                        print_failure(&err);
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

/// The Deployment `kubectl create deployment NAME --image=I... [--replicas N] [--port P]` sends.
pub fn deployment(name: &str, images: &[String], replicas: i32, port: Option<i32>) -> Value {
    let mut seen: Vec<String> = Vec::new();
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let mut cname = container_name(image);
            if seen.contains(&cname) {
                cname = format!("{cname}-{i}");
            }
            seen.push(cname.clone());
            let mut c = json!({"name": cname, "image": image, "resources": {}});
            if i == 0
                && let Some(p) = port
            {
                c["ports"] = json!([{"containerPort": p}]);
            }
            c
        })
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers}
            }
        },
        "status": {}
    })
}

/// kubectl's container name for an image: the last path segment without tag or digest.
pub fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split(':').next().unwrap_or(last);
    let last = last.split('@').next().unwrap_or(last);
    last.replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_drop_registry_tag_and_digest() {
        assert_eq!(container_name("nginx"), "nginx");
        assert_eq!(container_name("registry.k8s.io/pause:3.9"), "pause");
        assert_eq!(container_name("ghcr.io/a/my_app@sha256:abc"), "my-app");
    }

    #[test]
    fn deployment_matches_kubectl_shape() {
        let d = deployment("web", &["nginx:1.25".to_string()], 3, Some(80));
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "web");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["name"], "nginx");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
    }
}
