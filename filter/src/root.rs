//! The root context: reads and validates the configuration once, and makes a
//! filter for each HTTP stream sharing this worker's authenticator.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, warn};
use proxy_auth_core::auth::Authenticator;
use proxy_auth_core::cache::VerifiedCache;
use proxy_auth_core::config::{self, Config};
use proxy_auth_core::external::{self, Answer, FAIL_OPEN_HEADER};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use crate::http::{Filter, PROXY_AUTHORIZATION};
use crate::metrics::Metrics;

/// What every stream of this worker shares.
pub struct Shared {
    config: Rc<Config>,
    pub auth: RefCell<Authenticator>,
    pub metrics: Metrics,
    /// Shared-data key prefix of the external answers cache.
    pub external_prefix: String,
    /// This worker's random key (see `Authenticator::new`), if the host gave one.
    pub secret: Option<[u8; 16]>,
    /// This worker's memory of the service's answers, in front of the shared
    /// one: a repeated request finds its answer without building the call.
    /// Shared, not copied, by a hit: an answer holds the headers to copy.
    pub local_answers: RefCell<VerifiedCache<u128, Rc<Answer>>>,
    identity_headers: Vec<String>,
}

impl Shared {
    fn new(config: Config, metrics: Metrics, secret: Option<[u8; 16]>) -> Self {
        let config = Rc::new(config);
        // The fail-open marker is ours in local mode too: an upstream that
        // trusts it must never see a client's copy.
        let mut identity_headers: Vec<String> = config.user_header.iter().cloned().collect();
        identity_headers.push(FAIL_OPEN_HEADER.to_owned());
        let mut external_prefix = String::new();
        let local_size = config.external.as_ref().map_or(0, |e| e.cache.max_entries);
        if let Some(external) = &config.external {
            identity_headers.extend(external.copy_headers.iter().cloned());
            external_prefix = external::prefix(external);
        }
        Self {
            auth: RefCell::new(Authenticator::new(Rc::clone(&config), secret)),
            secret,
            // Every entry carries the expiry the shared cache has; no own lifetime.
            local_answers: RefCell::new(VerifiedCache::new(0, local_size)),
            config,
            metrics,
            external_prefix,
            identity_headers,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a request header is one a client may not send upstream: one
    /// only the filter may set, under any spelling a server could read as it,
    /// or `Proxy_Authorization`, which such a server reads as the credential
    /// the filter removes (the field itself is read, not stripped, here).
    pub fn is_client_copy(&self, name: &str) -> bool {
        self.identity_headers
            .iter()
            .any(|ours| config::same_header(name, ours))
            || (config::same_header(name, PROXY_AUTHORIZATION)
                && !name.eq_ignore_ascii_case(PROXY_AUTHORIZATION))
    }
}

pub struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            shared: None,
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        info!(
            "#{} proxy-auth {} starting",
            self.context_id,
            env!("CARGO_PKG_VERSION")
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!(
                    "#{} proxy-auth: cannot read the plugin configuration: {status:?}",
                    self.context_id
                );
                return false;
            }
        };
        let config = match Config::parse(&bytes, |name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(e) => {
                error!(
                    "#{} proxy-auth: configuration refused: {e}",
                    self.context_id
                );
                return false;
            }
        };
        let metrics = match Metrics::define() {
            Ok(metrics) => metrics,
            Err(status) => {
                error!(
                    "#{} proxy-auth: cannot define counters: {status:?}",
                    self.context_id
                );
                return false;
            }
        };
        info!(
            "#{} proxy-auth configured: realm {:?}, {} local users, external service {}",
            self.context_id,
            config.realm,
            config.users.as_ref().map_or(0, |u| u.len()),
            config
                .external
                .as_ref()
                .map_or("none", |e| e.cluster.as_str()),
        );
        let secret = cache_secret();
        if secret.is_none() {
            warn!(
                "#{} proxy-auth: no randomness from the host; the success cache uses SHA-256 keys",
                self.context_id
            );
        }
        self.shared = Some(Rc::new(Shared::new(config, metrics, secret)));
        follow_envoy_log_level();
        // Without ticks the level stays as read now; not worth refusing the config over.
        let _ = hostcalls::set_tick_period(LOG_LEVEL_REFRESH);
        true
    }

    fn on_tick(&mut self) {
        follow_envoy_log_level();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// How soon a change of Envoy's log level (admin `/logging?wasm=debug`)
/// reaches the module.
const LOG_LEVEL_REFRESH: Duration = Duration::from_secs(5);

/// Formats log lines only at a level Envoy will print. Formatting a debug line
/// that Envoy then drops costs about a microsecond per request in V8; asking
/// Envoy its level on every request would cost as much, so it is asked once at
/// configuration and then every few seconds.
fn follow_envoy_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        proxy_wasm::set_log_level(level);
    }
}

/// This worker's key for the success cache (see `Authenticator::new`): from
/// the host's randomness (WASI `random_get`), or none, and then the slower
/// SHA-256 keys, rather than a key anyone could guess.
fn cache_secret() -> Option<[u8; 16]> {
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).ok()?;
    Some(secret)
}
