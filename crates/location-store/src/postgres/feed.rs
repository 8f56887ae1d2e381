//! The change feed of [`crate::Cluster::follow`]: a thread with a dedicated
//! connection that `LISTEN`s on `sipwake_changes`, `sipwake_subscribers`
//! and this node's `sipwake_sync_<node id>`, and turns what arrives into
//! [`FeedEvent`]s.
//!
//! Notifications are handled strictly in the order PostgreSQL delivers
//! them (commit order): the feed takes what is pending (up to
//! [`MAX_DRAIN`]), gathers the binding ids other nodes announced, and
//! before any other event (subscribers, a sync token) and at the end of the
//! batch fetches their current rows in one query and emits
//! [`FeedEvent::Bindings`]. So [`FeedEvent::Synced`] always comes after the
//! bindings committed before its `sync` call. A lost connection gives
//! [`FeedEvent::Down`], then reconnection with backoff, `LISTEN` again, and
//! [`FeedEvent::Resync`] with every binding.
//!
//! Owns the feed connection and thread. Must not write anything.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Notification};

use super::apply::CHANGES_CHANNEL;
use super::conn::{Target, describe};
use super::rows;
use super::writer::{MAX_BACKOFF, MIN_BACKOFF};
use crate::cluster::FeedEvent;
use crate::error::{Error, Result};

/// The channel of subscriber changes (notified by a trigger).
pub(crate) const SUBSCRIBERS_CHANNEL: &str = "sipwake_subscribers";
/// The most notifications handled as one batch.
pub(crate) const MAX_DRAIN: usize = 500;
/// How long one wait for notifications lasts (the stop flag is checked
/// between waits).
const POLL: Duration = Duration::from_millis(200);

/// The sync channel of node `node`.
pub(crate) fn sync_channel(node: &str) -> String {
    format!("sipwake_sync_{node}")
}

pub(crate) type Sink = Box<dyn FnMut(FeedEvent) + Send>;

/// The running feed.
pub(crate) struct Feed {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Feed {
    /// Stop the thread and wait for it (unless called from the feed's own
    /// thread, from inside the sink: then it ends by itself).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if thread::current().id() == self.handle.thread().id() {
            return;
        }
        if self.handle.join().is_err() {
            tracing::error!("the change feed thread panicked");
        }
    }

    pub(crate) fn thread_id(&self) -> ThreadId {
        self.handle.thread().id()
    }
}

/// Connect and `LISTEN` now (so nothing committed after this returns is
/// missed), then run the feed on its own thread.
pub(crate) fn start(target: Target, node: String, sink: Sink) -> Result<Feed> {
    let (client, down) = match connect_listen(&target, &node) {
        Ok(c) => (Some(c), None),
        Err(reason) => (None, Some(reason)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut follower = Follower { target, node, sink, stop: stop.clone(), subscribers_last: false };
    let name = follower.target.name.clone();
    let handle = thread::Builder::new()
        .name("store-pg-feed".into())
        .spawn(move || follower.run(client, down))
        .map_err(|e| Error::Open { path: name.into(), reason: format!("cannot start the change feed thread: {e}") })?;
    Ok(Feed { stop, handle })
}

fn connect_listen(target: &Target, node: &str) -> std::result::Result<Client, String> {
    let mut client = target.connect().map_err(|e| match e {
        Error::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    })?;
    client
        .batch_execute(&format!(
            "LISTEN {CHANGES_CHANNEL}; LISTEN {SUBSCRIBERS_CHANNEL}; LISTEN \"{}\";",
            sync_channel(node)
        ))
        .map_err(|e| describe(&e))?;
    Ok(client)
}

struct Follower {
    target: Target,
    node: String,
    sink: Sink,
    stop: Arc<AtomicBool>,
    /// The last event emitted was [`FeedEvent::Subscribers`] (consecutive
    /// ones are merged).
    subscribers_last: bool,
}

impl Follower {
    fn run(&mut self, mut client: Option<Client>, down: Option<String>) {
        if let Some(reason) = down {
            self.emit(FeedEvent::Down(reason));
        }
        let mut backoff = MIN_BACKOFF;
        while !self.stop.load(Ordering::SeqCst) {
            let Some(c) = client.as_mut() else {
                if !self.pause(backoff) {
                    break;
                }
                match self.resync() {
                    Ok(c) => {
                        client = Some(c);
                        backoff = MIN_BACKOFF;
                    }
                    Err(reason) => {
                        tracing::debug!(db = %self.target.name, %reason, "change feed cannot reconnect yet");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            };
            let outcome = match wait_batch(c) {
                Ok(notes) => self.handle(c, notes),
                Err(e) => Err(e),
            };
            if let Err(reason) = outcome {
                tracing::warn!(db = %self.target.name, %reason, "change feed lost its connection; reconnecting");
                client = None;
                backoff = MIN_BACKOFF;
                self.emit(FeedEvent::Down(reason));
            }
        }
        tracing::debug!(db = %self.target.name, "change feed stopped");
    }

    /// Sleep `d` unless asked to stop meanwhile; `false` if stopping.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(Duration::from_millis(50)));
        }
        false
    }

    /// Reconnect, `LISTEN`, and send every binding as [`FeedEvent::Resync`].
    fn resync(&mut self) -> std::result::Result<Client, String> {
        let mut client = connect_listen(&self.target, &self.node)?;
        let rows = client.query(rows::SELECT_BINDINGS, &[]).map_err(|e| describe(&e))?;
        let all = rows::bindings_from_rows(&rows, &self.target.name);
        tracing::info!(db = %self.target.name, bindings = all.len(), "change feed is back; resynchronizing");
        self.emit(FeedEvent::Resync { all });
        Ok(client)
    }

    /// Handle one batch of notifications, in order.
    fn handle(&mut self, client: &mut Client, notes: Vec<Notification>) -> std::result::Result<(), String> {
        let sync = sync_channel(&self.node);
        let mut ids: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for note in notes {
            let channel = note.channel();
            if channel == CHANGES_CHANNEL {
                let mut lines = note.payload().split('\n');
                if lines.next() == Some(self.node.as_str()) {
                    continue; // our own commit
                }
                for id in lines.filter(|id| !id.is_empty()) {
                    if seen.insert(id.to_owned()) {
                        ids.push(id.to_owned());
                    }
                }
            } else if channel == SUBSCRIBERS_CHANNEL {
                self.flush(client, &mut ids, &mut seen)?;
                if !self.subscribers_last {
                    self.emit(FeedEvent::Subscribers);
                }
            } else if channel == sync {
                self.flush(client, &mut ids, &mut seen)?;
                match note.payload().parse::<u64>() {
                    Ok(token) => self.emit(FeedEvent::Synced(token)),
                    Err(_) => {
                        tracing::warn!(db = %self.target.name, payload = note.payload(), "ignoring a bad sync token")
                    }
                }
            }
        }
        self.flush(client, &mut ids, &mut seen)
    }

    /// Fetch the current rows of the gathered ids and emit them.
    fn flush(
        &mut self,
        client: &mut Client,
        ids: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> std::result::Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let rows = client.query(rows::SELECT_BINDINGS_BY_ID, &[&*ids]).map_err(|e| describe(&e))?;
        let upserted = rows::bindings_from_rows(&rows, &self.target.name);
        let found: HashSet<&str> = upserted.iter().map(|b| b.id.as_str()).collect();
        let removed: Vec<String> = ids.iter().filter(|id| !found.contains(id.as_str())).cloned().collect();
        self.emit(FeedEvent::Bindings { upserted, removed });
        ids.clear();
        seen.clear();
        Ok(())
    }

    fn emit(&mut self, event: FeedEvent) {
        self.subscribers_last = matches!(event, FeedEvent::Subscribers);
        let sink = &mut self.sink;
        if catch_unwind(AssertUnwindSafe(|| sink(event))).is_err() {
            tracing::error!(db = %self.target.name, "the change feed's sink panicked; the feed goes on");
        }
    }
}

/// Wait up to [`POLL`] for a notification, then take what else is pending
/// (up to [`MAX_DRAIN`]). Empty when nothing came; an error when the
/// connection is gone.
fn wait_batch(client: &mut Client) -> std::result::Result<Vec<Notification>, String> {
    let mut notes = Vec::new();
    let mut n = client.notifications();
    match n.timeout_iter(POLL).next() {
        Ok(Some(note)) => notes.push(note),
        Ok(None) => {}
        Err(e) => return Err(describe(&e)),
    }
    if !notes.is_empty() {
        let mut pending = n.iter();
        while notes.len() < MAX_DRAIN {
            match pending.next() {
                Ok(Some(note)) => notes.push(note),
                Ok(None) => break,
                Err(e) => return Err(describe(&e)),
            }
        }
    }
    drop(n);
    if notes.is_empty() && client.is_closed() {
        return Err("the connection was closed".to_owned());
    }
    Ok(notes)
}
