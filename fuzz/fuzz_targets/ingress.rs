//! Fuzz target `ingress`: see `synack_fuzz::ingress`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::ingress(data));
