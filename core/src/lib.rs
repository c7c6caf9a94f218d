//! Everything proxy-auth decides, as plain Rust with no proxy-wasm dependency, so
//! that it can be unit-tested natively; the `proxy-auth` crate binds it to the host.

pub mod hash;
pub mod htpasswd;
