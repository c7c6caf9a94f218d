//! The explicit forward proxy, envoy/forward-proxy.yaml as shipped, driven by the clients people
//! point at it: curl with `-x` and `--proxy-user`, curl `--proxy-anyauth` (which waits for the
//! 407 challenge), curl reading the proxy environment variables, and Python's `requests` and
//! `urllib` with credentials inside the proxy URL. HTTPS goes through CONNECT to a TLS upstream
//! whose certificate the client verifies, so a pass means a real TLS exchange crossed the tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "real_clients/support.rs"]
mod support;

use proxy_auth_e2e::Upstream;
use std::time::Duration;
use support::{
    curl, curl_env, curl_sent_heads, denials, header_names, percent_encode, sends_proxy_auth,
    DemoProxy, Pki, PythonRun, TlsUpstream, DEMO_PASSWORD, DEMO_REALM, DEMO_USER, SPECIAL_PASSWORD,
    SPECIAL_USER,
};

const WAIT: Duration = Duration::from_secs(10);

fn demo_credentials() -> String {
    format!("{DEMO_USER}:{DEMO_PASSWORD}")
}

/// The challenge line as curl -v prints the 407's header (compared lower-cased).
fn challenge_line() -> String {
    format!("< proxy-authenticate: basic realm=\"{DEMO_REALM}\", charset=\"utf-8\"")
}

/// Why a Python HTTPS case can fail with 426 rather than for a reason of its own.
const HTTP_10_HINT: &str = "a 426 means Envoy refused the HTTP/1.0 CONNECT that Python 3.11's \
    http.client sends: the listener needs http_protocol_options.accept_http_10: true";

#[test]
fn curl_plain_http_with_proxy_user_reaches_upstream_as_that_user_without_credentials() {
    let proxy = DemoProxy::start();
    let upstream = Upstream::start();
    let before = proxy.counters();

    let target = format!("http://{}/plain?q=1", upstream.addr());
    let r = curl(&[
        "-x",
        &proxy.url(),
        "--proxy-user",
        &demo_credentials(),
        &target,
    ]);

    assert!(r.succeeded(), "{r:?}");
    let got = upstream.wait_requests(1, WAIT);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].target, b"/plain?q=1");
    assert_eq!(got[0].headers_named("x-proxy-user"), [DEMO_USER.as_bytes()]);
    assert!(got[0].header("proxy-authorization").is_none(), "{got:#?}");
    let moved = proxy.counters().since(&before);
    assert_eq!(moved.get("allowed"), Some(&1), "{moved:?}");
    assert_eq!(denials(&moved), 0, "{moved:?}");
}

#[test]
fn curl_https_through_connect_verifies_the_upstream_which_never_sees_the_credentials() {
    let proxy = DemoProxy::start();
    let pki = Pki::new();
    let tls = TlsUpstream::start(&pki);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    let before = proxy.counters();

    let r = curl(&[
        "-x",
        &proxy.url(),
        "--proxy-user",
        &demo_credentials(),
        "--cacert",
        ca,
        &tls.url("/secure"),
    ]);

    assert!(r.succeeded(), "{r:?}");
    // The body is the TLS upstream's own record of the request: it came back through the tunnel.
    let body: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(body["target"], "/secure", "{r:?}");
    let requests = tls.wait_events("request", 1);
    assert_eq!(requests.len(), 1, "{:#?}", tls.events());
    let names = header_names(&requests[0]);
    // Through a tunnel the upstream gets the client's inner request only: no credentials, and no
    // user header either, since the proxy cannot add headers inside TLS.
    assert!(!names.contains(&"proxy-authorization".into()), "{names:?}");
    assert!(!names.contains(&"x-proxy-user".into()), "{names:?}");
    let moved = proxy.counters().since(&before);
    assert_eq!(moved.get("allowed"), Some(&1), "{moved:?}");
    assert_eq!(denials(&moved), 0, "{moved:?}");

    // The verification is real: without the test CA the same request fails on the certificate.
    let r = curl(&[
        "-x",
        &proxy.url(),
        "--proxy-user",
        &demo_credentials(),
        &tls.url("/untrusted"),
    ]);
    assert_eq!(r.code, Some(60), "curl should refuse the unknown CA: {r:?}");
    tls.wait_events("handshake_failed", 1);
    assert_eq!(tls.events_of("request").len(), 1, "{:#?}", tls.events());
}

#[test]
fn curl_proxy_anyauth_sends_credentials_only_after_the_407_challenge() {
    let proxy = DemoProxy::start();
    let upstream = Upstream::start();
    let pki = Pki::new();
    let tls = TlsUpstream::start(&pki);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    let cases = [
        (
            "plain HTTP",
            format!("http://{}/any", upstream.addr()),
            "GET ",
        ),
        ("HTTPS through CONNECT", tls.url("/any"), "CONNECT "),
    ];

    for (what, target, method) in cases {
        let before = proxy.counters();
        let r = curl(&[
            "--verbose",
            "--proxy-anyauth",
            "-x",
            &proxy.url(),
            "--proxy-user",
            &demo_credentials(),
            "--cacert",
            ca,
            &target,
        ]);

        assert!(r.succeeded(), "{what}: {r:?}");
        // Only the heads sent to the proxy: over HTTPS, curl -v also shows the inner GET.
        let to_proxy: Vec<Vec<String>> = curl_sent_heads(&r.stderr)
            .into_iter()
            .filter(|h| h[0].starts_with(method))
            .collect();
        assert_eq!(
            to_proxy.len(),
            2,
            "{what}: one try without, one with: {to_proxy:#?}"
        );
        assert!(
            !sends_proxy_auth(&to_proxy[0]),
            "{what}: --proxy-anyauth must not send credentials before the challenge: {to_proxy:#?}"
        );
        assert!(sends_proxy_auth(&to_proxy[1]), "{what}: {to_proxy:#?}");
        let verbose = r.stderr.to_ascii_lowercase();
        assert!(verbose.contains("< http/1.1 407"), "{what}: {}", r.stderr);
        assert!(verbose.contains(&challenge_line()), "{what}: {}", r.stderr);
        let moved = proxy.counters().since(&before);
        assert_eq!(moved.get("denied.missing"), Some(&1), "{what}: {moved:?}");
        assert_eq!(moved.get("allowed"), Some(&1), "{what}: {moved:?}");
        assert_eq!(denials(&moved), 1, "{what}: {moved:?}");
    }
    assert_eq!(upstream.requests().len(), 1);
    assert_eq!(tls.events_of("request").len(), 1, "{:#?}", tls.events());
}

#[test]
fn connect_without_or_with_wrong_credentials_gets_407_and_opens_no_tunnel() {
    let proxy = DemoProxy::start();
    let pki = Pki::new();
    let tls = TlsUpstream::start(&pki);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    let proxy_url = proxy.url();
    let target = tls.url("/tunnel");
    let cases = [
        ("no credentials", None, "denied.missing"),
        (
            "wrong password",
            Some("demo:wrong"),
            "denied.wrong_password",
        ),
        ("unknown user", Some("nobody:demo"), "denied.unknown_user"),
    ];

    for (what, credentials, counter) in cases {
        let before = proxy.counters();
        let mut args = vec!["--verbose", "-x", proxy_url.as_str(), "--cacert", ca];
        if let Some(c) = credentials {
            args.extend(["--proxy-user", c]);
        }
        args.push(target.as_str());
        let r = curl(&args);

        // curl's code for "the proxy refused the CONNECT" (CURLE_RECV_ERROR).
        assert_eq!(r.code, Some(56), "{what}: {r:?}");
        assert!(
            r.stderr.contains("CONNECT tunnel failed, response 407"),
            "{what}: {}",
            r.stderr
        );
        assert!(
            r.stderr.to_ascii_lowercase().contains(&challenge_line()),
            "{what}: {}",
            r.stderr
        );
        let moved = proxy.counters().since(&before);
        assert_eq!(moved.get(counter), Some(&1), "{what}: {moved:?}");
        assert_eq!(moved.get("allowed"), None, "{what}: {moved:?}");
        // Not even a TCP connection: the decision came before the tunnel was dialled.
        assert!(tls.events().is_empty(), "{what}: {:#?}", tls.events());
    }

    // The same request with the right credentials does open a tunnel, so the silence above was
    // the filter's doing and not a broken upstream.
    let r = curl(&[
        "-x",
        &proxy_url,
        "--proxy-user",
        &demo_credentials(),
        "--cacert",
        ca,
        &target,
    ]);
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(tls.events_of("connection").len(), 1, "{:#?}", tls.events());
    assert_eq!(tls.events_of("handshake").len(), 1, "{:#?}", tls.events());
    let requests = tls.wait_events("request", 1);
    let names = header_names(&requests[0]);
    assert!(!names.contains(&"proxy-authorization".into()), "{names:?}");
}

#[test]
fn python_clients_authenticate_with_a_percent_encoded_password_in_the_proxy_url() {
    let proxy = DemoProxy::start();
    let upstream = Upstream::start();
    let pki = Pki::new();
    let tls = TlsUpstream::start(&pki);
    let ca = pki.ca();

    for client in ["requests", "urllib"] {
        let py = PythonRun {
            client,
            proxy: proxy.addr,
            user: SPECIAL_USER,
            password: SPECIAL_PASSWORD,
            unencoded: false,
            ca: Some(&ca),
        };

        // Plain HTTP: an absolute-form request, forwarded with the user named in x-proxy-user.
        let seen = upstream.requests().len();
        let out = py.get(&format!("http://{}/{client}", upstream.addr()));
        assert_eq!(out["status"], 200, "{client} over HTTP: {out}");
        let got = upstream.wait_requests(seen + 1, WAIT);
        let got = &got[seen];
        assert_eq!(got.target, format!("/{client}").as_bytes());
        assert_eq!(got.headers_named("x-proxy-user"), [SPECIAL_USER.as_bytes()]);
        assert!(got.header("proxy-authorization").is_none(), "{got:#?}");

        // HTTPS: CONNECT with the credentials, then TLS verified against the test CA.
        let seen = tls.events_of("request").len();
        let out = py.get(&tls.url(&format!("/{client}")));
        assert_eq!(
            out["status"], 200,
            "{client} over HTTPS: {out}\n({HTTP_10_HINT})"
        );
        let requests = tls.wait_events("request", seen + 1);
        assert_eq!(requests[seen]["target"], format!("/{client}"));
        let names = header_names(&requests[seen]);
        assert!(!names.contains(&"proxy-authorization".into()), "{names:?}");
    }
}

#[test]
fn python_requests_cannot_use_a_password_left_unencoded_in_the_proxy_url() {
    let proxy = DemoProxy::start();
    let upstream = Upstream::start();
    let before = proxy.counters();

    let out = PythonRun {
        client: "requests",
        proxy: proxy.addr,
        user: SPECIAL_USER,
        password: SPECIAL_PASSWORD,
        unencoded: true,
        ca: None,
    }
    .get(&format!("http://{}/raw", upstream.addr()));

    // `@`, `/` and `#` end the userinfo early, so the URL does not even parse as a proxy.
    assert!(
        out.get("status").is_none(),
        "the unencoded URL worked: {out}"
    );
    assert_eq!(out["error"], "InvalidURL", "{out}");
    assert!(
        !out.to_string().contains(SPECIAL_PASSWORD),
        "the client output leaked the password: {out}"
    );
    assert!(proxy.counters().since(&before).is_empty());
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn python_requests_reports_the_407_for_a_wrong_password() {
    let proxy = DemoProxy::start();
    let upstream = Upstream::start();
    let pki = Pki::new();
    let tls = TlsUpstream::start(&pki);
    let ca = pki.ca();
    let py = PythonRun {
        client: "requests",
        proxy: proxy.addr,
        user: DEMO_USER,
        password: "wrong",
        unencoded: false,
        ca: Some(&ca),
    };
    let before = proxy.counters();

    // Plain HTTP: the 407 is an ordinary response the program sees.
    let out = py.get(&format!("http://{}/denied", upstream.addr()));
    assert_eq!(out["status"], 407, "{out}");
    assert_eq!(out["body"], "Proxy Authentication Required\n", "{out}");

    // HTTPS: the 407 ends the CONNECT, and requests raises ProxyError naming it.
    let out = py.get(&tls.url("/denied"));
    assert_eq!(out["error"], "ProxyError", "{out}\n({HTTP_10_HINT})");
    let message = out["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("407 Proxy Authentication Required"),
        "{out}\n({HTTP_10_HINT})"
    );

    let moved = proxy.counters().since(&before);
    assert_eq!(moved.get("denied.wrong_password"), Some(&2), "{moved:?}");
    assert_eq!(moved.get("allowed"), None, "{moved:?}");
    assert_eq!(upstream.connections(), 0);
    assert!(tls.events().is_empty(), "{:#?}", tls.events());
}

/// One environment for curl and what it should make curl do.
struct EnvCase<'a> {
    what: &'a str,
    env: Vec<(&'a str, &'a str)>,
    target: &'a str,
    /// The request goes through the proxy (and is allowed there).
    via_proxy: bool,
    /// curl gets its answer.
    ok: bool,
}

#[test]
fn curl_reads_the_proxy_environment_variables_as_documented() {
    let proxy = DemoProxy::start();
    let upstream = Upstream::start();
    let pki = Pki::new();
    let tls = TlsUpstream::start(&pki);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    let demo = proxy.url_with(DEMO_USER, DEMO_PASSWORD);
    let special = proxy.url_with(
        &percent_encode(SPECIAL_USER),
        &percent_encode(SPECIAL_PASSWORD),
    );
    let https_scheme = demo.replacen("http://", "https://", 1);
    let http_target = format!("http://{}/env", upstream.addr());
    let https_target = tls.url("/env");

    let cases = [
        EnvCase {
            what: "lowercase http_proxy is used for http:// URLs",
            env: vec![("http_proxy", &demo)],
            target: &http_target,
            via_proxy: true,
            ok: true,
        },
        EnvCase {
            what: "uppercase HTTP_PROXY is ignored by curl",
            env: vec![("HTTP_PROXY", &demo)],
            target: &http_target,
            via_proxy: false,
            ok: true,
        },
        EnvCase {
            what: "HTTPS_PROXY is used for https:// URLs",
            env: vec![("HTTPS_PROXY", &demo)],
            target: &https_target,
            via_proxy: true,
            ok: true,
        },
        EnvCase {
            what: "percent-encoded user and password in the proxy URL are decoded",
            env: vec![("https_proxy", &special)],
            target: &https_target,
            via_proxy: true,
            ok: true,
        },
        EnvCase {
            what: "NO_PROXY sends matching hosts direct",
            env: vec![("https_proxy", &demo), ("NO_PROXY", "127.0.0.1")],
            target: &https_target,
            via_proxy: false,
            ok: true,
        },
        EnvCase {
            what: "an https:// proxy URL fails: the proxy speaks plain HTTP",
            env: vec![("HTTPS_PROXY", &https_scheme)],
            target: &https_target,
            via_proxy: false,
            ok: false,
        },
    ];

    for case in cases {
        let what = case.what;
        let before = proxy.counters();
        let plain_seen = upstream.requests().len();
        let tls_seen = tls.events_of("request").len();

        let r = curl_env(&["--cacert", ca, case.target], &case.env);

        let moved = proxy.counters().since(&before);
        assert_eq!(r.succeeded(), case.ok, "{what}: {r:?}");
        assert_eq!(denials(&moved), 0, "{what}: {moved:?}");
        let allowed = moved.get("allowed").copied().unwrap_or(0);
        assert_eq!(allowed, u64::from(case.via_proxy), "{what}: {moved:?}");
        if !case.ok {
            assert_eq!(tls.events_of("request").len(), tls_seen, "{what}");
            continue;
        }
        if case.target.starts_with("http://") {
            let got = upstream.wait_requests(plain_seen + 1, WAIT);
            let user = got[plain_seen].header_str("x-proxy-user");
            let expect = case.via_proxy.then(|| DEMO_USER.to_string());
            assert_eq!(user, expect, "{what}: {:#?}", got[plain_seen]);
        } else {
            tls.wait_events("request", tls_seen + 1);
        }
    }
}
