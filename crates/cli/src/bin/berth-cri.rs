//! `berth-cri`: the Container Runtime Interface service `berth cri` execs
//! (the async gRPC stack lives in berth-cri, linked only here).
fn main() {
    std::process::exit(berth_cri::main());
}
