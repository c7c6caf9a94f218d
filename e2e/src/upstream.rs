//! A real HTTP/1.1 upstream that records every request exactly as Envoy forwarded it, so tests
//! can assert on bytes (which headers were removed, added, left alone) rather than on a summary.
//! Std threads and blocking sockets: one thread per connection is plenty for tests and the demo.

use crate::http::{self, BodyKind, Header};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// One request as the upstream received it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub version: Vec<u8>,
    /// The request line and header section, byte for byte.
    pub head: Vec<u8>,
    pub headers: Vec<Header>,
    /// The body, de-chunked; complete only once `complete` is true.
    pub body: Vec<u8>,
    /// False while the body is still arriving.
    pub complete: bool,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        http::header(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&[u8]> {
        http::headers_named(&self.headers, name)
    }

    /// The first value of header `name` as text (lossy), for readable assertions.
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// What the upstream answers: a JSON summary of this request.
    fn summary(&self) -> Vec<u8> {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let headers: Vec<[String; 2]> = self
            .headers
            .iter()
            .map(|(n, v)| [lossy(n), lossy(v)])
            .collect();
        let v = serde_json::json!({
            "method": lossy(&self.method),
            "target": lossy(&self.target),
            "headers": headers,
            "body_len": self.body.len(),
        });
        let mut out = v.to_string().into_bytes();
        out.push(b'\n');
        out
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Received>>,
    changed: Condvar,
    connections: AtomicUsize,
    stopping: AtomicBool,
    record: bool,
    announce: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Received>> {
        // A poisoned lock only means another connection thread panicked; the data is still usable.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running upstream; it stops accepting when dropped.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts a recording upstream on an ephemeral loopback port. Panics if it cannot bind.
    pub fn start() -> Upstream {
        match Upstream::bind("127.0.0.1:0", true, false) {
            Ok(u) => u,
            Err(e) => panic!("test upstream cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Binds `addr` and serves in background threads. `record` keeps every request for
    /// `requests()` (tests); `announce` prints a line per request to stdout (the demo).
    pub fn bind(addr: impl ToSocketAddrs, record: bool, announce: bool) -> io::Result<Upstream> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            record,
            announce,
            ..Shared::default()
        });
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("upstream-{addr}"))
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(Upstream { addr, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received in full so far.
    pub fn requests(&self) -> Vec<Received> {
        self.shared
            .lock()
            .iter()
            .filter(|r| r.complete)
            .cloned()
            .collect()
    }

    /// Every request whose head arrived, including ones whose body is still arriving.
    pub fn heads(&self) -> Vec<Received> {
        self.shared.lock().clone()
    }

    /// How many TCP connections were accepted: zero proves nothing at all reached the upstream.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests are complete and returns them all; panics after `timeout`.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait(timeout, |all| {
            all.iter().filter(|r| r.complete).count() >= n
        });
        self.requests()
    }

    /// Waits until at least `n` heads arrived (bodies may still be arriving); panics after `timeout`.
    pub fn wait_heads(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait(timeout, |all| all.len() >= n);
        self.heads()
    }

    fn wait(&self, timeout: Duration, done: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut all = self.shared.lock();
        while !done(&all) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("upstream: timed out after {timeout:?}; it has {:#?}", *all);
            }
            all = match self.shared.changed.wait_timeout(all, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept so its thread sees the flag and exits.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(shared);
        let _ = thread::Builder::new()
            .name("upstream-conn".into())
            .spawn(move || {
                // An I/O error just ends this connection, as it would for a real server.
                let _ = serve(stream, &shared);
            });
    }
}

/// Serves requests on one connection until it closes (HTTP/1.1 keep-alive, RFC 9112 section 9.3).
fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(head) = http::read_head(&mut reader)? {
        let (method, target, version) = http::start_line_parts(&head.start_line);
        let mut req = Received {
            method,
            target,
            version,
            head: head.raw,
            headers: head.headers,
            ..Received::default()
        };
        let index = shared.record.then(|| {
            let mut all = shared.lock();
            all.push(req.clone());
            shared.changed.notify_all();
            all.len() - 1
        });
        let connect = req.method == b"CONNECT";
        let kind = if connect {
            BodyKind::None
        } else {
            http::body_kind(&req.headers, BodyKind::None)?
        };
        req.body = http::read_body(&mut reader, kind)?;
        req.complete = true;
        if let Some(i) = index {
            let mut all = shared.lock();
            if let Some(slot) = all.get_mut(i) {
                *slot = req.clone();
            }
            shared.changed.notify_all();
        }
        if shared.announce {
            println!(
                "demo-upstream: {} {} (x-proxy-user: {})",
                String::from_utf8_lossy(&req.method),
                String::from_utf8_lossy(&req.target),
                req.header_str("x-proxy-user").unwrap_or_else(|| "-".into())
            );
        }
        if connect {
            // RFC 9110 section 9.3.6: after a 2xx the connection is a tunnel; echo what arrives.
            writer.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
            return echo(reader, writer);
        }
        let close =
            http::has_token(&req.headers, "connection", "close") || req.version == b"HTTP/1.0";
        let body = req.summary();
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        )
        .into_bytes();
        if close {
            response.extend_from_slice(b"connection: close\r\n");
        }
        response.extend_from_slice(b"\r\n");
        response.extend_from_slice(&body);
        writer.write_all(&response)?;
        if close {
            return writer.shutdown(Shutdown::Write);
        }
    }
    Ok(())
}

fn echo(mut reader: BufReader<TcpStream>, mut writer: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return writer.shutdown(Shutdown::Write);
        }
        writer.write_all(&buf[..n])?;
    }
}
