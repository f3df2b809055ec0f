//! Fuzz target `reassembly`: see `synack_fuzz::reassembly`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::reassembly(data));
