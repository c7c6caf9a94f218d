//! A raw HTTP/1.1 client: it writes whatever bytes a test gives it (duplicate fields, bytes that
//! are not UTF-8, broken tokens) which a client library would refuse or repair, and reads back one
//! response at a time so a test can also send a head, look, and only then send the body.

use crate::http::{self, BodyKind, Header};
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long any read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// One response as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The status line and header section, byte for byte.
    pub head: Vec<u8>,
    pub headers: Vec<Header>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        http::header(&self.headers, name)
    }

    /// The first value of header `name` as text (lossy).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of header `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&[u8]> {
        http::headers_named(&self.headers, name)
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (the test upstream answers with a JSON summary); panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("response body is not JSON ({e}): {self:?}"),
        }
    }
}

/// A request assembled from bytes, serialised exactly as given (no validation, no repair).
#[derive(Clone, Debug)]
pub struct RawRequest {
    method: Vec<u8>,
    target: Vec<u8>,
    headers: Vec<Header>,
    body: Vec<u8>,
}

impl RawRequest {
    /// `METHOD target HTTP/1.1` with no header fields yet.
    pub fn new(method: &str, target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest {
            method: method.as_bytes().to_vec(),
            target: target.as_ref().to_vec(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET target` with `Host: upstream.test`.
    pub fn get(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("GET", target).header("Host", "upstream.test")
    }

    /// `CONNECT authority` with the authority repeated in `Host`, as clients send it.
    pub fn connect(authority: &str) -> RawRequest {
        RawRequest::new("CONNECT", authority).header("Host", authority)
    }

    /// Appends a header field, name and value as raw bytes.
    pub fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> RawRequest {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Adds `Proxy-Authorization: <value>`.
    pub fn proxy_auth(self, value: impl AsRef<[u8]>) -> RawRequest {
        self.header("Proxy-Authorization", value)
    }

    /// Sets a body and the matching `Content-Length`.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> RawRequest {
        self.body = body.as_ref().to_vec();
        let len = self.body.len().to_string();
        self.header("Content-Length", len)
    }

    /// Request line and header section.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The whole request.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// One client connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects or panics.
    pub fn connect(addr: SocketAddr) -> Client {
        match Client::try_connect(addr) {
            Ok(c) => c,
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }

    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Writes bytes as they are; panics on failure.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self
            .writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
        {
            panic!("cannot send {} bytes: {e}", bytes.len());
        }
    }

    /// Reads the response to a request with method `GET` (or any with the same framing).
    pub fn response(&mut self) -> Response {
        self.response_to("GET")
    }

    /// Reads the next final response to a request with `method`; panics on error or timeout.
    pub fn response_to(&mut self, method: &str) -> Response {
        match self.try_response_to(method, IO_TIMEOUT) {
            Ok(r) => r,
            Err(e) => panic!("no response to {method}: {e}"),
        }
    }

    /// Reads the next final response, waiting at most `timeout` for it to start.
    /// Interim 1xx responses are skipped (RFC 9110 section 15.2).
    pub fn try_response_to(&mut self, method: &str, timeout: Duration) -> io::Result<Response> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        let result = self.read_final_response(method);
        self.reader.get_ref().set_read_timeout(Some(IO_TIMEOUT))?;
        result
    }

    fn read_final_response(&mut self, method: &str) -> io::Result<Response> {
        loop {
            let head = http::read_head(&mut self.reader)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
            let (_, code, _) = http::start_line_parts(&head.start_line);
            let status: u16 = std::str::from_utf8(&code)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
            if (100..200).contains(&status) {
                continue;
            }
            // RFC 9112 section 6.3: no body after HEAD, 204, 304, or a 2xx to CONNECT.
            let no_body = method == "HEAD"
                || status == 204
                || status == 304
                || (method == "CONNECT" && (200..300).contains(&status));
            let kind = if no_body {
                BodyKind::None
            } else {
                http::body_kind(&head.headers, BodyKind::UntilClose)?
            };
            let body = http::read_body(&mut self.reader, kind)?;
            return Ok(Response {
                status,
                head: head.raw,
                headers: head.headers,
                body,
            });
        }
    }

    /// Reads exactly `n` bytes (e.g. the echo through a tunnel); panics on error or timeout.
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        if let Err(e) = self.reader.read_exact(&mut buf) {
            panic!("cannot read {n} bytes: {e}");
        }
        buf
    }

    /// True if the peer closes the connection within `timeout` (any bytes before that are dropped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let _ = self.reader.get_ref().set_read_timeout(Some(timeout));
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Opens a connection, sends `request`, and reads one response to it.
pub fn exchange(addr: SocketAddr, request: &RawRequest) -> Response {
    let mut c = Client::connect(addr);
    c.send(&request.to_bytes());
    let method = String::from_utf8_lossy(&request.method).into_owned();
    c.response_to(&method)
}

/// Sends raw bytes on a new connection and reads one response as if to a GET.
pub fn exchange_raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send(bytes);
    c.response()
}
