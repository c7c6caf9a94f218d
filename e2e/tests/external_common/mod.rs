//! Fixtures for the external auth service tests: the real `proxy-auth-service` binary, built
//! once per test run with the same cargo that runs the tests (a bin-only crate cannot be a
//! dependency), started per test on a loopback port it picks itself, and killed on drop.
//! Set AUTH_SERVICE_BIN to use an already built binary instead.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proxy_auth_e2e::{paths, Client, RawRequest};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The service binary: `$AUTH_SERVICE_BIN`, else built now (once per test binary) by cargo,
/// which reports where it put it, so any target dir or profile works.
pub fn service_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("AUTH_SERVICE_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(Into::into))
            .unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .args([
                "build",
                "-p",
                "proxy-auth-service",
                "--bin",
                "proxy-auth-service",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(paths::repo_root())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build proxy-auth-service: {e}"));
        assert!(
            out.status.success(),
            "building proxy-auth-service failed ({})",
            out.status
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter(|m| m["target"]["name"] == "proxy-auth-service")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo did not report the proxy-auth-service executable")
    })
}

/// A running auth service; killed when dropped.
pub struct AuthService {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
    // Held so the service's stdout stays open for its whole life.
    _stdout: BufReader<ChildStdout>,
}

impl AuthService {
    /// Starts the service with these arguments (`--listen 127.0.0.1:0` is added) and waits for
    /// its `listening on ADDR` line.
    pub fn start(args: &[&str]) -> AuthService {
        let dir = tempfile::Builder::new()
            .prefix("proxy-auth-service-")
            .tempdir()
            .unwrap();
        let log = File::create(dir.path().join("service.log")).unwrap();
        let mut child = Command::new(service_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", service_bin()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // A failed start closes stdout at once, so this never blocks for long.
        let _ = stdout.read_line(&mut line);
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
            panic!("auth service did not start: stdout {line:?}, log:\n{log}");
        };
        AuthService {
            child,
            addr,
            dir,
            _stdout: stdout,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the service logged: one line per check, never a password.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    fn control(&self, method: &str, target: &str) -> String {
        let mut c = Client::connect(self.addr);
        let req = RawRequest::new(method, target)
            .header("Host", "auth.test")
            .header("Content-Length", "0")
            .header("Connection", "close");
        c.send(&req.to_bytes());
        let r = c.response();
        assert_eq!(r.status, 200, "auth service {method} {target}: {r:?}");
        r.body_str()
    }

    /// How many checks the service was asked for, in all.
    pub fn calls(&self) -> u64 {
        self.control("GET", "/_calls").trim().parse().unwrap()
    }

    /// How many checks carried a credential with this user name (plain ASCII names only).
    pub fn calls_for(&self, user: &str) -> u64 {
        self.control("GET", &format!("/_calls?user={user}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until the service has been asked `n` times for `user`; panics after `timeout`.
    pub fn wait_calls_for(&self, user: &str, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.calls_for(user) < n {
            assert!(
                Instant::now() < deadline,
                "auth service: fewer than {n} calls for {user} after {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the service now (a crash, as the filter sees it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AuthService {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- auth service log ---\n{}", self.log());
        }
    }
}
