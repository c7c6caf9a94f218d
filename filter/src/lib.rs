//! proxy-wasm binding.
