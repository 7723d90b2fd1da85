//! The etcd backend: the v3 API directly. Revisions, compare-and-swap and watches are etcd's own.
//!
//! Create, update and delete are transactions comparing the key's `create_revision` and
//! `mod_revision`; when the comparison fails, the same transaction reads the key so the error can
//! say why (`AlreadyExists`, `NotFound` or `Conflict` with the actual revision).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType as EtcdEventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions,
};
use futures::StreamExt;

use crate::keys::{key_after, prefix_end};
use crate::{Event, EventType, KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, WatchStream};

/// etcd's message when a read or watch asks for history it has compacted away.
const COMPACTED_MESSAGE: &str = "required revision has been compacted";
/// etcd's message for a read at a revision it has not reached yet.
const FUTURE_MESSAGE: &str = "required revision is a future revision";

/// A [`Store`] in an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// The newest compaction this client made, reported in `Compacted` errors (etcd's range error
    /// does not say which revision it was compacted to).
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to an etcd cluster and checks that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, StoreError> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| StoreError::backend(format!("failed to connect to etcd at {}", endpoints.join(",")), e))?;
        let store = EtcdStore { client, compacted: Arc::new(AtomicI64::new(0)) };
        store.current_revision().await?;
        Ok(store)
    }

    fn map_error(&self, context: &'static str, requested: Revision, e: etcd_client::Error) -> StoreError {
        let message = e.to_string();
        if message.contains(COMPACTED_MESSAGE) {
            let compacted = self.compacted.load(Ordering::SeqCst).max(requested + 1);
            return StoreError::Compacted { requested, compacted };
        }
        if message.contains(FUTURE_MESSAGE) {
            // etcd's error does not carry the current revision: callers fill it in.
            return StoreError::FutureRevision { requested, current: requested - 1 };
        }
        StoreError::backend(context, e)
    }

    async fn txn(&self, context: &'static str, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.client.kv_client().txn(txn).await.map_err(|e| StoreError::backend(context, e))
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = String::from_utf8(kv.key().to_vec())
        .map_err(|e| StoreError::backend("etcd returned a key that is not UTF-8", e))?;
    Ok(KeyValue {
        key,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_revision(resp: &TxnResponse) -> Result<Revision, StoreError> {
    resp.header()
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::backend("etcd answered without a header", "missing response header"))
}

/// The key read by the `else` branch of a failed transaction, if it exists.
fn failed_txn_key(resp: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return get.kvs().first().map(key_value).transpose();
        }
    }
    Ok(None)
}

/// Builds a watch event from etcd's. Deletes report the key's last value (`prev_kv`).
fn event(e: &etcd_client::Event) -> Result<Option<Event>, StoreError> {
    let Some(kv) = e.kv() else { return Ok(None) };
    let revision = kv.mod_revision();
    let prev = e.prev_kv().map(key_value).transpose()?;
    let current = key_value(kv)?;
    let (kind, kv, prev) = match e.event_type() {
        EtcdEventType::Put if kv.create_revision() == kv.mod_revision() => (EventType::Create, current, None),
        EtcdEventType::Put => (EventType::Update, current, prev),
        EtcdEventType::Delete => {
            // Without prev_kv (already compacted) only the key is known.
            let last = prev.unwrap_or(KeyValue { value: Vec::new(), ..current });
            (EventType::Delete, last, None)
        }
    };
    Ok(Some(Event { kind, revision, kv, prev }))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(|e| StoreError::backend(format!("failed to get {key} from etcd"), e))?;
        resp.kvs().first().map(key_value).transpose()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let start = match &req.start_after {
            Some(s) if s.as_str() >= req.prefix.as_str() => key_after(s.as_bytes()),
            _ => req.prefix.as_bytes().to_vec(),
        };
        // "\0" as the range end means "to the end of the keyspace".
        let end = prefix_end(req.prefix.as_bytes()).unwrap_or_else(|| vec![0]);
        let start = if start.is_empty() { vec![0] } else { start };
        let requested = req.revision.unwrap_or(0);
        let mut options = GetOptions::new().with_range(end).with_revision(requested);
        if let Some(limit) = req.limit.filter(|l| *l > 0) {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let resp = match self.client.kv_client().get(start, Some(options)).await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(match self.map_error("failed to range over etcd", requested, e) {
                    StoreError::FutureRevision { requested, .. } => {
                        StoreError::FutureRevision { requested, current: self.current_revision().await? }
                    }
                    other => other,
                });
            }
        };
        let kvs = resp.kvs().iter().map(key_value).collect::<Result<Vec<_>, _>>()?;
        let revision = if requested > 0 { requested } else { resp.header().map(|h| h.revision()).unwrap_or_default() };
        Ok(RangeResponse { kvs, more: resp.more(), revision })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn("failed to create a key in etcd", txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.to_owned() });
        }
        let revision = header_revision(&resp)?;
        Ok(KeyValue { key: key.to_owned(), value, create_revision: revision, mod_revision: revision })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue, StoreError> {
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key, value.clone(), Some(PutOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn("failed to update a key in etcd", txn).await?;
        if !resp.succeeded() {
            return Err(match failed_txn_key(&resp)? {
                None => StoreError::NotFound { key: key.to_owned() },
                Some(kv) => StoreError::Conflict { key: key.to_owned(), expected, actual: kv.mod_revision },
            });
        }
        let revision = header_revision(&resp)?;
        let create_revision = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .ok_or_else(|| StoreError::backend("etcd's update answer lacks the previous value", "no prev_kv"))?;
        Ok(KeyValue { key: key.to_owned(), value, create_revision, mod_revision: revision })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue), StoreError> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn("failed to delete a key in etcd", txn).await?;
        if !resp.succeeded() {
            return Err(match (failed_txn_key(&resp)?, expected) {
                (Some(kv), Some(expected)) => {
                    StoreError::Conflict { key: key.to_owned(), expected, actual: kv.mod_revision }
                }
                _ => StoreError::NotFound { key: key.to_owned() },
            });
        }
        let revision = header_revision(&resp)?;
        let last = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(mut del) => del.take_prev_kvs().into_iter().next(),
                _ => None,
            })
            .ok_or_else(|| StoreError::backend("etcd's delete answer lacks the previous value", "no prev_kvs"))?;
        Ok((revision, key_value(&last)?))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let options = WatchOptions::new().with_prefix().with_prev_key().with_start_revision(after.max(0) + 1);
        let watch = self
            .client
            .watch_client()
            .watch(prefix, Some(options))
            .await
            .map_err(|e| StoreError::backend(format!("failed to watch {prefix} in etcd"), e))?;
        // The watch stream holds the request sender too: etcd ends a watch whose client closed
        // its sending side, so the whole `WatchStream` lives as long as the stream we return.
        struct State {
            watch: Option<etcd_client::WatchStream>,
            pending: std::collections::VecDeque<Event>,
            after: Revision,
        }
        let state = State { watch: Some(watch), pending: Default::default(), after };
        let stream = futures::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(event) = state.pending.pop_front() {
                    return Some((Ok(event), state));
                }
                let watch = state.watch.as_mut()?;
                let message = match watch.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => return None,
                    Err(e) => {
                        state.watch = None;
                        return Some((Err(StoreError::backend("the etcd watch failed", e)), state));
                    }
                };
                if message.canceled() {
                    state.watch = None;
                    let err = if message.compact_revision() > 0 {
                        StoreError::Compacted { requested: state.after + 1, compacted: message.compact_revision() }
                    } else {
                        StoreError::backend("etcd cancelled the watch", message.cancel_reason().to_owned())
                    };
                    return Some((Err(err), state));
                }
                for e in message.events() {
                    match event(e) {
                        Ok(Some(event)) => state.pending.push_back(event),
                        Ok(None) => {}
                        Err(err) => {
                            state.watch = None;
                            return Some((Err(err), state));
                        }
                    }
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        match self.client.kv_client().compact(revision, None).await {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::SeqCst);
                Ok(())
            }
            // Compacting to a revision at or below the last compaction changes nothing.
            Err(e) if e.to_string().contains(COMPACTED_MESSAGE) => Ok(()),
            Err(e) => {
                let err = self.map_error("failed to compact etcd", revision, e);
                if let StoreError::FutureRevision { requested, .. } = err {
                    let current = self.current_revision().await?;
                    return Err(StoreError::FutureRevision { requested, current });
                }
                Err(err)
            }
        }
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let resp = self
            .client
            .kv_client()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| StoreError::backend("failed to read the etcd revision", e))?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::backend("etcd answered without a header", "missing response header"))
    }
}
