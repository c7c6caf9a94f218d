//! One client connection, served on its own thread: requests are answered in order until the
//! client closes, asks to close, or a test behaviour ends the connection. Envoy keeps upstream
//! connections open between checks, so persistence here is the normal case, not an extra.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::behaviour::MAX_DELAY;
use crate::http::{self, ReadError};
use crate::log;
use crate::service::{Action, Service};

/// How long a connection may sit idle between requests (or stall inside one) before it is
/// closed. Longer than any test; Envoy reconnects if it finds the connection gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Bounds on draining a connection before closing it (see `lingering_close`).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

pub fn serve(stream: TcpStream, service: &Service) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
    // Failure to set these only loses a nicety (a bound, or lower latency), never correctness.
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            log(format_args!("{peer}: cannot use connection: {e}"));
            return;
        }
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match http::read_request(&mut reader) {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(e) => {
                log(format_args!("{peer}: {e}"));
                if let Some(response) = e.response() {
                    if response.write_to(&mut writer, false).is_ok() {
                        lingering_close(reader.get_mut());
                    }
                }
                return;
            }
        };
        match service.handle(&request) {
            Action::Respond { delay, response } => {
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                if response.write_to(&mut writer, request.keep_alive).is_err() {
                    return;
                }
                if !request.keep_alive {
                    lingering_close(reader.get_mut());
                    return;
                }
            }
            Action::WriteAndClose(bytes) => {
                if writer
                    .write_all(bytes)
                    .and_then(|()| writer.flush())
                    .is_ok()
                {
                    lingering_close(reader.get_mut());
                }
                return;
            }
            Action::Close => return,
            Action::Hang => {
                hang(reader.get_mut());
                return;
            }
        }
    }
}

/// RFC 9112 s9.6: closing a socket that still has unread input makes the kernel send a reset,
/// which can destroy the response before the client reads it. So stop writing, then read and
/// drop whatever the client still sends, for a bounded time and amount, before closing.
fn lingering_close(stream: &mut TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err()
        || stream.set_read_timeout(Some(LINGER_TIME)).is_err()
    {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0;
    let mut sink = [0u8; 8192];
    while drained < LINGER_BYTES && Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Holds the connection without answering until the client closes it, the socket fails, or
/// `MAX_DELAY` passes. Anything the client sends meanwhile is read and dropped, so its closing
/// is seen as end-of-stream.
fn hang(stream: &mut TcpStream) {
    let deadline = Instant::now() + MAX_DELAY;
    let mut sink = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
