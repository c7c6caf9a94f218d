//! Misbehaviour on request: a credential whose user name is `slow-<ms>`, `status-<code>`,
//! `garbage`, `close`, `empty` or `hang` (any password) makes the service answer badly on
//! purpose. The name travels inside the credential the filter forwards, so one running
//! service can serve every end-to-end test without restarts or a control channel.

use std::time::Duration;

/// The longest the service keeps a connection waiting on purpose (`slow-` and `hang`), so a
/// forgotten test client cannot pin a thread forever.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Wait, then allow as usual.
    Slow(Duration),
    /// Answer this status with a small text body and nothing else.
    Status(u16),
    /// Write bytes that are not an HTTP response, then close.
    Garbage,
    /// Close without answering.
    Close,
    /// Write an empty line pair, no status line, then close.
    Empty,
    /// Answer nothing until the client goes away or `MAX_DELAY` passes.
    Hang,
}

impl Behaviour {
    /// The behaviour a user name asks for, if it names one. `slow-` delays are capped at
    /// `MAX_DELAY`; `status-` takes a final status, 200 to 599, since an interim 1xx would
    /// leave the exchange unfinished rather than test a decision.
    pub fn from_user(name: &str) -> Option<Self> {
        if let Some(ms) = name.strip_prefix("slow-") {
            let ms: u64 = digits(ms)?.parse().ok()?;
            return Some(Behaviour::Slow(Duration::from_millis(ms).min(MAX_DELAY)));
        }
        if let Some(code) = name.strip_prefix("status-") {
            let code: u16 = digits(code)?.parse().ok()?;
            return (200..=599)
                .contains(&code)
                .then_some(Behaviour::Status(code));
        }
        match name {
            "garbage" => Some(Behaviour::Garbage),
            "close" => Some(Behaviour::Close),
            "empty" => Some(Behaviour::Empty),
            "hang" => Some(Behaviour::Hang),
            _ => None,
        }
    }
}

/// Only plain ASCII digits, so `slow-+5` or `status- 500` stay ordinary (unknown) names.
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn user_names_select_behaviours() {
        let cases = [
            (
                "slow-250",
                Some(Behaviour::Slow(Duration::from_millis(250))),
            ),
            ("slow-0", Some(Behaviour::Slow(Duration::ZERO))),
            ("slow-999999999", Some(Behaviour::Slow(MAX_DELAY))),
            ("status-500", Some(Behaviour::Status(500))),
            ("status-302", Some(Behaviour::Status(302))),
            ("status-200", Some(Behaviour::Status(200))),
            ("garbage", Some(Behaviour::Garbage)),
            ("close", Some(Behaviour::Close)),
            ("empty", Some(Behaviour::Empty)),
            ("hang", Some(Behaviour::Hang)),
            ("status-100", None),
            ("status-600", None),
            ("status-abc", None),
            ("status-", None),
            ("slow-", None),
            ("slow--1", None),
            ("slow-+5", None),
            ("Hang", None),
            ("alice", None),
        ];
        for (name, expected) in cases {
            assert_eq!(Behaviour::from_user(name), expected, "{name}");
        }
    }
}
