//! `proxy-auth-service`: a small, real external auth service that proxy-auth's external mode
//! calls through an Envoy cluster, for the demo, docker-compose and the end-to-end tests.
//! Blocking sockets and one thread per connection keep it dependency-light and obvious; it
//! prints `listening on ADDR` once so a test can start it on port 0 and learn the port.

mod behaviour;
mod cli;
mod connection;
mod credentials;
mod directory;
mod http;
mod service;

use std::fmt;
use std::io::{self, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use cli::Command;
use service::Service;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Writes one line to stderr. Unlike `eprintln!`, a closed stderr is ignored rather than a
/// panic: losing log lines must never take the service down.
pub fn log(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "proxy-auth-service: {line}");
}

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            let _ = io::stdout().lock().write_all(cli::USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            log(format_args!("{e}"));
            log(format_args!("see --help"));
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&options.listen) {
        Ok(l) => l,
        Err(e) => {
            log(format_args!("cannot listen on {}: {e}", options.listen));
            return ExitCode::FAILURE;
        }
    };
    let address = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            log(format_args!("cannot learn the listening address: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // The one line on stdout, flushed at once: tests and scripts wait for it to learn the port.
    let mut stdout = io::stdout().lock();
    if writeln!(stdout, "listening on {address}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        log(format_args!("cannot write the listening address to stdout"));
        return ExitCode::FAILURE;
    }
    drop(stdout);
    log(format_args!(
        "version {}, {} users, realm {:?}",
        env!("CARGO_PKG_VERSION"),
        options.directory.user_count(),
        options.realm
    ));

    let service = Arc::new(Service::new(options.realm, options.directory));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                log(format_args!("accept failed: {e}"));
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let service = Arc::clone(&service);
        if let Err(e) = thread::Builder::new()
            .name("connection".to_string())
            .spawn(move || connection::serve(stream, &service))
        {
            // The stream was moved into the failed closure and is closed with it.
            log(format_args!("cannot start a connection thread: {e}"));
        }
    }
}
