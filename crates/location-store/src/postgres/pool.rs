//! The reader pool: a few connections, taken round-robin, for everything
//! but the write queue and the feed (start-up loads, subscribers, the
//! cluster calls).
//!
//! A slot connects lazily, and drops its connection on a connection error;
//! the operation is then tried once more on a fresh connection (a server
//! restart only surfaces on the first use of an old connection). Every
//! pooled operation is safe to repeat.
//!
//! Owns the reader connections. Must not touch the writer's or the feed's
//! connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::Client;

use super::conn::{Target, blocking, is_connection_error};
use crate::error::{Error, Result};

pub(crate) struct Pool {
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    target: Target,
}

/// What a pooled operation failed with: the driver's error, or one of ours
/// (a damaged row, a bad value).
pub(crate) enum OpError {
    Pg(postgres::Error),
    Store(Error),
}

impl From<postgres::Error> for OpError {
    fn from(e: postgres::Error) -> Self {
        OpError::Pg(e)
    }
}

impl Pool {
    /// `size` slots (at least one); `first` fills the first slot.
    pub(crate) fn new(target: Target, size: usize, first: Option<Client>) -> Self {
        let mut slots: Vec<Mutex<Option<Client>>> = (0..size.max(1)).map(|_| Mutex::new(None)).collect();
        if let Some(slot) = slots.first_mut() {
            *slot = Mutex::new(first);
        }
        Self { slots, next: AtomicUsize::new(0), target }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Run `f` on a pooled connection; `op` names it in errors.
    pub(crate) fn run<T: Send>(
        &self,
        op: &str,
        mut f: impl FnMut(&mut Client) -> std::result::Result<T, OpError> + Send,
    ) -> Result<T> {
        blocking(|| {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
            let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
            let mut tries = 0;
            loop {
                tries += 1;
                let client = match slot.as_mut() {
                    Some(c) => c,
                    None => slot.insert(self.target.connect()?),
                };
                match f(client) {
                    Ok(v) => return Ok(v),
                    Err(OpError::Store(e)) => return Err(e),
                    Err(OpError::Pg(e)) if is_connection_error(&e) => {
                        *slot = None;
                        if tries >= 2 {
                            return Err(self.target.error(op, &e));
                        }
                    }
                    Err(OpError::Pg(e)) => return Err(self.target.error(op, &e)),
                }
            }
        })
    }

    /// Close every connection (from a thread where the driver may block).
    pub(crate) fn close(&self) {
        blocking(|| {
            for slot in &self.slots {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                drop(slot.take());
            }
        });
    }
}
