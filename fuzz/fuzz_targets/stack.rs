//! Fuzz target `stack`: see `synack_fuzz::stack`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::stack(data));
