//! Runs one input through a target outside libFuzzer, for a debugger or
//! `RUST_BACKTRACE=1`:
//!
//! ```text
//! cargo run -p synack-fuzz --example replay -- api fuzz/artifacts/api/crash-…
//! ```

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(file)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: replay TARGET FILE (TARGET: ingress, ingress_forged, api, wire, reassembly, stack)"
        );
        std::process::exit(2);
    };
    let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    match target.as_str() {
        "ingress" => synack_fuzz::ingress(&data),
        "ingress_forged" => synack_fuzz::ingress_forged(&data),
        "api" => synack_fuzz::api(&data),
        "wire" => synack_fuzz::wire(&data),
        "reassembly" => synack_fuzz::reassembly(&data),
        "stack" => synack_fuzz::stack(&data),
        other => panic!("no target {other:?}"),
    }
    println!("{file}: {target} ran clean");
}
