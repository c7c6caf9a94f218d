//! The per-stream filter: one decision per request, made on its headers, by
//! the local users or, for the others, by the external service.

use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::{debug, error, warn};
use proxy_auth_core::auth::{printable, Decision, Denial};
use proxy_auth_core::cache::Key;
use proxy_auth_core::config::{Config, External};
use proxy_auth_core::credentials::Credentials;
use proxy_auth_core::external::{self, Answer, FAIL_OPEN_HEADER};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Bytes, MapType};

use crate::metrics::bump;
use crate::root::Shared;

pub const PROXY_AUTHORIZATION: &str = "proxy-authorization";
const DENIED_BODY: &[u8] = b"Proxy Authentication Required\n";
const UNAVAILABLE_BODY: &[u8] = b"Proxy authentication unavailable\n";

/// A call to the external service this stream is waiting on.
struct Pending {
    key: Key,
    local_key: Option<u128>,
    slot: String,
    user: Bytes,
}

pub struct Filter {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    pending: Option<Pending>,
}

impl Filter {
    pub fn new(context_id: u32, shared: Option<Rc<Shared>>) -> Self {
        Self {
            context_id,
            shared,
            pending: None,
        }
    }

    /// Answers the request locally; nothing of it reaches the upstream.
    fn reply(&self, status: u32, challenge: Option<&str>, body: &[u8]) -> Action {
        let mut headers = vec![("content-type", "text/plain")];
        if let Some(challenge) = challenge {
            // RFC 9110 section 15.5.8: a 407 carries a Proxy-Authenticate challenge.
            headers.push(("proxy-authenticate", challenge));
        }
        if let Err(status) = hostcalls::send_http_response(status, headers, Some(body)) {
            error!(
                "#{} proxy-auth: cannot send a local reply: {status:?}",
                self.context_id
            );
        }
        Action::Pause
    }

    /// 503 where the filter cannot judge at all: it fails closed.
    fn unavailable(&self, why: &str) -> Action {
        error!(
            "#{} proxy-auth: {why}; refusing the request",
            self.context_id
        );
        self.reply(503, None, UNAVAILABLE_BODY)
    }

    fn deny(&self, shared: &Shared, reason: Denial, user: Option<&str>) -> Action {
        bump(shared.metrics.denied(reason));
        debug!(
            "#{} proxy-auth: denied, {reason}, user \"{}\"",
            self.context_id,
            user.unwrap_or("")
        );
        let config = shared.config();
        self.reply(407, Some(&config.challenge), DENIED_BODY)
    }

    /// Lets the request go on as `user` (if anyone vouched for it), with
    /// `extra` headers set upstream: the first value of a name replaces what
    /// the request had, later values of the same name are added.
    fn allow(&self, config: &Config, user: Option<&[u8]>, extra: &[(String, Bytes)]) -> Action {
        // RFC 9110 section 11.7.2: Proxy-Authorization is meant for this proxy;
        // it goes on only when the operator chains proxies on purpose.
        if !config.keep_proxy_authorization {
            set_header(PROXY_AUTHORIZATION, None);
        }
        if let (Some(name), Some(user)) = (&config.user_header, user) {
            set_header(name, Some(user));
        }
        for (i, (name, value)) in extra.iter().enumerate() {
            if extra[..i].iter().any(|(earlier, _)| earlier == name) {
                // Always Ok, as for set_header.
                let _ = hostcalls::add_map_value_bytes(MapType::HttpRequestHeaders, name, value);
            } else {
                set_header(name, Some(value));
            }
        }
        Action::Continue
    }

    /// Asks the external service, or its answer remembered by any worker.
    fn ask(
        &mut self,
        shared: &Shared,
        external: &External,
        credentials: &Credentials,
        headers: &[(String, Bytes)],
        proxy_authorization: &[u8],
        now: u64,
    ) -> Action {
        let local_key = shared
            .secret
            .map(|secret| external::local_key(&secret, external, proxy_authorization, headers));
        if let Some(key) = &local_key {
            let remembered = shared.local_answers.borrow_mut().get(key, now);
            if let Some(answer) = remembered {
                bump(shared.metrics.external_cache_hit);
                return self.apply(shared, &answer, credentials.user(), true);
            }
        }
        let call = external::call(external, proxy_authorization, credentials, headers);
        let slot = external::slot(
            &shared.external_prefix,
            &call.key,
            external.cache.max_entries,
        );
        let cache = &external.cache;
        let caching =
            cache.max_entries > 0 && (cache.allow_ttl_seconds > 0 || cache.deny_ttl_seconds > 0);
        // Nothing was stored under this configuration when it caches nothing.
        let stored = if caching {
            hostcalls::get_shared_data(&slot)
                .ok()
                .and_then(|(bytes, _)| bytes)
        } else {
            None
        };
        if let Some(bytes) = stored {
            if let Some((answer, expires)) = external::decode(&call.key, &bytes, now, cache) {
                let answer = Rc::new(answer);
                if let Some(key) = local_key {
                    shared.local_answers.borrow_mut().insert_until(
                        key,
                        Rc::clone(&answer),
                        expires,
                        now,
                    );
                }
                bump(shared.metrics.external_cache_hit);
                return self.apply(shared, &answer, credentials.user(), true);
            }
        }
        bump(shared.metrics.external_calls);
        let call_headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let timeout = Duration::from_millis(external.timeout_ms);
        match self.dispatch_http_call(&external.cluster, call_headers, None, vec![], timeout) {
            Ok(_) => {
                self.pending = Some(Pending {
                    key: call.key,
                    local_key,
                    slot,
                    user: credentials.user().to_vec(),
                });
                Action::Pause
            }
            Err(status) => {
                error!(
                    "#{} proxy-auth: cannot call cluster {:?}: {status:?} (is it defined in Envoy?)",
                    self.context_id, external.cluster
                );
                self.apply(
                    shared,
                    &Answer::Failure(external::Failure::NoAnswer),
                    credentials.user(),
                    false,
                )
            }
        }
    }

    /// Acts on the service's answer, fresh or remembered.
    fn apply(&self, shared: &Shared, answer: &Answer, user: &[u8], cached: bool) -> Action {
        let config = shared.config();
        let Some(external) = &config.external else {
            return self.unavailable("external answer without external configuration");
        };
        let source = if cached { " (cached)" } else { "" };
        match answer {
            Answer::Allow(extra) => {
                bump(shared.metrics.allowed);
                bump(shared.metrics.external_allow);
                debug!(
                    "#{} proxy-auth: allowed by the external service{source}, user \"{}\"",
                    self.context_id,
                    printable(user)
                );
                self.allow(config, Some(user), extra)
            }
            Answer::Deny(challenge) => {
                bump(shared.metrics.denied_external);
                bump(shared.metrics.external_deny);
                debug!(
                    "#{} proxy-auth: denied by the external service{source}, user \"{}\"",
                    self.context_id,
                    printable(user)
                );
                let challenge = challenge.as_deref().unwrap_or(&config.challenge);
                self.reply(407, Some(challenge), DENIED_BODY)
            }
            Answer::Failure(failure) => {
                bump(shared.metrics.external_failure);
                if external.fail_open && failure.is_outage() {
                    bump(shared.metrics.failed_open);
                    warn!(
                        "#{} proxy-auth: external service failed ({failure}); failing open, unverified user \"{}\"",
                        self.context_id,
                        printable(user)
                    );
                    set_header(FAIL_OPEN_HEADER, Some(b"1"));
                    // Nobody vouched for the name: the upstream gets no user header.
                    return self.allow(config, None, &[]);
                }
                warn!(
                    "#{} proxy-auth: external service failed ({failure}); answering {}",
                    self.context_id, external.failure_status
                );
                let challenge =
                    (external.failure_status == 407).then_some(config.challenge.as_str());
                self.reply(external.failure_status, challenge, UNAVAILABLE_BODY)
            }
        }
    }
}

fn set_header(name: &str, value: Option<&[u8]>) {
    // The SDK (0.2.5) panics on any status but Ok instead of returning it, so
    // the Result is always Ok. Envoy answers Ok while the request headers exist:
    // until the request is resumed or answered. Every header is therefore set
    // before `resume_http_request`, never after.
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value);
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Context for Filter {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let (Some(shared), Some(pending)) = (self.shared.clone(), self.pending.take()) else {
            return;
        };
        let Some(external) = &shared.config().external else {
            return;
        };
        // No headers at all (a timeout, a reset) reads as an answer without status.
        let response =
            hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let answer = Rc::new(external::answer(external, &response));
        let ttl_s = external::lifetime_s(&external.cache, &answer);
        if ttl_s > 0 && external.cache.max_entries > 0 {
            let now = now_ms();
            let expires = now.saturating_add(ttl_s.saturating_mul(1000));
            if let Some(key) = pending.local_key {
                shared.local_answers.borrow_mut().insert_until(
                    key,
                    Rc::clone(&answer),
                    expires,
                    now,
                );
            }
            if let Some(bytes) = external::encode(&pending.key, &answer, expires) {
                // Last writer wins: any worker's fresh answer is as good as another's.
                if let Err(status) = hostcalls::set_shared_data(&pending.slot, Some(&bytes), None) {
                    warn!(
                        "#{} proxy-auth: cannot cache the answer: {status:?}",
                        self.context_id
                    );
                }
            }
        }
        if let Action::Continue = self.apply(&shared, &answer, &pending.user, false) {
            if let Err(status) = hostcalls::resume_http_request() {
                warn!(
                    "#{} proxy-auth: cannot resume the request: {status:?}",
                    self.context_id
                );
            }
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return self.unavailable("no valid configuration");
        };
        // Bytes, not strings: a value that is not UTF-8 must get a 407, not a panic.
        let mut headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(status) => {
                return self.unavailable(&format!("cannot read request headers: {status:?}"))
            }
        };
        // Identity headers are ours to set: whatever the client sent under
        // those names goes, whether or not it authenticates, and the service
        // is not shown it either.
        headers.retain(|(name, _)| {
            let ours = shared.is_client_copy(name);
            if ours {
                set_header(name, None);
            }
            !ours
        });
        let fields: Vec<&[u8]> = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(PROXY_AUTHORIZATION))
            .map(|(_, value)| value.as_slice())
            .collect();
        // One clock read per request: each host call costs about as much as a
        // step of the decision itself.
        let now = now_ms();
        let decision = shared.auth.borrow_mut().decide(&fields, now);
        match decision {
            Decision::Allow { user, cached } => {
                bump(shared.metrics.allowed);
                bump(if cached {
                    shared.metrics.cache_hit
                } else {
                    shared.metrics.cache_miss
                });
                debug!(
                    "#{} proxy-auth: allowed, user \"{}\"{}",
                    self.context_id,
                    printable(user.as_bytes()),
                    if cached { " (cached)" } else { "" }
                );
                self.allow(shared.config(), Some(user.as_bytes()), &[])
            }
            Decision::Deny { reason, user } => self.deny(&shared, reason, user.as_deref()),
            Decision::AskExternal(credentials) => match &shared.config().external {
                Some(external) => {
                    let value = fields.first().copied().unwrap_or_default();
                    self.ask(&shared, external, &credentials, &headers, value, now)
                }
                None => self.unavailable("no external service configured"),
            },
        }
    }
}
