//! Lists with label/field selectors and paging; watches through kube's watcher (add, modify,
//! delete), bookmarks, selector transitions and 410 after compaction.

mod common;

use std::time::Duration;

use common::TestServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;

async fn make_cm(api: &Api<ConfigMap>, name: &str, labels: serde_json::Value) {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "a", json!({"app": "web", "tier": "fe"})).await;
    make_cm(&api, "b", json!({"app": "web", "tier": "be"})).await;
    make_cm(&api, "c", json!({"app": "db"})).await;
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        let mut v: Vec<String> = l.items.into_iter().filter_map(|c| c.metadata.name).collect();
        v.sort();
        v
    };
    assert_eq!(names(api.list(&ListParams::default().labels("app=web")).await.unwrap()), ["a", "b"]);
    assert_eq!(names(api.list(&ListParams::default().labels("app=web,tier!=fe")).await.unwrap()), ["b"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name=c")).await.unwrap()), ["c"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name!=c")).await.unwrap()).len(), 2);
    // Unsupported field: 400 BadRequest.
    let (code, body) = ts.get("/api/v1/namespaces/default/configmaps?fieldSelector=spec.foo%3Dbar").await;
    assert_eq!(code, 400);
    assert_eq!(body["reason"], "BadRequest");
}

#[tokio::test]
async fn paging_with_limit_and_continue_sees_every_object_once() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    for i in 0..7 {
        make_cm(&api, &format!("cm-{i}"), json!({"batch": "x"})).await;
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3).labels("batch=x");
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        first_rv.get_or_insert(page.metadata.resource_version.clone());
        // Writes after the first page do not show up in later pages (one consistent snapshot).
        if pages == 1 {
            make_cm(&api, "cm-late", json!({"batch": "x"})).await;
        }
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let (code, body) = ts.get("/api/v1/namespaces/default/configmaps?limit=2&continue=garbage").await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn kube_watcher_sees_add_modify_delete() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "pre", json!({})).await;
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut saw_pre = false;
    // The initial list ends with InitDone.
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap() {
        match ev {
            watcher::Event::InitApply(cm) => saw_pre |= cm.metadata.name.as_deref() == Some("pre"),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert!(saw_pre);
    make_cm(&api, "live", json!({})).await;
    api.patch("live", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v"}}))).await.unwrap();
    api.delete("live", &DeleteParams::default()).await.unwrap();
    let mut applies = 0;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
        match ev {
            watcher::Event::Apply(cm) if cm.metadata.name.as_deref() == Some("live") => applies += 1,
            watcher::Event::Delete(cm) if cm.metadata.name.as_deref() == Some("live") => break,
            _ => {}
        }
    }
    assert_eq!(applies, 2);
}

#[tokio::test]
async fn watch_with_selector_reports_objects_leaving_as_deleted_and_sends_bookmarks() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "sel", json!({"team": "a"})).await;
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let wp = WatchParams::default().labels("team=a").timeout(20);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    api.patch("sel", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})))
        .await
        .unwrap();
    let mut got_deleted = false;
    let mut got_bookmark = false;
    while !(got_deleted && got_bookmark) {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        match ev {
            WatchEvent::Deleted(cm) => {
                assert_eq!(cm.metadata.name.as_deref(), Some("sel"));
                got_deleted = true;
            }
            WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                got_bookmark = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn watch_from_a_resource_version_gets_only_later_events_and_raw_lines() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "old", json!({})).await;
    let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    make_cm(&api, "new", json!({})).await;
    let (code, body, ct) = ts
        .raw(
            "GET",
            &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(ct, "application/json");
    let text = body.as_str().map(String::from).unwrap_or_else(|| body.to_string());
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "new");
}

#[tokio::test]
async fn watch_and_continue_from_a_compacted_revision_are_410_expired() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "one", json!({})).await;
    let first = api.list(&ListParams::default().limit(1)).await.unwrap();
    let old_rv = first.metadata.resource_version.clone().unwrap();
    make_cm(&api, "two", json!({})).await;
    make_cm(&api, "three", json!({})).await;
    let store = ts.server.as_ref().unwrap().store();
    let now = store.current_revision().await.unwrap();
    store.compact(now).await.unwrap();

    let (code, body) = ts
        .get(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old_rv}&timeoutSeconds=5"))
        .await;
    let text = body.as_str().map(String::from).unwrap_or_else(|| body.to_string());
    if code == 200 {
        let ev: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(ev["type"], "ERROR");
        assert_eq!(ev["object"]["code"], 410);
        assert_eq!(ev["object"]["reason"], "Expired");
    } else {
        assert_eq!(code, 410, "{text}");
    }
    if let Some(c) = first.metadata.continue_.filter(|c| !c.is_empty()) {
        match api.list(&ListParams::default().limit(1).continue_token(&c)).await.unwrap_err() {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 410);
                assert_eq!(s.reason, "Expired");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // kube's watcher recovers from the 410 by listing again.
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(ev, watcher::Event::Init));
}

#[tokio::test]
async fn streaming_list_watch_sends_initial_events_then_the_end_bookmark() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "s1", json!({})).await;
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut saw = false;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
        match ev {
            watcher::Event::InitApply(cm) => saw |= cm.metadata.name.as_deref() == Some("s1"),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert!(saw);
}

#[tokio::test]
async fn metadata_watcher_sees_partial_object_metadata() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    make_cm(&api, "meta", json!({"k": "v"})).await;
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(ts.client.clone(), "default");
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
        if let watcher::Event::InitApply(m) = ev
            && m.metadata.name.as_deref() == Some("meta")
        {
            assert_eq!(m.metadata.labels.unwrap()["k"], "v");
            break;
        }
    }
    // A watch asking for no initial events sees only later changes.
    let (code, body) =
        ts.get("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=false&timeoutSeconds=1").await;
    assert_eq!(code, 200);
    assert_eq!(body.as_str().unwrap_or_default(), "", "{body}");
}
