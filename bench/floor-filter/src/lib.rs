//! The least a wasm filter guarding Proxy-Authorization can do: read the field and
//! remove it, then let the request go. The bench compares proxy-auth with this to
//! tell the cost of its own work from the cost of crossing into the VM at all.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

const PROXY_AUTHORIZATION: &str = "proxy-authorization";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor;

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Read it as proxy-auth must (bytes: a value need not be UTF-8), and make
        // sure the value is really copied into the VM, not optimised away.
        let value =
            hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, PROXY_AUTHORIZATION);
        if let Ok(Some(value)) = value {
            std::hint::black_box(value);
            let _ = hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                PROXY_AUTHORIZATION,
                None,
            );
        }
        Action::Continue
    }
}
