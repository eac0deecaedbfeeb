#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edge_core::proxy_protocol::fuzzing::check(data);
});
