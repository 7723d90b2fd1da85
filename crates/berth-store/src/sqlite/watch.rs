//! Watches on the SQLite store: replay from the table, then live events from the writer.
//!
//! Each watch is a task that first subscribes to the writer's broadcast, then reads the table
//! from its position, then forwards live batches. Anything committed before the subscription is
//! in the table; anything committed after it is in the broadcast; events seen twice are dropped by
//! revision, so there is no gap and no duplicate. A watcher that falls behind the broadcast
//! (`Lagged`) resubscribes and catches up from the table the same way.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::reader::{self, ReadPool};
use super::writer::Batch;
use crate::{Event, Revision, StoreError};

/// Rows read per history query.
const HISTORY_PAGE: usize = 500;
/// Events buffered between the watch task and the consumer.
pub(crate) const OUT_BUFFER: usize = 256;

/// Starts a watch task; the receiver ends when the store closes or the watch fails.
pub(crate) fn spawn(
    pool: Arc<ReadPool>,
    events: &broadcast::Sender<Batch>,
    prefix: String,
    after: Revision,
) -> mpsc::Receiver<Result<Event, StoreError>> {
    let (out, rx) = mpsc::channel(OUT_BUFFER);
    let live = events.subscribe();
    tokio::spawn(run(pool, live, prefix, after, out));
    rx
}

async fn run(
    pool: Arc<ReadPool>,
    mut live: broadcast::Receiver<Batch>,
    prefix: String,
    mut pos: Revision,
    out: mpsc::Sender<Result<Event, StoreError>>,
) {
    loop {
        // Catch up from the table.
        loop {
            let page_prefix = prefix.clone();
            let page = pool.run(move |conn| reader::history(conn, &page_prefix, pos, HISTORY_PAGE)).await;
            let events = match page {
                Ok(events) => events,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            };
            let full = events.len() == HISTORY_PAGE;
            for event in events {
                pos = event.revision;
                if out.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        // Follow the writer.
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                () = out.closed() => return,
            };
            match received {
                Ok(batch) => {
                    for event in batch.iter() {
                        if event.revision <= pos {
                            continue;
                        }
                        pos = event.revision;
                        if event.kv.key.starts_with(&prefix) && out.send(Ok(event.clone())).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(prefix, pos, skipped, "sqlite watch lagged; re-reading from the table");
                    live = live.resubscribe();
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
