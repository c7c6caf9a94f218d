//! Checks the harness itself with Envoy but without the module, so a failure in the filter tests
//! can be told apart from a broken upstream, client or config builder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proxy_auth_e2e::{exchange, test_config, Client, ConfigOptions, Envoy, RawRequest, Upstream};
use std::time::Duration;

fn plain_envoy(upstream: &Upstream) -> Envoy {
    let opts = ConfigOptions {
        without_filter: true,
        ..ConfigOptions::default()
    };
    Envoy::start(&test_config("{}", upstream.addr(), &opts))
}

#[test]
fn upstream_records_headers_and_bodies_exactly() {
    let upstream = Upstream::start();
    let envoy = plain_envoy(&upstream);
    let proxy = envoy.listener("proxy");

    let mut c = Client::connect(proxy);
    let req = RawRequest::new("POST", "/a?b=c")
        .header("Host", "upstream.test")
        .header("X-Bytes", b"caf\xe9 \xff")
        .body("hello");
    c.send(&req.to_bytes());
    let r = c.response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["target"], "/a?b=c");
    // The same connection again (keep-alive), this time with a chunked body.
    c.send(b"PUT /chunked HTTP/1.1\r\nHost: u\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    assert_eq!(c.response().status, 200);

    let got = upstream.wait_requests(2, Duration::from_secs(5));
    assert_eq!(got[0].method, b"POST");
    assert_eq!(got[0].header("x-bytes"), Some(&b"caf\xe9 \xff"[..]));
    assert_eq!(got[0].body, b"hello");
    assert!(got[0].head.starts_with(b"POST /a?b=c HTTP/1.1\r\n"));
    assert_eq!(got[1].body, b"abcde");
    assert_eq!(
        upstream.connections(),
        1,
        "Envoy reused one upstream connection"
    );
    assert!(envoy.counter("http.test.downstream_rq_2xx") >= 2);
    assert_eq!(envoy.counter("no.such.counter"), 0);
}

#[test]
fn connect_reaches_upstream_and_tunnel_echoes() {
    let upstream = Upstream::start();
    let envoy = plain_envoy(&upstream);
    let mut c = Client::connect(envoy.listener("proxy"));
    c.send(
        &RawRequest::connect("example.test:443")
            .header("X-Seen", "yes")
            .to_bytes(),
    );
    let r = c.response_to("CONNECT");
    assert_eq!(r.status, 200, "{r:?}");
    c.send(b"ping through the tunnel");
    assert_eq!(c.read_bytes(23), b"ping through the tunnel");
    let heads = upstream.wait_heads(1, Duration::from_secs(5));
    assert_eq!(heads[0].method, b"CONNECT");
    assert_eq!(heads[0].header("x-seen"), Some(&b"yes"[..]));
}

#[test]
fn head_reaches_upstream_before_body_is_sent() {
    let upstream = Upstream::start();
    let envoy = plain_envoy(&upstream);
    let mut c = Client::connect(envoy.listener("proxy"));
    let req = RawRequest::new("POST", "/slow")
        .header("Host", "u")
        .body("late body");
    c.send(&req.head_bytes());
    let heads = upstream.wait_heads(1, Duration::from_secs(5));
    assert!(!heads[0].complete);
    c.send(req.body_bytes());
    assert_eq!(c.response().status, 200);
    assert_eq!(
        upstream.wait_requests(1, Duration::from_secs(5))[0].body,
        b"late body"
    );
}

#[test]
fn absolute_form_is_routed() {
    let upstream = Upstream::start();
    let envoy = plain_envoy(&upstream);
    let r = exchange(
        envoy.listener("proxy"),
        &RawRequest::get("http://example.test:8080/x"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn envoy_that_cannot_start_reports_why_with_its_log() {
    let upstream = Upstream::start();
    let opts = ConfigOptions {
        wasm: Some("/nonexistent/proxy_auth.wasm".into()),
        ..ConfigOptions::default()
    };
    let yaml = test_config("{}", upstream.addr(), &opts);
    let err = match Envoy::try_start(&yaml, &proxy_auth_e2e::EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy started with a module that does not exist"),
        Err(e) => e,
    };
    assert!(err.contains("Envoy did not start"), "{err}");
    assert!(
        err.contains("/nonexistent/proxy_auth.wasm"),
        "log tail missing: {err}"
    );
    let (ok, log) = proxy_auth_e2e::validate_yaml(&yaml);
    assert!(!ok, "{log}");
}
