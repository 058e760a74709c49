//! The HTTP/1.1 smuggling guard: no panic on any byte stream, and the same verdicts however
//! the stream is cut into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let whole = keyward_proxy::fuzzing::h1_guard(data, data.len().max(1));
    let cut = keyward_proxy::fuzzing::h1_guard(data, usize::from(split).max(1));
    assert_eq!(whole, cut, "verdicts depend on how the stream is split");
});
