//! The floor filter's work (read Proxy-Authorization, remove it) written straight
//! against the proxy-wasm ABI, exporting only the callbacks it needs. Envoy calls
//! into the VM only for callbacks a module exports, and the Rust SDK exports them
//! all; the difference between this and the floor prices those extra calls.

use std::ptr::null_mut;

const HTTP_REQUEST_HEADERS: u32 = 0;
const PROXY_AUTHORIZATION: &[u8] = b"proxy-authorization";

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host's allocation in the VM, for the values it hands over.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _root_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: usize, _eos: u32) -> u32 {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer it allocated through
    // proxy_on_memory_allocate, and its size, or leaves them untouched.
    let status = unsafe {
        proxy_get_header_map_value(
            HTTP_REQUEST_HEADERS,
            PROXY_AUTHORIZATION.as_ptr(),
            PROXY_AUTHORIZATION.len(),
            &mut data,
            &mut size,
        )
    };
    if status == 0 && !data.is_null() {
        // SAFETY: as above; the buffer is ours from here on and freed at the end.
        let value = unsafe { Vec::from_raw_parts(data, size, size) };
        std::hint::black_box(&value);
        // SAFETY: a pointer and length of a static byte string.
        unsafe {
            proxy_remove_header_map_value(
                HTTP_REQUEST_HEADERS,
                PROXY_AUTHORIZATION.as_ptr(),
                PROXY_AUTHORIZATION.len(),
            );
        }
    }
    0 // Continue
}
