//! The decision on one request's `Proxy-Authorization` fields, against the
//! configured users and the worker's memory of earlier successes.

use std::fmt;
use std::rc::Rc;

use crate::cache::VerifiedCache;
use crate::config::Config;
use crate::credentials::{self, CredentialError, Credentials};
use crate::users::Check;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

/// Why a request is refused a 407.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    Missing,
    /// More than one Proxy-Authorization field: which one a next hop would
    /// read is anybody's guess, so none is trusted.
    Duplicate,
    Malformed(CredentialError),
    UnknownUser,
    WrongPassword,
}

impl Denial {
    /// The counter suffix, `proxy_auth.denied.<this>`.
    pub fn counter(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Duplicate => "duplicate",
            Self::Malformed(_) => "malformed",
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no Proxy-Authorization"),
            Self::Duplicate => f.write_str("more than one Proxy-Authorization"),
            Self::Malformed(e) => write!(f, "malformed Proxy-Authorization: {e}"),
            Self::UnknownUser => f.write_str("unknown user"),
            Self::WrongPassword => f.write_str("wrong password"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow {
        user: String,
        cached: bool,
    },
    Deny {
        reason: Denial,
        /// The user name the client sent, printable, for the log.
        user: Option<String>,
    },
    /// No local user matches and an external service is configured: it decides.
    AskExternal(Credentials),
}

/// One worker's authenticator: the configuration and the cache of successes.
#[derive(Debug)]
pub struct Authenticator {
    config: Rc<Config>,
    verified: VerifiedCache<u128, usize>,
    secret: Option<[u8; 16]>,
}

impl Authenticator {
    /// `secret` is 16 random bytes, this worker's own. With it, a success is
    /// remembered under a keyed SipHash of the raw field value, so that a
    /// repeated credential costs neither base64 nor SHA-256 (a few microseconds
    /// per request in V8); without it (no randomness), under its SHA-256
    /// digest. Either way the cache holds a digest, never the credential, and
    /// the SipHash key is unknown outside the VM, so nobody can aim a
    /// different credential at a remembered one.
    pub fn new(config: Rc<Config>, secret: Option<[u8; 16]>) -> Self {
        let verified = VerifiedCache::new(
            config.cache.ttl_seconds.saturating_mul(1000),
            config.cache.max_entries,
        );
        Self {
            config,
            verified,
            secret,
        }
    }

    fn fast_key(&self, value: &[u8]) -> Option<u128> {
        let secret = self.secret?;
        let mut hasher = SipHasher13::new_with_key(&secret);
        hasher.write(value);
        Some(hasher.finish128().as_u128())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decides on the values of every `Proxy-Authorization` field of a request.
    pub fn decide(&mut self, fields: &[&[u8]], now_ms: u64) -> Decision {
        let value = match fields {
            [] => return deny(Denial::Missing, None),
            [one] => one,
            _ => return deny(Denial::Duplicate, None),
        };
        // Only local successes are remembered here: with no local users there
        // is nothing to look up, and the key would be computed for nothing.
        let fast_key = match self.config.users {
            Some(_) => self.fast_key(value),
            None => None,
        };
        if let (Some(key), Some(users)) = (fast_key, &self.config.users) {
            if let Some(index) = self.verified.get(&key, now_ms) {
                return Decision::Allow {
                    user: users.name(index).to_owned(),
                    cached: true,
                };
            }
        }
        let credentials = match credentials::parse(value) {
            Ok(c) => c,
            Err(e) => return deny(Denial::Malformed(e), None),
        };
        let Some(users) = &self.config.users else {
            return Decision::AskExternal(credentials);
        };
        // With a service behind, a user unknown here is the service's to judge:
        // checking the decoy hash would cost a full hash for nothing, since the
        // call to the service is what the client waits for.
        let external = self.config.external.is_some();
        if external && !users.contains(credentials.user()) {
            return Decision::AskExternal(credentials);
        }
        let key = match fast_key {
            Some(key) => key,
            None => {
                let digest = credentials.digest();
                let mut head = [0u8; 16];
                head.copy_from_slice(&digest[..16]);
                let key = u128::from_le_bytes(head);
                if let Some(index) = self.verified.get(&key, now_ms) {
                    return Decision::Allow {
                        user: users.name(index).to_owned(),
                        cached: true,
                    };
                }
                key
            }
        };
        match users.check(credentials.user(), credentials.password()) {
            Check::Valid(index) => {
                self.verified.insert(key, index, now_ms);
                Decision::Allow {
                    user: users.name(index).to_owned(),
                    cached: false,
                }
            }
            // Only a credential a local hash accepts is decided here; any other is
            // the service's, which may know the same name with another password.
            Check::UnknownUser | Check::WrongPassword if external => {
                Decision::AskExternal(credentials)
            }
            Check::UnknownUser => deny(Denial::UnknownUser, Some(&credentials)),
            Check::WrongPassword => deny(Denial::WrongPassword, Some(&credentials)),
        }
    }
}

fn deny(reason: Denial, credentials: Option<&Credentials>) -> Decision {
    Decision::Deny {
        reason,
        user: credentials.map(|c| printable(c.user())),
    }
}

/// A user name as it may appear in a log line, between quotes: control
/// characters, quotes and backslashes escaped, bytes that are not UTF-8 as
/// `\xNN`, and cut short, so a client can neither forge log lines nor flood
/// them.
pub fn printable(name: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = &name[..name.len().min(MAX)];
    let mut out = String::with_capacity(cut.len() + 8);
    for chunk in cut.utf8_chunks() {
        out.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    if name.len() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use base64::Engine as _;

    fn basic(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    fn authenticator_with(extra: &str, secret: Option<[u8; 16]>) -> Authenticator {
        let json = format!(r#"{{"users": "alice:{{PLAIN}}wonder:land\nbob:{{PLAIN}}b"{extra}}}"#);
        Authenticator::new(
            Rc::new(Config::parse(json.as_bytes(), |_| None).unwrap()),
            secret,
        )
    }

    fn authenticator(extra: &str) -> Authenticator {
        authenticator_with(extra, Some([7; 16]))
    }

    /// Both ways of keying the cache: SipHash of the raw value, SHA-256.
    fn both(extra: &str) -> [Authenticator; 2] {
        [
            authenticator_with(extra, Some([7; 16])),
            authenticator_with(extra, None),
        ]
    }

    fn decide(auth: &mut Authenticator, fields: &[&[u8]], now: u64) -> Decision {
        auth.decide(fields, now)
    }

    #[test]
    fn each_denial_has_its_reason() {
        let mut auth = authenticator("");
        let right = basic("alice:wonder:land");
        let table: &[(&[&[u8]], Denial)] = &[
            (&[], Denial::Missing),
            (&[&right, &right], Denial::Duplicate),
            (&[&right, b"Basic x"], Denial::Duplicate),
            (
                &[b"Bearer abc"],
                Denial::Malformed(CredentialError::NotBasic),
            ),
            (&[&basic("mallory:wonder:land")], Denial::UnknownUser),
            (&[&basic("alice:wonder")], Denial::WrongPassword),
        ];
        for (fields, want) in table {
            match decide(&mut auth, fields, 0) {
                Decision::Deny { reason, .. } => assert_eq!(reason, *want),
                other => panic!("{want:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn success_is_remembered_and_a_wrong_password_still_fails() {
        for mut auth in both("") {
            success_is_remembered_by(&mut auth);
        }
    }

    fn success_is_remembered_by(auth: &mut Authenticator) {
        let right = basic("alice:wonder:land");
        let allow = |cached| Decision::Allow {
            user: "alice".into(),
            cached,
        };
        assert_eq!(decide(auth, &[&right], 0), allow(false));
        assert_eq!(decide(auth, &[&right], 1), allow(true));
        assert!(matches!(
            decide(auth, &[&basic("alice:wonder:lan")], 2),
            Decision::Deny {
                reason: Denial::WrongPassword,
                ..
            }
        ));
        assert_eq!(decide(auth, &[&right], 3), allow(true));
        // Default lifetime: 300 s.
        assert_eq!(decide(auth, &[&right], 300_003), allow(false));
    }

    #[test]
    fn cache_can_be_turned_off() {
        for auth in both(r#", "cache": {"ttl_seconds": 0}"#) {
            remembers_nothing(auth);
        }
    }

    fn remembers_nothing(mut auth: Authenticator) {
        let right = basic("bob:b");
        for now in 0..3 {
            assert_eq!(
                decide(&mut auth, &[&right], now),
                Decision::Allow {
                    user: "bob".into(),
                    cached: false
                }
            );
        }
    }

    #[test]
    fn unknown_user_goes_to_the_external_service_when_there_is_one() {
        let mut auth = authenticator(r#", "external": {"cluster": "auth"}"#);
        assert!(matches!(
            decide(&mut auth, &[&basic("carol:x")], 0),
            Decision::AskExternal(_)
        ));
        // Nor is a wrong password of a local user decided here: the service may
        // know bob with another one.
        assert!(matches!(
            decide(&mut auth, &[&basic("bob:x")], 0),
            Decision::AskExternal(_)
        ));
        // A right one is.
        assert!(matches!(
            decide(&mut auth, &[&basic("bob:b")], 0),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn printable_escapes_and_truncates() {
        let table: &[(&[u8], &str)] = &[
            (b"alice", "alice"),
            ("jürgen".as_bytes(), "jürgen"),
            (b"a\nb", "a\\nb"),
            (b"de\"mo\\", "de\\\"mo\\\\"),
            (b"\xff\xfeok", "\\xff\\xfeok"),
        ];
        for (name, want) in table {
            assert_eq!(printable(name), *want);
        }
        assert!(printable(&[b'x'; 500]).chars().count() < 70);
    }

    #[test]
    fn another_spelling_of_a_remembered_credential_is_checked_again_and_holds() {
        // The fast key is of the raw value: "basic" and "Basic" are two keys,
        // both right; a changed character is a miss that is then refused.
        let mut auth = authenticator("");
        let right = basic("bob:b");
        let lower = [b"basic".as_slice(), &right[5..]].concat();
        assert_eq!(
            decide(&mut auth, &[&right], 0),
            Decision::Allow {
                user: "bob".into(),
                cached: false
            }
        );
        assert_eq!(
            decide(&mut auth, &[&lower], 0),
            Decision::Allow {
                user: "bob".into(),
                cached: false
            }
        );
        assert_eq!(
            decide(&mut auth, &[&lower], 0),
            Decision::Allow {
                user: "bob".into(),
                cached: true
            }
        );
        let mut flipped = right.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(matches!(
            decide(&mut auth, &[&flipped], 0),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn unknown_user_with_a_service_costs_no_local_hash() {
        // Regression: each such request once paid a decoy bcrypt check before
        // the call to the service, about 90 ms of the worker at cost 10.
        let mut auth = authenticator(r#", "external": {"cluster": "auth"}"#);
        for _ in 0..3 {
            assert!(matches!(
                decide(&mut auth, &[&basic("carol:x")], 0),
                Decision::AskExternal(_)
            ));
        }
        let config = Rc::clone(&auth.config);
        let users = config.users.as_ref().unwrap();
        assert_eq!(users.verifications.get(), 0);
        decide(&mut auth, &[&basic("bob:b")], 0);
        assert_eq!(users.verifications.get(), 1);
    }
}
