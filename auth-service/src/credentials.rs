//! Decoding the Basic credential that proxy-auth forwards verbatim in `proxy-authorization`
//! (RFC 7617 s2, carried per RFC 9110 s11.7.2). Kept apart from the decisions so every way a
//! header can be malformed is tested in one table.

use base64::Engine;

/// A user-id and password from a well-formed Basic credential. Deliberately not `Debug`, so
/// the password cannot end up in a log line by accident.
pub struct Credential {
    pub user: String,
    pub password: String,
}

/// Why the header does not hold a usable Basic credential; every case earns a 407.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Missing,
    /// More than one `proxy-authorization` field: which one counts would be a guess.
    Duplicate,
    NotBasic,
    BadBase64,
    /// The decoded text is not UTF-8 (RFC 7617 s2.1 charset) or has no ':' separator.
    BadUserPass,
}

impl Malformed {
    /// A short name for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Missing => "missing",
            Malformed::Duplicate => "duplicate",
            Malformed::NotBasic => "not-basic",
            Malformed::BadBase64 => "bad-base64",
            Malformed::BadUserPass => "bad-user-pass",
        }
    }
}

/// Parses the values of every `proxy-authorization` field the request carried.
pub fn parse<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Credential, Malformed> {
    let value = values.next().ok_or(Malformed::Missing)?;
    if values.next().is_some() {
        return Err(Malformed::Duplicate);
    }
    // RFC 9110 s11.4: credentials = auth-scheme [ 1*SP token68 ]; the scheme is
    // case-insensitive (s11.1).
    let value = crate::http::trim_ows(value);
    let split = value
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Malformed::NotBasic)?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Malformed::NotBasic);
    }
    let token = crate::http::trim_ows(rest);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| Malformed::BadBase64)?;
    let text = String::from_utf8(decoded).map_err(|_| Malformed::BadUserPass)?;
    // RFC 7617 s2: the user-id cannot contain ':', so the first one separates the password.
    let (user, password) = text.split_once(':').ok_or(Malformed::BadUserPass)?;
    Ok(Credential {
        user: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse_one(value: &str) -> Result<(String, String), Malformed> {
        parse(std::iter::once(value.as_bytes())).map(|c| (c.user, c.password))
    }

    #[test]
    fn well_formed_credentials_are_decoded() {
        let cases = [
            ("Basic YWxpY2U6c2VjcmV0", ("alice", "secret")),
            ("basic YWxpY2U6c2VjcmV0", ("alice", "secret")),
            ("BASIC   YWxpY2U6c2VjcmV0  ", ("alice", "secret")),
            // "alice:a:b": only the first colon separates.
            ("Basic YWxpY2U6YTpi", ("alice", "a:b")),
            // ":" gives an empty user-id, which is well-formed (and unknown).
            ("Basic Og==", ("", "")),
        ];
        for (header, (user, password)) in cases {
            let got = parse_one(header).unwrap_or_else(|e| panic!("{header:?}: {e:?}"));
            assert_eq!(got, (user.to_string(), password.to_string()), "{header:?}");
        }
    }

    #[test]
    fn malformed_credentials_are_named() {
        let cases = [
            ("Basic", Malformed::NotBasic),
            ("Bearer YWxpY2U6c2VjcmV0", Malformed::NotBasic),
            ("BasicYWxpY2U6c2VjcmV0", Malformed::NotBasic),
            ("Basic !!!!", Malformed::BadBase64),
            ("Basic YWxpY2U6c2VjcmV0=", Malformed::BadBase64),
            // "alice" without a colon.
            ("Basic YWxpY2U=", Malformed::BadUserPass),
            // 0xff 0x3a: not UTF-8.
            ("Basic /zo=", Malformed::BadUserPass),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_one(header).err(), Some(expected), "{header:?}");
        }
    }

    #[test]
    fn missing_and_duplicate_fields_are_refused() {
        assert_eq!(parse(std::iter::empty()).err(), Some(Malformed::Missing));
        let two: [&[u8]; 2] = [b"Basic YWxpY2U6c2VjcmV0", b"Basic YWxpY2U6c2VjcmV0"];
        assert_eq!(parse(two.into_iter()).err(), Some(Malformed::Duplicate));
    }
}
