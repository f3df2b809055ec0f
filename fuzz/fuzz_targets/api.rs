//! Fuzz target `api`: see `synack_fuzz::api`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::api(data));
