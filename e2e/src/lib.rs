//! End-to-end test harness: the built proxy-auth module inside a real Envoy, a real upstream that
//! records exactly what it received, and a raw client that can send what libraries refuse to.
//! It is test code: a harness failure panics, so the test that hit it fails with the reason.
#![allow(clippy::panic)]

pub mod client;
pub mod config;
pub mod envoy;
pub mod http;
pub mod upstream;

pub use client::{exchange, exchange_raw, Client, RawRequest, Response};
pub use config::{static_cluster, test_config, ConfigOptions, LISTENER};
pub use envoy::{validate, validate_yaml, Envoy, EnvoyOptions};
pub use upstream::{Received, Upstream};

use base64::Engine as _;

/// Where the repository, the Envoy binary and the module are.
pub mod paths {
    use std::path::{Path, PathBuf};

    /// The repository root (the workspace holding this crate).
    pub fn repo_root() -> PathBuf {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        here.parent().unwrap_or(here).to_path_buf()
    }

    /// `$ENVOY_BIN`, else `<repo>/.venv/bin/envoy` (what scripts/setup.sh installs).
    pub fn envoy_bin() -> PathBuf {
        std::env::var_os("ENVOY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
    }

    /// `$PROXY_AUTH_WASM`, else the release build of the filter.
    pub fn wasm_path() -> PathBuf {
        std::env::var_os("PROXY_AUTH_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/wasm32-wasip1/release/proxy_auth.wasm"))
    }

    /// The shipped Envoy configs, `envoy/*.yaml` but the compose file, sorted.
    pub fn shipped_configs() -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(repo_root().join("envoy"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            // The compose file lives beside the configs it mounts, but is not one.
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("docker-compose"))
            })
            .collect();
        out.sort();
        out
    }
}

/// The `Proxy-Authorization` value for `user`:`pass` (RFC 7617 section 2).
pub fn basic(user: &str, pass: &str) -> String {
    basic_bytes(format!("{user}:{pass}").as_bytes())
}

/// `Basic <base64 of these exact octets>`, for credentials that are not UTF-8 or lack a colon.
pub fn basic_bytes(credential: &[u8]) -> String {
    format!("Basic {}", b64(credential))
}

/// Standard padded base64 (RFC 4648 section 4).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
