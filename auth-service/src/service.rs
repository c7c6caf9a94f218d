//! What the service answers to each request: the auth decision on any path, and the control
//! paths `/_calls` and `/_reset` that let a test see how often the filter called out (to check
//! caching and fail-open/fail-closed paths). No sockets here, so routing is unit-tested.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::behaviour::Behaviour;
use crate::credentials::{self, Credential};
use crate::directory::{Directory, Verdict};
use crate::http::{Request, Response};
use crate::log;

/// Groups reported for every allowed user; fixed so tests and demos can assert on them.
const GROUPS: &str = "users";

/// What the connection should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Wait `delay` (usually zero), then send the response.
    Respond { delay: Duration, response: Response },
    /// Write raw bytes, then close the connection without an HTTP response.
    WriteAndClose(&'static [u8]),
    /// Close without writing anything.
    Close,
    /// Write nothing until the client leaves (bounded by `behaviour::MAX_DELAY`).
    Hang,
}

impl Action {
    fn respond(response: Response) -> Self {
        Action::Respond {
            delay: Duration::ZERO,
            response,
        }
    }
}

/// Bytes that no HTTP/1.x client can parse as a status line.
const GARBAGE: &[u8] = b"\x00\x01\x02 this is not an HTTP response \xff\xfe\r\n\r\n";

pub struct Service {
    realm: String,
    directory: Directory,
    counters: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: u64,
    per_user: HashMap<String, u64>,
}

impl Service {
    pub fn new(realm: String, directory: Directory) -> Self {
        Service {
            realm,
            directory,
            counters: Mutex::new(Counts::default()),
        }
    }

    pub fn handle(&self, request: &Request) -> Action {
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((&request.target, ""));
        match path {
            "/_calls" => self.calls(request, query),
            "/_reset" => self.reset(request),
            _ => self.authenticate(request),
        }
    }

    /// `GET /_calls` answers the total count, `GET /_calls?user=NAME` one user's.
    fn calls(&self, request: &Request, query: &str) -> Action {
        if request.method != "GET" {
            return Action::respond(
                Response::text(405, "use GET\n").with_header("allow", "GET".into()),
            );
        }
        let user = query.split('&').find_map(|pair| pair.strip_prefix("user="));
        let count = match user {
            None => self.counts().total,
            Some(encoded) => match percent_decode(encoded) {
                Some(name) => self.counts().per_user.get(&name).copied().unwrap_or(0),
                None => return Action::respond(Response::text(400, "bad percent-encoding\n")),
            },
        };
        Action::respond(Response::text(200, &format!("{count}\n")))
    }

    /// `POST /_reset` zeroes every count.
    fn reset(&self, request: &Request) -> Action {
        if request.method != "POST" {
            return Action::respond(
                Response::text(405, "use POST\n").with_header("allow", "POST".into()),
            );
        }
        *self.counts() = Counts::default();
        Action::respond(Response::text(200, "reset\n"))
    }

    fn authenticate(&self, request: &Request) -> Action {
        let credential = credentials::parse(request.header_values("proxy-authorization"));
        self.count(credential.as_ref().ok().map(|c| c.user.as_str()));
        let host = request.header_str("x-forwarded-host");
        let method = request.header_str("x-forwarded-method").unwrap_or("-");
        let (user, action, outcome) = match &credential {
            Err(why) => ("-", self.challenge(), why.as_str()),
            Ok(c) => {
                let (action, outcome) = self.decide(c, host);
                (c.user.as_str(), action, outcome)
            }
        };
        // The user name is an identity, not a secret; the password never reaches the log.
        log(format_args!(
            "auth {method} host={:?} user={user:?} -> {outcome}",
            host.unwrap_or("-")
        ));
        action
    }

    fn decide(&self, credential: &Credential, host: Option<&str>) -> (Action, &'static str) {
        if let Some(behaviour) = Behaviour::from_user(&credential.user) {
            return (
                self.misbehave(behaviour, &credential.user),
                "test behaviour",
            );
        }
        match self
            .directory
            .check(&credential.user, &credential.password, host)
        {
            Verdict::Allow => (Action::respond(self.allow(&credential.user)), "allowed"),
            Verdict::BadCredentials => (
                Action::respond(
                    Response::text(403, "Forbidden: unknown user or wrong password\n").with_header(
                        "proxy-authenticate",
                        format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm),
                    ),
                ),
                "bad credentials",
            ),
            // No challenge: other credentials for the same user would not help.
            Verdict::HostNotAllowed => (
                Action::respond(Response::text(
                    403,
                    "Forbidden: destination not allowed for this user\n",
                )),
                "host not allowed",
            ),
        }
    }

    fn misbehave(&self, behaviour: Behaviour, user: &str) -> Action {
        match behaviour {
            Behaviour::Slow(delay) => Action::Respond {
                delay,
                response: self.allow(user),
            },
            Behaviour::Status(code) => {
                Action::respond(Response::text(code, &format!("status {code} on request\n")))
            }
            Behaviour::Garbage => Action::WriteAndClose(GARBAGE),
            Behaviour::Close => Action::Close,
            Behaviour::Empty => Action::WriteAndClose(b"\r\n\r\n"),
            Behaviour::Hang => Action::Hang,
        }
    }

    fn allow(&self, user: &str) -> Response {
        Response::empty(200)
            .with_header("x-auth-user", user.to_string())
            .with_header("x-auth-groups", GROUPS.to_string())
    }

    /// RFC 9110 s11.7.1: a 407 carries the challenge the client should answer.
    fn challenge(&self) -> Action {
        Action::respond(
            Response::text(407, "Proxy Authentication Required\n").with_header(
                "proxy-authenticate",
                format!("Basic realm=\"{}\"", self.realm),
            ),
        )
    }

    fn count(&self, user: Option<&str>) {
        let mut counts = self.counts();
        counts.total += 1;
        if let Some(user) = user {
            *counts.per_user.entry(user.to_string()).or_default() += 1;
        }
    }

    /// The counts stay usable even if a thread once panicked holding the lock: they are plain
    /// numbers, never left half-updated.
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// RFC 3986 s2.1 percent-decoding of a query value; `None` if malformed or not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn percent_decoding_follows_rfc_3986() {
        let cases = [
            ("alice", Some("alice")),
            ("slow%2D100", Some("slow-100")),
            ("a%20b", Some("a b")),
            ("a+b", Some("a+b")),
            ("%C3%A9", Some("é")),
            ("%", None),
            ("%2", None),
            ("%zz", None),
            ("%+1", None),
            ("%FF", None),
        ];
        for (input, expected) in cases {
            assert_eq!(percent_decode(input).as_deref(), expected, "{input}");
        }
    }
}
