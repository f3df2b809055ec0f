//! Fuzz target `ingress_forged`: see `synack_fuzz::ingress_forged`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synack_fuzz::ingress_forged(data));
