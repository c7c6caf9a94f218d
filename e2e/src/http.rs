//! Minimal HTTP/1.1 message framing (RFC 9112) shared by the test upstream and the raw client.
//! Hand-written rather than a parser crate on purpose: the tests must see exactly the bytes on the
//! wire, including ones a strict parser would refuse or normalise (non-UTF-8 values, odd case).

use std::io::{self, BufRead, Read};

/// One header field as it was on the wire: name and value bytes, value without surrounding OWS.
pub type Header = (Vec<u8>, Vec<u8>);

/// A head larger than this is treated as an error rather than read forever.
const MAX_HEAD: usize = 1 << 20;

/// The start line and header section of a request or response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Every byte of the head, start line to the empty line, as received.
    pub raw: Vec<u8>,
    /// The start line without its line ending.
    pub start_line: Vec<u8>,
    pub headers: Vec<Header>,
}

/// How the body after a head is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one head. `Ok(None)` means the peer closed the connection before sending a byte.
pub fn read_head<R: BufRead>(reader: &mut R) -> io::Result<Option<Head>> {
    let mut head = Head::default();
    loop {
        let line = read_line(reader, &mut head.raw)?;
        match line {
            None if head.raw.is_empty() => return Ok(None),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
            // RFC 9112 section 2.2: a server SHOULD ignore empty lines before the request line.
            Some(line) if line.is_empty() && head.start_line.is_empty() => head.raw.clear(),
            Some(line) if line.is_empty() => return Ok(Some(head)),
            Some(line) if head.start_line.is_empty() => head.start_line = line,
            Some(line) => head.headers.push(split_field(&line)),
        }
        if head.raw.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
    }
}

/// Reads a line into `raw` and returns it without CRLF/LF; `None` at end of stream.
fn read_line<R: BufRead>(reader: &mut R, raw: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_HEAD as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Ok(None);
    }
    raw.extend_from_slice(&line);
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Splits `name: value` at the first colon, trimming optional whitespace (RFC 9110 section 5.6.3).
fn split_field(line: &[u8]) -> Header {
    let (name, value) = match line.iter().position(|&b| b == b':') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    (name.to_vec(), trim_ows(value).to_vec())
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The first value of the header `name` (case-insensitive), if any.
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers_named(headers, name).into_iter().next()
}

/// Every value of the header `name` (case-insensitive), in order.
pub fn headers_named<'a>(headers: &'a [Header], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// Whether a comma-separated header contains `token` (case-insensitive), e.g. `chunked`.
pub fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    headers_named(headers, name).iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The framing of a message with these headers when it may carry a body, or `default` when
/// neither Transfer-Encoding nor Content-Length says (requests: no body; responses: until close).
pub fn body_kind(headers: &[Header], default: BodyKind) -> io::Result<BodyKind> {
    if has_token(headers, "transfer-encoding", "chunked") {
        return Ok(BodyKind::Chunked);
    }
    match header(headers, "content-length") {
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(BodyKind::Length)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad content-length")),
        None => Ok(default),
    }
}

/// Reads a body framed as `kind`; chunked bodies are returned decoded, trailers dropped.
pub fn read_body<R: BufRead>(reader: &mut R, kind: BodyKind) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match kind {
        BodyKind::None => {}
        BodyKind::Length(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        BodyKind::UntilClose => {
            reader.read_to_end(&mut body)?;
        }
        BodyKind::Chunked => read_chunked(reader, &mut body)?,
    }
    Ok(body)
}

/// RFC 9112 section 7.1: chunk-size [; ext] CRLF data CRLF ... 0 CRLF trailers CRLF.
fn read_chunked<R: BufRead>(reader: &mut R, body: &mut Vec<u8>) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut scratch = Vec::new();
    loop {
        let line = read_line(reader, &mut scratch)?.ok_or_else(|| bad("eof in chunk size"))?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(trim_ows(size))
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            while !read_line(reader, &mut scratch)?
                .ok_or_else(|| bad("eof in trailers"))?
                .is_empty()
            {}
            return Ok(());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let crlf = read_line(reader, &mut scratch)?.ok_or_else(|| bad("eof after chunk"))?;
        if !crlf.is_empty() {
            return Err(bad("chunk data longer than its size"));
        }
    }
}

/// Splits a start line at single spaces into at most three parts.
pub fn start_line_parts(line: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut parts = line.splitn(3, |&b| b == b' ').map(<[u8]>::to_vec);
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn head_keeps_raw_bytes_and_trims_value_whitespace() {
        let wire = b"GET / HTTP/1.1\r\nX-A:  v\xff \r\nx-a: second\r\n\r\nrest";
        let mut r = &wire[..];
        let head = read_head(&mut r).unwrap().unwrap();
        assert_eq!(head.start_line, b"GET / HTTP/1.1");
        assert_eq!(head.raw, &wire[..wire.len() - 4]);
        assert_eq!(head.headers[0], (b"X-A".to_vec(), b"v\xff".to_vec()));
        assert_eq!(
            headers_named(&head.headers, "x-a"),
            [&b"v\xff"[..], b"second"]
        );
        assert_eq!(r, b"rest");
    }

    #[test]
    fn chunked_body_is_decoded_and_trailers_skipped() {
        let mut r = &b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nT: x\r\n\r\nnext"[..];
        assert_eq!(read_body(&mut r, BodyKind::Chunked).unwrap(), b"Wikipedia");
        assert_eq!(r, b"next");
    }

    #[test]
    fn clean_eof_before_head_is_none() {
        let mut r = &b""[..];
        assert!(read_head(&mut r).unwrap().is_none());
    }
}
