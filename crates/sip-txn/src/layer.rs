//! [`TxnLayer`]: the public entry point. Dispatches network input, TU calls
//! and timer expiry to the state machines, and queues their output.
//!
//! Owns matching a message to a transaction (through the hash indexes of
//! [`crate::table`]), creating and destroying transactions, and the
//! transmit / event queues. All behaviour within a transaction lives in the
//! four state machine modules.

use crate::build::RequestTemplate;
use crate::client_invite::{CancelNow, ClientInvite};
use crate::client_non_invite::ClientNonInvite;
use crate::config::{Config, Peer};
use crate::ctx::{Ctx, Fired};
use crate::event::{RequestEvent, ResponseEvent, Transmit, TxnError, TxnEvent, TxnState};
use crate::key::{ClientKey, ServerKey, TxnKey};
use crate::server_invite::{AckStep, ServerInvite};
use crate::server_non_invite::ServerNonInvite;
use crate::table::{Machine, Table, Txn};
use crate::timers::{Armed, Entry, TimerQueue, TxnId};
use sip_msg::{Message, Method};
use std::collections::VecDeque;
use std::time::Instant;

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live transactions.
    pub transactions: usize,
    /// Timers currently armed.
    pub timers_armed: usize,
    /// Entries in the timer heap (armed plus not yet discarded stale ones).
    pub timer_entries: usize,
    /// Timers that fired since the layer was created.
    pub timers_fired: u64,
    /// Heap entries popped in total (fired or stale). Each entry is popped
    /// at most once, so this bounds the timer work done.
    pub timer_pops: u64,
}

/// The sans-IO transaction layer. See the crate documentation.
#[derive(Debug)]
pub struct TxnLayer {
    cfg: Config,
    table: Table,
    timers: TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxnEvent>,
    timers_fired: u64,
    timer_pops: u64,
}

impl TxnLayer {
    pub fn new(config: Config) -> Self {
        TxnLayer {
            cfg: config,
            table: Table::default(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers_fired: 0,
            timer_pops: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A request arrived from the network.
    pub fn on_request(&mut self, msg: Message, from: Peer, now: Instant) -> RequestEvent {
        let key = match ServerKey::of_request(&msg) {
            Ok(k) => k,
            Err(error) => return RequestEvent::Invalid { error, msg, from },
        };
        if msg.method() == Some(&Method::Ack) {
            return self.on_ack(key, msg, from, now);
        }
        if let Some(id) = self.table.server(&key) {
            // Answer on the path the client used last (it may have reconnected).
            if let Some(t) = self.table.get_mut(id) {
                t.peer = from;
            }
            self.drive(id, now, |m, cx| match m {
                Machine::InviteServer(t) => t.on_retransmit(cx),
                Machine::NonInviteServer(t) => t.on_retransmit(cx),
                Machine::InviteClient(_) | Machine::NonInviteClient(_) => {}
            });
            return RequestEvent::Retransmission { key };
        }
        let rfc2543 = key.is_rfc2543();
        let invite = *key.method() == Method::Invite;
        self.create(key.clone().into(), from, now, |cx| {
            if invite {
                Machine::InviteServer(ServerInvite::start(cx, &msg, rfc2543))
            } else {
                Machine::NonInviteServer(ServerNonInvite::new())
            }
        });
        if *key.method() == Method::Cancel {
            let target = key.with_method(Method::Invite);
            let invite = self.table.server(&target).map(|_| target);
            return RequestEvent::Cancel { key, invite, msg, from };
        }
        RequestEvent::New { key, msg, from }
    }

    fn on_ack(&mut self, key: ServerKey, msg: Message, from: Peer, now: Instant) -> RequestEvent {
        let Some((key, id)) = self.find_ack_target(key, &msg) else {
            return RequestEvent::Ack { invite: None, msg, from };
        };
        let step = self.drive(id, now, |m, cx| match m {
            Machine::InviteServer(t) => t.on_ack(cx),
            _ => AckStep::ToTu,
        });
        match step {
            Some(AckStep::Absorbed { done }) => {
                if done {
                    self.terminate(id);
                }
                RequestEvent::AckAbsorbed { key }
            }
            _ => RequestEvent::Ack { invite: Some(key), msg, from },
        }
    }

    /// §17.2.3. RFC 3261 ACKs share the INVITE's key. RFC 2543 ones carry
    /// the To tag of the response: the INVITE had either that tag (a
    /// re-INVITE) or none, and the tag must be the one the final response had.
    fn find_ack_target(&self, key: ServerKey, msg: &Message) -> Option<(ServerKey, TxnId)> {
        if !key.is_rfc2543() {
            return self.table.server(&key).map(|id| (key, id));
        }
        let ack_tag = msg.to().ok().and_then(|t| t.tag().cloned());
        let untagged = key.with_to_tag(None);
        [key, untagged].into_iter().find_map(|k| {
            let id = self.table.server(&k)?;
            let Machine::InviteServer(t) = &self.table.get(id)?.machine else {
                return None;
            };
            match t.final_to_tag() {
                Some(tag) if Some(tag) != ack_tag.as_ref() => None,
                _ => Some((k, id)),
            }
        })
    }

    /// A response arrived from the network.
    pub fn on_response(&mut self, msg: Message, from: Peer, now: Instant) -> ResponseEvent {
        let (key, code) = match (ClientKey::of_response(&msg), msg.status()) {
            (Ok(k), Some(c)) => (k, c),
            (Err(error), _) => return ResponseEvent::Invalid { error, msg, from },
            (_, None) => {
                return ResponseEvent::Invalid { error: sip_msg::Error::bad("not a response"), msg, from };
            }
        };
        let Some(id) = self.table.client(&key) else {
            return ResponseEvent::Stray { msg, from };
        };
        let step = self.drive(id, now, |m, cx| match m {
            Machine::InviteClient(t) => t.on_response(cx, &msg, code),
            Machine::NonInviteClient(t) => {
                let s = t.on_response(cx, code);
                crate::client_invite::Step { to_tu: s.to_tu, done: s.done, send_cancel: false }
            }
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => Default::default(),
        });
        let step = step.unwrap_or_default();
        if step.send_cancel {
            self.start_cancel(id, now);
        }
        if step.done {
            self.terminate(id);
        }
        if step.to_tu { ResponseEvent::Response { key, msg, from } } else { ResponseEvent::Absorbed { key } }
    }

    /// The TU answers server transaction `key` (any status 100-699).
    pub fn respond(&mut self, key: &ServerKey, msg: Message, now: Instant) -> Result<(), TxnError> {
        let code = msg.status().ok_or(TxnError::WrongKind)?;
        let id = self.table.server(key).ok_or(TxnError::NoSuchTransaction)?;
        let done = self
            .drive(id, now, |m, cx| match m {
                Machine::InviteServer(t) => t.respond(cx, &msg, code),
                Machine::NonInviteServer(t) => t.respond(cx, &msg, code),
                Machine::InviteClient(_) | Machine::NonInviteClient(_) => Err(TxnError::NoSuchTransaction),
            })
            .ok_or(TxnError::NoSuchTransaction)??;
        if done {
            self.terminate(id);
        }
        Ok(())
    }

    /// The TU starts a client transaction toward `to`. The request must
    /// carry its top Via with a branch (see [`crate::new_branch`]), and
    /// From, To, Call-ID and CSeq for an INVITE (needed for ACK and CANCEL).
    pub fn send_request(&mut self, msg: Message, to: Peer, now: Instant) -> Result<ClientKey, TxnError> {
        match msg.method() {
            None => return Err(TxnError::WrongKind),
            Some(Method::Ack) => return Err(TxnError::AckIsNotATransaction),
            Some(_) => {}
        }
        let key = ClientKey::of_request(&msg)?;
        if self.table.client(&key).is_some() {
            return Err(TxnError::Exists);
        }
        let template = match key.method() {
            Method::Invite => Some(RequestTemplate::of(&msg)?),
            _ => {
                msg.cseq()?;
                None
            }
        };
        let data = msg.to_bytes();
        self.create(key.clone().into(), to, now, |cx| match template {
            Some(t) => Machine::InviteClient(ClientInvite::start(cx, data, t)),
            None => Machine::NonInviteClient(ClientNonInvite::start(cx, data)),
        });
        Ok(key)
    }

    /// Cancels INVITE client transaction `key` (§9.1). The CANCEL goes out
    /// now if a provisional response has arrived, else as soon as one does.
    /// Returns the key of the CANCEL client transaction, on which its
    /// response (or timeout) will arrive. It never starts if the INVITE gets
    /// a final response first.
    pub fn cancel(&mut self, key: &ClientKey, now: Instant) -> Result<ClientKey, TxnError> {
        let id = self.table.client(key).ok_or(TxnError::NoSuchTransaction)?;
        let decision = match &mut self.table.get_mut(id).ok_or(TxnError::NoSuchTransaction)?.machine {
            Machine::InviteClient(t) => t.cancel()?,
            _ => return Err(TxnError::InvalidState("only an INVITE can be cancelled")),
        };
        if decision == CancelNow::Send {
            self.start_cancel(id, now);
        }
        Ok(ClientKey::new(key.branch().clone(), Method::Cancel))
    }

    fn start_cancel(&mut self, invite: TxnId, now: Instant) {
        let Some(txn) = self.table.get(invite) else {
            return;
        };
        let (TxnKey::Client(ik), Machine::InviteClient(t)) = (&txn.key, &txn.machine) else {
            return;
        };
        let key = ClientKey::new(ik.branch().clone(), Method::Cancel);
        if self.table.client(&key).is_some() {
            return;
        }
        let data = t.template().cancel().to_bytes();
        let peer = txn.peer;
        self.create(key.into(), peer, now, |cx| Machine::NonInviteClient(ClientNonInvite::start(cx, data)));
    }

    /// Queues a message outside any transaction: the ACK for a 2xx, a stray
    /// 2xx a proxy forwards, a stateless 400.
    pub fn send_stateless(&mut self, msg: &Message, to: Peer) {
        self.transmits.push_back(Transmit { to, data: msg.to_bytes(), txn: None });
    }

    /// The transport could not send for transaction `key` (§17.1.4,
    /// §17.2.4): the TU is told and the transaction destroyed. Returns
    /// whether the transaction existed.
    pub fn on_transport_error(&mut self, key: &TxnKey, _now: Instant) -> bool {
        let Some(id) = self.table.find(key) else {
            return false;
        };
        self.events.push_back(TxnEvent::TransportError { key: key.clone() });
        self.terminate(id);
        true
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxnEvent> {
        self.events.pop_front()
    }

    /// The earliest timer deadline. It may be that of a cancelled timer (an
    /// early wake-up, nothing more); call [`TxnLayer::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`. Cost: O(log n) per due or stale entry.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(e) = self.timers.pop_due(now) {
            self.timer_pops += 1;
            let Some(txn) = self.table.get_mut(e.id) else {
                continue;
            };
            if !txn.armed.is_current(&e) {
                continue;
            }
            self.timers.fired(&mut txn.armed, &e);
            self.timers_fired += 1;
            let fired = self.drive(e.id, now, |m, cx| match m {
                Machine::InviteClient(t) => t.on_timer(cx, e.kind),
                Machine::NonInviteClient(t) => t.on_timer(cx, e.kind),
                Machine::InviteServer(t) => t.on_timer(cx, e.kind),
                Machine::NonInviteServer(t) => t.on_timer(e.kind),
            });
            let event = match (fired, self.table.get(e.id).map(|t| &t.key)) {
                (Some(Fired::Timeout), Some(TxnKey::Client(k))) => Some(TxnEvent::Timeout { key: k.clone() }),
                (Some(Fired::AckTimeout), Some(TxnKey::Server(k))) => Some(TxnEvent::AckTimeout { key: k.clone() }),
                _ => None,
            };
            self.events.extend(event);
            if matches!(fired, Some(Fired::Terminate | Fired::Timeout | Fired::AckTimeout)) {
                self.terminate(e.id);
            }
        }
        let (table, timers) = (&self.table, &mut self.timers);
        let live = |e: &Entry| table.get(e.id).is_some_and(|t| t.armed.is_current(e));
        let before = timers.entries();
        timers.drop_stale_top(live);
        timers.maybe_compact(live);
        self.timer_pops += (before - timers.entries()) as u64;
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    pub fn client_state(&self, key: &ClientKey) -> Option<TxnState> {
        match &self.table.get(self.table.client(key)?)?.machine {
            Machine::InviteClient(t) => Some(t.state()),
            Machine::NonInviteClient(t) => Some(t.state()),
            _ => None,
        }
    }

    pub fn server_state(&self, key: &ServerKey) -> Option<TxnState> {
        match &self.table.get(self.table.server(key)?)?.machine {
            Machine::InviteServer(t) => Some(t.state()),
            Machine::NonInviteServer(t) => Some(t.state()),
            _ => None,
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            transactions: self.table.len(),
            timers_armed: self.timers.live(),
            timer_entries: self.timers.entries(),
            timers_fired: self.timers_fired,
            timer_pops: self.timer_pops,
        }
    }

    /// Builds a transaction's machine with a context, then stores it.
    fn create(&mut self, key: TxnKey, peer: Peer, now: Instant, build: impl FnOnce(&mut Ctx) -> Machine) -> TxnId {
        let id = self.table.reserve();
        let mut armed = Armed::default();
        let machine = build(&mut Ctx {
            cfg: &self.cfg,
            now,
            id,
            key: &key,
            peer: &peer,
            armed: &mut armed,
            timers: &mut self.timers,
            out: &mut self.transmits,
        });
        self.table.insert(id, Txn { key, peer, armed, machine });
        id
    }

    /// Runs `f` on transaction `id`'s machine with its context.
    fn drive<R>(&mut self, id: TxnId, now: Instant, f: impl FnOnce(&mut Machine, &mut Ctx) -> R) -> Option<R> {
        let Txn { key, peer, armed, machine } = self.table.get_mut(id)?;
        let mut cx =
            Ctx { cfg: &self.cfg, now, id, key, peer, armed, timers: &mut self.timers, out: &mut self.transmits };
        Some(f(machine, &mut cx))
    }

    /// Destroys a transaction and reports it.
    fn terminate(&mut self, id: TxnId) {
        if let Some(mut txn) = self.table.remove(id) {
            self.timers.disarm_all(&mut txn.armed);
            self.events.push_back(TxnEvent::Terminated { key: txn.key });
        }
    }
}
