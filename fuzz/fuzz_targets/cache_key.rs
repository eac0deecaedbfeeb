#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cache_rules::fuzzing::cache_key(data);
});
