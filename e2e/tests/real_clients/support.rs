//! What the real-client tests stand on: the shipped forward-proxy config run with kernel-chosen
//! ports, a TLS upstream with a throwaway CA that records what reached it, and one-call runs of
//! curl and of the Python clients. Real processes, no mocks: the point is what real clients do.
//! Every child process is bounded in time and killed on drop, so a hang fails one test only.

use proxy_auth_e2e::{paths, Envoy};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The demo user envoy/forward-proxy.yaml ships with.
pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo";
pub const DEMO_REALM: &str = "proxy-auth demo";

/// A second user, added to the tests' copy of the config only: an e-mail address as the name and a
/// password with every character that breaks a URL's userinfo when left unencoded.
pub const SPECIAL_USER: &str = "j.doe@example.com";
pub const SPECIAL_PASSWORD: &str = "p@ss:w/rd%# ?";
/// Made once with `openssl passwd -6 'p@ss:w/rd%# ?'` (SHA-512 crypt, 5000 rounds).
const SPECIAL_HASH: &str =
    "$6$f67R.qHS78jSTj1p$QaSOKS0RitwpMPT.qIW5PGwdY8fOsBcsFh.xy04lEEzGkphvpHst.giomOc01yTO/Q0rqD2iIrDOA04K0GgTk/";

/// Environment variables that steer clients to a proxy: removed from every client this file
/// starts, so the machine's own settings cannot decide a test, and set only where a test means to.
const PROXY_ENV: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// How long one client run may take before the test fails instead of hanging.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The shipped explicit forward proxy, running.
pub struct DemoProxy {
    pub envoy: Envoy,
    pub addr: SocketAddr,
}

impl DemoProxy {
    /// envoy/forward-proxy.yaml with only what a test run must change: its fixed ports become
    /// kernel-chosen ones, the module path becomes the one under test, and SPECIAL_USER is added
    /// beside the shipped demo user (which stays as shipped).
    pub fn start() -> DemoProxy {
        let path = paths::repo_root().join("envoy/forward-proxy.yaml");
        let yaml = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let wasm = serde_json::Value::String(paths::wasm_path().to_string_lossy().into_owned());
        let users_line = "\"users\": \"demo:";
        let edits = [
            ("port_value: 10000".to_string(), "port_value: 0".to_string()),
            ("port_value: 9901".to_string(), "port_value: 0".to_string()),
            (
                "filename: target/wasm32-wasip1/release/proxy_auth.wasm".to_string(),
                format!("filename: {wasm}"),
            ),
        ];
        let mut yaml = edits.iter().fold(yaml, |y, (from, to)| {
            assert!(y.contains(from.as_str()), "{path:?} no longer has {from:?}");
            y.replace(from.as_str(), to)
        });
        // The users value is a JSON string inside the YAML; `\n` there is JSON's newline escape.
        let line_start = yaml
            .find(users_line)
            .unwrap_or_else(|| panic!("{path:?} has no {users_line:?} line"));
        let line_end = line_start
            + yaml[line_start..]
                .find("\\n\",")
                .unwrap_or_else(|| panic!("{path:?}: the users line no longer ends in \\n\","));
        yaml.insert_str(line_end, &format!("\\n{SPECIAL_USER}:{SPECIAL_HASH}"));
        let envoy = Envoy::start(&yaml);
        let addr = envoy.listener("forward_proxy");
        DemoProxy { envoy, addr }
    }

    /// `http://127.0.0.1:<port>`: the proxy speaks plain HTTP, also to clients that tunnel HTTPS.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.1:<port>` with both parts used as given (callers encode).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// Every `wasmcustom.proxy_auth.*` counter, by its short name (`allowed`, `denied.missing`).
    pub fn counters(&self) -> Counters {
        let (_, body) = self
            .envoy
            .admin_get("/stats?format=json&filter=^wasmcustom\\.proxy_auth\\.");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let values = v["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let name = s["name"].as_str()?.strip_prefix("wasmcustom.proxy_auth.")?;
                Some((name.to_string(), s["value"].as_u64()?))
            })
            .collect();
        Counters(values)
    }
}

/// A snapshot of the filter's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(HashMap<String, u64>);

impl Counters {
    pub fn get(&self, short: &str) -> u64 {
        self.0.get(short).copied().unwrap_or(0)
    }

    /// What moved since `before`, only the counters that changed, for exact assertions.
    pub fn since(&self, before: &Counters) -> HashMap<String, u64> {
        self.0
            .iter()
            .filter_map(|(k, &v)| {
                let d = v.saturating_sub(before.get(k));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect()
    }
}

/// A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost, made by the
/// openssl CLI. Clients get `ca` to verify with; nothing here is trusted by the system.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("proxy-auth-pki-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // P-256 keys: generated in milliseconds, so every test can have its own CA.
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(
            d,
            &format!(
                "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=proxy-auth-e2e-CA \
                 -addext basicConstraints=critical,CA:TRUE \
                 -addext keyUsage=critical,keyCertSign,cRLSign"
            ),
        );
        openssl(
            d,
            &format!("req -new {ec} -keyout server.key -out server.csr -subj /CN=localhost"),
        );
        // What strict verifiers (OpenSSL, Python's ssl) expect of a leaf: SANs, EKU, key ids.
        fs::write(
            d.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             subjectKeyIdentifier=hash\n\
             authorityKeyIdentifier=keyid,issuer\n",
        )
        .unwrap();
        openssl(
            d,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile server.ext -out server.pem",
        );
        Pki { dir }
    }

    /// The CA certificate clients verify the upstream with.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// Runs openssl with `args`, split at whitespace (no argument here contains any).
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python in .venv that scripts/setup.sh makes (it carries Envoy and `requests`).
fn python() -> PathBuf {
    let p = paths::repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{p:?} is missing: run `make build` (scripts/setup.sh)"
    );
    p
}

fn client_script(name: &str) -> PathBuf {
    paths::repo_root().join("e2e/clients").join(name)
}

/// An HTTPS server on loopback (e2e/clients/tls_upstream.py) that records every TCP connection,
/// TLS handshake and request it gets, so a test can prove what did, and did not, reach it.
pub struct TlsUpstream {
    child: Child,
    port: u16,
    events: PathBuf,
    _dir: TempDir,
}

impl TlsUpstream {
    pub fn start(pki: &Pki) -> TlsUpstream {
        let dir = tempfile::Builder::new()
            .prefix("proxy-auth-tls-upstream-")
            .tempdir()
            .unwrap();
        let events = dir.path().join("events.jsonl");
        let stderr = fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new(python())
            .arg(client_script("tls_upstream.py"))
            .arg("--cert")
            .arg(pki.cert())
            .arg("--key")
            .arg(pki.key())
            .arg("--events")
            .arg(&events)
            // The server exits when this pipe closes, so it cannot outlive the test process.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tls_upstream.py: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(port) = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            let err = fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!("tls_upstream.py did not announce its port (got {line:?}): {err}");
        };
        TlsUpstream {
            child,
            port,
            events,
            _dir: dir,
        }
    }

    /// `https://127.0.0.1:<port><path>`; the certificate names 127.0.0.1, so clients verify it.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Everything recorded so far, in order.
    pub fn events(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The recorded events of one kind (`connection`, `handshake`, `handshake_failed`, `request`).
    pub fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// Waits until at least `n` events of `kind` are recorded; panics with all events if not.
    pub fn wait_events(&self, kind: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.events_of(kind);
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!("expected {n} {kind:?} events, have {:#?}", self.events());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Header names of a recorded request, lower-cased.
pub fn header_names(request: &serde_json::Value) -> Vec<String> {
    request["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h[0].as_str().map(str::to_ascii_lowercase))
        .collect()
}

/// What a client process did.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` if it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` with the proxy environment cleared and then `env` set; kills it (this child only)
/// if it runs longer than CLIENT_TIMEOUT.
fn run(mut cmd: Command, env: &[(&str, &str)]) -> Run {
    for var in PROXY_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Drain both pipes while waiting, so a chatty client cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}");
            }
            Err(e) => panic!("{cmd:?}: {e}"),
        }
    };
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The system curl with `args`, ignoring any ~/.curlrc (`-q` must come first) and bounded in time.
pub fn curl(args: &[&str]) -> Run {
    curl_env(args, &[])
}

/// `curl` with environment variables set, for the proxy variables curl reads itself.
pub fn curl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new("curl");
    cmd.args(["-q", "--silent", "--show-error", "--max-time", "30"])
        .args(args);
    run(cmd, env)
}

/// The request heads curl sent, from `curl -v` output: each is the list of `> ` lines from a
/// request line up to the blank line that ends it.
pub fn curl_sent_heads(verbose: &str) -> Vec<Vec<String>> {
    let mut heads: Vec<Vec<String>> = Vec::new();
    let mut open = false;
    for line in verbose.lines() {
        let Some(sent) = line.strip_prefix("> ") else {
            continue;
        };
        let sent = sent.trim_end().to_string();
        if sent.is_empty() {
            open = false;
        } else if !open {
            heads.push(vec![sent]);
            open = true;
        } else if let Some(head) = heads.last_mut() {
            head.push(sent);
        }
    }
    heads
}

/// True if a head from `curl_sent_heads` carries Proxy-Authorization.
pub fn sends_proxy_auth(head: &[String]) -> bool {
    head.iter()
        .any(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
}

/// One run of e2e/clients/python_client.py; its JSON answer.
pub struct PythonRun<'a> {
    pub client: &'a str,
    pub proxy: SocketAddr,
    pub user: &'a str,
    pub password: &'a str,
    pub unencoded: bool,
    pub ca: Option<&'a Path>,
}

impl PythonRun<'_> {
    /// GETs `url` through the proxy and returns the script's JSON (`status`+`body` or `error`).
    pub fn get(&self, url: &str) -> serde_json::Value {
        let mut cmd = Command::new(python());
        cmd.arg(client_script("python_client.py"))
            .args(["--client", self.client])
            .args(["--proxy", &self.proxy.to_string()])
            .args(["--user", self.user])
            .args(["--password", self.password]);
        if self.unencoded {
            cmd.arg("--unencoded");
        }
        if let Some(ca) = self.ca {
            cmd.arg("--ca").arg(ca);
        }
        cmd.arg(url);
        let r = run(cmd, &[]);
        assert!(r.succeeded(), "python_client.py failed: {r:?}");
        serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|e| panic!("python_client.py printed no JSON ({e}): {r:?}"))
    }
}

/// How many denials of any kind a `Counters::since` map holds.
pub fn denials(moved: &HashMap<String, u64>) -> u64 {
    moved
        .iter()
        .filter(|(k, _)| k.starts_with("denied."))
        .map(|(_, v)| v)
        .sum()
}

/// Percent-encodes everything but RFC 3986 section 2.3's unreserved characters, which is always
/// safe inside a URL's userinfo (section 3.2.1).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
