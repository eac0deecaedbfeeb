#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edge::fuzzing::hop_by_hop(data);
});
