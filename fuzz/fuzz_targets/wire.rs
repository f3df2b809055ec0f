//! Fuzz target `wire`: see `synack_fuzz::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::wire(data));
