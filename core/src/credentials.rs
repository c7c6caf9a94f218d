//! Reading Basic credentials out of a `Proxy-Authorization` field value.
//!
//! Works on raw octets: a field value is not guaranteed to be UTF-8, and the
//! user name and password are compared as the octets the client sent, with no
//! normalisation (RFC 7617 section 2.1 leaves the encoding to the charset the
//! challenge advertised, which is UTF-8 here).

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurposeConfig;
use base64::engine::{DecodePaddingMode, GeneralPurpose};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::hash::MAX_PASSWORD_LEN;

/// Longest user name, in bytes, that a credential or the htpasswd text may hold.
pub const MAX_USER_LEN: usize = 255;

/// Longest token accepted: the standard base64 of the longest user name, the colon and
/// the longest password. A longer one could match no user, so it is refused before it
/// is decoded, hashed, or sent to an external service (which might fail on its size,
/// and an outage must not be something a client can cause with one request).
const MAX_TOKEN_LEN: usize = (MAX_USER_LEN + 1 + MAX_PASSWORD_LEN).div_ceil(3) * 4;

/// Standard alphabet, padding optional, non-canonical trailing bits refused.
const TOKEN_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a `Proxy-Authorization` value is not usable Basic credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// The auth-scheme is not `Basic`.
    NotBasic,
    /// `Basic` with no token after it.
    NoToken,
    /// The token is not standard base64 (a foreign character, misplaced padding,
    /// or something after the padding).
    BadBase64,
    /// The decoded octets hold no colon to separate user and password.
    NoColon,
    /// The user name or password holds a control character.
    ControlCharacter,
    /// The user name starts or ends with a space.
    SpaceAroundUser,
    /// The token, the user name or the password is longer than the filter accepts.
    TooLong,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotBasic => "scheme is not Basic",
            Self::NoToken => "Basic without a token",
            Self::BadBase64 => "token is not base64",
            Self::NoColon => "decoded token has no colon",
            Self::ControlCharacter => "user or password holds a control character",
            Self::SpaceAroundUser => "user name starts or ends with a space",
            Self::TooLong => "user name or password longer than 255 bytes",
        })
    }
}

/// Decoded `user:password` octets. Debug deliberately shows neither part.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    decoded: Vec<u8>,
    colon: usize,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    pub fn user(&self) -> &[u8] {
        &self.decoded[..self.colon]
    }

    pub fn password(&self) -> &[u8] {
        &self.decoded[self.colon + 1..]
    }

    /// A digest of the whole credential, user and password together: the key
    /// under which a verification is remembered. Keying on the user alone would
    /// let a wrong password ride on an earlier right one.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.decoded).into()
    }
}

/// Parses one `Proxy-Authorization` field value.
pub fn parse(value: &[u8]) -> Result<Credentials, CredentialError> {
    // RFC 9110 section 11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
    let scheme_end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    // RFC 9110 section 11.1: the scheme is a case-insensitive token.
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(CredentialError::NotBasic);
    }
    let token_start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[token_start..];
    if token.is_empty() {
        return Err(CredentialError::NoToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(CredentialError::TooLong);
    }
    // RFC 7617 section 2: the token is base64 of user-id ":" password. Padding
    // may be left out, but padding that is there must be whole (RFC 4648 section 4).
    if token.ends_with(b"=") && token.len() % 4 != 0 {
        return Err(CredentialError::BadBase64);
    }
    let decoded = TOKEN_ENGINE
        .decode(token)
        .map_err(|_| CredentialError::BadBase64)?;
    // RFC 7617 section 2: the user-id cannot hold a colon, the password can,
    // so the split is at the first one.
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(CredentialError::NoColon)?;
    // RFC 7617 section 2: neither may hold a control character (CTL, RFC 5234
    // appendix B.1). Refusing them also keeps a user name that is forwarded in
    // a header from ending that header early.
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(CredentialError::ControlCharacter);
    }
    // RFC 9110 section 5.5: a field value has no leading or trailing
    // whitespace, so "admin " would reach the upstream in a user header as
    // "admin". No configured user can have such a name (see htpasswd).
    let user = &decoded[..colon];
    if user.starts_with(b" ") || user.ends_with(b" ") {
        return Err(CredentialError::SpaceAroundUser);
    }
    // Each part within its own bound, not only the two together: no configured
    // user could match, and an external service is not asked about either.
    if user.len() > MAX_USER_LEN || decoded.len() - colon - 1 > MAX_PASSWORD_LEN {
        return Err(CredentialError::TooLong);
    }
    Ok(Credentials { decoded, colon })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn ok(value: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let c =
            parse(value).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(value)));
        (c.user().to_vec(), c.password().to_vec())
    }

    #[test]
    fn accepted_forms() {
        let table: &[(&[u8], &[u8], &[u8])] = &[
            (b"Basic ZGVtbzpkZW1v", b"demo", b"demo"),
            (b"basic ZGVtbzpkZW1v", b"demo", b"demo"),
            (b"BASIC ZGVtbzpkZW1v", b"demo", b"demo"),
            (b"bAsIc ZGVtbzpkZW1v", b"demo", b"demo"),
            (b"Basic    ZGVtbzpkZW1v", b"demo", b"demo"),
            // "a:bc" padded and unpadded
            (b"Basic YTpiYw==", b"a", b"bc"),
            (b"Basic YTpiYw", b"a", b"bc"),
            // "user:pa:ss:word" splits at the first colon
            (b"Basic dXNlcjpwYTpzczp3b3Jk", b"user", b"pa:ss:word"),
            // ":" alone is an empty user and an empty password
            (b"Basic Og==", b"", b""),
            // "mary ann: pw " keeps inner spaces and the password's own
            (b"Basic bWFyeSBhbm46IHB3IA==", b"mary ann", b" pw "),
        ];
        for (value, user, password) in table {
            assert_eq!(ok(value), (user.to_vec(), password.to_vec()));
        }
    }

    #[test]
    fn longest_user_and_password_are_accepted() {
        let user = "u".repeat(MAX_USER_LEN);
        let password = "p".repeat(MAX_PASSWORD_LEN);
        let value = format!("Basic {}", b64(format!("{user}:{password}").as_bytes()));
        assert_eq!(
            ok(value.as_bytes()),
            (user.into_bytes(), password.into_bytes())
        );
    }

    #[test]
    fn utf8_and_latin1_octets_are_kept_as_sent() {
        let utf8 = "jürgen:pässword".as_bytes();
        let latin1: &[u8] = b"j\xfcrgen:p\xe4ssword";
        for raw in [utf8, latin1] {
            let value = format!("Basic {}", b64(raw));
            let (user, password) = ok(value.as_bytes());
            assert_eq!([user, b":".to_vec(), password].concat(), raw);
        }
    }

    #[test]
    fn refused_forms() {
        let table: &[(&[u8], CredentialError)] = &[
            (b"", CredentialError::NotBasic),
            (b"Bearer ZGVtbzpkZW1v", CredentialError::NotBasic),
            (b"Basicx ZGVtbzpkZW1v", CredentialError::NotBasic),
            (b"Basic\tZGVtbzpkZW1v", CredentialError::NotBasic),
            (b"Digest username=\"demo\"", CredentialError::NotBasic),
            (b"Basic", CredentialError::NoToken),
            (b"Basic ", CredentialError::NoToken),
            (b"Basic ZGVtbzpkZW1v!", CredentialError::BadBase64),
            (b"Basic ZGVt bzpkZW1v", CredentialError::BadBase64),
            (b"Basic ZGVtbzpkZW1v ", CredentialError::BadBase64),
            (b"Basic YTpiYw==YQ", CredentialError::BadBase64),
            (b"Basic YTpiYw=", CredentialError::BadBase64),
            (b"Basic YTpiYw===", CredentialError::BadBase64),
            (b"Basic ZGVtbzpkZW1v-_", CredentialError::BadBase64),
            (b"Basic \xff\xfe", CredentialError::BadBase64),
            // "a:bd" with its last character changed so trailing bits are set
            (b"Basic YTpiZx", CredentialError::BadBase64),
            (b"Basic ZGVtbw==", CredentialError::NoColon),
            // "a\r\nx:b", "a:b\x00", "a:\x7f", "a:b\tc"
            (b"Basic YQ0KeDpi", CredentialError::ControlCharacter),
            (b"Basic YTpiAA==", CredentialError::ControlCharacter),
            (b"Basic YTp/", CredentialError::ControlCharacter),
            (b"Basic YTpiCWM=", CredentialError::ControlCharacter),
            // "admin :pw", " admin:pw", " :pw"
            (b"Basic YWRtaW4gOnB3", CredentialError::SpaceAroundUser),
            (b"Basic IGFkbWluOnB3", CredentialError::SpaceAroundUser),
            (b"Basic IDpwdw==", CredentialError::SpaceAroundUser),
        ];
        let too_long = format!("Basic {}", "QUFB".repeat(MAX_TOKEN_LEN / 4 + 1));
        assert_eq!(parse(too_long.as_bytes()), Err(CredentialError::TooLong));
        // Either part over its own bound, though the token would fit.
        let long_user = format!("{}:p", "u".repeat(MAX_USER_LEN + 1));
        let long_password = format!("u:{}", "p".repeat(MAX_PASSWORD_LEN + 1));
        for raw in [long_user, long_password] {
            let value = format!("Basic {}", b64(raw.as_bytes()));
            assert_eq!(
                parse(value.as_bytes()),
                Err(CredentialError::TooLong),
                "{raw}"
            );
        }
        for (value, want) in table {
            assert_eq!(
                parse(value),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn digest_covers_the_password_not_only_the_user() {
        let right = parse(format!("Basic {}", b64(b"demo:demo")).as_bytes()).unwrap();
        let wrong = parse(format!("Basic {}", b64(b"demo:demO")).as_bytes()).unwrap();
        assert_ne!(right.digest(), wrong.digest());
        assert_eq!(
            right.digest(),
            parse(b"basic ZGVtbzpkZW1v").unwrap().digest()
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = parse(b"Basic ZGVtbzpkZW1v").unwrap();
        assert!(!format!("{c:?}").contains("demo"));
    }
}
