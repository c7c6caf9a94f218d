//! The test upstream as a process, for `make run`: answers every request with a JSON summary of
//! what it received (so a demo user sees the headers proxy-auth added and removed) and echoes
//! CONNECT tunnels. Usage: demo-upstream [--listen ADDR], default 127.0.0.1:8080.

use proxy_auth_e2e::Upstream;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut listen = String::from("127.0.0.1:8080");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("usage: demo-upstream [--listen ADDR]");
                return ExitCode::from(2);
            }
        }
    }
    // The demo runs until stopped: keeping every request would grow without bound.
    let upstream = match Upstream::bind(listen.as_str(), false, true) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("demo-upstream: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("demo-upstream: listening on http://{}", upstream.addr());
    loop {
        std::thread::park();
    }
}
