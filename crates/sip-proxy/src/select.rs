//! Choosing the final response sent upstream once every branch is done
//! (RFC 3261 §16.7 step 6), merging the challenges of 401/407 responses
//! into the chosen one (step 7), and the RFC 4320 rule that a non-INVITE
//! request is never answered 408.
//!
//! The candidates are the final non-2xx responses of the branches, in the
//! order they ended: received ones (with their message) and synthetic ones
//! (no message): 408 for a timeout, 503 for a transport error, and the
//! context's own 480 (hold slots released) and 487 (upstream CANCEL).
//!
//! Choice: any 6xx wins; otherwise the lowest class. Within the class a
//! received response beats a synthetic one; among received ones 407, 401,
//! 415, 420, 484 come first (they let the caller resubmit), then the rest,
//! then 503 and 408 (the least informative); among synthetic ones 487,
//! 480, 503, 408. Ties go to the earliest. A chosen 503 becomes a 500.

use crate::action::Action;
use sip_msg::{HeaderName, Message};

/// A final non-2xx outcome of a branch, or one the context adds itself.
#[derive(Debug)]
pub(crate) struct Final {
    pub code: u16,
    /// `None` for a synthetic outcome.
    pub msg: Option<Message>,
}

impl Final {
    pub fn received(code: u16, msg: Message) -> Final {
        Final { code, msg: Some(msg) }
    }
    pub fn synthetic(code: u16) -> Final {
        Final { code, msg: None }
    }
    fn rank(&self) -> (bool, u8) {
        let r = match (&self.msg, self.code) {
            (Some(_), 407) => 0,
            (Some(_), 401) => 1,
            (Some(_), 415) => 2,
            (Some(_), 420) => 3,
            (Some(_), 484) => 4,
            (Some(_), 503) => 6,
            (Some(_), 408) => 7,
            (Some(_), _) => 5,
            (None, 487) => 0,
            (None, 480) => 1,
            (None, 503) => 2,
            (None, _) => 3,
        };
        (self.msg.is_none(), r)
    }
}

/// The index of the best candidate; `None` if there is none that may be
/// sent (none at all, or a non-INVITE with only 408s).
pub(crate) fn choose(finals: &[Final], invite: bool) -> Option<usize> {
    let eligible = |f: &Final| invite || f.code != 408;
    let class = finals.iter().filter(|f| eligible(f)).map(|f| f.code / 100);
    let class = if class.clone().any(|c| c == 6) { 6 } else { class.min()? };
    finals
        .iter()
        .enumerate()
        .filter(|(_, f)| eligible(f) && f.code / 100 == class)
        .min_by_key(|(i, f)| (f.rank(), *i))
        .map(|(i, _)| i)
}

/// The action that concludes a context whose candidates are `finals`, and
/// the status it sends. `None`: send nothing (non-INVITE, RFC 4320 §4.2).
/// An INVITE with no candidate at all is answered 408 (§16.7 step 6).
pub(crate) fn conclude(mut finals: Vec<Final>, invite: bool) -> Option<(u16, Action)> {
    let Some(i) = choose(&finals, invite) else {
        return invite.then_some((408, Action::Respond { code: 408, reason: None }));
    };
    let chosen = finals.swap_remove(i);
    match chosen {
        Final { code: 503, .. } => Some((500, Action::Respond { code: 500, reason: None })),
        Final { code, msg: None } => Some((code, Action::Respond { code, reason: None })),
        Final { code, msg: Some(mut response) } => {
            if code == 401 || code == 407 {
                let others = finals.iter().filter(|f| f.code == 401 || f.code == 407).filter_map(|f| f.msg.as_ref());
                aggregate_challenges(&mut response, others);
            }
            Some((code, Action::Forward { response: Box::new(response) }))
        }
    }
}

/// Adds every WWW-Authenticate and Proxy-Authenticate value of `others` to
/// `into`, unmodified, after its own challenges (or at the end); a value
/// `into` already carries under the same name is not repeated.
pub(crate) fn aggregate_challenges<'a>(into: &mut Message, others: impl Iterator<Item = &'a Message>) {
    let is_challenge = |n: &HeaderName| matches!(n, HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate);
    let mut at = into.headers.0.iter().rposition(|h| is_challenge(&h.name)).map_or(into.headers.len(), |p| p + 1);
    for other in others {
        for h in other.headers.iter().filter(|h| is_challenge(&h.name)) {
            if into.headers.iter().any(|x| x.name == h.name && x.value == h.value) {
                continue;
            }
            into.headers.0.insert(at, h.clone());
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(cs: &[(u16, bool)]) -> Vec<Final> {
        cs.iter()
            .map(|&(code, real)| {
                if real {
                    let start = sip_msg::StartLine::Response { code, reason: Default::default() };
                    Final::received(code, Message { start, headers: Default::default(), body: Default::default() })
                } else {
                    Final::synthetic(code)
                }
            })
            .collect()
    }

    #[test]
    fn six_wins_then_lowest_class() {
        assert_eq!(choose(&codes(&[(302, true), (603, true), (404, true)]), true), Some(1));
        assert_eq!(choose(&codes(&[(500, true), (486, true), (302, true)]), true), Some(2));
    }

    #[test]
    fn preferences_within_class() {
        assert_eq!(choose(&codes(&[(486, true), (401, true), (407, true)]), true), Some(2));
        assert_eq!(choose(&codes(&[(408, false), (486, true)]), true), Some(1));
        assert_eq!(choose(&codes(&[(408, true), (404, true)]), true), Some(1));
        assert_eq!(choose(&codes(&[(503, true), (500, true)]), true), Some(1));
        assert_eq!(choose(&codes(&[(408, false), (480, false), (487, false)]), true), Some(2));
    }

    #[test]
    fn non_invite_never_408() {
        assert_eq!(choose(&codes(&[(408, false), (408, true)]), false), None);
        assert_eq!(choose(&codes(&[(408, false), (503, false)]), false), Some(1));
        assert!(conclude(codes(&[(408, false)]), false).is_none());
        assert_eq!(conclude(Vec::new(), true).map(|c| c.0), Some(408));
    }
}
