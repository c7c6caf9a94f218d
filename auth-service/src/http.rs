//! The server side of HTTP/1.1 (RFC 9112), just enough for an auth service behind Envoy:
//! read one request at a time from a persistent connection, skip its body so the next request
//! stays framed, and write small responses that always carry their own length.
//!
//! Requests are parsed by `httparse`; this file adds what it leaves to the caller: finding the
//! end of the head with a size limit, message-body framing, and connection persistence.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Largest request head accepted; Envoy's check requests are a few hundred bytes.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 64;
/// Largest request body skipped; the service never needs a body, so anything big is a mistake.
const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Longest chunk-size line (with extensions) or trailer line accepted in a chunked body.
const MAX_CHUNK_LINE_BYTES: u64 = 4096;

/// One parsed request head; the body, if any, has already been read and dropped.
pub struct Request {
    pub method: String,
    pub target: String,
    /// Field names lowercased (RFC 9110 s5.1: names are case-insensitive); values as sent.
    headers: Vec<(String, Vec<u8>)>,
    /// Whether the connection may carry another request after this one (RFC 9112 s9.3).
    pub keep_alive: bool,
}

impl Request {
    /// Every value of the named field, in order; `name` must be lowercase.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of the named field, as text if it is UTF-8; `name` must be lowercase.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Why no request could be read; each either ends the connection silently or earns a final
/// error response before it is closed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests: the normal end of keep-alive.
    Closed,
    /// The socket failed or timed out.
    Io(io::Error),
    /// The request is not valid HTTP/1.x; the text says what was wrong.
    Malformed(&'static str),
    /// The head is larger than `MAX_HEAD_BYTES` or has more than `MAX_HEADERS` fields.
    HeadTooLarge,
    /// The declared or chunked body is larger than `MAX_BODY_BYTES`.
    BodyTooLarge,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed by the client"),
            ReadError::Io(e) => write!(f, "socket error: {e}"),
            ReadError::Malformed(why) => write!(f, "malformed request: {why}"),
            ReadError::HeadTooLarge => write!(
                f,
                "request head larger than {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
            ),
            ReadError::BodyTooLarge => {
                write!(f, "request body larger than {MAX_BODY_BYTES} bytes")
            }
        }
    }
}

impl ReadError {
    /// The response owed to the client before closing, if the socket is still usable.
    pub fn response(&self) -> Option<Response> {
        let status = match self {
            ReadError::Closed | ReadError::Io(_) => return None,
            ReadError::Malformed(_) => 400,
            ReadError::HeadTooLarge => 431,
            ReadError::BodyTooLarge => 413,
        };
        Some(Response::text(status, &format!("{self}\n")))
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// How the request's body is delimited (RFC 9112 s6.3).
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Reads the next request from the connection, including (and discarding) its body.
pub fn read_request(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    let head = read_head(reader)?;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        // read_head stops only at an empty line, so the head is complete by construction.
        Ok(httparse::Status::Partial) => return Err(ReadError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(ReadError::Malformed("not HTTP/1.0 or 1.1")),
        Err(_) => return Err(ReadError::Malformed("invalid request line or header field")),
    }
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ReadError::Malformed("incomplete request line"));
    };
    let headers: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), trim_ows(h.value).to_vec()))
        .collect();
    let request = Request {
        method: method.to_string(),
        target: target.to_string(),
        keep_alive: keep_alive(minor, &headers),
        headers,
    };
    match body_framing(&request)? {
        Body::None => {}
        Body::Length(n) => skip_exact(reader, n)?,
        Body::Chunked => skip_chunked(reader)?,
    }
    Ok(request)
}

/// Collects the request line and header fields up to the empty line that ends them.
fn read_head(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut head = Vec::with_capacity(512);
    loop {
        let room = (MAX_HEAD_BYTES + 1).saturating_sub(head.len()) as u64;
        let start = head.len();
        let n = reader.by_ref().take(room).read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(if head.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Malformed("connection closed in the middle of the head")
            });
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(ReadError::HeadTooLarge);
        }
        let line = &head[start..];
        if !line.ends_with(b"\n") {
            // Only possible at end of stream: the take() limit is caught just above.
            return Err(ReadError::Malformed(
                "connection closed in the middle of a line",
            ));
        }
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                // RFC 9112 s2.2: ignore empty lines received before the request line.
                head.clear();
                continue;
            }
            return Ok(head);
        }
    }
}

/// RFC 9112 s9.3: HTTP/1.1 persists unless "close" is sent; HTTP/1.0 only with "keep-alive".
fn keep_alive(minor_version: u8, headers: &[(String, Vec<u8>)]) -> bool {
    let has_option = |option: &str| {
        headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|token| trim_ows(token).eq_ignore_ascii_case(option.as_bytes()))
    };
    if minor_version == 0 {
        has_option("keep-alive")
    } else {
        !has_option("close")
    }
}

/// RFC 9112 s6.3: Transfer-Encoding wins, must end in chunked, and may not come with
/// Content-Length; several Content-Length values must all agree.
fn body_framing(request: &Request) -> Result<Body, ReadError> {
    let mut codings = request
        .header_values("transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|c| !c.is_empty())
        .peekable();
    if codings.peek().is_some() {
        if request.header_values("content-length").next().is_some() {
            return Err(ReadError::Malformed(
                "both Transfer-Encoding and Content-Length present",
            ));
        }
        // The body is dropped unread, so only the final coding (the framing) matters.
        return match codings.last() {
            Some(last) if last.eq_ignore_ascii_case(b"chunked") => Ok(Body::Chunked),
            _ => Err(ReadError::Malformed(
                "Transfer-Encoding does not end with chunked",
            )),
        };
    }
    let mut length = None;
    for value in request
        .header_values("content-length")
        .flat_map(|v| v.split(|&b| b == b','))
    {
        let value = trim_ows(value);
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(ReadError::Malformed("invalid Content-Length"));
        }
        let n: u64 = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ReadError::BodyTooLarge)?;
        if length.is_some_and(|l| l != n) {
            return Err(ReadError::Malformed("conflicting Content-Length values"));
        }
        length = Some(n);
    }
    match length {
        Some(n) if n > MAX_BODY_BYTES => Err(ReadError::BodyTooLarge),
        Some(0) | None => Ok(Body::None),
        Some(n) => Ok(Body::Length(n)),
    }
}

/// Reads and drops exactly `n` bytes.
fn skip_exact(reader: &mut impl BufRead, n: u64) -> Result<(), ReadError> {
    let copied = io::copy(&mut reader.by_ref().take(n), &mut io::sink())?;
    if copied < n {
        return Err(ReadError::Malformed(
            "connection closed in the middle of the body",
        ));
    }
    Ok(())
}

/// Reads and drops a chunked body with its trailer section (RFC 9112 s7.1).
fn skip_chunked(reader: &mut impl BufRead) -> Result<(), ReadError> {
    let mut total: u64 = 0;
    loop {
        let line = read_short_line(reader)?;
        // chunk-size [ chunk-ext ]: the extensions, after ';', carry nothing we need.
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = trim_ows(size_text);
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or(ReadError::Malformed("invalid chunk size"))?;
        if size == 0 {
            break;
        }
        total = total.saturating_add(size);
        if total > MAX_BODY_BYTES {
            return Err(ReadError::BodyTooLarge);
        }
        skip_exact(reader, size)?;
        if !read_short_line(reader)?.is_empty() {
            return Err(ReadError::Malformed("chunk data longer than its size"));
        }
    }
    // trailer-section: fields until an empty line.
    let mut trailer_lines = 0;
    while !read_short_line(reader)?.is_empty() {
        trailer_lines += 1;
        if trailer_lines > MAX_HEADERS {
            return Err(ReadError::HeadTooLarge);
        }
    }
    Ok(())
}

/// One line of a chunked body without its line ending, bounded in length.
fn read_short_line(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_CHUNK_LINE_BYTES)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(ReadError::Malformed(
            "chunked body truncated or line too long",
        ));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    Ok(line)
}

/// Strips optional whitespace (RFC 9110 s5.6.3: SP / HTAB) from both ends.
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A complete response: status, extra header fields, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no fields and no body.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with a plain-text body.
    pub fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".to_string())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Serialises the response. `keep_alive` false adds `Connection: close` (RFC 9112 s9.6).
    pub fn write_to(&self, out: &mut impl Write, keep_alive: bool) -> io::Result<()> {
        // RFC 9110 s6.4.1 / s8.6: 1xx, 204 and 304 have no content and 204 no Content-Length.
        let bodiless = self.status < 200 || self.status == 204 || self.status == 304;
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !bodiless {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        if !keep_alive {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !bodiless {
            bytes.extend_from_slice(&self.body);
        }
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// Reason phrases for the statuses this service is likely to send; the phrase is optional
/// (RFC 9112 s4), so any other status goes without one.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn read_all(input: &str) -> Vec<Result<Request, ReadError>> {
        let mut reader = io::BufReader::new(input.as_bytes());
        let mut out = Vec::new();
        loop {
            match read_request(&mut reader) {
                Err(ReadError::Closed) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
                Ok(r) => out.push(Ok(r)),
            }
        }
    }

    #[test]
    fn bodies_are_skipped_so_the_next_request_is_framed() {
        let input = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                     POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                     3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n\
                     GET /c HTTP/1.1\r\n\r\n";
        let targets: Vec<String> = read_all(input)
            .into_iter()
            .map(|r| r.unwrap().target)
            .collect();
        assert_eq!(targets, ["/a", "/b", "/c"]);
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        let got = read_all("\r\n\nGET /x HTTP/1.1\r\n\r\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().target, "/x");
    }

    #[test]
    fn persistence_follows_version_and_connection_options() {
        let cases = [
            ("GET / HTTP/1.1\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nConnection: te, close\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (input, expected) in cases {
            let got = read_all(input).remove(0).unwrap();
            assert_eq!(got.keep_alive, expected, "{input:?}");
        }
    }

    #[test]
    fn bad_framing_and_syntax_are_refused_with_the_right_status() {
        let big_body = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 2 << 20);
        let huge_length = "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        let long_head = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(40_000));
        let many_fields = format!("GET / HTTP/1.1\r\n{}\r\n", "x: y\r\n".repeat(100));
        let cases: Vec<(&str, u16)> = vec![
            (
                "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
            ("GET / HTTP/2.0\r\n\r\n", 400),
            ("\x00\x01\x02 garbage\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x", 400),
            (&big_body, 413),
            (huge_length, 413),
            (&long_head, 431),
            (&many_fields, 431),
        ];
        for (input, status) in cases {
            let got = read_all(input);
            let err = got.last().unwrap().as_ref().err().expect("an error");
            assert_eq!(err.response().map(|r| r.status), Some(status), "{input:?}");
        }
    }

    #[test]
    fn responses_carry_length_and_close_when_asked() {
        let mut out = Vec::new();
        Response::text(403, "no\n")
            .with_header("x-a", "b".into())
            .write_to(&mut out, false)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\nx-a: b\r\n\
             content-length: 3\r\nconnection: close\r\n\r\nno\n"
        );
        let mut out = Vec::new();
        Response::text(204, "dropped")
            .write_to(&mut out, true)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 204 No Content\r\ncontent-type: text/plain; charset=utf-8\r\n\r\n"
        );
    }
}
