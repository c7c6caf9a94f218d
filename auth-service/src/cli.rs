//! Command-line options, checked in full before the service listens, so a typo in a user or
//! rule stops the demo at once instead of showing up later as a puzzling 403. Error messages
//! never repeat a password.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::behaviour::Behaviour;
use crate::directory::Directory;

pub const USAGE: &str = "\
usage: proxy-auth-service [--listen ADDR] [--user NAME:PASSWORD]... [--users-file FILE]...
                          [--allow-host NAME:HOST]... [--realm REALM]

A small external auth service for proxy-auth (demo and tests). Prints
`listening on ADDR` on stdout once ready; logs one line per check on stderr.

  --listen ADDR           address to listen on (default 127.0.0.1:0, any free port)
  --user NAME:PASSWORD    a user with a plain-text password (repeatable)
  --users-file FILE       users as NAME:PASSWORD lines; blank and # lines skipped
  --allow-host NAME:HOST  NAME may reach only the HOSTs so listed (repeatable); a HOST
                          without a port matches every port
  --realm REALM           realm in Proxy-Authenticate challenges (default \"directory\")

User names slow-<ms>, status-<code>, garbage, close, empty and hang (any password)
make the service misbehave on purpose. GET /_calls[?user=NAME] counts checks;
POST /_reset zeroes the counts.
";

const DEFAULT_LISTEN: &str = "127.0.0.1:0";
const DEFAULT_REALM: &str = "directory";

pub enum Command {
    Help,
    Run(Options),
}

pub struct Options {
    pub listen: String,
    pub realm: String,
    pub directory: Directory,
}

/// Why the command line was refused; each message says what to change.
#[derive(Debug)]
pub enum CliError {
    NotUnicode,
    UnknownFlag(String),
    Positional,
    MissingValue(&'static str),
    GivenTwice(&'static str),
    /// A `--user` value or users-file line without `NAME:PASSWORD` shape; `where_` says which.
    BadUser {
        where_: String,
        why: &'static str,
    },
    DuplicateUser(String),
    ReservedName(String),
    UsersFile {
        path: PathBuf,
        error: std::io::Error,
    },
    BadAllowHost(String),
    AllowHostForUnknownUser(String),
    BadRealm,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::NotUnicode => write!(f, "arguments must be valid UTF-8"),
            CliError::UnknownFlag(flag) => write!(f, "unknown option {flag:?}"),
            CliError::Positional => write!(
                f,
                "unexpected argument without an option before it (every value follows a --flag)"
            ),
            CliError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            CliError::GivenTwice(flag) => write!(f, "{flag} may be given only once"),
            CliError::BadUser { where_, why } => {
                write!(f, "{where_}: expected NAME:PASSWORD, but {why}")
            }
            CliError::DuplicateUser(name) => {
                write!(f, "user {name:?} is defined twice; keep one definition")
            }
            CliError::ReservedName(name) => write!(
                f,
                "user name {name:?} is reserved for a test behaviour (slow-<ms>, status-<code>, \
                 garbage, close, empty, hang); choose another name"
            ),
            CliError::UsersFile { path, error } => {
                write!(f, "cannot read users file {}: {error}", path.display())
            }
            CliError::BadAllowHost(value) => write!(
                f,
                "--allow-host {value:?}: expected NAME:HOST with a non-empty name and host \
                 and no whitespace"
            ),
            CliError::AllowHostForUnknownUser(name) => write!(
                f,
                "--allow-host names user {name:?}, which no --user or --users-file defines"
            ),
            CliError::BadRealm => write!(
                f,
                "--realm must be non-empty printable text without '\"' or '\\' (it is sent \
                 inside a quoted string)"
            ),
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let mut args = args.into_iter();
    let mut listen = None;
    let mut realm = None;
    let mut users: Vec<(String, String, String)> = Vec::new(); // (where, name, password)
    let mut files = Vec::new();
    let mut allow_hosts = Vec::new();
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(|_| CliError::NotUnicode)?;
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value)),
            _ => (arg.clone(), None),
        };
        let flag: &'static str = match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => "--listen",
            "--user" => "--user",
            "--users-file" => "--users-file",
            "--allow-host" => "--allow-host",
            "--realm" => "--realm",
            other if other.starts_with('-') => return Err(CliError::UnknownFlag(flag)),
            _ => return Err(CliError::Positional),
        };
        let value = match inline {
            Some(v) => v.to_string(),
            None => args
                .next()
                .ok_or(CliError::MissingValue(flag))?
                .into_string()
                .map_err(|_| CliError::NotUnicode)?,
        };
        match flag {
            "--listen" => set_once(&mut listen, value, flag)?,
            "--realm" => set_once(&mut realm, value, flag)?,
            "--user" => {
                let (name, password) = split_user(&value, "--user")?;
                users.push(("--user".to_string(), name, password));
            }
            "--users-file" => files.push(PathBuf::from(value)),
            _ => allow_hosts.push(value),
        }
    }
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|error| CliError::UsersFile {
            path: path.clone(),
            error,
        })?;
        users.extend(parse_users_file(&text, &path.display().to_string())?);
    }

    let mut directory = Directory::default();
    for (where_, name, password) in users {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(CliError::BadUser {
                where_,
                why: "the name is empty or has control characters",
            });
        }
        if Behaviour::from_user(&name).is_some() {
            return Err(CliError::ReservedName(name));
        }
        if !directory.add_user(&name, &password) {
            return Err(CliError::DuplicateUser(name));
        }
    }
    for rule in allow_hosts {
        let (name, host) = rule
            .split_once(':')
            .filter(|(n, h)| !n.is_empty() && !h.is_empty() && !h.contains(char::is_whitespace))
            .ok_or_else(|| CliError::BadAllowHost(rule.clone()))?;
        if !directory.has_user(name) {
            return Err(CliError::AllowHostForUnknownUser(name.to_string()));
        }
        directory.allow_host(name, host);
    }

    let realm = realm.unwrap_or_else(|| DEFAULT_REALM.to_string());
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(CliError::BadRealm);
    }
    Ok(Command::Run(Options {
        listen: listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
        realm,
        directory,
    }))
}

fn set_once(slot: &mut Option<String>, value: String, flag: &'static str) -> Result<(), CliError> {
    if slot.replace(value).is_some() {
        return Err(CliError::GivenTwice(flag));
    }
    Ok(())
}

/// Splits `NAME:PASSWORD` at the first colon, as Basic does (RFC 7617 s2).
fn split_user(value: &str, where_: &str) -> Result<(String, String), CliError> {
    value
        .split_once(':')
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .ok_or_else(|| CliError::BadUser {
            where_: where_.to_string(),
            why: "there is no ':'",
        })
}

/// `NAME:PASSWORD` lines; blank lines and `#` comments are skipped, CRLF endings accepted.
fn parse_users_file(text: &str, source: &str) -> Result<Vec<(String, String, String)>, CliError> {
    let mut users = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let where_ = format!("{source} line {}", index + 1);
        let (name, password) = split_user(line, &where_)?;
        users.push((where_, name, password));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::directory::Verdict;

    fn run(args: &[&str]) -> Result<Options, CliError> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(options) => Ok(options),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn defaults_listen_on_a_free_loopback_port_with_realm_directory() {
        let options = run(&[]).unwrap();
        assert_eq!(options.listen, "127.0.0.1:0");
        assert_eq!(options.realm, "directory");
        assert_eq!(options.directory.user_count(), 0);
    }

    #[test]
    fn users_rules_and_realm_are_taken_in_both_flag_forms() {
        let options = run(&[
            "--listen=0.0.0.0:9000",
            "--user",
            "alice:se:cret",
            "--user=bob:pw",
            "--allow-host",
            "bob:example.com",
            "--realm",
            "corp",
        ])
        .unwrap();
        assert_eq!(options.listen, "0.0.0.0:9000");
        assert_eq!(options.realm, "corp");
        let d = &options.directory;
        assert_eq!(d.check("alice", "se:cret", None), Verdict::Allow);
        assert_eq!(
            d.check("bob", "pw", Some("other.test")),
            Verdict::HostNotAllowed
        );
        assert_eq!(d.check("bob", "pw", Some("example.com")), Verdict::Allow);
    }

    #[test]
    fn help_wins_over_other_arguments() {
        assert!(matches!(
            parse(["--user", "a:b", "--help"].map(OsString::from)),
            Ok(Command::Help)
        ));
    }

    #[test]
    fn users_files_skip_comments_and_blank_lines_and_accept_crlf() {
        let users = parse_users_file("# demo\r\nalice:secret\r\n\r\n  \nbob:a:b\n", "f").unwrap();
        let pairs: Vec<(&str, &str)> = users
            .iter()
            .map(|(_, n, p)| (n.as_str(), p.as_str()))
            .collect();
        assert_eq!(pairs, [("alice", "secret"), ("bob", "a:b")]);
    }

    #[test]
    fn a_users_file_line_without_colon_is_named_by_line_number_only() {
        let err = parse_users_file("alice:x\nsecretpassword\n", "users.txt").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("users.txt line 2"), "{message}");
        assert!(!message.contains("secretpassword"), "{message}");
    }

    #[test]
    fn bad_command_lines_are_refused_with_a_reason() {
        let cases: &[(&[&str], &str)] = &[
            (&["--user"], "--user needs a value"),
            (&["--user", "alicesecret"], "no ':'"),
            (&["--user", ":pw"], "name is empty"),
            (&["--user", "a:1", "--user", "a:2"], "defined twice"),
            (&["--user", "hang:x"], "reserved"),
            (&["--user", "slow-10:x"], "reserved"),
            (&["--user", "status-500:x"], "reserved"),
            (&["--allow-host", "ghost:example.com"], "no --user"),
            (
                &["--user", "a:1", "--allow-host", "a:"],
                "expected NAME:HOST",
            ),
            (
                &["--user", "a:1", "--allow-host", "a"],
                "expected NAME:HOST",
            ),
            (&["--realm", "a\"b"], "--realm must be"),
            (&["--realm", ""], "--realm must be"),
            (&["--listen", "a", "--listen", "b"], "only once"),
            (&["--verbose"], "unknown option"),
            (&["alice:secret"], "without an option"),
            (
                &["--users-file", "/nonexistent/users.txt"],
                "cannot read users file",
            ),
        ];
        for (args, expected) in cases {
            let message = run(args).err().expect("refused").to_string();
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(!message.contains("secret"), "{args:?} leaked: {message}");
        }
    }
}
