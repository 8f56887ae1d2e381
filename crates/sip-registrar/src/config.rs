//! Registrar settings (the `[registrar]` section of the server config maps onto this).

/// What to do when a REGISTER would exceed the maximum bindings of an AoR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxContactsPolicy {
    /// Refuse the REGISTER with 403 "Too Many Contacts" (nothing changes).
    Reject,
    /// Accept it and drop the bindings that expire soonest to make room.
    ReplaceOldest,
}

#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Domains served (lower case). A REGISTER for another domain gets 403.
    pub domains: Vec<String>,
    /// Expiry when the REGISTER gives none, seconds.
    pub default_expires: u32,
    /// Shortest accepted expiry (423 + Min-Expires below it), seconds.
    pub min_expires: u32,
    /// Longest granted expiry (longer requests are shortened), seconds.
    pub max_expires: u32,
    /// Most bindings per AoR (0 = unlimited).
    pub max_contacts: usize,
    pub max_contacts_policy: MaxContactsPolicy,
    /// How long a removed binding is remembered (Call-ID, CSeq) so that a
    /// delayed, older REGISTER cannot bring it back, seconds.
    pub tombstone_secs: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            domains: vec!["localhost".into()],
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 10,
            max_contacts_policy: MaxContactsPolicy::Reject,
            tombstone_secs: 300,
        }
    }
}

impl RegistrarConfig {
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}
