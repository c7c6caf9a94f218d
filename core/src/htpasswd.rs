//! htpasswd text, as Apache's `htpasswd` writes it: one `user:hash` a line. Parsed once,
//! when the configuration is loaded, and refused whole at the first bad line, so that a
//! typo never silently locks a user out or lets a malformed hash reach a request.
//!
//! Each line is trimmed of leading and trailing spaces and tabs (and the `\r` of CRLF),
//! as Apache's `ap_cfg_getline` does for the files `mod_authn_file` reads: tools never
//! write such whitespace, and left in it would become an invisible part of the hash. So a
//! `{PLAIN}` password cannot start or end with a space or tab; use a real hash for one.

use std::collections::BTreeMap;
use std::fmt;

use crate::credentials::MAX_USER_LEN;
use crate::hash::{HashError, PasswordHash};

/// One user of the htpasswd text.
#[derive(Clone, Debug)]
pub struct Entry {
    /// 1-based line number in the text, for messages.
    pub line: usize,
    /// The user name exactly as written: non-empty, no `:`, no control character, no
    /// space at either end.
    pub user: String,
    pub hash: PasswordHash,
}

/// Why htpasswd text was refused. Every kind but `NoUsers` names its 1-based line; the
/// message never holds a hash or a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HtpasswdError {
    /// A line that is neither blank nor a comment has no `:`.
    MissingColon { line: usize },
    /// The line starts with `:`.
    EmptyUser { line: usize },
    /// The user name has a control character (it may be forwarded in a header).
    ControlCharInUser { line: usize },
    /// The user name ends with a space, which no request could match.
    SpaceAfterUser { line: usize },
    /// The user name is longer than any credential may carry.
    UserTooLong { line: usize },
    /// The user was already defined on `first_line`.
    DuplicateUser {
        line: usize,
        user: String,
        first_line: usize,
    },
    /// The hash after the `:` was refused.
    BadHash {
        line: usize,
        user: String,
        error: HashError,
    },
    /// Only blank lines and comments.
    NoUsers,
}

impl HtpasswdError {
    /// The 1-based line the error is on; `None` for `NoUsers`.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::MissingColon { line }
            | Self::EmptyUser { line }
            | Self::ControlCharInUser { line }
            | Self::SpaceAfterUser { line }
            | Self::UserTooLong { line }
            | Self::DuplicateUser { line, .. }
            | Self::BadHash { line, .. } => Some(*line),
            Self::NoUsers => None,
        }
    }
}

impl fmt::Display for HtpasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingColon { line } => {
                write!(f, "line {line}: expected `user:hash`, found no `:`")
            }
            Self::EmptyUser { line } => write!(f, "line {line}: the user name before `:` is empty"),
            Self::ControlCharInUser { line } => {
                write!(f, "line {line}: the user name contains a control character")
            }
            Self::SpaceAfterUser { line } => write!(
                f,
                "line {line}: the user name ends with a space before `:`; remove it"
            ),
            Self::UserTooLong { line } => write!(
                f,
                "line {line}: the user name is longer than {MAX_USER_LEN} bytes, the most a \
                 credential may carry"
            ),
            Self::DuplicateUser {
                line,
                user,
                first_line,
            } => write!(
                f,
                "line {line}: user {user:?} is already defined on line {first_line}"
            ),
            Self::BadHash { line, user, error } => {
                write!(f, "line {line}: user {user:?}: {error}")
            }
            Self::NoUsers => f.write_str(
                "no users: expected `user:hash` lines, found only blank lines and comments",
            ),
        }
    }
}

impl std::error::Error for HtpasswdError {}

/// Parses htpasswd text into its users, in file order. Blank lines and lines whose first
/// non-blank character is `#` are skipped; a line is split at its first `:`, since a user
/// name cannot hold one and a hash may (`{PLAIN}a:b`).
pub fn parse(text: &str) -> Result<Vec<Entry>, HtpasswdError> {
    // A byte order mark from an editor would otherwise become part of the first user name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    // A BTreeMap, not a HashMap: its random keys would be one more host call in the VM.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    // `lines` splits at `\n` and drops the `\r` of a `\r\n`.
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim_matches([' ', '\t', '\r']);
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let (user, field) = content
            .split_once(':')
            .ok_or(HtpasswdError::MissingColon { line })?;
        if user.is_empty() {
            return Err(HtpasswdError::EmptyUser { line });
        }
        if user.chars().any(char::is_control) {
            return Err(HtpasswdError::ControlCharInUser { line });
        }
        // The line was trimmed, so only the end can hold one. Credentials whose user
        // name starts or ends with a space are refused (a header value cannot carry
        // it), so such a user could never log in: a typo to report, not to keep.
        if user.ends_with(' ') {
            return Err(HtpasswdError::SpaceAfterUser { line });
        }
        if user.len() > MAX_USER_LEN {
            return Err(HtpasswdError::UserTooLong { line });
        }
        if let Some(&first_line) = seen.get(user) {
            return Err(HtpasswdError::DuplicateUser {
                line,
                user: user.to_owned(),
                first_line,
            });
        }
        let hash = PasswordHash::parse(field).map_err(|error| HtpasswdError::BadHash {
            line,
            user: user.to_owned(),
            error,
        })?;
        seen.insert(user, line);
        entries.push(Entry {
            line,
            user: user.to_owned(),
            hash,
        });
    }
    if entries.is_empty() {
        return Err(HtpasswdError::NoUsers);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A file written by htpasswd 2.4 (Debian apache2-utils):
    /// `htpasswd -cbB -C 4 f alice 'alice pw'`, `htpasswd -bm f bob 'bob:pw'`,
    /// `htpasswd -bs f carol 'cärol'`, `htpasswd -b2 -r 1000 f dave ''`.
    const WRITTEN_BY_HTPASSWD: &str = "\
alice:$2y$04$3oNt8NEdZOl7BBZE6OdZ5eSv0DizzYO0KK9444X0N05Cqw7Rh1bhK
bob:$apr1$f6Z2wH0u$QYRIPkrKU0lVql59Val7Y1
carol:{SHA}sYOFcliZ175nR1EKxIj0EXWMLnI=
dave:$5$rounds=1000$5JXyCFhxbWB5A5L1$33nPJkgEmRzBCE4.dpJvNzvoegu5P8t0fN06EhwzGa2
";

    fn users(entries: &[Entry]) -> Vec<(usize, &str)> {
        entries.iter().map(|e| (e.line, e.user.as_str())).collect()
    }

    #[test]
    fn a_file_written_by_htpasswd_parses_and_each_password_verifies() {
        let entries = parse(WRITTEN_BY_HTPASSWD).unwrap();
        assert_eq!(
            users(&entries),
            [(1, "alice"), (2, "bob"), (3, "carol"), (4, "dave")]
        );
        let passwords = ["alice pw", "bob:pw", "cärol", ""];
        let schemes = ["bcrypt", "apr1", "sha1", "sha256-crypt"];
        for ((entry, password), scheme) in entries.iter().zip(passwords).zip(schemes) {
            assert_eq!(entry.hash.scheme(), scheme, "{}", entry.user);
            assert!(entry.hash.verify(password.as_bytes()), "{}", entry.user);
            assert!(!entry.hash.verify(b"wrong"), "{}", entry.user);
        }
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_skipped_and_lines_keep_their_numbers() {
        let text = "# users\r\n\r\n  # indented comment\r\nalice:{PLAIN}a\r\n \t \r\nbob:{PLAIN}b\n\n#x:{PLAIN}c\ncarol:{PLAIN}c";
        let entries = parse(text).unwrap();
        assert_eq!(users(&entries), [(4, "alice"), (6, "bob"), (9, "carol")]);
        // The \r of CRLF is not part of the password.
        assert!(entries[0].hash.verify(b"a"));
        assert!(!entries[0].hash.verify(b"a\r"));
    }

    #[test]
    fn the_line_splits_at_the_first_colon_so_a_password_may_hold_colons() {
        let entries = parse("carol:{PLAIN}a:b::c").unwrap();
        assert_eq!(entries[0].user, "carol");
        assert!(entries[0].hash.verify(b"a:b::c"));
        assert!(!entries[0].hash.verify(b"a"));
    }

    #[test]
    fn surrounding_spaces_and_tabs_are_trimmed_even_after_plain() {
        let text = "  alice:{PLAIN}secret \t\n\tbob:{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=  \r\n";
        let entries = parse(text).unwrap();
        assert_eq!(users(&entries), [(1, "alice"), (2, "bob")]);
        assert!(entries[0].hash.verify(b"secret"));
        assert!(!entries[0].hash.verify(b"secret \t"));
        // htpasswd -nbs u 'correct horse'
        assert!(entries[1].hash.verify(b"correct horse"));
        // Inside the password, spaces are kept.
        let inner = parse("carol:{PLAIN}a b").unwrap();
        assert!(inner[0].hash.verify(b"a b"));
        assert!(!inner[0].hash.verify(b"ab"));
    }

    #[test]
    fn user_names_are_taken_as_written_including_utf8() {
        let entries = parse("jürgen:{PLAIN}x\nJürgen:{PLAIN}y\nmary ann:{PLAIN}z").unwrap();
        assert_eq!(
            users(&entries),
            [(1, "jürgen"), (2, "Jürgen"), (3, "mary ann")]
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_user() {
        let entries = parse("\u{feff}alice:{PLAIN}a").unwrap();
        assert_eq!(entries[0].user, "alice");
    }

    #[test]
    fn bad_text_is_refused_naming_the_line() {
        use HtpasswdError::*;
        let bcrypt_cost_3 = "$2y$03$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK";
        let cases: Vec<(String, HtpasswdError)> = vec![
            (String::new(), NoUsers),
            ("\n\r\n  \n".into(), NoUsers),
            ("# only a comment\n#alice:{PLAIN}a".into(), NoUsers),
            ("alice".into(), MissingColon { line: 1 }),
            (
                "# c\nalice:{PLAIN}a\n$2y$04$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6".into(),
                MissingColon { line: 3 },
            ),
            ("\n:{PLAIN}a".into(), EmptyUser { line: 2 }),
            ("  :{PLAIN}a".into(), EmptyUser { line: 1 }),
            ("al\tice:{PLAIN}a".into(), ControlCharInUser { line: 1 }),
            ("al\u{7f}ice:{PLAIN}a".into(), ControlCharInUser { line: 1 }),
            ("al\u{85}ice:{PLAIN}a".into(), ControlCharInUser { line: 1 }),
            ("al\rice:{PLAIN}a".into(), ControlCharInUser { line: 1 }),
            ("a\0:{PLAIN}a".into(), ControlCharInUser { line: 1 }),
            (
                "alice:{PLAIN}a\ntrail :{PLAIN}a".into(),
                SpaceAfterUser { line: 2 },
            ),
            ("  lead  :{PLAIN}a".into(), SpaceAfterUser { line: 1 }),
            (
                format!("ok:{{PLAIN}}a\n{}:{{PLAIN}}a", "u".repeat(MAX_USER_LEN + 1)),
                UserTooLong { line: 2 },
            ),
            (
                "alice:{PLAIN}a\nbob:{PLAIN}b\r\n\r\nalice:{PLAIN}c".into(),
                DuplicateUser {
                    line: 4,
                    user: "alice".into(),
                    first_line: 1,
                },
            ),
            (
                "alice:".into(),
                BadHash {
                    line: 1,
                    user: "alice".into(),
                    error: HashError::Empty,
                },
            ),
            (
                "alice:{PLAIN}a\nbob:secret".into(),
                BadHash {
                    line: 2,
                    user: "bob".into(),
                    error: HashError::UnknownScheme,
                },
            ),
            (
                format!("\n\ncarol:{bcrypt_cost_3}\n"),
                BadHash {
                    line: 3,
                    user: "carol".into(),
                    error: HashError::BcryptCost,
                },
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text).unwrap_err();
            assert_eq!(error, expected, "{text:?}");
            match expected.line() {
                Some(line) => assert!(error.to_string().starts_with(&format!("line {line}: "))),
                None => assert_eq!(error, NoUsers),
            }
        }
    }

    #[test]
    fn messages_name_the_user_and_lines_but_never_the_hash() {
        let duplicate = parse("alice:{PLAIN}a\nalice:{PLAIN}b").unwrap_err();
        assert_eq!(
            duplicate.to_string(),
            "line 2: user \"alice\" is already defined on line 1"
        );

        let texts = [
            // bad bcrypt cost; a hash pasted without its user; a SHA-crypt digest too short
            "bob:$2y$03$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK",
            "$2y$04$AQdKwLUNEv5ps.VIYaQ14ucklGZsZ3VQYpmW6.wvqX/KRRyObQPOK",
            "bob:$5$short$zcR083ghWLoWl18WrlP31BYbZAdiyYFNuPkrdLUNuE",
            "bob:plaintextpassword",
        ];
        for text in texts {
            let error = parse(text).unwrap_err();
            let shown = format!("{error} {error:?}");
            let material = text.rsplit(['$', ':']).next().unwrap();
            assert!(!shown.contains(material), "{shown}");
        }
        let bad = parse("bob:plaintextpassword").unwrap_err();
        assert!(bad
            .to_string()
            .starts_with("line 1: user \"bob\": unknown hash format"));
    }

    #[test]
    fn entries_debug_shows_users_and_schemes_only() {
        let entries = parse(WRITTEN_BY_HTPASSWD).unwrap();
        let debug = format!("{entries:?}");
        assert!(debug.contains("alice") && debug.contains("\"bcrypt\""));
        for secret in [
            "3oNt8NEdZOl7BBZE6OdZ5e",
            "f6Z2wH0u",
            "sYOFcliZ175nR1",
            "5JXyCFhxbWB5A5L1",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
