//! The floor filter plus chosen steps of proxy-auth's request path, one listener
//! per choice, so the bench can price each step as the difference from the floor
//! (`bench/run.sh --profile`). The steps copy what the filter does on an allowed
//! request, host calls included, since crossing into the host is what costs.
//!
//! Plugin configuration: a first line of comma-separated steps, optionally
//! followed by `@N` to run them N times per request, then a proxy-auth JSON
//! configuration for the `decide` and `external` steps.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use log::debug;
use proxy_auth_core::auth::{Authenticator, Decision};
use proxy_auth_core::config::{Config, External};
use proxy_auth_core::{credentials, external};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

const PROXY_AUTHORIZATION: &str = "proxy-authorization";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Steps {
    /// All request headers through `get_map_bytes`, as the filter reads them,
    /// instead of the one value.
    pairs: bool,
    /// `get_current_time`, once.
    time: bool,
    /// Two counter increments (allowed, cache.hit).
    metrics: bool,
    /// A debug line with the user name, logger at Trace as the filter sets it:
    /// formatted in the VM and handed to Envoy, which drops it at its level.
    log: bool,
    /// Ask Envoy its log level (the call that would let a filter skip the above).
    loglevel: bool,
    /// Remove two identity headers, as the external mode does.
    identity: bool,
    /// `Authenticator::decide`: parse, digest, cache lookup, user name.
    decide: bool,
    /// The external mode's cache hit: parse, build the call and its digest,
    /// pick the slot, `get_shared_data`, decode (a miss stores the answer).
    external: bool,
    /// The same without `get_shared_data` and decode: what the VM computes.
    extkey: bool,
    /// A success cache keyed by the raw field value: a hit needs no base64
    /// decode and no SHA-256 (`decide` runs only on a miss).
    rawcache: bool,
}

#[derive(Default)]
struct Ladder {
    steps: Steps,
    counters: [u32; 2],
    auth: Option<RefCell<Authenticator>>,
    external: Option<(External, String)>,
    repeat: u32,
    raw: RefCell<HashMap<Vec<u8>, Rc<str>>>,
}

#[derive(Default)]
struct Root {
    ladder: Rc<Ladder>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(_) => return false,
        };
        let text = String::from_utf8_lossy(&bytes);
        let (first, json) = text.split_once('\n').unwrap_or((&text, ""));
        let (first, repeat) = match first.split_once('@') {
            Some((steps, n)) => (steps, n.trim().parse().unwrap_or(0)),
            None => (first, 1),
        };
        if repeat == 0 {
            let _ = hostcalls::log(LogLevel::Error, "`@N` needs a count of at least 1");
            return false;
        }
        let mut ladder = Ladder {
            repeat,
            ..Ladder::default()
        };
        for step in first.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let flag = match step {
                "pairs" => &mut ladder.steps.pairs,
                "time" => &mut ladder.steps.time,
                "metrics" => &mut ladder.steps.metrics,
                "log" => &mut ladder.steps.log,
                "loglevel" => &mut ladder.steps.loglevel,
                "identity" => &mut ladder.steps.identity,
                "decide" => &mut ladder.steps.decide,
                "external" => &mut ladder.steps.external,
                "extkey" => &mut ladder.steps.extkey,
                "rawcache" => &mut ladder.steps.rawcache,
                _ => {
                    let _ = hostcalls::log(LogLevel::Error, &format!("unknown step {step:?}"));
                    return false;
                }
            };
            *flag = true;
        }
        if ladder.steps.log {
            proxy_wasm::set_log_level(LogLevel::Trace);
        }
        if ladder.steps.metrics {
            for (slot, name) in ladder.counters.iter_mut().zip(["ladder.a", "ladder.b"]) {
                match hostcalls::define_metric(MetricType::Counter, name) {
                    Ok(id) => *slot = id,
                    Err(_) => return false,
                }
            }
        }
        if ladder.steps.rawcache {
            ladder.steps.decide = true;
        }
        if ladder.steps.decide || ladder.steps.external || ladder.steps.extkey {
            let mut config = match Config::parse(json.as_bytes(), |_| None) {
                Ok(config) => config,
                Err(e) => {
                    let _ = hostcalls::log(LogLevel::Error, &format!("config: {e}"));
                    return false;
                }
            };
            if ladder.steps.external || ladder.steps.extkey {
                let Some(ext) = config.external.take() else {
                    let _ = hostcalls::log(LogLevel::Error, "external step without `external`");
                    return false;
                };
                let prefix = external::prefix(&ext);
                ladder.external = Some((ext, prefix));
            }
            if ladder.steps.decide {
                // A fixed cache key: the ladder prices work, it guards nothing.
                ladder.auth = Some(RefCell::new(Authenticator::new(
                    Rc::new(config),
                    Some([7; 16]),
                )));
            }
        }
        self.ladder = Rc::new(ladder);
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Step {
            context_id,
            ladder: Rc::clone(&self.ladder),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Step {
    context_id: u32,
    ladder: Rc<Ladder>,
}

impl Context for Step {}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl HttpContext for Step {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The steps run `repeat` times, so that a step's cost stands out of the
        // noise of the rest of the request; removing the header happens once.
        let mut seen = false;
        for _ in 0..self.ladder.repeat {
            seen |= self.steps_once();
        }
        if seen {
            let _ = hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                PROXY_AUTHORIZATION,
                None,
            );
        }
        Action::Continue
    }
}

impl Step {
    /// One pass of the chosen steps; false when the request has no credential.
    fn steps_once(&self) -> bool {
        let steps = &self.ladder.steps;
        if steps.identity {
            for name in ["x-auth-user", "x-proxy-auth-fail-open"] {
                let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, None);
            }
        }
        let mut headers = Vec::new();
        let value = if steps.pairs {
            headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(PROXY_AUTHORIZATION))
                .map(|(_, value)| value.clone())
        } else {
            hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, PROXY_AUTHORIZATION)
                .ok()
                .flatten()
        };
        let Some(value) = value else {
            return false;
        };
        let now = if steps.time { now_ms() } else { 0 };
        let mut user: Rc<str> = Rc::from("-");
        let cached = if steps.rawcache {
            self.ladder.raw.borrow().get(&value).cloned()
        } else {
            None
        };
        if let Some(name) = cached {
            user = name;
        } else if let Some(auth) = &self.ladder.auth {
            if let Decision::Allow { user: name, .. } = auth.borrow_mut().decide(&[&value], now) {
                user = Rc::from(name);
                if steps.rawcache {
                    self.ladder
                        .raw
                        .borrow_mut()
                        .insert(value.clone(), Rc::clone(&user));
                }
            }
        }
        if let Some((ext, prefix)) = &self.ladder.external {
            if let Ok(credentials) = credentials::parse(&value) {
                let call = external::call(ext, &value, &credentials, &headers);
                let slot = external::slot(prefix, &call.key, ext.cache.max_entries);
                std::hint::black_box((&call, &slot));
                if !steps.extkey {
                    let hit = match hostcalls::get_shared_data(&slot) {
                        Ok((Some(bytes), _)) => {
                            external::decode(&call.key, &bytes, now, &ext.cache).is_some()
                        }
                        _ => false,
                    };
                    if !hit {
                        let answer = external::Answer::Allow(Vec::new());
                        // As the filter stores it: decode refuses a later expiry.
                        let expires = now + ext.cache.allow_ttl_seconds * 1000;
                        if let Some(bytes) = external::encode(&call.key, &answer, expires) {
                            let _ = hostcalls::set_shared_data(&slot, Some(&bytes), None);
                        }
                    }
                    std::hint::black_box(hit);
                }
            }
        }
        std::hint::black_box((&value, &user));
        if steps.metrics {
            for id in self.ladder.counters {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
        if steps.loglevel {
            let _ = std::hint::black_box(hostcalls::get_log_level());
        }
        if steps.log {
            debug!(
                "#{} proxy-auth: allowed, user {user:?}{}",
                self.context_id,
                if now > 0 { " (cached)" } else { "" }
            );
        }
        true
    }
}
