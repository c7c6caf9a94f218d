//! The shipped `make run` config, envoy/forward-proxy.yaml, run for real: the same file with only
//! its fixed ports swapped for kernel-chosen ones, so the demo a user tries is the one tested.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proxy_auth_e2e::{basic, paths, Client, Envoy, RawRequest, Upstream};
use std::time::Duration;

fn start_demo() -> (Upstream, Envoy) {
    let path = paths::repo_root().join("envoy/forward-proxy.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let fixed = ["port_value: 10000", "port_value: 9901"];
    for port in fixed {
        assert!(
            yaml.contains(port),
            "{} no longer has {port}",
            path.display()
        );
    }
    let yaml = fixed
        .iter()
        .fold(yaml, |y, port| y.replace(port, "port_value: 0"));
    let upstream = Upstream::start();
    (upstream, Envoy::start(&yaml))
}

#[test]
fn demo_proxy_challenges_without_credentials() {
    let (upstream, envoy) = start_demo();
    let target = format!("http://{}/", upstream.addr());
    let req = RawRequest::new("GET", &target).header("Host", upstream.addr().to_string());
    let r = proxy_auth_e2e::exchange(envoy.listener("forward_proxy"), &req);
    assert_eq!(r.status, 407, "{r:?}");
    assert_eq!(
        r.header_str("proxy-authenticate").as_deref(),
        Some("Basic realm=\"proxy-auth demo\", charset=\"UTF-8\"")
    );
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn demo_proxy_forwards_absolute_form_for_demo_user() {
    let (upstream, envoy) = start_demo();
    let target = format!("http://{}/hello", upstream.addr());
    let req = RawRequest::new("GET", &target)
        .header("Host", upstream.addr().to_string())
        .proxy_auth(basic("demo", "demo"));
    let r = proxy_auth_e2e::exchange(envoy.listener("forward_proxy"), &req);
    assert_eq!(r.status, 200, "{r:?}");
    let got = upstream.wait_requests(1, Duration::from_secs(5));
    assert_eq!(got[0].target, b"/hello");
    assert_eq!(got[0].headers_named("x-proxy-user"), [b"demo"]);
    assert!(got[0].header("proxy-authorization").is_none());
}

#[test]
fn demo_proxy_tunnels_connect_for_demo_user() {
    let (upstream, envoy) = start_demo();
    let authority = upstream.addr().to_string();
    let mut c = Client::connect(envoy.listener("forward_proxy"));
    c.send(
        &RawRequest::connect(&authority)
            .proxy_auth(basic("demo", "demo"))
            .to_bytes(),
    );
    assert_eq!(c.response_to("CONNECT").status, 200);
    // Envoy terminates the CONNECT: what follows reaches the upstream as plain bytes.
    c.send(
        &RawRequest::get("/inside")
            .header("Host", &authority)
            .to_bytes(),
    );
    let r = c.response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["target"], "/inside");
}
