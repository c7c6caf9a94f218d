//! What users deploy (issue 5), proved as far as a machine without a Docker engine can: the
//! compose file mounts only paths that exist, at the repository's own relative layout, and runs
//! the pinned Envoy image with configs that validate; those same config files run natively here
//! with only their addresses changed and answer as docs/deploy.md shows; every plugin config the
//! README and docs/deploy.md show validates; `make dist` makes a
//! module under budget whose sha256 is right and which works in Envoy; the Istio manifests parse,
//! and their plugin configs run in an Envoy configured the way Istio configures one (StringValue
//! JSON, host environment keys, `outbound|PORT||HOST` cluster names).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod external_common;

use common::ALICE;
use external_common::AuthService;
use proxy_auth_e2e::{
    basic, paths, static_cluster, test_config, validate, validate_yaml, Client, ConfigOptions,
    Envoy, RawRequest, Response, Upstream, LISTENER,
};
use serde::Deserialize as _;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const COMPOSE: &str = "envoy/docker-compose.yaml";
/// The issue's budget for the shipped module, in bytes (scripts/dist.sh enforces it too).
const DIST_BUDGET: u64 = 300_000;
const DEMO_CHALLENGE: &str = "Basic realm=\"proxy-auth demo\", charset=\"UTF-8\"";
const WAIT: Duration = Duration::from_secs(10);

fn repo(rel: &str) -> PathBuf {
    paths::repo_root().join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn compose() -> Value {
    serde_yaml_ng::from_str(&read(COMPOSE)).unwrap_or_else(|e| panic!("{COMPOSE}: {e}"))
}

fn services(compose: &Value) -> Vec<(String, Value)> {
    let services = compose["services"]
        .as_object()
        .unwrap_or_else(|| panic!("{COMPOSE} has no services"));
    services
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, found {s}"))
                .to_string()
        })
        .collect()
}

/// `path` with `.` and `..` resolved lexically (no file system access, so a missing path still
/// gets a name to report).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A compose path (relative to the compose file's directory) as a path relative to the repo root.
fn compose_path_in_repo(source: &str) -> PathBuf {
    let abs = normalize(&repo("envoy").join(source));
    abs.strip_prefix(paths::repo_root())
        .unwrap_or_else(|_| panic!("{COMPOSE} mounts {source}, outside the repository"))
        .to_path_buf()
}

/// The version scripts/setup.sh pins (`ENVOY_VERSION=1.40.0`).
fn pinned_envoy_version() -> String {
    read("scripts/setup.sh")
        .lines()
        .find_map(|l| l.strip_prefix("ENVOY_VERSION="))
        .expect("scripts/setup.sh pins no ENVOY_VERSION")
        .trim()
        .to_string()
}

/// `yaml` with each `(from, to)` replaced, failing if a `from` is not there: the test must notice
/// when the file it runs changes under it.
fn localize(path: &str, yaml: &str, swaps: &[(&str, String)]) -> String {
    swaps.iter().fold(yaml.to_string(), |y, (from, to)| {
        assert!(y.contains(from), "{path} no longer has {from:?}");
        y.replace(from, to)
    })
}

/// The listener and admin addresses a compose config binds in its container, as kernel-chosen
/// loopback ports here.
fn local_addresses() -> Vec<(&'static str, String)> {
    vec![
        (
            "address: 0.0.0.0, port_value: 10000",
            "address: 127.0.0.1, port_value: 0".into(),
        ),
        (
            "address: 0.0.0.0, port_value: 9901",
            "address: 127.0.0.1, port_value: 0".into(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// docker compose

#[test]
fn compose_mounts_only_existing_paths_at_their_repository_layout() {
    let compose = compose();
    let mut mounts = 0;
    for (name, service) in services(&compose) {
        if let Some(build) = service.get("build") {
            let context = build["context"].as_str().unwrap();
            assert_eq!(
                normalize(&repo("envoy").join(context)),
                normalize(&paths::repo_root()),
                "service {name}: the build context must be the repository root"
            );
            let dockerfile = build["dockerfile"].as_str().unwrap();
            let text = read(dockerfile);
            let target = build["target"].as_str().unwrap();
            assert!(
                text.lines()
                    .any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {target}"))),
                "service {name}: {dockerfile} has no stage {target}"
            );
        }
        let working_dir = service["working_dir"].as_str();
        for volume in service["volumes"].as_array().into_iter().flatten() {
            // Long syntax only: the short one silently creates a missing source as a directory.
            assert!(
                volume.is_object(),
                "service {name}: use the long volume syntax, not {volume}"
            );
            assert_eq!(volume["type"], "bind", "service {name}: {volume}");
            assert_eq!(volume["read_only"], true, "service {name}: {volume}");
            assert_ne!(volume["bind"]["create_host_path"], true, "{volume}");
            let source = volume["source"].as_str().unwrap();
            let rel = compose_path_in_repo(source);
            let made_by = if rel.starts_with("target") {
                "made by `make build`"
            } else {
                "a file of the repository"
            };
            assert!(
                paths::repo_root().join(&rel).is_file(),
                "service {name} mounts {}, which does not exist ({made_by})",
                rel.display()
            );
            // The same relative path inside the container as in the repository, so relative
            // paths in the Envoy configs mean the same file in both places.
            let working_dir = working_dir
                .unwrap_or_else(|| panic!("service {name} mounts files but has no working_dir"));
            assert_eq!(
                volume["target"].as_str().unwrap(),
                format!("{working_dir}/{}", rel.display()),
                "service {name}: mount target does not mirror the repository layout"
            );
            mounts += 1;
        }
    }
    assert!(
        mounts >= 4,
        "expected the two Envoys' config and module mounts"
    );
}

#[test]
fn compose_envoys_run_the_pinned_image_with_configs_that_validate() {
    let version = pinned_envoy_version();
    let (_, out) = run(Command::new(paths::envoy_bin()).arg("--version"));
    assert!(
        out.contains(&format!("/{version}/")),
        "the test Envoy is not the pinned {version}: {out}"
    );
    let compose = compose();
    let mut configs = BTreeSet::new();
    for (name, service) in services(&compose) {
        let Some(image) = service["image"].as_str() else {
            continue;
        };
        if !image.starts_with("envoyproxy/envoy") {
            continue;
        }
        assert_eq!(
            image,
            format!("envoyproxy/envoy:v{version}"),
            "service {name}"
        );
        let working_dir = service["working_dir"].as_str().unwrap();
        let targets: Vec<String> = service["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["target"].as_str().unwrap().to_string())
            .collect();
        let command = strings(&service["command"]);
        let at = command
            .iter()
            .position(|a| a == "-c")
            .unwrap_or_else(|| panic!("service {name} names no -c config"));
        let config = &command[at + 1];
        assert!(
            targets.contains(&format!("{working_dir}/{config}")),
            "service {name} runs {config}, which it does not mount"
        );
        // Every file the config loads (the module) is mounted at the path it names.
        let text = read(config);
        for line in text.lines() {
            if let Some(file) = line.trim().strip_prefix("filename: ") {
                assert!(
                    targets.contains(&format!("{working_dir}/{file}")),
                    "service {name}: {config} loads {file}, which is not mounted"
                );
            }
        }
        // Validated natively from the repository root, where the relative paths mean the same.
        let (ok, log) = validate(&repo(config));
        assert!(ok, "{config} (service {name}) fails validation:\n{log}");
        configs.insert(config.clone());
    }
    let shipped: BTreeSet<String> = paths::shipped_configs()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter(|f| f.starts_with("compose-"))
        .map(|f| format!("envoy/{f}"))
        .collect();
    assert_eq!(
        configs, shipped,
        "every envoy/compose-*.yaml is run by compose"
    );
}

/// The lines of an Envoy config that mean something: comments and blank lines dropped.
fn significant_lines(yaml: &str) -> Vec<String> {
    yaml.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn compose_configs_differ_from_the_make_run_demo_only_in_addresses() {
    // A fix to a demo config (e.g. accept_http_10) must reach its compose twin too.
    let pairs = [
        (
            "envoy/compose-forward-proxy.yaml",
            "envoy/forward-proxy.yaml",
            vec![],
        ),
        (
            "envoy/compose-external.yaml",
            "envoy/forward-proxy-external.yaml",
            vec![
                (
                    "    type: STRICT_DNS\n    dns_lookup_family: V4_ONLY\n",
                    "    type: STATIC\n".to_string(),
                ),
                (
                    "address: auth-service, port_value: 9002",
                    "address: 127.0.0.1, port_value: 9002".to_string(),
                ),
            ],
        ),
    ];
    for (compose, demo, mut swaps) in pairs {
        swaps.push(("address: 0.0.0.0,", "address: 127.0.0.1,".to_string()));
        let as_demo = localize(compose, &read(compose), &swaps);
        assert_eq!(
            significant_lines(&as_demo),
            significant_lines(&read(demo)),
            "{compose} differs from {demo} in more than its container addresses"
        );
    }
}

fn start_compose_forward_proxy() -> (Upstream, Envoy) {
    let path = "envoy/compose-forward-proxy.yaml";
    let yaml = localize(path, &read(path), &local_addresses());
    (Upstream::start(), Envoy::start(&yaml))
}

#[test]
fn compose_forward_proxy_challenges_then_forwards_as_documented() {
    let (upstream, envoy) = start_compose_forward_proxy();
    let proxy = envoy.listener("forward_proxy");
    let target = format!("http://{}/", upstream.addr());
    let get = || RawRequest::new("GET", &target).header("Host", upstream.addr().to_string());

    let r = proxy_auth_e2e::exchange(proxy, &get());
    assert_eq!(r.status, 407, "{r:?}");
    assert_eq!(
        r.header_str("proxy-authenticate").as_deref(),
        Some(DEMO_CHALLENGE)
    );
    assert_eq!(r.header_str("content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.body_str(), "Proxy Authentication Required\n");
    assert_eq!(upstream.connections(), 0);

    let r = proxy_auth_e2e::exchange(proxy, &get().proxy_auth(basic("demo", "demo")));
    assert_eq!(r.status, 200, "{r:?}");
    let got = upstream.wait_requests(1, WAIT);
    assert_eq!(got[0].headers_named("x-proxy-user"), [b"demo"]);
    assert!(got[0].header("proxy-authorization").is_none());

    // curl -p: the same through a CONNECT tunnel.
    let authority = upstream.addr().to_string();
    let mut c = Client::connect(proxy);
    c.send(
        &RawRequest::connect(&authority)
            .proxy_auth(basic("demo", "demo"))
            .to_bytes(),
    );
    assert_eq!(c.response_to("CONNECT").status, 200);
    c.send(
        &RawRequest::get("/inside")
            .header("Host", &authority)
            .to_bytes(),
    );
    assert_eq!(c.response().json()["target"], "/inside");
}

#[test]
fn compose_external_proxy_asks_the_auth_service_as_documented() {
    // The service runs with the arguments compose gives it.
    let compose = compose();
    let args = strings(&compose["services"]["auth-service"]["command"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let service = AuthService::start(&args);
    let path = "envoy/compose-external.yaml";
    let mut swaps = local_addresses();
    swaps.push((
        "address: auth-service, port_value: 9002",
        format!("address: 127.0.0.1, port_value: {}", service.addr().port()),
    ));
    let yaml = localize(path, &read(path), &swaps);
    let upstream = Upstream::start();
    let envoy = Envoy::start(&yaml);
    let proxy = envoy.listener("forward_proxy");
    let target = format!("http://{}/", upstream.addr());
    let get = |user: &str, pass: &str| {
        RawRequest::new("GET", &target)
            .header("Host", upstream.addr().to_string())
            .proxy_auth(basic(user, pass))
    };

    let r = proxy_auth_e2e::exchange(proxy, &get("alice", "wonderland"));
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.json();
    let headers = seen["headers"].to_string();
    for h in [
        r#"["x-proxy-user","alice"]"#,
        r#"["x-auth-user","alice"]"#,
        r#"["x-auth-groups","users"]"#,
    ] {
        assert!(headers.contains(h), "upstream did not get {h}: {headers}");
    }

    let r = proxy_auth_e2e::exchange(proxy, &get("alice", "wrong"));
    assert_eq!(r.status, 407, "{r:?}");
    assert_eq!(
        r.header_str("proxy-authenticate").as_deref(),
        Some("Basic realm=\"directory\", charset=\"UTF-8\"")
    );

    // The local user is decided in the module, without asking the service.
    let before = service.calls_for("demo");
    let r = proxy_auth_e2e::exchange(proxy, &get("demo", "demo"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(service.calls_for("demo"), before);

    // Neither the admin API nor the auth service is a destination, whatever the host.
    for authority in ["127.0.0.1:9901", "auth-service:9002", "localhost:09002"] {
        let req = RawRequest::new("POST", format!("http://{authority}/_reset"))
            .header("Host", authority)
            .proxy_auth(basic("alice", "wonderland"));
        assert_eq!(
            proxy_auth_e2e::exchange(proxy, &req).status,
            403,
            "{authority}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// make dist

/// dist/, made once per test run by scripts/dist.sh, the script behind `make dist`.
fn dist_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(repo("scripts/dist.sh"))
            .env("CARGO", cargo)
            .current_dir(paths::repo_root())
            .stdin(Stdio::null())
            .status()
            .expect("cannot run scripts/dist.sh");
        assert!(status.success(), "scripts/dist.sh failed ({status})");
        repo("dist")
    })
}

#[test]
fn dist_module_is_under_budget_and_its_sha256_is_right() {
    let dir = dist_dir();
    let module = fs::read(dir.join("proxy_auth.wasm")).unwrap();
    assert!(
        (module.len() as u64) < DIST_BUDGET,
        "dist/proxy_auth.wasm is {} bytes, over the {DIST_BUDGET}-byte budget",
        module.len()
    );
    assert_eq!(&module[..4], b"\0asm", "not a wasm module");
    // The file an OCI image must hold is the same module.
    assert_eq!(fs::read(dir.join("plugin.wasm")).unwrap(), module);
    let recorded = fs::read_to_string(dir.join("proxy_auth.wasm.sha256")).unwrap();
    let (ok, computed) = run(Command::new("sha256sum")
        .arg("proxy_auth.wasm")
        .current_dir(dir));
    assert!(ok, "{computed}");
    assert_eq!(recorded, computed);
    let hex = recorded.split_whitespace().next().unwrap();
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "not what a WasmPlugin sha256 field accepts: {hex}"
    );
    // Envoy in a container runs as another user than the one who built the module.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(dir.join("proxy_auth.wasm"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o004,
        0o004,
        "dist/proxy_auth.wasm is not world-readable"
    );
}

#[test]
fn dist_module_challenges_and_forwards_in_envoy() {
    let opts = ConfigOptions {
        wasm: Some(dist_dir().join("proxy_auth.wasm")),
        ..ConfigOptions::default()
    };
    let plugin = json!({"realm": "dist", "users": ALICE.line, "user_header": "x-proxy-user"});
    let upstream = Upstream::start();
    let envoy = Envoy::start(&test_config(&plugin.to_string(), upstream.addr(), &opts));
    let proxy = envoy.listener(LISTENER);
    let r = proxy_auth_e2e::exchange(proxy, &RawRequest::get("/"));
    assert_eq!(r.status, 407, "{r:?}");
    let r = proxy_auth_e2e::exchange(proxy, &RawRequest::get("/").proxy_auth(ALICE.auth()));
    assert_eq!(r.status, 200, "{r:?}");
    let got = upstream.wait_requests(1, WAIT);
    assert_eq!(got[0].headers_named("x-proxy-user"), [b"alice"]);
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles

fn instructions(dockerfile: &str) -> Vec<String> {
    read(dockerfile)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The members of the root workspace (`members = ["core", ...]`).
fn workspace_members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("the root Cargo.toml lists no members");
    let list = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn demo_dockerfile_copies_the_whole_workspace_and_nothing_else() {
    let lines = instructions("deploy/Dockerfile.demo");
    let copies: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
        .collect();
    let mut copied = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for m in workspace_members() {
        assert!(
            copies.iter().any(|l| **l == format!("COPY {m} {m}")),
            "deploy/Dockerfile.demo does not copy the workspace member {m}"
        );
        copied.push(m);
    }
    // The copied set alone is a workspace cargo can load (no path outside it is needed).
    let stage = tempfile::tempdir().unwrap();
    for item in &copied {
        let src = repo(item);
        if src.is_dir() {
            copy_tree(&src, &stage.path().join(item));
        } else {
            fs::copy(&src, stage.path().join(item)).unwrap();
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (ok, out) = run(Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(stage.path()));
    assert!(
        ok,
        "the Dockerfile's copy of the workspace does not load:\n{out}"
    );
    let meta: Value = serde_json::from_str(out.trim()).unwrap();
    let bins: BTreeSet<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter(|t| t["kind"] == json!(["bin"]))
        .filter_map(|t| t["name"].as_str())
        .collect();
    for bin in ["demo-upstream", "proxy-auth-service"] {
        assert!(bins.contains(bin), "no binary {bin} in {bins:?}");
        assert!(
            lines.iter().any(|l| l.contains(&format!("--bin {bin}"))),
            "deploy/Dockerfile.demo does not build {bin}"
        );
    }
}

#[test]
fn wasm_dockerfile_is_one_layer_holding_plugin_wasm() {
    // Istio's compat image layout: the last layer holds a file named plugin.wasm; one COPY onto
    // scratch makes that the only layer.
    assert_eq!(
        instructions("deploy/Dockerfile.wasm"),
        ["FROM scratch", "COPY plugin.wasm ./"]
    );
}

// ---------------------------------------------------------------------------------------------
// Istio

fn istio_docs(file: &str) -> Vec<Value> {
    let rel = format!("deploy/istio/{file}");
    serde_yaml_ng::Deserializer::from_str(&read(&rel))
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .into_iter()
        // A `---` with nothing after it is an empty document, not a manifest.
        .filter(|doc| !doc.is_null())
        .collect()
}

fn find_kind(docs: &[Value], kind: &str) -> Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
        .clone()
}

/// The Envoy config Istio gives a gateway for `plugin` (pilot's WasmPlugin translation): the
/// pluginConfig as a JSON StringValue, INLINE env as key_values, HOST env as host_env_keys, the
/// filter named namespace.name, a FAIL_CLOSE plugin failing closed. The module is the local
/// build (Istio's agent fetches the image and rewrites the url to a local file the same way).
fn istio_like_config(
    plugin: &Value,
    upstream: SocketAddr,
    clusters: &[(&str, SocketAddr)],
) -> String {
    let spec = &plugin["spec"];
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let mut key_values = vec![(
        "ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION".to_string(),
        "1".to_string(),
    )];
    let mut host_keys = Vec::new();
    for e in spec["vmConfig"]["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        match e["valueFrom"].as_str().unwrap_or("INLINE") {
            "HOST" => host_keys.push(name),
            _ => key_values.push((name, e["value"].as_str().unwrap_or("").to_string())),
        }
    }
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    let kv: String = key_values
        .iter()
        .map(|(k, v)| format!("                      {}: {}\n", q(k), q(v)))
        .collect();
    let hk: String = host_keys
        .iter()
        .map(|k| format!("                    - {}\n", q(k)))
        .collect();
    let cluster_yaml: String = std::iter::once(&("upstream", upstream))
        .chain(clusters)
        .map(|(name, addr)| static_cluster(name, *addr))
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
          stat_prefix: gateway
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
          http_filters:
          - name: {ns}.{name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {ns}.{name}
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {wasm}
                  environment_variables:
                    key_values:
{kv}                    host_env_keys:
{hk}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{cluster_yaml}"#,
        ns = plugin["metadata"]["namespace"].as_str().unwrap(),
        name = plugin["metadata"]["name"].as_str().unwrap(),
        config = q(&spec["pluginConfig"].to_string()),
        wasm = q(&paths::wasm_path().to_string_lossy()),
    )
}

/// `envoy --mode validate` of `yaml` with the process environment Istio's proxy would have.
fn validate_with_env(yaml: &str, env: &[(&str, &str)], unset: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(paths::envoy_bin());
    cmd.args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .args(["--log-level", "info", "--component-log-level", "wasm:debug"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    run(&mut cmd)
}

/// Runs `cmd`: whether it succeeded, and stdout followed by stderr.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn istio_manifests_parse_and_name_known_kinds() {
    let known = [
        ("extensions.istio.io/v1alpha1", "WasmPlugin"),
        ("networking.istio.io/v1", "ServiceEntry"),
        ("networking.istio.io/v1", "Gateway"),
        ("networking.istio.io/v1", "DestinationRule"),
        ("networking.istio.io/v1", "VirtualService"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
    ];
    let mut files: Vec<PathBuf> = fs::read_dir(repo("deploy/istio"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        for doc in istio_docs(&file) {
            if doc.get("kind").is_none() {
                // A strategic merge patch for a Deployment, not a resource.
                assert!(
                    doc["spec"]["template"]["spec"]["containers"].is_array(),
                    "{file}: a document without kind that is no Deployment patch"
                );
                continue;
            }
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            let kind = doc["kind"].as_str().unwrap_or_default();
            assert!(
                known.contains(&(api, kind)),
                "{file}: unexpected {api} {kind}"
            );
            assert!(
                doc["metadata"]["name"].is_string(),
                "{file}: {kind} has no name"
            );
        }
    }
}

#[test]
fn wasmplugins_are_authn_fail_closed_on_the_example_gateway() {
    let gateway = find_kind(&istio_docs("egress-gateway.yaml"), "Gateway");
    for file in ["wasmplugin.yaml", "wasmplugin-external.yaml"] {
        let plugin = find_kind(&istio_docs(file), "WasmPlugin");
        let spec = &plugin["spec"];
        assert_eq!(spec["phase"], "AUTHN", "{file}");
        assert_eq!(spec["failStrategy"], "FAIL_CLOSE", "{file}");
        assert!(
            spec["url"].as_str().unwrap().starts_with("oci://"),
            "{file}"
        );
        // The CRD refuses anything but empty or 64 lowercase hex digits.
        if let Some(sha) = spec.get("sha256") {
            let sha = sha.as_str().unwrap();
            assert!(
                sha.len() == 64
                    && sha
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{file}: sha256 {sha:?}"
            );
        }
        assert_eq!(
            spec["selector"]["matchLabels"], gateway["spec"]["selector"],
            "{file} does not select the example gateway's pods"
        );
        assert_eq!(plugin["metadata"]["namespace"], "istio-system", "{file}");
    }
}

#[test]
fn wasmplugin_users_come_from_the_secret_through_the_gateway_environment() {
    let plugin = find_kind(&istio_docs("wasmplugin.yaml"), "WasmPlugin");
    let var = plugin["spec"]["pluginConfig"]["users_env"]
        .as_str()
        .unwrap();
    let env = &plugin["spec"]["vmConfig"]["env"];
    assert_eq!(*env, json!([{"name": var, "valueFrom": "HOST"}]));
    // The patch puts the Secret's key into the proxy container under that name.
    let patch = &istio_docs("egressgateway-users-env.yaml")[0];
    let container = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "istio-proxy");
    let entry = &container["env"][0];
    assert_eq!(entry["name"], var);
    let secret = &entry["valueFrom"]["secretKeyRef"];
    let command = format!(
        "create secret generic {} --from-file={}=",
        secret["name"].as_str().unwrap(),
        secret["key"].as_str().unwrap()
    );
    assert!(
        read("deploy/istio/wasmplugin.yaml").contains(&command),
        "wasmplugin.yaml does not show `{command}`"
    );

    let yaml = istio_like_config(&plugin, SocketAddr::from(([127, 0, 0, 1], 9)), &[]);
    let users = format!("# from the Secret\n{}\n", ALICE.line);
    let (ok, log) = validate_with_env(&yaml, &[(var, &users)], &[]);
    assert!(
        ok,
        "the WasmPlugin refuses users from the gateway's environment:\n{log}"
    );
    let (ok, log) = validate_with_env(&yaml, &[], &[var]);
    assert!(!ok, "accepted with no users in the environment:\n{log}");
    assert!(log.contains(var), "the refusal does not name {var}:\n{log}");
}

#[test]
fn external_wasmplugin_reaches_its_service_by_the_istio_cluster_name() {
    let docs = istio_docs("wasmplugin-external.yaml");
    let svc = find_kind(&docs, "Service");
    let cluster = format!(
        "outbound|{}||{}.{}.svc.cluster.local",
        svc["spec"]["ports"][0]["port"],
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap()
    );
    let plugin = find_kind(&docs, "WasmPlugin");
    assert_eq!(
        plugin["spec"]["pluginConfig"]["external"]["cluster"],
        cluster
    );

    let service = AuthService::start(&["--user", "alice:wonderland"]);
    let upstream = Upstream::start();
    let envoy = Envoy::start(&istio_like_config(
        &plugin,
        upstream.addr(),
        &[(&cluster, service.addr())],
    ));
    let proxy = envoy.listener(LISTENER);
    let r = proxy_auth_e2e::exchange(
        proxy,
        &RawRequest::get("/").proxy_auth(basic("alice", "wonderland")),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r: Response = proxy_auth_e2e::exchange(
        proxy,
        &RawRequest::get("/").proxy_auth(basic("alice", "wrong")),
    );
    assert_eq!(r.status, 407, "{r:?}");
    assert!(service.calls_for("alice") >= 2);
}

// ---------------------------------------------------------------------------------------------
// The plugin configs the docs show

/// The ```json blocks of a Markdown file of the repository.
fn json_blocks(path: &str) -> Vec<String> {
    let text = read(path);
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_plugin_config_in_the_docs_passes_validate() {
    let readme = json_blocks("README.md");
    assert!(
        readme.len() >= 3,
        "README.md shows no plugin config per mode (local, users_env, external)"
    );
    let mut blocks: Vec<(&str, String)> = readme.into_iter().map(|b| ("README.md", b)).collect();
    blocks.extend(
        json_blocks("docs/deploy.md")
            .into_iter()
            .map(|b| ("docs/deploy.md", b)),
    );
    for (path, block) in blocks {
        let config: Value = serde_json::from_str(&block)
            .unwrap_or_else(|e| panic!("{path} json block is not JSON ({e}):\n{block}"));
        let mut opts = ConfigOptions::default();
        if let Some(var) = config["users_env"].as_str() {
            opts = opts.env(var, &format!("{}\n", ALICE.line));
        }
        if let Some(cluster) = config["external"]["cluster"].as_str() {
            opts = opts.cluster(cluster, SocketAddr::from(([127, 0, 0, 1], 9)));
        }
        let nowhere = SocketAddr::from(([127, 0, 0, 1], 9));
        let (ok, log) = validate_yaml(&test_config(&block, nowhere, &opts));
        assert!(ok, "{path} config refused:\n{block}\n{log}");
    }
}
