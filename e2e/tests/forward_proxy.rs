//! The shipped `make run` config, envoy/forward-proxy.yaml, run for real: the same file with only
//! its fixed ports swapped for kernel-chosen ones, so the demo a user tries is the one tested.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proxy_auth_e2e::{basic, paths, Client, Envoy, RawRequest, Upstream};
use std::time::Duration;

/// envoy/forward-proxy.yaml with each `(from, to)` swapped, failing if a `from` is gone.
fn demo_yaml(swaps: &[(&str, String)]) -> String {
    let path = paths::repo_root().join("envoy/forward-proxy.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    swaps.iter().fold(yaml, |y, (from, to)| {
        assert!(y.contains(from), "{} no longer has {from}", path.display());
        y.replace(from, to)
    })
}

fn start_demo() -> (Upstream, Envoy) {
    let yaml = demo_yaml(&[
        ("port_value: 10000", "port_value: 0".to_string()),
        ("port_value: 9901", "port_value: 0".to_string()),
    ]);
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

/// The demo with its admin API on a free port of its own (the config's 9901, in the listener
/// and in the route that keeps proxied requests off it, swapped for that port).
fn start_demo_with_admin_port() -> (Upstream, Envoy, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = demo_yaml(&[
        ("port_value: 10000", "port_value: 0".to_string()),
        ("port_value: 9901", format!("port_value: {port}")),
        ("regex: \".*:0*9901\"", format!("regex: \".*:0*{port}\"")),
    ]);
    let upstream = Upstream::start();
    let envoy = Envoy::start(&yaml);
    assert_eq!(envoy.admin().port(), port);
    (upstream, envoy, port)
}

#[test]
fn admin_api_is_not_a_destination_even_for_an_authenticated_user() {
    let (_upstream, envoy, port) = start_demo_with_admin_port();
    let proxy = envoy.listener("forward_proxy");
    // Directly, the admin API answers: the proxy is what must not lead there.
    assert_eq!(envoy.admin_get("/ready").0, 200);
    for authority in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("127.0.0.1:0{port}"),
    ] {
        let target = format!("http://{authority}/config_dump");
        let req = RawRequest::new("GET", &target).header("Host", &authority);
        // Authentication still comes first.
        assert_eq!(proxy_auth_e2e::exchange(proxy, &req).status, 407);
        let r = proxy_auth_e2e::exchange(proxy, &req.clone().proxy_auth(basic("demo", "demo")));
        // The admin API's answer would be long: say only what it was.
        let body = r.body_str();
        assert_eq!(r.status, 403, "{authority}: {} bytes", body.len());
        assert!(
            !body.contains("demo:$2y$"),
            "{authority}: the users reached the client"
        );

        let mut c = Client::connect(proxy);
        c.send(
            &RawRequest::connect(&authority)
                .proxy_auth(basic("demo", "demo"))
                .to_bytes(),
        );
        assert_eq!(c.response_to("CONNECT").status, 403, "CONNECT {authority}");
    }
    let quit = RawRequest::new("POST", format!("http://127.0.0.1:{port}/quitquitquit"))
        .header("Host", format!("127.0.0.1:{port}"))
        .proxy_auth(basic("demo", "demo"));
    assert_eq!(proxy_auth_e2e::exchange(proxy, &quit).status, 403);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(envoy.admin_get("/ready").0, 200, "Envoy was stopped");
}
