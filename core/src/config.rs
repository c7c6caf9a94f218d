//! The plugin configuration: JSON in, a validated `Config` out, or an error
//! that names the field and what it would accept.
//!
//! Everything is checked here, once, when the plugin is configured, so that a
//! request never meets a half-valid setting.

use std::fmt;

use serde::Deserialize;

use crate::challenge;
use crate::external;
use crate::htpasswd::{self, HtpasswdError};
use crate::users::UserDb;

/// The longest realm accepted.
const MAX_REALM_LEN: usize = 256;

/// The largest cache we agree to keep, per worker or shared, to bound memory.
const MAX_CACHE_ENTRIES: usize = 1_000_000;

/// The costliest hash accepted, in `PasswordHash::cost` units (about native
/// nanoseconds for the longest password): bcrypt cost 14, SHA-512-crypt at about
/// 1.8 million rounds, SHA-256-crypt at about 4.1 million.
/// A check blocks the worker, and in the wasm VM it takes several times longer;
/// past this, every cache miss or wrong password stalls a worker for seconds.
const MAX_HASH_COST: u64 = 1_500_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default)]
    users: Option<String>,
    #[serde(default)]
    users_env: Option<String>,
    #[serde(default)]
    user_header: Option<String>,
    #[serde(default)]
    keep_proxy_authorization: bool,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    external: Option<RawExternal>,
}

fn default_realm() -> String {
    "proxy".to_owned()
}

/// How long and how many successful local verifications a worker remembers.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "default_cache_ttl")]
    pub ttl_seconds: u64,
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
}

fn default_cache_ttl() -> u64 {
    300
}

fn default_cache_entries() -> usize {
    1024
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: default_cache_ttl(),
            max_entries: default_cache_entries(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExternal {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_attributes")]
    attributes: Vec<Attribute>,
    #[serde(default)]
    forward_headers: Vec<String>,
    #[serde(default)]
    copy_headers: Vec<String>,
    #[serde(default = "default_failure_status")]
    failure_status: u32,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    cache: ExternalCacheConfig,
}

/// What of the proxied request the service is told, each in its own
/// `x-forwarded-*` header. Only what is sent is part of the cache key, so a
/// service that decides per destination can leave out `path` and have one
/// call per user and host rather than per URL.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Attribute {
    Method,
    Host,
    Path,
}

impl Attribute {
    /// The name the configuration writes it with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Host => "host",
            Self::Path => "path",
        }
    }
}

fn default_attributes() -> Vec<Attribute> {
    vec![Attribute::Method, Attribute::Host, Attribute::Path]
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_timeout_ms() -> u64 {
    1000
}

fn default_failure_status() -> u32 {
    503
}

/// Lifetimes of the external service's answers in the cache all workers share.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalCacheConfig {
    #[serde(default = "default_allow_ttl")]
    pub allow_ttl_seconds: u64,
    #[serde(default = "default_deny_ttl")]
    pub deny_ttl_seconds: u64,
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
}

fn default_allow_ttl() -> u64 {
    60
}

fn default_deny_ttl() -> u64 {
    5
}

impl Default for ExternalCacheConfig {
    fn default() -> Self {
        Self {
            allow_ttl_seconds: default_allow_ttl(),
            deny_ttl_seconds: default_deny_ttl(),
            max_entries: default_cache_entries(),
        }
    }
}

/// The external auth service mode, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub attributes: Vec<Attribute>,
    /// Lowercase names.
    pub forward_headers: Vec<String>,
    /// Lowercase names.
    pub copy_headers: Vec<String>,
    pub failure_status: u32,
    pub fail_open: bool,
    pub cache: ExternalCacheConfig,
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub realm: String,
    /// The `Proxy-Authenticate` value, built once.
    pub challenge: String,
    pub users: Option<UserDb>,
    /// Lowercase name.
    pub user_header: Option<String>,
    pub keep_proxy_authorization: bool,
    pub cache: CacheConfig,
    pub external: Option<External>,
}

/// Why a configuration was refused. The message names the field; it never
/// holds a password or a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// No configuration was given at all.
    Empty,
    /// Not JSON, an unknown field, or a value of the wrong type.
    Json(String),
    /// A field whose value is not acceptable.
    Invalid { field: String, reason: String },
    /// The htpasswd text of `field` is wrong at a line.
    Users { field: String, error: HtpasswdError },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message quotes what the operator wrote; a control character in
        // it must not split the log line it is written to.
        let message = self.message();
        if message.chars().any(char::is_control) {
            f.write_str(
                &message
                    .chars()
                    .flat_map(char::escape_default)
                    .collect::<String>(),
            )
        } else {
            f.write_str(&message)
        }
    }
}

impl ConfigError {
    fn message(&self) -> String {
        match self {
            Self::Empty => "no plugin configuration: give a JSON object with `users`, `users_env` or `external`".to_owned(),
            Self::Json(msg) => format!("configuration is not valid: {msg}"),
            Self::Invalid { field, reason } => format!("field `{field}`: {reason}"),
            Self::Users { field, error } => format!("field `{field}`: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Config {
    /// Parses and validates the plugin configuration. `env` looks up the VM's
    /// environment variables (for `users_env`).
    pub fn parse(json: &[u8], env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::Empty);
        }
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(ConfigError::Json(
                "the configuration must be a JSON object, such as {\"users\": \"...\"}".to_owned(),
            ));
        }
        let raw: RawConfig = parse_json(json)?;

        if raw.realm.chars().any(|c| c.is_control()) {
            return Err(invalid("realm", "must not hold control characters"));
        }
        // It is sent in every 407; clients refuse header lines much longer.
        if raw.realm.len() > MAX_REALM_LEN {
            return Err(invalid("realm", format!("at most {MAX_REALM_LEN} bytes")));
        }
        let users = match (raw.users, raw.users_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "users_env",
                    "give either `users` or `users_env`, not both",
                ))
            }
            (Some(text), None) => Some(user_db("users", &text)?),
            (None, Some(var)) => {
                // The htpasswd text itself, put here by mistake, must not be echoed.
                let is_name = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !is_name {
                    return Err(invalid(
                        "users_env",
                        "must be the name of an environment variable (letters, digits and `_`), \
                         not the htpasswd text: give that in `users`",
                    ));
                }
                let text = env(&var).ok_or_else(|| {
                    invalid(
                        "users_env",
                        format!("environment variable `{var}` is not set in the VM (vm_config.environment_variables)"),
                    )
                })?;
                Some(user_db(&format!("users_env ({var})"), &text)?)
            }
            (None, None) => None,
        };
        let external = raw.external.map(external).transpose()?;
        if users.is_none() && external.is_none() {
            return Err(invalid(
                "users",
                "no users configured: give `users`, `users_env` or `external`",
            ));
        }
        let user_header = raw
            .user_header
            .map(|name| header_name("user_header", &name))
            .transpose()?;
        if let Some(external) = &external {
            // The filter removes a client's copy of every header it sets itself, so
            // one of those in forward_headers would silently never be forwarded.
            let ours = |name: &str| {
                user_header
                    .iter()
                    .chain(&external.copy_headers)
                    .any(|o| same_header(name, o))
            };
            let user = user_header.as_deref().unwrap_or_default();
            if let Some(name) = external.copy_headers.iter().find(|n| same_header(n, user)) {
                return Err(invalid(
                    "external.copy_headers",
                    format!("`{name}` is the user_header `{user}`: which would win?"),
                ));
            }
            if let Some(name) = external.forward_headers.iter().find(|name| ours(name)) {
                return Err(invalid(
                    "external.forward_headers",
                    format!(
                        "`{name}` is also set by the filter (user_header or copy_headers), so \
                         a client's copy is removed and never forwarded"
                    ),
                ));
            }
        }
        if raw.cache.max_entries > MAX_CACHE_ENTRIES {
            return Err(invalid(
                "cache.max_entries",
                format!("at most {MAX_CACHE_ENTRIES}"),
            ));
        }
        Ok(Self {
            challenge: challenge::basic(&raw.realm),
            realm: raw.realm,
            users,
            user_header,
            keep_proxy_authorization: raw.keep_proxy_authorization,
            cache: raw.cache,
            external,
        })
    }
}

fn user_db(field: &str, text: &str) -> Result<UserDb, ConfigError> {
    let entries = htpasswd::parse(text).map_err(|error| ConfigError::Users {
        field: field.to_owned(),
        error,
    })?;
    if let Some(entry) = entries.iter().find(|e| e.hash.cost() > MAX_HASH_COST) {
        return Err(invalid(
            field,
            format!(
                "line {}: the {} hash of user {:?} is too costly to check on a worker \
                 (at most bcrypt cost 14, or about 1.8 million $6$ or 4.1 million $5$ rounds)",
                entry.line,
                entry.hash.scheme(),
                entry.user
            ),
        ));
    }
    UserDb::new(entries).ok_or_else(|| invalid(field, "no users in it"))
}

fn external(raw: RawExternal) -> Result<External, ConfigError> {
    if raw.cluster.is_empty() || raw.cluster.bytes().any(|b| b.is_ascii_control()) {
        return Err(invalid("external.cluster", "must name an Envoy cluster"));
    }
    let authority = raw.authority.unwrap_or_else(|| raw.cluster.clone());
    if authority.is_empty() || authority.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(invalid("external.authority", "must be a host[:port]"));
    }
    if !raw.path.starts_with('/') || raw.path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(invalid(
            "external.path",
            "must be an absolute path such as /check",
        ));
    }
    if raw.timeout_ms == 0 || raw.timeout_ms > 60_000 {
        return Err(invalid("external.timeout_ms", "must be from 1 to 60000"));
    }
    // A 2xx would tell a CONNECT client its tunnel is open, a 3xx would send
    // it elsewhere: an error is the only honest answer.
    if !(400..=599).contains(&raw.failure_status) {
        return Err(invalid(
            "external.failure_status",
            "must be an error status from 400 to 599",
        ));
    }
    if raw.cache.max_entries > MAX_CACHE_ENTRIES {
        return Err(invalid(
            "external.cache.max_entries",
            format!("at most {MAX_CACHE_ENTRIES}"),
        ));
    }
    let forward_headers = header_list("external.forward_headers", &raw.forward_headers)?;
    let copy_headers = header_list("external.copy_headers", &raw.copy_headers)?;
    if let Some(twice) = first_repeat(&raw.attributes) {
        return Err(invalid(
            "external.attributes",
            format!("\"{}\" is listed twice", twice.name()),
        ));
    }
    Ok(External {
        cluster: raw.cluster,
        authority,
        path: raw.path,
        timeout_ms: raw.timeout_ms,
        attributes: raw.attributes,
        forward_headers,
        copy_headers,
        failure_status: raw.failure_status,
        fail_open: raw.fail_open,
        cache: raw.cache,
    })
}

/// Headers the filter itself owns or that would change where a request goes;
/// letting configuration write them would undo the filter's own guarantees. The
/// attribute headers are the filter's word to the service on the request: a
/// forwarded client copy would stand beside it, and the service might read that.
const RESERVED_HEADERS: &[&str] = &[
    "proxy-authorization",
    "proxy-authenticate",
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    external::FORWARDED_METHOD,
    external::FORWARDED_HOST,
    external::FORWARDED_URI,
    external::FAIL_OPEN_HEADER,
];

/// Header names of a list, each checked and lowercased; one listed twice, in
/// any spelling, is most likely a typo for another and is refused.
fn header_list(field: &str, names: &[String]) -> Result<Vec<String>, ConfigError> {
    let lower = names
        .iter()
        .map(|name| header_name(field, name))
        .collect::<Result<Vec<_>, _>>()?;
    match lower
        .iter()
        .enumerate()
        .find(|(i, name)| lower[..*i].iter().any(|earlier| same_header(name, earlier)))
    {
        Some((i, _)) => Err(invalid(field, format!("`{}` is listed twice", names[i]))),
        None => Ok(lower),
    }
}

fn first_repeat<T: PartialEq>(items: &[T]) -> Option<&T> {
    items
        .iter()
        .enumerate()
        .find(|(i, item)| items[..*i].contains(item))
        .map(|(_, item)| item)
}

/// A header name as RFC 9110 section 5.1 allows (a token), lowercased as
/// Envoy keeps them.
fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(invalid(
            field,
            format!("`{name}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS
        .iter()
        .any(|ours| same_header(&lower, ours))
    {
        return Err(invalid(field, format!("`{name}` is reserved")));
    }
    Ok(lower)
}

/// Whether two header names are the same header to some server: in any case,
/// and with `_` and `-` taken for each other, since CGI-style servers (WSGI,
/// Rack, PHP) read `X_Proxy_User` and `x-proxy-user` as the same variable. A
/// client must not slip an identity header past the filter either way, whichever
/// spelling the configuration used.
pub fn same_header(sent: &str, ours: &str) -> bool {
    let fold = |b: u8| match b {
        b'_' => b'-',
        _ => b.to_ascii_lowercase(),
    };
    sent.len() == ours.len()
        && sent
            .bytes()
            .zip(ours.bytes())
            .all(|(s, o)| fold(s) == fold(o))
}

/// Deserialises, naming the field where a value does not fit: serde's own
/// message says what was wrong and where in the text, not in which field, and
/// the text is often one line inside an Envoy YAML file.
fn parse_json(json: &[u8]) -> Result<RawConfig, ConfigError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = redact(&e.inner().to_string());
        // Syntax errors have no field to name; a value that does not fit has.
        if !e.inner().is_data() || path == "." {
            ConfigError::Json(message)
        } else {
            ConfigError::Invalid {
                field: path,
                reason: message,
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ConfigError::Json(e.to_string()))?;
    Ok(raw)
}

/// serde_json quotes a string value it could not use ("invalid type: string
/// \"...\""); that string could be a password or hash put in the wrong field,
/// so its text is dropped.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        let (head, tail) = rest.split_at(at + "string \"".len());
        out.push_str(head);
        out.push_str("…\"");
        rest = match tail.find('"') {
            Some(end) => &tail[end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::parse(json.as_bytes(), no_env)
    }

    fn refusal(json: &str) -> String {
        parse(json).map(|_| ()).unwrap_err().to_string()
    }

    const SHA_USER: &str = "alice:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=";

    #[test]
    fn defaults_apply() {
        let config = parse(&format!(r#"{{"users": "{SHA_USER}"}}"#)).unwrap();
        assert_eq!(config.realm, "proxy");
        assert_eq!(config.challenge, r#"Basic realm="proxy", charset="UTF-8""#);
        assert_eq!(
            config.cache,
            CacheConfig {
                ttl_seconds: 300,
                max_entries: 1024
            }
        );
        assert!(!config.keep_proxy_authorization);
        assert_eq!(config.user_header, None);
        assert!(config.external.is_none());
        assert_eq!(config.users.unwrap().len(), 1);
    }

    #[test]
    fn every_field_is_read() {
        let config = parse(&format!(
            r#"{{"realm": "corp", "users": "{SHA_USER}", "user_header": "X-Proxy-User",
                "keep_proxy_authorization": true, "cache": {{"ttl_seconds": 5, "max_entries": 7}}}}"#
        ))
        .unwrap();
        assert_eq!(config.realm, "corp");
        assert_eq!(config.user_header.as_deref(), Some("x-proxy-user"));
        assert!(config.keep_proxy_authorization);
        assert_eq!(
            config.cache,
            CacheConfig {
                ttl_seconds: 5,
                max_entries: 7
            }
        );
    }

    #[test]
    fn users_come_from_the_vm_environment() {
        let env = |name: &str| (name == "PROXY_USERS").then(|| format!("# team\n{SHA_USER}\n"));
        let config = Config::parse(br#"{"users_env": "PROXY_USERS"}"#, env).unwrap();
        assert_eq!(config.users.unwrap().len(), 1);
        let err = Config::parse(br#"{"users_env": "OTHER"}"#, env).unwrap_err();
        assert!(err.to_string().contains("users_env"), "{err}");
        assert!(err.to_string().contains("OTHER"), "{err}");
    }

    #[test]
    fn refusals_name_the_field() {
        let table: &[(&str, &str)] = &[
            ("", "no plugin configuration"),
            ("{", "not valid"),
            (r#"{"users": "a:{PLAIN}b", "colour": "red"}"#, "colour"),
            (r#"{"users": ""}"#, "users"),
            ("{}", "users"),
            (r#"{"users": "a:{PLAIN}b", "users_env": "X"}"#, "users_env"),
            (r#"{"users": "a:{PLAIN}b", "realm": "a\nb"}"#, "realm"),
            (
                r#"{"users": "a:{PLAIN}b", "user_header": "x user"}"#,
                "user_header",
            ),
            (
                r#"{"users": "a:{PLAIN}b", "user_header": "Proxy-Authorization"}"#,
                "user_header",
            ),
            (r#"{"users": "a:{PLAIN}b", "cache": {"ttl": 1}}"#, "ttl"),
            (
                r#"{"users": "a:{PLAIN}b", "cache": {"max_entries": 99999999}}"#,
                "cache.max_entries",
            ),
            (
                r#"{"users": "a:{PLAIN}b", "keep_proxy_authorization": "yes"}"#,
                "invalid type",
            ),
            (r#"{"external": {}}"#, "cluster"),
            (r#"{"external": {"cluster": ""}}"#, "external.cluster"),
            (
                r#"{"external": {"cluster": "a", "path": "check"}}"#,
                "external.path",
            ),
            (
                r#"{"external": {"cluster": "a", "timeout_ms": 0}}"#,
                "external.timeout_ms",
            ),
            (
                r#"{"external": {"cluster": "a", "failure_status": 99}}"#,
                "external.failure_status",
            ),
            (
                r#"{"external": {"cluster": "a", "failure_status": 200}}"#,
                "external.failure_status",
            ),
            (
                r#"{"external": {"cluster": "a", "failure_status": 302}}"#,
                "external.failure_status",
            ),
            ("[1, 2]", "must be a JSON object"),
            (
                r#"{"external": {"cluster": "a", "attributes": ["host", "port"]}}"#,
                "field `external.attributes[1]`: unknown variant `port`",
            ),
            ("\"users\"", "must be a JSON object"),
            (
                r#"{"external": {"cluster": "a", "copy_headers": ["host"]}}"#,
                "external.copy_headers",
            ),
            (
                r#"{"external": {"cluster": "a", "forward_headers": ["x-a", "X_A"]}}"#,
                "field `external.forward_headers`: `X_A` is listed twice",
            ),
            (
                r#"{"external": {"cluster": "a", "copy_headers": ["x-b", "x-c", "x-b"]}}"#,
                "field `external.copy_headers`: `x-b` is listed twice",
            ),
            (
                r#"{"external": {"cluster": "a", "attributes": ["host", "path", "host"]}}"#,
                "field `external.attributes`: \"host\" is listed twice",
            ),
            (
                r#"{"external": {"cluster": "a", "copy_headers": ["x_a", "x-a"]}}"#,
                "field `external.copy_headers`: `x-a` is listed twice",
            ),
            (
                r#"{"external": {"cluster": "a", "forward_headers": ["x-auth-user"], "copy_headers": ["X_Auth_User"]}}"#,
                "field `external.forward_headers`: `x-auth-user` is also set by the filter",
            ),
            (
                r#"{"user_header": "x-user", "external": {"cluster": "a", "copy_headers": ["X_User"]}}"#,
                "field `external.copy_headers`: `x_user` is the user_header `x-user`",
            ),
            (
                r#"{"user_header": "x-user", "external": {"cluster": "a", "forward_headers": ["x_user"]}}"#,
                "field `external.forward_headers`: `x_user` is also set by the filter",
            ),
            (
                r#"{"external": {"cluster": "a\nb", "authority": "auth"}}"#,
                "field `external.cluster`",
            ),
            (
                r#"{"users_env": "alice:$2y$04$eN7fwggEErS2U2I2.zZGdevZnme9DZHuWKUvty9vDQNCxnX/WJzPy"}"#,
                "field `users_env`: must be the name of an environment variable",
            ),
            // The filter's own attribute headers, under any spelling a server reads.
            (
                r#"{"external": {"cluster": "a", "forward_headers": ["X-Forwarded-Host"]}}"#,
                "field `external.forward_headers`: `X-Forwarded-Host` is reserved",
            ),
            (
                r#"{"external": {"cluster": "a", "forward_headers": ["x_forwarded_uri"]}}"#,
                "`x_forwarded_uri` is reserved",
            ),
            (
                r#"{"external": {"cluster": "a", "copy_headers": ["x-proxy-auth-fail-open"]}}"#,
                "external.copy_headers",
            ),
            (
                r#"{"users": "a:{PLAIN}b", "user_header": "proxy_authorization"}"#,
                "field `user_header`: `proxy_authorization` is reserved",
            ),
            (
                r#"{"external": {"cluster": "a", "cache": {"max_entries": 9999999}}}"#,
                "external.cache.max_entries",
            ),
        ];
        for (json, needle) in table {
            let msg = refusal(json);
            assert!(msg.contains(needle), "{json}: {msg:?} lacks {needle:?}");
        }
    }

    #[test]
    fn htpasswd_refusals_name_the_line_and_never_the_hash() {
        let hash = "$2y$04$AGnoDY8mcufbfMslhzFc7O6V.b/imZRj/SmMR9sIswkdb6RFvDHA6";
        let table = [
            format!("alice:{hash}\\nalice:{hash}"),
            format!("alice:{hash}\\nbob:$9$what{hash}"),
            format!("alice:{hash}\\nbob"),
        ];
        for users in table {
            let msg = refusal(&format!(r#"{{"users": "{users}"}}"#));
            assert!(msg.contains("users"), "{msg}");
            assert!(msg.contains('2'), "line number missing: {msg}");
            assert!(!msg.contains("AGnoDY8"), "hash leaked: {msg}");
        }
    }

    #[test]
    fn hashes_too_costly_to_check_on_a_worker_are_refused() {
        // Cost 15 and 14 of "x", made with Python bcrypt 5.0.0.
        let dear = "$2b$15$11jEqjaay9NnxIpdcLRzrOWFH4C0CNPERE.2qeYMpJlWym5j.LeFm";
        let msg = refusal(&format!(r#"{{"users": "a:{{PLAIN}}b\nslow:{dear}"}}"#));
        assert!(
            msg.contains("line 2") && msg.contains("too costly"),
            "{msg}"
        );
        let fine = "$2b$14$/Kj2Vvi5wgECCriU86adGOYW12lh/G97QsUGDMQD69vtLEjhaXOAm";
        assert!(parse(&format!(r#"{{"users": "ok:{fine}"}}"#)).is_ok());
        // Python's crypt.crypt("x", "$6$rounds=9999999$salt") (glibc).
        let rounds = "$6$rounds=9999999$salt$GSCmVxJaBFjIp1uqVskPezvRdB2puiXDT/itLTFstC8gA6PyhYv9qlG0DsrsUUeyEw/uGZxILnxdovWYYrFJd.";
        let msg = refusal(&format!(r#"{{"users": "s:{rounds}"}}"#));
        assert!(
            msg.contains("line 1") && msg.contains("too costly"),
            "{msg}"
        );
        // Priced at the longest password a client may send (255 bytes): 2 million rounds
        // of SHA-512 are too many, 1.5 million are not. Made as the one above.
        let rounds = "$6$rounds=2000000$salt$akok49RPUrevVU06r78/OBlu/4BchBGJteXvyMRD9AW4Opk/TwYLuo1U7ODZkwpRyJ1LnUMEZrkCYXfB1xKOR0";
        assert!(refusal(&format!(r#"{{"users": "s:{rounds}"}}"#)).contains("too costly"));
        let rounds = "$6$rounds=1500000$salt$w/YWVc7JuxfLcjh36z5.aMbizPH2FwT4vNFmIJ4.N1R3XpJ4jVlvqUn8Leef1eWodxJg4/NZRIP6kd.BsOVcy.";
        assert!(parse(&format!(r#"{{"users": "s:{rounds}"}}"#)).is_ok());
    }

    #[test]
    fn realm_longer_than_a_header_line_should_be_is_refused() {
        let long = "r".repeat(257);
        let msg = refusal(&format!(
            r#"{{"users": "a:{{PLAIN}}b", "realm": "{long}"}}"#
        ));
        assert!(msg.contains("realm") && msg.contains("256"), "{msg}");
        let fits = "r".repeat(256);
        assert!(parse(&format!(
            r#"{{"users": "a:{{PLAIN}}b", "realm": "{fits}"}}"#
        ))
        .is_ok());
    }

    #[test]
    fn control_characters_quoted_from_the_config_stay_on_one_log_line() {
        let msg = refusal(r#"{"users": "a:{PLAIN}b", "user_header": "x-\r\nfoo"}"#);
        assert!(!msg.chars().any(char::is_control), "{msg:?}");
        assert!(
            msg.contains("user_header") && msg.contains("\\r\\n"),
            "{msg}"
        );
    }

    #[test]
    fn a_secret_in_a_field_of_the_wrong_type_is_not_echoed() {
        let msg = refusal(
            r#"{"users": "a:{PLAIN}b", "realm": 5, "keep_proxy_authorization": "hunter2"}"#,
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        let msg = refusal(r#"{"users": "a:{PLAIN}b", "keep_proxy_authorization": "s3cret"}"#);
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn external_defaults_and_lowercased_headers() {
        let config = parse(
            r#"{"external": {"cluster": "auth", "forward_headers": ["X-Request-Id"], "copy_headers": ["X-Auth-User"]}}"#,
        )
        .unwrap();
        let ext = config.external.unwrap();
        assert_eq!(ext.authority, "auth");
        assert_eq!(ext.path, "/");
        assert_eq!(ext.timeout_ms, 1000);
        assert_eq!(ext.failure_status, 503);
        assert!(!ext.fail_open);
        assert_eq!(ext.forward_headers, ["x-request-id"]);
        assert_eq!(
            ext.attributes,
            [Attribute::Method, Attribute::Host, Attribute::Path]
        );
        assert_eq!(ext.copy_headers, ["x-auth-user"]);
        assert_eq!(
            ext.cache,
            ExternalCacheConfig {
                allow_ttl_seconds: 60,
                deny_ttl_seconds: 5,
                max_entries: 1024
            }
        );
        assert!(config.users.is_none());
    }

    #[test]
    fn identity_headers_are_recognised_in_any_case_and_with_underscores() {
        for sent in [
            "x-proxy-user",
            "X-Proxy-User",
            "x_proxy_user",
            "X_PROXY-user",
        ] {
            assert!(same_header(sent, "x-proxy-user"), "{sent}");
        }
        for sent in [
            "x-proxy-users",
            "x-proxy-use",
            "x.proxy.user",
            "y-proxy-user",
            "",
        ] {
            assert!(!same_header(sent, "x-proxy-user"), "{sent}");
        }
        // Regression: with `user_header: "x_user"` configured, a client's `x-user`
        // once passed, and a CGI-style upstream read it as the identity.
        assert!(same_header("x-auth-user", "x_auth_user"));
        assert!(same_header("X-User", "x_user"));
    }
}
