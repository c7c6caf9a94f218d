//! Fixtures shared by the end-to-end tests: users with hashes made once by real tools, and a
//! one-call start of upstream + Envoy, so every test builds its own and shares nothing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proxy_auth_e2e::{test_config, ConfigOptions, Envoy, RawRequest, Response, Upstream, LISTENER};
use std::net::SocketAddr;
use std::time::Duration;

/// A user, the password that is right for it (as raw octets), and its htpasswd line.
pub struct User {
    pub name: &'static str,
    pub password: &'static [u8],
    pub line: &'static str,
}

// The hashes were made once with real tools and pasted here:
//   bcrypt $2y$: htpasswd -nbB -C 4 USER PASS   (apache2-utils; the Latin-1 one as $'p\xe4ss')
//   bcrypt $2a$/$2b$: python bcrypt.hashpw(PASS, bcrypt.gensalt(4, prefix=b"2a"|b"2b"))
//   $5$/$6$: openssl passwd -5|-6 PASS; with rounds=: passlib sha256_crypt/sha512_crypt.using(rounds=1000)
//   $apr1$: htpasswd -nbm; {SHA}: htpasswd -nbs; slow (bcrypt cost 10): htpasswd -nbB -C 10
pub const ALICE: User = User {
    name: "alice",
    password: b"wonderland",
    line: "alice:$2y$04$eN7fwggEErS2U2I2.zZGdevZnme9DZHuWKUvty9vDQNCxnX/WJzPy",
};
pub const BOB: User = User {
    name: "bob",
    password: b"builder",
    line: "bob:$2y$04$fW/FUeH1BDeMUZEWX3W.PuRZkdG/NBtZ2LkAfAlBTOxxFjqXNlMBW",
};
pub const COLON: User = User {
    name: "colon",
    password: b"a:b:c",
    line: "colon:$2y$04$9rZBrQLmEeYtGPMthq2kLOWLIa99jIc/RWWyPOCPmwh5SUrwyyoCy",
};
pub const JURGEN: User = User {
    name: "jürgen",
    password: "grüße".as_bytes(),
    line: "jürgen:$2y$04$K5c16CABIIFByWauSQll6.Omyy0FFrnGoKHaAYLuaE95ruwdTIkyG",
};
/// Password `p\xe4ss`: "päss" in Latin-1, not valid UTF-8.
pub const LATIN: User = User {
    name: "latin",
    password: b"p\xe4ss",
    line: "latin:$2y$04$VK0OIt/NbqOR8txqqyhj2elUCe24ur5eYh80HXLVXd0NAPxtd8fom",
};
/// The empty password (RFC 7617 allows it).
pub const NOPASS: User = User {
    name: "nopass",
    password: b"",
    line: "nopass:$2y$04$cG2a2HI/gjGd2xHLe17pQ.Q4jEumcee7DLbAqbW4DeyrNb4UWoR.u",
};
/// `tilde:~~~` encodes as `dGlsZGU6fn5+`: the token has a character the URL-safe alphabet lacks.
pub const TILDE: User = User {
    name: "tilde",
    password: b"~~~",
    line: "tilde:$2y$04$Ydsij6LA0QTxqmRjHgGxzewkFZ5kjgdzkQQ6QUn.j63alS1bHqxDS",
};
/// bcrypt cost 10: slow enough that paying it on every request would be a real cost.
pub const SLOW: User = User {
    name: "slow",
    password: b"patience",
    line: "slow:$2y$10$pb8l04fCyqWmAOoffx49uOc3/2sMyTAy7DB2oTMU79YdVeY6V4hYS",
};

/// One user per supported hash format.
pub const FORMATS: &[User] = &[
    User {
        name: "b2a",
        password: b"pw-2a",
        line: "b2a:$2a$04$gTPreZcwEz0zUt0DlMEvzuYzbLFNYYAFsEKWOkd8SSPW6Q5z0wYpW",
    },
    User {
        name: "b2b",
        password: b"pw-2b",
        line: "b2b:$2b$04$grj9pEL.qoZ0uG5mW/Mv2OVF0oEv.wfJufmTvztWx1F34wpbtlhDC",
    },
    User {
        name: "b2y",
        password: b"pw-2y",
        line: "b2y:$2y$04$g6HknWu3mu5LXh5O/lLTdeLU2rLwjgyV9Olt63zXzxjLFJ1SdNyG6",
    },
    User {
        name: "sha256",
        password: b"pw-5",
        line: "sha256:$5$CRP.BQgsr3k2R/2a$znNK8dCN9VJl6F7U4CLmhlrjjFb9Z35PiCHoPHPOCVA",
    },
    User {
        name: "sha256r",
        password: b"pw-5r",
        line: "sha256r:$5$rounds=1000$hGtFRahmO3JW42AI$FDHzxNHmn5ssYS6h4OcKi668SSNe0Fc01tA.nYISOw0",
    },
    User {
        name: "sha512",
        password: b"pw-6",
        line: "sha512:$6$/L8s5LRtBMakxut3$kaGdicuXK8.mWv.kw/EJe0mQrPWljz1O7jO59icvsDe9jVwtMf3SGhDfRfNp8ozAVQWlUNECs4UNVTdTqVPUc0",
    },
    User {
        name: "sha512r",
        password: b"pw-6r",
        line: "sha512r:$6$rounds=1000$Gw7aMbvoLuLhvNCr$BA/myFyWN2TU8FaO7ftNQAdIx907hnSJqy8uer/MLfus9vFOLBACgZFPI82ghFk2ETVHh1zfarX0U9I73SbSM1",
    },
    User {
        name: "apr1",
        password: b"pw-apr1",
        line: "apr1:$apr1$F5poHdtU$c0Ih3QGaD8dMFtEBaU7G11",
    },
    User {
        name: "sha1",
        password: b"pw-sha",
        line: "sha1:{SHA}G5zynyVKZeHPqXetqic75L7ZkrM=",
    },
    User {
        name: "plain",
        password: b"pw-plain",
        line: "plain:{PLAIN}pw-plain",
    },
];

impl User {
    /// The right `Proxy-Authorization` value for this user.
    pub fn auth(&self) -> String {
        self.auth_with(self.password)
    }

    /// `Basic base64(name:password)` with another password.
    pub fn auth_with(&self, password: &[u8]) -> String {
        let mut cred = self.name.as_bytes().to_vec();
        cred.push(b':');
        cred.extend_from_slice(password);
        proxy_auth_e2e::basic_bytes(&cred)
    }

    /// The hash part of the htpasswd line.
    pub fn hash(&self) -> &'static str {
        self.line
            .split_once(':')
            .map(|(_, h)| h)
            .unwrap_or_default()
    }
}

/// htpasswd text for `users`, one line each.
pub fn htpasswd(users: &[&User]) -> String {
    users.iter().map(|u| format!("{}\n", u.line)).collect()
}

pub const REALM: &str = "proxy-auth test";
pub const USER_HEADER: &str = "x-proxy-user";

/// The plugin JSON most tests use: every fixture user, the test realm, the user header, plus
/// whatever fields `extra` (a JSON object) adds or overrides.
pub fn plugin(extra: serde_json::Value) -> String {
    let mut all: Vec<&User> = vec![
        &ALICE, &BOB, &COLON, &JURGEN, &LATIN, &NOPASS, &TILDE, &SLOW,
    ];
    all.extend(FORMATS.iter());
    let mut v = serde_json::json!({
        "realm": REALM,
        "users": htpasswd(&all),
        "user_header": USER_HEADER,
    });
    if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            base.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

/// An upstream and an Envoy with the module in front of it.
pub struct Setup {
    pub upstream: Upstream,
    pub envoy: Envoy,
    pub proxy: SocketAddr,
}

impl Setup {
    /// Starts with the default plugin config.
    pub fn new() -> Setup {
        Setup::with(&plugin(serde_json::json!({})), ConfigOptions::default())
    }

    pub fn with(plugin_json: &str, opts: ConfigOptions) -> Setup {
        let upstream = Upstream::start();
        let envoy = Envoy::start(&test_config(plugin_json, upstream.addr(), &opts));
        let proxy = envoy.listener(LISTENER);
        Setup {
            upstream,
            envoy,
            proxy,
        }
    }

    /// Sends `req` on a new connection and returns the response.
    pub fn send(&self, req: &RawRequest) -> Response {
        proxy_auth_e2e::exchange(self.proxy, req)
    }

    /// Sends `req`, expects the 407 challenge, and checks nothing reached the upstream.
    pub fn expect_denied(&self, req: &RawRequest) -> Response {
        let before = self.upstream.heads().len();
        let r = self.send(req);
        assert_challenge(&r, &format!("\"{REALM}\""));
        assert_eq!(
            self.upstream.heads().len(),
            before,
            "a denied request reached the upstream: {req:?}"
        );
        r
    }

    /// Sends `req`, expects 200 from the upstream, and returns what the upstream received.
    pub fn expect_allowed(&self, req: &RawRequest) -> proxy_auth_e2e::Received {
        let before = self.upstream.requests().len();
        let r = self.send(req);
        assert_eq!(r.status, 200, "request {req:?} got {r:?}");
        let all = self
            .upstream
            .wait_requests(before + 1, Duration::from_secs(5));
        all[before].clone()
    }

    pub fn counter(&self, short: &str) -> u64 {
        self.envoy
            .counter(&format!("wasmcustom.proxy_auth.{short}"))
    }
}

/// `GET http://upstream.test/` (absolute form, as a proxy client sends it) with this
/// Proxy-Authorization value.
pub fn get_with(auth: impl AsRef<[u8]>) -> RawRequest {
    RawRequest::get("http://upstream.test/").proxy_auth(auth)
}

/// Checks a response is the proxy-auth challenge (RFC 9110 sections 11.7.1, 15.5.8) with the
/// realm given as its quoted-string form.
pub fn assert_challenge(r: &Response, quoted_realm: &str) {
    assert_eq!(r.status, 407, "expected 407, got {r:?}");
    assert_eq!(
        r.headers_named("proxy-authenticate"),
        [format!("Basic realm={quoted_realm}, charset=\"UTF-8\"").as_bytes()],
        "challenge of {r:?}"
    );
    assert!(
        r.header("www-authenticate").is_none(),
        "a 407 must not carry WWW-Authenticate: {r:?}"
    );
    let content_type = r.header_str("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "content-type of {r:?}"
    );
    assert_eq!(r.body, b"Proxy Authentication Required\n");
}
