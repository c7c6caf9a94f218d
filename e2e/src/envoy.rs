//! Runs a real Envoy (the pinned binary from .venv) for one test: its own temp dir, ports chosen
//! by the kernel and read back from the admin API, so any number of tests can run at once and
//! share nothing. The process is killed when the handle drops.

use crate::client::{Client, RawRequest};
use crate::paths;
use std::collections::HashMap;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How an Envoy is started.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// Worker threads (`--concurrency`); 1 keeps per-worker caches observable.
    pub concurrency: u32,
    /// Envoy's overall `--log-level`.
    pub log_level: String,
    /// `--component-log-level`; wasm:debug shows the filter's decision lines.
    pub component_log_level: String,
    /// How long Envoy may take to become ready (V8 compiles the module at start).
    pub startup_timeout: Duration,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            concurrency: 1,
            log_level: "info".into(),
            component_log_level: "wasm:debug".into(),
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// A running Envoy.
pub struct Envoy {
    child: Child,
    dir: TempDir,
    admin: SocketAddr,
    listeners: HashMap<String, SocketAddr>,
}

impl Envoy {
    /// Starts Envoy with `yaml` and default options; panics with the log tail if it fails.
    pub fn start(yaml: &str) -> Envoy {
        Envoy::start_with(yaml, &EnvoyOptions::default())
    }

    /// Starts Envoy with `yaml`; panics with the log tail if it does not become ready.
    pub fn start_with(yaml: &str, opts: &EnvoyOptions) -> Envoy {
        match Envoy::try_start(yaml, opts) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts Envoy with `yaml` and waits until it is ready and every listener is bound.
    /// The error text says what went wrong and ends with the tail of Envoy's log.
    pub fn try_start(yaml: &str, opts: &EnvoyOptions) -> Result<Envoy, String> {
        let dir = tempfile::Builder::new()
            .prefix("proxy-auth-envoy-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let config = dir.path().join("envoy.yaml");
        fs::write(&config, yaml).map_err(|e| format!("cannot write {config:?}: {e}"))?;
        let admin_path = dir.path().join("admin-address");
        let log_path = dir.path().join("envoy.log");
        let log = File::create(&log_path).map_err(|e| format!("cannot create log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot dup log: {e}"))?;
        let bin = paths::envoy_bin();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("--disable-hot-restart")
            .args(["--concurrency", &opts.concurrency.to_string()])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--log-level", &opts.log_level])
            .args(["--component-log-level", &opts.component_log_level])
            // Relative paths in shipped configs are relative to the repository root.
            .current_dir(paths::repo_root())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run {bin:?} (run `make build` or set ENVOY_BIN): {e}"))?;
        let mut envoy = Envoy {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners: HashMap::new(),
        };
        match envoy.wait_ready(&admin_path, opts.startup_timeout) {
            Ok(()) => Ok(envoy),
            Err(why) => Err(format!(
                "Envoy did not start: {why}\n--- Envoy log tail ---\n{}",
                envoy.log_tail(60)
            )),
        }
    }

    fn wait_ready(&mut self, admin_path: &Path, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no admin address yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("Envoy exited with {status}"));
            }
            match self.probe(admin_path) {
                Ok(()) => return Ok(()),
                Err(why) => last = why,
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not ready after {timeout:?}: {last}"))
    }

    /// One readiness check: admin address known, /ready says LIVE, every listener has a port.
    fn probe(&mut self, admin_path: &Path) -> Result<(), String> {
        let text = fs::read_to_string(admin_path).map_err(|_| "no admin address yet")?;
        self.admin = text
            .trim()
            .parse()
            .map_err(|e| format!("admin address {text:?}: {e}"))?;
        let (status, body) = self.try_admin_get("/ready")?;
        if status != 200 {
            return Err(format!("/ready: {status} {body}"));
        }
        let (_, body) = self.try_admin_get("/listeners?format=json")?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/listeners: {e}: {body}"))?;
        let mut listeners = HashMap::new();
        for l in v["listener_statuses"].as_array().into_iter().flatten() {
            let name = l["name"].as_str().unwrap_or_default().to_string();
            let sa = &l["local_address"]["socket_address"];
            let port = sa["port_value"].as_u64().unwrap_or(0);
            let ip = sa["address"].as_str().unwrap_or_default();
            if port == 0 {
                return Err(format!("listener {name} not bound yet"));
            }
            let addr = format!("{ip}:{port}")
                .parse()
                .map_err(|e| format!("listener {name} address {ip}:{port}: {e}"))?;
            listeners.insert(name, addr);
        }
        self.listeners = listeners;
        Ok(())
    }

    /// The bound address of listener `name`; panics if there is none.
    pub fn listener(&self, name: &str) -> SocketAddr {
        match self.listeners.get(name) {
            Some(a) => *a,
            None => panic!("no listener {name:?}; Envoy has {:?}", self.listeners),
        }
    }

    /// The admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// GET `path` on the admin API: status and body; panics if admin does not answer.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        match self.try_admin_get(path) {
            Ok(r) => r,
            Err(e) => panic!(
                "admin {path}: {e}\n--- Envoy log tail ---\n{}",
                self.log_tail(40)
            ),
        }
    }

    fn try_admin_get(&self, path: &str) -> Result<(u16, String), String> {
        let mut c = Client::try_connect(self.admin).map_err(|e| format!("admin connect: {e}"))?;
        let req = RawRequest::get(path).header("Connection", "close");
        c.send(&req.to_bytes());
        let r = c
            .try_response_to("GET", Duration::from_secs(10))
            .map_err(|e| format!("admin {path}: {e}"))?;
        Ok((r.status, r.body_str()))
    }

    /// All stats as `name: value` text lines.
    pub fn stats(&self) -> String {
        self.admin_get("/stats").1
    }

    /// The value of counter or gauge `name` (e.g. `wasmcustom.proxy_auth.allowed`); 0 if absent.
    pub fn counter(&self, name: &str) -> u64 {
        // The admin filter is a regex: anchor it and make the dots literal.
        let filter = name.replace('.', "\\.");
        let (_, body) = self.admin_get(&format!("/stats?format=json&filter=^{filter}$"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["value"].as_u64())
            .unwrap_or(0)
    }

    /// Everything Envoy logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("envoy.log")
    }

    /// Waits until the log contains `needle` (log lines are written asynchronously).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- Envoy log tail ---\n{}", self.log_tail(60));
        }
    }
}

/// Runs `envoy --mode validate -c config_path` (which also runs the plugin's configure step):
/// whether Envoy accepted the config, and everything it printed.
pub fn validate(config_path: &Path) -> (bool, String) {
    let bin = paths::envoy_bin();
    let out = Command::new(&bin)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(config_path)
        .args(["--log-level", "info", "--component-log-level", "wasm:debug"])
        .current_dir(paths::repo_root())
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(Output {
            status,
            stdout,
            stderr,
        }) => {
            let mut text = String::from_utf8_lossy(&stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&stderr));
            (status.success(), text)
        }
        Err(e) => (false, format!("cannot run {bin:?}: {e}")),
    }
}

/// `validate` for a config given as text (written to a temp file first).
pub fn validate_yaml(yaml: &str) -> (bool, String) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return (false, format!("cannot create a temp dir: {e}")),
    };
    let path = dir.path().join("envoy.yaml");
    if let Err(e) = fs::write(&path, yaml) {
        return (false, format!("cannot write {path:?}: {e}"));
    }
    validate(&path)
}
