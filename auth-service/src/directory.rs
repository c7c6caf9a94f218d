//! The users this service knows and, optionally, the destinations each may reach: the part of
//! an external auth service that the built-in htpasswd mode cannot do (per-destination rules).
//! Passwords are plain text because this is a demo and test service, not a credential store.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

/// The outcome of checking a well-formed credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Unknown user or wrong password: the client should try other credentials.
    BadCredentials,
    /// Good credentials, but this user may not reach the forwarded host.
    HostNotAllowed,
}

#[derive(Debug, Default)]
pub struct Directory {
    passwords: HashMap<String, String>,
    /// Users listed here may reach only these authorities; others may reach any.
    allowed_hosts: HashMap<String, Vec<String>>,
}

impl Directory {
    /// Adds a user; returns false if the name was already taken.
    pub fn add_user(&mut self, name: &str, password: &str) -> bool {
        if self.passwords.contains_key(name) {
            return false;
        }
        self.passwords
            .insert(name.to_string(), password.to_string());
        true
    }

    pub fn has_user(&self, name: &str) -> bool {
        self.passwords.contains_key(name)
    }

    pub fn user_count(&self) -> usize {
        self.passwords.len()
    }

    /// Restricts `name` to the hosts given so far plus `host`.
    pub fn allow_host(&mut self, name: &str, host: &str) {
        self.allowed_hosts
            .entry(name.to_string())
            .or_default()
            .push(host.to_string());
    }

    /// Checks a credential against the users and the destination's rules.
    pub fn check(&self, user: &str, password: &str, forwarded_host: Option<&str>) -> Verdict {
        match self.passwords.get(user) {
            // Constant time, even here: a demo is what people copy from.
            Some(known) if bool::from(known.as_bytes().ct_eq(password.as_bytes())) => {}
            _ => return Verdict::BadCredentials,
        }
        match self.allowed_hosts.get(user) {
            None => Verdict::Allow,
            Some(rules) => match forwarded_host {
                Some(host) if rules.iter().any(|rule| host_matches(rule, host)) => Verdict::Allow,
                _ => Verdict::HostNotAllowed,
            },
        }
    }
}

/// A rule with a port must match the authority exactly; a rule without one matches the host
/// on any port, so `example.com` also covers `CONNECT example.com:443`. Hosts compare
/// case-insensitively (RFC 3986 s3.2.2).
fn host_matches(rule: &str, authority: &str) -> bool {
    let (rule_host, rule_port) = split_port(rule);
    let (host, port) = split_port(authority);
    rule_host.eq_ignore_ascii_case(host) && (rule_port.is_none() || rule_port == port)
}

/// Splits `host[:port]`, keeping a bracketed IPv6 literal whole (RFC 3986 s3.2.2).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |i| i + 1)
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    match rest.strip_prefix(':') {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn directory() -> Directory {
        let mut d = Directory::default();
        assert!(d.add_user("alice", "secret"));
        assert!(d.add_user("bob", "hunter2"));
        d.allow_host("bob", "example.com");
        d.allow_host("bob", "internal.test:8080");
        d.allow_host("bob", "[::1]");
        d
    }

    #[test]
    fn a_name_cannot_be_added_twice() {
        let mut d = directory();
        assert!(!d.add_user("alice", "other"));
        assert_eq!(d.check("alice", "secret", None), Verdict::Allow);
    }

    #[test]
    fn passwords_decide_before_hosts() {
        let d = directory();
        let cases = [
            ("alice", "secret", None, Verdict::Allow),
            ("alice", "Secret", None, Verdict::BadCredentials),
            ("alice", "", None, Verdict::BadCredentials),
            ("carol", "secret", None, Verdict::BadCredentials),
            (
                "bob",
                "wrong",
                Some("elsewhere.test"),
                Verdict::BadCredentials,
            ),
            (
                "bob",
                "hunter2",
                Some("elsewhere.test"),
                Verdict::HostNotAllowed,
            ),
            ("bob", "hunter2", None, Verdict::HostNotAllowed),
            ("bob", "hunter2", Some("example.com"), Verdict::Allow),
        ];
        for (user, password, host, expected) in cases {
            assert_eq!(d.check(user, password, host), expected, "{user} {host:?}");
        }
    }

    #[test]
    fn host_rules_match_ports_only_when_they_name_one() {
        let d = directory();
        let cases = [
            ("example.com", true),
            ("EXAMPLE.com", true),
            ("example.com:443", true),
            ("example.com.evil.test", false),
            ("sub.example.com", false),
            ("internal.test:8080", true),
            ("internal.test", false),
            ("internal.test:9090", false),
            ("[::1]", true),
            ("[::1]:3128", true),
            ("[::2]:3128", false),
        ];
        for (host, allowed) in cases {
            let expected = if allowed {
                Verdict::Allow
            } else {
                Verdict::HostNotAllowed
            };
            assert_eq!(d.check("bob", "hunter2", Some(host)), expected, "{host}");
        }
    }
}
