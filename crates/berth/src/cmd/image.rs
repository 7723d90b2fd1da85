//! `berth image import|pull|ls|rm`: the node's image store (DATA_DIR/agent/images) from the
//! command line, without a running server. Safe while the agent runs: imports are atomic.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_agent::ImageStore;

use crate::cli::{ImageCommand, ImageDataDirArgs, ImagePullArgs};
use crate::printer::tabwriter::TabWriter;

fn open(dir: &ImageDataDirArgs) -> anyhow::Result<ImageStore> {
    let data_dir: PathBuf = dir.data_dir.clone().unwrap_or_else(super::server::default_data_dir);
    let path = data_dir.join("agent").join("images");
    ImageStore::open(&path).with_context(|| format!("failed to open the image store at {}", path.display()))
}

/// Human size as `docker images` prints it (kB/MB/GB, decimal).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    if value < 10.0 { format!("{value:.2}{unit}") } else { format!("{value:.1}{unit}") }
}

/// The first 12 hex digits of a digest.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// Runs a `berth image` subcommand.
pub fn run(cmd: &ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Import(args) => {
            let store = open(&args.dir)?;
            let refs = store.import(&args.file).with_context(|| format!("failed to import {}", args.file.display()))?;
            for r in refs {
                println!("imported {} ({})", r.name, r.digest);
            }
        }
        ImageCommand::Pull(args) => pull(args)?,
        ImageCommand::Ls(dir) => {
            let store = open(dir)?;
            let mut tw = TabWriter::new();
            tw.row(vec!["IMAGE".into(), "DIGEST".into(), "SIZE".into()]);
            for r in store.list().context("failed to list images")? {
                let size = match store.get(&r.name) {
                    Ok(Some(image)) => human_size(image.layers.iter().map(|l| l.size).sum()),
                    _ => "<unknown>".into(),
                };
                tw.row(vec![r.name.clone(), short_digest(&r.digest), size]);
            }
            print!("{}", tw.flush());
        }
        ImageCommand::Rm(args) => {
            let store = open(&args.dir)?;
            let mut missing = false;
            for reference in &args.references {
                if store.remove(reference).with_context(|| format!("failed to remove {reference}"))? {
                    println!("Untagged: {reference}");
                } else {
                    eprintln!("Error: image {reference:?} not found");
                    missing = true;
                }
            }
            if missing {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth image pull`: one line per layer as it lands, then a summary.
fn pull(args: &ImagePullArgs) -> anyhow::Result<()> {
    use berth_agent::image::pull::{Credentials, PullEvent};
    let store = open(&args.dir)?;
    let credentials = match (&args.username, &args.password) {
        (Some(username), Some(password)) => {
            Credentials::Basic { username: username.clone(), password: password.clone() }
        }
        _ => Credentials::Anonymous,
    };
    println!("Pulling {}", args.reference);
    let progress = |event: PullEvent| match event {
        PullEvent::Resolved { digest, layers, bytes } => {
            println!("{}: {layers} layer(s), {}", short_digest(&digest), human_size(bytes));
        }
        PullEvent::Layer { digest, bytes, cached } => {
            let what =
                if cached { "Already exists".to_string() } else { format!("Pull complete ({})", human_size(bytes)) };
            println!("{}: {what}", short_digest(&digest));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pulled = runtime.block_on(berth_agent::image::pull::pull(&store, &args.reference, &credentials, &progress))?;
    println!(
        "Pulled {} ({}) in {:.1}s: {} downloaded",
        pulled.image.name,
        pulled.image.digest,
        pulled.elapsed.as_secs_f64(),
        human_size(pulled.downloaded)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests_print_like_docker_images() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_234_567), "1.23MB");
        assert_eq!(human_size(45_600_000), "45.6MB");
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "0123456789ab");
    }
}
