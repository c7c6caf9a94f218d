//! End-to-end rules for users listed in the plugin config (issue 2, "Each request"): the built
//! module in a real Envoy, a real upstream that reports exactly what reached it, and raw sockets
//! wherever a client library would refuse or repair the input. One test per rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use proxy_auth_e2e::{b64, basic, basic_bytes, Client, ConfigOptions, RawRequest};
use serde_json::json;
use std::time::Duration;

// ---- Valid credentials: what the upstream receives -------------------------------------------

#[test]
fn valid_credentials_reach_upstream_without_proxy_authorization() {
    let s = Setup::new();
    let got = s.expect_allowed(&get_with(ALICE.auth()));
    assert!(
        got.header("proxy-authorization").is_none(),
        "Proxy-Authorization must not be forwarded: {got:?}"
    );
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
    assert_eq!(s.counter("allowed"), 1);
}

#[test]
fn authorization_header_is_forwarded_untouched() {
    let s = Setup::new();
    let got =
        s.expect_allowed(&get_with(ALICE.auth()).header("Authorization", "Bearer abc.DEF/ghi+=="));
    assert_eq!(
        got.headers_named("authorization"),
        [b"Bearer abc.DEF/ghi+=="]
    );
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
}

#[test]
fn keep_proxy_authorization_forwards_the_field_when_configured() {
    let s = Setup::with(
        &plugin(json!({"keep_proxy_authorization": true})),
        ConfigOptions::default(),
    );
    let got = s.expect_allowed(&get_with(ALICE.auth()));
    assert_eq!(
        got.headers_named("proxy-authorization"),
        [ALICE.auth().as_bytes()]
    );
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
}

#[test]
fn client_sent_user_header_is_replaced_by_the_authenticated_user() {
    let s = Setup::new();
    let got = s.expect_allowed(
        &get_with(BOB.auth())
            .header("X-Proxy-User", "alice")
            .header("x-proxy-user", "admin"),
    );
    assert_eq!(got.headers_named(USER_HEADER), [b"bob"]);
}

#[test]
fn client_sent_user_header_spelled_with_underscores_is_removed() {
    // CGI-style servers (WSGI, Rack, PHP) read x_proxy_user as x-proxy-user.
    let s = Setup::new();
    let got = s.expect_allowed(
        &get_with(BOB.auth())
            .header("X_Proxy_User", "alice")
            .header("x-proxy_user", "admin"),
    );
    assert_eq!(got.headers_named(USER_HEADER), [b"bob"]);
    for name in ["x_proxy_user", "x-proxy_user"] {
        assert!(got.header(name).is_none(), "{name} passed through: {got:?}");
    }
    // Near misses are other headers and go on untouched.
    let got = s.expect_allowed(&get_with(BOB.auth()).header("x_proxy_users", "1"));
    assert_eq!(got.headers_named("x_proxy_users"), [b"1"]);
}

#[test]
fn client_sent_fail_open_marker_is_removed_without_an_external_service() {
    // Regression: only external mode removed it, so a local-mode upstream saw the client's.
    let s = Setup::new();
    let got = s.expect_allowed(
        &get_with(BOB.auth())
            .header("X-Proxy-Auth-Fail-Open", "1")
            .header("x_proxy_auth_fail_open", "1"),
    );
    for name in ["x-proxy-auth-fail-open", "x_proxy_auth_fail_open"] {
        assert!(got.header(name).is_none(), "{name} passed through: {got:?}");
    }
}

#[test]
fn proxy_authorization_spelled_with_underscores_never_reaches_the_upstream() {
    // A CGI-style server reads Proxy_Authorization as the credential the filter removes.
    let smuggled = ALICE.auth();
    for keep in [false, true] {
        let s = Setup::with(
            &plugin(json!({"keep_proxy_authorization": keep})),
            ConfigOptions::default(),
        );
        let got = s.expect_allowed(&get_with(BOB.auth()).header("Proxy_Authorization", &smuggled));
        assert!(got.header("proxy_authorization").is_none(), "{got:?}");
        // It is no credential either: bob's decides, and it is no second field.
        assert_eq!(got.headers_named(USER_HEADER), [b"bob"]);
        // Without a real field it does not stand in for one.
        s.expect_denied(
            &RawRequest::get("http://upstream.test/").header("Proxy_Authorization", &smuggled),
        );
    }
}

#[test]
fn utf8_user_name_is_accepted_and_forwarded_as_utf8() {
    let s = Setup::new();
    let got = s.expect_allowed(&get_with(JURGEN.auth()));
    assert_eq!(got.headers_named(USER_HEADER), ["jürgen".as_bytes()]);
}

#[test]
fn headers_with_bytes_that_are_not_utf8_pass_through_unchanged() {
    let s = Setup::new();
    let got = s.expect_allowed(
        &get_with(ALICE.auth())
            .header("X-Latin1", b"caf\xe9")
            .header("X-High", b"\x80\xff\xfe obs-text"),
    );
    assert_eq!(got.header("x-latin1"), Some(&b"caf\xe9"[..]));
    assert_eq!(got.header("x-high"), Some(&b"\x80\xff\xfe obs-text"[..]));
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
}

#[test]
fn request_body_reaches_upstream_intact() {
    let s = Setup::new();
    let body = b"field=1&other=\x00\xff binary".repeat(100);
    let got = s.expect_allowed(
        &RawRequest::new("POST", "http://upstream.test/submit")
            .header("Host", "upstream.test")
            .proxy_auth(ALICE.auth())
            .body(&body),
    );
    assert_eq!(got.body, body);
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
}

// ---- Parsing the field: RFC 9110 section 11, RFC 7617 -----------------------------------------

#[test]
fn scheme_is_matched_without_regard_to_case() {
    let s = Setup::new();
    let token = b64(b"alice:wonderland");
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        s.expect_allowed(&get_with(format!("{scheme} {token}")));
    }
    assert_eq!(s.counter("allowed"), 4);
}

#[test]
fn several_spaces_between_scheme_and_token_are_accepted() {
    let s = Setup::new();
    let got = s.expect_allowed(&get_with(format!("Basic    {}", b64(b"alice:wonderland"))));
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
}

#[test]
fn unpadded_base64_is_accepted() {
    let s = Setup::new();
    // alice:wonderland needs "==", bob:builder needs "=".
    for (cred, token) in [
        ("alice:wonderland", "YWxpY2U6d29uZGVybGFuZA"),
        ("bob:builder", "Ym9iOmJ1aWxkZXI"),
    ] {
        assert_eq!(b64(cred.as_bytes()).trim_end_matches('='), token);
        let got = s.expect_allowed(&get_with(format!("Basic {token}")));
        let user = cred.split(':').next().unwrap();
        assert_eq!(got.headers_named(USER_HEADER), [user.as_bytes()]);
    }
}

#[test]
fn password_with_colons_splits_at_the_first_colon() {
    let s = Setup::new();
    let got = s.expect_allowed(&get_with(basic("colon", "a:b:c")));
    assert_eq!(got.headers_named(USER_HEADER), [b"colon"]);
    // Split at the last colon these would be user "colon:a" with password "b" (unknown), or
    // "colon:a:b:c" with an empty one; split at the first they are wrong passwords for "colon".
    s.expect_denied(&get_with(basic("colon", "a:b")));
    s.expect_denied(&get_with(basic("colon", "a:b:c:")));
    assert_eq!(s.counter("denied.wrong_password"), 2);
}

#[test]
fn latin1_password_octets_are_compared_as_sent() {
    let s = Setup::new();
    s.expect_allowed(&get_with(LATIN.auth()));
    // The same text in UTF-8 is other octets, so another password.
    s.expect_denied(&get_with(LATIN.auth_with("päss".as_bytes())));
    assert_eq!(s.counter("denied.wrong_password"), 1);
}

#[test]
fn latin1_encoded_user_name_is_not_transcoded() {
    let s = Setup::new();
    // "jürgen:grüße" in Latin-1: the user name octets differ from the configured UTF-8 name.
    s.expect_denied(&get_with(basic_bytes(b"j\xfcrgen:gr\xfc\xdfe")));
    assert_eq!(s.counter("denied.unknown_user"), 1);
    assert_eq!(s.counter("allowed"), 0);
}

#[test]
fn credentials_are_not_normalised() {
    let s = Setup::new();
    let table: &[&[u8]] = &[
        b"al%69ce:wonderland",            // percent-encoding is not decoded
        b"ALICE:wonderland",              // user names are case-sensitive
        b"alice:wonderland ",             // passwords are not trimmed
        b"alice:WONDERLAND",              //
        "ju\u{308}rgen:grüße".as_bytes(), // NFD form of jürgen is another name
    ];
    for cred in table {
        s.expect_denied(&get_with(basic_bytes(cred)));
    }
    assert_eq!(s.counter("allowed"), 0);
}

#[test]
fn empty_user_name_is_denied() {
    let s = Setup::new();
    for cred in [&b":wonderland"[..], b":", b":\xff"] {
        s.expect_denied(&get_with(basic_bytes(cred)));
    }
}

#[test]
fn empty_password_is_denied_for_a_user_that_has_one() {
    let s = Setup::new();
    s.expect_denied(&get_with(basic_bytes(b"alice:")));
    assert_eq!(s.counter("denied.wrong_password"), 1);
}

#[test]
fn empty_password_is_accepted_when_it_is_the_password() {
    let s = Setup::new();
    let got = s.expect_allowed(&get_with(NOPASS.auth()));
    assert_eq!(got.headers_named(USER_HEADER), [b"nopass"]);
    s.expect_denied(&get_with(NOPASS.auth_with(b" ")));
}

#[test]
fn every_supported_hash_format_accepts_the_right_password_only() {
    let s = Setup::new();
    for u in FORMATS {
        let got = s.expect_allowed(&get_with(u.auth()));
        assert_eq!(
            got.headers_named(USER_HEADER),
            [u.name.as_bytes()],
            "{}",
            u.name
        );
        let mut wrong = u.password.to_vec();
        wrong.push(b'x');
        s.expect_denied(&get_with(u.auth_with(&wrong)));
    }
    assert_eq!(s.counter("allowed"), FORMATS.len() as u64);
    assert_eq!(s.counter("denied.wrong_password"), FORMATS.len() as u64);
}

// ---- Denials: the challenge and the counter for each kind --------------------------------------

#[test]
fn missing_proxy_authorization_gets_the_challenge() {
    let s = Setup::new();
    s.expect_denied(&RawRequest::get("http://upstream.test/"));
    assert_eq!(s.counter("denied.missing"), 1);
    assert_eq!(s.upstream.connections(), 0);
}

#[test]
fn challenge_names_realm_and_utf8_charset() {
    let s = Setup::new();
    let r = s.expect_denied(&RawRequest::get("http://upstream.test/"));
    assert_eq!(
        r.header_str("proxy-authenticate").as_deref(),
        Some("Basic realm=\"proxy-auth test\", charset=\"UTF-8\"")
    );
}

#[test]
fn realm_quotes_and_backslashes_are_escaped() {
    // RFC 9110 section 5.6.4: inside a quoted-string, '"' and '\' are sent as quoted-pairs.
    let s = Setup::with(
        &plugin(json!({"realm": r#"say "hi" \ bye"#})),
        ConfigOptions::default(),
    );
    let r = s.send(&RawRequest::get("http://upstream.test/"));
    assert_challenge(&r, r#""say \"hi\" \\ bye""#);
}

#[test]
fn wrong_password_is_denied() {
    let s = Setup::new();
    s.expect_denied(&get_with(ALICE.auth_with(b"wonderlanD")));
    assert_eq!(s.counter("denied.wrong_password"), 1);
    assert_eq!(s.counter("allowed"), 0);
}

#[test]
fn unknown_user_is_denied() {
    let s = Setup::new();
    s.expect_denied(&get_with(basic("mallory", "wonderland")));
    assert_eq!(s.counter("denied.unknown_user"), 1);
}

#[test]
fn malformed_credentials_are_denied() {
    let s = Setup::new();
    let token = b64(b"alice:wonderland"); // YWxpY2U6d29uZGVybGFuZA==
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("scheme only", b"Basic".to_vec()),
        ("other scheme", format!("Bearer {token}").into_bytes()),
        (
            "no space after scheme",
            format!("Basic{token}").into_bytes(),
        ),
        ("scheme prefix", format!("Basicx {token}").into_bytes()),
        (
            "character outside base64",
            format!("Basic {token}!").into_bytes(),
        ),
        (
            "space inside token",
            b"Basic YWxpY2U6 d29uZGVybGFuZA==".to_vec(),
        ),
        ("url-safe alphabet", b"Basic dGlsZGU6fn5-".to_vec()),
        ("data after padding", format!("Basic {token}x").into_bytes()),
        ("extra padding", format!("Basic {token}=").into_bytes()),
        (
            "second token",
            format!("Basic {token} {token}").into_bytes(),
        ),
        ("impossible length", b"Basic YWxpY".to_vec()),
        (
            "padding in the middle",
            b"Basic YW==xpY2U6d29uZGVybGFuZA".to_vec(),
        ),
        ("bytes that are not UTF-8", b"Basic \xff\xfe\xfd".to_vec()),
        ("no colon", basic_bytes(b"alicewonderland").into_bytes()),
        // RFC 7617 section 2: no control characters; a CR LF in a user name
        // would otherwise end the upstream user header early.
        (
            "CR LF in the user name",
            basic_bytes(b"alice\r\nx-evil: 1:wonderland").into_bytes(),
        ),
        (
            "control character in the password",
            basic_bytes(b"alice:wonder\x7fland").into_bytes(),
        ),
        // RFC 9110 section 5.5: a user header could not carry these spaces, and an
        // upstream would read "alice " as alice. User names are not trimmed either.
        (
            "space after the user name",
            basic_bytes(b"alice :wonderland").into_bytes(),
        ),
        (
            "space before the user name",
            basic_bytes(b" alice:wonderland").into_bytes(),
        ),
    ];
    for (why, value) in &table {
        let r = s.send(&get_with(value));
        assert_eq!(r.status, 407, "{why}: {r:?}");
    }
    assert_eq!(s.upstream.connections(), 0);
    assert_eq!(s.counter("denied.malformed"), table.len() as u64);
    assert_eq!(s.counter("allowed"), 0);
}

#[test]
fn empty_proxy_authorization_is_denied() {
    let s = Setup::new();
    s.expect_denied(&get_with(""));
    assert_eq!(s.counter("allowed"), 0);
}

#[test]
fn two_proxy_authorization_fields_are_denied_in_either_order() {
    let s = Setup::new();
    let good = ALICE.auth();
    let bad = ALICE.auth_with(b"nope");
    let table = [
        ("valid, valid", good.as_str(), good.as_str()),
        ("valid, wrong", good.as_str(), bad.as_str()),
        ("wrong, valid", bad.as_str(), good.as_str()),
        ("valid, malformed", good.as_str(), "Basic !!"),
        ("malformed, valid", "Basic !!", good.as_str()),
    ];
    for (why, first, second) in table {
        let req = RawRequest::get("http://upstream.test/")
            .header("Proxy-Authorization", first)
            .header("proxy-authorization", second);
        let r = s.expect_denied(&req);
        assert_eq!(r.status, 407, "{why}");
    }
    assert_eq!(s.counter("denied.duplicate"), table.len() as u64);
    assert_eq!(s.upstream.connections(), 0);
}

// ---- Decided on the request headers: CONNECT and bodies still arriving -------------------------

#[test]
fn connect_without_credentials_is_denied_before_any_tunnel() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    c.send(&RawRequest::connect("example.test:443").to_bytes());
    let r = c.response_to("CONNECT");
    assert_challenge(&r, &format!("\"{REALM}\""));
    assert_eq!(s.upstream.connections(), 0);
    assert_eq!(s.counter("denied.missing"), 1);
}

#[test]
fn connect_with_wrong_password_is_denied() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    let req = RawRequest::connect("example.test:443").proxy_auth(ALICE.auth_with(b"x"));
    c.send(&req.to_bytes());
    assert_eq!(c.response_to("CONNECT").status, 407);
    assert_eq!(s.upstream.connections(), 0);
}

#[test]
fn connect_with_valid_credentials_opens_the_tunnel() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    c.send(
        &RawRequest::connect("example.test:443")
            .proxy_auth(ALICE.auth())
            .to_bytes(),
    );
    let r = c.response_to("CONNECT");
    assert_eq!(r.status, 200, "{r:?}");
    c.send(b"bytes through the tunnel");
    assert_eq!(c.read_bytes(24), b"bytes through the tunnel");
    let head = &s.upstream.wait_heads(1, Duration::from_secs(5))[0];
    assert_eq!(head.method, b"CONNECT");
    assert!(head.header("proxy-authorization").is_none(), "{head:?}");
    assert_eq!(head.headers_named(USER_HEADER), [b"alice"]);
}

#[test]
fn denial_does_not_wait_for_the_request_body() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    let req = RawRequest::new("POST", "http://upstream.test/upload")
        .header("Host", "upstream.test")
        .proxy_auth(ALICE.auth_with(b"wrong"))
        .body(vec![b'x'; 100_000]);
    // Only the head is sent: the 407 must come while the body is still "arriving".
    c.send(&req.head_bytes());
    let r = c
        .try_response_to("POST", Duration::from_secs(10))
        .expect("407 before the body was sent");
    assert_challenge(&r, &format!("\"{REALM}\""));
    assert_eq!(s.upstream.connections(), 0);
    assert_eq!(s.counter("denied.wrong_password"), 1);
}

#[test]
fn allowed_request_is_forwarded_before_its_body_arrives() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    let req = RawRequest::new("POST", "http://upstream.test/upload")
        .header("Host", "upstream.test")
        .proxy_auth(ALICE.auth())
        .body("the body comes later");
    c.send(&req.head_bytes());
    let heads = s.upstream.wait_heads(1, Duration::from_secs(10));
    assert!(!heads[0].complete, "the body was not sent yet");
    assert_eq!(heads[0].headers_named(USER_HEADER), [b"alice"]);
    c.send(req.body_bytes());
    assert_eq!(c.response_to("POST").status, 200);
    let got = s.upstream.wait_requests(1, Duration::from_secs(5));
    assert_eq!(got[0].body, b"the body comes later");
}

#[test]
fn each_request_on_a_kept_alive_connection_is_checked() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    c.send(&get_with(ALICE.auth()).to_bytes());
    assert_eq!(c.response().status, 200);
    c.send(&RawRequest::get("http://upstream.test/second").to_bytes());
    assert_eq!(c.response().status, 407);
    assert_eq!(s.upstream.requests().len(), 1);
}

// ---- Users from the VM environment -------------------------------------------------------------

#[test]
fn users_from_a_vm_environment_variable_are_accepted() {
    let json = json!({"realm": REALM, "users_env": "PROXY_AUTH_USERS", "user_header": USER_HEADER})
        .to_string();
    let opts = ConfigOptions::default().env("PROXY_AUTH_USERS", &htpasswd(&[&ALICE, &BOB]));
    let s = Setup::with(&json, opts);
    let got = s.expect_allowed(&get_with(BOB.auth()));
    assert_eq!(got.headers_named(USER_HEADER), [b"bob"]);
    s.expect_denied(&get_with(BOB.auth_with(b"wrong")));
    s.expect_denied(&get_with(COLON.auth()));
}

// ---- The success cache ---------------------------------------------------------------------------

#[test]
fn bcrypt_is_not_paid_on_every_request() {
    let s = Setup::new();
    let mut c = Client::connect(s.proxy);
    for _ in 0..20 {
        c.send(&get_with(SLOW.auth()).to_bytes());
        assert_eq!(c.response().status, 200);
    }
    assert_eq!(s.counter("cache.miss"), 1);
    assert_eq!(s.counter("cache.hit"), 19);
    assert_eq!(s.counter("allowed"), 20);
}

#[test]
fn wrong_password_after_a_right_one_is_still_denied() {
    let s = Setup::new();
    s.expect_allowed(&get_with(SLOW.auth()));
    // The cache key is the whole credential: these share the user, or a prefix of the token.
    for wrong in [&b"patienc"[..], b"patiencee", b"PATIENCE", b""] {
        s.expect_denied(&get_with(SLOW.auth_with(wrong)));
    }
    s.expect_allowed(&get_with(SLOW.auth()));
    assert_eq!(s.counter("denied.wrong_password"), 4);
    assert_eq!(s.counter("allowed"), 2);
}

#[test]
fn right_password_after_a_wrong_one_is_accepted() {
    let s = Setup::new();
    s.expect_denied(&get_with(SLOW.auth_with(b"guess")));
    s.expect_allowed(&get_with(SLOW.auth()));
    s.expect_denied(&get_with(SLOW.auth_with(b"guess")));
    s.expect_allowed(&get_with(SLOW.auth()));
    assert_eq!(s.counter("denied.wrong_password"), 2);
    assert_eq!(s.counter("allowed"), 2);
}

#[test]
fn cache_can_be_turned_off() {
    let s = Setup::with(
        &plugin(json!({"cache": {"ttl_seconds": 0}})),
        ConfigOptions::default(),
    );
    for _ in 0..3 {
        s.expect_allowed(&get_with(ALICE.auth()));
    }
    assert_eq!(s.counter("cache.hit"), 0);
    assert_eq!(s.counter("allowed"), 3);
}

#[test]
fn cache_is_bounded_in_entries() {
    let s = Setup::with(
        &plugin(json!({"cache": {"max_entries": 1}})),
        ConfigOptions::default(),
    );
    // With room for one entry, alternating two users can never hit.
    for u in [&ALICE, &BOB, &ALICE, &BOB] {
        s.expect_allowed(&get_with(u.auth()));
    }
    assert_eq!(s.counter("cache.hit"), 0);
    assert_eq!(s.counter("cache.miss"), 4);
}

#[test]
fn cache_entries_expire() {
    let s = Setup::with(
        &plugin(json!({"cache": {"ttl_seconds": 1}})),
        ConfigOptions::default(),
    );
    s.expect_allowed(&get_with(ALICE.auth()));
    s.expect_allowed(&get_with(ALICE.auth()));
    assert_eq!(s.counter("cache.hit"), 1);
    std::thread::sleep(Duration::from_millis(2200));
    s.expect_allowed(&get_with(ALICE.auth()));
    assert_eq!(s.counter("cache.miss"), 2);
}

// ---- Robustness and secrecy -----------------------------------------------------------------------

/// Signs that the module trapped: nonzero wasm failure/reload stats, or the lines Envoy logs when
/// a call into the VM fails (with FAIL_CLOSED no counter moves; the VM just answers 503 after).
fn vm_failures(s: &Setup) -> Vec<String> {
    let stats = s.envoy.stats();
    let failing_stats = stats
        .lines()
        .filter(|l| l.starts_with("wasm.") && (l.contains("fail") || l.contains("reload")))
        .filter(|l| !l.ends_with(": 0"));
    let log = s.envoy.log();
    let crash_lines = log.lines().filter(|l| {
        l.contains("panicked at") || l.contains("Uncaught") || l.contains("in-VM backtrace")
    });
    failing_stats
        .chain(crash_lines)
        .map(str::to_string)
        .collect()
}

#[test]
fn module_survives_hostile_header_bytes() {
    let s = Setup::new();
    let long = "A".repeat(40_000);
    let values: Vec<Vec<u8>> = vec![
        b"\xff\xfe\xfd\xfc".to_vec(),
        b"Basic \xc3\x28\xa0\xa1".to_vec(),
        b"Basic ====".to_vec(),
        b"Basic =".to_vec(),
        b"Basic".to_vec(),
        b" ".to_vec(),
        format!("Basic {long}").into_bytes(),
        basic_bytes(&[b'x'; 20_000]).into_bytes(),
        basic_bytes(b"\xff\xfe:\xff").into_bytes(),
        basic_bytes(b"al\x00ice:wonder\x00land").into_bytes(),
        basic_bytes(b"\r\n:\r\n").into_bytes(),
        basic_bytes(&b":".repeat(1000)).into_bytes(),
        basic_bytes(b"alice\xe2\x80\xae:x").into_bytes(),
        format!("{} {}", "Basic".repeat(1000), b64(b"a:b")).into_bytes(),
    ];
    for v in &values {
        let r = s.send(
            &get_with(v)
                .header(USER_HEADER, b"\xff\xfex")
                .header("X-Other", b"\x80\x81\xfe"),
        );
        assert!(
            r.status == 407 || r.status == 400 || r.status == 431,
            "{r:?}"
        );
    }
    // Bytes Envoy passes to the module in other places: the target, other fields, the user header.
    let raw: Vec<&[u8]> = vec![
        b"GET http://upstream.test/\xff\xfe HTTP/1.1\r\nHost: u\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \xff\r\nX-Proxy-User: \xfe\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: u\r\nProxy-Authorization:\t\tBasic\t\r\n\r\n",
    ];
    for bytes in raw {
        let mut c = Client::connect(s.proxy);
        c.send(bytes);
        let _ = c.try_response_to("GET", Duration::from_secs(10));
    }
    assert_eq!(
        s.upstream.requests().len(),
        0,
        "nothing hostile got through"
    );
    // The VM is still alive and still deciding.
    let got = s.expect_allowed(&get_with(ALICE.auth()));
    assert_eq!(got.headers_named(USER_HEADER), [b"alice"]);
    s.expect_denied(&get_with(ALICE.auth_with(b"x")));
    assert_eq!(vm_failures(&s), Vec::<String>::new());
}

#[test]
fn no_credential_or_hash_appears_in_the_log() {
    let s = Setup::new();
    s.expect_allowed(&get_with(ALICE.auth()));
    s.expect_allowed(&get_with(ALICE.auth())); // a cache hit
    s.expect_denied(&get_with(ALICE.auth_with(b"Tr0ub4dor&3")));
    s.expect_denied(&get_with(basic("mallory", "correct-horse-battery")));
    s.expect_denied(&get_with("Basic bm90LWEtY29sb24tc2VjcmV0")); // "not-a-colon-secret"
    s.expect_allowed(&get_with(LATIN.auth()));
    // Decisions are logged (at debug) with the user name...
    assert!(
        s.envoy.wait_log("mallory", Duration::from_secs(5)),
        "{}",
        s.envoy.log()
    );
    let log = s.envoy.log();
    assert!(
        log.contains("alice"),
        "no decision line names the user:\n{log}"
    );
    // ...but no password, token or hash.
    let mut secrets: Vec<String> = vec![
        "wonderland".into(),
        "Tr0ub4dor&3".into(),
        "correct-horse-battery".into(),
        "not-a-colon-secret".into(),
        "bm90LWEtY29sb24tc2VjcmV0".into(),
        b64(b"alice:wonderland"),
        b64(b"alice:wonderland").trim_end_matches('=').into(),
        b64(b"mallory:correct-horse-battery"),
    ];
    for u in [&ALICE, &LATIN, &SLOW] {
        secrets.push(u.hash().to_string());
        // The salt and digest part alone, in case the hash is logged cut or reformatted.
        secrets.push(u.hash()[7..].to_string());
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains {secret:?}:\n{log}"
        );
    }
}
