//! The filter formats its decision lines only at a level Envoy prints, and
//! follows a change of Envoy's wasm log level made at run time through the
//! admin interface, as an operator debugging a live proxy would: the module
//! takes its level from Envoy at configuration, and would miss the change were
//! it not asking again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ALICE;
use proxy_auth_e2e::{
    exchange, test_config, Client, ConfigOptions, Envoy, EnvoyOptions, RawRequest, Upstream,
    LISTENER,
};
use serde_json::json;
use std::time::Duration;

const DECISION: &str = "proxy-auth: allowed, user \"alice\"";

fn admin_post(envoy: &Envoy, path: &str) -> u16 {
    let mut c = Client::connect(envoy.admin());
    c.send(format!("POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n").as_bytes());
    c.response_to("POST").status
}

#[test]
fn decision_lines_follow_the_wasm_log_level_set_at_run_time() {
    let upstream = Upstream::start();
    let plugin = json!({ "users": format!("{}\n", ALICE.line) }).to_string();
    let yaml = test_config(&plugin, upstream.addr(), &ConfigOptions::default());
    let opts = EnvoyOptions {
        component_log_level: "wasm:info".into(),
        ..EnvoyOptions::default()
    };
    let envoy = Envoy::start_with(&yaml, &opts);
    let proxy = envoy.listener(LISTENER);
    let request = || {
        RawRequest::get("/")
            .header("Host", "up")
            .proxy_auth(ALICE.auth())
    };

    assert_eq!(exchange(proxy, &request()).status, 200);
    // The host gave the module randomness, so the fast keyed cache is in use.
    assert!(
        !envoy.log().contains("no randomness"),
        "{}",
        envoy.log_tail(30)
    );
    assert!(
        !envoy.log().contains(DECISION),
        "a debug line was logged at info level"
    );

    assert_eq!(admin_post(&envoy, "/logging?wasm=debug"), 200);
    // The module asks Envoy its level every 5 s; a request after that is logged.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(exchange(proxy, &request()).status, 200);
        if envoy.log().contains(DECISION) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no decision line 15 s after /logging?wasm=debug\n{}",
            envoy.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
