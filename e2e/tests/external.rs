//! End-to-end rules for the external auth service mode (issue 3): the built module in a real
//! Envoy, the real `proxy-auth-service` process on loopback as the service (its test users
//! make it answer badly on purpose), and a recording upstream. The service counts the checks it
//! is asked for, so caching is asserted on call counts, never on timings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod external_common;

use common::{assert_challenge, ALICE, REALM, USER_HEADER};
use external_common::AuthService;
use proxy_auth_e2e::{
    b64, basic, test_config, Client, ConfigOptions, Envoy, EnvoyOptions, RawRequest, Received,
    Response, Upstream, LISTENER,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

/// The cluster the tests' Envoy defines for the service.
const CLUSTER: &str = "auth";
const SERVICE_REALM: &str = "directory-test";
/// Users the service knows; dave may only reach `allowed.test` (any port).
const CAROL: (&str, &str) = ("carol", "c4r0l-pass");
const DAVE: (&str, &str) = ("dave", "pw");
/// Headers the service sends with an allowing answer.
const COPY: [&str; 2] = ["x-auth-user", "x-auth-groups"];
const FAIL_OPEN_HEADER: &str = "x-proxy-auth-fail-open";
const UNAVAILABLE_BODY: &[u8] = b"Proxy authentication unavailable\n";
const WAIT: Duration = Duration::from_secs(10);

/// Our realm as `common::assert_challenge` takes it, and our whole challenge.
fn quoted_realm() -> String {
    format!("\"{REALM}\"")
}

fn our_challenge() -> String {
    format!("Basic realm={}, charset=\"UTF-8\"", quoted_realm())
}

fn service_challenge() -> String {
    format!("Basic realm=\"{SERVICE_REALM}\", charset=\"UTF-8\"")
}

fn start_service() -> AuthService {
    AuthService::start(&[
        "--user",
        &format!("{}:{}", CAROL.0, CAROL.1),
        "--user",
        &format!("{}:{}", DAVE.0, DAVE.1),
        "--allow-host",
        "dave:allowed.test",
        "--realm",
        SERVICE_REALM,
    ])
}

/// `{"cluster": "auth"}` with `fields` added or overriding.
fn external(fields: Value) -> Value {
    let mut v = json!({ "cluster": CLUSTER });
    merge(&mut v, fields);
    v
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

/// Plugin JSON: the test realm and user header, this `external` block, plus `extra` fields.
fn plugin(external: Value, extra: Value) -> String {
    let mut v = json!({ "realm": REALM, "user_header": USER_HEADER, "external": external });
    merge(&mut v, extra);
    v.to_string()
}

/// The service, an upstream and an Envoy whose cluster `auth` points at the service.
struct Ext {
    service: AuthService,
    upstream: Upstream,
    envoy: Envoy,
    proxy: SocketAddr,
}

impl Ext {
    /// External mode only, with these `external` fields.
    fn new(fields: Value) -> Ext {
        Ext::with(
            &plugin(external(fields), json!({})),
            &EnvoyOptions::default(),
        )
    }

    fn with(plugin_json: &str, opts: &EnvoyOptions) -> Ext {
        let service = start_service();
        let upstream = Upstream::start();
        let config = ConfigOptions::default().cluster(CLUSTER, service.addr());
        let envoy = Envoy::start_with(&test_config(plugin_json, upstream.addr(), &config), opts);
        let proxy = envoy.listener(LISTENER);
        Ext {
            service,
            upstream,
            envoy,
            proxy,
        }
    }

    fn send(&self, req: &RawRequest) -> Response {
        proxy_auth_e2e::exchange(self.proxy, req)
    }

    fn counter(&self, short: &str) -> u64 {
        self.envoy
            .counter(&format!("wasmcustom.proxy_auth.{short}"))
    }

    /// Sends `req`, expects the upstream's 200, and returns what the upstream received.
    fn expect_allowed(&self, req: &RawRequest) -> Received {
        let before = self.upstream.requests().len();
        let r = self.send(req);
        assert_eq!(r.status, 200, "request {req:?} got {r:?}");
        self.upstream.wait_requests(before + 1, WAIT)[before].clone()
    }

    /// Sends `req`, expects a 407 with exactly `challenge`, and checks nothing reached upstream.
    fn expect_denied(&self, req: &RawRequest, challenge: &str) -> Response {
        let before = self.upstream.heads().len();
        let r = self.send(req);
        assert_eq!(r.status, 407, "request {req:?} got {r:?}");
        assert_eq!(
            r.headers_named("proxy-authenticate"),
            [challenge.as_bytes()],
            "challenge of {r:?}"
        );
        assert_eq!(r.body, b"Proxy Authentication Required\n");
        assert_eq!(
            self.upstream.heads().len(),
            before,
            "{req:?} reached upstream"
        );
        r
    }

    /// Sends `req`, expects the failure answer `status`, and checks nothing reached upstream.
    fn expect_failure(&self, req: &RawRequest, status: u16) -> Response {
        let before = self.upstream.heads().len();
        let r = self.send(req);
        assert_eq!(r.status, status, "request {req:?} got {r:?}");
        assert_eq!(r.body, UNAVAILABLE_BODY, "{r:?}");
        assert_eq!(
            self.upstream.heads().len(),
            before,
            "{req:?} reached upstream"
        );
        r
    }
}

/// `GET http://<host>/` with this Proxy-Authorization value.
fn get(host: &str, auth: &str) -> RawRequest {
    RawRequest::new("GET", format!("http://{host}/"))
        .header("Host", host)
        .proxy_auth(auth)
}

fn carol() -> String {
    basic(CAROL.0, CAROL.1)
}

/// The base64 token of carol's right credential.
fn carol_token() -> String {
    b64(format!("{}:{}", CAROL.0, CAROL.1).as_bytes())
}

/// A service test user: the name picks the behaviour, any password.
fn misbehaving(user: &str) -> String {
    basic(user, "any")
}

/// Fails if Envoy's log shows the module panicking, a trapped VM call or a crashed process.
fn assert_no_vm_fault(log: &str) {
    for needle in ["panicked", "RuntimeError", "Function: proxy_on", "Caught "] {
        assert!(
            !log.contains(needle),
            "Envoy log shows a fault ({needle:?}):\n{log}"
        );
    }
}

// ---- Allow: what the upstream receives -------------------------------------------------------

#[test]
fn allowed_request_reaches_upstream_with_copied_headers_and_without_proxy_authorization() {
    let s = Ext::new(json!({ "copy_headers": COPY }));
    let got = s.expect_allowed(&get("upstream.test", &carol()));
    assert!(got.header("proxy-authorization").is_none(), "{got:?}");
    assert_eq!(got.headers_named("x-auth-user"), [b"carol"]);
    assert_eq!(got.headers_named("x-auth-groups"), [b"users"]);
    assert_eq!(got.headers_named(USER_HEADER), [b"carol"]);
    assert!(got.header(FAIL_OPEN_HEADER).is_none(), "{got:?}");
    assert_eq!(s.service.calls_for("carol"), 1);
    assert_eq!(s.counter("external.calls"), 1);
    assert_eq!(s.counter("external.allow"), 1);
    assert_eq!(s.counter("allowed"), 1);
    assert_eq!(s.counter("external.deny"), 0);
    assert_eq!(s.counter("external.failure"), 0);
    // The password never shows in either log, in clear or as the token.
    for log in [s.envoy.log(), s.service.log()] {
        assert!(!log.contains(CAROL.1), "password logged:\n{log}");
        assert!(!log.contains(&carol_token()), "token logged:\n{log}");
    }
}

#[test]
fn client_cannot_smuggle_a_copied_header_or_the_fail_open_marker() {
    let s = Ext::new(json!({ "copy_headers": COPY }));
    let forged = |auth: &str| {
        get("upstream.test", auth)
            .header("X-Auth-User", "admin")
            .header("x-auth-user", "root")
            .header("X-Auth-Groups", "admins")
            .header("X-Proxy-Auth-Fail-Open", "1")
            .header("X_Auth_User", "admin")
    };
    // The service's own values replace the client's.
    let got = s.expect_allowed(&forged(&carol()));
    assert_eq!(got.headers_named("x-auth-user"), [b"carol"]);
    assert_eq!(got.headers_named("x-auth-groups"), [b"users"]);
    assert!(got.header(FAIL_OPEN_HEADER).is_none(), "{got:?}");
    assert!(got.header("x_auth_user").is_none(), "{got:?}");
    // An allowing answer without those headers (status-204 sends none): the client's copies
    // are removed, not passed on.
    let got = s.expect_allowed(&forged(&misbehaving("status-204")));
    for name in COPY.iter().chain([&FAIL_OPEN_HEADER]) {
        assert!(got.header(name).is_none(), "{name} passed through: {got:?}");
    }
    assert_eq!(got.headers_named(USER_HEADER), [b"status-204"]);
}

#[test]
fn keep_proxy_authorization_forwards_the_credential_after_an_external_allow() {
    let s = Ext::with(
        &plugin(
            external(json!({})),
            json!({ "keep_proxy_authorization": true }),
        ),
        &EnvoyOptions::default(),
    );
    let got = s.expect_allowed(&get("upstream.test", &carol()));
    assert_eq!(
        got.headers_named("proxy-authorization"),
        [carol().as_bytes()]
    );
}

// ---- What the service is asked -----------------------------------------------------------------

/// Points the cluster at a recording upstream instead of the service (any answer is a 200), to
/// see the call byte for byte.
fn recorded_call(fields: Value, req: &RawRequest) -> Received {
    let recorder = Upstream::start();
    let upstream = Upstream::start();
    let config = ConfigOptions::default().cluster(CLUSTER, recorder.addr());
    let envoy = Envoy::start(&test_config(
        &plugin(external(fields), json!({})),
        upstream.addr(),
        &config,
    ));
    let r = proxy_auth_e2e::exchange(envoy.listener(LISTENER), req);
    assert_eq!(r.status, 200, "{r:?}");
    let calls = recorder.wait_requests(1, WAIT);
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].clone()
}

#[test]
fn call_carries_the_credential_verbatim_and_the_request_attributes() {
    // Odd but valid spacing and scheme case, so "verbatim" is visible.
    let pa = format!("bAsIc   {}", carol_token());
    let req = RawRequest::new("POST", "http://dest.test:8080/some/path?q=1&r=%20")
        .header("Host", "dest.test:8080")
        .proxy_auth(&pa)
        .header("X-Tenant", "t1")
        .header("X-Other", "not listed")
        .body("request body");
    let call = recorded_call(
        json!({
            "authority": "auth.internal:8443",
            "path": "/check?v=1",
            "forward_headers": ["x-tenant", "x-absent"],
        }),
        &req,
    );
    assert_eq!(call.method, b"GET");
    assert_eq!(call.target, b"/check?v=1");
    assert_eq!(call.headers_named("host"), [b"auth.internal:8443"]);
    assert_eq!(call.headers_named("proxy-authorization"), [pa.as_bytes()]);
    assert_eq!(call.headers_named("x-forwarded-method"), [b"POST"]);
    assert_eq!(call.headers_named("x-forwarded-host"), [b"dest.test:8080"]);
    assert_eq!(
        call.headers_named("x-forwarded-uri"),
        [&b"/some/path?q=1&r=%20"[..]]
    );
    assert_eq!(call.headers_named("x-tenant"), [b"t1"]);
    assert!(call.header("x-other").is_none(), "{call:?}");
    assert!(call.header("x-absent").is_none(), "{call:?}");
    assert!(
        call.body.is_empty(),
        "the request body went to the service: {call:?}"
    );
}

#[test]
fn call_defaults_to_path_slash_and_the_cluster_as_authority() {
    let call = recorded_call(json!({}), &get("dest.test", &carol()));
    assert_eq!(call.target, b"/");
    assert_eq!(call.headers_named("host"), [CLUSTER.as_bytes()]);
    assert_eq!(call.headers_named("x-forwarded-host"), [b"dest.test"]);
    assert_eq!(call.headers_named("x-forwarded-uri"), [b"/"]);
    assert_eq!(call.headers_named("x-forwarded-method"), [b"GET"]);
}

#[test]
fn service_decides_per_destination_from_the_forwarded_host() {
    let s = Ext::new(json!({}));
    let dave = basic(DAVE.0, DAVE.1);
    let got = s.expect_allowed(&get("allowed.test", &dave));
    assert_eq!(got.headers_named(USER_HEADER), [b"dave"]);
    // The service denies without a challenge here, so the client gets ours.
    s.expect_denied(&get("other.test", &dave), &our_challenge());
    assert_eq!(s.service.calls_for("dave"), 2);
    let log = s.service.log();
    assert!(
        log.contains("auth GET host=\"allowed.test\" user=\"dave\" -> allowed"),
        "{log}"
    );
    assert!(
        log.contains("host=\"other.test\" user=\"dave\" -> host not allowed"),
        "{log}"
    );
}

// ---- Deny --------------------------------------------------------------------------------------

#[test]
fn wrong_password_gets_407_with_the_services_challenge() {
    let s = Ext::new(json!({}));
    s.expect_denied(
        &get("upstream.test", &basic("carol", "wrong")),
        &service_challenge(),
    );
    s.expect_denied(
        &get("upstream.test", &basic("zed", "x")),
        &service_challenge(),
    );
    assert_eq!(s.counter("denied.external"), 2);
    assert_eq!(s.counter("external.deny"), 2);
    assert_eq!(s.counter("allowed"), 0);
    assert_eq!(s.upstream.connections(), 0);
}

#[test]
fn denying_statuses_without_a_challenge_get_ours() {
    let s = Ext::new(json!({}));
    for user in ["status-401", "status-403", "status-407"] {
        let r = s.send(&get("upstream.test", &misbehaving(user)));
        assert_challenge(&r, &quoted_realm());
    }
    assert_eq!(s.counter("external.deny"), 3);
    assert_eq!(s.counter("denied.external"), 3);
    assert_eq!(s.upstream.connections(), 0);
}

#[test]
fn missing_or_malformed_credentials_are_denied_without_a_call() {
    let s = Ext::new(json!({}));
    let r = s.send(&RawRequest::get("http://upstream.test/"));
    assert_challenge(&r, &quoted_realm());
    let r = s.send(&get("upstream.test", "Bearer abc"));
    assert_challenge(&r, &quoted_realm());
    let r = s.send(&get("upstream.test", "Basic !!!"));
    assert_challenge(&r, &quoted_realm());
    // The service might know "carol " from carol; the upstream would not tell them apart.
    let r = s.send(&get(
        "upstream.test",
        &basic(&format!("{} ", CAROL.0), CAROL.1),
    ));
    assert_challenge(&r, &quoted_realm());
    assert_eq!(s.counter("denied.missing"), 1);
    assert_eq!(s.counter("denied.malformed"), 3);
    assert_eq!(s.counter("external.calls"), 0);
    assert_eq!(s.service.calls(), 0);
}

#[test]
fn local_users_are_checked_locally_and_others_by_the_service() {
    // carol is local with one password and known to the service with another.
    let json = plugin(
        external(json!({})),
        json!({ "users": format!("{}\ncarol:{{PLAIN}}local-only\n", ALICE.line) }),
    );
    let s = Ext::with(&json, &EnvoyOptions::default());
    let got = s.expect_allowed(&get("upstream.test", &ALICE.auth()));
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
    s.expect_allowed(&get("upstream.test", &basic(CAROL.0, "local-only")));
    assert_eq!(
        s.service.calls(),
        0,
        "a credential a local hash accepts cost a call"
    );
    // Any other credential is the service's: a local user's wrong password too.
    s.expect_denied(
        &get("upstream.test", &ALICE.auth_with(b"wrong")),
        &service_challenge(),
    );
    assert_eq!(s.service.calls(), 1);
    let got = s.expect_allowed(&get("upstream.test", &carol()));
    assert_eq!(got.headers_named(USER_HEADER), [b"carol"]);
    s.expect_denied(
        &get("upstream.test", &basic("zed", "x")),
        &service_challenge(),
    );
    assert_eq!(s.service.calls(), 3);
    assert_eq!(s.counter("external.calls"), 3);
    assert_eq!(s.counter("denied.external"), 2);
    assert_eq!(s.counter("denied.wrong_password"), 0);
}

// ---- Failure: other statuses, timeouts, broken answers, no service -----------------------------

#[test]
fn any_other_answer_fails_closed_with_the_failure_status_and_is_never_cached() {
    // timeout_ms 500 makes `hang` and `slow-3000` time out.
    let s = Ext::new(json!({ "timeout_ms": 500 }));
    let users = [
        "status-500",
        "status-302",
        "status-404",
        "status-429",
        "garbage",
        "close",
        "empty",
        "hang",
        "slow-3000",
    ];
    for round in 1..=2 {
        for user in users {
            let r = s.expect_failure(&get("upstream.test", &misbehaving(user)), 503);
            assert!(r.header("proxy-authenticate").is_none(), "{user}: {r:?}");
            // Failures are never cached: every request asks again.
            assert_eq!(s.service.calls_for(user), round, "{user}");
        }
    }
    let n = 2 * users.len() as u64;
    assert_eq!(s.counter("external.calls"), n);
    assert_eq!(s.counter("external.failure"), n);
    assert_eq!(s.counter("external.cache_hit"), 0);
    assert_eq!(s.counter("external.failed_open"), 0);
    assert_eq!(s.counter("allowed"), 0);
    assert_eq!(s.upstream.connections(), 0);
    // A good credential still works after all that.
    s.expect_allowed(&get("upstream.test", &carol()));
    assert_no_vm_fault(&s.envoy.log());
}

#[test]
fn failure_status_is_configurable_and_a_407_carries_our_challenge() {
    let s = Ext::new(json!({ "failure_status": 502 }));
    s.expect_failure(&get("upstream.test", &misbehaving("status-500")), 502);
    let s = Ext::new(json!({ "failure_status": 407 }));
    let r = s.expect_failure(&get("upstream.test", &misbehaving("status-500")), 407);
    assert_eq!(
        r.headers_named("proxy-authenticate"),
        [our_challenge().as_bytes()]
    );
}

#[test]
fn fail_open_forwards_marked_requests_but_still_honours_denials() {
    let s = Ext::new(json!({ "fail_open": true, "timeout_ms": 500, "copy_headers": COPY }));
    for user in ["status-500", "close", "hang"] {
        let got = s.expect_allowed(
            &get("upstream.test", &misbehaving(user)).header("X-Auth-User", "admin"),
        );
        assert_eq!(got.headers_named(FAIL_OPEN_HEADER), [b"1"], "{user}");
        assert!(got.header("proxy-authorization").is_none(), "{got:?}");
        // Nothing vouched for the client's claim, so no identity reaches the
        // upstream: neither the user header nor a copied one.
        assert!(got.header(USER_HEADER).is_none(), "{user}: {got:?}");
        assert!(got.header("x-auth-user").is_none(), "{got:?}");
    }
    assert_eq!(s.counter("external.failure"), 3);
    assert_eq!(s.counter("external.failed_open"), 3);
    // A denial is a decision, not a failure: fail-open does not apply.
    s.expect_denied(
        &get("upstream.test", &basic("carol", "wrong")),
        &service_challenge(),
    );
    // A normal allow is not marked.
    let got = s.expect_allowed(&get("upstream.test", &carol()).header(FAIL_OPEN_HEADER, "1"));
    assert!(got.header(FAIL_OPEN_HEADER).is_none(), "{got:?}");
    assert_eq!(s.counter("external.failed_open"), 3);
}

#[test]
fn fail_open_does_not_apply_to_answers_a_client_can_provoke() {
    // Regression: a 30 KB credential made the service answer 431, which failed
    // open and let an unknown client through. Only an outage (no answer, 5xx)
    // may fail open; any other unexpected status fails closed.
    let s = Ext::new(json!({ "fail_open": true, "failure_status": 502 }));
    for user in [
        "status-400",
        "status-413",
        "status-429",
        "status-431",
        "status-302",
    ] {
        s.expect_failure(&get("upstream.test", &misbehaving(user)), 502);
    }
    assert_eq!(s.counter("external.failure"), 5);
    assert_eq!(s.counter("external.failed_open"), 0);
    assert_eq!(s.upstream.connections(), 0);
}

/// Plugin config naming a cluster Envoy does not have.
fn unknown_cluster(fail_open: bool) -> Ext {
    let json = plugin(
        json!({ "cluster": "no-such-cluster", "fail_open": fail_open }),
        json!({}),
    );
    Ext::with(&json, &EnvoyOptions::default())
}

#[test]
fn unknown_cluster_fails_closed_on_every_request() {
    let s = unknown_cluster(false);
    for _ in 0..2 {
        s.expect_failure(&get("upstream.test", &carol()), 503);
    }
    assert_eq!(s.counter("external.failure"), 2);
    assert_eq!(s.service.calls(), 0);
    assert!(
        s.envoy.log().contains("no-such-cluster"),
        "the log does not name the cluster"
    );
    assert_no_vm_fault(&s.envoy.log());
}

#[test]
fn unknown_cluster_fails_open_when_configured() {
    let s = unknown_cluster(true);
    let got = s.expect_allowed(&get("upstream.test", &carol()));
    assert_eq!(got.headers_named(FAIL_OPEN_HEADER), [b"1"]);
    assert!(got.header("proxy-authorization").is_none(), "{got:?}");
    assert!(got.header(USER_HEADER).is_none(), "{got:?}");
    assert_eq!(s.counter("external.failed_open"), 1);
}

#[test]
fn service_dying_during_a_call_fails_closed() {
    let mut s = Ext::new(json!({ "timeout_ms": 20000 }));
    let mut c = Client::connect(s.proxy);
    c.send(&get("upstream.test", &misbehaving("hang")).to_bytes());
    s.service.wait_calls_for("hang", 1, WAIT);
    s.service.kill();
    let r = c.response();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(s.counter("external.failure"), 1);
    assert_eq!(s.upstream.connections(), 0);
}

// ---- Streams never hang, and nothing crashes when a pending call loses its stream ---------------

#[test]
fn client_closing_during_a_pending_call_leaves_envoy_serving() {
    let s = Ext::new(json!({ "timeout_ms": 1000 }));
    for user in ["hang", "slow-1500"] {
        let mut c = Client::connect(s.proxy);
        c.send(&get("upstream.test", &misbehaving(user)).to_bytes());
        s.service.wait_calls_for(user, 1, WAIT);
        drop(c);
    }
    // Past the call timeout and the slow answer: had a call outlived its stream, its answer
    // would have arrived by now.
    thread::sleep(Duration::from_millis(1800));
    s.expect_allowed(&get("upstream.test", &carol()));
    assert_eq!(
        s.upstream.requests().len(),
        1,
        "an abandoned request was forwarded"
    );
    assert_no_vm_fault(&s.envoy.log());
}

#[test]
fn envoy_shutting_down_during_a_pending_call_does_not_crash() {
    let s = Ext::new(json!({ "timeout_ms": 20000 }));
    let mut c = Client::connect(s.proxy);
    c.send(&get("upstream.test", &misbehaving("hang")).to_bytes());
    s.service.wait_calls_for("hang", 1, WAIT);
    // The VMs are torn down while the call is pending.
    let mut admin = Client::connect(s.envoy.admin());
    admin.send(
        &RawRequest::new("POST", "/quitquitquit")
            .header("Host", "admin")
            .header("Content-Length", "0")
            .to_bytes(),
    );
    // The client is answered or disconnected, not left hanging.
    match c.try_response_to("GET", WAIT) {
        Ok(r) => assert_ne!(r.status, 200, "{r:?}"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the client hung: {e}"
        ),
    }
    assert!(
        s.envoy.wait_log("exiting", WAIT),
        "Envoy did not shut down:\n{}",
        s.envoy.log_tail(40)
    );
    // Envoy's wasm debug line for the last VM destroyed: teardown ran to its end.
    assert!(
        s.envoy.wait_log("~Wasm 0 remaining active", WAIT),
        "not every wasm VM was torn down:\n{}",
        s.envoy.log_tail(40)
    );
    assert_no_vm_fault(&s.envoy.log());
    assert_eq!(s.upstream.connections(), 0);
}

// ---- Request bodies ------------------------------------------------------------------------------

#[test]
fn body_arriving_during_the_call_is_held_then_forwarded_whole() {
    let s = Ext::new(json!({ "timeout_ms": 10000 }));
    // Answers after 3 s: the checks below happen while the call is still pending.
    let user = "slow-3000";
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let req = RawRequest::new("POST", "http://upstream.test/upload")
        .header("Host", "upstream.test")
        .proxy_auth(misbehaving(user))
        .body(&body);
    let mut c = Client::connect(s.proxy);
    c.send(&req.head_bytes());
    s.service.wait_calls_for(user, 1, WAIT);
    // Part of the body arrives while the service is still deciding.
    c.send(&body[..64 * 1024]);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.upstream.connections(),
        0,
        "the request went upstream before the service answered: {:?}",
        s.upstream.heads()
    );
    c.send(&body[64 * 1024..]);
    let r = c.response_to("POST");
    assert_eq!(r.status, 200, "{r:?}");
    let got = s.upstream.wait_requests(1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.len(), body.len());
    assert!(got[0].body == body, "the body changed on the way");
    assert_eq!(got[0].headers_named(USER_HEADER), [user.as_bytes()]);
    assert_eq!(s.service.calls_for(user), 1);
}

#[test]
fn allowed_one_mib_upload_reaches_upstream_whole() {
    let s = Ext::new(json!({}));
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let got = s.expect_allowed(
        &RawRequest::new("PUT", "http://upstream.test/big")
            .header("Host", "upstream.test")
            .proxy_auth(carol())
            .body(&body),
    );
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body, "the body changed on the way");
}

#[test]
fn denied_request_with_a_pending_body_is_answered_and_never_forwarded() {
    let s = Ext::new(json!({}));
    let mut c = Client::connect(s.proxy);
    let req = RawRequest::new("POST", "http://upstream.test/upload")
        .header("Host", "upstream.test")
        .proxy_auth(basic("carol", "wrong"))
        .body(vec![b'x'; 100_000]);
    c.send(&req.head_bytes());
    c.send(&req.body_bytes()[..1000]);
    let r = c.response_to("POST");
    assert_eq!(r.status, 407, "{r:?}");
    assert_eq!(
        r.headers_named("proxy-authenticate"),
        [service_challenge().as_bytes()]
    );
    assert_eq!(s.upstream.connections(), 0);
}

// ---- CONNECT ----------------------------------------------------------------------------------

#[test]
fn connect_is_decided_by_the_service_before_any_tunnel() {
    let s = Ext::new(json!({ "copy_headers": COPY }));
    let dave = basic(DAVE.0, DAVE.1);
    // `allowed.test` without a port covers :443.
    let mut c = Client::connect(s.proxy);
    c.send(
        &RawRequest::connect("allowed.test:443")
            .proxy_auth(&dave)
            .to_bytes(),
    );
    let r = c.response_to("CONNECT");
    assert_eq!(r.status, 200, "{r:?}");
    c.send(b"bytes through the tunnel");
    assert_eq!(c.read_bytes(24), b"bytes through the tunnel");
    let head = &s.upstream.wait_heads(1, WAIT)[0];
    assert_eq!(head.method, b"CONNECT");
    assert!(head.header("proxy-authorization").is_none(), "{head:?}");
    assert_eq!(head.headers_named("x-auth-user"), [b"dave"]);
    assert!(s
        .service
        .log()
        .contains("host=\"allowed.test:443\" user=\"dave\" -> allowed"));

    let mut c = Client::connect(s.proxy);
    c.send(
        &RawRequest::connect("other.test:443")
            .proxy_auth(&dave)
            .to_bytes(),
    );
    let r = c.response_to("CONNECT");
    assert_challenge(&r, &quoted_realm());
    assert_eq!(
        s.upstream.heads().len(),
        1,
        "a denied CONNECT reached the upstream"
    );
}

// ---- Cache -----------------------------------------------------------------------------------------

#[test]
fn allowed_answer_is_cached_with_its_copied_headers() {
    let s = Ext::new(json!({ "copy_headers": COPY }));
    for _ in 0..5 {
        let got = s.expect_allowed(&get("upstream.test", &carol()).header("X-Auth-User", "admin"));
        assert_eq!(got.headers_named("x-auth-user"), [b"carol"]);
        assert_eq!(got.headers_named("x-auth-groups"), [b"users"]);
        assert!(got.header("proxy-authorization").is_none(), "{got:?}");
    }
    assert_eq!(s.service.calls_for("carol"), 1);
    assert_eq!(s.counter("external.calls"), 1);
    assert_eq!(s.counter("external.cache_hit"), 4);
    assert_eq!(s.counter("external.allow"), 5);
    assert_eq!(s.counter("allowed"), 5);
}

#[test]
fn denied_answer_is_cached_with_its_challenge() {
    let s = Ext::new(json!({}));
    for _ in 0..4 {
        s.expect_denied(
            &get("upstream.test", &basic("carol", "wrong")),
            &service_challenge(),
        );
    }
    assert_eq!(s.service.calls_for("carol"), 1);
    assert_eq!(s.counter("external.cache_hit"), 3);
    assert_eq!(s.counter("external.deny"), 4);
    assert_eq!(s.counter("denied.external"), 4);
}

#[test]
fn wrong_password_after_a_cached_right_one_is_asked_and_denied() {
    let s = Ext::new(json!({}));
    s.expect_allowed(&get("upstream.test", &carol()));
    s.expect_allowed(&get("upstream.test", &carol()));
    assert_eq!(s.service.calls_for("carol"), 1);
    s.expect_denied(
        &get("upstream.test", &basic("carol", "wrong")),
        &service_challenge(),
    );
    s.expect_denied(
        &get("upstream.test", &basic("carol", "c4r0l-pass ")),
        &service_challenge(),
    );
    assert_eq!(s.service.calls_for("carol"), 3);
    // The right one is still remembered.
    s.expect_allowed(&get("upstream.test", &carol()));
    assert_eq!(s.service.calls_for("carol"), 3);
}

#[test]
fn cache_key_covers_the_credential_and_every_attribute_sent() {
    let s = Ext::new(json!({ "forward_headers": ["x-tenant"] }));
    let base = || {
        RawRequest::new("GET", "http://a.test/x")
            .header("Host", "a.test")
            .proxy_auth(carol())
            .header("X-Tenant", "t1")
    };
    let variants: Vec<(&str, RawRequest)> = vec![
        ("base", base()),
        (
            "host",
            RawRequest::new("GET", "http://b.test/x")
                .header("Host", "b.test")
                .proxy_auth(carol())
                .header("X-Tenant", "t1"),
        ),
        (
            "path",
            RawRequest::new("GET", "http://a.test/y")
                .header("Host", "a.test")
                .proxy_auth(carol())
                .header("X-Tenant", "t1"),
        ),
        (
            "method",
            RawRequest::new("DELETE", "http://a.test/x")
                .header("Host", "a.test")
                .proxy_auth(carol())
                .header("X-Tenant", "t1"),
        ),
        (
            "forwarded header value",
            RawRequest::new("GET", "http://a.test/x")
                .header("Host", "a.test")
                .proxy_auth(carol())
                .header("X-Tenant", "t2"),
        ),
        (
            "forwarded header absent",
            RawRequest::new("GET", "http://a.test/x")
                .header("Host", "a.test")
                .proxy_auth(carol()),
        ),
    ];
    for (i, (what, req)) in variants.iter().enumerate() {
        s.expect_allowed(req);
        assert_eq!(
            s.service.calls_for("carol"),
            i as u64 + 1,
            "{what} was not a new key"
        );
    }
    let n = variants.len() as u64;
    // Each again: all remembered.
    for (what, req) in &variants {
        s.expect_allowed(req);
        assert_eq!(s.service.calls_for("carol"), n, "{what} was not remembered");
    }
    // Headers the service is not sent do not split the cache, and neither does the scheme's case
    // (the credential is the same).
    s.expect_allowed(&base().header("X-Other", "1"));
    s.expect_allowed(
        &RawRequest::new("GET", "http://a.test/x")
            .header("Host", "a.test")
            .proxy_auth(format!("BASIC {}", carol_token()))
            .header("X-Tenant", "t1"),
    );
    assert_eq!(s.service.calls_for("carol"), n);
}

#[test]
fn attributes_left_out_are_neither_sent_nor_part_of_the_key() {
    // A service deciding per destination: one call per user and host, not per URL.
    let s = Ext::new(json!({ "attributes": ["host"] }));
    let req = |method: &str, url: &str, host: &str| {
        RawRequest::new(method, url)
            .header("Host", host)
            .proxy_auth(carol())
    };
    s.expect_allowed(&req("GET", "http://a.test/x", "a.test"));
    s.expect_allowed(&req("GET", "http://a.test/y", "a.test"));
    s.expect_allowed(&req("DELETE", "http://a.test/z?q=1", "a.test"));
    assert_eq!(s.service.calls_for("carol"), 1);
    s.expect_allowed(&req("GET", "http://b.test/x", "b.test"));
    assert_eq!(s.service.calls_for("carol"), 2);
}

#[test]
fn allow_and_deny_have_their_own_lifetimes() {
    let s = Ext::new(json!({ "cache": { "allow_ttl_seconds": 4, "deny_ttl_seconds": 1 } }));
    let allow = || get("upstream.test", &carol());
    let deny = || get("upstream.test", &basic("carol", "wrong"));
    let calls = || s.service.calls_for("carol");
    s.expect_allowed(&allow());
    s.expect_denied(&deny(), &service_challenge());
    s.expect_allowed(&allow());
    s.expect_denied(&deny(), &service_challenge());
    assert_eq!(calls(), 2);
    // Past the deny lifetime, well within the allow lifetime.
    thread::sleep(Duration::from_millis(1500));
    s.expect_denied(&deny(), &service_challenge());
    assert_eq!(calls(), 3, "the denial outlived deny_ttl_seconds");
    s.expect_allowed(&allow());
    assert_eq!(calls(), 3, "the allow expired with the denial");
    // Past the allow lifetime.
    thread::sleep(Duration::from_millis(3000));
    s.expect_allowed(&allow());
    assert_eq!(calls(), 4, "the allow outlived allow_ttl_seconds");
}

#[test]
fn zero_lifetimes_turn_the_cache_off() {
    let s = Ext::new(json!({ "cache": { "allow_ttl_seconds": 0, "deny_ttl_seconds": 0 } }));
    for _ in 0..3 {
        s.expect_allowed(&get("upstream.test", &carol()));
        s.expect_denied(
            &get("upstream.test", &basic("carol", "wrong")),
            &service_challenge(),
        );
    }
    assert_eq!(s.service.calls_for("carol"), 6);
    assert_eq!(s.counter("external.cache_hit"), 0);
}

#[test]
fn cache_holds_no_more_than_max_entries() {
    // One entry: each new credential pushes the last one out.
    let s = Ext::new(json!({ "cache": { "max_entries": 1 } }));
    let dave = basic(DAVE.0, DAVE.1);
    s.expect_allowed(&get("allowed.test", &carol()));
    s.expect_allowed(&get("allowed.test", &carol()));
    assert_eq!(s.service.calls_for("carol"), 1);
    s.expect_allowed(&get("allowed.test", &dave));
    s.expect_allowed(&get("allowed.test", &carol()));
    assert_eq!(
        s.service.calls_for("carol"),
        2,
        "two answers were kept in one entry"
    );
    assert_eq!(s.service.calls_for("dave"), 1);
}

#[test]
fn workers_share_one_cache() {
    let s = Ext::with(
        &plugin(external(json!({})), json!({})),
        &EnvoyOptions {
            concurrency: 2,
            ..EnvoyOptions::default()
        },
    );
    let n = 30;
    // A new connection per request, so the kernel spreads them over both workers.
    for _ in 0..n {
        s.expect_allowed(&get("upstream.test", &carol()));
        s.expect_denied(
            &get("upstream.test", &basic("carol", "wrong")),
            &service_challenge(),
        );
    }
    // Per-worker listener counters, named after the configured address (port 0 here).
    let stats = s.envoy.stats();
    for worker in 0..2 {
        let suffix = format!(".worker_{worker}.downstream_cx_total");
        let served: u64 = stats
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(name, _)| name.starts_with("listener.127.0.0.1_") && name.ends_with(&suffix))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum();
        assert!(
            served > 0,
            "worker {worker} served no connection, so sharing was not tested:\n{stats}"
        );
    }
    assert_eq!(
        s.service.calls_for("carol"),
        2,
        "one call to allow, one to deny"
    );
    assert_eq!(s.counter("external.calls"), 2);
    assert_eq!(s.counter("external.cache_hit"), 2 * n - 2);
}
