//! The decision on one request's `Proxy-Authorization` fields, against the
//! configured users and the worker's memory of earlier successes.

use std::fmt;
use std::rc::Rc;

use crate::cache::VerifiedCache;
use crate::config::Config;
use crate::credentials::{self, CredentialError, Credentials};
use crate::users::Check;

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
    verified: VerifiedCache<usize>,
}

impl Authenticator {
    pub fn new(config: Rc<Config>) -> Self {
        let verified = VerifiedCache::new(
            config.cache.ttl_seconds.saturating_mul(1000),
            config.cache.max_entries,
        );
        Self { config, verified }
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
        if self.config.external.is_some() && !users.contains(credentials.user()) {
            return Decision::AskExternal(credentials);
        }
        let key = credentials.digest();
        if let Some(index) = self.verified.get(&key, now_ms) {
            return Decision::Allow {
                user: users.name(index).to_owned(),
                cached: true,
            };
        }
        match users.check(credentials.user(), credentials.password()) {
            Check::Valid(index) => {
                self.verified.insert(key, index, now_ms);
                Decision::Allow {
                    user: users.name(index).to_owned(),
                    cached: false,
                }
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

    fn authenticator(extra: &str) -> Authenticator {
        let json = format!(r#"{{"users": "alice:{{PLAIN}}wonder:land\nbob:{{PLAIN}}b"{extra}}}"#);
        Authenticator::new(Rc::new(Config::parse(json.as_bytes(), |_| None).unwrap()))
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
        let mut auth = authenticator("");
        let right = basic("alice:wonder:land");
        let allow = |cached| Decision::Allow {
            user: "alice".into(),
            cached,
        };
        assert_eq!(decide(&mut auth, &[&right], 0), allow(false));
        assert_eq!(decide(&mut auth, &[&right], 1), allow(true));
        assert!(matches!(
            decide(&mut auth, &[&basic("alice:wonder:lan")], 2),
            Decision::Deny {
                reason: Denial::WrongPassword,
                ..
            }
        ));
        assert_eq!(decide(&mut auth, &[&right], 3), allow(true));
        // Default lifetime: 300 s.
        assert_eq!(decide(&mut auth, &[&right], 300_003), allow(false));
    }

    #[test]
    fn cache_can_be_turned_off() {
        let mut auth = authenticator(r#", "cache": {"ttl_seconds": 0}"#);
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
        // A wrong password of a local user does not.
        assert!(matches!(
            decide(&mut auth, &[&basic("bob:x")], 0),
            Decision::Deny {
                reason: Denial::WrongPassword,
                ..
            }
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
