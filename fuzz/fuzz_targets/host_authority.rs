//! The Host / `:authority` normaliser: no panic on any input, and what it accepts is
//! canonical (normalising the result again gives the same result).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyward_proxy::fuzzing::host_authority(text);
    }
});
