//! The filter's Envoy counters, shown in /stats as `wasmcustom.proxy_auth.*`.

use proxy_auth_core::auth::Denial;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

/// Counter ids; `define` lists every name.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub allowed: u32,
    missing: u32,
    duplicate: u32,
    malformed: u32,
    unknown_user: u32,
    wrong_password: u32,
    pub denied_external: u32,
    pub cache_hit: u32,
    pub cache_miss: u32,
    pub external_calls: u32,
    pub external_cache_hit: u32,
    pub external_allow: u32,
    pub external_deny: u32,
    pub external_failure: u32,
    pub failed_open: u32,
}

fn counter(name: &str) -> Result<u32, Status> {
    hostcalls::define_metric(MetricType::Counter, &format!("proxy_auth.{name}"))
}

impl Metrics {
    /// Defines the counters; defining one twice, from another worker or a
    /// reconfiguration, hands back the same counter.
    pub fn define() -> Result<Self, Status> {
        Ok(Self {
            allowed: counter("allowed")?,
            missing: counter("denied.missing")?,
            duplicate: counter("denied.duplicate")?,
            malformed: counter("denied.malformed")?,
            unknown_user: counter("denied.unknown_user")?,
            wrong_password: counter("denied.wrong_password")?,
            denied_external: counter("denied.external")?,
            cache_hit: counter("cache.hit")?,
            cache_miss: counter("cache.miss")?,
            external_calls: counter("external.calls")?,
            external_cache_hit: counter("external.cache_hit")?,
            external_allow: counter("external.allow")?,
            external_deny: counter("external.deny")?,
            external_failure: counter("external.failure")?,
            failed_open: counter("external.failed_open")?,
        })
    }

    pub fn denied(&self, reason: Denial) -> u32 {
        match reason {
            Denial::Missing => self.missing,
            Denial::Duplicate => self.duplicate,
            Denial::Malformed(_) => self.malformed,
            Denial::UnknownUser => self.unknown_user,
            Denial::WrongPassword => self.wrong_password,
        }
    }
}

/// A counter that cannot be bumped is not worth failing a request over.
pub fn bump(id: u32) {
    let _ = hostcalls::increment_metric(id, 1);
}
