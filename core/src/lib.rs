//! Everything proxy-auth decides, as plain Rust with no proxy-wasm dependency, so
//! that it can be unit-tested natively; the `proxy-auth` crate binds it to the host.

pub mod auth;
pub mod cache;
pub mod challenge;
pub mod config;
pub mod credentials;
pub mod external;
pub mod hash;
pub mod htpasswd;
pub mod users;
