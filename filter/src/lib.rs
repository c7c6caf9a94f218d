//! proxy-auth: an Envoy proxy-wasm filter that requires `Proxy-Authorization`.
//!
//! This crate only binds `proxy-auth-core` to the host; what is decided, and
//! why, lives there and is tested natively.

mod http;
mod metrics;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Envoy filters by its own log level; this only decides what we hand it.
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}
