//! Benchmark (printed, not asserted): full-sync time (render from API objects + `nft -f` apply)
//! at 1,000 and 10,000 Services with three synthetic endpoints each, and ClusterIP throughput as
//! a ratio of direct endpoint throughput. Runs in a per-run network namespace (root only),
//! deleted at the end with the processes it started.
//!
//! `cargo bench -p berth-proxy`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_proxy::testing::{ServiceBuilder, SliceBuilder};
use berth_proxy::{Host, RenderOptions, render_state};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

struct Netns {
    name: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Netns {
    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

fn objects(n: usize) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("svc-{i}");
        let ip = format!("10.43.{}.{}", i / 250, i % 250 + 1);
        let mut svc = ServiceBuilder::new("bench", &name, &ip, 80, 8080);
        if i % 10 == 0 {
            svc = svc.node_port(30000 + (i / 10) as u16);
        }
        services.push(Arc::new(svc.build()));
        let mut slice = SliceBuilder::new("bench", &name, &format!("{name}-1"), 8080);
        for e in 0..3 {
            let k = i * 3 + e;
            slice = slice.ready(&format!("10.42.{}.{}", k / 250, k % 250 + 1), "node-a");
        }
        slices.push(Arc::new(slice.build()));
    }
    (services, slices)
}

fn options() -> RenderOptions {
    RenderOptions {
        table: "berth-bench".into(),
        node_ips: vec![],
        service_cidr: "10.43.0.0/16".parse().expect("cidr"),
        cluster_cidr: Some("10.42.0.0/16".parse().expect("cidr")),
        masquerade_mark: 0x4000,
    }
}

async fn sync_times(host: &Host) {
    println!("{:>8} {:>12} {:>12} {:>14} {:>12}", "services", "render", "apply", "update(1 change)", "ruleset");
    for n in [1_000, 10_000] {
        let (services, mut slices) = objects(n);
        let started = Instant::now();
        let text = render_state(&services, &slices, &options(), "node-a");
        let render = started.elapsed();
        let started = Instant::now();
        host.apply_table("berth-bench", &text).await.expect("apply");
        let apply = started.elapsed();
        // One endpoint change: re-render, then update the table in place (as the proxy does).
        slices[0] =
            Arc::new(SliceBuilder::new("bench", "svc-0", "svc-0-1", 8080).ready("10.42.250.1", "node-a").build());
        let started = Instant::now();
        let next = render_state(&services, &slices, &options(), "node-a");
        host.nft(&berth_proxy::ruleset::update_batch("berth-bench", &text, &next)).await.expect("update");
        let text = next;
        let change = started.elapsed();
        println!("{n:>8} {render:>12.2?} {apply:>12.2?} {change:>14.2?} {:>10} KiB", text.len() / 1024);
    }
    host.delete_table("berth-bench").await.expect("delete");
}

/// Best of three `curl` downloads of a 512 MiB sparse file, in bytes per second.
fn download_speed(ns: &Netns, url: &str) -> f64 {
    (0..3)
        .filter_map(|_| {
            let out = ns.exec(&["curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download}", url]);
            String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok()
        })
        .fold(0.0, f64::max)
}

async fn throughput(ns: &mut Netns, host: &Host) {
    let root = ns.dir.path().join("www");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::File::create(root.join("big")).and_then(|f| f.set_len(512 << 20)).expect("sparse file");
    let out = ns.exec(&["ip", "addr", "add", "10.42.0.1/32", "dev", "lo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "busybox", "httpd", "-f", "-p", "10.42.0.1:8080", "-h"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("httpd");
    ns.children.push(child);
    let svc = vec![Arc::new(ServiceBuilder::new("bench", "web", "10.43.0.10", 80, 8080).build())];
    let slice = vec![Arc::new(SliceBuilder::new("bench", "web", "web-1", 8080).ready("10.42.0.1", "node-a").build())];
    host.apply_table("berth-bench", &render_state(&svc, &slice, &options(), "node-a")).await.expect("apply");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns.exec(&["curl", "-s", "-o", "/dev/null", "http://10.42.0.1:8080/"]).status.success() {
        assert!(Instant::now() < deadline, "httpd never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let direct = download_speed(ns, "http://10.42.0.1:8080/big");
    let cluster_ip = download_speed(ns, "http://10.43.0.10/big");
    println!(
        "throughput: direct {:.0} MiB/s, ClusterIP {:.0} MiB/s, ratio {:.2}",
        direct / 1048576.0,
        cluster_ip / 1048576.0,
        cluster_ip / direct.max(1.0)
    );
    host.delete_table("berth-bench").await.expect("delete");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if !root {
        println!("skipping the berth-proxy benchmark: needs root (network namespace, nftables)");
        return;
    }
    let name = format!("bpxb{:x}", std::process::id());
    let dir = tempfile::Builder::new().prefix("berth-proxy-bench-").tempdir().expect("temp dir");
    let status = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
    assert!(status.success(), "ip netns add {name}");
    let mut ns = Netns { name: name.clone(), children: Vec::new(), dir };
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    ns.exec(&["ip", "route", "add", "default", "dev", "lo"]);
    let host = Host::in_netns(&name);
    sync_times(&host).await;
    throughput(&mut ns, &host).await;
}
