//! The password hash of one htpasswd line. A field is parsed and checked once, when the
//! configuration is loaded, so a request only ever runs `verify` on a known-good hash:
//! verify cannot fail, never panics, and compares the derived value in constant time.

use std::fmt;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest password, in bytes, that `verify` will hash; a longer one never matches.
///
/// SHA-crypt and apr1 hash the whole password in each of their rounds, so one check
/// costs more the longer the password (a 255-byte one about four times an 8-byte one):
/// without a bound a client could make one request cost seconds. `htpasswd` itself takes
/// at most 255 bytes, and [`PasswordHash::cost`] prices a check at this length.
pub const MAX_PASSWORD_LEN: usize = 255;

/// Why a hash field was refused. It says what is wrong and never holds the hash itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashError {
    /// The hash field is empty.
    Empty,
    /// No supported prefix: also a plain text password written without `{PLAIN}`, DES
    /// crypt, `$1$` MD5-crypt and `$2x$` bcrypt.
    UnknownScheme,
    /// bcrypt: the cost is not two digits from 04 to 31.
    BcryptCost,
    /// bcrypt: not 22 characters of salt and 31 of digest in bcrypt base64 after the cost.
    BcryptFormat,
    /// SHA-crypt: `rounds=` is not a decimal number from 1000 to 999999999.
    ShaCryptRounds,
    /// SHA-crypt: the salt is longer than 16 characters or not printable ASCII.
    ShaCryptSalt,
    /// SHA-crypt: the digest is missing, of the wrong length, or not crypt base64.
    ShaCryptDigest,
    /// Apache MD5: the salt is longer than 8 characters or not printable ASCII.
    Apr1Salt,
    /// Apache MD5: the digest is missing, of the wrong length, or not crypt base64.
    Apr1Digest,
    /// `{SHA}`: not the padded base64 of a 20-byte SHA-1 digest.
    Sha1Digest,
    /// `{PLAIN}`: the password is longer than [`MAX_PASSWORD_LEN`], so it could never match.
    PlainTooLong,
    /// `{PLAIN}`: the password holds a control character, which RFC 7617 keeps out of
    /// credentials, so no request could carry it.
    PlainControl,
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the hash is empty"),
            Self::UnknownScheme => f.write_str(
                "unknown hash format: use bcrypt ($2y$, $2b$, $2a$), SHA-crypt ($5$, $6$), \
                 Apache MD5 ($apr1$), {SHA}, or {PLAIN} followed by a plain text password",
            ),
            Self::BcryptCost => {
                f.write_str("bcrypt hash: the cost after $2y$ must be two digits from 04 to 31")
            }
            Self::BcryptFormat => f.write_str(
                "bcrypt hash: after the cost expected `$` then 53 characters of bcrypt base64 \
                 (60 in all); regenerate it with `htpasswd -nB user`",
            ),
            Self::ShaCryptRounds => f.write_str(
                "SHA-crypt hash: rounds= must be a decimal number from 1000 to 999999999",
            ),
            Self::ShaCryptSalt => f.write_str(
                "SHA-crypt hash: the salt must be at most 16 printable ASCII characters other than `$`",
            ),
            Self::ShaCryptDigest => f.write_str(
                "SHA-crypt hash: after the salt expected `$` then 43 ($5$) or 86 ($6$) \
                 characters of crypt base64",
            ),
            Self::Apr1Salt => f.write_str(
                "Apache MD5 hash: the salt must be at most 8 printable ASCII characters other than `$`",
            ),
            Self::Apr1Digest => f.write_str(
                "Apache MD5 hash: after the salt expected `$` then 22 characters of crypt base64",
            ),
            Self::Sha1Digest => f.write_str(
                "{SHA} hash: expected 28 characters, the padded base64 of a 20-byte SHA-1 digest",
            ),
            Self::PlainTooLong => write!(
                f,
                "{{PLAIN}} password: longer than {MAX_PASSWORD_LEN} bytes, the most a password may have"
            ),
            Self::PlainControl => f.write_str(
                "{PLAIN} password: holds a control character (a tab, say), which no client \
                 can send in Proxy-Authorization",
            ),
        }
    }
}

impl std::error::Error for HashError {}

/// A parsed htpasswd hash. Its `Debug` shows the scheme only, never the hash material.
#[derive(Clone)]
pub struct PasswordHash {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    /// Kept as text: `bcrypt::verify` takes the whole hash; it was fully checked at parse.
    Bcrypt {
        text: String,
        cost: u32,
    },
    ShaCrypt {
        sha512: bool,
        rounds: u32,
        params: sha_crypt::Params,
        salt: String,
        /// The crypt base64 text of the digest, checked to be canonical.
        digest: String,
    },
    Apr1 {
        salt: String,
        digest: String,
    },
    Sha1 {
        digest: [u8; 20],
    },
    /// The SHA-256 of the password, so that comparing it takes the same time whatever the
    /// lengths of the configured and the offered password.
    Plain {
        digest: [u8; 32],
    },
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("scheme", &self.scheme())
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Parses one htpasswd hash field.
    pub fn parse(field: &str) -> Result<PasswordHash, HashError> {
        if field.is_empty() {
            return Err(HashError::Empty);
        }
        let inner = if let Some(password) = field.strip_prefix("{PLAIN}") {
            if password.len() > MAX_PASSWORD_LEN {
                return Err(HashError::PlainTooLong);
            }
            // RFC 7617 section 2: credentials hold no CTL; see credentials::parse.
            if password.bytes().any(|b| b.is_ascii_control()) {
                return Err(HashError::PlainControl);
            }
            Inner::Plain {
                digest: Sha256::digest(password.as_bytes()).into(),
            }
        } else if let Some(encoded) = field.strip_prefix("{SHA}") {
            parse_sha1(encoded)?
        } else if let Some(rest) = field.strip_prefix("$apr1$") {
            parse_apr1(rest)?
        } else if let Some(rest) = field.strip_prefix("$5$") {
            parse_sha_crypt(rest, false)?
        } else if let Some(rest) = field.strip_prefix("$6$") {
            parse_sha_crypt(rest, true)?
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| field.starts_with(p))
        {
            // $2x$ marks hashes made by the buggy pre-2011 crypt_blowfish for 8-bit
            // passwords; nothing we could verify them with reproduces that bug.
            parse_bcrypt(field)?
        } else {
            return Err(HashError::UnknownScheme);
        };
        Ok(PasswordHash { inner })
    }

    /// True when `password` (raw octets, no normalisation) matches. The derived value is
    /// compared in constant time. A password longer than [`MAX_PASSWORD_LEN`] never matches.
    pub fn verify(&self, password: &[u8]) -> bool {
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        match &self.inner {
            // bcrypt uses the first 72 bytes of the password, as OpenBSD's and Apache's
            // do; the crate compares the digests with `subtle`.
            Inner::Bcrypt { text, .. } => bcrypt::verify(password, text).unwrap_or(false),
            Inner::ShaCrypt {
                sha512,
                params,
                salt,
                digest,
                ..
            } => {
                let salt = salt.as_bytes();
                if *sha512 {
                    let raw = sha_crypt::sha512_crypt(password, salt, *params);
                    encoded_eq(&raw, &SHA512_CRYPT_ORDER, digest)
                } else {
                    let raw = sha_crypt::sha256_crypt(password, salt, *params);
                    encoded_eq(&raw, &SHA256_CRYPT_ORDER, digest)
                }
            }
            Inner::Apr1 { salt, digest } => {
                let raw = apr1(password, salt.as_bytes());
                encoded_eq(&raw, &APR1_ORDER, digest)
            }
            Inner::Sha1 { digest } => Sha1::digest(password).as_slice().ct_eq(digest).into(),
            Inner::Plain { digest } => Sha256::digest(password).as_slice().ct_eq(digest).into(),
        }
    }

    /// A rough relative cost of one verify: about the nanoseconds it takes natively
    /// (release build, x86-64) for the longest password a client may send. It ranks
    /// hashes, it does not predict time in the wasm VM. Used to pick, among the
    /// configured users, the hash an unknown user is verified against, so that an
    /// unknown user costs about what a wrong password costs.
    pub fn cost(&self) -> u64 {
        match &self.inner {
            Inner::Bcrypt { cost, .. } => (1u64 << cost).saturating_mul(BCRYPT_ROUND_NS),
            Inner::ShaCrypt { sha512, rounds, .. } => {
                let per_round = if *sha512 {
                    SHA512_CRYPT_ROUND_NS
                } else {
                    SHA256_CRYPT_ROUND_NS
                };
                u64::from(*rounds).saturating_mul(per_round)
            }
            Inner::Apr1 { .. } => APR1_NS,
            Inner::Sha1 { .. } | Inner::Plain { .. } => DIGEST_NS,
        }
    }

    /// Short scheme name for logs: "bcrypt", "sha256-crypt", "sha512-crypt", "apr1",
    /// "sha1", "plain".
    pub fn scheme(&self) -> &'static str {
        match &self.inner {
            Inner::Bcrypt { .. } => "bcrypt",
            Inner::ShaCrypt { sha512: false, .. } => "sha256-crypt",
            Inner::ShaCrypt { sha512: true, .. } => "sha512-crypt",
            Inner::Apr1 { .. } => "apr1",
            Inner::Sha1 { .. } => "sha1",
            Inner::Plain { .. } => "plain",
        }
    }
}

// Measured once natively (release build, x86-64 EPYC) with a password of
// MAX_PASSWORD_LEN bytes, the costliest a client can send: bcrypt 52 us per round of
// its 2^cost (it reads 72 bytes at most); SHA-256-crypt 363 ns and SHA-512-crypt 821 ns
// per round (83 and 240 with 8 bytes); apr1 0.8 ms (0.12 with 8 bytes); {SHA} 0.1 us.
const BCRYPT_ROUND_NS: u64 = 52_000;
const SHA256_CRYPT_ROUND_NS: u64 = 363;
const SHA512_CRYPT_ROUND_NS: u64 = 821;
const APR1_NS: u64 = 800_000;
const DIGEST_NS: u64 = 100;

/// `$2a$`, `$2b$` or `$2y$`, two digits of cost, `$`, 22 characters of salt and 31 of
/// digest in bcrypt's base64 (OpenBSD bcrypt.c). Decoded here with the engine the bcrypt
/// crate decodes with, which refuses non-canonical trailing bits, so that
/// `bcrypt::verify` cannot meet a hash it refuses.
fn parse_bcrypt(field: &str) -> Result<Inner, HashError> {
    let rest = field.get(4..).ok_or(HashError::BcryptFormat)?;
    let (cost, encoded) = rest.split_once('$').ok_or(HashError::BcryptCost)?;
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashError::BcryptCost);
    }
    let cost: u32 = cost.parse().map_err(|_| HashError::BcryptCost)?;
    if !(4..=31).contains(&cost) {
        return Err(HashError::BcryptCost);
    }
    let (salt, digest) = encoded
        .as_bytes()
        .split_at_checked(22)
        .ok_or(HashError::BcryptFormat)?;
    if digest.len() != 31 {
        return Err(HashError::BcryptFormat);
    }
    let mut salt_raw = [0u8; 16];
    let mut digest_raw = [0u8; 23];
    let salt_len = bcrypt::BASE_64
        .decode_slice(salt, &mut salt_raw)
        .map_err(|_| HashError::BcryptFormat)?;
    let digest_len = bcrypt::BASE_64
        .decode_slice(digest, &mut digest_raw)
        .map_err(|_| HashError::BcryptFormat)?;
    if salt_len != salt_raw.len() || digest_len != digest_raw.len() {
        return Err(HashError::BcryptFormat);
    }
    Ok(Inner::Bcrypt {
        text: field.to_owned(),
        cost,
    })
}

/// `$5$` or `$6$` (already removed), an optional `rounds=N$`, a salt of at most 16
/// characters, `$` and the digest, as in Drepper's "Unix crypt using SHA-256 and SHA-512"
/// (<https://www.akkadia.org/drepper/SHA-crypt.txt>). The spec clamps an out-of-range
/// `rounds` and truncates a longer salt; a tool following it never writes either, so such
/// a field is a damaged one and is refused (libxcrypt refuses rounds=999 too).
fn parse_sha_crypt(rest: &str, sha512: bool) -> Result<Inner, HashError> {
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(after) => {
            let (number, rest) = after.split_once('$').ok_or(HashError::ShaCryptRounds)?;
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HashError::ShaCryptRounds);
            }
            let rounds: u32 = number.parse().map_err(|_| HashError::ShaCryptRounds)?;
            (rounds, rest)
        }
        None => (sha_crypt::Params::RECOMMENDED_ROUNDS, rest),
    };
    let params = sha_crypt::Params::new(rounds).map_err(|_| HashError::ShaCryptRounds)?;
    let (salt, digest) = rest.split_once('$').ok_or(HashError::ShaCryptDigest)?;
    if !salt_ok(salt, 16) {
        return Err(HashError::ShaCryptSalt);
    }
    let (order, len): (&[usize], usize) = if sha512 {
        (&SHA512_CRYPT_ORDER, 86)
    } else {
        (&SHA256_CRYPT_ORDER, 43)
    };
    if !canonical_crypt64(digest, order.len(), len) {
        return Err(HashError::ShaCryptDigest);
    }
    Ok(Inner::ShaCrypt {
        sha512,
        rounds,
        params,
        salt: salt.to_owned(),
        digest: digest.to_owned(),
    })
}

/// `$apr1$` (already removed), a salt of at most 8 characters, `$` and 22 characters of
/// digest, as Apache's `apr_md5_encode` writes them.
fn parse_apr1(rest: &str) -> Result<Inner, HashError> {
    let (salt, digest) = rest.split_once('$').ok_or(HashError::Apr1Digest)?;
    if !salt_ok(salt, 8) {
        return Err(HashError::Apr1Salt);
    }
    if !canonical_crypt64(digest, APR1_ORDER.len(), 22) {
        return Err(HashError::Apr1Digest);
    }
    Ok(Inner::Apr1 {
        salt: salt.to_owned(),
        digest: digest.to_owned(),
    })
}

/// `{SHA}` (already removed) then the standard padded base64 of the SHA-1 of the
/// password, as `htpasswd -s` writes it.
fn parse_sha1(encoded: &str) -> Result<Inner, HashError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| HashError::Sha1Digest)?;
    let digest: [u8; 20] = raw.try_into().map_err(|_| HashError::Sha1Digest)?;
    Ok(Inner::Sha1 { digest })
}

/// Salts are used as the bytes written, so any printable ASCII but the `$` that ends
/// them is accepted; tools only write `[./0-9A-Za-z]`. An empty salt is allowed, as in
/// glibc and Apache.
fn salt_ok(salt: &str, max: usize) -> bool {
    salt.len() <= max && salt.bytes().all(|b| b.is_ascii_graphic() && b != b'$')
}

/// The alphabet of crypt's base64 ("./0-9A-Za-z"), which the schemes of the crypt family
/// write six bits at a time, least significant first.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// The order in which each scheme writes its digest bytes. Each group of three is the
// (B0, B1, B2) of one `b64_from_24bit(B2, B1, B0, 4)` call of Drepper's spec, step 22 e),
// or of one `to64` call of Apache's apr_md5.c for apr1; a shorter last group is written
// with one character more than it has bytes.
const SHA256_CRYPT_ORDER: [usize; 32] = [
    20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28,
    18, 29, 19, 9, 30, 31,
];
const SHA512_CRYPT_ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];
const APR1_ORDER: [usize; 16] = [12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11];

fn crypt64_value(c: u8) -> Option<u32> {
    CRYPT64
        .iter()
        .position(|&a| a == c)
        .and_then(|v| u32::try_from(v).ok())
}

/// True when `text` is exactly what writing `bytes` digest bytes in crypt base64 gives:
/// the right length, the alphabet, and zero in the bits the last character has beyond
/// the digest. A digest failing this could not be produced by any password.
fn canonical_crypt64(text: &str, bytes: usize, len: usize) -> bool {
    let tail = bytes % 3;
    let (Some(&last), true) = (text.as_bytes().last(), text.len() == len) else {
        return false;
    };
    if !text.bytes().all(|c| crypt64_value(c).is_some()) {
        return false;
    }
    // A last group of n bytes (8n bits) is written as n + 1 characters (6n + 6 bits);
    // its last character carries 8n - 6n = 2n bits of the digest.
    match (tail, crypt64_value(last)) {
        (0, Some(_)) => true,
        (n, Some(v)) => v < (1 << (2 * n)),
        (_, None) => false,
    }
}

/// Writes `raw` in crypt base64 in the scheme's `order` and compares it with the stored
/// `expected` text in constant time. Both are canonical, so equal text is an equal digest.
fn encoded_eq(raw: &[u8], order: &[usize], expected: &str) -> bool {
    let mut encoded = Vec::with_capacity(expected.len());
    for group in order.chunks(3) {
        let mut word = 0u32;
        for (shift, &index) in group.iter().enumerate() {
            word |= u32::from(raw.get(index).copied().unwrap_or(0)) << (8 * shift);
        }
        for _ in 0..=group.len() {
            encoded.push(CRYPT64[(word & 0x3f) as usize]);
            word >>= 6;
        }
    }
    encoded.as_slice().ct_eq(expected.as_bytes()).into()
}

/// Apache's MD5 crypt, `apr_md5_encode` in apr-util's crypto/apr_md5.c: Poul-Henning
/// Kamp's FreeBSD MD5-crypt with the magic "$apr1$" in place of "$1$".
fn apr1(password: &[u8], salt: &[u8]) -> [u8; 16] {
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$apr1$");
    ctx.update(salt);

    let alternate: [u8; 16] = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize()
        .into();
    let mut left = password.len();
    while left > 0 {
        let take = left.min(alternate.len());
        ctx.update(alternate.get(..take).unwrap_or_default());
        left -= take;
    }

    // For each bit of the length, low first: a zero byte for a 1 bit, the first byte of
    // the password for a 0 bit (the original's "weird" step, kept for compatibility).
    let mut bits = password.len();
    while bits != 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(password.get(..1).unwrap_or_default());
        }
        bits >>= 1;
    }
    let mut digest: [u8; 16] = ctx.finalize().into();

    // 1000 rounds, to slow down guessing.
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round % 2 == 1 {
            ctx.update(password);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round % 2 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(password);
        }
        digest = ctx.finalize().into();
    }
    digest
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const CORRECT: &str = "correct horse";
    const COLONS: &str = "pa:ss:word";
    const UTF8: &str = "pässwörd✓";

    /// (hash, the password it was made from, scheme). Every hash was produced by a tool
    /// other than this crate, with the command in the comment above its group.
    const VECTORS: &[(&str, &str, &str)] = &[
        // htpasswd 2.4 (Debian apache2-utils): `htpasswd -nbB -C 4 u PASSWORD`
        ("$2y$04$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK", CORRECT, "bcrypt"),
        ("$2y$04$pYpZ2EHGreyCsSBg0/X8oOz1XUY5pcZTKY9O6b660arlfHccP6kNW", COLONS, "bcrypt"),
        ("$2y$04$V5xuz80PjCadIeZIe8bMwe9iNh6dZEJ9XZN39F8RPNvI7ythOGoOG", UTF8, "bcrypt"),
        ("$2y$04$5GqRoXran.WS9Vgiyygsn.t.i2vpPSxNGGDTixcLPnJ.lBjlK8ILC", "", "bcrypt"),
        // Python bcrypt 5.0.0: `bcrypt.hashpw(pw, bcrypt.gensalt(rounds=4, prefix=b"2a"))`
        ("$2a$04$quFXkUIzId3NOWRFt69WPO4rirfwk0Phj87XQZXUv6zdD3/.Y70K6", CORRECT, "bcrypt"),
        ("$2a$04$3y6rV.VK2DHlVI8h1DzSEekvmDZdq/dKVn4SeKJqhnILFLlXJsCm6", COLONS, "bcrypt"),
        ("$2a$04$0uz5IWtlTEE/ayaeKOdw.uiwoN1ZkGWCxqlm3aM1ED6dTI5dWcBi.", UTF8, "bcrypt"),
        ("$2a$04$UCRONtNa1jAARZ43aB5LKOO6IgxXIhBv2JYzaJzJdi30TIhrFlOJK", "", "bcrypt"),
        // Python bcrypt 5.0.0: `bcrypt.hashpw(pw, bcrypt.gensalt(rounds=5, prefix=b"2b"))`
        ("$2b$05$U6mflhfG2PYcDXOsXHh5TO1IYwMmyZMdbnC1Rrwn/2uG/GVamy5oK", CORRECT, "bcrypt"),
        ("$2b$05$kuaZjat5mKBbMNezgyB75OAs62O874P9brtjy70pcSeYgMFtM1IRi", COLONS, "bcrypt"),
        ("$2b$05$0QNu9A7vihahj5vkzEXgTO3Rz1bBdP6HuLH1E2sUUxV7iKJPHRMAa", UTF8, "bcrypt"),
        ("$2b$05$KlyPzn2w5xi.ovXyRHUsiexGv/9qhWvXRJzGVGO90JCLF3U3icYMi", "", "bcrypt"),
        // Python bcrypt 5.0.0: `bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=10))`
        ("$2b$10$9rykMkZqIRODFeHqNXwBye6g5wb1on4uqsBW3N3ELOEch84jR8XOO", CORRECT, "bcrypt"),
        // htpasswd: `htpasswd -nb2 u PASSWORD` (no rounds=, so 5000)
        ("$5$nzW27z/5GESl0eWl$3tUItFEw2hexNA4woiTkC1evuRfCM.fBybbgorlmvBB", CORRECT, "sha256-crypt"),
        ("$5$s5H4Fy1hi4LCGIkE$crgWvHAWZNG4MjnWWfpmCiFmeiQQClrl7cos0jtuXS7", COLONS, "sha256-crypt"),
        ("$5$w3.te2tHUyAyQZcl$8iCaZblABEcQwzSCVCZjCAQ0K3raTnwnZ.Kki0XZt9/", UTF8, "sha256-crypt"),
        ("$5$DAh.6oQalgs.TBxr$6naW1DqpaEawGa/0DKNuTTtnvNYFWX2N4rNezAt6lg3", "", "sha256-crypt"),
        // htpasswd: `htpasswd -nb2 -r 1000 u PASSWORD`
        ("$5$rounds=1000$wD9hzJcJImerZxSN$j2AMxud.E5OXrR2AGahkC84XQ0Wakufo.QiwIBQCoB2", CORRECT, "sha256-crypt"),
        ("$5$rounds=1000$WZJFK7LRUIKEUiz9$xbLpfoACzUX.C1aK3QSxahwFJrpywuV0k9q7njuEqc7", COLONS, "sha256-crypt"),
        ("$5$rounds=1000$wP79ijh0c8MGsdGa$JuTsgJ3/N6.QBq1OLsVtRDSJRFii53eq2C5WVuVTmbC", UTF8, "sha256-crypt"),
        ("$5$rounds=1000$USJkd.bMwKOr3jDD$pXYBW8Ij92ibxoTgdDoWj18vgBVFKokXyt2m9DVhJ9/", "", "sha256-crypt"),
        // OpenSSL 3.0: `openssl passwd -5 PASSWORD`, then with `-salt short`,
        // `-salt 'rounds=5000$explicit'` and `-salt 'rounds=2000$abc'`
        ("$5$AjZq77rqqqVKAija$fDDv0TkB07uZdiz.900ONIPWOWPAnUNG40TBIoJu8c5", CORRECT, "sha256-crypt"),
        ("$5$short$zcR083ghWLoWl18WrlP31BYbZAdiyYFNuPkrdLUNuEB", CORRECT, "sha256-crypt"),
        ("$5$rounds=5000$explicit$g40rl.1cVnWVnWBry1FuVIDi.vJmDPwIaVmlVusWbK6", CORRECT, "sha256-crypt"),
        ("$5$rounds=2000$abc$tn7PrcfbYMM4bzkWr3qL9lYRV1Jth.gkA97OwdkPul/", CORRECT, "sha256-crypt"),
        // glibc crypt(3) through Python 3.11 `crypt.crypt(PASSWORD, SETTING)`: an empty salt,
        // and the first two inputs of the test table in Drepper's SHA-crypt spec (the
        // 20-character salt of the second one comes back cut to 16)
        ("$5$$SCAp760RlvU0CgD9TQAY9wchWGPvPJ8P8S7gF/3F/S0", CORRECT, "sha256-crypt"),
        ("$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!", "sha256-crypt"),
        ("$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA", "Hello world!", "sha256-crypt"),
        ("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!", "sha512-crypt"),
        ("$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", "Hello world!", "sha512-crypt"),
        ("$6$0123456789abcdef$lDHzA5IdO41viXIs6llkDKq4Uh2VG9JXIYJ.taq2zlNFqBnKQ0/fOUW0Zoz49ZnOpe2ACY.PoF6wosL.jL3Af0", CORRECT, "sha512-crypt"),
        // htpasswd: `htpasswd -nb5 u PASSWORD`
        ("$6$/9vKzUInccIT/m1Z$Qd8.I6uSU3fcBEg/HL.8Ch2VEnfncABWQY24H6CDtorBXnsNoCiZKzCunvEPYE/ReMFpsGHWKh.m0g/S1SnOy.", CORRECT, "sha512-crypt"),
        ("$6$dSyDiGYxgpzkoBJi$H3Pn0JYzN9Bb1qfxCdunavLswbvNQRHZUFFt5FtWMja4nJWqaVa66kHFhuzt5ybkEt1qaNk4rRW7eEl2au.kt.", COLONS, "sha512-crypt"),
        ("$6$8z/Sgosw2J54tP4z$44EMvc8qoAQeM6nPV9ZeEkOGIk4jt9x.Wf4Ot2KbKR192tZ6alhdZxW0DjGacBUnMXUDuK3S3DTw7eD1Vmmd20", UTF8, "sha512-crypt"),
        ("$6$Ir7qoG39shSbaq/i$HrFKpm4uuGs7rBByE3WfmXj3iWeuES8dJgdMnWep3OL8EOCf1V/jFHjP2EYkRuHwdN0V3Y/D2gMaO2mlEnZNl.", "", "sha512-crypt"),
        // htpasswd: `htpasswd -nb5 -r 12345 u PASSWORD`
        ("$6$rounds=12345$TURDjZKlj.AYSm1M$tYeaqTegXR2H7YSMbjlDg6X.jZ9N1M8Pbcb5jlG1J/J.iTMLN7.fdaDpDUzr77Noirm/c.XB/Yn2SBuxjc/m71", CORRECT, "sha512-crypt"),
        ("$6$rounds=12345$CoHp8HANkiMO8xNM$GVU8D5HjTv2NSWXy3tP1.Svk6Q2L97cDuWE2cKA9w.9rjsXYNdA.kK5flSWOqD.ZDIRvgZk2GonYkRNvOpy1h/", "", "sha512-crypt"),
        // OpenSSL 3.0: `openssl passwd -6 PASSWORD`
        ("$6$UFHR9oKGdsnw6NHu$e7VOJQITUjS8xZBvYe1KOBRmNoh8U7C3ueBr5BfYXu03RIL7g0gnNXQLAeA6T9mW8r.d/Syp1dzBV3LcFa21V1", CORRECT, "sha512-crypt"),
        ("$6$pzRIv0gHrAh5JWlH$.0WnmCTcXRiH5BnMfPC36JLmsQqSz.VrL85bWy09WLlF.kpE.RwtSzGmvorr1qKUKb1dBfCXJDEleHJWWzuVw/", COLONS, "sha512-crypt"),
        // passlib 1.7.4: `sha512_crypt.using(rounds=1000, salt="ab").hash("correct horse")`
        ("$6$rounds=1000$ab$9/m79hJI.7Z/Rzu8Ffxsl/au2xxVayqEc5znsbBv64blJ1mLhjkXwL17M/GGrfnwat1g0HVoUkZmTAEbjwwCj/", CORRECT, "sha512-crypt"),
        // htpasswd: `htpasswd -nbm u PASSWORD`
        ("$apr1$ustrVdDm$F6aNk0vm3QS.cqZqxsdiZ.", CORRECT, "apr1"),
        ("$apr1$tvVrNGGh$.MVcaqivZpfwkyx34Ad980", COLONS, "apr1"),
        ("$apr1$ta46qXmu$Xb7EVFiebFbHlHS46z4k91", UTF8, "apr1"),
        ("$apr1$Es9iJMev$TT6qDkVUxcePfMAYBNda/0", "", "apr1"),
        // OpenSSL 3.0: `openssl passwd -apr1 PASSWORD`, then with `-salt a`, `-salt ''` and
        // `-salt 123456789` (cut to 8)
        ("$apr1$/nrZP7kD$vII.JBg8pRcZT62nD4awB.", CORRECT, "apr1"),
        ("$apr1$3ncPrOS8$4W9JIGcHiG9kmEaKlfQsn.", COLONS, "apr1"),
        ("$apr1$BNVCH5Fw$R0fz85sspLR5GC4EpnOya0", UTF8, "apr1"),
        ("$apr1$LPHyg4yX$Aq7I1y5Sw1KCPlSvhtCBy.", "", "apr1"),
        ("$apr1$a$4hvVz1ZYp9jwYWd9JRfWy1", CORRECT, "apr1"),
        ("$apr1$$Kk3FVxmBymAi8nmLHdg0s/", CORRECT, "apr1"),
        ("$apr1$12345678$DvW2dtLO13KlDSRAQu7w8.", CORRECT, "apr1"),
        // htpasswd: `htpasswd -nbs u PASSWORD`
        ("{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=", CORRECT, "sha1"),
        ("{SHA}pLp8MbgoSRFsxTIwL804UjA3Bek=", COLONS, "sha1"),
        ("{SHA}pQZdvsMbeL9694csNFiFl2IHbLs=", UTF8, "sha1"),
        ("{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "", "sha1"),
        // {PLAIN} is written by hand: the password follows the prefix as is.
        ("{PLAIN}correct horse", CORRECT, "plain"),
        ("{PLAIN}pa:ss:word", COLONS, "plain"),
        ("{PLAIN}pässwörd✓", UTF8, "plain"),
        ("{PLAIN}", "", "plain"),
    ];

    fn wrong_passwords(right: &str) -> Vec<Vec<u8>> {
        let mut longer = right.as_bytes().to_vec();
        longer.push(b'x');
        let mut wrong = vec![b"wrong".to_vec(), longer, right.to_uppercase().into_bytes()];
        if let Some((_, shorter)) = right.as_bytes().split_last() {
            wrong.push(shorter.to_vec());
        }
        // Not UTF-8 at all: verify takes raw octets.
        wrong.push(vec![0xff, 0xfe, 0x00]);
        wrong.retain(|w| w != right.as_bytes());
        wrong
    }

    #[test]
    fn every_vector_verifies_its_password_and_refuses_others() {
        for &(field, right, scheme) in VECTORS {
            let hash = PasswordHash::parse(field).unwrap_or_else(|e| panic!("{field}: {e}"));
            assert_eq!(hash.scheme(), scheme, "{field}");
            assert!(hash.verify(right.as_bytes()), "{field} refused {right:?}");
            for wrong in wrong_passwords(right) {
                assert!(!hash.verify(&wrong), "{field} accepted {wrong:?}");
            }
        }
    }

    #[test]
    fn bcrypt_uses_the_first_72_bytes_like_apache() {
        // `htpasswd -nbB -C 4 u "$(printf 'a%.0s' {1..72})tail-one"`; `htpasswd -vb` of the
        // same file accepts the 72 a's followed by "tail-two" and refuses 71 a's.
        let hash =
            PasswordHash::parse("$2y$04$8tjnaijSx6tuQGe9ziwCh.ie/p5wGA/IujxAWXVTCt7cgaZelRLOO")
                .unwrap();
        let a72 = "a".repeat(72);
        assert!(hash.verify(format!("{a72}tail-one").as_bytes()));
        assert!(hash.verify(format!("{a72}tail-two").as_bytes()));
        assert!(!hash.verify(&a72.as_bytes()[1..]));
    }

    #[test]
    fn passwords_up_to_the_limit_verify_and_longer_ones_never_match() {
        let at_limit = "a".repeat(MAX_PASSWORD_LEN);
        let over_limit = "a".repeat(MAX_PASSWORD_LEN + 1);
        // Python hashlib/base64: `base64.b64encode(hashlib.sha1(b"a" * N).digest())`,
        // `openssl passwd -apr1 -salt abcdefgh` of 255 a's, and Python 3.11 (glibc)
        // `crypt.crypt("a" * 255, "$5$rounds=1000$abcdefgh$")`.
        let at = [
            "{SHA}Wv2XKZKK2Ubu5WEENOZrX5Wsy68=",
            "$apr1$abcdefgh$PzAEwb7Qc6XTagg8Qt7b/1",
            "$5$rounds=1000$abcdefgh$jVXLUiZyhV0zzDomu/w2aCiM0M0WbH5v1udVVxo5smD",
        ];
        for field in at {
            assert!(
                PasswordHash::parse(field)
                    .unwrap()
                    .verify(at_limit.as_bytes()),
                "{field}"
            );
        }
        let over = PasswordHash::parse("{SHA}nHhRKtFQyLXYkYOVrQ5RaTl9K2I=").unwrap();
        assert!(!over.verify(over_limit.as_bytes()));

        let plain = PasswordHash::parse(&format!("{{PLAIN}}{at_limit}")).unwrap();
        assert!(plain.verify(at_limit.as_bytes()));
        assert_eq!(
            PasswordHash::parse(&format!("{{PLAIN}}{over_limit}")).unwrap_err(),
            HashError::PlainTooLong
        );
    }

    /// A valid bcrypt field to damage: htpasswd `htpasswd -nbB -C 4 u 'correct horse'`.
    const BCRYPT: &str = "$2y$04$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK";
    const BCRYPT_SALT_DIGEST: &str = "AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK";
    /// `openssl passwd -5 -salt short 'correct horse'` and its digest.
    const SHA256_DIGEST: &str = "zcR083ghWLoWl18WrlP31BYbZAdiyYFNuPkrdLUNuEB";
    /// `htpasswd -nb5 u 'correct horse'`: the digest.
    const SHA512_DIGEST: &str =
        "Qd8.I6uSU3fcBEg/HL.8Ch2VEnfncABWQY24H6CDtorBXnsNoCiZKzCunvEPYE/ReMFpsGHWKh.m0g/S1SnOy.";

    #[test]
    fn malformed_and_unknown_fields_are_refused_with_the_reason() {
        use HashError::*;
        let cases: Vec<(String, HashError)> = vec![
            (String::new(), Empty),
            // Plain text without {PLAIN}, and schemes we do not take.
            ("correct horse".into(), UnknownScheme),
            ("secret".into(), UnknownScheme),
            // `htpasswd -nbd u 'correct horse'` (DES crypt)
            ("9Dy9qu5Z3fjDI".into(), UnknownScheme),
            // `openssl passwd -1 'correct horse'` (MD5-crypt, not Apache's)
            ("$1$vVbuz/GU$qPTLAgq9iGWaGqxVIzzHt.".into(), UnknownScheme),
            (format!("$2x$04${BCRYPT_SALT_DIGEST}"), UnknownScheme),
            (format!("$2$04${BCRYPT_SALT_DIGEST}"), UnknownScheme),
            ("{sha}L55TUjtiq8FBorTWAZ0jy6g129A=".into(), UnknownScheme),
            ("{SSHA}L55TUjtiq8FBorTWAZ0jy6g129A=".into(), UnknownScheme),
            ("{plain}secret".into(), UnknownScheme),
            // {PLAIN} with what no Proxy-Authorization can carry.
            ("{PLAIN}a\tb".into(), PlainControl),
            ("{PLAIN}ab\x7f".into(), PlainControl),
            (" {PLAIN}secret".into(), UnknownScheme),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA".into(),
                UnknownScheme,
            ),
            // bcrypt
            (format!("$2y$03${BCRYPT_SALT_DIGEST}"), BcryptCost),
            (format!("$2y$32${BCRYPT_SALT_DIGEST}"), BcryptCost),
            (format!("$2y$4${BCRYPT_SALT_DIGEST}"), BcryptCost),
            (format!("$2y$+4${BCRYPT_SALT_DIGEST}"), BcryptCost),
            (format!("$2y$004${BCRYPT_SALT_DIGEST}"), BcryptCost),
            ("$2y$04".into(), BcryptCost),
            (format!("$2y$04${}", &BCRYPT_SALT_DIGEST[1..]), BcryptFormat),
            (format!("{BCRYPT}A"), BcryptFormat),
            (BCRYPT.replace("KRRy", "KR+y"), BcryptFormat),
            // The last salt character carries 2 bits past the 16 bytes, which must be 0.
            (BCRYPT.replace("Q14uc", "Q14vc"), BcryptFormat),
            (
                format!("$2y$04${}é", &BCRYPT_SALT_DIGEST[..51]),
                BcryptFormat,
            ),
            (
                format!("$2y$04$AQdKwLUNEv5ps.VIYaQ1é{}", &BCRYPT_SALT_DIGEST[22..]),
                BcryptFormat,
            ),
            // SHA-crypt
            (
                format!("$5$rounds=999$short${SHA256_DIGEST}"),
                ShaCryptRounds,
            ),
            (
                format!("$5$rounds=1000000000$short${SHA256_DIGEST}"),
                ShaCryptRounds,
            ),
            (
                format!("$5$rounds=99999999999999999999$short${SHA256_DIGEST}"),
                ShaCryptRounds,
            ),
            (format!("$5$rounds=$short${SHA256_DIGEST}"), ShaCryptRounds),
            (
                format!("$5$rounds=+5000$short${SHA256_DIGEST}"),
                ShaCryptRounds,
            ),
            (
                format!("$5$rounds=5k$short${SHA256_DIGEST}"),
                ShaCryptRounds,
            ),
            ("$6$rounds=5000".into(), ShaCryptRounds),
            (
                format!("$5$0123456789abcdefX${SHA256_DIGEST}"),
                ShaCryptSalt,
            ),
            (format!("$5$sh rt${SHA256_DIGEST}"), ShaCryptSalt),
            (format!("$5$shört${SHA256_DIGEST}"), ShaCryptSalt),
            ("$5$short".into(), ShaCryptDigest),
            ("$5$short$".into(), ShaCryptDigest),
            (format!("$5$short${}", &SHA256_DIGEST[1..]), ShaCryptDigest),
            (format!("$5$short${SHA256_DIGEST}A"), ShaCryptDigest),
            (format!("$5$short${SHA256_DIGEST}$"), ShaCryptDigest),
            (format!("$5$short${}+", &SHA256_DIGEST[1..]), ShaCryptDigest),
            // Bits past the 32 bytes in the last character ('B' is 13 < 16, 'z' is 63).
            (
                format!("$5$short${}z", &SHA256_DIGEST[..42]),
                ShaCryptDigest,
            ),
            (format!("$6$short${SHA256_DIGEST}"), ShaCryptDigest),
            (format!("$5$short${SHA512_DIGEST}"), ShaCryptDigest),
            // Bits past the 64 bytes in the last character ('.' is 0, '2' is 4).
            (
                format!("$6$/9vKzUInccIT/m1Z${}2", &SHA512_DIGEST[..85]),
                ShaCryptDigest,
            ),
            // Apache MD5
            ("$apr1$123456789$DvW2dtLO13KlDSRAQu7w8.".into(), Apr1Salt),
            ("$apr1$ustr\tDm$F6aNk0vm3QS.cqZqxsdiZ.".into(), Apr1Salt),
            ("$apr1$ustrVdDm".into(), Apr1Digest),
            ("$apr1$ustrVdDm$F6aNk0vm3QS.cqZqxsdiZ".into(), Apr1Digest),
            ("$apr1$ustrVdDm$F6aNk0vm3QS.cqZqxsdiZ..".into(), Apr1Digest),
            ("$apr1$ustrVdDm$F6aNk0vm3QS=cqZqxsdiZ.".into(), Apr1Digest),
            ("$apr1$ustrVdDm$F6aNk0vm3QS.cqZqxsdiZz".into(), Apr1Digest),
            // {SHA}
            ("{SHA}".into(), Sha1Digest),
            ("{SHA}L55TUjtiq8FBorTWAZ0jy6g129A".into(), Sha1Digest),
            ("{SHA}L55TUjtiq8FBorTWAZ0jy6g129B=".into(), Sha1Digest),
            ("{SHA}L55TUjtiq8FBorTWAZ0jy6g129A= ".into(), Sha1Digest),
            ("{SHA}L55T-jtiq8FBorTWAZ0jy6g129A=".into(), Sha1Digest),
            // base64 of 19 bytes, and of the 32-byte SHA-256 of "correct horse" (Python)
            ("{SHA}3OHwLKfMS2OsQwCLejzpbnAqDA==".into(), Sha1Digest),
            (
                "{SHA}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE=".into(),
                Sha1Digest,
            ),
        ];
        for (field, expected) in cases {
            let got = PasswordHash::parse(&field).map(|h| h.scheme());
            assert_eq!(got.unwrap_err(), expected, "{field:?}");
        }
    }

    #[test]
    fn debug_shows_the_scheme_and_none_of_the_hash() {
        for &(field, _, scheme) in VECTORS {
            let debug = format!("{:?}", PasswordHash::parse(field).unwrap());
            assert_eq!(debug, format!("PasswordHash {{ scheme: {scheme:?}, .. }}"));
            // The salt and digest are the parts after the scheme prefix.
            let material = field.rsplit(['$', '}']).next().unwrap();
            assert!(material.is_empty() || !debug.contains(material), "{debug}");
        }
    }

    #[test]
    fn error_messages_never_repeat_the_field() {
        let fields = [
            "correct horse",
            "$2y$03$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK",
            "$2y$04$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPO",
            "$5$rounds=10$short$zcR083ghWLoWl18WrlP31BYbZAdiyYFNuPkrdLUNuEB",
            "$5$0123456789abcdefX$zcR083ghWLoWl18WrlP31BYbZAdiyYFNuPkrdLUNuEB",
            "$5$short$zcR083ghWLoWl18WrlP31BYbZAdiyYFNuPkrdLUNuE",
            "$apr1$123456789$DvW2dtLO13KlDSRAQu7w8.",
            "$apr1$ustrVdDm$F6aNk0vm3QS.cqZqxsdiZ",
            "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A",
        ];
        for field in fields {
            let error = PasswordHash::parse(field).unwrap_err();
            let shown = format!("{error} {error:?}");
            let material = field.rsplit(['$', '}']).next().unwrap();
            assert!(!shown.contains(material), "{field}: {shown}");
        }
        let long = format!("{{PLAIN}}{}", "s3cret".repeat(200));
        let error = PasswordHash::parse(&long).unwrap_err();
        assert!(!format!("{error} {error:?}").contains("s3cret"));
    }

    #[test]
    fn cost_ranks_schemes_by_the_work_of_one_verify() {
        let cost = |field: &str| PasswordHash::parse(field).unwrap().cost();
        let ranked = [
            "{PLAIN}correct horse",
            "$5$rounds=1000$wD9hzJcJImerZxSN$j2AMxud.E5OXrR2AGahkC84XQ0Wakufo.QiwIBQCoB2",
            "$apr1$ustrVdDm$F6aNk0vm3QS.cqZqxsdiZ.",
            "$2y$04$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK",
            "$2b$05$U6mflhfG2PYcDXOsXHh5TO1IYwMmyZMdbnC1Rrwn/2uG/GVamy5oK",
            // 5000 rounds of SHA-256 over a 255-byte password outweigh bcrypt cost 5.
            "$5$nzW27z/5GESl0eWl$3tUItFEw2hexNA4woiTkC1evuRfCM.fBybbgorlmvBB",
            "$6$/9vKzUInccIT/m1Z$Qd8.I6uSU3fcBEg/HL.8Ch2VEnfncABWQY24H6CDtorBXnsNoCiZKzCunvEPYE/ReMFpsGHWKh.m0g/S1SnOy.",
            "$2b$10$9rykMkZqIRODFeHqNXwBye6g5wb1on4uqsBW3N3ELOEch84jR8XOO",
        ];
        for pair in ranked.windows(2) {
            assert!(cost(pair[0]) < cost(pair[1]), "{} !< {}", pair[0], pair[1]);
        }
        assert_eq!(cost("{SHA}L55TUjtiq8FBorTWAZ0jy6g129A="), cost("{PLAIN}x"));
        // The largest bcrypt cost does not overflow.
        let max = format!("$2y$31${BCRYPT_SALT_DIGEST}");
        assert!(cost(&max) > cost(&format!("$2y$30${BCRYPT_SALT_DIGEST}")));
    }
}
