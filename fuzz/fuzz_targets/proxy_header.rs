//! The PROXY protocol v1/v2 header parser: no panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keyward_proxy::fuzzing::proxy_header(data);
});
