#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cache::fuzzing::stored_meta(data);
});
