//! `envoy --mode validate` runs the module's configure step: every shipped config must pass it,
//! and each kind of bad plugin config must fail it with a message an operator can act on
//! (naming the field or line) that never repeats a hash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use proxy_auth_e2e::{paths, test_config, validate, validate_yaml, ConfigOptions};
use std::net::SocketAddr;

fn nowhere() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

fn validate_plugin(plugin_json: &str) -> (bool, String) {
    validate_yaml(&test_config(
        plugin_json,
        nowhere(),
        &ConfigOptions::default(),
    ))
}

/// Validates `plugin_json`, expects a refusal, and checks the message names each of `mentions`
/// (case-insensitive) and contains none of `secrets`.
fn assert_refused(plugin_json: &str, mentions: &[&str], secrets: &[&str]) {
    let (ok, log) = validate_plugin(plugin_json);
    assert!(!ok, "config was accepted: {plugin_json}\n{log}");
    assert!(
        !log.contains("Failed to load Wasm code"),
        "the module itself did not load, so the refusal proves nothing:\n{log}"
    );
    let lower = log.to_lowercase();
    for m in mentions {
        assert!(
            lower.contains(&m.to_lowercase()),
            "refusal does not mention {m:?}:\n{log}"
        );
    }
    for s in secrets {
        assert!(
            !log.contains(s),
            "refusal log contains the secret {s:?}:\n{log}"
        );
    }
}

#[test]
fn every_shipped_config_passes_validate() {
    let configs = paths::shipped_configs();
    assert!(!configs.is_empty(), "no envoy/*.yaml found");
    for path in configs {
        let (ok, log) = validate(&path);
        assert!(ok, "{} fails validation:\n{log}", path.display());
    }
}

#[test]
fn a_good_test_config_passes_validate() {
    // The control for the refusals below: the same builder and module, a config that is right.
    let (ok, log) = validate_plugin(&plugin(serde_json::json!({})));
    assert!(ok, "{log}");
}

#[test]
fn invalid_json_is_refused_with_its_line() {
    let json = format!(
        "{{\n  \"users\": \"{}\\n\",\n  \"realm\": oops\n}}",
        ALICE.line
    );
    assert_refused(&json, &["line 3"], &[ALICE.hash()]);
}

#[test]
fn unknown_field_is_refused_by_name() {
    let json = serde_json::json!({
        "users": ALICE.line,
        "realms": "typo",
    });
    assert_refused(&json.to_string(), &["realms"], &[ALICE.hash()]);
}

#[test]
fn field_of_the_wrong_type_is_refused_by_name() {
    let json = serde_json::json!({
        "users": ALICE.line,
        "keep_proxy_authorization": "yes",
    });
    assert_refused(
        &json.to_string(),
        &["keep_proxy_authorization"],
        &[ALICE.hash()],
    );
}

#[test]
fn empty_user_list_is_refused() {
    for users in ["", "\n\n", "# nobody yet\r\n\r\n"] {
        let json = serde_json::json!({ "users": users });
        assert_refused(&json.to_string(), &["users"], &[]);
    }
}

#[test]
fn no_user_source_is_refused() {
    assert_refused(r#"{"realm": "nobody"}"#, &["users"], &[]);
}

#[test]
fn duplicate_user_is_refused_with_its_line() {
    let other = "alice:$2y$04$fW/FUeH1BDeMUZEWX3W.PuRZkdG/NBtZ2LkAfAlBTOxxFjqXNlMBW";
    let json = serde_json::json!({ "users": format!("{}\n{}\n", ALICE.line, other) });
    let other_hash = other.split_once(':').unwrap().1;
    assert_refused(
        &json.to_string(),
        &["line 2", "alice"],
        &[ALICE.hash(), other_hash],
    );
}

#[test]
fn user_name_ending_in_a_space_is_refused_with_its_line() {
    // Credentials naming "trail " are malformed, so the user could never log in.
    let json = serde_json::json!({ "users": format!("{}\ntrail :{}\n", BOB.line, BOB.hash()) });
    assert_refused(&json.to_string(), &["line 2", "space"], &[BOB.hash()]);
}

#[test]
fn unknown_hash_format_is_refused_with_its_line() {
    let table = [
        "$1$saltsalt$9xy1btjgzLYfb7hivXtC//", // MD5-crypt: openssl passwd -1 -salt saltsalt secret
        "swgZfibPrAObY",                      // DES crypt: htpasswd -nbd crypt secret
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0",
        "wonderland", // plain text without the explicit {PLAIN} prefix
    ];
    for hash in table {
        let json = serde_json::json!({ "users": format!("{}\nmallory:{hash}\n", BOB.line) });
        assert_refused(&json.to_string(), &["line 2"], &[hash, BOB.hash()]);
    }
}

#[test]
fn users_env_naming_an_unset_variable_is_refused() {
    let json = r#"{"users_env": "PROXY_AUTH_NOT_SET_ANYWHERE"}"#;
    assert_refused(json, &["PROXY_AUTH_NOT_SET_ANYWHERE"], &[]);
}

#[test]
fn bad_users_from_the_environment_are_refused_without_the_hash() {
    let json = r#"{"users_env": "PROXY_AUTH_USERS"}"#;
    let users = format!("{}\n{}\n", ALICE.line, ALICE.line);
    let opts = ConfigOptions::default().env("PROXY_AUTH_USERS", &users);
    let (ok, log) = validate_yaml(&test_config(json, nowhere(), &opts));
    assert!(
        !ok,
        "duplicate user from the environment was accepted:\n{log}"
    );
    assert!(log.to_lowercase().contains("line 2"), "{log}");
    assert!(!log.contains(ALICE.hash()), "{log}");
}
