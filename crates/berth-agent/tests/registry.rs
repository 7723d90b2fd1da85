//! Image pulls against a real registry: Debian's `docker-registry` (the CNCF distribution server)
//! started on a free loopback port with its storage in a temp dir. The busybox test image is
//! pushed to it with `oci-client`, then pulled into an empty store by `image::pull`.
//!
//! Needs `/usr/bin/docker-registry` (package docker-registry); without it the tests fail under
//! `CI=true` and print a skip otherwise. The registry process is killed by PID on drop.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_agent::image::pull::{Credentials, PullEvent, pull};
use berth_agent::image::testing::TestImage;
use berth_agent::image::{ImageError, ImageStore};
use berth_agent::testing::Prerequisites;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};

const REGISTRY: &str = "/usr/bin/docker-registry";

fn prerequisites(test: &str) -> bool {
    Prerequisites::new().file(REGISTRY, "docker-registry (apt install docker-registry)").check(test)
}

/// A `docker-registry` on 127.0.0.1; killed on drop.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, addr: format!("127.0.0.1:{port}"), _dir: dir };
        let sock: SocketAddr = registry.addr.parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry never listened:\n{}", registry.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self._dir.path().join("registry.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes every blob and the manifest of `name` from `store` to `target` on the registry.
async fn push(store: &ImageStore, name: &str, registry: &str, target: &str) -> String {
    let image = store.get(name).expect("store").expect("imported image");
    let reference: Reference = format!("{registry}/{target}").parse().expect("reference");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![registry.to_string()]),
        ..Default::default()
    });
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    client.auth(&reference, &auth, oci_client::RegistryOperation::Push).await.expect("auth");
    for digest in std::iter::once(&image.config_digest).chain(image.layers.iter().map(|l| &l.digest)) {
        let data = store.read_blob(digest).expect("blob");
        client.push_blob(&reference, data, digest).await.expect("push blob");
    }
    let manifest = store.read_blob(&image.manifest_digest).expect("manifest");
    let media = http::HeaderValue::from_static(berth_agent::image::media_type::OCI_MANIFEST);
    client.push_manifest_raw(&reference, manifest, media).await.expect("push manifest");
    image.manifest_digest
}

fn import_busybox(dir: &Path) -> ImageStore {
    let store = ImageStore::open(dir.join("source")).expect("source store");
    let archive = dir.join("busybox.tar");
    TestImage::busybox().oci_archive("docker.io/library/busybox:latest", &archive);
    store.import(&archive).expect("import");
    store
}

#[tokio::test]
async fn an_image_pushed_to_a_registry_is_pulled_layer_by_layer_and_then_found_cached() {
    if !prerequisites("an_image_pushed_to_a_registry_is_pulled_layer_by_layer_and_then_found_cached") {
        return;
    }
    let registry = Registry::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = import_busybox(dir.path());
    let digest = push(&source, "busybox", &registry.addr, "test/busybox:v1").await;

    let store = ImageStore::open(dir.path().join("node")).expect("node store");
    let events = Mutex::new(Vec::new());
    let reference = format!("{}/test/busybox:v1", registry.addr);
    let record = |e: PullEvent| events.lock().expect("events").push(e);
    let pulled = pull(&store, &reference, &Credentials::Anonymous, &record).await.expect("pull");
    assert_eq!(pulled.image.digest, digest);
    assert!(pulled.downloaded > 0 && pulled.downloaded == pulled.size, "{pulled:?}");
    let events = std::mem::take(&mut *events.lock().expect("events"));
    let layers = source.get("busybox").expect("store").expect("image").layers.len();
    assert!(matches!(&events[0], PullEvent::Resolved { layers: n, .. } if *n == layers), "{events:?}");
    assert_eq!(events.iter().filter(|e| matches!(e, PullEvent::Layer { cached: false, .. })).count(), layers);

    let image = store.get(&reference).expect("store").expect("pulled image is in the store");
    assert_eq!(image.manifest_digest, digest);
    assert!(!store.is_imported(&reference).expect("index"), "pulled, not imported");

    // A second pull finds every blob in the store and downloads nothing.
    let again = pull(&store, &reference, &Credentials::Anonymous, &|_| {}).await.expect("second pull");
    assert_eq!(again.downloaded, 0);
}

#[tokio::test]
async fn pulling_a_missing_image_says_so() {
    if !prerequisites("pulling_a_missing_image_says_so") {
        return;
    }
    let registry = Registry::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ImageStore::open(dir.path().join("node")).expect("store");
    let reference = format!("{}/test/nothing:v1", registry.addr);
    let err = pull(&store, &reference, &Credentials::Anonymous, &|_| {}).await.expect_err("no such image");
    assert!(matches!(err, ImageError::Pull { .. }), "{err:?}");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("unknown") || text.contains("not found"), "{text}");
    assert!(store.list().expect("list").is_empty(), "nothing recorded");
}
