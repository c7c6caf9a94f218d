//! Drives the built `proxy-auth-service` binary over raw TCP, the way Envoy's HTTP/1.1 client
//! does for proxy-auth's external mode: each test starts its own process on port 0, so the
//! call counters it asserts on belong to that test alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;

/// Long enough for a loaded CI machine, short enough that a broken test fails rather than hangs.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct Service {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Service {
    fn start(args: &[&str]) -> Self {
        Self::start_with_stderr(args, Stdio::null())
    }

    fn start_with_stderr(args: &[&str], stderr: Stdio) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_proxy-auth-service"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start proxy-auth-service");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Service {
            child,
            addr,
            stdout,
        }
    }

    fn connect(&self) -> Conn {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    /// One auth check on a fresh connection, shaped like the filter's.
    fn check(&self, authorization: Option<&str>, host: &str) -> Reply {
        self.connect().request(&check_request(authorization, host))
    }

    fn calls(&self, query: &str) -> u64 {
        let reply = self.connect().request(&format!(
            "GET /_calls{query} HTTP/1.1\r\nhost: auth\r\n\r\n"
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body.trim().parse().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    fn request(&mut self, raw: &str) -> Reply {
        self.send(raw.as_bytes());
        self.reply()
    }

    fn reply(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: String::new(),
        };
        let length: usize = reply
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        reply.body = String::from_utf8(body).unwrap();
        reply
    }

    /// Everything until the service closes the connection.
    fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        rest
    }
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

fn check_request(authorization: Option<&str>, host: &str) -> String {
    let authorization = authorization
        .map(|a| format!("proxy-authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /check HTTP/1.1\r\nhost: auth\r\n{authorization}x-forwarded-method: GET\r\n\
         x-forwarded-host: {host}\r\nx-forwarded-uri: /some/path\r\n\r\n"
    )
}

#[test]
fn only_the_listening_line_is_written_to_stdout() {
    let mut service = Service::start(&["--user", "alice:secret"]);
    assert_eq!(service.check(None, "example.com").status, 407);
    service.child.kill().unwrap();
    service.child.wait().unwrap();
    let mut rest = String::new();
    service.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

#[test]
fn passwords_never_reach_the_log() {
    let mut service = Service::start_with_stderr(&["--user", "alice:s3cret-pw"], Stdio::piped());
    let cases = [
        ("alice", "s3cret-pw"),
        ("alice", "wr0ng-pw"),
        ("slow-1", "t3st-pw"),
    ];
    for (user, password) in cases {
        service.check(Some(&basic(user, password)), "example.com");
    }
    service.child.kill().unwrap();
    service.child.wait().unwrap();
    let mut log = String::new();
    service
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // The log is there and names users, so the absence below means something.
    assert!(log.contains("user=\"alice\""), "{log}");
    for (user, password) in cases {
        assert!(!log.contains(password), "{password} logged: {log}");
        assert!(
            !log.contains(&basic(user, password)),
            "credential logged: {log}"
        );
    }
}

#[test]
fn missing_or_malformed_credentials_get_407_with_a_plain_challenge() {
    let service = Service::start(&["--user", "alice:secret"]);
    let cases = [
        None,
        Some("Bearer abc"),
        Some("Basic"),
        Some("Basic !!!!"),
        Some("Basic YWxpY2U="), // "alice": no colon
    ];
    for authorization in cases {
        let reply = service.check(authorization, "example.com");
        assert_eq!(reply.status, 407, "{authorization:?}");
        assert_eq!(
            reply.header("proxy-authenticate"),
            Some("Basic realm=\"directory\""),
            "{authorization:?}"
        );
        assert_eq!(reply.header("x-auth-user"), None);
    }
}

#[test]
fn two_proxy_authorization_fields_get_407() {
    let service = Service::start(&["--user", "alice:secret"]);
    let good = basic("alice", "secret");
    let reply = service.connect().request(&format!(
        "GET /check HTTP/1.1\r\nproxy-authorization: {good}\r\nproxy-authorization: {good}\r\n\r\n"
    ));
    assert_eq!(reply.status, 407);
}

#[test]
fn right_password_is_allowed_with_identity_headers() {
    let service = Service::start(&["--user", "alice:secret", "--user", "bob:a:b"]);
    for (user, password) in [("alice", "secret"), ("bob", "a:b")] {
        let reply = service.check(Some(&basic(user, password)), "example.com");
        assert_eq!(reply.status, 200, "{user}");
        assert_eq!(reply.header("x-auth-user"), Some(user));
        assert_eq!(reply.header("x-auth-groups"), Some("users"));
        assert_eq!(reply.header("proxy-authenticate"), None);
    }
}

#[test]
fn scheme_is_case_insensitive() {
    let service = Service::start(&["--user", "alice:secret"]);
    let lower = basic("alice", "secret").replace("Basic", "basic");
    assert_eq!(service.check(Some(&lower), "example.com").status, 200);
}

#[test]
fn wrong_password_or_unknown_user_gets_403_with_a_utf8_challenge() {
    let service = Service::start(&["--user", "alice:secret", "--realm", "corp"]);
    for (user, password) in [("alice", "wrong"), ("alice", ""), ("mallory", "secret")] {
        let reply = service.check(Some(&basic(user, password)), "example.com");
        assert_eq!(reply.status, 403, "{user}:{password}");
        assert_eq!(
            reply.header("proxy-authenticate"),
            Some("Basic realm=\"corp\", charset=\"UTF-8\"")
        );
        assert_eq!(reply.header("x-auth-user"), None);
    }
}

#[test]
fn realm_flag_names_the_realm_in_the_407_challenge() {
    let service = Service::start(&["--realm", "Example Corp"]);
    let reply = service.check(None, "example.com");
    assert_eq!(
        reply.header("proxy-authenticate"),
        Some("Basic realm=\"Example Corp\"")
    );
}

#[test]
fn users_file_defines_users() {
    let path =
        std::env::temp_dir().join(format!("proxy-auth-service-{}.users", std::process::id()));
    std::fs::write(
        &path,
        "# demo users\r\nalice:secret\r\n\r\ncarol:pw:with:colons\n",
    )
    .unwrap();
    let service = Service::start(&["--users-file", path.to_str().unwrap(), "--user", "bob:x"]);
    let _ = std::fs::remove_file(&path);
    let cases = [
        ("alice", "secret", 200),
        ("carol", "pw:with:colons", 200),
        ("bob", "x", 200),
        ("carol", "pw", 403),
    ];
    for (user, password, status) in cases {
        let reply = service.check(Some(&basic(user, password)), "example.com");
        assert_eq!(reply.status, status, "{user}");
    }
}

#[test]
fn allow_host_rules_decide_per_destination() {
    let service = Service::start(&[
        "--user",
        "alice:secret",
        "--user",
        "bob:pw",
        "--allow-host",
        "bob:example.com",
        "--allow-host",
        "bob:api.internal:8443",
    ]);
    let cases = [
        ("alice", "anything.test", 200),
        ("bob", "example.com", 200),
        ("bob", "Example.COM:443", 200),
        ("bob", "api.internal:8443", 200),
        ("bob", "api.internal:9000", 403),
        ("bob", "evil.test", 403),
    ];
    for (user, host, status) in cases {
        let password = if user == "bob" { "pw" } else { "secret" };
        let reply = service.check(Some(&basic(user, password)), host);
        assert_eq!(reply.status, status, "{user} -> {host}");
        if status == 403 {
            // Good credentials: a challenge would only invite the same ones again.
            assert_eq!(reply.header("proxy-authenticate"), None, "{host}");
        } else {
            assert_eq!(reply.header("x-auth-user"), Some(user));
        }
    }
    // No x-forwarded-host at all: a restricted user cannot be allowed.
    let reply = service.connect().request(&format!(
        "GET /check HTTP/1.1\r\nproxy-authorization: {}\r\n\r\n",
        basic("bob", "pw")
    ));
    assert_eq!(reply.status, 403);
}

#[test]
fn slow_user_is_allowed_after_the_delay() {
    let service = Service::start(&[]);
    let started = Instant::now();
    let reply = service.check(Some(&basic("slow-400", "any")), "example.com");
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-auth-user"), Some("slow-400"));
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
}

#[test]
fn status_users_get_exactly_that_status_and_the_connection_stays_usable() {
    let service = Service::start(&["--user", "alice:secret"]);
    let mut conn = service.connect();
    for code in [500, 502, 503, 302, 401, 403, 407, 404, 204, 200] {
        let user = format!("status-{code}");
        let reply = conn.request(&check_request(Some(&basic(&user, "x")), "example.com"));
        assert_eq!(reply.status, code, "{user}");
        // A bare status: the filter must cope without a challenge or identity.
        assert_eq!(reply.header("proxy-authenticate"), None, "{user}");
        assert_eq!(reply.header("x-auth-user"), None, "{user}");
        if code == 204 {
            assert_eq!(reply.header("content-length"), None);
        } else {
            assert!(reply.body.contains(&code.to_string()), "{user}");
        }
    }
    let reply = conn.request(&check_request(
        Some(&basic("alice", "secret")),
        "example.com",
    ));
    assert_eq!(reply.status, 200);
}

#[test]
fn status_outside_final_range_is_an_ordinary_unknown_user() {
    let service = Service::start(&[]);
    for user in ["status-100", "status-600", "status-abc"] {
        let reply = service.check(Some(&basic(user, "x")), "example.com");
        assert_eq!(reply.status, 403, "{user}");
    }
}

#[test]
fn garbage_user_gets_bytes_that_are_not_http_then_the_connection_closes() {
    let service = Service::start(&[]);
    let mut conn = service.connect();
    conn.send(check_request(Some(&basic("garbage", "x")), "example.com").as_bytes());
    let bytes = conn.rest();
    assert!(!bytes.is_empty());
    assert!(!bytes.starts_with(b"HTTP/"), "{bytes:?}");
}

#[test]
fn close_user_gets_the_connection_closed_without_a_byte() {
    let service = Service::start(&[]);
    let mut conn = service.connect();
    conn.send(check_request(Some(&basic("close", "x")), "example.com").as_bytes());
    assert_eq!(conn.rest(), b"");
}

#[test]
fn empty_user_gets_an_empty_line_pair_and_no_status_line() {
    let service = Service::start(&[]);
    let mut conn = service.connect();
    conn.send(check_request(Some(&basic("empty", "x")), "example.com").as_bytes());
    assert_eq!(conn.rest(), b"\r\n\r\n");
}

#[test]
fn hang_user_gets_no_answer_while_others_are_served() {
    let service = Service::start(&["--user", "alice:secret"]);
    let mut hung = service.connect();
    hung.send(check_request(Some(&basic("hang", "x")), "example.com").as_bytes());
    hung.stream
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut byte = [0u8; 1];
    let err = hung
        .reader
        .read(&mut byte)
        .expect_err("no answer while hanging");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    let reply = service.check(Some(&basic("alice", "secret")), "example.com");
    assert_eq!(reply.status, 200);
    hung.stream.shutdown(Shutdown::Both).unwrap();
    assert_eq!(service.calls("?user=hang"), 1);
}

#[test]
fn calls_are_counted_in_total_and_per_user_until_reset() {
    let service = Service::start(&["--user", "alice:secret"]);
    assert_eq!(service.calls(""), 0);
    service.check(Some(&basic("alice", "secret")), "a.test");
    service.check(Some(&basic("alice", "wrong")), "a.test");
    service.check(Some(&basic("slow-1", "x")), "a.test");
    service.check(Some(&basic("status-500", "x")), "a.test");
    service.check(None, "a.test");
    service.check(Some("Bearer zzz"), "a.test");
    let mut conn = service.connect();
    conn.send(check_request(Some(&basic("close", "x")), "a.test").as_bytes());
    assert_eq!(conn.rest(), b"");

    // Reading the counts is not counted: asking twice gives the same answer.
    assert_eq!(service.calls(""), 7);
    assert_eq!(service.calls(""), 7);
    let per_user = [
        ("alice", 2),
        ("slow-1", 1),
        ("slow%2D1", 1),
        ("status-500", 1),
        ("close", 1),
        ("nobody", 0),
    ];
    for (user, count) in per_user {
        assert_eq!(service.calls(&format!("?user={user}")), count, "{user}");
    }

    let reply = service
        .connect()
        .request("POST /_reset HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(reply.status, 200);
    assert_eq!(service.calls(""), 0);
    assert_eq!(service.calls("?user=alice"), 0);
    service.check(Some(&basic("alice", "secret")), "a.test");
    assert_eq!(service.calls(""), 1);
}

#[test]
fn control_paths_refuse_other_methods_without_counting() {
    let service = Service::start(&[]);
    let cases = [
        ("POST /_calls", "GET"),
        ("GET /_reset", "POST"),
        ("DELETE /_reset", "POST"),
    ];
    for (line, allow) in cases {
        let reply = service
            .connect()
            .request(&format!("{line} HTTP/1.1\r\nhost: auth\r\n\r\n"));
        assert_eq!(reply.status, 405, "{line}");
        assert_eq!(reply.header("allow"), Some(allow), "{line}");
    }
    let reply = service
        .connect()
        .request("GET /_calls?user=%zz HTTP/1.1\r\n\r\n");
    assert_eq!(reply.status, 400);
    assert_eq!(service.calls(""), 0);
}

#[test]
fn one_connection_serves_many_requests_with_and_without_bodies() {
    let service = Service::start(&["--user", "alice:secret"]);
    let good = basic("alice", "secret");
    let mut conn = service.connect();
    for _ in 0..3 {
        assert_eq!(
            conn.request(&check_request(Some(&good), "a.test")).status,
            200
        );
    }
    let with_length = format!(
        "POST /check HTTP/1.1\r\nproxy-authorization: {good}\r\ncontent-length: 11\r\n\r\nhello world"
    );
    assert_eq!(conn.request(&with_length).status, 200);
    let chunked = format!(
        "POST /check HTTP/1.1\r\nproxy-authorization: {good}\r\ntransfer-encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n"
    );
    assert_eq!(conn.request(&chunked).status, 200);
    // Pipelined: two requests in one write, answered in order.
    let two = format!(
        "{}{}",
        check_request(Some(&good), "a.test"),
        check_request(None, "a.test")
    );
    conn.send(two.as_bytes());
    assert_eq!(conn.reply().status, 200);
    assert_eq!(conn.reply().status, 407);
    assert_eq!(service.calls(""), 7);
}

#[test]
fn connection_close_is_honoured() {
    let service = Service::start(&[]);
    let mut conn = service.connect();
    let reply = conn.request("GET /check HTTP/1.1\r\nconnection: close\r\n\r\n");
    assert_eq!(reply.status, 407);
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(conn.rest(), b"");
    // HTTP/1.0 without keep-alive closes too (RFC 9112 s9.3).
    let mut conn = service.connect();
    conn.send(b"GET /check HTTP/1.0\r\n\r\n");
    let text = String::from_utf8(conn.rest()).unwrap();
    assert!(text.starts_with("HTTP/1.1 407 "), "{text}");
}

#[test]
fn bad_input_is_answered_or_dropped_and_the_service_keeps_serving() {
    let service = Service::start(&["--user", "alice:secret"]);
    let long_head = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(40 * 1024));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (b"GET / HTTP/9.9\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        (
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            b"POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            b"POST / HTTP/1.1\r\ncontent-length: 999999999\r\n\r\n".to_vec(),
            "HTTP/1.1 413 ",
        ),
        (long_head.into_bytes(), "HTTP/1.1 431 "),
        // Half a request, then the client gives up: nothing to answer.
        (
            b"GET /check HTTP/1.1\r\nproxy-auth".to_vec(),
            "HTTP/1.1 400 ",
        ),
    ];
    for (input, expected) in cases {
        let mut conn = service.connect();
        conn.send(&input);
        conn.stream.shutdown(Shutdown::Write).unwrap();
        let text = String::from_utf8_lossy(&conn.rest()).into_owned();
        assert!(text.starts_with(expected), "{input:?}: {text}");
        assert!(text.contains("connection: close"), "{text}");
    }
    // A client that connects and vanishes at once.
    drop(service.connect());
    let reply = service.check(Some(&basic("alice", "secret")), "a.test");
    assert_eq!(reply.status, 200);
}

#[test]
fn many_concurrent_connections_are_served() {
    let service = Service::start(&["--user", "alice:secret"]);
    let good = basic("alice", "secret");
    // Slow checks overlap, so a one-at-a-time server would take 64 x 100 ms per round.
    let started = Instant::now();
    thread::scope(|scope| {
        for i in 0..64 {
            let service = &service;
            let good = &good;
            scope.spawn(move || {
                let mut conn = service.connect();
                for _ in 0..3 {
                    let user = if i % 2 == 0 {
                        good.clone()
                    } else {
                        basic("slow-100", "x")
                    };
                    assert_eq!(
                        conn.request(&check_request(Some(&user), "a.test")).status,
                        200
                    );
                }
            });
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(service.calls(""), 64 * 3);
    assert_eq!(service.calls("?user=alice"), 32 * 3);
}

#[test]
fn bad_command_line_exits_non_zero_and_names_the_problem() {
    let cases: &[(&[&str], &str, i32)] = &[
        (&["--user", "alice-no-colon"], "expected NAME:PASSWORD", 2),
        (&["--user", "close:x"], "reserved", 2),
        (&["--allow-host", "ghost:example.com"], "no --user", 2),
        (&["--listen", "not an address"], "cannot listen", 1),
    ];
    for (args, expected, code) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_proxy-auth-service"))
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(*code), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(output.stdout, b"", "{args:?}");
    }
    let usage = Command::new(env!("CARGO_BIN_EXE_proxy-auth-service"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stdout).contains("--allow-host NAME:HOST"));
}
