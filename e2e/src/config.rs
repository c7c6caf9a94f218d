//! Builds the Envoy config a test runs: one listener on a kernel-chosen port, the proxy-auth
//! module with the test's plugin JSON, and a router to a static cluster at the test's upstream.
//! CONNECT is routed too (forwarded to the upstream as a request, not terminated by Envoy), so the
//! upstream sees the CONNECT head and tests can check what the filter did to it.

use crate::paths;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The name of the listener in `test_config`, for `Envoy::listener`.
pub const LISTENER: &str = "proxy";

/// Optional parts of a test config.
#[derive(Clone, Debug, Default)]
pub struct ConfigOptions {
    /// VM environment variables (`vm_config.environment_variables.key_values`), for `users_env`.
    pub env: Vec<(String, String)>,
    /// The module to load; `paths::wasm_path()` when `None`.
    pub wasm: Option<PathBuf>,
    /// Leave the proxy-auth filter out: checks the harness itself, apart from the module.
    pub without_filter: bool,
    /// More static clusters `(name, address)`, such as an external auth service.
    pub clusters: Vec<(String, SocketAddr)>,
}

impl ConfigOptions {
    /// Adds one VM environment variable.
    pub fn env(mut self, key: &str, value: &str) -> ConfigOptions {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds one static cluster, reachable from the module's `dispatch_http_call`.
    pub fn cluster(mut self, name: &str, addr: SocketAddr) -> ConfigOptions {
        self.clusters.push((name.into(), addr));
        self
    }
}

/// A YAML (JSON is YAML) double-quoted string holding `s` exactly.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The Envoy config for a test: listener `proxy` -> proxy-auth (configured with `plugin_json`)
/// -> router -> static cluster `upstream` at `upstream`.
pub fn test_config(plugin_json: &str, upstream: SocketAddr, opts: &ConfigOptions) -> String {
    let wasm = opts.wasm.clone().unwrap_or_else(paths::wasm_path);
    let mut env = String::new();
    if !opts.env.is_empty() {
        env.push_str("                  environment_variables:\n                    key_values:\n");
        for (k, v) in &opts.env {
            let _ = writeln!(env, "                      {}: {}", quoted(k), quoted(v));
        }
    }
    let filter = if opts.without_filter {
        String::new()
    } else {
        format!(
            r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: proxy_auth
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {plugin}
                vm_config:
                  vm_id: proxy_auth
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {wasm}
{env}"#,
            plugin = quoted(plugin_json),
            wasm = quoted(&wasm.to_string_lossy()),
        )
    };
    let clusters: String = std::iter::once(static_cluster("upstream", upstream))
        .chain(opts.clusters.iter().map(|(n, a)| static_cluster(n, *a)))
        .collect();
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
static_resources:
  listeners:
  - name: {LISTENER}
    address:
      socket_address: {{ address: 127.0.0.1, port_value: 0 }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: test
          codec_type: HTTP1
          http_protocol_options:
            allow_absolute_url: true
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ connect_matcher: {{}} }}
                route:
                  cluster: upstream
                  upgrade_configs:
                  - upgrade_type: CONNECT
              - match: {{ prefix: "/" }}
                route:
                  cluster: upstream
          http_filters:
{filter}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}"#,
    )
}

/// One static cluster `name` at `addr`, as an item of `static_resources.clusters`.
pub fn static_cluster(name: &str, addr: SocketAddr) -> String {
    format!(
        r#"  - name: {name}
    connect_timeout: 2s
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {ip}, port_value: {port} }}
"#,
        name = quoted(name),
        ip = addr.ip(),
        port = addr.port(),
    )
}
