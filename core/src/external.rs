//! The external auth service mode without the host: what a call to the service
//! carries, how its answer is read, and how answers are kept in the cache that
//! all worker VMs share.
//!
//! The shared cache is proxy-wasm shared data, which has no expiry and no
//! delete. So a decision is stored under one of `max_entries` slots chosen by
//! its digest, with the digest and the expiry inside the value: the number of
//! keys can never pass the bound, and a stale or colliding value is simply
//! not used and later overwritten.

use sha2::{Digest, Sha256};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

use crate::cache::Key;
use crate::config::{Attribute, External, ExternalCacheConfig};
use crate::credentials::Credentials;

/// Header names the service receives besides Proxy-Authorization, after the
/// convention of forward-auth services.
pub const FORWARDED_METHOD: &str = "x-forwarded-method";
pub const FORWARDED_HOST: &str = "x-forwarded-host";
pub const FORWARDED_URI: &str = "x-forwarded-uri";
/// Set on a request let through because the service could not decide and the
/// operator chose to fail open.
pub const FAIL_OPEN_HEADER: &str = "x-proxy-auth-fail-open";

/// A call to the service, ready to dispatch.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    /// Pseudo-headers first, then Proxy-Authorization and the attributes.
    pub headers: Vec<(String, String)>,
    /// Digest of the credential and every attribute sent: two requests with
    /// the same key would get the same answer from the service.
    pub key: Key,
}

/// Builds the call for a request whose headers are `request` (as the host
/// hands them over, pseudo-headers included) and whose one
/// Proxy-Authorization field parsed as `credentials`.
pub fn call(
    external: &External,
    proxy_authorization: &[u8],
    credentials: &Credentials,
    request: &[(String, Vec<u8>)],
) -> Call {
    let get = |name: &str| {
        request
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[][..], |(_, v)| v.as_slice())
    };
    let mut digest = Sha256::new();
    frame(&mut digest, b"proxy-auth external v1");
    frame(&mut digest, &credentials.digest());
    let mut headers = vec![
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), external.path.clone()),
        (":authority".to_owned(), external.authority.clone()),
        ("proxy-authorization".to_owned(), lossy(proxy_authorization)),
    ];
    let mut attribute = |name: &str, value: &[u8]| {
        frame(&mut digest, name.as_bytes());
        frame(&mut digest, value);
        headers.push((name.to_owned(), lossy(value)));
    };
    for sent in &external.attributes {
        match sent {
            Attribute::Method => attribute(FORWARDED_METHOD, get(":method")),
            Attribute::Host => attribute(FORWARDED_HOST, get(":authority")),
            Attribute::Path => attribute(FORWARDED_URI, get(":path")),
        }
    }
    for name in &external.forward_headers {
        // Every value, in order: the upstream receives them all, so the service
        // judges them all. Absent headers are not sent.
        for (_, value) in request.iter().filter(|(n, _)| n == name) {
            attribute(name, value);
        }
    }
    Call {
        headers,
        key: digest.finalize().into(),
    }
}

/// This worker's key for its own memory of answers, in front of the shared
/// cache: a SipHash under the worker's random secret of the raw field value
/// and of every attribute `call` would send, so that a repeated request finds
/// its answer without building the call. It covers at least what the call's
/// key covers, so it never joins two requests the service could tell apart.
pub fn local_key(
    secret: &[u8; 16],
    external: &External,
    proxy_authorization: &[u8],
    request: &[(String, Vec<u8>)],
) -> u128 {
    let mut hasher = SipHasher13::new_with_key(secret);
    let mut put = |bytes: &[u8]| {
        hasher.write_u64(bytes.len() as u64);
        hasher.write(bytes);
    };
    let get = |name: &str| {
        request
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    put(proxy_authorization);
    for sent in &external.attributes {
        let pseudo = match sent {
            Attribute::Method => ":method",
            Attribute::Host => ":authority",
            Attribute::Path => ":path",
        };
        put(pseudo.as_bytes());
        put(get(pseudo).unwrap_or_default());
    }
    for name in &external.forward_headers {
        put(name.as_bytes());
        for (_, value) in request.iter().filter(|(n, _)| n == name) {
            put(b"1");
            put(value);
        }
        put(b"0");
    }
    hasher.finish128().as_u128()
}

/// Length-prefixed, so that ("ab", "c") and ("a", "bc") digest differently.
fn frame(digest: &mut Sha256, bytes: &[u8]) {
    digest.update((bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
}

/// The host's call API takes strings; a byte that is not UTF-8 becomes U+FFFD
/// for the service. The cache key is taken from the raw bytes all the same.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the service answered, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: with the configured headers found in the answer, to copy upstream.
    Allow(Vec<(String, Vec<u8>)>),
    /// 401, 403 or 407: with the service's own Proxy-Authenticate, if usable.
    Deny(Option<String>),
    /// Anything else: no status (timeout, reset, refused), another status, or
    /// an answer that could not be read.
    Failure(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No status at all: the call timed out, was reset or never connected.
    NoAnswer,
    /// A status that neither allows nor denies.
    Status(u32),
}

impl Failure {
    /// Whether the service is down or broken (no answer, or a 5xx), as
    /// opposed to answering something it should not have. Only an outage may
    /// fail open: a 4xx such as 400, 413, 429 or 431 can be provoked by the
    /// client itself (a huge header, a burst), and must never let it through.
    pub fn is_outage(self) -> bool {
        match self {
            Self::NoAnswer => true,
            Self::Status(status) => (500..=599).contains(&status),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoAnswer => f.write_str("no answer (timeout, reset or connection failure)"),
            // Envoy answers a dispatched call itself when the service does not:
            // 504 once the timeout passes, 503 when it cannot connect, the
            // connection resets or the answer is not HTTP. Either may also be
            // the service's own.
            Self::Status(504) => f.write_str("status 504 (a timeout, or the service's own 504)"),
            Self::Status(503) => {
                f.write_str("status 503 (no connection, a reset or an answer that is not HTTP, or the service's own 503)")
            }
            Self::Status(s) => write!(f, "unexpected status {s}"),
        }
    }
}

/// Reads the service's answer headers.
pub fn answer(external: &External, response: &[(String, Vec<u8>)]) -> Answer {
    let status = response
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u32>().ok());
    match status {
        None => Answer::Failure(Failure::NoAnswer),
        // Every value of each listed header, in the answer's order.
        Some(200..=299) => Answer::Allow(
            external
                .copy_headers
                .iter()
                .flat_map(|name| {
                    response
                        .iter()
                        .filter(move |(n, _)| n == name)
                        .map(|(n, v)| (n.clone(), v.clone()))
                })
                .collect(),
        ),
        Some(401 | 403 | 407) => Answer::Deny(
            response
                .iter()
                .find(|(n, _)| n == "proxy-authenticate")
                .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
                .filter(|v| !v.is_empty() && !v.chars().any(char::is_control)),
        ),
        Some(other) => Answer::Failure(Failure::Status(other)),
    }
}

/// The shared-data key for a decision: a prefix naming this configuration
/// (two plugins on one VM must not read each other's answers) and a slot.
pub fn slot(prefix: &str, key: &Key, max_entries: usize) -> String {
    let mut head = [0u8; 8];
    head.copy_from_slice(&key[..8]);
    let slot = u64::from_le_bytes(head) % (max_entries.max(1) as u64);
    format!("{prefix}{slot}")
}

/// A prefix that changes whenever what the service is asked, or where, or what
/// is kept of its answer, or for how long, does: shared data outlives a change of
/// configuration, and an answer remembered under the old one must not be read.
pub fn prefix(external: &External) -> String {
    let mut digest = Sha256::new();
    for part in [&external.cluster, &external.authority, &external.path] {
        frame(&mut digest, part.as_bytes());
    }
    for attribute in &external.attributes {
        frame(&mut digest, attribute.name().as_bytes());
    }
    for list in [&external.forward_headers, &external.copy_headers] {
        frame(&mut digest, b"list");
        for name in list {
            frame(&mut digest, name.as_bytes());
        }
    }
    let cache = &external.cache;
    for ttl in [cache.allow_ttl_seconds, cache.deny_ttl_seconds] {
        frame(&mut digest, &ttl.to_le_bytes());
    }
    let digest = digest.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("proxy_auth.ext.{hex}.")
}

const FORMAT: u8 = 1;
const ALLOW: u8 = 1;
const DENY: u8 = 2;

/// Encodes an Allow or Deny answer (a Failure is never cached).
pub fn encode(key: &Key, answer: &Answer, expires_ms: u64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT);
    out.extend_from_slice(key);
    out.extend_from_slice(&expires_ms.to_le_bytes());
    match answer {
        Answer::Allow(headers) => {
            out.push(ALLOW);
            for (name, value) in headers {
                put(&mut out, name.as_bytes())?;
                put(&mut out, value)?;
            }
        }
        Answer::Deny(challenge) => {
            out.push(DENY);
            if let Some(challenge) = challenge {
                put(&mut out, challenge.as_bytes())?;
            }
        }
        Answer::Failure(_) => return None,
    }
    Some(out)
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    out.extend_from_slice(&u16::try_from(bytes.len()).ok()?.to_le_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

/// The answer stored for `key` and until when it holds, if the value is for
/// this key and still fresh.
///
/// An entry that expires later than its kind's lifetime from now is refused: the
/// clock went back, or it was written under another configuration.
pub fn decode(
    key: &Key,
    bytes: &[u8],
    now_ms: u64,
    cache: &ExternalCacheConfig,
) -> Option<(Answer, u64)> {
    let (&format, rest) = bytes.split_first()?;
    if format != FORMAT || rest.len() < 32 + 8 + 1 || &rest[..32] != key {
        return None;
    }
    let mut expires = [0u8; 8];
    expires.copy_from_slice(&rest[32..40]);
    let expires = u64::from_le_bytes(expires);
    if now_ms >= expires {
        return None;
    }
    let (kind, mut rest) = (rest[40], &rest[41..]);
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (field, tail) = take(rest)?;
        fields.push(field);
        rest = tail;
    }
    let answer = match kind {
        ALLOW if fields.len() % 2 == 0 => {
            let mut headers = Vec::with_capacity(fields.len() / 2);
            for pair in fields.chunks_exact(2) {
                headers.push((String::from_utf8(pair[0].to_vec()).ok()?, pair[1].to_vec()));
            }
            Answer::Allow(headers)
        }
        DENY => match fields.as_slice() {
            [] => Answer::Deny(None),
            [challenge] => Answer::Deny(Some(String::from_utf8(challenge.to_vec()).ok()?)),
            _ => return None,
        },
        _ => return None,
    };
    let ttl_ms = lifetime_s(cache, &answer).saturating_mul(1000);
    if expires > now_ms.saturating_add(ttl_ms) {
        return None;
    }
    Some((answer, expires))
}

/// How long an answer of this kind is remembered; a failure, never.
pub fn lifetime_s(cache: &ExternalCacheConfig, answer: &Answer) -> u64 {
    match answer {
        Answer::Allow(_) => cache.allow_ttl_seconds,
        Answer::Deny(_) => cache.deny_ttl_seconds,
        Answer::Failure(_) => 0,
    }
}

fn take(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]));
    let body = bytes.get(2..2 + len)?;
    Some((body, &bytes[2 + len..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::config::Config;
    use crate::credentials;

    fn external(extra: &str) -> External {
        let json = format!(r#"{{"external": {{"cluster": "auth", "path": "/check"{extra}}}}}"#);
        Config::parse(json.as_bytes(), |_| None)
            .unwrap()
            .external
            .unwrap()
    }

    type Pairs<'a> = &'a [(&'a str, &'a [u8])];

    fn headers(pairs: Pairs) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect()
    }

    const PA: &[u8] = b"Basic YWxpY2U6cw=="; // alice:s

    fn request(path: &[u8]) -> Vec<(String, Vec<u8>)> {
        headers(&[
            (":method", b"GET"),
            (":authority", b"example.com"),
            (":path", path),
            ("x-request-id", b"r1"),
        ])
    }

    #[test]
    fn call_carries_credential_and_attributes() {
        let ext = external(r#", "forward_headers": ["x-request-id", "x-absent"]"#);
        let creds = credentials::parse(PA).unwrap();
        let call = call(&ext, PA, &creds, &request(b"/a?b"));
        let want = [
            (":method", "GET"),
            (":path", "/check"),
            (":authority", "auth"),
            ("proxy-authorization", "Basic YWxpY2U6cw=="),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "example.com"),
            ("x-forwarded-uri", "/a?b"),
            ("x-request-id", "r1"),
        ];
        let got: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn key_changes_with_credential_and_each_attribute() {
        let ext = external(r#", "forward_headers": ["x-request-id"]"#);
        let creds = credentials::parse(PA).unwrap();
        let other = credentials::parse(b"Basic YWxpY2U6dA==").unwrap(); // alice:t
        let base = call(&ext, PA, &creds, &request(b"/a")).key;
        assert_eq!(base, call(&ext, PA, &creds, &request(b"/a")).key);
        assert_ne!(base, call(&ext, PA, &other, &request(b"/a")).key);
        assert_ne!(base, call(&ext, PA, &creds, &request(b"/b")).key);
        let mut r = request(b"/a");
        r[3].1 = b"r2".to_vec();
        assert_ne!(base, call(&ext, PA, &creds, &r).key);
        r[1].1 = b"example.org".to_vec();
        assert_ne!(base, call(&ext, PA, &creds, &r).key);
    }

    #[test]
    fn every_value_of_a_forwarded_header_is_sent_and_keyed() {
        // Regression: only the first was, while the upstream received them all, so a
        // client could add a value the service never judged.
        let ext = external(r#", "forward_headers": ["x-tenant"]"#);
        let creds = credentials::parse(PA).unwrap();
        let mut one = request(b"/a");
        one.push(("x-tenant".into(), b"ok".to_vec()));
        let mut two = one.clone();
        two.push(("x-tenant".into(), b"secret".to_vec()));
        let sent: Vec<String> = call(&ext, PA, &creds, &two)
            .headers
            .into_iter()
            .filter(|(n, _)| n == "x-tenant")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(sent, ["ok", "secret"]);
        assert_ne!(
            call(&ext, PA, &creds, &one).key,
            call(&ext, PA, &creds, &two).key
        );
        let secret = [9u8; 16];
        assert_ne!(
            local_key(&secret, &ext, PA, &one),
            local_key(&secret, &ext, PA, &two)
        );
    }

    #[test]
    fn only_the_attributes_sent_are_in_the_key() {
        let ext = external(r#", "attributes": ["host"]"#);
        let creds = credentials::parse(PA).unwrap();
        let call_a = call(&ext, PA, &creds, &request(b"/a"));
        let call_b = call(&ext, PA, &creds, &request(b"/b"));
        assert_eq!(
            call_a.key, call_b.key,
            "the path was not sent, yet split the cache"
        );
        let names: Vec<&str> = call_a.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"x-forwarded-host"));
        assert!(!names.contains(&"x-forwarded-uri") && !names.contains(&"x-forwarded-method"));
        let mut other_host = request(b"/a");
        other_host[1].1 = b"example.org".to_vec();
        assert_ne!(call_a.key, call(&ext, PA, &creds, &other_host).key);
    }

    #[test]
    fn local_key_changes_with_everything_the_call_key_does() {
        let ext = external(r#", "forward_headers": ["x-request-id", "x-absent"]"#);
        let secret = [9u8; 16];
        let key = |pa: &[u8], r: &[(String, Vec<u8>)]| local_key(&secret, &ext, pa, r);
        let base = key(PA, &request(b"/a"));
        assert_eq!(base, key(PA, &request(b"/a")));
        assert_ne!(base, key(b"Basic YWxpY2U6dA==", &request(b"/a")));
        assert_ne!(base, key(PA, &request(b"/b")));
        let mut r = request(b"/a");
        r[0].1 = b"POST".to_vec();
        assert_ne!(base, key(PA, &r));
        let mut r = request(b"/a");
        r[1].1 = b"example.org".to_vec();
        assert_ne!(base, key(PA, &r));
        let mut r = request(b"/a");
        r[3].1 = b"r2".to_vec();
        assert_ne!(base, key(PA, &r));
        let mut r = request(b"/a");
        r.push(("x-absent".into(), b"".to_vec()));
        assert_ne!(base, key(PA, &r), "an empty header is not an absent one");
        assert_ne!(base, local_key(&[8u8; 16], &ext, PA, &request(b"/a")));
        // Not sent, so not keyed.
        let host_only = external(r#", "attributes": ["host"]"#);
        assert_eq!(
            local_key(&secret, &host_only, PA, &request(b"/a")),
            local_key(&secret, &host_only, PA, &request(b"/b"))
        );
    }

    #[test]
    fn answers_are_classified_by_status() {
        let ext = external(r#", "copy_headers": ["x-auth-user"]"#);
        let table: &[(Pairs, Answer)] = &[
            (
                &[
                    (":status", b"200"),
                    ("x-auth-user", b"alice"),
                    ("x-other", b"1"),
                ],
                Answer::Allow(vec![("x-auth-user".into(), b"alice".to_vec())]),
            ),
            (&[(":status", b"204")], Answer::Allow(vec![])),
            (
                &[
                    (":status", b"200"),
                    ("x-auth-user", b"a"),
                    ("x-auth-user", b"b"),
                ],
                Answer::Allow(vec![
                    ("x-auth-user".into(), b"a".to_vec()),
                    ("x-auth-user".into(), b"b".to_vec()),
                ]),
            ),
            (&[(":status", b"401")], Answer::Deny(None)),
            (
                &[
                    (":status", b"407"),
                    ("proxy-authenticate", b"Basic realm=\"dir\""),
                ],
                Answer::Deny(Some("Basic realm=\"dir\"".into())),
            ),
            (
                &[(":status", b"403"), ("proxy-authenticate", b"a\x01b")],
                Answer::Deny(None),
            ),
            (
                &[(":status", b"500")],
                Answer::Failure(Failure::Status(500)),
            ),
            (
                &[(":status", b"302")],
                Answer::Failure(Failure::Status(302)),
            ),
            (&[(":status", b"abc")], Answer::Failure(Failure::NoAnswer)),
            (&[], Answer::Failure(Failure::NoAnswer)),
        ];
        for (response, want) in table {
            assert_eq!(&answer(&ext, &headers(response)), want, "{response:?}");
        }
    }

    #[test]
    fn only_no_answer_or_a_5xx_is_an_outage() {
        let table = [
            (Failure::NoAnswer, true),
            (Failure::Status(500), true),
            (Failure::Status(503), true),
            (Failure::Status(599), true),
            (Failure::Status(400), false),
            (Failure::Status(413), false),
            (Failure::Status(429), false),
            (Failure::Status(431), false),
            (Failure::Status(302), false),
            (Failure::Status(100), false),
            (Failure::Status(600), false),
        ];
        for (failure, outage) in table {
            assert_eq!(failure.is_outage(), outage, "{failure:?}");
        }
    }

    #[test]
    fn cached_answers_round_trip_until_they_expire() {
        let key = [7u8; 32];
        let answers = [
            Answer::Allow(vec![
                ("x-auth-user".into(), b"alice".to_vec()),
                ("x-g".into(), vec![]),
            ]),
            Answer::Allow(vec![]),
            Answer::Deny(None),
            Answer::Deny(Some("Basic realm=\"dir\"".into())),
        ];
        let ttl = ExternalCacheConfig {
            allow_ttl_seconds: 1,
            deny_ttl_seconds: 1,
            max_entries: 10,
        };
        for a in answers {
            let bytes = encode(&key, &a, 1_000).unwrap();
            assert_eq!(decode(&key, &bytes, 999, &ttl), Some((a.clone(), 1_000)));
            assert_eq!(decode(&key, &bytes, 1_000, &ttl), None);
            assert_eq!(
                decode(&[8u8; 32], &bytes, 0, &ttl),
                None,
                "another key's value was used"
            );
        }
        assert_eq!(encode(&key, &Answer::Failure(Failure::NoAnswer), 1), None);
    }

    #[test]
    fn garbage_in_the_shared_cache_is_ignored() {
        let key = [7u8; 32];
        let good = encode(&key, &Answer::Allow(vec![("a".into(), b"b".to_vec())]), 9).unwrap();
        for cut in 0..good.len() {
            let _ = decode(&key, &good[..cut], 0, &ExternalCacheConfig::default());
        }
        assert_eq!(decode(&key, &[], 0, &ExternalCacheConfig::default()), None);
        assert_eq!(
            decode(&key, &[2, 0, 0], 0, &ExternalCacheConfig::default()),
            None
        );
    }

    #[test]
    fn an_answer_expiring_later_than_its_lifetime_allows_is_not_trusted() {
        // The clock went back, or the entry was written under a longer lifetime.
        let key = [7u8; 32];
        let ttl = ExternalCacheConfig {
            allow_ttl_seconds: 60,
            deny_ttl_seconds: 5,
            max_entries: 10,
        };
        let allow = encode(&key, &Answer::Allow(vec![]), 100_000).unwrap();
        assert!(decode(&key, &allow, 40_000, &ttl).is_some());
        assert_eq!(decode(&key, &allow, 39_999, &ttl), None);
        let deny = encode(&key, &Answer::Deny(None), 100_000).unwrap();
        assert!(decode(&key, &deny, 95_000, &ttl).is_some());
        assert_eq!(decode(&key, &deny, 94_999, &ttl), None);
    }

    #[test]
    fn slots_stay_within_the_bound_and_prefix_follows_the_config() {
        for n in 0..=255u8 {
            let s = slot("p.", &[n; 32], 10);
            let index: u64 = s.trim_start_matches("p.").parse().unwrap();
            assert!(index < 10);
        }
        // Everything that decides what is asked, or kept, or for how long.
        for changed in [
            r#", "authority": "x""#,
            r#", "attributes": ["host"]"#,
            r#", "forward_headers": ["x-a"]"#,
            r#", "copy_headers": ["x-a"]"#,
            r#", "cache": {"allow_ttl_seconds": 0}"#,
            r#", "cache": {"deny_ttl_seconds": 6}"#,
        ] {
            assert_ne!(
                prefix(&external("")),
                prefix(&external(changed)),
                "{changed}"
            );
        }
        assert_ne!(
            prefix(&external(r#", "forward_headers": ["x-a"]"#)),
            prefix(&external(r#", "copy_headers": ["x-a"]"#))
        );
        assert_eq!(prefix(&external("")), prefix(&external("")));
    }
}
